"""``paper_trading``: each session paper-traded, checked against its backtest, in Dagster.

Three small simulated sessions (four markets each) are ingested once for the module, with
a champion in the model history (an untrained PPO: its fixed network trades) and a paper
database (a scratch database on the local server). Each test paper-trades its own session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from stable_baselines3 import PPO

from kalshi_pipeline.defs.paper_metadata import champion_paper_metadata
from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.defs.sensors import paper_trading_sensor
from kalshi_pipeline.env import MarketAgnosticKalshiEnv
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.records import Records
from kalshi_pipeline.paper.session_files import (
    RecordSource,
    SessionReport,
    paper_dir,
    report_path,
)
from kalshi_pipeline.paper.store import PaperStatus, PaperStore
from kalshi_pipeline.paths import COLLECTOR_URL_ENV, HOME_ENV, artifacts_dir
from kalshi_pipeline.sources.collector_tail import Cursor
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.settings import PAPER_DATABASE_URL
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig
from kalshi_pipeline.training.config import profile
from kalshi_pipeline.training.phases import write_lineage
from kalshi_pipeline.training.registry import (
    Registry,
    RegistryRecord,
    RegistryStatus,
    registry_path,
)
from kalshi_pipeline_tests.conftest import scratch_database
from kalshi_pipeline_tests.defs.conftest import ingest, metadata, simulated, store_at

# Four markets of a few dozen steps each (at least one long enough for training's
# filters, so that the ingest's data-quality check passes).
FEW_STEPS = SimulatorConfig(
    population=Population.TWO_CLASS, markets=4, median_events_per_market=120, events_sigma=0.3
)
CHECK = dg.AssetCheckKey(dg.AssetKey("paper_trading"), "agrees_with_backtest")
PAPER_JOB = "paper_trade_session"


@dataclass
class Ingested:
    """Sessions 1, 2 and 3 ingested into ``home``, a champion, and a paper database."""

    home: Path
    instance: dg.DagsterInstance
    paper_db: str
    champion_id: int

    @property
    def artifacts(self) -> Path:
        return artifacts_dir(self.home)


def untrained_champion(home: Path, views) -> int:
    """An untrained PPO with its lineage, put in the model history as its champion."""
    path = artifacts_dir(home) / "models" / "champion" / "model.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    PPO("MlpPolicy", MarketAgnosticKalshiEnv(views), n_steps=64, seed=3, device="cpu").save(path)
    write_lineage(path.parent / "model.json", 3, views[:3], profile("smoke", seed=3), None, 0)
    record = RegistryRecord(model_path=str(path), status=RegistryStatus.ACTIVE, profile="smoke")
    return Registry(registry_path(artifacts_dir(home))).append(record).id


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, definitions) -> Iterator[Ingested]:
    home = tmp_path_factory.mktemp("paper") / "home"
    with (
        pytest.MonkeyPatch.context() as patch,
        dg.instance_for_test() as instance,
        scratch_database() as paper_db,
    ):
        patch.setenv(HOME_ENV, str(home))
        patch.delenv(COLLECTOR_URL_ENV, raising=False)
        patch.setenv(PAPER_DATABASE_URL.name, paper_db)
        raw = {session_id: simulated(session_id, FEW_STEPS) for session_id in (1, 2, 3)}
        for session in raw.values():
            store_at(home).write_session(session)
        assert all(r.success for r in ingest(definitions, instance, "1", "2", "3"))
        champion_id = untrained_champion(home, build_market_views(raw[1]))
        yield Ingested(home, instance, paper_db, champion_id)


def paper_trade(definitions, ingested: Ingested, key: str) -> dg.ExecuteInProcessResult:
    return definitions.resolve_job_def(PAPER_JOB).execute_in_process(
        instance=ingested.instance, partition_key=key, raise_on_error=False
    )


def check_of(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.asset_check_key == CHECK]
    return evaluation


COUNTS = ("decisions", "outcomes", "fills")


def test_a_session_paper_traded_after_the_fact_agrees_with_its_backtest(definitions, ingested):
    result = paper_trade(definitions, ingested, "1")

    assert result.success
    shown = metadata(result, "paper_trading")
    check = check_of(result)
    assert check.passed
    for kind in COUNTS:
        assert shown[f"paper_{kind}"] == shown[f"backtest_{kind}"]
        assert check.metadata[f"paper_{kind}"].value == shown[f"paper_{kind}"]
    assert shown["paper_decisions"] > 0 and shown["differences"] == 0
    assert shown["source"] == RecordSource.REPLAYED
    # P&L per market: every market of the session, played by the champion.
    rows = [row.data for row in shown["pnl_per_market"].records]
    assert len(rows) == shown["markets"] == FEW_STEPS.markets
    assert {row["model"] for row in rows} == {f"model-{ingested.champion_id}"}
    assert sum(row["pnl_cents"] for row in rows) == shown["pnl_cents"]
    assert sum(row["fills"] for row in rows) == shown["paper_fills"]
    assert [row["pnl_cents"] for row in rows] == [row["backtest_pnl_cents"] for row in rows]
    assert f"| model-{ingested.champion_id} | {ingested.champion_id} | 4 |" in shown["models"]
    # The plot: a PNG on disk, and inside the Markdown the UI shows.
    assert Path(shown["plot_path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shown["pnl_plot"].startswith("![cumulative P&L](data:image/png;base64,")
    # The JSON summary, and the record written to the paper database, closed.
    summary_file = report_path(paper_dir(ingested.artifacts), 1)
    assert shown["summary_path"] == str(summary_file)
    report = SessionReport.from_json(json.loads(summary_file.read_text()))
    assert report.paper.pnl_cents == shown["pnl_cents"] and report.agrees
    stored = PaperStore(ingested.paper_db).load(1)
    assert stored.status == PaperStatus.CLOSED
    assert len(stored.records.decisions) == shown["paper_decisions"]
    assert len(stored.records.outcomes) == shown["paper_outcomes"]

    # Materialised again, the paper database's closed record is used, and agrees too.
    again = paper_trade(definitions, ingested, "1")
    shown_again = metadata(again, "paper_trading")
    assert again.success and check_of(again).passed
    assert shown_again["source"] == RecordSource.PAPER_DATABASE
    assert shown_again["pnl_cents"] == shown["pnl_cents"]
    assert all(shown_again[f"paper_{kind}"] == shown[f"paper_{kind}"] for kind in COUNTS)

    # The champion's paper record, as production_model shows it.
    record = champion_paper_metadata(paper_dir(ingested.artifacts), ingested.champion_id)
    assert [row.data["session"] for row in record["paper_record"].records] == [1]
    assert record["paper_pnl_cents"] == shown["pnl_cents"]
    assert record["paper_markets"] == FEW_STEPS.markets


def test_a_paper_record_that_differs_from_the_backtest_fails_the_check(definitions, ingested):
    assert paper_trade(definitions, ingested, "2").success
    # One decision of the stored record changed: the backtest's model chose otherwise.
    with closing(psycopg2.connect(ingested.paper_db)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT market, step FROM paper_decisions WHERE session_id = 2 AND step > 0 "
            "ORDER BY market, step LIMIT 1"
        )
        market, step = cur.fetchone()
        cur.execute(
            "UPDATE paper_decisions SET action = (action + 1) %% 5 "
            "WHERE session_id = 2 AND market = %s AND step = %s",
            (market, step),
        )
        conn.commit()

    result = paper_trade(definitions, ingested, "2")

    check = check_of(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert f"{market}: decisions differ at step {step}" in check.description
    assert check.metadata["differences"].value == 1
    assert not result.success  # blocking, ERROR: the run fails
    assert metadata(result, "paper_trading")["source"] == RecordSource.PAPER_DATABASE


def test_a_closed_record_short_of_the_raw_copy_is_not_compared(definitions, ingested):
    """The follower closed session 3 at its first half; the collector resumed it, and the
    session was ingested again whole. The closed record is not of these rows: the raw
    copy is played after the fact and agrees; the paper database's record is left as is."""
    raw = ParquetSessionStore(ingested.artifacts / "raw" / "session-3").load_session(3)
    half = Cursor(*(_id_at_half(table) for table in (raw.snapshots, raw.deltas, raw.trades)))
    store = PaperStore(ingested.paper_db)
    store.create()
    store.begin(3, "the collector", {})
    store.write(3, Records(), half, 0.0, status=PaperStatus.CLOSED)

    result = paper_trade(definitions, ingested, "3")

    assert result.success and check_of(result).passed
    shown = metadata(result, "paper_trading")
    assert shown["source"] == RecordSource.REPLAYED and shown["paper_decisions"] > 0
    assert store.load(3).cursor == half and not store.load(3).records.decisions
    store.close()


