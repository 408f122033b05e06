"""What the aggregating methods (Rennala, Malenia, synchronized) share; each writes its round in its module.

A round (``round`` of the method's class, e.g. :meth:`jnigt.training.methods.malenia.Malenia.round`):
  1. the simulated clock (``close``: ``jnigt.timing``) says how many gradients each agent delivers
     before the round closes (the delay masks, as counts) and how long the round took;
  2. exactly those trajectories are sampled at the broadcast point theta~, laid out in slots
     (``pooled_layout`` / ``per_agent_layout``): the cost follows the number of arriving gradients,
     not the number of agents; slot trajectories are vmapped;
  3. :meth:`Aggregating.finish`: the contributions go through the aggregator wrapper (``rennala`` /
     ``malenia`` / ``synchronized`` around the inner optimizer); its one psum over the ``agents`` mesh
     axis is the round's AllReduce.

:meth:`Aggregating.steps` scans the rounds on every device (``jnigt.distributed.map_over_agents``); the
device axis (this device's block, the gather, the AllReduce, the per-device aggregator state) is
``jnigt.distributed``'s.

Every trajectory's key is ``fold_in(fold_in(round_key, agent), j)`` for the agent's j-th trajectory
of the round, so 1 or 8 devices sample the same trajectories and reach the same parameters.

Under ``charge="taken"`` (a trajectory costs the steps it took, docs/algorithms.md#simulated-time) the
arrivals depend on the trajectories, so steps 1-2 swap: every agent first samples ``K`` candidate
trajectories at theta~ (same keys; each device its block of agents), their step counts are gathered
into ``L [n, K]``, the arrivals are ``A_ij = sum_{l<=j} L_il h_i f_il``, the round's close rule runs on
them (``close_on``: the ``*_from_arrivals`` rounds of ``jnigt.timing``), and only each agent's first ``counts_i``
candidates are aggregated. ``K`` is ``M`` (Rennala), the plan times ``malenia_slack`` (Malenia) or
``ceil(M / n)`` (synchronized): a round samples ``n K`` trajectories.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from jnigt import distributed
from jnigt import timing as timing_lib
from jnigt.distributed import PER_DEVICE, REPLICATED
from jnigt.gradients import gpomdp
from jnigt.training.methods._common import Context, Plan, direction_norm, step_metrics
from jnigt.training.slots import slots_from_counts
from jnigt.training.state import TrainState


def slot_keys(key, agent_ids, local_ids, local_counts):
    """Key of slot s = fold_in(fold_in(key, agent_ids[s]), j), j = the slot's rank within its agent.

    ``local_ids`` index ``local_counts`` (the counts laid out by ``slots_from_counts``), so the key
    depends on the global agent and rank only: any device count samples the same trajectories.
    """
    starts = jnp.cumsum(local_counts) - local_counts
    j = jnp.arange(agent_ids.shape[0]) - jnp.take(starts, local_ids)
    return jax.vmap(lambda a, jj: jax.random.fold_in(jax.random.fold_in(key, a), jj))(agent_ids, j)


def pooled_layout(slots: int):
    """Rennala's layout: the round's gradients agent-major over ``slots * devices`` slots, each
    device taking its block of ``slots``; one segment per slot."""

    def layout(counts, key):
        ids, valid = slots_from_counts(counts, slots * distributed.devices_in_map())
        keys = slot_keys(key, ids, ids, counts)
        take = lambda x: distributed.device_block(x, slots)
        return take(ids), jnp.arange(slots), take(valid), take(keys)

    return layout


def per_agent_layout(slots: int, local_agents: int):
    """Malenia's and synchronized's layout: each device holds ``local_agents`` agents and lays out
    their gradients in ``slots``; one segment per local agent."""

    def layout(counts, key):
        local = distributed.device_block(counts, local_agents)
        seg, valid = slots_from_counts(local, slots)
        ids = seg + distributed.device_index() * local_agents
        return ids, seg, valid, slot_keys(key, ids, seg, local)

    return layout


def first_or_later(round_index, first, later, fn: Callable):
    """``fn(first)`` in round 0 and ``fn(later)`` after: the first round's size (M_init) may differ from
    the others'; a ``lax.cond`` only when it does."""
    if first == later:
        return fn(later)
    return jax.lax.cond(round_index == 0, lambda: fn(first), lambda: fn(later))


