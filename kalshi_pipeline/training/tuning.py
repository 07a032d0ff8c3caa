"""Hyperparameter tuning with Optuna: the search space, the objective, the result file.

A trial trains the three phases (one seed, ``timesteps_per_phase`` each) with the
hyperparameters Optuna suggests, on the training views, and scores the phase-3 output on
the validation views. The holdout is never read.

* **Objective** (maximised): the lower end of the 95% BCa bootstrap interval of model
  minus always-HOLD over the validation markets, paired per market, of the phase-3 output:
  the score it was selected by
  (:class:`~kalshi_pipeline.training.validation.ValidationCallback`, read from its lineage).
  A trial that does better on average but only on a few markets scores lower than one
  that is reliably above HOLD.
* **Pruning**: every periodic validation of every phase reports that same lower end at
  the trial's cumulative timestep (:func:`pruning_step`; a phase's start is not reported:
  it is the phase before's output, reported already, or the untrained model); Optuna's
  ``MedianPruner`` stops a trial whose score is below the median of earlier trials at the
  same step (after two complete trials, never in phase 1). As rl_zoo3's
  ``TrialEvalCallback`` does, a :class:`TrialPruningCallback` stops ``learn()`` (its
  ``_on_step`` returns False) instead of raising inside it; the phase then closes its
  envs, and only then is the trial reported pruned.
* **Search space** (:func:`suggest`), around the hand-set ``default`` profile:

  ====================  ====================================  ==========================
  parameter             range                                  ``default``
  ====================  ====================================  ==========================
  learning_rate         1e-5 to 1e-3, log scale                3e-4
  n_steps               256, 512, 1024 (per env)               512
  batch_size            64, 128, 256, 512                      256
  gamma                 0.99, 0.995, 0.999                     0.995
  gae_lambda            0.9 to 0.99                            0.95
  ent_coef              0, 1e-4, 1e-3, 1e-2                    0
  net_arch              32x32, 64x64, 128x128, 64x64x64        64x64
  initial HOLD share    0.2 (SB3's uniform start) to 0.99      0.95
  ====================  ====================================  ==========================

  The initial action probabilities are the HOLD share and the rest divided as in
  ``default`` (each BUY 42% of it, each SELL 8%): exits rarer than entries.

* **The profile first**: a study's first trial is the profile's own hyperparameters
  (:func:`base_params`; when they lie in the space, as ``default``'s and ``demo``'s do),
  so the study measures what it finds against the hand-set values on the same validation
  markets, and its best is never worse there. The result file gives both. Two processes
  that open a new study at the same moment may both run it (Optuna's ``enqueue_trial``
  is not atomic): one trial spent twice, nothing wrong. The profile's trial is run again
  only when every earlier one died with its process (failed by
  :func:`~kalshi_pipeline.training.tuning_storage.fail_dead_trials` or for want of a
  heartbeat), at most :data:`PROFILE_TRIES` times in all: a trial that fails by itself
  records why (``failed_because``, its error's first line) and is not run again, so a
  profile that cannot train fails once, not at every ``tune``.

* **Storage** (:class:`~kalshi_pipeline.training.tuning_storage.Study`): an Optuna
  storage URL (``postgresql://...``, ``sqlite:///...``) or a journal file. Processes
  given the same storage and study name share the study. Connection faults are retried,
  then reported in one line naming the storage; a damaged journal is named; a trial whose
  process died is failed, not counted (:mod:`~kalshi_pipeline.training.tuning_storage`).

The result is a hyperparameter file (:func:`write_result`, the JSON of a
:class:`~kalshi_pipeline.training.tuning_result.TuningResult`): the best trial's
:class:`~kalshi_pipeline.training.config.AlgorithmConfig` with the study's figures, which
``kalshi-pipeline train --hyperparams FILE`` and the Dagster training config read
(:func:`~kalshi_pipeline.training.config.read_hyperparameters`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import optuna
from optuna.trial import TrialState
from stable_baselines3.common.callbacks import BaseCallback

from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline.training.config import AlgorithmConfig, TrainingConfig
from kalshi_pipeline.training.execution_choice import execution_settings
from kalshi_pipeline.training.files import write_json_atomically
from kalshi_pipeline.training.jobs import TrainingStopped
from kalshi_pipeline.training.lineage import read_lineage
from kalshi_pipeline.training.phases import train_phase
from kalshi_pipeline.training.tuning_result import ScoredTrial, StudySummary, TuningResult
from kalshi_pipeline.training.tuning_retry import TuningStorageError, first_line, in_chain
from kalshi_pipeline.training.tuning_storage import NO_PROCESS, PROCESS_GONE, Study, mark_process
from kalshi_pipeline.training.validation import ValidationScore

log = logging.getLogger(__name__)
NET_ARCHS = {"32x32": (32, 32), "64x64": (64, 64), "128x128": (128, 128), "64x64x64": (64,) * 3}
_BUY, _SELL = 0.42, 0.08  # of the non-HOLD probability, per BUY and per SELL action
PROFILE_TRIES = 3  # the profile's trial, run again after its process died, at most


# The search space: a (low, high) range is searched as a float (log scale for the learning
# rate), a list as a choice.
SPACE: dict[str, tuple[float, float] | list] = {
    "initial_hold_probability": (0.2, 0.99),
    "learning_rate": (1e-5, 1e-3),
    "n_steps": [256, 512, 1024],
    "batch_size": [64, 128, 256, 512],
    "gamma": [0.99, 0.995, 0.999],
    "gae_lambda": (0.9, 0.99),
    "ent_coef": [0.0, 1e-4, 1e-3, 1e-2],
    "net_arch": list(NET_ARCHS),
}


def suggest(trial: optuna.Trial, base: AlgorithmConfig) -> AlgorithmConfig:
    """``base`` with the search space's parameters as ``trial`` suggests them."""
    value = {}
    for name, space in SPACE.items():
        if isinstance(space, list):
            value[name] = trial.suggest_categorical(name, space)
        else:
            value[name] = trial.suggest_float(name, *space, log=name == "learning_rate")
    hold = value.pop("initial_hold_probability")
    rest = 1 - hold
    return replace(
        base,
        **value | {"net_arch": NET_ARCHS[value["net_arch"]]},
        initial_action_probabilities=(hold, rest * _BUY, rest * _SELL, rest * _BUY, rest * _SELL),
    )


