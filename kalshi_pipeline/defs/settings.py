"""Run configuration of the assets (Dagster ``Config``), defaults from the domain configs."""

import dagster as dg

from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.market.split import DEFAULT_SALT
from kalshi_pipeline.training.config import TrainingConfig, profile

_FILTERS = FilterConfig()


class FilterSettings(dg.Config):
    """Which views are fit for training (the asset checks report against these)."""

    min_episode_length: int = _FILTERS.min_episode_length
    min_coverage: float = _FILTERS.min_coverage
    min_data_quality: float = _FILTERS.min_data_quality

    def to_filter_config(self) -> FilterConfig:
        return FilterConfig(self.min_episode_length, self.min_coverage, self.min_data_quality)


class SplitSettings(dg.Config):
    holdout_fraction: float = 0.2
    salt: str = DEFAULT_SALT


class TrainingSettings(dg.Config):
    """A named training profile ("default" learns, "plan" is DESIGN.md's, "demo" is
    quick), with optional overrides."""

    profile: str = "default"
    timesteps_per_phase: int = 0  # 0: the profile's
    algorithm: str = ""  # "": the profile's
    seed: int = -1  # -1: the profile's

    def to_training_config(self) -> TrainingConfig:
        return profile(
            self.profile,
            timesteps_per_phase=self.timesteps_per_phase or None,
            algorithm=self.algorithm or None,
            seed=self.seed if self.seed >= 0 else None,
        )
