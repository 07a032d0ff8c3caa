"""SIGTERM and SIGINT end ``kalshi-pipeline demo`` promptly, wherever it is.

Inside its in-process runs Dagster owns both signals, and a step with a retry policy (the
phase candidates, ``raw_sessions``) used to turn the interrupt into a retry: the run went
on to SUCCESS and a promotion (:mod:`kalshi_pipeline.demo_interrupts`). Here the real
demo runs in a process of its own on a small store and is signalled while it trains, and
while it ingests: it exits 130 with one line, its run is recorded as failed, nothing after
it runs (no promotion, no further session) and no process of it is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from kalshi_pipeline.sources import ParquetSessionStore
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_sessions

GUARD_S = 240  # far above the ~2 s a stop takes; an unstopped demo trains for minutes
DROP = ("DAGSTER_HOME", "KALSHI_PIPELINE_HOME", "KALSHI_COLLECTOR_URL")


def _home(tmp_path: Path) -> Path:
    """A home whose store holds 4 sessions of 12 markets: enough for the demo's split."""
    home = tmp_path / "home"
    store = ParquetSessionStore(home / "sessions")
    for session in simulate_sessions(4, 1, SimulatorConfig(markets=12)):
        store.write_session(session)
    return home


def _start_demo(home: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    command = [sys.executable, "-m", "kalshi_pipeline.cli", "demo", "--home", str(home)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _signal_at(
    demo: subprocess.Popen, stream, marker: str, number: int, after_s: float = 0.0
) -> tuple[str, str, set]:
    """Send ``number`` to the demo ``after_s`` after a line of ``stream`` holds ``marker``;
    its stdout, stderr (what was read included) and the processes it had then."""
    seen = []
    for line in stream:
        seen.append(line)
        if marker in line:
            break
    else:
        demo.kill()
        raise AssertionError(f"no {marker!r} line before the demo ended: {''.join(seen)}")
    time.sleep(after_s)
    children = _descendants(demo.pid)
    demo.send_signal(number)
    try:
        out, err = demo.communicate(timeout=GUARD_S)
    except subprocess.TimeoutExpired:
        demo.kill()
        demo.communicate()
        raise AssertionError(f"the demo went on {GUARD_S} s after the signal") from None
    if stream is demo.stdout:
        return "".join(seen) + out, err, children
    return out, "".join(seen) + err, children


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    deadline = time.monotonic() + 5  # a child's own exit may lag its parent's by a moment
    while True:
        left = {p for p in pids if Path(f"/proc/{p}").exists()}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _runs(home: Path) -> list[dg.DagsterRun]:
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    try:
        return list(instance.get_runs())
    finally:
        instance.dispose()


def _error_line(err: str) -> str:
    assert "Traceback" not in err and "Stack Trace" not in err, err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert err.rstrip().endswith(line)  # the last line, and the only one of its kind
    return line


def test_sigterm_while_the_demo_trains_fails_its_run_and_promotes_nothing(tmp_path):
    home = _home(tmp_path)
    demo = _start_demo(home)

    # Phase 1's first progress line comes from inside the candidate's learn(); a second
    # later it trains (a signal in the logging call itself was never lost).
    marker = "seed 0, phase 1:"
    out, err, children = _signal_at(demo, demo.stderr, marker, signal.SIGTERM, after_s=1.0)

    assert demo.returncode == 130, err
    line = _error_line(err)
    assert line.startswith("error: the training run (")
    assert "was interrupted by SIGTERM or SIGINT and is recorded as failed" in line
    [training] = [r for r in _runs(home) if r.job_name == "train_and_evaluate"]
    assert training.status == dg.DagsterRunStatus.FAILURE
    assert training.run_id in line
    assert not (home / "artifacts" / "models" / "registry.json").exists()  # no promotion
    assert "done in" not in out
    assert not _alive(children)


def test_sigint_while_the_demo_ingests_stops_it_before_the_next_session(tmp_path):
    home = _home(tmp_path)
    demo = _start_demo(home)

    out, err, children = _signal_at(demo, demo.stdout, "[1/4] session", signal.SIGINT)

    assert demo.returncode == 130, err
    line = _error_line(err)
    assert line.startswith("error: ") and "SIGINT" in line
    runs = _runs(home)
    assert {r.job_name for r in runs} == {"ingest_session"}  # no training
    assert "training phases" not in out and "[4/4]" not in out
    # The run the signal came in (if any) failed; none after it started.
    assert len(runs) <= 3
    assert [r.status for r in runs].count(dg.DagsterRunStatus.SUCCESS) >= len(runs) - 1
    assert all(r.status != dg.DagsterRunStatus.STARTED for r in runs)
    assert not _alive(children)
