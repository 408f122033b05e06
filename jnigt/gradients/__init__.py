"""Policies and GPOMDP policy-gradient estimators."""

from .gpomdp import (
    PolicyGradient,
    TrajectoryGradient,
    gpomdp_gradient,
    reset_env,
    rollout,
    sum_per_segment,
    trajectory_gradient,
)
from .obs_norm import OBS_NORMS, ObsStats, initial_stats, normalise
from .policy import GaussianPolicy, make_policy

__all__ = [
    "GaussianPolicy",
    "make_policy",
    "TrajectoryGradient",
    "PolicyGradient",
    "trajectory_gradient",
    "gpomdp_gradient",
    "rollout",
    "reset_env",
    "sum_per_segment",
    "OBS_NORMS",
    "ObsStats",
    "initial_stats",
    "normalise",
]
