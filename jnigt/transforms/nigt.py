"""NIGT: normalised gradient descent with momentum and implicit gradient transport.

See docs/algorithms.md#nigt. Written for a loss ``f = -J`` (gradients arrive with the sign of the loss)::

    d_0         = g_0                                  (gradient at theta_0)
    d_t         = (1 - eta) d_{t-1} + eta g_t          (t >= 1, g_t taken at theta~_t)
    Delta_{t+1} = -alpha_t d_t / ||d_t||               (0 when ||d_t|| = 0)
    theta_{t+1} = theta_t + Delta_{t+1}
    theta~_{t+1} = theta_{t+1} + c Delta_{t+1},        c = (1 - eta) / eta

The parameters the caller holds are the evaluation point ``theta~``; the update
returned is ``theta~_{t+1} - theta~_t = (1 + c) Delta_{t+1} - c Delta_t``.
``nigt_eval_params(params, state)`` recovers ``theta_t = theta~_t - c Delta_t``,
the point to evaluate and deploy (compare ``optax.contrib.schedule_free_eval_params``).

``||d_t||`` is :func:`overflow_safe_norm`: where the sum of squares overflows float32 (entries above
about 1.8e19) but every entry is finite, ``d_t / ||d_t||`` is computed as ``(d_t / m) / ||d_t / m||``
with ``m = max |d_t|``, so a huge but finite direction still moves the parameters by alpha; wherever
the plain norm is finite the numbers are exactly those of the plain formula.

``learning_rate`` and ``momentum`` may be JAX scalars or traced values, so ``nigt`` composes with
``optax.inject_hyperparams`` and ``jax.vmap`` over step sizes. When eta changes from step to step
(a momentum schedule), the update uses ``c_{t+1}`` for the new step and the stored ``c_t`` for the
old one, so ``theta~_t = theta_t + c_t Delta_t`` holds at every t.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jnigt.transforms import _checks


class NigtState(NamedTuple):
    """State of :func:`nigt`.

    count: int32, number of updates applied so far (t).
    delta: last step ``Delta_t = theta_t - theta_{t-1}`` (zeros before the first step).
    momentum_buffer: ``d_{t-1}``.
    transport: float32 ``c_t = (1 - eta) / eta`` of the last step, kept so that the state alone
      recovers theta_t.
    """

    count: jax.Array
    delta: optax.Updates
    momentum_buffer: optax.Updates
    transport: jax.Array


def _rescaled(tree, plain):
    """``(big, m, tree / m, ||tree / m||)`` with ``m = max |x|``: ``big`` where ``plain`` (the plain norm)
    is non-finite although every entry is finite and nonzero somewhere (an overflow of the squares)."""
    m = optax.tree.norm(tree, ord="inf")
    big = ~jnp.isfinite(plain) & jnp.isfinite(m) & (m > 0)
    m = jnp.where(big, m, 1.0)
    scaled = jax.tree.map(lambda x: (x / m).astype(x.dtype), tree)
    return big, m, scaled, optax.tree.norm(scaled)


def overflow_safe_norm(tree) -> jax.Array:
    """The L2 norm of a pytree without float32 overflow.

    Equals ``optax.tree.norm(tree)`` bit for bit wherever that is finite; where it is not although
    every entry is finite (the sum of squares overflowed), ``m * ||tree / m||`` with ``m = max |x|``
    (still inf if the norm itself exceeds the float32 range). NaN or inf entries give the plain result.
    """
    plain = optax.tree.norm(tree)
    big, m, _, scaled_norm = _rescaled(tree, plain)
    return jnp.where(big, m * scaled_norm, plain)


def nigt(learning_rate: optax.ScalarOrSchedule, momentum: float) -> optax.GradientTransformation:
    """Normalised policy gradient with momentum and implicit gradient transport.

    Args:
      learning_rate: alpha > 0: a Python / NumPy / JAX scalar (traced values allowed), or an optax
        schedule ``step -> alpha_t``.
      momentum: eta in (0, 1] (a scalar, traced values allowed); ``momentum=1`` is plain normalised
        SGD (no extrapolation).

    Returns:
      An ``optax.GradientTransformation`` whose update maps loss gradients taken at
      ``theta~_t`` (the caller's params) to ``theta~_{t+1} - theta~_t``.
    """
    learning_rate = _checks.learning_rate(learning_rate)
    eta = _checks.momentum(momentum)
    c = (1.0 - eta) / eta  # a Python float, or a tracer under inject_hyperparams / vmap

    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return NigtState(
            count=jnp.zeros([], jnp.int32),
            delta=zeros,
            momentum_buffer=zeros,
            transport=jnp.asarray(c, jnp.float32),
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.state(state, NigtState, "nigt")
        _checks.same_tree("updates", updates, state.momentum_buffer, "the params given to init")
        _checks.float_leaves("updates", updates)
        first = state.count == 0
        d = jax.tree.map(
            lambda g, m: jnp.where(first, g, (1.0 - eta) * m + eta * g).astype(g.dtype),
            updates,
            state.momentum_buffer,
        )
        norm = optax.tree.norm(d)
        alpha = learning_rate(state.count) if callable(learning_rate) else learning_rate
        scale = jnp.where(norm > 0, -alpha / jnp.where(norm > 0, norm, 1.0), 0.0)
        # the sum of squares overflowed (entries finite): the same direction from d / max|d|
        big, _, scaled, scaled_norm = _rescaled(d, norm)
        big_scale = -alpha / jnp.where(big, scaled_norm, 1.0)
        new_delta = jax.tree.map(
            lambda x, xs: jnp.where(big, big_scale * xs, scale * x).astype(x.dtype), d, scaled
        )
        c_old = state.transport
        out = jax.tree.map(
            lambda new, old: ((1.0 + c) * new - c_old * old).astype(new.dtype), new_delta, state.delta
        )
        new_state = NigtState(
            count=optax.safe_increment(state.count),
            delta=new_delta,
            momentum_buffer=d,
            transport=jnp.asarray(c, jnp.float32),
        )
        return out, new_state

    return optax.GradientTransformation(init_fn, update_fn)


def find_nigt_state(state: Any) -> NigtState | None:
    """The NigtState inside ``state`` (nigt's own, or in any wrapper or chain), or None.

    Raises ValueError if there is more than one.
    """
    found = [
        leaf
        for leaf in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, NigtState))
        if isinstance(leaf, NigtState)
    ]
    if len(found) > 1:
        raise ValueError(f"state must contain at most one NigtState (found {len(found)})")
    return found[0] if found else None


def nigt_eval_params(params: optax.Params, state: Any) -> optax.Params:
    """Recover ``theta_t = theta~_t - c * Delta_t`` from the caller's params and the state.

    ``state`` may be the state of ``nigt`` itself or of any wrapper or chain around it
    (``rennala(nigt(...))``, ``optax.chain(..., nigt(...))``).
    """
    s = find_nigt_state(state)
    if s is None:
        raise ValueError(
            "state must contain a NigtState; pass the state of nigt(...) or of a wrapper/chain around it"
        )
    _checks.same_tree("params", params, s.delta, "the params nigt was initialised with")
    return jax.tree.map(lambda p, dl: (p - s.transport * dl).astype(p.dtype), params, s.delta)
