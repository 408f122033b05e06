"""Real asynchronous agents on Ray: one actor per agent, one learner applying the Optax aggregators.

Agent i is a Ray actor holding its environment and policy. It computes one GPOMDP gradient
(``jnigt.gradients.gpomdp.trajectory_gradient``, jitted, see docs/algorithms.md#gpomdp) at the point
it last received, at its own real speed, optionally slowed down to emulate the time model's h_i
(docs/algorithms.md#simulated-time):

    slowdown="step":        sleep H * h_i * time_scale seconds after each trajectory (h_i per env step)
    slowdown="trajectory":  sleep h_i * time_scale seconds after each trajectory
    slowdown=None:          no sleep, real speed only

(times a lognormal factor with mean 1 when ``config.jitter > 0``, as in the simulator).

The learner (the driver) keeps exactly one request in flight per live agent and waits on them with
``ray.wait``. Every arriving gradient is fed to the aggregator as a per-agent contribution (its
sum, count 1, zeros for the other agents):

    rennala(nigt(alpha, eta), M)            docs/algorithms.md#rennala
    malenia(nigt(alpha, eta), M, n)         docs/algorithms.md#malenia
    synchronized(nigt(alpha, eta), ceil(M / n), n)   docs/algorithms.md#synchronized

Synchronized: an agent that delivered its ceil(M / n) gradients idles until the round closes (as in
the simulator). When a round closes (``jnigt.has_updated``) the new point is put once in the object
store and its ObjectRef broadcast to every agent (``preempt=True``). Every request carries its round
id: an agent busy for an older round drops that work and restarts at the new point, at once if it
is sleeping, after its current gradient if it is computing (as the simulator resets every agent at
a round's start); a result for an older round that still reaches the learner is dropped. Both
count in ``grads_stale``.

AFedPG (docs/algorithms.md#afedpg): the server optimizer steps on every single arrival; each
gradient was computed at the point that agent was last sent (real staleness, reported per row),
and only the arriving agent receives the new point.

Faults: an agent whose actor dies (``ray.exceptions.RayActorError``) is reported with a warning
naming it. Rennala and AFedPG carry on with the remaining agents (its gradients already
accumulated in the open round still count). Malenia and synchronized need every agent in every
round, so they stop with a ``RuntimeError`` naming the agent.

Outputs, as a simulated run (``jnigt.training.train``): ``config.json``, ``metrics.jsonl`` (one row
per closed round, AFedPG: per applied arrival, ``time`` = wall-clock seconds since the start,
excluding actor start-up and JIT warm-up but including the learner's evaluations and checkpoints,
during which the agents keep working), TensorBoard events under ``tb/`` and orbax checkpoints under
``checkpoints/`` after every ``eval_every`` rounds. A killed run started again on the same
``out_dir`` resumes from its last checkpoint (wall-clock time continues from the saved time;
AFedPG agents restart at the restored point). Arrival order is real, so runs are not
bit-reproducible. After every ``eval_every`` rounds the learner checks the run for divergence
(non-finite returns, grad_norm or parameters, or parameters that stall: jnigt/training/divergence.py,
``TrainConfig.on_divergence``); metrics.jsonl is strict JSON (non-finite values as null, named in
the row's ``nonfinite`` field) and TensorBoard receives finite scalars only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

SLOWDOWNS = ("step", "trajectory", None)
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"

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
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is an optional dependency
        raise ImportError("the Ray executor needs ray: pip install 'jnigt[ray]'") from e
    return ray


# ---------------------------------------------------------------------------- configuration


def _step_spec(spec):
    """TrainConfig.step_model: a model name or comma-separated per-agent numbers."""
    if not isinstance(spec, str):
        return spec
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError:
        return spec
    return values


def agent_delays(config, slowdown: str | None = "step", time_scale: float = 1e-3) -> np.ndarray:
    """Emulated seconds each agent sleeps after one trajectory, float64 ``[n]`` (inf = dead agent).

    ``step``: ``H * h_i * time_scale``; ``trajectory``: ``h_i * time_scale``; None: zeros. h_i comes
    from ``jnigt.timing.make_timing`` with the config's step_model, stragglers and dead agents.
    """
    from jnigt import timing as timing_lib
    from jnigt.training.methods import METHODS

    if slowdown not in SLOWDOWNS:
        raise ValueError(f"slowdown must be one of {SLOWDOWNS}, got {slowdown!r}")
    if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float, np.floating)):
        raise TypeError(f"time_scale must be a number of seconds, got {time_scale!r}")
    if not (time_scale >= 0 and math.isfinite(time_scale)):
        raise ValueError(f"time_scale must be a finite number >= 0, got {time_scale!r}")
    t = timing_lib.make_timing(
        config.num_agents,
        _step_spec(config.step_model),
        "zero",
        jitter=config.jitter,
        stragglers=config.stragglers,
        dead=config.dead,
    )
    module = METHODS[config.method]
    timing_lib.check_progress(t, module.WAITS_FOR_EVERY_AGENT, module.LABEL)
    h = np.asarray(t.step_time, np.float64)
    if slowdown is None:
        return np.where(np.isfinite(h), 0.0, np.inf)
    per = config.horizon if slowdown == "step" else 1
    return h * per * float(time_scale)


def runtime_env(extra_env: dict[str, str] | None = None) -> dict:
    """Ray ``runtime_env`` for the agent actors: import this jnigt and jnigt_envs, JAX on 1 CPU thread.

    PYTHONPATH is built from where the driver found ``jnigt`` and ``jnigt_envs``, so it works both
    from an installed package and from a source tree.
    """
    import jnigt
    import jnigt_envs

    roots = []
    for mod in (jnigt, jnigt_envs):
        root = os.path.dirname(os.path.dirname(os.path.abspath(mod.__file__)))
        if root not in roots:
            roots.append(root)
    roots += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in roots]
    env = {
        "PYTHONPATH": os.pathsep.join(roots),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    env.update(extra_env or {})
    return {"env_vars": env}


def _policy_kwargs(config) -> dict:
    from jnigt.training.build import policy_kwargs

    return policy_kwargs(config)


def _inner_optimizer(config):
    import optax

    from jnigt.transforms import nigt

    if config.optimizer == "nigt":
        return nigt(config.learning_rate, config.momentum)
    return getattr(optax, config.optimizer)(config.learning_rate)


# ---------------------------------------------------------------------------- the agent actor


class Agent:
    """One agent (wrapped by ``ray.remote``): its env, its policy, its jitted GPOMDP gradient.

    ``setup`` (re)configures it for a run, so a pool of actors (:func:`make_agents`) can serve
    many runs without restarting processes. Trajectory keys:
    ``fold_in(fold_in(fold_in(key(seed), tag), agent), j)`` for the agent's j-th trajectory of the
    run, computed at the point with tag ``tag`` (the round id, or the server version for AFedPG).
    """

    def __init__(self):
        import jax  # noqa: F401  (imported once, at start-up)

        self._cache: dict = {}
        self._cv = threading.Condition()
        self._newest, self._next, self._generation, self._count = -1, None, 0, 0

    def setup(self, agent, env_name, backend, policy_kwargs, horizon, discount, seed, delay, jitter, params):
        """Configure for a run and compile (and run once) the gradient; returns the seconds it took."""
        import jax

        t0 = time.perf_counter()
        spec = (
            int(agent),
            env_name,
            backend,
            tuple(sorted(policy_kwargs.items())),
            int(horizon),
            float(discount),
        )
        if spec not in self._cache:
            from jnigt.gradients.gpomdp import trajectory_gradient
            from jnigt.gradients.policy import make_policy
            from jnigt_envs import make_env

            env = make_env(env_name, backend=backend)
            policy = make_policy(env, **policy_kwargs)

            def grad(p, seed, tag, j):
                key = jax.random.key(seed)
                for x in (tag, spec[0], j):
                    key = jax.random.fold_in(key, x)
                tg = trajectory_gradient(policy, env, p, key, spec[0], spec[4], spec[5])
                return tg.grad, tg.ret, tg.steps

            self._cache[spec] = jax.jit(grad)
        self._grad = self._cache[spec]
        jax.block_until_ready(self._grad(params, int(seed), 0, 0))
        with self._cv:
            self._generation += 1
            self._newest, self._next, self._count = -1, None, 0
            self._cv.notify_all()
        self.agent, self.seed, self.delay, self.jitter = int(agent), int(seed), float(delay), float(jitter)
        self._rng = np.random.default_rng([int(seed), int(agent)])
        return time.perf_counter() - t0

    def preempt(self, tag: int, params=None) -> None:
        """Round ``tag`` started at ``params`` (the broadcast point; Ray resolves its ObjectRef).

        A request for an older round stops sleeping and, given ``params``, restarts there at once
        (its work is discarded); without ``params`` it returns without a gradient.
        """
        with self._cv:
            if int(tag) > self._newest:
                self._newest = int(tag)
                self._next = None if params is None else (int(tag), params)
            self._cv.notify_all()

    def stop(self) -> None:
        """End of a run: wake every sleeping request (its result is discarded)."""
        with self._cv:
            self._generation += 1
            self._cv.notify_all()

    def compute(self, tag: int, params):
        """One trajectory's loss gradient at ``params``, then the emulated delay.

        Returns ``(tag, agent, grad | None, return, env_steps, compute_seconds, discarded)``: ``tag``
        is the round the gradient belongs to (newer than the request's if a preempt moved it on),
        grad is None when nothing usable came out, ``discarded`` counts trajectories abandoned
        because a newer round started.
        """
        generation = self._generation
        busy, discarded = 0.0, 0
        while True:
            with self._cv:
                if self._generation != generation:
                    return tag, self.agent, None, 0.0, 0, busy, discarded
                if self._newest > tag:
                    if self._next is None:
                        return tag, self.agent, None, 0.0, 0, busy, discarded
                    tag, params = self._next
                j = self._count
                self._count += 1
            t0 = time.perf_counter()
            grad, ret, steps = self._grad(params, self.seed, int(tag), int(j))
            grad = _host_tree(grad)
            busy += time.perf_counter() - t0
            delay = self.delay
            if self.jitter > 0:
                delay *= math.exp(self.jitter * self._rng.standard_normal() - 0.5 * self.jitter**2)
            with self._cv:
                done = lambda: self._newest > tag or self._generation != generation
                if delay > 0:
                    self._cv.wait_for(done, timeout=delay)
                if not done():
                    return tag, self.agent, grad, float(ret), int(steps), busy, discarded
                discarded += 1  # a newer round started: restart there (top of the loop)


def _host_tree(tree):
    import jax

    return jax.tree.map(np.asarray, tree)


def make_agents(num_agents: int, *, num_cpus: float = 0.0, extra_env: dict[str, str] | None = None) -> list:
    """Start ``num_agents`` agent actors (Ray must be initialised) to pass as ``train_ray(agents=...)``.

    They start once (importing JAX) and serve any number of runs; ``ray.kill`` them when done.
    """
    ray = _import_ray()
    if isinstance(num_agents, bool) or not isinstance(num_agents, (int, np.integer)) or num_agents < 1:
        raise ValueError(f"num_agents must be an int >= 1, got {num_agents!r}")
    if not ray.is_initialized():
        raise RuntimeError("make_agents needs a running Ray: call ray.init(...) first")
    remote_agent = ray.remote(Agent).options(
        num_cpus=num_cpus, max_concurrency=3, runtime_env=runtime_env(extra_env)
    )
    return [remote_agent.remote() for _ in range(int(num_agents))]


# ---------------------------------------------------------------------------- the learner


class RayRun(NamedTuple):
    """What :func:`train_ray` returns (unpacks like ``jnigt.training.train``'s triple).

    state: dict with params (theta~ for NIGT), eval_params (theta_t), opt_state, round, time,
      env_steps, comms. rows: the metric rows written to metrics.jsonl.
    """

    config: Any
    state: dict
    rows: list


def _find_nigt(state):
    import jax

    from jnigt import NigtState

    leaves = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, NigtState))
    found = [x for x in leaves if isinstance(x, NigtState)]
    return found[0] if found else None


def _build_learner(config, policy, env, n):
    """Jitted (init, step, evaluate, eval_params) for the config's method."""
    import jax
    import jax.numpy as jnp
    import optax

    from jnigt import has_updated, malenia, nigt_eval_params, rennala, synchronized
    from jnigt.gradients.gpomdp import rollout
    from jnigt.transforms.nigt import overflow_safe_norm

    inner = _inner_optimizer(config)
    if config.method == "rennala":
        tx, rows = rennala(inner, config.batch_size, config.init_batch_size), 1
    elif config.method == "malenia":
        tx, rows = malenia(inner, config.batch_size, n), n
    elif config.method == "synchronized":
        tx, rows = synchronized(inner, math.ceil(config.batch_size / n), n), n
    else:
        tx, rows = inner, None

    def grad_norm(opt_state, upd):
        s = _find_nigt(opt_state)
        return overflow_safe_norm(s.momentum_buffer if s is not None else upd)

    def step(params, opt_state, grad, agent):
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grad)]))
        if rows is None:  # AFedPG: the server optimizer steps on this one (possibly stale) gradient
            g = jax.tree.map(lambda x: jnp.where(finite, x, 0.0), grad)
            upd, new = tx.update(g, opt_state, params)
            upd = jax.tree.map(lambda u: jnp.where(finite, u, 0.0), upd)
            opt_state = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, opt_state)
            return optax.apply_updates(params, upd), opt_state, finite, ~finite, grad_norm(opt_state, upd)
        row = 0 if rows == 1 else agent
        contrib = jax.tree.map(lambda g: jnp.zeros((rows,) + g.shape, g.dtype).at[row].set(g), grad)
        counts = jnp.zeros((rows,), jnp.int32).at[row].set(1)
        before = opt_state.dropped
        upd, opt_state = tx.update(contrib, opt_state, params, counts=counts)
        closed = has_updated(opt_state)
        return (
            optax.apply_updates(params, upd),
            opt_state,
            closed,
            opt_state.dropped > before,
            grad_norm(opt_state.inner_state, upd),
        )

    def eval_params(params, opt_state):
        return nigt_eval_params(params, opt_state) if _find_nigt(opt_state) is not None else params

    def evaluate(params, opt_state, round_):
        p = eval_params(params, opt_state)
        keys = jax.random.split(
            jax.random.fold_in(jax.random.key(config.seed + 1), round_), config.eval_episodes
        )
        agents = jnp.arange(config.eval_episodes) % n
        rewards = jax.vmap(lambda k, a: rollout(policy, env, p, k, a, config.horizon)[2])(keys, agents)
        return jnp.mean(jnp.sum(rewards, axis=1))

    return tx.init, jax.jit(step), jax.jit(evaluate), jax.jit(eval_params)


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
    from jnigt.training import run

    run.check_out_dir(_meta(config, _slowdown(config, slowdown), time_scale), out_dir)


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
        comm_model and allreduce_cost are ignored: communication is real).
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
    from jnigt.training import TrainConfig

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a jnigt.training.TrainConfig, got {type(config).__name__}")
    if config.obs_norm != "off":
        raise ValueError(
            f"obs_norm={config.obs_norm!r} is not supported by the Ray executor (its agents compute "
            "gradients on raw observations); use obs_norm='off' here, or the simulator (jnigt.training.train)"
        )
    if getattr(config, "charge", "horizon") != "horizon":
        raise ValueError(
            f"charge={config.charge!r} is an option of the simulated clock; the Ray executor runs in real time "
            "and emulates a fixed delay per trajectory: use charge='horizon'"
        )
    slowdown = _slowdown(config, slowdown)
    delays = agent_delays(config, slowdown, time_scale)
    if ray_address is not None and not isinstance(ray_address, str):
        raise TypeError(f"ray_address must be a string such as 'auto' or 'host:6379', got {ray_address!r}")
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
        raise ValueError(f"num_cpus must be None or an int >= 1, got {num_cpus!r}")
    if isinstance(agent_num_cpus, bool) or not isinstance(agent_num_cpus, (int, float)) or agent_num_cpus < 0:
        raise ValueError(f"agent_num_cpus must be a number >= 0, got {agent_num_cpus!r}")
    if stop_after_chunks is not None and (
        isinstance(stop_after_chunks, bool) or not isinstance(stop_after_chunks, int) or stop_after_chunks < 0
    ):
        raise ValueError(f"stop_after_chunks must be None or an int >= 0, got {stop_after_chunks!r}")
    if agents is not None:
        agents = list(agents)
        if len(agents) != config.num_agents:
            raise ValueError(
                f"agents must hold num_agents={config.num_agents} actors from make_agents, got {len(agents)}"
            )
    if out_dir is not None and resume:  # a conflicting out_dir fails before Ray starts
        check_out_dir(config, out_dir, slowdown, time_scale)
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
        return _run(
            ray,
            config,
            out_dir,
            delays,
            slowdown,
            time_scale,
            resume,
            agents,
            preempt,
            tensorboard,
            progress,
            stop_after_chunks,
            on_round,
        )
    finally:
        if ray.is_initialized():
            for a in owned:
                try:
                    ray.kill(a)
                except Exception:  # already dead
                    pass
        if started:
            ray.shutdown()


