"""Real asynchronous agents on Ray: one actor per agent, the simulator's learner on the driver.

Agent i is a Ray actor holding its environment and policy: it computes one GPOMDP gradient
(docs/algorithms.md#gpomdp) at the point it last received, at its own real speed, then sleeps to
emulate the time model's h_i (docs/algorithms.md#simulated-time): ``slowdown="step"`` H h_i time_scale
seconds, ``"trajectory"`` h_i time_scale, None no sleep (times a lognormal factor with mean 1 when
``config.jitter > 0``, as in the simulator).

The driver is the learner, :class:`jnigt.training.learner.Learner` (the simulator's policy, inner
optimizer, aggregator, evaluation and observation statistics, sent to the agents with
``obs_norm="initial"``). It keeps one request in flight per live agent (``ray.wait``) and gives every
arriving gradient to ``Learner.update`` as that agent's contribution: the method's aggregator closes the
rounds (docs/algorithms.md#rennala, #malenia, #synchronized; AFedPG: the simulated AFedPG's server
step, on every arrival, docs/algorithms.md#afedpg). Synchronized: an agent that delivered its share
idles until the round closes. A closed round's point is put once in the object store and broadcast
(``preempt=True``): an agent busy for an older round drops that work and restarts at the new point;
a result for an older round that still arrives is dropped (both count in ``grads_stale``). AFedPG:
each gradient was computed at the point its agent was last sent (staleness per row), and only the
arriving agent receives the new point.

Faults: a dead actor (``ray.exceptions.RayActorError``) is reported with a warning; methods that take
whatever arrives carry on without it, those that wait for every agent stop with a RuntimeError.

Outputs: the run folder of a simulated run (jnigt/training/run_folder.py), one row per closed round
(AFedPG: per applied arrival); ``time`` is wall-clock seconds since the start, actor start-up and JIT
warm-up excluded, and continues from the checkpoint on resume. Arrival order is real, so runs are not
bit-reproducible. Divergence is checked every ``eval_every`` rounds (jnigt/training/divergence.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnigt import validate
from jnigt.executors.ray_agent import (
    SLOWDOWNS,
    Agent,
    agent_delays,
    host_tree,
    import_ray,
    make_agents,
    runtime_env,
)
from jnigt.training import TrainConfig, methods, run_folder
from jnigt.training.learner import Learner
from jnigt.training.outputs import RunOutputs

__all__ = [
    "SLOWDOWNS",
    "Agent",
    "RayRun",
    "agent_delays",
    "check_out_dir",
    "make_agents",
    "runtime_env",
    "train_ray",
]


def _import_ray():
    return import_ray()


class RayRun(NamedTuple):
    """What :func:`train_ray` returns (unpacks like ``jnigt.training.train``'s triple).

    state: dict with params (theta~ for NIGT), eval_params (theta_t), opt_state, obs_stats, round, time,
      env_steps, comms. rows: the metric rows written to metrics.jsonl.
    """

    config: Any
    state: dict
    rows: list


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Options:
    """train_ray's executor settings, checked (see :func:`train_ray`)."""

    slowdown: str | None
    time_scale: float
    resume: bool
    preempt: bool
    tensorboard: bool
    progress: bool
    stop_after_chunks: int | None
    on_round: Callable | None


def _slowdown(config, slowdown):
    """``slowdown="config"`` resolved: the config's time_unit, else "step"."""
    return getattr(config, "time_unit", "step") if slowdown == "config" else slowdown


def _meta(config, slowdown, time_scale) -> dict:
    """config.json of a Ray run: the config and the executor settings."""
    meta = dict(dataclasses.asdict(config), executor="ray", slowdown=slowdown, time_scale=float(time_scale))
    return json.loads(json.dumps(meta))


def check_out_dir(config, out_dir: str, slowdown: str | None = "config", time_scale: float = 1e-3) -> None:
    """ValueError if ``out_dir`` holds a run of another config or other executor settings (cheap: callers
    run it before Ray starts)."""
    run_folder.check_out_dir(_meta(config, _slowdown(config, slowdown), time_scale), out_dir)


def train_ray(
    config,
    out_dir: str | None = None,
    *,
    ray_address: str | None = None,
    slowdown: str | None = "config",
    time_scale: float = 1e-3,
    resume: bool = True,
    num_cpus: int | None = 2,
    agent_num_cpus: float = 0.0,
    agents: Sequence[Any] | None = None,
    preempt: bool = True,
    tensorboard: bool = True,
    progress: bool = False,
    stop_after_chunks: int | None = None,
    on_round: Callable[[int, Sequence[Any]], None] | None = None,
) -> RayRun:
    """Train ``config`` with one Ray actor per agent; returns :class:`RayRun` ``(config, state, rows)``.

    Args:
      config: a ``jnigt.training.TrainConfig`` (method rennala | malenia | synchronized | afedpg;
        comm_model and allreduce_cost are ignored: communication is real; charge must be "horizon").
      out_dir: where config.json, metrics.jsonl, tb/ and checkpoints/ go (None: nothing written).
      ray_address: join this Ray cluster (``ray.init(address=...)``); None starts a local Ray with
        ``num_cpus`` CPUs, no dashboard, no worker logs. If Ray is already initialised it is used
        as is and left running; a Ray started here is shut down on return or error.
      slowdown, time_scale: emulated h_i (see the module docstring and :func:`agent_delays`);
        ``slowdown="config"`` takes ``config.time_unit`` when the config has one, else ``"step"``.
      resume: continue from the last checkpoint in ``out_dir`` (the config must match); False
        starts over, deleting ``out_dir/checkpoints``.
      agent_num_cpus: CPUs each actor reserves (0: any number of agents on a small machine; on a
        cluster, 1 spreads the agents over the nodes).
      agents: ``config.num_agents`` actors from :func:`make_agents` to reuse (left running);
        None starts fresh actors and kills them at the end.
      preempt: broadcast each new point to every agent, so that work for an old round stops at
        once (False: agents learn about a new round only when their result comes back).
      stop_after_chunks: return after that many chunks of ``eval_every`` rounds (as if killed).
      on_round: ``on_round(round, actors)`` after each closed round (e.g. to inject faults).

    metrics.jsonl rows: round, time, round_seconds (broadcast to close), env_steps, grads_used,
    grads_dropped (non-finite), grads_stale (discarded: computed at an older point), comms,
    closed, grad_norm, train_return, compute_seconds (mean seconds an agent spent computing one
    used gradient, sleep excluded), agent_counts (per-agent gradients used), closer (the agent
    whose arrival closed the round; AFedPG: the arriving agent) and staleness (AFedPG: server
    steps since the gradient's point was sent); eval_return every ``eval_every`` rounds.
    """
    ray = _import_ray()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a jnigt.training.TrainConfig, got {type(config).__name__}")
    if getattr(config, "charge", "horizon") != "horizon":
        raise ValueError(
            f"charge={config.charge!r} is an option of the simulated clock; the Ray executor runs in real time "
            "and emulates a fixed delay per trajectory: use charge='horizon'"
        )
    if config.end_time is not None:
        raise ValueError(
            f"end_time={config.end_time!r} is an option of the simulated clock; the Ray executor runs in real "
            "time and stops after config.rounds: leave end_time=None"
        )
    slowdown = _slowdown(config, slowdown)
    delays = agent_delays(config, slowdown, time_scale)
    if ray_address is not None and not isinstance(ray_address, str):
        raise TypeError(f"ray_address must be a string such as 'auto' or 'host:6379', got {ray_address!r}")
    validate.optional_integer("num_cpus", num_cpus, 1)
    validate.real("agent_num_cpus", agent_num_cpus, low=0.0)
    validate.optional_integer("stop_after_chunks", stop_after_chunks, 0)
    if agents is not None:
        agents = list(agents)
        if len(agents) != config.num_agents:
            raise ValueError(
                f"agents must hold num_agents={config.num_agents} actors from make_agents, got {len(agents)}"
            )
    if out_dir is not None:  # a bad or conflicting out_dir fails before Ray starts
        out_dir = run_folder.prepare(out_dir)
        if resume:
            check_out_dir(config, out_dir, slowdown, time_scale)
    options = _Options(
        slowdown=slowdown,
        time_scale=time_scale,
        resume=resume,
        preempt=preempt,
        tensorboard=tensorboard,
        progress=progress,
        stop_after_chunks=stop_after_chunks,
        on_round=on_round,
    )
    started = False
    owned: list = []
    try:
        if not ray.is_initialized():
            if agents is not None:
                raise RuntimeError("agents were given but Ray is not initialised")
            kw = dict(include_dashboard=False, log_to_driver=False)
            if ray_address is None:
                kw["num_cpus"] = num_cpus
            ray.init(address=ray_address, **kw)
            started = True
        if agents is None:
            owned = make_agents(config.num_agents, num_cpus=agent_num_cpus)
            agents = owned
        return _run(ray, config, out_dir, agents, delays, options)
    finally:
        if ray.is_initialized():
            for a in owned:
                try:
                    ray.kill(a)
                except Exception:  # already dead
                    pass
        if started:
            ray.shutdown()


class _Round:
    """What the open round gathered: per-agent gradients used, and the sums of its row's metrics."""

    def __init__(self, n: int):
        self.counts = np.zeros(n, np.int64)
        self.ret_sum, self.stale, self.dropped, self.steps, self.busy = 0.0, 0, 0, 0, 0.0
        self.opened = time.perf_counter()

    def add(self, agent: int, ret: float, steps: int, compute_s: float) -> None:
        self.counts[agent] += 1
        self.ret_sum, self.steps, self.busy = self.ret_sum + ret, self.steps + steps, self.busy + compute_s

    def row(self, state, upd, closer: int, times: tuple[float, float], env_steps: int) -> dict:
        """The metrics row of the round ``state`` just closed (``times``: since the start, since it opened)."""
        used = int(self.counts.sum())
        return {
            "round": int(state.round),
            "time": times[0],
            "round_seconds": times[1],
            "env_steps": env_steps,
            "grads_used": used,
            "grads_dropped": self.dropped,
            "grads_stale": self.stale,
            "comms": int(state.comms),
            "closed": True,
            "grad_norm": float(upd.grad_norm),
            "train_return": self.ret_sum / max(used, 1),
            "compute_seconds": self.busy / max(used, 1),
            "agent_counts": self.counts.tolist(),
            "closer": closer,
        }


class _Driver:
    """The learner's event loop: the run's state and outputs, the live agents and one request in flight
    per live agent (see the module docstring)."""

    def __init__(self, ray, config, out_dir, actors, delays, options: _Options):
        self.ray, self.c, self.o, self.actors = ray, config, options, actors
        self.module = methods.get(config.method)
        self.learner = Learner(config, num_devices=1)
        self.state = self.learner.init(config.seed)._replace(method={})  # the simulated clock is not Ray's
        folder = None
        if out_dir is not None:
            meta = _meta(config, options.slowdown, options.time_scale)
            folder = run_folder.RunFolder(
                out_dir, meta, self.state, resume=options.resume, tensorboard=options.tensorboard
            )
            self.state = folder.state
        self.outputs = RunOutputs(config, folder, self.state, where="ray")
        self.rnd, self.env_steps = int(self.state.round), int(self.state.env_steps)
        self.live = [i for i in range(config.num_agents) if math.isfinite(delays[i])]
        self.delays = delays
        self.inflight: dict = {}
        self.version_sent = np.zeros(config.num_agents, np.int64)  # the point each agent computes at
        self.idle: set = set()  # synchronized: agents that delivered their share of the open round
        self.point_ref = None

    def agent_died(self, i: int, error) -> None:
        self.live.remove(i)
        c = self.c
        if self.module.WAITS_FOR_EVERY_AGENT:
            raise RuntimeError(
                f"agent {i} died ({type(error).__name__}): {c.method} needs every agent in every "
                f"round and cannot close rounds without it (docs/algorithms.md#{c.method}); "
                "Rennala and AFedPG carry on without dead agents"
            ) from error
        warnings.warn(
            f"agent {i} died ({type(error).__name__}); {c.method} carries on with agents {self.live}",
            RuntimeWarning,
            stacklevel=4,
        )

    def submit(self, i: int) -> None:
        fut = self.actors[i].compute.remote(self.rnd, self.point_ref)
        self.version_sent[i] = self.rnd
        self.inflight[fut] = i

    def warm_up(self) -> None:
        """Not timed: every agent's gradient, the learner's update and evaluation; the round-0 row."""
        c, learner, state = self.c, self.learner, self.state
        host, obs_stats = host_tree(state.params), host_tree(state.obs_stats)
        warm = [self.actors[i].setup.remote(i, c, self.delays[i], host, obs_stats) for i in self.live]
        learner.update(state, _zeros_like(host), 0)
        if self.outputs.fresh(state):
            self.outputs.first_row(learner.evaluate(state))
        else:
            float(learner.evaluate(state))
        for i, fut in zip(list(self.live), warm):
            try:
                self.ray.get(fut)
            except self.ray.exceptions.RayActorError as e:
                self.agent_died(i, e)
        self.point_ref = self.ray.put(host)

    def run(self) -> RayRun:
        ray, c, o, actors = self.ray, self.c, self.o, self.actors
        self.warm_up()
        end = (
            c.rounds
            if o.stop_after_chunks is None
            else min(c.rounds, self.rnd + o.stop_after_chunks * c.eval_every)
        )
        if o.progress:  # the rounds run to config.rounds: Ray's time is wall-clock, not the simulated clock
            self.outputs.start_progress(self.state, by_time=False)
        share = getattr(self.module, "share", None)  # synchronized: each agent delivers its share, then idles
        one_per_step = not self.module.BATCHES  # AFedPG: a stale gradient is the method, not waste
        t0 = time.perf_counter() - float(self.state.time)
        cur = _Round(c.num_agents)
        for i in self.live:
            self.submit(i)
        try:
            while self.rnd < end:
                if not self.inflight:
                    raise RuntimeError("no live agent is left: every agent actor died")
                (fut,), _ = ray.wait(list(self.inflight), num_returns=1)
                i = self.inflight.pop(fut)
                try:
                    r_tag, _, grad, ret, steps, compute_s, discarded = ray.get(fut)
                except ray.exceptions.RayActorError as e:
                    self.agent_died(i, e)
                    continue
                cur.stale += discarded  # abandoned by the agent when a newer round reached it
                if grad is None or (not one_per_step and r_tag != self.rnd):
                    cur.stale += int(grad is not None)  # computed for an older round: discarded here
                    self.submit(i)
                    continue
                self.state, upd = self.learner.update(self.state, grad, i)
                if bool(upd.dropped):
                    cur.dropped += 1
                else:
                    cur.add(i, ret, steps, compute_s)
                if not bool(upd.closed):
                    if share is None or cur.counts[i] < share(c, self.rnd):
                        self.submit(i)
                    else:
                        self.idle.add(i)
                    continue
                # -- the round closed (AFedPG: the server stepped): broadcast the new point once
                now = time.perf_counter()
                self.rnd, self.env_steps = int(self.state.round), self.env_steps + cur.steps
                row = cur.row(self.state, upd, i, (now - t0, now - cur.opened), self.env_steps)
                if one_per_step:
                    row["staleness"] = int(self.rnd - 1 - self.version_sent[i])
                self.point_ref = ray.put(host_tree(self.state.params))
                if o.preempt and not one_per_step:
                    for k in self.live:
                        if k != i:
                            actors[k].preempt.remote(self.rnd, self.point_ref)
                for k in [i] + sorted(self.idle & set(self.live)):
                    self.submit(k)
                self.idle.clear()
                self.end_round(row)
                if o.on_round is not None:
                    o.on_round(self.rnd, list(actors))
                cur = _Round(c.num_agents)
        finally:
            self.stop()
        return self.result()

    def end_round(self, row: dict) -> None:
        """A closed round's row; every ``eval_every`` rounds its evaluation, checkpoint and divergence check."""
        if self.rnd % self.c.eval_every == 0:
            row["eval_return"] = float(self.learner.evaluate(self.state))
            self.outputs.end_chunk([row], self.state, checkpoint=_with_counters(self.state, row))
        else:
            self.outputs.add_rows([row])

    def stop(self) -> None:
        """Leave the actors idle (wake sleeping requests, wait for what is in flight); close the outputs."""
        for i in self.live:
            self.actors[i].stop.remote()
        if self.inflight:
            self.ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=30.0)
        self.outputs.close()

    def result(self) -> RayRun:
        state, rows = self.state, self.outputs.rows
        final = dict(
            params=state.params,
            eval_params=self.learner.eval_params(state),
            opt_state=state.opt_state,
            obs_stats=state.obs_stats,
            round=self.rnd,
            time=rows[-1]["time"] if rows else 0.0,
            env_steps=self.env_steps,
            comms=int(state.comms),
        )
        return RayRun(self.c, final, rows)


def _run(ray, config, out_dir, actors, delays, options: _Options) -> RayRun:
    """The learner's event loop (Ray is up, ``actors`` started); see :func:`train_ray`."""
    return _Driver(ray, config, out_dir, actors, delays, options).run()


def _zeros_like(tree):
    """Host zeros shaped like ``tree`` (a warm-up gradient)."""
    return jax.tree.map(np.zeros_like, tree)


def _with_counters(state, row):
    """``state`` with the wall-clock time and env_steps of ``row`` (what a checkpoint resumes from)."""
    return state._replace(
        time=jnp.asarray(row["time"], state.time.dtype),
        env_steps=jnp.asarray(row["env_steps"], state.env_steps.dtype),
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use jnigt.executors.ray.train_ray (or `jnigt train --executor ray`)")
