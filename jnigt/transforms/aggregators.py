"""Asynchronous aggregators as Optax wrappers: Rennala, Malenia and the synchronised rule.

Each wrapper is a relative of ``optax.MultiSteps``: its ``update`` takes *per-agent
contributions* and accumulates them, emitting zero updates and leaving the inner state
untouched until the round's stop rule holds; then it calls the inner transformation once
with the round's aggregate and resets (SPEC section 3).

Contributions: every leaf of ``updates`` has a leading agent axis holding each agent's SUM of
gradients since the previous call, and the keyword ``counts`` (int, one per agent) says how
many gradients each sum holds. An agent whose contribution holds a non-finite value is dropped
for that call (its count treated as 0) and counted in ``state.dropped``.

With ``axis_name`` set, the leading axis is the device-local slice of agents and every global
count, rule and aggregate goes through ``jax.lax.psum`` over that axis: one small psum of the
counts on every call and exactly one psum of the gradient pytree per closed round.

    Rennala:      close when sum_i M_i >= M (M_init for the first round);
                  aggregate = (sum_i S_i) / (sum_i M_i).
    Malenia:      close when min_i M_i >= 1 and ((1/n) sum_i 1/M_i)^-1 >= M / n;
                  aggregate = (1/n) sum_i S_i / M_i.
    Synchronized: close when min_i M_i >= per_agent; aggregate = (sum_i S_i) / (sum_i M_i).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jnigt.transforms import _checks

# Relative slack on Malenia's harmonic-mean rule, so that float32 rounding in sum_i 1/M_i
# never keeps a round open that the exact rule closes (twice the slack of jnigt.timing, so
# a round the simulated clock closes always closes here too).
HARMONIC_RTOL = 2e-5


class AggregatorState(NamedTuple):
    """State of :func:`rennala`, :func:`malenia` and :func:`synchronized`.

    acc: running sums. Rennala / synchronized: one params-shaped sum over agents.
      Malenia: per-agent sums, leading axis = the (device-local) agents.
    counts: gradients accumulated towards the open round. Rennala: int32 scalar (this
      device's total); Malenia / synchronized: int32 [num_agents].
    rounds: int32, rounds closed so far.
    closed: bool, whether the last call closed a round (and stepped the inner transform).
    dropped: int32, contributions dropped so far because they held a non-finite value.
    inner_state: the inner transformation's state.
    """

    acc: optax.Updates
    counts: jax.Array
    rounds: jax.Array
    closed: jax.Array
    dropped: jax.Array
    inner_state: Any


def has_updated(state: AggregatorState) -> jax.Array:
    """Whether the last call closed a round (like ``optax.MultiSteps.has_updated``)."""
    return state.closed


def _psum(x, axis_name):
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _pooled_mean(acc, counts, axis_name):
    """Device-local term of the pooled mean: acc / (sum of all counts over the axis)."""
    total = _psum(jnp.sum(counts), axis_name)
    return jax.tree.map(lambda a: a / total.astype(a.dtype), acc)


def _device_local(tree, axis_name):
    """Mark device-local state as varying over ``axis_name`` when init runs inside shard_map.

    Keeps a ``lax.scan`` carry type-stable under shard_map's varying-axes check; outside a
    shard_map (axis unbound) the state is returned as is.
    """
    if axis_name is None:
        return tree
    try:
        return jax.lax.pcast(tree, axis_name, to="varying")
    except (NameError, ValueError):  # not inside shard_map
        return tree


def _drop_non_finite(updates, counts):
    """Zero every agent whose contribution is not finite; return (updates, counts, n_dropped)."""
    n = counts.shape[0]
    finite = jnp.ones((n,), bool)
    for leaf in jax.tree.leaves(updates):
        finite &= jnp.all(jnp.isfinite(leaf.reshape(n, -1)), axis=1)
    updates = jax.tree.map(
        lambda x: jnp.where(finite.reshape((n,) + (1,) * (x.ndim - 1)), x, jnp.zeros_like(x)), updates
    )
    counts = jnp.where(finite, counts, 0).astype(jnp.int32)
    return updates, counts, jnp.sum(~finite).astype(jnp.int32)


def _wrapper(
    inner: optax.GradientTransformation,
    *,
    per_agent_acc: bool,
    num_agents: int | None,
    close_fn: Callable,
    aggregate_fn: Callable,
    axis_name,
) -> optax.GradientTransformationExtraArgs:
    """Shared accumulate / close / reset machinery.

    close_fn(counts, rounds) -> bool (replicated across the axis);
    aggregate_fn(acc, counts) -> the device-local term whose psum is the aggregate.
    """
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        if per_agent_acc:
            acc = jax.tree.map(lambda p: jnp.zeros((num_agents,) + jnp.shape(p), jnp.result_type(p)), params)
        else:
            acc = optax.tree.zeros_like(params)
        counts_shape = () if num_agents is None else (num_agents,)
        acc, counts, dropped = _device_local(
            (acc, jnp.zeros(counts_shape, jnp.int32), jnp.zeros([], jnp.int32)), axis_name
        )
        return AggregatorState(
            acc=acc,
            counts=counts,
            rounds=jnp.zeros([], jnp.int32),
            closed=jnp.zeros([], bool),
            dropped=dropped,
            inner_state=inner.init(params),
        )

    def update_fn(updates, state, params=None, *, counts=None, **extra_args):
        _checks.check_contributions(updates, counts, num_agents)
        _checks.check_param_shapes(updates, state.acc, leading=1 if not per_agent_acc else 0)
        counts = jnp.asarray(counts)
        updates, counts, n_dropped = _drop_non_finite(updates, counts)
        if per_agent_acc:
            acc = jax.tree.map(lambda a, u: a + u.astype(a.dtype), state.acc, updates)
        else:
            acc = jax.tree.map(lambda a, u: a + jnp.sum(u, axis=0).astype(a.dtype), state.acc, updates)
        new_counts = state.counts + (jnp.sum(counts) if num_agents is None else counts)
        close = close_fn(new_counts, state.rounds)

        def emit(_):
            aggregate = _psum(aggregate_fn(acc, new_counts), axis_name)
            return inner.update(aggregate, state.inner_state, params, **extra_args)

        def wait(_):
            # fresh constants, so both branches agree on shard_map's varying-axes types
            zeros = jax.tree.map(lambda a: jnp.zeros(a.shape[1:] if per_agent_acc else a.shape, a.dtype), acc)
            return zeros, state.inner_state

        out, inner_state = jax.lax.cond(close, emit, wait, None)
        new_state = AggregatorState(
            acc=jax.tree.map(lambda a: jnp.where(close, jnp.zeros_like(a), a), acc),
            counts=jnp.where(close, jnp.zeros_like(new_counts), new_counts),
            rounds=state.rounds + close.astype(jnp.int32),
            closed=close,
            dropped=state.dropped + n_dropped,
            inner_state=inner_state,
        )
        return out, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def rennala(
    inner: optax.GradientTransformation,
    batch_size: int,
    init_batch_size: int | None = None,
    axis_name=None,
) -> optax.GradientTransformationExtraArgs:
    """Rennala aggregation: pool gradients from agents of any speed until M have arrived.

    Closes when the global count sum_i M_i >= batch_size (``init_batch_size`` for the first
    round, default ``batch_size``); the inner transformation then receives the pooled mean
    ``(sum_i S_i) / (sum_i M_i)``. ``update(updates, state, params, counts=...)``.
    The leading axis of ``updates`` may change from call to call.
    """
    batch_size = _checks.check_positive_int("batch_size", batch_size)
    init_batch_size = (
        batch_size
        if init_batch_size is None
        else _checks.check_positive_int("init_batch_size", init_batch_size)
    )
    _checks.check_axis_name(axis_name)

    def close_fn(counts, rounds):
        target = jnp.where(rounds == 0, init_batch_size, batch_size)
        return _psum(counts, axis_name) >= target

    return _wrapper(
        inner,
        per_agent_acc=False,
        num_agents=None,
        close_fn=close_fn,
        aggregate_fn=functools.partial(_pooled_mean, axis_name=axis_name),
        axis_name=axis_name,
    )


def malenia(
    inner: optax.GradientTransformation,
    batch_size: int,
    num_agents: int,
    axis_name=None,
) -> optax.GradientTransformationExtraArgs:
    """Malenia aggregation: every agent weighs the same, whatever its speed.

    Closes when every M_i >= 1 and the harmonic mean ``((1/n) sum_i 1/M_i)^-1 >= batch_size / n``
    (n = all agents, over the axis); the inner transformation receives
    ``(1/n) sum_i S_i / M_i``, unbiased for ``J = (1/n) sum_i J_i``.

    Args:
      num_agents: size of the leading agent axis of ``updates`` (device-local under axis_name).
    """
    batch_size = _checks.check_positive_int("batch_size", batch_size)
    num_agents = _checks.check_positive_int("num_agents", num_agents)
    _checks.check_axis_name(axis_name)

    def n_global():
        return num_agents if axis_name is None else num_agents * jax.lax.axis_size(axis_name)

    def close_fn(counts, rounds):
        del rounds
        inv = jnp.where(counts > 0, 1.0 / jnp.maximum(counts, 1).astype(jnp.float32), 0.0)
        zeros, inv_sum = _psum((jnp.sum(counts == 0), jnp.sum(inv)), axis_name)
        n = n_global()
        return (zeros == 0) & (inv_sum * batch_size <= n * n * (1.0 + HARMONIC_RTOL))

    def aggregate_fn(acc, counts):
        scale = 1.0 / (jnp.maximum(counts, 1).astype(jnp.float32) * n_global())
        return jax.tree.map(lambda a: jnp.tensordot(scale.astype(a.dtype), a, axes=1), acc)

    return _wrapper(
        inner,
        per_agent_acc=True,
        num_agents=num_agents,
        close_fn=close_fn,
        aggregate_fn=aggregate_fn,
        axis_name=axis_name,
    )


def synchronized(
    inner: optax.GradientTransformation,
    per_agent: int,
    num_agents: int,
    axis_name=None,
) -> optax.GradientTransformationExtraArgs:
    """Synchronous aggregation: wait until every agent has delivered ``per_agent`` gradients.

    Closes when min_i M_i >= per_agent (SPEC's choice: per_agent = ceil(M / n)); the inner
    transformation receives the pooled mean ``(sum_i S_i) / (sum_i M_i)``.

    Args:
      num_agents: size of the leading agent axis of ``updates`` (device-local under axis_name).
    """
    per_agent = _checks.check_positive_int("per_agent", per_agent)
    num_agents = _checks.check_positive_int("num_agents", num_agents)
    _checks.check_axis_name(axis_name)

    def close_fn(counts, rounds):
        del rounds
        return _psum(jnp.sum(counts < per_agent), axis_name) == 0

    return _wrapper(
        inner,
        per_agent_acc=False,
        num_agents=num_agents,
        close_fn=close_fn,
        aggregate_fn=functools.partial(_pooled_mean, axis_name=axis_name),
        axis_name=axis_name,
    )
