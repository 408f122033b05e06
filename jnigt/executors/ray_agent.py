"""The Ray executor's agents (jnigt/executors/ray.py): one actor per agent, computing GPOMDP gradients at
its real speed, slowed down to emulate the time model's h_i (docs/algorithms.md#simulated-time).

What runs in the actor processes, and how they are started: :class:`Agent` (wrapped by ``ray.remote``),
:func:`make_agents` (a pool of them), :func:`runtime_env` (their environment) and :func:`agent_delays`
(the seconds each sleeps after a trajectory).
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time

import jax
import numpy as np

import jnigt
from jnigt import validate
from jnigt.gradients.gpomdp import trajectory_gradient
from jnigt.training import build

SLOWDOWNS = ("step", "trajectory", None)

__all__ = ["SLOWDOWNS", "Agent", "agent_delays", "make_agents", "runtime_env"]


def import_ray():
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is an optional dependency
        raise ImportError("the Ray executor needs ray: pip install 'jnigt[ray]'") from e
    return ray


def agent_delays(config, slowdown: str | None = "step", time_scale: float = 1e-3) -> np.ndarray:
    """Emulated seconds each agent sleeps after one trajectory, float64 ``[n]`` (inf = dead agent).

    ``step``: ``H * h_i * time_scale``; ``trajectory``: ``h_i * time_scale``; None: zeros. h_i comes
    from ``jnigt.training.build.make_timing`` with the config's step_model, stragglers and dead agents.
    """
    if slowdown not in SLOWDOWNS:
        raise ValueError(f"slowdown must be one of {SLOWDOWNS}, got {slowdown!r}")
    time_scale = validate.real("time_scale", time_scale, low=0.0)
    # the simulator's clock of config (the same checks), without communication: Ray's is real
    t = build.make_timing(dataclasses.replace(config, comm_model="zero"))
    h = np.asarray(t.step_time, np.float64)
    if slowdown is None:
        return np.where(np.isfinite(h), 0.0, np.inf)
    per = config.horizon if slowdown == "step" else 1
    return h * per * time_scale


def runtime_env(extra_env: dict[str, str] | None = None) -> dict:
    """Ray ``runtime_env`` for the agent actors: import this jnigt and jnigt_envs, JAX on 1 CPU thread.

    PYTHONPATH is built from where the driver found ``jnigt`` and ``jnigt_envs``, so it works both
    from an installed package and from a source tree.
    """
    import jnigt_envs  # on first use, as in jnigt/training/learner.py: it imports the simulators

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


# ---------------------------------------------------------------------------- the agent actor


class Agent:
    """One agent (wrapped by ``ray.remote``): its env, its policy, its jitted GPOMDP gradient.

    ``setup`` (re)configures it for a run, so a pool of actors (:func:`make_agents`) can serve
    many runs without restarting processes. Trajectory keys:
    ``fold_in(fold_in(fold_in(key(seed), tag), agent), j)`` for the agent's j-th trajectory of the
    run, computed at the point with tag ``tag`` (the round id, or the server version for AFedPG).
    """

    def __init__(self):
        self._cache: dict = {}
        self._cv = threading.Condition()
        self._newest, self._next, self._generation, self._count = -1, None, 0, 0

    def setup(self, agent, config, delay, params, obs_stats=None):
        """Configure for agent ``agent`` of a run of ``config`` (a TrainConfig) starting at ``params``, and
        compile (and run once) the gradient; returns the seconds it took. ``obs_stats``: the run's
        observation statistics (docs/algorithms.md#obs-norm), None for raw observations."""
        t0 = time.perf_counter()
        c = config
        spec = (c.env, c.backend, tuple(sorted(build.policy_kwargs(c).items())), c.horizon, c.discount)
        if spec not in self._cache:
            from jnigt_envs import make_env  # on first use, as in jnigt/training/learner.py

            env = make_env(c.env, backend=c.backend)
            policy = build.make_policy(c, env)

            def grad(p, obs_stats, seed, tag, agent, j):
                key = jax.random.key(seed)
                for x in (tag, agent, j):
                    key = jax.random.fold_in(key, x)
                tg = trajectory_gradient(policy, env, p, key, agent, c.horizon, c.discount, obs_stats)
                return tg.grad, tg.ret, tg.steps

            self._cache[spec] = jax.jit(grad)
        self._grad = self._cache[spec]
        jax.block_until_ready(self._grad(params, obs_stats, int(c.seed), 0, int(agent), 0))
        with self._cv:
            self._generation += 1
            self._newest, self._next, self._count = -1, None, 0
            self._cv.notify_all()
        self.agent, self.seed, self.delay, self.jitter = (
            int(agent),
            int(c.seed),
            float(delay),
            float(c.jitter),
        )
        self.obs_stats = obs_stats
        self._rng = np.random.default_rng([int(c.seed), int(agent)])
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
            grad, ret, steps = self._grad(params, self.obs_stats, self.seed, int(tag), self.agent, int(j))
            grad = host_tree(grad)
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


def host_tree(tree):
    return jax.tree.map(np.asarray, tree)


def make_agents(num_agents: int, *, num_cpus: float = 0.0, extra_env: dict[str, str] | None = None) -> list:
    """Start ``num_agents`` agent actors (Ray must be initialised) to pass as ``train_ray(agents=...)``.

    They start once (importing JAX) and serve any number of runs; ``ray.kill`` them when done.
    """
    ray = import_ray()
    if isinstance(num_agents, bool) or not isinstance(num_agents, (int, np.integer)) or num_agents < 1:
        raise ValueError(f"num_agents must be an int >= 1, got {num_agents!r}")
    if not ray.is_initialized():
        raise RuntimeError("make_agents needs a running Ray: call ray.init(...) first")
    remote_agent = ray.remote(Agent).options(
        num_cpus=num_cpus, max_concurrency=3, runtime_env=runtime_env(extra_env)
    )
    return [remote_agent.remote() for _ in range(int(num_agents))]
