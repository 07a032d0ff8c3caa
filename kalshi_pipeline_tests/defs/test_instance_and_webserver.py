"""The Dagster project against real services: Postgres instance storage, the webserver with
its GraphQL API and client, and ``dagster definitions validate``.

Nothing is mocked. The Postgres test needs the local server (see ``conftest.py``); the
webserver test starts ``dagster-webserver`` and ``dagster-daemon`` on a free loopback port
with a temporary ``DAGSTER_HOME`` holding a copy of the repository's ``dagster.yaml``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

from kalshi_pipeline.defs.partitions import session_key, sessions
from kalshi_pipeline.paths import COLLECTOR_URL_ENV, HOME_ENV
from kalshi_pipeline.sources import ParquetSessionStore
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_sessions

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCATION = "kalshi_pipeline"  # workspace.yaml's location_name
JOB = "ingest_session"
INGESTED_ASSETS = {"raw_sessions", "market_views"}
SESSION_ID = 1
KEY = session_key(SESSION_ID)
SERVER_START_TIMEOUT = 90.0
RUN_TIMEOUT = 120.0


@pytest.fixture
def pipeline_home(tmp_path: Path) -> Path:
    """A pipeline home whose local store holds one small simulated (closed) session."""
    home = tmp_path / "pipeline"
    store = ParquetSessionStore(home / "sessions")
    for session in simulate_sessions(1, 0, SimulatorConfig(markets=6)):
        store.write_session(session)
    assert [s.session_id for s in store.list_sessions() if s.is_complete] == [SESSION_ID]
    return home


def _views_file(home: Path) -> Path:
    return home / "artifacts" / "views" / f"session-{SESSION_ID}.parquet"


# -- 1. Postgres instance storage ------------------------------------------------------


def _rows(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def test_an_ingest_run_is_stored_in_postgres(collector_db, pipeline_home, monkeypatch):
    """With ``storage: postgres`` the run, its events and asset keys land in Postgres."""
    monkeypatch.setenv(HOME_ENV, str(pipeline_home))
    monkeypatch.delenv(COLLECTOR_URL_ENV, raising=False)
    from kalshi_pipeline.definitions import defs

    # collector_db is just a scratch database here (created, and dropped afterwards).
    storage_url = collector_db.replace("postgresql://", "postgresql+psycopg2://", 1)
    overrides = {"storage": {"postgres": {"postgres_url": storage_url}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        instance.add_dynamic_partitions(sessions.name, [KEY])
        result = (
            defs().resolve_job_def(JOB).execute_in_process(instance=instance, partition_key=KEY)
        )
        assert result.success
        run_id = result.run_id
        # The instance reads the materialisation back (from wherever it stored it) ...
        event = instance.get_latest_materialization_event(dg.AssetKey("market_views"))
        assert event is not None and event.run_id == run_id
        # ... and it was not SQLite: the instance's directory holds no database file.
        assert not list(Path(instance.root_directory).rglob("*.db"))

    # What PostgreSQL itself holds, read without Dagster.
    assert _rows(collector_db, "SELECT run_id, status, pipeline_name, partition FROM runs") == [
        (run_id, "SUCCESS", JOB, KEY)
    ]
    materialized = _rows(
        collector_db,
        "SELECT asset_key, partition FROM event_logs "
        "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        (run_id,),
    )
    assert sorted(materialized) == sorted((f'["{a}"]', KEY) for a in INGESTED_ASSETS)
    (success,) = _rows(
        collector_db,
        "SELECT count(*) FROM event_logs "
        "WHERE run_id = %s AND dagster_event_type = 'PIPELINE_SUCCESS'",
        (run_id,),
    )
    assert success == (1,)
    asset_keys = {key for (key,) in _rows(collector_db, "SELECT asset_key FROM asset_keys")}
    assert asset_keys == {f'["{a}"]' for a in INGESTED_ASSETS}
    assert _rows(collector_db, "SELECT partitions_def_name, partition FROM dynamic_partitions") == [
        (sessions.name, KEY)
    ]
    checks = _rows(
        collector_db,
        "SELECT check_name, execution_status FROM asset_check_executions WHERE run_id = %s",
        (run_id,),
    )
    assert sorted(checks) == [
        ("data_quality", "SUCCEEDED"),
        ("min_coverage", "SUCCEEDED"),
        ("min_episode_length", "SUCCEEDED"),
    ]
    assert _views_file(pipeline_home).is_file()


# -- 2. The webserver, its GraphQL API and Dagster's GraphQL client ----------------------


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _service(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A Dagster service in its own process group, stopped with all its children."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the service's process group (code servers, run workers), then SIGKILL."""
    group = proc.pid  # start_new_session: the group id is the leader's pid
    for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while (proc.poll() is None or _group_alive(group)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if proc.poll() is not None and not _group_alive(group):
            break
    proc.wait(timeout=10)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


class Webserver:
    def __init__(self, port: int, proc: subprocess.Popen, log: Path) -> None:
        self.port, self.proc, self.log = port, proc, log
        self.url = f"http://127.0.0.1:{port}"

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited ({self.proc.returncode}):\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def wait_until_loaded(self, timeout: float = SERVER_START_TIMEOUT) -> None:
        """Until /server_info answers and the code location has loaded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                info = requests.get(f"{self.url}/server_info", timeout=5)
                if info.ok and self._location_loaded():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        pytest.fail(f"the webserver did not load {LOCATION} in {timeout:.0f}s:\n{self.tail()}")

    def _location_loaded(self) -> bool:
        data = self.graphql(
            "{ workspaceOrError { __typename ... on Workspace { locationEntries {"
            " name loadStatus locationOrLoadError { __typename"
            " ... on PythonError { message } } } } } }"
        )
        entries = {e["name"]: e for e in data["workspaceOrError"]["locationEntries"]}
        entry = entries.get(LOCATION)
        if entry is None or entry["loadStatus"] != "LOADED":
            return False
        loaded = entry["locationOrLoadError"]
        assert loaded["__typename"] == "RepositoryLocation", loaded
        return True


@contextmanager
def _webserver(env: dict[str, str], logs: Path) -> Iterator[Webserver]:
    port = _free_port()
    log = logs / "webserver.log"
    args = ["dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with _service(args, env, log) as proc:
        server = Webserver(port, proc, log)
        server.wait_until_loaded()
        yield server


@pytest.fixture
def dagster_env(tmp_path: Path, pipeline_home: Path) -> dict[str, str]:
    """The services' environment: a fresh DAGSTER_HOME with the repository's settings."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k != COLLECTOR_URL_ENV}
    env.update(
        DAGSTER_HOME=str(dagster_home), PYTHONUNBUFFERED="1", **{HOME_ENV: str(pipeline_home)}
    )
    return env


def _repository_name(server: Webserver) -> str:
    data = server.graphql(
        "{ repositoriesOrError { __typename ... on RepositoryConnection {"
        " nodes { name location { name } jobs { name } } } } }"
    )
    repositories = [
        r for r in data["repositoriesOrError"]["nodes"] if r["location"]["name"] == LOCATION
    ]
    assert len(repositories) == 1, data
    assert JOB in {job["name"] for job in repositories[0]["jobs"]}
    return repositories[0]["name"]


ADD_PARTITION = """
mutation AddPartition($repository: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repository, partitionsDefName: $name,
                      partitionKey: $key) {
    __typename
    ... on AddDynamicPartitionSuccess { partitionsDefName partitionKey }
    ... on PythonError { message }
  }
}
"""


def _wait_for_run(client: DagsterGraphQLClient, run_id: str, logs: list[Path]) -> str:
    finished = {"SUCCESS", "FAILURE", "CANCELED"}
    deadline = time.monotonic() + RUN_TIMEOUT
    status = None
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in finished:
            return status
        time.sleep(1.0)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    pytest.fail(f"run {run_id} still {status} after {RUN_TIMEOUT:.0f}s\n{tails}")


@pytest.mark.slow  # a minute: the webserver and a run launched through it; .ci/run runs it
def test_the_graphql_client_runs_an_ingest_through_the_webserver(
    dagster_env, pipeline_home, tmp_path
):
    """Register the partition over GraphQL, submit with DagsterGraphQLClient, run to SUCCESS.

    The repository's ``dagster.yaml`` sets run concurrency, so runs go through the queued
    run coordinator: like ``dagster dev``, the daemon runs next to the webserver to launch
    them (with the default run launcher, in a subprocess of the code server).
    """
    dagster_home = Path(dagster_env["DAGSTER_HOME"])
    with _webserver(dagster_env, tmp_path) as server:
        repository = _repository_name(server)
        added = server.graphql(
            ADD_PARTITION,
            {
                "repository": {"repositoryLocationName": LOCATION, "repositoryName": repository},
                "name": sessions.name,
                "key": KEY,
            },
        )["addDynamicPartition"]
        assert added == {
            "__typename": "AddDynamicPartitionSuccess",
            "partitionsDefName": sessions.name,
            "partitionKey": KEY,
        }
        # Registered before the daemon starts, so new_sessions_sensor has nothing to add.
        daemon_log = tmp_path / "daemon.log"
        daemon_args = ["dagster-daemon", "run", "-w", "workspace.yaml"]
        with _service(daemon_args, dagster_env, daemon_log) as daemon:
            client = DagsterGraphQLClient("127.0.0.1", port_number=server.port, timeout=60)
            run_id = client.submit_job_execution(
                JOB,
                repository_location_name=LOCATION,
                repository_name=repository,
                tags={"dagster/partition": KEY},
            )
            status = _wait_for_run(client, run_id, [server.log, daemon_log])
            assert daemon.poll() is None, daemon_log.read_text(errors="replace")[-3000:]
        assert status == "SUCCESS", server.tail()
        server.check_alive()

    # The run, as recorded in the instance on the same DAGSTER_HOME.
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.get_dynamic_partitions(sessions.name) == [KEY]
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.job_name == JOB
        assert run.tags.get("dagster/partition") == KEY
        assert run.status == dg.DagsterRunStatus.SUCCESS
        for asset in INGESTED_ASSETS:
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            assert event is not None and event.run_id == run_id, asset
            assert event.asset_materialization.partition == KEY
    assert _views_file(pipeline_home).is_file()


# -- 3. dagster definitions validate ----------------------------------------------------


def _validate(workspace: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dagster", "definitions", "validate", "-w", workspace],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_definitions_validate_accepts_the_workspace(dagster_env, tmp_path):
    done = _validate("workspace.yaml", REPO_ROOT, dagster_env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"Validation successful for code location {LOCATION}" in output
    assert "All code locations passed validation" in output

    # Control: the same command rejects a workspace whose attribute does not exist.
    broken = tmp_path / "broken_workspace.yaml"
    text = (REPO_ROOT / "workspace.yaml").read_text()
    assert "attribute: defs" in text
    broken.write_text(text.replace("attribute: defs", "attribute: no_such_defs"))
    failed = _validate(str(broken), REPO_ROOT, dagster_env)
    assert failed.returncode != 0, failed.stdout + failed.stderr
