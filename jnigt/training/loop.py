"""One training loop for every method: simulated asynchronous rounds inside one jitted ``lax.scan``.

A round (Rennala, Malenia, synchronized):
  1. the simulated clock (``jnigt.timing``) says how many gradients each agent delivers before the
     round closes (the delay masks, as counts) and how long the round took;
  2. exactly those trajectories are sampled at the broadcast point theta~, laid out in slots
     (``slots_from_counts``): the cost follows the number of arriving gradients, not the number of
     agents; slot trajectories are vmapped;
  3. the contributions go through the aggregator wrapper (``rennala`` / ``malenia`` /
     ``synchronized`` around the inner optimizer); its one psum over the ``agents`` mesh axis is the
     round's AllReduce.
AFedPG (``method="afedpg"``) instead scans over single arrivals: the arriving agent's gradient is
taken at the stale point it received, the server optimizer steps once, the agent gets the new point.

Every trajectory's key is ``fold_in(fold_in(round_key, agent), j)`` for agent's j-th trajectory of
the round, so 1 or 8 devices sample the same trajectories and reach the same parameters.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from jnigt import timing as timing_lib
from jnigt.distributed import AXIS, make_agent_mesh
from jnigt.gradients import gpomdp
from jnigt.training.config import TrainConfig
from jnigt.transforms import malenia, nigt_eval_params, rennala, synchronized
from jnigt.transforms.nigt import find_nigt_state


class TrainState(NamedTuple):
    """The whole training state (checkpointed as is).

    params: theta~ for NIGT (the evaluation point the agents compute at); plain params otherwise.
    opt_state: aggregator state with a leading device axis (one row per device), or the AFedPG
      server optimizer state.
    key: PRNG key carried from round to round. time: simulated seconds. round: rounds done
    (AFedPG: arrivals). env_steps, comms: running totals. stale: AFedPG per-agent points ({} else).
    next_finish: AFedPG clock ([] else).
    """

    params: Any
    opt_state: Any
    key: jax.Array
    time: jax.Array
    round: jax.Array
    env_steps: jax.Array
    comms: jax.Array
    stale: Any
    next_finish: jax.Array


def _slot_keys(key, agent_ids, local_ids, local_counts):
    """Key of slot s = fold_in(fold_in(key, agent_ids[s]), j), j = the slot's rank within its agent.

    ``local_ids`` index ``local_counts`` (the counts laid out by ``slots_from_counts``), so the key
    depends on the global agent and rank only: any device count samples the same trajectories.
    """
    starts = jnp.cumsum(local_counts) - local_counts
    j = jnp.arange(agent_ids.shape[0]) - jnp.take(starts, local_ids)
    return jax.vmap(lambda a, jj: jax.random.fold_in(jax.random.fold_in(key, a), jj))(agent_ids, j)


class Trainer:
    """Builds the environment, policy, timing and optimizer of a :class:`TrainConfig` and runs
    it chunk by chunk (``eval_every`` rounds per jitted call)."""

    def __init__(self, config: TrainConfig, num_devices: int | None = None, use_pmap: bool = False, env=None):
        from jnigt_envs import make_env

        self.config = c = config
        self.env = env if env is not None else make_env(c.env, backend=c.backend)
        self.policy = c.make_policy(self.env)
        self.num_params = sum(
            x.size for x in jax.tree.leaves(jax.eval_shape(self.policy.init, jax.random.key(0)))
        )
        self.timing = c.make_timing(self.num_params)
        self.inner = c.make_optimizer()
        self.use_pmap = use_pmap
        self.mesh = make_agent_mesh(num_devices)
        self.num_devices = d = self.mesh.devices.size
        n = c.num_agents
        if c.method == "afedpg":
            # no collective: one device per process runs it (replicated, so every process holds
            # the same global state and can write metrics/checkpoints)
            self.num_devices = 1
            self.mesh = jax.sharding.Mesh(
                np.array([jax.local_devices(process_index=i)[0] for i in range(jax.process_count())]),
                (AXIS,),
                axis_types=(jax.sharding.AxisType.Auto,),
            )
        elif c.method == "rennala":
            self.slots = math.ceil(max(c.batch_size, c.first_batch) / d)
            self.contributors = self.slots
        else:
            if n % d:
                raise ValueError(
                    f"num_agents={n} must be divisible by the number of devices ({d}) for {c.method}: "
                    "each device holds a slice of the agents"
                )
            self.local_agents = self.contributors = n // d
            if c.method == "synchronized":
                self.per_agent = math.ceil(c.batch_size / n)
                self.slots = self.local_agents * self.per_agent
            else:
                counts = timing_lib.malenia_max_per_agent(self.timing, c.horizon, c.batch_size)
                per_device = counts.reshape(d, -1).sum(axis=1)
                # one spare column: the fastest agent's next arrival proves it has no more before close
                self.max_per_agent = int(counts.max()) + 1
                self.slots = int(per_device.max())
                if c.jitter > 0:
                    self.max_per_agent = math.ceil(self.max_per_agent * c.malenia_slack) + 1
                    self.slots = math.ceil(self.slots * c.malenia_slack) + self.local_agents
        self._chunk = jax.jit(self._build_chunk())
        self._eval = jax.jit(self._evaluate)

    # ------------------------------------------------------------------ building blocks
    def _wrapper(self):
        c = self.config
        if c.method == "rennala":
            return rennala(self.inner, c.batch_size, c.init_batch_size, axis_name=AXIS)
        if c.method == "malenia":
            return malenia(self.inner, c.batch_size, self.local_agents, axis_name=AXIS)
        return synchronized(self.inner, self.per_agent, self.local_agents, axis_name=AXIS)

    def _map(self, fn, in_specs, out_specs):
        """Run ``fn`` once per device: shard_map (main path) or pmap (legacy path)."""
        if self.use_pmap:
            in_axes = tuple(0 if s == P(AXIS) else None for s in in_specs)
            out_axes = tuple(0 for _ in out_specs)
            d = self.mesh.devices.size

            def unwrap(_, *args):
                return fn(*args)

            # a dummy mapped argument: pmap needs one even when every input is replicated
            mapped = jax.pmap(
                unwrap,
                axis_name=AXIS,
                in_axes=(0,) + in_axes,
                out_axes=out_axes,
                devices=list(self.mesh.devices.ravel()),
            )

            # same layout as shard_map: a P(AXIS) array [d * k, ...] is d blocks [k, ...]
            split = lambda x: x.reshape((d, x.shape[0] // d) + x.shape[1:])
            merge = lambda x: x.reshape((d * x.shape[1],) + x.shape[2:])

            def call(*args):
                args = tuple(jax.tree.map(split, a) if s == P(AXIS) else a for a, s in zip(args, in_specs))
                outs = mapped(jnp.zeros((d,), jnp.int32), *args)
                return tuple(
                    jax.tree.map(merge, o) if s == P(AXIS) else jax.tree.map(lambda x: x[0], o)
                    for o, s in zip(outs, out_specs)
                )

            return call
        return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)

    def _replicate(self, tree):
        """The same value on every device of the mesh, as global arrays (every process holds
        the same host value: the state is built from the seed)."""
        sharding = jax.sharding.NamedSharding(self.mesh, P())

        def put(x):
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
            return jax.make_array_from_process_local_data(sharding, np.asarray(x))

        return jax.tree.map(put, tree)

    def init_state(self) -> TrainState:
        c = self.config
        key, pkey = jax.random.split(jax.random.key(c.seed))
        params = self.policy.init(pkey)
        zero_f, zero_i = jnp.zeros([], jnp.float32), jnp.zeros([], jnp.int32)
        if c.method == "afedpg":
            key, ck = jax.random.split(key)
            clock = timing_lib.afedpg_init(self.timing, c.horizon, ck)
            stale = jax.tree.map(lambda p: jnp.broadcast_to(p, (c.num_agents,) + p.shape), params)
            return self._replicate(
                TrainState(
                    params,
                    self.inner.init(params),
                    key,
                    zero_f,
                    zero_i,
                    zero_i,
                    zero_i,
                    stale,
                    clock.next_finish,
                )
            )
        wrapper = self._wrapper()
        init = self._map(
            lambda p: (jax.tree.map(lambda x: x[None], wrapper.init(p)),),
            in_specs=(P(),),
            out_specs=(P(AXIS),),
        )
        # replicated over the mesh from the start: the chunk's outputs have this sharding, so the
        # second chunk does not recompile, and with several processes these are global arrays
        params, key, zero_f, zero_i = self._replicate((params, key, zero_f, zero_i))
        (opt_state,) = jax.jit(init)(params)
        return TrainState(params, opt_state, key, zero_f, zero_i, zero_i, zero_i, {}, zero_f)

    def _round_timing(self, key, round_index):
        c, t = self.config, self.timing
        if c.method == "rennala":
            if c.first_batch == c.batch_size:
                return timing_lib.rennala_round(t, c.horizon, c.batch_size, key)
            return jax.lax.cond(
                round_index == 0,
                lambda: timing_lib.rennala_round(t, c.horizon, c.first_batch, key),
                lambda: timing_lib.rennala_round(t, c.horizon, c.batch_size, key),
            )
        if c.method == "malenia":
            return timing_lib.malenia_round(t, c.horizon, c.batch_size, key, self.max_per_agent)
        return timing_lib.synchronized_round(t, c.horizon, self.per_agent, key)

    def _trajectories(self, params, keys, agent_ids):
        c = self.config
        return jax.vmap(
            lambda k, a: gpomdp.trajectory_gradient(
                self.policy, self.env, params, k, a, c.horizon, c.discount
            )
        )(keys, agent_ids)

    def _build_chunk(self):
        c = self.config
        rounds = c.eval_every
        if c.method == "afedpg":
            return self._build_afedpg_chunk()
        wrapper = self._wrapper()
        d = self.num_devices

        def device_chunk(state: TrainState, opt_state):
            opt_state = jax.tree.map(lambda x: x[0], opt_state)
            dev = jax.lax.axis_index(AXIS)

            def one_round(carry, _):
                st, opt_state = carry
                key, k_time, k_traj = jax.random.split(st.key, 3)
                rnd = self._round_timing(k_time, st.round)
                if c.method == "rennala":
                    ids, valid = timing_lib.slots_from_counts(rnd.counts, self.slots * d)
                    keys = _slot_keys(k_traj, ids, ids, rnd.counts)
                    take = lambda x: jax.lax.dynamic_slice_in_dim(x, dev * self.slots, self.slots)
                    ids, valid, keys = take(ids), take(valid), take(keys)
                    seg = jnp.arange(self.slots)
                else:
                    local = jax.lax.dynamic_slice_in_dim(
                        rnd.counts, dev * self.local_agents, self.local_agents
                    )
                    seg, valid = timing_lib.slots_from_counts(local, self.slots)
                    ids = seg + dev * self.local_agents
                    keys = _slot_keys(k_traj, ids, seg, local)
                tg = self._trajectories(st.params, keys, ids)
                pg = gpomdp.sum_per_segment(tg, seg, valid, self.contributors)
                dropped_before = opt_state.dropped
                upd, opt_state = wrapper.update(pg.grad_sums, opt_state, st.params, counts=pg.counts)
                params = optax.apply_updates(st.params, upd)
                steps, ret_sum, n_ret, dropped = jax.lax.psum(
                    (
                        pg.env_steps,
                        jnp.sum(jnp.where(valid, tg.ret, 0.0)),
                        jnp.sum(valid).astype(jnp.float32),
                        opt_state.dropped - dropped_before,
                    ),
                    AXIS,
                )
                closed = opt_state.closed
                nigt = find_nigt_state(opt_state.inner_state)
                grad_norm = (
                    optax.tree.norm(nigt.momentum_buffer) if nigt is not None else optax.tree.norm(upd)
                )
                time = st.time + rnd.duration + rnd.comm
                st = st._replace(
                    params=params,
                    key=key,
                    time=time,
                    round=st.round + 1,
                    env_steps=st.env_steps + steps,
                    comms=st.comms + closed.astype(jnp.int32),
                )
                metrics = dict(
                    time=time,
                    env_steps=st.env_steps,
                    grads_used=jnp.sum(rnd.counts) - dropped,
                    grads_dropped=dropped,
                    wasted_time=rnd.wasted,
                    comms=st.comms,
                    closed=closed,
                    grad_norm=grad_norm,
                    train_return=ret_sum / jnp.maximum(n_ret, 1.0),
                )
                return (st, opt_state), metrics

            (state, opt_state), metrics = jax.lax.scan(one_round, (state, opt_state), None, length=rounds)
            return state, jax.tree.map(lambda x: x[None], opt_state), metrics

        mapped = self._map(device_chunk, in_specs=(P(), P(AXIS)), out_specs=(P(), P(AXIS), P()))

        def chunk(state: TrainState):
            new_state, opt_state, metrics = mapped(state._replace(opt_state=None), state.opt_state)
            return new_state._replace(opt_state=opt_state), metrics

        return chunk

    def _build_afedpg_chunk(self):
        c = self.config

        def one_arrival(st: TrainState, _):
            key, k_time, k_traj = jax.random.split(st.key, 3)
            agent, t, next_finish, _ = timing_lib.afedpg_next(
                self.timing, c.horizon, timing_lib.AfedpgClock(st.next_finish), k_time
            )
            point = jax.tree.map(lambda s: s[agent], st.stale)
            tg = gpomdp.trajectory_gradient(
                self.policy, self.env, point, k_traj, agent, c.horizon, c.discount
            )
            finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(tg.grad)]))
            grad = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), tg.grad)
            upd, opt_state = self.inner.update(grad, st.opt_state, st.params)
            # a dropped (non-finite) gradient leaves the server untouched
            upd = jax.tree.map(lambda u: jnp.where(finite, u, 0.0), upd)
            opt_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), opt_state, st.opt_state)
            params = optax.apply_updates(st.params, upd)
            stale = jax.tree.map(lambda s, p: s.at[agent].set(p), st.stale, params)
            nigt = find_nigt_state(opt_state)
            grad_norm = optax.tree.norm(nigt.momentum_buffer) if nigt is not None else optax.tree.norm(upd)
            # the server's update time, as jnigt.timing.afedpg_next reports it (monotone over arrivals)
            time = t
            st = st._replace(
                params=params,
                opt_state=opt_state,
                key=key,
                time=time,
                round=st.round + 1,
                env_steps=st.env_steps + tg.steps,
                comms=st.comms + 1,
                stale=stale,
                next_finish=next_finish.next_finish,
            )
            metrics = dict(
                time=time,
                env_steps=st.env_steps,
                grads_used=finite.astype(jnp.int32),
                grads_dropped=(~finite).astype(jnp.int32),
                wasted_time=jnp.zeros([], jnp.float32),
                comms=st.comms,
                closed=finite,
                grad_norm=grad_norm,
                train_return=jnp.asarray(tg.ret, jnp.float32),
            )
            return st, metrics

        def chunk(state: TrainState):
            return jax.lax.scan(one_arrival, state, None, length=c.eval_every)

        return chunk

    # ------------------------------------------------------------------ public
    def eval_params(self, state: TrainState):
        """theta_t (not theta~): the point to evaluate and deploy."""
        opt_state = state.opt_state
        if self.config.method != "afedpg":
            opt_state = jax.tree.map(lambda x: x[0], opt_state)
        return (
            nigt_eval_params(state.params, opt_state)
            if find_nigt_state(opt_state) is not None
            else state.params
        )

    def _evaluate(self, state: TrainState):
        c = self.config
        params = self.eval_params(state)
        keys = jax.random.split(jax.random.fold_in(jax.random.key(c.seed + 1), state.round), c.eval_episodes)
        agents = jnp.arange(c.eval_episodes) % c.num_agents
        rewards = jax.vmap(lambda k, a: gpomdp.rollout(self.policy, self.env, params, k, a, c.horizon)[2])(
            keys, agents
        )
        return jnp.mean(jnp.sum(rewards, axis=1))

    def run_chunk(self, state: TrainState):
        """``eval_every`` rounds in one jitted call; returns (state, metrics [eval_every], eval return)."""
        state, metrics = self._chunk(state)
        return state, metrics, self._eval(state)