def periodic_bracket(rt, t_end: float, num_agents: int) -> tuple[float, float]:
    """The bracket of the measured ``t_end / rounds`` of a method with periodic rounds (fixed times): the
    exact clock's ``[lower, upper]`` plus the round's communication (docs/algorithms.md#theory)."""
    return rt.lower + rt.comm, rt.upper + rt.comm


def check_divides(num_agents: int, num_devices: int, method: str) -> None:
    if num_agents % num_devices:
        raise ValueError(
            f"num_agents={num_agents} must be divisible by the number of devices ({num_devices}) for {method}: "
            "each device holds a slice of the agents"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Aggregating:
    """What the aggregating methods share: init, ``steps`` (the scan of rounds, mapped over the devices),
    ``next_time``, the charge "taken" candidates and the end of a round. The method's module subclasses it
    and writes its round (``round``), its clock (``close``, ``close_on``) and its aggregator."""

    ctx: Context
    plan: Plan
    #: the error message when the clock becomes infinite
    stall_message: str
    #: segments per device: the leading axis of the contributions the aggregator sums
    contributors: int
    #: whether the first round's aggregator differs from the later rounds' (M_init != M)
    first_round_differs: bool = False

    #: rounds are stepped one at a time (AFedPG's ``advance`` runs arrivals in blocks)
    advance = None

    @property
    def mesh(self):
        return self.ctx.mesh

    @property
    def candidates(self) -> int:
        """charge "taken": candidate trajectories per agent (K); 0 = charge "horizon"."""
        return self.plan.candidates

    # ------------------------------------------------------------------ the method's (its module)
    def aggregator(self, inner, first: bool):
        """The aggregator wrapper for the first round when ``first``, else for later rounds."""
        raise NotImplementedError

    def close(self, key, round_index):
        """charge "horizon": the round of the clock (``jnigt.timing.Round``, all agents)."""
        raise NotImplementedError

    def close_on(self, arrivals, round_index):
        """charge "taken": the round closed on the candidates' arrival times ``[n, K]``."""
        raise NotImplementedError

    def round(self, carry, _):
        """One round, ``lax.scan``'s body over ``(state, this device's aggregator state)``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def _map(self, fn, in_specs, out_specs):
        return distributed.map_over_agents(fn, self.ctx.mesh, in_specs, out_specs, self.ctx.use_pmap)

    def init(self, params, key, inner, place, obs_stats=None):
        wrapper = self.aggregator(inner, False)
        init = self._map(lambda p: (wrapper.init(p),), in_specs=(REPLICATED,), out_specs=(PER_DEVICE,))
        # replicated over the mesh from the start: the chunk's outputs have this sharding, so the
        # second chunk does not recompile, and with several processes these are global arrays
        params, key = place((params, key))
        (opt_state,) = jax.jit(init)(params)
        return params, opt_state, {}, key

    def inner_state(self, opt_state):
        return distributed.first_device(opt_state)

    def next_time(self, state: TrainState):
        if self.candidates:  # the round's arrivals need its candidate trajectories: sample them again

            def device_time(st):
                _, k_time, k_traj = jax.random.split(st.key, 3)
                rnd = self.sample_candidates(st, k_time, k_traj)[0]
                return (st.time + rnd.duration + rnd.comm,)

            (t,) = self._map(device_time, in_specs=(REPLICATED,), out_specs=(REPLICATED,))(
                state._replace(opt_state=None)
            )
            return t
        _, k_time, _ = jax.random.split(state.key, 3)
        rnd = self.close(k_time, state.round)
        return state.time + rnd.duration + rnd.comm

    def sample_candidates(self, st: TrainState, k_time, k_traj):
        """charge "taken": this device's ``la = ceil(n / d)`` agents sample ``K`` candidates each at theta~;
        the round closes (``close_on``) on the gathered step counts. Returns (Round, trajectory gradients
        [la K], segments = local agent, valid = among the agent's first counts_i)."""
        n, k = self.ctx.config.num_agents, self.candidates
        d = distributed.devices_in_map()
        la = -(-n // d)
        ids = jnp.repeat(distributed.device_index() * la + jnp.arange(la), k)
        j = jnp.tile(jnp.arange(k), la)
        keys = jax.vmap(lambda a, jj: jax.random.fold_in(jax.random.fold_in(k_traj, a), jj))(ids, j)
        real = ids < n  # padding agents (n not divisible by d) sample agent n-1's and are masked
        tg = self.ctx.trajectory_gradients(st.params, keys, jnp.minimum(ids, n - 1), st.obs_stats)
        steps = distributed.gather_blocks(tg.steps.reshape(la, k))[:n]
        arrivals = timing_lib.arrival_times(self.ctx.timing, self.ctx.config.horizon, k_time, k, steps=steps)
        rnd = self.close_on(arrivals, st.round)
        local = distributed.device_block(jnp.pad(rnd.counts, (0, d * la - n)), la)
        seg = jnp.repeat(jnp.arange(la), k)
        return rnd, tg, seg, real & (j < local[seg])

    def finish(self, st: TrainState, opt_state, key, rnd, tg, seg, valid):
        """The end of a round: the contributions (per segment) through the aggregator, the server step,
        the AllReduce of the round's counts, the new state and the round's metrics."""
        pg = gpomdp.sum_per_segment(tg, seg, valid, self.contributors)
        dropped_before = opt_state.dropped

        def update(first):
            wrapper = self.aggregator(self.ctx.inner, first)
            return wrapper.update(pg.grad_sums, opt_state, st.params, counts=pg.counts)

        upd, opt_state = first_or_later(st.round, self.first_round_differs, False, update)
        params = optax.apply_updates(st.params, upd)
        steps, ret_sum, n_ret, dropped = distributed.all_reduce(
            (
                pg.env_steps,
                jnp.sum(jnp.where(valid, tg.ret, 0.0)),
                jnp.sum(valid).astype(jnp.float32),
                opt_state.dropped - dropped_before,
            )
        )
        closed = opt_state.closed
        st = st._replace(
            params=params,
            key=key,
            time=st.time + rnd.duration + rnd.comm,
            round=st.round + 1,
            env_steps=st.env_steps + steps,
            comms=st.comms + closed.astype(jnp.int32),
        )
        metrics = step_metrics(
            st,
            used=jnp.sum(rnd.counts) - dropped,
            dropped=dropped,
            wasted=rnd.wasted,
            closed=closed,
            norm=direction_norm(opt_state.inner_state, upd),
            train_return=ret_sum / jnp.maximum(n_ret, 1.0),
        )
        return (st, opt_state), metrics

    def server_update(self, grads, opt_state, params, counts, round_index):
        """The aggregator's update on one contribution outside a round (the Ray learner): ``grads`` and
        ``counts`` per agent ``[n, ...]``, ``opt_state`` as :meth:`init` lays it out."""

        def device(grads, opt_state, params, counts, round_index):
            def update(first):
                wrapper = self.aggregator(self.ctx.inner, first)
                return wrapper.update(grads, opt_state, params, counts=counts)

            return first_or_later(round_index, self.first_round_differs, False, update)

        split = P(distributed.AXIS)  # a leading agent axis, one block per device
        specs = (split, PER_DEVICE, REPLICATED, split, REPLICATED)
        return self._map(device, in_specs=specs, out_specs=(REPLICATED, PER_DEVICE))(
            grads, opt_state, params, counts, round_index
        )

    def steps(self, state: TrainState, length: int):
        def device_steps(st, opt_state):
            (st, opt_state), metrics = jax.lax.scan(self.round, (st, opt_state), None, length=length)
            return st, opt_state, metrics

        mapped = self._map(
            device_steps, in_specs=(REPLICATED, PER_DEVICE), out_specs=(REPLICATED, PER_DEVICE, REPLICATED)
        )
        new_state, opt_state, metrics = mapped(state._replace(opt_state=None), state.opt_state)
        return new_state._replace(opt_state=opt_state), metrics
