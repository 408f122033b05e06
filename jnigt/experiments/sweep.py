"""K training runs in ONE jitted program, evaluated on one fixed grid of simulated times.

``EqualTimeRunner(trainer)`` compiles, once per Trainer (one method, one batch size M: M fixes the
shapes), the program

    runs(seeds[K], learning_rates[K], momenta[K], times[G]) -> records [K, G]

= ``jax.jit(jax.vmap(one_run, in_axes=(0, 0, 0, None)))``. One run (see docs/algorithms.md#simulated-time):

    state = trainer.init(seed, learning_rate, momentum)        # hyperparameters are traced values
    for each grid time g_j (lax.scan over the grid):
        while trainer.next_time(state) <= g_j:                 # lax.while_loop
            state, m = trainer.step(state)                     # every step ending by g_j is done
        record evaluate(theta_t, key_j), rounds, env_steps, grads_used, comms

so a run at grid time g is evaluated at its current theta_t after every step whose end time is <= g
(AFedPG under charge "horizon" without jitter runs the same arrivals through ``method.advance``, which
samples a block of them in one batch: docs/algorithms.md#afedpg):
all methods and all runs share the same x values, whatever their round lengths (AFedPG's single
arrivals, Rennala's rounds, Synchronized's slowest agent). The evaluation is inside the same program
(no second compile) and its episodes use ``eval_key(seed, j)``: the same episodes for every method
and hyperparameter at a given seed and grid point (common random numbers). ``times`` is an argument,
so one compile serves every end time. Under ``vmap`` the while loop runs until every run in the
batch is past ``g_j`` (finished runs are masked), so a batch costs its slowest run.

``rounds`` counts server updates (AFedPG: arrivals); ``grads_used`` is cumulative; ``env_steps`` and
``comms`` are the trainer's running totals. A run that hits ``max_steps`` stops stepping (``capped``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

#: Base of the evaluation keys: ``eval_key(seed, j) = fold_in(fold_in(key(EVAL_SEED), seed), j)``.
EVAL_SEED = 7919
RECORDS = ("eval_return", "rounds", "env_steps", "grads_used", "comms")
#: XLA options of ``EqualTimeRunner(fast_compile=True)``: about half the CPU compile time, slower code;
#: for tiny runs (tests) where compiling dominates.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def eval_key(seed, index):
    """PRNG key of the evaluation episodes of run ``seed`` at grid point ``index`` (traced allowed)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(EVAL_SEED), seed), index)


def time_grid(t_end: float, points: int) -> np.ndarray:
    """``points`` equally spaced simulated times from 0 to ``t_end`` (float32, as the trainer's clock)."""
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise ValueError(f"points: must be an int >= 2 (got {points!r})")
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end: must be a positive finite time (got {t_end!r})")
    return np.linspace(0.0, float(t_end), int(points), dtype=np.float32)


@dataclasses.dataclass
class GridRuns:
    """K runs on one time grid. Arrays ``[K, G]`` (records) or ``[K]`` (per run), numpy."""

    method: str
    batch_size: int
    times: np.ndarray
    seeds: np.ndarray
    learning_rates: np.ndarray
    momenta: np.ndarray
    eval_return: np.ndarray
    rounds: np.ndarray
    env_steps: np.ndarray
    grads_used: np.ndarray
    comms: np.ndarray
    capped: np.ndarray

    def take(self, index) -> GridRuns:
        """The runs at ``index`` (an index array or boolean mask over K)."""
        per_run = {f.name for f in dataclasses.fields(self)} - {"method", "batch_size", "times"}
        return dataclasses.replace(self, **{k: getattr(self, k)[index] for k in per_run})

    def where(self, learning_rate: float, momentum: float) -> GridRuns:
        """The runs of one hyperparameter point."""
        lr = np.isclose(self.learning_rates, learning_rate, rtol=1e-6)
        return self.take(lr & np.isclose(self.momenta, momentum, rtol=1e-6))

    def rows(self, **extra) -> list[dict]:
        """Long format: one dict per run and grid point (for CSV)."""
        out = []
        for k in range(len(self.seeds)):
            for j, t in enumerate(self.times):
                row = dict(extra)
                row.update(
                    method=self.method,
                    batch_size=self.batch_size,
                    learning_rate=float(self.learning_rates[k]),
                    momentum=float(self.momenta[k]),
                    seed=int(self.seeds[k]),
                    time=float(t),
                )
                row.update({r: getattr(self, r)[k, j].item() for r in RECORDS})
                out.append(row)
        return out


def concat(parts: Sequence[GridRuns]) -> GridRuns:
    """Runs of one method and batch size from several calls, in order."""
    first = parts[0]
    per_run = [f.name for f in dataclasses.fields(first) if f.name not in ("method", "batch_size", "times")]
    return dataclasses.replace(first, **{k: np.concatenate([getattr(p, k) for p in parts]) for k in per_run})


