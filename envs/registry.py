"""Environment registry: brax's classic envs, our LQR, brax's toy 'fast' env, 'mirrored_<name>', and
'playground:<name>' (MuJoCo Playground's DM Control Suite, an optional extra: envs/playground.py)."""

from __future__ import annotations

from typing import Any

from brax.envs.base import Env

from jnigt import validate

from .heterogeneous import MirroredObservation
from .lqr import LQR
from .playground import PREFIX as PLAYGROUND_PREFIX
from .playground import make_playground_env

BRAX_ENV_NAMES = (
    "ant",
    "halfcheetah",
    "hopper",
    "humanoid",
    "inverted_pendulum",
    "inverted_double_pendulum",
    "pusher",
    "reacher",
    "walker2d",
)
BASE_ENV_NAMES = BRAX_ENV_NAMES + ("lqr", "lqr_hetero", "fast")
ENV_NAMES = BASE_ENV_NAMES + tuple(f"mirrored_{n}" for n in BASE_ENV_NAMES)
BACKENDS = ("generalized", "positional", "spring", "mjx")
# choice: the fastest classic backend on CPU (hopper, 64 envs: ~32k steps/s against ~7k for generalized)
DEFAULT_BACKEND = "spring"


def make_env(name: str, backend: str | None = None, **kwargs: Any) -> Env:
    """Build an env by name (one of ENV_NAMES).

    'lqr_hetero': HeterogeneousLQR(two_lqr_systems(**kwargs)), agent i runs LQR system i mod 2 (envs/lqr.py).
    backend: one of BACKENDS for the brax physics envs (None -> 'spring'); ignored by 'lqr' and 'fast'.
    kwargs go to the env constructor (LQR(**kwargs) or brax.envs.get_environment(name, backend=..., **kwargs)).
    'mirrored_<name>' wraps <name> in MirroredObservation (agent 0 sees (s, 0), agent 1 sees (-s, 1)).
    'playground:<name>': jnigt_envs.playground.make_playground_env (backend: MJX impl 'jax' | 'warp').
    """
    if isinstance(name, str) and name.startswith(PLAYGROUND_PREFIX):
        return make_playground_env(name, backend=backend, **kwargs)
    if not isinstance(name, str) or name not in ENV_NAMES:
        raise ValueError(
            f"unknown env name {name!r}; valid names: {', '.join(ENV_NAMES)}, "
            f"or {PLAYGROUND_PREFIX}<DM Control Suite env> (e.g. {PLAYGROUND_PREFIX}CartpoleBalance)"
        )
    if backend is not None:
        validate.one_of("backend", backend, BACKENDS)
    if name.startswith("mirrored_"):
        return MirroredObservation(make_env(name[len("mirrored_") :], backend=backend, **kwargs))
    if name == "lqr":
        return LQR(**kwargs)
    if name == "lqr_hetero":
        from .lqr import HeterogeneousLQR, two_lqr_systems

        return HeterogeneousLQR(two_lqr_systems(**kwargs))
    import brax.envs  # local: importing brax.envs is slow-ish

    if name == "fast":
        return brax.envs.get_environment("fast", **kwargs)
    return brax.envs.get_environment(name, backend=backend or DEFAULT_BACKEND, **kwargs)