def hyperparameters(
    trial: optuna.Trial | optuna.trial.FrozenTrial, base: AlgorithmConfig
) -> AlgorithmConfig:
    """What ``trial`` trains with: ``base`` itself for the profile's trial (its parameters
    give ``base`` up to rounding), else ``base`` with the trial's parameters."""
    fixed = trial if isinstance(trial, optuna.Trial) else optuna.trial.FixedTrial(trial.params)
    suggested = suggest(fixed, base)
    return base if trial.user_attrs.get("profile") else suggested


def base_params(base: AlgorithmConfig) -> dict | None:
    """``base`` as the search space's parameters, for a study to try first; ``None`` when
    it lies outside the space (``plan``'s n_steps of 2048, SB3's uniform start)."""
    p = base.initial_action_probabilities
    arch = [name for name, shape in NET_ARCHS.items() if shape == tuple(base.net_arch)]
    if p is None or not arch:
        return None
    params = {name: getattr(base, name, None) for name in SPACE}
    params.update(initial_hold_probability=p[0], net_arch=arch[0])
    for name, space in SPACE.items():
        inside = (
            params[name] in space
            if isinstance(space, list)
            else space[0] <= params[name] <= space[1]
        )
        if not inside:
            return None
    same = suggest(optuna.trial.FixedTrial(params), base)
    close = all(
        abs(a - b) < 1e-9 for a, b in zip(same.initial_action_probabilities, p, strict=True)
    )
    return params if close else None


