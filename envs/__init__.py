"""Environments for jnigt (installed as the package ``jnigt_envs``)."""

from .heterogeneous import SCALE_KEYS, MirroredObservation, PerAgentPhysics, random_physics
from .lqr import LQR, HeterogeneousLQR, linear_policy_to_wbs, two_lqr_systems, wbs_to_linear_policy_params
from .registry import BACKENDS, ENV_NAMES, make_env

__all__ = [
    "make_env",
    "ENV_NAMES",
    "BACKENDS",
    "LQR",
    "HeterogeneousLQR",
    "two_lqr_systems",
    "linear_policy_to_wbs",
    "wbs_to_linear_policy_params",
    "MirroredObservation",
    "PerAgentPhysics",
    "random_physics",
    "SCALE_KEYS",
]
