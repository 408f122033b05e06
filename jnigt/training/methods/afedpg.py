"""AFedPG (docs/algorithms.md#afedpg): fully asynchronous, one server step per arriving gradient.

A step is one arrival: the clock (``jnigt.timing.afedpg_next``) names the agent whose trajectory
finishes first; its gradient is taken at the stale point it last received, the server optimizer
steps once, and the agent gets the new point. The server aggregates each single arrival with
``rennala(inner, batch_size=1)``: the aggregate of one gradient is that gradient, and the
aggregator's non-finite filter drops a NaN gradient (the server is left untouched). No collective:
one device per process runs it, replicated.

Under ``charge="taken"`` (docs/algorithms.md#simulated-time) an agent's finish time depends on the
trajectory it runs, so the agent samples it when it (re)starts, at the point it just received: the
state keeps each agent's pending gradient, steps and return (:class:`AfedpgTakenState`) instead of
its stale point, and ``next_finish_i = start + L h_i f + kappa_i``. The server clock is the same as
under "horizon" when no episode ends early; the trajectories' keys differ (the restart's, not the
arrival's), so the parameters do.

Along the known schedule (charge "horizon", no jitter: ``block > 0``): the equal-time runner calls
:meth:`Afedpg.advance_in_blocks`, which samples the gradients of a block of arrivals in one vmapped batch
(:meth:`Afedpg.fill`, same keys and stale points) and then applies their server steps one arrival at a
time. ``steps`` (``Trainer.step``, ``run_chunk``, ``train()``), charge "taken" and jitter stay one
trajectory per arrival (docs/algorithms.md#afedpg).

Predicted time per server update: ``jnigt.theory.afedpg_update_time`` ``1/S``, uploads included; by a
horizon ``T`` the measured ``T / N(T)`` lies in ``[1/S, T / (T S - n))``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jnigt import theory
from jnigt import timing as timing_lib
from jnigt.distributed import process_mesh
from jnigt.gradients import gpomdp
from jnigt.training.methods._common import Context, Plan, direction_norm, step_metrics
from jnigt.training.state import TrainState
from jnigt.transforms import rennala

LABEL = "AFedPG"
#: its name in jnigt.theory (Table 1 / Theorems 4.4 and 5.1)
THEORY_NAME = "afedpg"
#: a step is one arrival: one gradient per step (comparisons give it rounds x batch_size steps)
BATCHES = False
WAITS_FOR_EVERY_AGENT = False
STARVED_HINT = None
TRACED_TIMES = "clock in the trace; block size B from trainer.config's times (any B: same numbers)"


def _on_schedule(t) -> bool:
    """Whether the clock depends on neither the gradients nor the seed (charge "horizon", no jitter), so
    that arrivals can be sampled in blocks along the schedule."""
    return t.charge == "horizon" and t.jitter == 0


def plan(config, num_devices: int, clock=None) -> Plan:
    """One trajectory per arrival; along a known schedule the gradients of a block of
    ``jnigt.timing.afedpg_block_size`` arrivals are sampled in one batch, so that many slots."""
    t = None if clock is None else clock()
    if t is None or not _on_schedule(t):
        return Plan(slots=1)
    return Plan(slots=timing_lib.afedpg_block_size(t, config.horizon))


def aggregator(inner, config=None, local_agents: int = 1, axis_name=None, first: bool = False):
    """The server: ``rennala(inner, batch_size=1)``, the aggregate of one gradient is that gradient and
    the non-finite filter drops a NaN one."""
    return rennala(inner, 1)


def trajectories_per_round(batch_size: int, num_agents: int) -> int:
    return 1


def round_time(c, kappa, batch_size) -> theory.RoundTime:
    theory.round_inputs(c, kappa, batch_size)
    t = theory.afedpg_update_time(c, kappa)
    return theory.RoundTime(t, 0.0, t, t, True)


def fixed_step_time(c, kappa, batch_size) -> float:
    """Time per server update with fixed costs ``c``: the steady ``jnigt.theory.afedpg_update_time``
    (uploads included), exact in the limit of many arrivals."""
    theory.round_inputs(c, kappa, batch_size)
    return theory.afedpg_update_time(c, kappa)


def bracket_at(rt: theory.RoundTime, t_end: float, num_agents: int) -> tuple[float, float]:
    """By ``t_end``: ``T S - n < N <= T S`` with ``S = 1 / rt.compute`` (:func:`jnigt.theory.afedpg_update_time`)."""
    slack = t_end / rt.compute - num_agents
    return rt.lower + rt.comm, t_end / slack if slack > 0 else math.inf


class AfedpgState(NamedTuple):
    """stale: per-agent points ``[n, ...]`` (the point each agent computes its gradient at).
    next_finish: float32 ``[n]``, the clock (``jnigt.timing.AfedpgClock``)."""

    stale: Any
    next_finish: jax.Array


class AfedpgBuffer(NamedTuple):
    """The next arrivals' gradients, sampled in one batch (:meth:`Afedpg.fill`): slot ``j < filled`` of
    ``grad [B, ...]``, ``steps [B]``, ``ret [B]`` is the j-th arrival after the fill; ``used`` are done."""

    grad: Any
    steps: jax.Array
    ret: jax.Array
    used: jax.Array
    filled: jax.Array


class AfedpgTakenState(NamedTuple):
    """charge "taken": per agent ``[n, ...]`` the gradient, steps and return of the trajectory it is running
    (sampled at the point it last received); next_finish: float32 ``[n]``, the clock."""

    grad: Any
    steps: jax.Array
    ret: jax.Array
    next_finish: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Afedpg:
    ctx: Context
    mesh: jax.sharding.Mesh
    #: B, the arrivals :meth:`advance` samples in one batch (0: one at a time; charge "taken", jitter)
    block: int = 0
    stall_message: str = "the simulated clock became infinite: every agent is dead"

    @staticmethod
    def server(inner):
        return aggregator(inner)

    @property
    def taken(self) -> bool:
        return self.ctx.timing.charge == "taken"

    def init(self, params, key, inner, place, obs_stats=None):
        c = self.ctx.config
        key, ck = jax.random.split(key)
        if self.taken:  # every agent starts its first trajectory at theta_0
            key, tk = jax.random.split(key)
            agents = jnp.arange(c.num_agents)
            keys = jax.vmap(lambda a: jax.random.fold_in(tk, a))(agents)
            tg = self.ctx.trajectory_gradients(params, keys, agents, obs_stats)
            clock = timing_lib.afedpg_init(self.ctx.timing, c.horizon, ck, steps=tg.steps)
            method_state = AfedpgTakenState(tg.grad, tg.steps, tg.ret, clock.next_finish)
            return place((params, self.server(inner).init(params), method_state, key))
        clock = timing_lib.afedpg_init(self.ctx.timing, c.horizon, ck)
        stale = jax.tree.map(lambda p: jnp.broadcast_to(p, (c.num_agents,) + p.shape), params)
        return place((params, self.server(inner).init(params), AfedpgState(stale, clock.next_finish), key))

    def inner_state(self, opt_state):
        return opt_state

    def _next(self, state: TrainState):
        key, k_time, k_traj = jax.random.split(state.key, 3)
        agent, t, clock, _ = timing_lib.afedpg_next(
            self.ctx.timing, self.ctx.config.horizon, timing_lib.AfedpgClock(state.method.next_finish), k_time
        )
        return key, k_traj, agent, t, clock

    def next_time(self, state: TrainState):
        # the server's update time, as jnigt.timing.afedpg_next reports it (monotone over arrivals)
        if self.taken:
            return jnp.min(state.method.next_finish)
        return self._next(state)[3]

    def server_update(self, grads, opt_state, params, counts, round_index=None):
        """The server's optax update on a contribution (``grads`` with a leading agent axis, ``counts``
        per row; one gradient closes the round): ``(updates, opt_state)``. The simulated arrivals and the
        Ray learner both step through it."""
        del round_index
        return self.server(self.ctx.inner).update(grads, opt_state, params, counts=counts)

    def _server_step(self, st: TrainState, grad):
        """One server update on one gradient (no agent axis): (params, opt_state, update, dropped)."""
        upd, opt_state = self.server_update(
            jax.tree.map(lambda g: g[None], grad), st.opt_state, st.params, jnp.ones((1,), jnp.int32)
        )
        return optax.apply_updates(st.params, upd), opt_state, upd, opt_state.dropped - st.opt_state.dropped

    def _advance(self, st: TrainState, params, opt_state, upd, dropped, *, key, t, steps, ret, method):
        """The state after an arrival at server time ``t`` and the step's metrics."""
        st = st._replace(
            params=params,
            opt_state=opt_state,
            key=key,
            time=t,
            round=st.round + 1,
            env_steps=st.env_steps + steps,
            comms=st.comms + 1,
            method=method,
        )
        metrics = step_metrics(
            st,
            used=1 - dropped,
            dropped=dropped,
            wasted=0.0,
            closed=opt_state.closed,
            norm=direction_norm(opt_state.inner_state, upd),
            train_return=ret,
        )
        return st, metrics

    def _arrival_taken(self, st: TrainState, _):
        c, nf = self.ctx.config, st.method.next_finish
        key, k_time, k_traj = jax.random.split(st.key, 3)
        agent = jnp.argmin(nf).astype(jnp.int32)
        pend = st.method
        params, opt_state, upd, dropped = self._server_step(st, jax.tree.map(lambda g: g[agent], pend.grad))
        # the agent restarts at the new point: its next trajectory decides its next finish
        tg = gpomdp.trajectory_gradient(
            self.ctx.policy, self.ctx.env, params, k_traj, agent, c.horizon, c.discount, st.obs_stats
        )
        _, t, clock, _ = timing_lib.afedpg_next(
            self.ctx.timing, c.horizon, timing_lib.AfedpgClock(nf), k_time, steps=tg.steps
        )
        method = AfedpgTakenState(
            jax.tree.map(lambda s, g: s.at[agent].set(g), pend.grad, tg.grad),
            pend.steps.at[agent].set(tg.steps),
            pend.ret.at[agent].set(tg.ret),
            clock.next_finish,
        )
        return self._advance(
            st,
            params,
            opt_state,
            upd,
            dropped,
            key=key,
            t=t,
            steps=pend.steps[agent],
            ret=pend.ret[agent],
            method=method,
        )

    def _arrival(self, st: TrainState, _):
        c = self.ctx.config
        key, k_traj, agent, t, clock = self._next(st)
        point = jax.tree.map(lambda s: s[agent], st.method.stale)
        tg = gpomdp.trajectory_gradient(
            self.ctx.policy, self.ctx.env, point, k_traj, agent, c.horizon, c.discount, st.obs_stats
        )
        params, opt_state, upd, dropped = self._server_step(st, tg.grad)
        stale = jax.tree.map(lambda s, p: s.at[agent].set(p), st.method.stale, params)
        return self._advance(
            st,
            params,
            opt_state,
            upd,
            dropped,
            key=key,
            t=t,
            steps=tg.steps,
            ret=tg.ret,
            method=AfedpgState(stale, clock.next_finish),
        )

    def steps(self, state: TrainState, length: int):
        return jax.lax.scan(self._arrival_taken if self.taken else self._arrival, state, None, length=length)

    def fill(self, st: TrainState) -> AfedpgBuffer:
        """Samples, in one batch, the gradients of the next arrivals whose starting points are known now.

        The clock runs ``block`` arrivals ahead with ``_arrival``'s keys (``state.key`` split in three per
        arrival, the trajectory's key last). The block is the longest prefix of them whose agents are all
        different: each of those agents computes at the point it holds now, ``stale[agent]`` (an agent
        arriving twice would start its second trajectory at a point the block's server steps have not
        made yet). So slot j holds the gradient ``_arrival`` samples at the j-th arrival from ``st``.
        """
        m, c = st.method, self.ctx.config

        def ahead(carry, _):
            key, nf = carry
            key, k_time, k_traj = jax.random.split(key, 3)
            agent, _, clock, _ = timing_lib.afedpg_next(
                self.ctx.timing, c.horizon, timing_lib.AfedpgClock(nf), k_time
            )
            return (key, clock.next_finish), (agent, k_traj)

        _, (agents, keys) = jax.lax.scan(ahead, (st.key, m.next_finish), None, length=self.block)
        again = jnp.any(jnp.tril(agents[:, None] == agents[None, :], -1), axis=1)
        filled = jnp.argmax(jnp.append(again, True)).astype(jnp.int32)
        points = jax.tree.map(lambda s: s[agents], m.stale)
        tg = jax.vmap(
            lambda p, k, a: gpomdp.trajectory_gradient(
                self.ctx.policy, self.ctx.env, p, k, a, c.horizon, c.discount, st.obs_stats
            )
        )(points, keys, agents)
        return AfedpgBuffer(tg.grad, tg.steps, tg.ret, jnp.zeros([], jnp.int32), filled)

    def _pop(self, st: TrainState, buf: AfedpgBuffer):
        """``_arrival`` with the gradient of slot ``buf.used`` instead of a new trajectory."""
        key, _, agent, t, clock = self._next(st)
        params, opt_state, upd, dropped = self._server_step(st, jax.tree.map(lambda g: g[buf.used], buf.grad))
        stale = jax.tree.map(lambda s, p: s.at[agent].set(p), st.method.stale, params)
        return self._advance(
            st,
            params,
            opt_state,
            upd,
            dropped,
            key=key,
            t=t,
            steps=buf.steps[buf.used],
            ret=buf.ret[buf.used],
            method=AfedpgState(stale, clock.next_finish),
        )

    @property
    def advance(self):
        """:meth:`advance_in_blocks` when ``block > 0``, else None (the caller steps one arrival at a time)."""
        return self.advance_in_blocks if self.block else None

    def advance_in_blocks(self, state: TrainState, carry, more, record):
        """Arrivals while ``more(state, carry)``, ``carry = record(carry, metrics, old, new)`` after each
        (``old``/``new``: the state before and after the arrival); returns
        ``(state, carry)``: the arrivals, keys and numbers of ``steps`` (one arrival at a time).

        An outer loop samples a block (:meth:`fill`), an inner one applies its server steps in order while
        ``more`` holds, so the environment work is one batch per block, also under ``vmap`` (a batched
        ``more`` masks the loops; it does not refill on every arrival). The buffer lives in the loop only:
        each call starts with a fill, and the rest of a block cut by ``more`` is sampled again by the next.
        """

        def pop(c):
            st, buf, x = c
            new, m = self._pop(st, buf)
            return new, buf._replace(used=buf.used + 1), record(x, m, st, new)

        def block(c):
            st, _, x = c
            return jax.lax.while_loop(
                lambda c: (c[1].used < c[1].filled) & more(c[0], c[2]), pop, (st, self.fill(st), x)
            )

        empty = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(self.fill, state))
        state, _, carry = jax.lax.while_loop(lambda c: more(c[0], c[2]), block, (state, empty, carry))
        return state, carry


def build(ctx: Context, plan: Plan) -> Afedpg:
    mesh = process_mesh()
    block = plan.slots if _on_schedule(ctx.timing) else 0  # the block the memory estimate planned for
    return Afedpg(ctx=dataclasses.replace(ctx, mesh=mesh), mesh=mesh, block=block)