def tune(
    views: Sequence[MarketSessionView],
    difficulties: Sequence[float],
    validation: Sequence[MarketSessionView],
    config: TrainingConfig,
    study: Study,
    work_dir: str | Path,
    on_progress: Callable[[str], None] | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Run ``study.trials`` trials of ``config`` (its profile's budget, one seed) with
    suggested hyperparameters; each trial trains under ``<work_dir>/trial-<n>/``.

    ``pruner`` defaults to :func:`default_pruner`."""
    if not validation:
        raise ValueError("tuning needs validation views (a validation fraction above 0)")
    config = replace(config, candidates=1)
    say = on_progress or log.info
    opened = study.open(pruner or default_pruner(config), say)
    _enqueue_profile(opened, config.hyperparameters)

    def train_trial(trial: optuna.Trial) -> float:
        trying = replace(config, hyperparameters=hyperparameters(trial, config.hyperparameters))
        if note := trying.budget_note():  # this trial's rollout may round its budget up
            say(f"trial {trial.number}: {note}")
        out = Path(work_dir) / f"trial-{trial.number}"
        model = None
        for phase in (1, 2, 3):
            pruning = TrialPruningCallback(trial, config, phase)
            parent = model.model_path if model is not None else None
            try:
                model = train_phase(
                    phase, views, difficulties, trying, out, parent,
                    validation=validation, on_validation=pruning.validated, callbacks=[pruning],
                )  # fmt: skip
            except TrainingStopped:
                if pruning.pruned_at is None:
                    raise
            if pruning.pruned_at is not None:
                low = pruning.pruned_at.low
                say(f"trial {trial.number}: pruned at phase {phase} ({low:+.3f})")
                raise optuna.TrialPruned()  # outside learn(), the phase's envs closed
        scored = read_lineage(model.model_path).selected_by_validation
        trial.set_user_attr("model_minus_hold", scored.score)
        trial.set_user_attr("ci95", [scored.low, scored.high])
        trial.set_user_attr("share_above_hold", scored.share)
        say(f"trial {trial.number}: model - HOLD on validation {scored.describe()}")
        return scored.low

    try:
        opened.optimize(_objective(train_trial), n_trials=study.trials, catch=())
    except Exception as error:
        # A storage lost mid-trial fails Optuna's own bookkeeping of the trial too (in
        # Optuna 5.1 as an UnboundLocalError): the storage's error is the one to report.
        lost = in_chain(error, TuningStorageError)
        if lost is None:
            raise
        raise lost from None
    return opened


def _objective(train: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
    """``train`` as the study's objective: the trial names its process first, and an
    error of its own (not a pruning, not its storage lost) is recorded as its
    ``failed_because`` before Optuna fails it."""

    def objective(trial: optuna.Trial) -> float:
        mark_process(trial)
        try:
            return train(trial)
        except optuna.TrialPruned:
            raise
        except Exception as error:
            if in_chain(error, TuningStorageError) is None:
                with suppress(TuningStorageError):  # the error itself is the one to raise
                    trial.set_user_attr("failed_because", first_line(error)[:500])
            raise

    return objective


def _enqueue_profile(study: optuna.Study, base: AlgorithmConfig) -> None:
    """The profile itself is scored first: tuning is measured against it (again, if each
    of its trials died with its process, up to :data:`PROFILE_TRIES` in all)."""
    first = base_params(base)
    tried = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("profile")]
    again = len(tried) < PROFILE_TRIES and all(_died(t) for t in tried)
    if first is not None and again:
        study.enqueue_trial(first, user_attrs={"profile": True})


def _died(trial: optuna.trial.FrozenTrial) -> bool:
    """The trial failed because its process died (its heartbeat stopped, its process is
    gone or it never named one), not by an error of its own."""
    why = trial.user_attrs.get("failed_because")
    dead = why is None or why == PROCESS_GONE or why.startswith(NO_PROCESS)
    return trial.state == TrialState.FAIL and dead


class TrialPruningCallback(BaseCallback):
    """Reports each validation of a trial's phase to Optuna and stops ``learn()`` when the
    pruner says so (rl_zoo3's ``TrialEvalCallback``): :meth:`validated` marks the trial
    pruned, and the next step returns False. Raising inside ``learn()`` would skip the
    phase's cleanup (a ``SubprocVecEnv``'s processes left running).

    ``pruned_at`` is the score the trial was pruned on; a phase's start is not reported
    (it is the phase before's output, reported already, or the untrained model)."""

    def __init__(self, trial: optuna.Trial, config: TrainingConfig, phase: int) -> None:
        super().__init__()
        self.trial, self.config, self.phase = trial, config, phase
        self.pruned_at: ValidationScore | None = None

    def validated(self, score: ValidationScore) -> None:
        if score.timesteps == 0 or self.pruned_at is not None:
            return
        self.trial.report(score.low, pruning_step(self.config, self.phase, score.timesteps))
        if self.trial.should_prune():
            self.pruned_at = score

    def _on_step(self) -> bool:
        return self.pruned_at is None


def default_pruner(config: TrainingConfig) -> optuna.pruners.BasePruner:
    """A ``MedianPruner`` that waits for two complete trials and never stops a trial
    during its first phase: from phase 2 on, a trial whose validation lower end is below
    the median of the earlier trials' at the same step (:func:`pruning_step`) stops."""
    return optuna.pruners.MedianPruner(
        n_startup_trials=2, n_warmup_steps=config.phase_timesteps(1) + 1
    )


def pruning_step(config: TrainingConfig, phase: int, timesteps: int) -> int:
    """The step a validation is reported at: the mark it validates (a multiple of
    ``validate_every``, the phase's budget at its end) after the earlier phases' budgets.
    Trials whose rollouts differ in length validate at other timesteps; their marks agree,
    so the pruner compares like with like."""
    every = config.validation_interval
    budget = config.phase_timesteps(phase)
    earlier = sum(config.phase_timesteps(p) for p in range(1, phase))
    return earlier + (budget if timesteps >= budget else timesteps // every * every)


def scored_trial(trial: optuna.trial.FrozenTrial) -> ScoredTrial:
    """A complete trial's number, objective, validation figures and parameters."""
    ci95 = trial.user_attrs.get("ci95")
    return ScoredTrial(
        trial=trial.number,
        objective=trial.value,
        model_minus_hold=trial.user_attrs.get("model_minus_hold"),
        ci95=None if ci95 is None else (ci95[0], ci95[1]),
        share_above_hold=trial.user_attrs.get("share_above_hold"),
        params=trial.params,
    )


def write_result(
    study: optuna.Study,
    config: TrainingConfig,
    path: str | Path,
    where: Study,
    *,
    profile: str,
) -> TuningResult:
    """The best trial as a hyperparameter file at ``path`` (JSON): its
    :class:`AlgorithmConfig`, its objective and validation figures, and the study's."""
    trials = study.get_trials(deepcopy=False)
    count = Counter(t.state for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise ValueError(f"study {study.study_name!r} has no complete trial: nothing to write")
    best = study.best_trial
    as_set = [t for t in complete if t.user_attrs.get("profile")]
    if as_set and as_set[0].value >= best.value:  # a tie keeps the hand-set values
        best = as_set[0]
    result = TuningResult(
        hyperparameters=hyperparameters(best, config.hyperparameters),
        best=scored_trial(best),
        # The profile's own hyperparameters, scored as the study's first trial.
        profile_as_set=scored_trial(as_set[0]) if as_set else None,
        study=StudySummary(
            name=study.study_name,
            storage=where.shown(),
            trials=len(trials),
            complete=count[TrialState.COMPLETE],
            pruned=count[TrialState.PRUNED],
            failed=count[TrialState.FAIL],
            running=count[TrialState.RUNNING],
            profile=profile,
            timesteps_per_phase=tuple(config.phase_timesteps(p) for p in (1, 2, 3)),
            execution=json.loads(json.dumps(execution_settings(config.env))),
        ),
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(Path(path), result.to_json())
    return result
