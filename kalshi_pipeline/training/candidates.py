"""Seed candidates: a phase trained with K seeds in parallel processes, the best kept.

One seed can end a phase tying always-HOLD (docs/learning.md: the policy can stop buying
before it has seen what the liquid markets pay); another seed on the same data learns.
So a phase with ``config.candidates`` K > 1 trains K candidates, seeds ``seed``, ``seed +
1``, ..., ``seed + K - 1``, each from the same parent, each a complete phase of its own
(:func:`kalshi_pipeline.training.phases.train_phase`, with its best checkpoint by
validation), in ``config.candidate_workers`` processes (0: one per CPU core, at most K).
The candidate whose output has the highest lower end of its validation interval of model
minus HOLD wins, of equal lower ends the one with the smaller mean (the rank each
candidate's own best checkpoint was chosen by:
:func:`~kalshi_pipeline.training.validation.validation_rank`); ties go to the lower seed.
The holdout plays no part. The lower end first, not the mean: the best of K noisy means
favours the luckiest candidate, and on a store with no signal that is a model that trades
on noise. When no candidate beats HOLD beyond noise, the selection says so.

Layout under ``<out>``::

    candidates/seed-<s>/phase<N>/   each candidate, as a one-seed run writes it
    phase<N>/model.zip              the winner's model (``PPO.load()`` as ever)
    phase<N>/model.json             its lineage, plus ``candidates`` (every candidate's seed,
                                    validation score, interval and share, the timesteps
                                    of its output)
                                    and ``selection`` (why the winner won)
    phase<N>/progress.csv, validation.csv   the winner's learning curves

The next phase's candidates all start from the winner. Each candidate trains exactly as a
one-seed run with its seed would (same process settings, one torch thread), so the result
does not depend on how many processes ran them. A killed run resumes each unfinished
candidate from its checkpoints; finished candidates are not trained again. A candidate's
process (and the one that carries its progress lines) ends within a second of the run's
process, however that was killed (SIGKILL too): left running, a candidate would go on
writing its directory beside the resumed run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace
from multiprocessing.managers import SyncManager
from pathlib import Path

from kalshi_pipeline.training.algorithms import MODEL_FILE
from kalshi_pipeline.training.config import TrainingConfig
from kalshi_pipeline.training.files import write_json_atomically
from kalshi_pipeline.training.fingerprint import CANDIDATES_DIR, training_fingerprint
from kalshi_pipeline.training.jobs import PhaseJob, PhaseResult
from kalshi_pipeline.training.lineage import LINEAGE_FILE, CandidateResult, read_lineage
from kalshi_pipeline.training.phases import run_phase
from kalshi_pipeline.training.stages import open_phase, record_fingerprint
from kalshi_pipeline.training.validation import validation_rank

_COPIED = ("progress.csv", "validation.csv")  # the winner's curves, beside its model


def candidate_seeds(config: TrainingConfig) -> list[int]:
    return [config.seed + k for k in range(config.candidates)]


def candidate_dir(out_dir: str | Path, seed: int) -> Path:
    """Where the candidate of ``seed`` writes its phases (``<dir>/phase<N>/``)."""
    return Path(out_dir) / CANDIDATES_DIR / f"seed-{seed}"


def train_candidates(
    job: PhaseJob, *, on_progress: Callable[[str], None] | None = None
) -> PhaseResult:
    """Train ``job`` into ``<out_dir>/phase<N>/``: one seed (``config.candidates`` 1,
    exactly :func:`~kalshi_pipeline.training.phases.run_phase`) or the best of K
    candidates by validation, trained in parallel processes. ``on_progress`` gets every
    candidate's progress lines, each starting with its seed.

    The three steps (:func:`prepare_phase`, :func:`train_candidate` per seed,
    :func:`select_candidate`) are public: Dagster runs each candidate as a step of its own.
    """
    if job.config.candidates == 1:
        return run_phase(job, on_progress=on_progress)
    done = prepare_phase(job)
    if done is not None:
        return done
    jobs = {seed: candidate_job(job, seed) for seed in candidate_seeds(job.config)}
    results = _run_in_processes(jobs, job.config.candidate_workers, on_progress)
    return select_candidate(job.phase, job.config, job.out_dir, job.parent, results)


def prepare_phase(job: PhaseJob) -> PhaseResult | None:
    """Before any candidate trains: a phase's setup
    (:func:`~kalshi_pipeline.training.stages.open_phase`: refuse a directory of another
    job or a parent of other hyperparameters), then record the phase's fingerprint (it
    guards the phase once a candidate has a checkpoint); the finished phase if it is done
    already."""
    config = job.config
    if config.candidates > 1 and not job.validation:
        raise ValueError(
            f"{config.candidates} seed candidates need validation views to choose among "
            "them (a validation fraction above 0, or one candidate)"
        )
    fingerprint = training_fingerprint(job.views, config, job.validation)
    done = open_phase(job.phase, job.directory, config, job.parent, fingerprint)
    if done is None:
        record_fingerprint(job.directory, fingerprint)
    return done


def train_candidate(
    job: PhaseJob, seed: int, on_progress: Callable[[str], None] | None = None
) -> PhaseResult:
    """The candidate of ``seed``: a one-seed phase into :func:`candidate_dir` (with one
    candidate, the phase itself, into ``<out_dir>/phase<N>/``)."""
    return run_phase(candidate_job(job, seed), on_progress=on_progress)


def candidate_job(job: PhaseJob, seed: int) -> PhaseJob:
    """The phase of the candidate of ``seed``: one seed, into :func:`candidate_dir` (with
    one candidate, ``job`` itself)."""
    if job.config.candidates == 1:
        return job
    return replace(
        job,
        config=replace(job.config, seed=seed, candidates=1),
        out_dir=candidate_dir(job.out_dir, seed),
    )


def _run_in_processes(
    jobs: dict[int, PhaseJob], workers: int, on_progress: Callable[[str], None] | None
) -> dict[int, PhaseResult]:
    """Each job in a process of its own (``forkserver``: no thread or lock of this
    process is inherited); progress lines come back through a queue."""
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_end_with, initargs=(os.getpid(),)
    )
    manager = SyncManager(ctx=context)  # the progress queue's server: it ends with us too
    manager.start(_end_with, (os.getpid(),))
    with manager, pool:
        lines = manager.Queue() if on_progress is not None else None
        pending = {pool.submit(_train_one, seed, job, lines): seed for seed, job in jobs.items()}
        results = {}
        while pending:
            done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            _drain(lines, on_progress)
            for future in done:
                seed = pending.pop(future)
                results[seed] = future.result()  # a candidate's error is the phase's
        _drain(lines, on_progress)
    return results


def _end_with(owner: int) -> None:
    """End this worker process when ``owner`` (the run's process) is gone, killed even by
    SIGKILL, which gives it no chance to stop its workers."""

    def watch() -> None:
        while _alive(owner):
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-the-run", daemon=True).start()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (on Linux a zombie, killed but not yet reaped, does not)."""
    if not Path("/proc/self/stat").exists():  # no procfs: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _train_one(seed: int, job: PhaseJob, lines) -> PhaseResult:
    report = None
    if lines is not None:

        def report(line: str) -> None:
            lines.put(f"seed {seed}, {line}")

    return run_phase(job, on_progress=report)


def _drain(lines, on_progress: Callable[[str], None] | None) -> None:
    while lines is not None:
        try:
            on_progress(lines.get_nowait())
        except queue.Empty:
            return


def select_candidate(
    phase: int,
    config: TrainingConfig,
    out_dir: str | Path,
    parent: Path | None,
    results: dict[int, PhaseResult],
) -> PhaseResult:
    """Copy the best candidate into ``<out_dir>/phase<N>/`` with a lineage naming every
    candidate and why the winner won (one candidate: it is the phase already)."""
    out = Path(out_dir) / f"phase{phase}"
    if config.candidates == 1:
        (only,) = results.values()
        return only
    candidates = [candidate_result(seed, results[seed]) for seed in sorted(results)]
    winner = max(candidates, key=lambda c: (*validation_rank(c.validation), -c.seed))
    lineage = read_lineage(winner.model).with_candidates(
        winner, candidates, selection_reason(winner, candidates), config, parent
    )
    source = winner.model.parent
    for name in _COPIED:
        if (source / name).exists():
            shutil.copyfile(source / name, out / name)
    write_json_atomically(out / LINEAGE_FILE, lineage.to_json())
    partial = out / "model.partial.zip"
    shutil.copyfile(source / MODEL_FILE, partial)
    partial.replace(out / MODEL_FILE)  # last: a model.zip always has its lineage
    return PhaseResult(phase=phase, model_path=out / MODEL_FILE, timesteps=lineage.timesteps)


def candidate_result(seed: int, result: PhaseResult) -> CandidateResult:
    """A trained candidate as its lineage scores it (the output its validation kept)."""
    chosen = read_lineage(result.model_path).selected_by_validation
    return CandidateResult(seed=seed, validation=chosen, model=result.model_path)


def selection_reason(winner: CandidateResult, candidates: Sequence[CandidateResult]) -> str:
    """One sentence: which seed won, on what score, against which others."""
    others = ", ".join(
        f"seed {c.seed} {c.validation.score:+.3f} "
        f"[{c.validation.low:+.3f}, {c.validation.high:+.3f}]"
        for c in candidates
        if c is not winner
    )
    won = winner.validation
    verdict = "" if won.low > 0 else "; no candidate beat always-HOLD beyond noise on validation"
    return (
        f"seed {winner.seed}: the highest lower end on validation of "
        f"{len(candidates)} candidates (model - HOLD {won.score:+.3f} [{won.low:+.3f}, "
        f"{won.high:+.3f}] per validation market, {won.share:.0%} of them above "
        f"HOLD; others: {others}){verdict}"
    )
