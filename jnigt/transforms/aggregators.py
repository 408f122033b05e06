"""Asynchronous aggregators as Optax wrappers: Rennala, Malenia and the synchronised rule.

Each wrapper is a relative of ``optax.MultiSteps``: its ``update`` takes *per-agent
contributions* and accumulates them, emitting zero updates and leaving the inner state
untouched until the round's stop rule (:mod:`jnigt.rules`) holds; then it calls the inner
transformation once with the round's aggregate and resets. See docs/algorithms.md#rennala,
docs/algorithms.md#malenia and docs/algorithms.md#synchronized.

Contributions: every leaf of ``updates`` has a leading agent axis holding each agent's SUM of
gradients since the previous call, and the keyword ``counts`` (int, one per agent) says how
many gradients each sum holds. An agent whose contribution holds a non-finite value is dropped
for that call (its count treated as 0); ``state.dropped`` counts the dropped *gradients* (the
dropped contributions' counts), the same unit as ``counts``, for every aggregator.
Optax wrappers that fall back on the incoming updates (``optax.apply_if_finite``,
``conditionally_transform``, ``conditionally_mask``) go inside, around ``inner``
(``rennala(optax.apply_if_finite(inner, k), M)``): around an aggregator their fallback has the
contributions' agent axis and the aggregate has not, which ``lax.cond`` refuses at the first update
(:func:`check_not_wrapped` says so from ``opt.init(params)``, as ``AggregatorTrainState`` does).

Agents that only send non-finite values (Malenia, synchronized): ``state.starved[i]`` counts the
consecutive calls in which agent i sent a non-finite contribution while another active agent sent
a finite one (reset by its next finite, non-empty contribution). Such an agent keeps every Malenia
or synchronized round open. ``malenia(..., drop_after=k)`` drops it from the objective after k
such calls (``state.active[i]`` becomes False: it leaves n in the rule and the mean, its later
contributions are ignored and counted as dropped); with ``drop_after=None`` (the default) nothing
is dropped and the caller should stop with an error: :func:`starved_agents` lists the agents that
starved for ``patience`` calls, :func:`inactive_agents` the dropped ones.

With ``axis_name`` set, the leading axis is the device-local slice of agents and every global
count, rule and aggregate goes through a collective over that axis: a few scalar collectives on
every call and exactly one psum of the gradient pytree per closed round.

    Rennala:      close when sum_i M_i >= M (M_init for the first round);
                  aggregate = (sum_i S_i) / (sum_i M_i).
    Malenia:      close when min_i M_i >= 1 and ((1/n) sum_i 1/M_i)^-1 >= M / n (active agents);
                  aggregate = (1/n) sum_i S_i / M_i.
    Synchronized: close when min_i M_i >= per_agent; aggregate = (sum_i S_i) / (sum_i M_i).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnigt import rules, validate
from jnigt.transforms import _checks

_INT32_MAX = np.iinfo(np.int32).max


class AggregatorState(NamedTuple):
    """State of :func:`rennala`, :func:`malenia` and :func:`synchronized`.

    acc: running sums. Rennala / synchronized: one params-shaped sum over agents.
      Malenia: per-agent sums, leading axis = the (device-local) agents.
    counts: gradients accumulated towards the open round. Rennala: int32 scalar (this
      device's total); Malenia / synchronized: int32 [num_agents].
    rounds: int32, rounds closed so far.
    closed: bool, whether the last call closed a round (and stepped the inner transform).
    dropped: int32, gradients dropped so far: non-finite contributions' counts, and everything
      a dropped agent sent to the open round or after it was dropped. Every delivered gradient
      is either in a closed round, in ``counts`` or in ``dropped``.
    starved: int32 [num_agents], per agent, consecutive calls with a non-finite contribution
      while another active agent sent a finite one. Rennala: the scalar -1 (its agent axis may
      change from call to call, so it keeps no per-agent state).
    active: bool [num_agents], False for agents dropped by ``drop_after``. Rennala: scalar True.
    inner_state: the inner transformation's state.
    """

    acc: optax.Updates
    counts: jax.Array
    rounds: jax.Array
    closed: jax.Array
    dropped: jax.Array
    starved: jax.Array
    active: jax.Array
    inner_state: Any


def has_updated(state: AggregatorState) -> jax.Array:
    """Whether the last call closed a round (like ``optax.MultiSteps.has_updated``)."""
    _checks.state(state, AggregatorState, "has_updated: the aggregator")
    return state.closed


def find_aggregator_state(state: Any) -> AggregatorState | None:
    """The AggregatorState inside ``state`` (itself, or inside a wrapper or chain), or None."""
    found = [
        leaf
        for leaf in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, AggregatorState))
        if isinstance(leaf, AggregatorState)
    ]
    if len(found) > 1:
        raise ValueError(f"state must contain at most one AggregatorState (found {len(found)})")
    return found[0] if found else None


#: optax wrappers that fall back on (or accumulate) the incoming updates, by the state their init returns
_FALLBACK_WRAPPERS = {
    optax.ApplyIfFiniteState: "optax.apply_if_finite",
    optax.ConditionallyTransformState: "optax.conditionally_transform",
    optax.ConditionallyMaskState: "optax.conditionally_mask",
    optax.MultiStepsState: "optax.MultiSteps",
}


def check_not_wrapped(state: Any) -> None:
    """Refuse an optimizer state in which an aggregator sits inside ``optax.apply_if_finite``,
    ``conditionally_transform``, ``conditionally_mask`` or ``MultiSteps``, recognised from the state
    the wrapper's ``init`` returns (its inner state holds an :class:`AggregatorState`).

    Those wrappers fall back on the incoming updates, which carry the contributions' agent axis, where
    the aggregator returns params-shaped updates (``lax.cond`` refuses the pair at the first update;
    ``MultiSteps`` averages contributions whose counts it cannot see). They go inside, around ``inner``.
    Plain Python on the tree's structure: call it on ``opt.init(params)`` (``AggregatorTrainState`` does).
    """
    wrapped = lambda x: type(x) in _FALLBACK_WRAPPERS
    for node in jax.tree.leaves(state, is_leaf=wrapped):
        if wrapped(node) and find_aggregator_state(tuple(node)) is not None:
            name = _FALLBACK_WRAPPERS[type(node)]
            raise TypeError(
                f"{name} cannot wrap a jnigt aggregator (its fallback keeps the contributions' agent axis, "
                f"the aggregate has none): put it inside, around the inner optimizer, e.g. "
                f"jnigt.rennala({name}(inner, ...), batch_size); the aggregator already drops non-finite agents"
            )


def _host_agent_field(state, field: str, caller: str) -> np.ndarray:
    agg = find_aggregator_state(state)
    if agg is None:
        raise TypeError(
            f"{caller}: state must be (or contain) the AggregatorState of rennala/malenia/synchronized"
        )
    x = getattr(agg, field)
    if isinstance(x, jax.Array) and not x.is_fully_addressable:  # sharded over several processes
        from jax.experimental import multihost_utils

        x = multihost_utils.process_allgather(x, tiled=True)
    # a leading device axis (one row per device, as the training loop keeps it) flattens to global agent order
    return np.asarray(jax.device_get(x)).reshape(-1)


def starved_agents(state: Any, patience: int) -> list[int]:
    """Host side: the agents that sent only non-finite contributions for ``patience`` consecutive calls
    (while others sent finite ones), in global agent order. Always ``[]`` for Rennala.

    ``state`` may carry a leading device axis (``[devices, local_agents]`` flattens to global ids).
    Call it between jitted chunks and stop (or opt in to ``malenia(..., drop_after=k)``) when it is
    not empty: a Malenia or synchronized round cannot close while such an agent is active.
    """
    patience = validate.integer("patience", patience)
    starved = _host_agent_field(state, "starved", "starved_agents")
    active = _host_agent_field(state, "active", "starved_agents")
    return [int(i) for i in np.flatnonzero((starved >= patience) & active)]


def inactive_agents(state: Any) -> list[int]:
    """Host side: the agents dropped from the objective by ``malenia(..., drop_after=k)``."""
    return [int(i) for i in np.flatnonzero(~_host_agent_field(state, "active", "inactive_agents"))]


def _collective(op, x, axis_name):
    return x if axis_name is None else op(x, axis_name)


_psum = functools.partial(_collective, jax.lax.psum)
_pmin = functools.partial(_collective, jax.lax.pmin)


def _pooled_mean(acc, counts, active, axis_name):
    """Device-local term of the pooled mean: acc / (sum of all counts over the axis)."""
    del active
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


def _finite_rows(updates, n):
    finite = jnp.ones((n,), bool)
    for leaf in jax.tree.leaves(updates):
        finite &= jnp.all(jnp.isfinite(leaf.reshape(n, -1)), axis=1)
    return finite


def _rows(mask, x):
    return mask.reshape(mask.shape + (1,) * (x.ndim - 1))


def _wrapper(
    inner: optax.GradientTransformation,
    *,
    name: str,
    per_agent_acc: bool,
    num_agents: int | None,
    close_fn: Callable,
    aggregate_fn: Callable,
    axis_name,
    drop_after: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Shared accumulate / close / reset machinery.

    close_fn(counts, rounds, active) -> bool (replicated across the axis);
    aggregate_fn(acc, counts, active) -> the device-local term whose psum is the aggregate.
    """
    _checks.inner_transformation(inner)
    inner = optax.with_extra_args_support(inner)
    per_agent = num_agents is not None

    def init_fn(params):
        if not jax.tree.leaves(params):
            raise ValueError(f"{name}.init: params must be a non-empty pytree of arrays")
        if per_agent_acc:
            acc = jax.tree.map(lambda p: jnp.zeros((num_agents,) + jnp.shape(p), jnp.result_type(p)), params)
        else:
            acc = optax.tree.zeros_like(params)
        # Rennala keeps no per-agent state: scalar placeholders (orbax cannot save zero-size arrays)
        agents = (num_agents,) if per_agent else ()
        acc, counts, dropped, starved, active = _device_local(
            (
                acc,
                jnp.zeros(agents, jnp.int32),
                jnp.zeros([], jnp.int32),
                jnp.full(agents, 0 if per_agent else -1, jnp.int32),
                jnp.ones(agents, bool),
            ),
            axis_name,
        )
        return AggregatorState(
            acc=acc,
            counts=counts,
            rounds=jnp.zeros([], jnp.int32),
            closed=jnp.zeros([], bool),
            dropped=dropped,
            starved=starved,
            active=active,
            inner_state=inner.init(params),
        )

    def update_fn(updates, state, params=None, *, counts=None, **extra_args):
        _checks.state(state, AggregatorState, name)
        n = _checks.contributions(updates, counts, num_agents)
        reference = state.acc
        if per_agent_acc:
            reference = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), state.acc)
        _checks.same_tree("updates", updates, reference, "the params given to init", leading=1)
        counts = jnp.asarray(counts).astype(jnp.int32)
        finite = _finite_rows(updates, n)
        use = finite & state.active if per_agent else finite
        starved, active = state.starved, state.active
        if per_agent:
            good = use & (counts > 0)
            any_good = _psum(jnp.sum(good), axis_name) > 0
            starving = ~finite & state.active & any_good
            starved = jnp.where(good, 0, starved + starving.astype(jnp.int32))
            if drop_after is not None:
                active = active & (starved < drop_after)
        n_dropped = jnp.sum(jnp.where(use, 0, counts)).astype(jnp.int32)
        updates = jax.tree.map(lambda x: jnp.where(_rows(use, x), x, jnp.zeros_like(x)), updates)
        counts = jnp.where(use, counts, 0)
        if per_agent_acc:
            acc = jax.tree.map(lambda a, u: a + u.astype(a.dtype), state.acc, updates)
        else:
            acc = jax.tree.map(lambda a, u: a + jnp.sum(u, axis=0).astype(a.dtype), state.acc, updates)
        new_counts = state.counts + (counts if per_agent else jnp.sum(counts))
        if drop_after is not None:
            # an agent dropped now leaves the open round too: what it sent earlier in the round is dropped
            n_dropped += jnp.sum(jnp.where(active, 0, new_counts)).astype(jnp.int32)
            acc = jax.tree.map(lambda a: jnp.where(_rows(active, a), a, jnp.zeros_like(a)), acc)
            new_counts = jnp.where(active, new_counts, 0)
        close = close_fn(new_counts, state.rounds, active)

        def emit(_):
            aggregate = _psum(aggregate_fn(acc, new_counts, active), axis_name)
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
            starved=starved,
            active=active,
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
    The leading axis of ``updates`` may change from call to call. See docs/algorithms.md#rennala.
    """
    batch_size = validate.integer("batch_size", batch_size)
    init_batch_size = validate.optional_integer("init_batch_size", init_batch_size)
    init_batch_size = batch_size if init_batch_size is None else init_batch_size
    _checks.axis_name(axis_name)

    def close_fn(counts, rounds, active):
        del active
        target = jnp.where(rounds == 0, init_batch_size, batch_size)
        return rules.rennala_ready(_psum(counts, axis_name), target)

    return _wrapper(
        inner,
        name="rennala",
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
    drop_after: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Malenia aggregation: every agent weighs the same, whatever its speed.

    Closes when every M_i >= 1 and the harmonic mean ``((1/n) sum_i 1/M_i)^-1 >= batch_size / n``
    (:func:`jnigt.rules.malenia_ready`; n = the active agents, over the axis); the inner
    transformation receives ``(1/n) sum_i S_i / M_i``, unbiased for ``J = (1/n) sum_i J_i``.
    See docs/algorithms.md#malenia.

    Args:
      num_agents: size of the leading agent axis of ``updates`` (device-local under axis_name).
      drop_after: None (default): never drop an agent; an agent that only sends non-finite values
        then keeps every round open (watch :func:`starved_agents`). An int k >= 1: after k
        consecutive calls in which an agent sent a non-finite contribution while another agent sent
        a finite one, the agent is dropped from the objective for good (``state.active``; see
        :func:`inactive_agents`): J becomes the mean over the remaining agents. The last active
        agent is never dropped.
    """
    batch_size = validate.integer("batch_size", batch_size)
    num_agents = validate.integer("num_agents", num_agents)
    drop_after = validate.optional_integer("drop_after", drop_after)
    _checks.axis_name(axis_name)

    def close_fn(counts, rounds, active):
        del rounds
        inv = jnp.where(active & (counts > 0), 1.0 / jnp.maximum(counts, 1).astype(jnp.float32), 0.0)
        n_active, inv_sum = _psum((jnp.sum(active).astype(jnp.int32), jnp.sum(inv)), axis_name)
        min_count = _pmin(jnp.min(jnp.where(active, counts, _INT32_MAX)), axis_name)
        ready = rules.malenia_ready(inv_sum, min_count, n_active, batch_size, rtol=2 * rules.HARMONIC_RTOL)
        return (n_active > 0) & ready

    def aggregate_fn(acc, counts, active):
        n_active = _psum(jnp.sum(active).astype(jnp.float32), axis_name)
        scale = jnp.where(active, 1.0 / (jnp.maximum(counts, 1).astype(jnp.float32) * n_active), 0.0)
        return jax.tree.map(lambda a: jnp.tensordot(scale.astype(a.dtype), a, axes=1), acc)

    return _wrapper(
        inner,
        name="malenia",
        per_agent_acc=True,
        num_agents=num_agents,
        close_fn=close_fn,
        aggregate_fn=aggregate_fn,
        axis_name=axis_name,
        drop_after=drop_after,
    )


def synchronized(
    inner: optax.GradientTransformation,
    per_agent: int,
    num_agents: int,
    axis_name=None,
) -> optax.GradientTransformationExtraArgs:
    """Synchronous aggregation: wait until every agent has delivered ``per_agent`` gradients.

    Closes when min_i M_i >= per_agent (:func:`jnigt.rules.synchronized_ready`; the paper's
    choice is per_agent = ceil(M / n)); the inner transformation receives the pooled mean
    ``(sum_i S_i) / (sum_i M_i)``. See docs/algorithms.md#synchronized.

    Args:
      num_agents: size of the leading agent axis of ``updates`` (device-local under axis_name).
    """
    per_agent = validate.integer("per_agent", per_agent)
    num_agents = validate.integer("num_agents", num_agents)
    _checks.axis_name(axis_name)

    def close_fn(counts, rounds, active):
        del rounds, active
        return rules.synchronized_ready(_pmin(jnp.min(counts), axis_name), per_agent)

    return _wrapper(
        inner,
        name="synchronized",
        per_agent_acc=False,
        num_agents=num_agents,
        close_fn=close_fn,
        aggregate_fn=functools.partial(_pooled_mean, axis_name=axis_name),
        axis_name=axis_name,
    )
