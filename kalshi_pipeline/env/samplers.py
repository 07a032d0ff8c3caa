"""View samplers: which view the next episode plays, chosen inside the env's ``reset()``.

SB3's vectorised envs reset a finished episode by calling ``reset()`` with no options, so
the choice cannot ride on reset options: the env asks its sampler. Samplers hold no
random state of their own; they draw from the generator the env passes in (the env's
``np_random``, seeded per worker by ``reset(seed=...)``), so each worker of a
``SubprocVecEnv`` has its own stream and the same seed gives the same sequence of views.
Callbacks change a sampler through ``env_method``/``set_attr`` (``set_stage``, or
``set_sampler`` on the env).

Every sampler counts the episodes it has started per view (``episode_counts``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ViewSampler:
    """Base: chooses view indices in ``range(n_views)`` and counts episodes per view."""

    def __init__(self, n_views: int) -> None:
        if n_views <= 0:
            raise ValueError("a sampler needs at least one view")
        self.n_views = n_views
        self.episode_counts = np.zeros(n_views, dtype=np.int64)

    def restart(self) -> None:
        """Forget the episodes played (the env calls this when ``reset`` gets a seed, so
        the same seed replays the same sequence of views). A curriculum keeps its stage."""
        self.episode_counts[:] = 0

    def next_index(self, rng: np.random.Generator) -> int:
        index = int(self._choose(rng))
        self.episode_counts[index] += 1
        return index

    def _choose(self, rng: np.random.Generator) -> int:
        raise NotImplementedError


class SequentialSampler(ViewSampler):
    """Views in order, ``episodes_per_view`` episodes each, then around again."""

    def __init__(self, n_views: int, episodes_per_view: int = 1) -> None:
        super().__init__(n_views)
        if episodes_per_view < 1:
            raise ValueError(f"episodes_per_view must be at least 1, not {episodes_per_view}")
        self.episodes_per_view = episodes_per_view
        self._started = 0

    def restart(self) -> None:
        super().restart()
        self._started = 0

    def _choose(self, rng: np.random.Generator) -> int:
        index = (self._started // self.episodes_per_view) % self.n_views
        self._started += 1
        return index


class BalancedSampler(ViewSampler):
    """Weights each view by 1 / (1 + episodes it has had): under-played views come first.

    ``extra_weight`` (per view, default 0) adds weight on top, e.g. for views where the
    agent does worst (phase 3).
    """

    def __init__(self, n_views: int, extra_weight: Sequence[float] | None = None) -> None:
        super().__init__(n_views)
        self.set_extra_weight(np.zeros(n_views) if extra_weight is None else extra_weight)

    def set_extra_weight(self, extra_weight: Sequence[float]) -> None:
        weights = np.asarray(extra_weight, dtype=np.float64)
        if weights.shape != (self.n_views,) or (weights < 0).any():
            raise ValueError(f"extra_weight needs {self.n_views} non-negative numbers")
        self.extra_weight = weights

    def _choose(self, rng: np.random.Generator) -> int:
        weights = 1.0 / (1.0 + self.episode_counts) + self.extra_weight
        return int(rng.choice(self.n_views, p=weights / weights.sum()))


class CurriculumSampler(ViewSampler):
    """Easy to hard: stage ``s`` of ``stages`` plays the ``s``-th band of views by difficulty.

    Views are ranked by difficulty (ties by index) and cut into ``stages`` equal bands;
    stage 0 is the easiest 20% with the default 5 stages. From stage 1 on, a share
    ``revisit_fraction`` of episodes goes to a view of an earlier (easier) band, so easy
    views are not forgotten. The stage advances by :meth:`set_stage` (a training callback)
    or, with ``episodes_per_stage``, by itself.
    """

    def __init__(
        self,
        difficulties: Sequence[float],
        stages: int = 5,
        revisit_fraction: float = 0.2,
        episodes_per_stage: int | None = None,
    ) -> None:
        super().__init__(len(difficulties))
        _check_fraction("revisit_fraction", revisit_fraction)
        order = np.lexsort((np.arange(len(difficulties)), np.asarray(difficulties)))
        self.stages = min(stages, len(difficulties))
        self.bands = np.array_split(order, self.stages)
        self.revisit_fraction = revisit_fraction
        self.episodes_per_stage = episodes_per_stage
        self.stage = 0
        self._in_stage = 0

    def set_stage(self, stage: int) -> None:
        self.stage = int(np.clip(stage, 0, self.stages - 1))
        self._in_stage = 0

    def restart(self) -> None:
        super().restart()
        self._in_stage = 0

    def _choose(self, rng: np.random.Generator) -> int:
        if self.episodes_per_stage and self._in_stage >= self.episodes_per_stage:
            self.set_stage(self.stage + 1)
        self._in_stage += 1
        if self.stage > 0 and rng.random() < self.revisit_fraction:
            easier = np.concatenate(self.bands[: self.stage])
            return int(easier[rng.integers(len(easier))])
        band = self.bands[self.stage]
        return int(band[rng.integers(len(band))])


class HybridSampler(ViewSampler):
    """A curriculum, with a share ``balanced_fraction`` of episodes drawn balanced."""

    def __init__(
        self,
        difficulties: Sequence[float],
        balanced_fraction: float = 0.3,
        **curriculum_options,
    ) -> None:
        super().__init__(len(difficulties))
        _check_fraction("balanced_fraction", balanced_fraction)
        self.curriculum = CurriculumSampler(difficulties, **curriculum_options)
        self.balanced = BalancedSampler(len(difficulties))
        # One count per episode, whichever part chose it; the balanced part weighs by it.
        self.balanced.episode_counts = self.curriculum.episode_counts = self.episode_counts
        self.balanced_fraction = balanced_fraction

    def set_stage(self, stage: int) -> None:
        self.curriculum.set_stage(stage)

    def restart(self) -> None:
        self.curriculum.restart()  # clears the shared counts too

    @property
    def stage(self) -> int:
        return self.curriculum.stage

    def _choose(self, rng: np.random.Generator) -> int:
        part = self.balanced if rng.random() < self.balanced_fraction else self.curriculum
        return part._choose(rng)


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within [0, 1], not {value}")