class EqualTimeRunner:
    """Compiles ``trainer``'s equal-time program once; call it on any batch of runs and any grid.

    Args:
      trainer: a ``jnigt.training.Trainer`` (or anything with its pure ``init``/``step``/``next_time``/
        ``evaluate``).
      max_steps: safety cap on the steps of one run (default: none in practice).
      fast_compile: compile with :data:`FAST_COMPILE` (tiny runs, tests).
    """

    def __init__(self, trainer, max_steps: int = 2**31 - 1, fast_compile: bool = False):
        self.trainer = trainer
        self.max_steps = int(max_steps)
        self.method = trainer.config.method
        self.batch_size = int(trainer.config.batch_size)
        self._program = jax.jit(jax.vmap(self._one_run, in_axes=(0, 0, 0, None)))
        self._options = FAST_COMPILE if fast_compile else None
        self._compiled = {}

    def _call(self, *args):
        if self._options is None:
            return self._program(*args)
        shapes = tuple(np.shape(a) for a in args)
        if shapes not in self._compiled:
            self._compiled[shapes] = self._program.lower(*args).compile(compiler_options=self._options)
        return self._compiled[shapes](*args)

    def _one_run(self, seed, learning_rate, momentum, times):
        tr = self.trainer
        state = tr.init(seed, learning_rate, momentum)
        shapes = jax.eval_shape(tr.step, state)[1]
        advance = getattr(getattr(tr, "method", None), "advance", None)
        zero = lambda name: jnp.zeros([], shapes[name].dtype)
        acc0 = dict(
            rounds=jnp.zeros([], jnp.int32),
            env_steps=zero("env_steps"),
            grads_used=zero("grads_used"),
            comms=zero("comms"),
        )

        def interval(carry, xs):
            g, j = xs

            def cond(c):
                st, acc = c
                return (tr.next_time(st) <= g) & (acc["rounds"] < self.max_steps)

            def record(acc, m):
                return dict(
                    rounds=acc["rounds"] + 1,
                    env_steps=m["env_steps"],
                    grads_used=acc["grads_used"] + m["grads_used"],
                    comms=m["comms"],
                )

            if advance is not None:  # AFedPG along its known schedule: arrivals in blocks
                state, acc = advance(*carry, lambda st, acc: cond((st, acc)), record)
            else:

                def body(c):
                    st, m = tr.step(c[0])
                    return st, record(c[1], m)

                state, acc = jax.lax.while_loop(cond, body, carry)
            ret = tr.evaluate(state, eval_key(seed, j))
            return (state, acc), dict(eval_return=jnp.asarray(ret, jnp.float32), **acc)

        (state, acc), recs = jax.lax.scan(interval, (state, acc0), (times, jnp.arange(times.shape[0])))
        recs["capped"] = acc["rounds"] >= self.max_steps
        return recs

    def __call__(self, seeds, learning_rates, momenta, times) -> GridRuns:
        """Run K = len(seeds) runs (one call, one compile per K). All inputs are 1-D of length K."""
        seeds = np.asarray(seeds, np.int32).reshape(-1)
        lrs = np.broadcast_to(np.asarray(learning_rates, np.float32), seeds.shape)
        moms = np.broadcast_to(np.asarray(momenta, np.float32), seeds.shape)
        times = np.asarray(times, np.float32)
        if times.ndim != 1 or times.size < 1 or np.any(np.diff(times) < 0):
            raise ValueError(f"times: must be a non-decreasing 1-D grid (got {times!r})")
        if seeds.size == 0:
            raise ValueError("seeds: need at least one run")
        recs = jax.device_get(self._call(seeds, lrs, moms, times))
        return GridRuns(
            method=self.method,
            batch_size=self.batch_size,
            times=times,
            seeds=seeds,
            learning_rates=np.asarray(lrs),
            momenta=np.asarray(moms),
            capped=np.asarray(recs["capped"]),
            **{r: np.asarray(recs[r]) for r in RECORDS},
        )

    def run_chunked(
        self, seeds, learning_rates, momenta, times, runs_per_call: int, progress=None
    ) -> GridRuns:
        """Like ``__call__`` but in calls of exactly ``runs_per_call`` runs (the last one padded with
        copies of its first run, dropped after), so every call reuses ONE compiled program."""
        seeds = np.asarray(seeds, np.int32).reshape(-1)
        lrs = np.broadcast_to(np.asarray(learning_rates, np.float32), seeds.shape)
        moms = np.broadcast_to(np.asarray(momenta, np.float32), seeds.shape)
        c = int(runs_per_call)
        if c < 1:
            raise ValueError(f"runs_per_call: must be an int >= 1 (got {runs_per_call!r})")
        parts = []
        for s in range(0, seeds.size, c):
            idx = np.arange(s, min(s + c, seeds.size))
            pad = np.concatenate([idx, np.full(c - idx.size, idx[0])])
            part = self(seeds[pad], lrs[pad], moms[pad], times)
            parts.append(part.take(np.arange(idx.size)))
            if progress is not None:
                progress.update(idx.size)
        return concat(parts)