def _id_at_half(table) -> int:
    ids = [] if table is None else sorted(table.column("id").to_pylist())
    return ids[len(ids) // 2] if ids else 0


def test_the_sensor_requests_sessions_with_views_and_no_paper_trading(definitions, ingested):
    def report(instance, asset: str, keys: list[str]) -> None:
        for key in keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=key))

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(sessions.name, ["1", "2", "3", "4", "5"])
        report(instance, "market_views", ["1", "2", "4", "5"])
        report(instance, "paper_trading", ["2"])
        # Session 5's paper run fails (this home holds no raw copy of it).
        failed = definitions.resolve_job_def(PAPER_JOB).execute_in_process(
            instance=instance, partition_key="5", raise_on_error=False
        )
        assert not failed.success

        requests = paper_trading_sensor(dg.build_sensor_context(instance=instance))
        # Session 3 has no views yet, session 2 is paper-traded, session 5's run failed.
        assert [(r.partition_key, r.run_key) for r in requests] == [
            ("1", "paper-session-1"),
            ("4", "paper-session-4"),
        ]

        report(instance, "paper_trading", ["1", "4"])
        skipped = paper_trading_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(skipped, dg.SkipReason)
        assert "sessions 5 had a paper_trade_session run" in skipped.skip_message


def test_an_unreachable_paper_database_fails_the_step_naming_it(definitions, ingested, monkeypatch):
    monkeypatch.setenv(PAPER_DATABASE_URL.name, "postgresql://paper:secret@127.0.0.1:1/paper")

    result = paper_trade(definitions, ingested, "1")

    assert not result.success
    failure = result.failure_data_for_node("paper_trading").error.to_string()
    assert "session 1: paper database 127.0.0.1:1/paper" in failure
    assert "secret" not in failure


def test_the_sensor_starts_stopped_and_the_check_is_blocking(definitions):
    sensor = definitions.resolve_sensor_def("paper_trading_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == PAPER_JOB
    (spec,) = definitions.resolve_assets_def("paper_trading").check_specs
    assert (spec.name, spec.blocking) == ("agrees_with_backtest", True)