def _run(
    ray,
    config,
    out_dir,
    delays,
    slowdown,
    time_scale,
    resume,
    actors,
    preempt,
    tensorboard,
    progress,
    stop_after_chunks,
    on_round,
) -> RayRun:
    import jax

    from jnigt.gradients.policy import make_policy
    from jnigt.training import divergence
    from jnigt.training.run import add_scalars, write_rows
    from jnigt_envs import make_env

    c = config
    n = c.num_agents
    afedpg = c.method == "afedpg"
    env = make_env(c.env, backend=c.backend)
    policy = make_policy(env, **_policy_kwargs(c))
    tx_init, step, evaluate, eval_params_fn = _build_learner(c, policy, env, n)

    key, pkey = jax.random.split(jax.random.key(c.seed))
    params = policy.init(pkey)
    state = dict(
        params=params,
        opt_state=tx_init(params),
        round=np.asarray(0, np.int64),
        time=np.asarray(0.0, np.float64),
        env_steps=np.asarray(0, np.int64),
        comms=np.asarray(0, np.int64),
    )
    rows: list[dict] = []
    manager = writer = metrics_path = None
    if out_dir is not None:
        import orbax.checkpoint as ocp

        out_dir = os.path.abspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        meta = _meta(c, slowdown, time_scale)
        config_path = os.path.join(out_dir, CONFIG_FILE)  # checked against meta by train_ray
        if not resume:  # start over: older checkpoints would shadow this run's (orbax skips old steps)
            shutil.rmtree(os.path.join(out_dir, "checkpoints"), ignore_errors=True)
        manager = ocp.CheckpointManager(
            os.path.join(out_dir, "checkpoints"),
            options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
        )
        latest = manager.latest_step() if resume else None
        metrics_path = os.path.join(out_dir, METRICS_FILE)
        if latest is not None:
            state = manager.restore(latest, args=ocp.args.StandardRestore(state))
            if os.path.exists(metrics_path):
                with open(metrics_path) as f:
                    rows = [divergence.parse_row(json.loads(x)) for x in f if x.strip()]
                rows = [r for r in rows if r["round"] <= int(state["round"])]
        with open(config_path, "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        write_rows(metrics_path, rows, "w")
        if tensorboard:
            from tensorboardX import SummaryWriter

            writer = SummaryWriter(os.path.join(out_dir, "tb"), purge_step=int(state["round"]) + 1)

    skipped: set[str] = set()  # metrics not written to TensorBoard because non-finite

    def emit(row):
        rows.append(row)
        if metrics_path is not None:
            write_rows(metrics_path, [row], "a")
        if writer is not None:
            scalars = {k: v if k == "round" else float(v) for k, v in row.items() if k != "agent_counts"}
            add_scalars(writer, scalars, skipped)
            for i, m in enumerate(row.get("agent_counts", ())):
                writer.add_scalar(f"agent_counts/{i}", m, row["round"])
            writer.flush()

    params, opt_state = state["params"], state["opt_state"]
    rnd, env_steps, comms = int(state["round"]), int(state["env_steps"]), int(state["comms"])
    live = [i for i in range(n) if math.isfinite(delays[i])]
    host = _host_tree(params)
    # -- warm up (not timed): every agent's gradient, the learner's step and evaluation
    warm = [
        actors[i].setup.remote(
            i, c.env, c.backend, _policy_kwargs(c), c.horizon, c.discount, c.seed, delays[i], c.jitter, host
        )
        for i in live
    ]
    jax.block_until_ready(step(params, state["opt_state"], jax.tree.map(np.zeros_like, host), 0))
    monitor = divergence.Monitor(c, params, rnd, where="ray")
    if rnd == 0 and not rows:
        emit({"round": 0, "time": 0.0, "env_steps": 0, "eval_return": float(evaluate(params, opt_state, 0))})
        monitor.check_rows(rows)
    else:
        jax.block_until_ready(evaluate(params, opt_state, rnd))

    def agent_died(i, error):
        from jnigt.training.methods import METHODS

        live.remove(i)
        if METHODS[c.method].WAITS_FOR_EVERY_AGENT:
            raise RuntimeError(
                f"agent {i} died ({type(error).__name__}): {c.method} needs every agent in every "
                f"round and cannot close rounds without it (docs/algorithms.md#{c.method}); "
                "Rennala and AFedPG carry on without dead agents"
            ) from error
        warnings.warn(
            f"agent {i} died ({type(error).__name__}); {c.method} carries on with agents {live}",
            RuntimeWarning,
            stacklevel=3,
        )

    for i, fut in zip(list(live), warm):
        try:
            ray.get(fut)
        except ray.exceptions.RayActorError as e:
            agent_died(i, e)

    end = c.rounds if stop_after_chunks is None else min(c.rounds, rnd + stop_after_chunks * c.eval_every)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=c.rounds, initial=rnd, unit="round", desc=f"ray {c.method}+{c.optimizer}")

    inflight: dict = {}
    version_sent = np.zeros(n, np.int64)  # AFedPG: the server version each agent computes at
    tag = rnd  # round id (Rennala, Malenia, synchronized) or server version (AFedPG)
    point_ref = ray.put(host)

    def submit(i):
        fut = actors[i].compute.remote(tag, point_ref)
        version_sent[i] = tag
        inflight[fut] = i

    # synchronized: each agent delivers exactly ceil(M / n) gradients per round, then idles
    quota = math.ceil(c.batch_size / n) if c.method == "synchronized" else None
    idle: set = set()
    counts = np.zeros(n, np.int64)
    ret_sum, stale, dropped, round_steps, busy = 0.0, 0, 0, 0, 0.0
    t0 = time.perf_counter() - float(state["time"])
    opened = time.perf_counter()
    for i in live:
        submit(i)
    try:
        while rnd < end:
            if not inflight:
                raise RuntimeError("no live agent is left: every agent actor died")
            (fut,), _ = ray.wait(list(inflight), num_returns=1)
            i = inflight.pop(fut)
            try:
                r_tag, _, grad, ret, steps, compute_s, discarded = ray.get(fut)
            except ray.exceptions.RayActorError as e:
                agent_died(i, e)
                continue
            stale += discarded  # abandoned by the agent when a newer round reached it
            if grad is None or (not afedpg and r_tag != tag):
                stale += int(grad is not None)  # computed for an older round: discarded here
                submit(i)
                continue
            params, opt_state, closed, bad, gnorm = step(params, opt_state, grad, i)
            if bool(bad):
                dropped += 1
            else:
                counts[i] += 1
                ret_sum += ret
                busy += compute_s
                round_steps += steps
            if not bool(closed):
                if quota is None or counts[i] < quota:
                    submit(i)
                else:
                    idle.add(i)  # synchronized: delivered its share, waits for the round to close
                continue
            # -- the round closed (AFedPG: the server stepped): broadcast the new point once
            now = time.perf_counter()
            rnd += 1
            env_steps += round_steps
            comms += 1
            used = int(counts.sum())
            row = {
                "round": rnd,
                "time": now - t0,
                "round_seconds": now - opened,
                "env_steps": env_steps,
                "grads_used": used,
                "grads_dropped": dropped,
                "grads_stale": stale,
                "comms": comms,
                "closed": True,
                "grad_norm": float(gnorm),
                "train_return": ret_sum / max(used, 1),
                "compute_seconds": busy / max(used, 1),
                "agent_counts": counts.tolist(),
                "closer": i,
            }
            if afedpg:
                row["staleness"] = int(tag - version_sent[i])
            host = _host_tree(params)
            point_ref = ray.put(host)
            tag += 1
            if preempt and not afedpg:
                for k in live:
                    if k != i:
                        actors[k].preempt.remote(tag, point_ref)
            submit(i)
            for k in sorted(idle):
                if k in live:
                    submit(k)
            idle.clear()
            counts[:] = 0
            ret_sum, stale, dropped, round_steps, busy = 0.0, 0, 0, 0, 0.0
            if rnd % c.eval_every == 0:
                row["eval_return"] = float(evaluate(params, opt_state, rnd))
            emit(row)
            if rnd % c.eval_every == 0 and manager is not None:
                import orbax.checkpoint as ocp

                saved = dict(
                    params=params,
                    opt_state=opt_state,
                    round=np.asarray(rnd, np.int64),
                    time=np.asarray(row["time"], np.float64),
                    env_steps=np.asarray(env_steps, np.int64),
                    comms=np.asarray(comms, np.int64),
                )
                manager.save(rnd, args=ocp.args.StandardSave(saved))
                manager.wait_until_finished()
            if rnd % c.eval_every == 0:
                monitor.check(rows[-c.eval_every :], params, rnd)
            if bar is not None:
                bar.update(1)
            if on_round is not None:
                on_round(rnd, list(actors))
            opened = time.perf_counter()
    finally:
        # leave the actors idle: wake sleeping requests and wait for what is in flight
        for i in live:
            actors[i].stop.remote()
        if inflight:
            ray.wait(list(inflight), num_returns=len(inflight), timeout=30.0)
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        if manager is not None:
            manager.close()
    final = dict(
        params=params,
        eval_params=eval_params_fn(params, opt_state),
        opt_state=opt_state,
        round=rnd,
        time=rows[-1]["time"] if rows else 0.0,
        env_steps=env_steps,
        comms=comms,
    )
    return RayRun(c, final, rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use jnigt.executors.ray.train_ray (or `jnigt train --executor ray`)")
