"""Gaussian policies (docs/algorithms.md#gpomdp).

    u ~ N(mu_theta(s), diag(std_theta(s)^2)),   action = action_scale * tanh(u)

mu comes from an MLP (default 2 x 64 tanh units); std = softplus(raw) + min_std where raw is either a second
head of the MLP (``state_dependent_std=True``) or a learned state-independent vector. ``log_prob`` is the
Gaussian log-density of the pre-squash sample u (as in the paper), summed over action dimensions.

With ``hidden_sizes=()`` the mean is linear, mu = W s + b, and with ``action_scale=None`` there is no squash
(action = u): the linear-Gaussian policy for which the LQR objective is known in closed form.

``fixed_std``: a constant exploration std instead of a learned one (no std parameters, so the gradient is
over the mean's parameters only); ``mean_init="zeros"`` starts the mean's last layer at zero (the linear
policy then starts at W = 0, b = 0). Both are used by the exact LQR studies (jnigt/experiments/lqr_exact.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jnigt import validate

Params = Any

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "swish": jax.nn.swish,
    "silu": jax.nn.silu,
}

_LOG_2PI = math.log(2.0 * math.pi)
#: Initialisers of the mean layer's kernel (``GaussianPolicy.mean_init``).
MEAN_INITS = ("lecun_normal", "zeros")


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class _GaussianMLP(nn.Module):
    """Flax module returning (mu, raw_std)."""

    action_size: int
    hidden_sizes: tuple[int, ...]
    activation: str
    state_dependent_std: bool
    raw_std_init: float
    learned_std: bool = True
    zero_mean_init: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        act = _ACTIVATIONS[self.activation]
        x = obs
        for i, width in enumerate(self.hidden_sizes):
            x = act(nn.Dense(width, name=f"hidden_{i}")(x))
        if self.zero_mean_init:
            mu = nn.Dense(self.action_size, kernel_init=nn.initializers.zeros, name="mean")(x)
        else:
            mu = nn.Dense(self.action_size, name="mean")(x)
        if not self.learned_std:
            return mu, None
        if self.state_dependent_std:
            raw = nn.Dense(
                self.action_size,
                kernel_init=nn.initializers.zeros,
                bias_init=nn.initializers.constant(self.raw_std_init),
                name="std",
            )(x)
        else:
            raw = self.param("raw_std", nn.initializers.constant(self.raw_std_init), (self.action_size,))
            raw = jnp.broadcast_to(raw, mu.shape)
        return mu, raw


@dataclasses.dataclass(frozen=True)
class GaussianPolicy:
    """Gaussian policy u ~ N(mu(s), std(s)^2), action = action_scale * tanh(u) (or u if action_scale is None).

    Hashable (usable as a static jit argument). Params are a plain dict pytree ``{'params': {...}}``.
    Layers: ``hidden_i`` (Dense), ``mean`` (Dense, so mu = kernel^T h + bias), ``std`` (Dense head) or
    ``raw_std`` (vector) when ``state_dependent_std=False``; std = softplus(raw) + min_std.
    With ``fixed_std`` set, std = fixed_std everywhere and there is no std layer or vector
    (``state_dependent_std``, ``min_std`` and ``init_std`` are then unused). ``mean_init``: the kernel
    initialiser of the ``mean`` layer, "lecun_normal" (flax's default) or "zeros" (bias is zero either way).
    """

    obs_size: int
    action_size: int
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    action_scale: float | None = 1.0
    state_dependent_std: bool = True
    min_std: float = 1e-3
    init_std: float = 1.0
    fixed_std: float | None = None
    mean_init: str = "lecun_normal"

    def __post_init__(self):
        """Check every field (jnigt.validate) and store NumPy scalars and lists as Python ones."""
        checks = {
            "obs_size": validate.integer,
            "action_size": validate.integer,
            "hidden_sizes": validate.integers,
            "activation": partial(validate.one_of, allowed=sorted(_ACTIVATIONS)),
            "action_scale": validate.optional_positive,
            "state_dependent_std": validate.flag,
            "min_std": partial(validate.real, low=0.0),
            "init_std": validate.positive,
            "fixed_std": validate.optional_positive,
            "mean_init": partial(validate.one_of, allowed=MEAN_INITS),
        }
        for name, check in checks.items():
            object.__setattr__(self, name, check(name, getattr(self, name)))
        if self.init_std <= self.min_std:
            raise ValueError(f"init_std must be > min_std={self.min_std}, got {self.init_std!r}")

    # ------------------------------------------------------------------ internals
    @property
    def module(self) -> _GaussianMLP:
        return _GaussianMLP(
            action_size=self.action_size,
            hidden_sizes=self.hidden_sizes,
            activation=self.activation,
            state_dependent_std=self.state_dependent_std,
            raw_std_init=_inverse_softplus(float(self.init_std) - float(self.min_std)),
            learned_std=self.fixed_std is None,
            zero_mean_init=self.mean_init == "zeros",
        )

    def raw_std_to_std(self, raw: jax.Array) -> jax.Array:
        """std = softplus(raw) + min_std."""
        return jax.nn.softplus(raw) + self.min_std

    def std_to_raw_std(self, std: jax.Array) -> jax.Array:
        """Inverse of ``raw_std_to_std`` (std must exceed min_std)."""
        y = jnp.asarray(std) - self.min_std
        return y + jnp.log(-jnp.expm1(-y))

    def distribution(self, params: Params, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mu, std) of the pre-squash Gaussian at obs (any leading batch shape)."""
        mu, raw = self.module.apply(params, obs)
        if self.fixed_std is not None:
            return mu, jnp.full_like(mu, self.fixed_std)
        return mu, self.raw_std_to_std(raw)

    def squash(self, u: jax.Array) -> jax.Array:
        """action = action_scale * tanh(u), or u when action_scale is None."""
        if self.action_scale is None:
            return u
        return self.action_scale * jnp.tanh(u)

    # ------------------------------------------------------------------ public API
    def init(self, key: jax.Array) -> Params:
        """Fresh parameters (a plain dict pytree)."""
        return self.module.init(key, jnp.zeros((self.obs_size,), jnp.float32))

    def sample(self, params: Params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(action, u) with u = mu + std * eps, eps ~ N(0, I)."""
        mu, std = self.distribution(params, obs)
        u = mu + std * jax.random.normal(key, mu.shape, mu.dtype)
        return self.squash(u), u

    def log_prob(self, params: Params, obs: jax.Array, u: jax.Array) -> jax.Array:
        """log N(u; mu(obs), diag(std^2)) summed over the last (action) axis."""
        mu, std = self.distribution(params, obs)
        z = (u - mu) / std
        return jnp.sum(-0.5 * z * z - jnp.log(std) - 0.5 * _LOG_2PI, axis=-1)

    def mean_action(self, params: Params, obs: jax.Array) -> jax.Array:
        """Deterministic evaluation action squash(mu(obs))."""
        mu, _ = self.module.apply(params, obs)
        return self.squash(mu)


def make_policy(env: Any, **kwargs: Any) -> GaussianPolicy:
    """GaussianPolicy sized for a Brax-style env (reads env.observation_size / env.action_size)."""
    if not hasattr(env, "observation_size") or not hasattr(env, "action_size"):
        raise TypeError(f"env must have observation_size and action_size, got {type(env).__name__}")
    for k in ("obs_size", "action_size"):
        if k in kwargs:
            raise ValueError(f"{k} is read from env; do not pass it to make_policy")
    return GaussianPolicy(
        obs_size=env.observation_size,
        action_size=env.action_size,
        **kwargs,
    )
