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
``extra_records`` (optional) adds records computed from theta_t at every grid point in the same program,
e.g. the exact gradient norm on LQR (``jnigt.experiments.lqr_exact.exact_records``); they land in
``GridRuns.extra``. Without it the program and its numbers are the same as before.

Traced per-agent times (``EqualTimeRunner(trainer, traced_times=True)``): the program becomes

    runs(seeds[K], learning_rates[K], momenta[K], times[G], step_time[K, n], comm_time[K, n])

with ``h_i`` and ``kappa_i`` traced per run, so ONE compile per method and M serves every timing of the
same shape (a crossover map over kappa / (H h) and h: one call per cell, or several cells' runs in one
call). The method is rebuilt inside the trace on a ``jnigt.timing.Timing`` whose leaves are the traced
times (``jitter``, ``allreduce_cost``, ``time_unit``, ``charge`` and ``n`` stay those of
``trainer.config``: static). Which part of a schedule is planned on the host from the times decides
what may be traced:

* Rennala and Synchronized NIGT: nothing. Their rounds (``jnigt.timing.rennala_round``,
  ``synchronized_round``) are computed in the trace from the times; shapes depend on n and M only.
* AFedPG: the block size B of its batched arrivals (``jnigt.timing.afedpg_block_size``) stays the one
  planned from ``trainer.config``'s times. Any B >= 1 gives the same numbers (docs/algorithms.md#afedpg),
  so no time axis must stay static for correctness; only speed depends on how well B fits a cell.
* Malenia NIGT: refused. Its per-agent arrival buffer and slot count
  (``jnigt.timing.malenia_max_per_agent``) are shapes planned from the times; use one runner per timing.

Passing a trainer's own times gives the numbers of the static program (tests/test_theory_lqr.py).

Some grid points are expected to diverge, so a sweep never stops for one: a run is flagged ``diverged``
(per run, ``[K]``) when any of its steps has a non-finite ``grad_norm`` or ``train_return``, any
evaluation is non-finite, or its parameters stay unchanged for ``config.stall_rounds`` consecutive
steps (the checks ``jnigt.training.train`` makes between chunks, see jnigt/training/divergence.py);
tuning scores such a point as the worst (``jnigt.experiments.tuning.grid_row``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jnigt import timing as timing_lib
from jnigt import validate
from jnigt.experiments import cache
from jnigt.training import methods

#: Base of the evaluation keys: ``eval_key(seed, j) = fold_in(fold_in(key(EVAL_SEED), seed), j)``.
EVAL_SEED = 7919
RECORDS = ("eval_return", "rounds", "env_steps", "grads_used", "comms")
#: XLA options of ``EqualTimeRunner(fast_compile=True)``: about half the CPU compile time, slower code;
#: for tiny runs (tests) where compiling dominates.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _call_args(seeds, learning_rates, momenta, times) -> tuple:
    """``__call__``'s inputs as the program's arguments: int32 seeds [K], float32 hyperparameters
    broadcast to [K], float32 times."""
    seeds = np.asarray(seeds, np.int32).reshape(-1)
    lrs = np.broadcast_to(np.asarray(learning_rates, np.float32), seeds.shape)
    moms = np.broadcast_to(np.asarray(momenta, np.float32), seeds.shape)
    return seeds, lrs, moms, np.asarray(times, np.float32)


def _shapes(args) -> tuple:
    return tuple((np.shape(a), np.result_type(a).str) for a in args)


def eval_key(seed, index):
    """PRNG key of the evaluation episodes of run ``seed`` at grid point ``index`` (traced allowed)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(EVAL_SEED), seed), index)


def time_grid(t_end: float, points: int) -> np.ndarray:
    """``points`` equally spaced simulated times from 0 to ``t_end`` (float32, as the trainer's clock)."""
    points = validate.integer("points", points, 2)
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
    diverged: np.ndarray
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    """``[K, G]`` records of the runner's ``extra_records``, by name (empty without them)"""

    def take(self, index) -> GridRuns:
        """The runs at ``index`` (an index array or boolean mask over K)."""
        per_run = {f.name for f in dataclasses.fields(self)} - {"method", "batch_size", "times", "extra"}
        extra = {k: v[index] for k, v in self.extra.items()}
        return dataclasses.replace(self, extra=extra, **{k: getattr(self, k)[index] for k in per_run})

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
                row.update({r: v[k, j].item() for r, v in self.extra.items()})
                out.append(row)
        return out


def concat(parts: Sequence[GridRuns]) -> GridRuns:
    """Runs of one method and batch size from several calls, in order."""
    first = parts[0]
    skip = ("method", "batch_size", "times", "extra")
    per_run = [f.name for f in dataclasses.fields(first) if f.name not in skip]
    extra = {k: np.concatenate([p.extra[k] for p in parts]) for k in first.extra}
    return dataclasses.replace(
        first, extra=extra, **{k: np.concatenate([getattr(p, k) for p in parts]) for k in per_run}
    )


class EqualTimeRunner:
    """Compiles ``trainer``'s equal-time program once; call it on any batch of runs and any grid.

    Args:
      trainer: a ``jnigt.training.Trainer`` (or anything with its pure ``init``/``step``/``next_time``/
        ``evaluate``).
      max_steps: safety cap on the steps of one run (default: none in practice).
      fast_compile: compile with :data:`FAST_COMPILE` (tiny runs, tests).
      extra_records: ``f(theta_t) -> {name: scalar}``, traced at every grid point (theta_t =
        ``trainer.eval_params(state)``); the records come back in ``GridRuns.extra``, float32.
      traced_times: per-run ``step_time`` / ``comm_time`` arguments instead of ``trainer.config``'s
        times (module docstring: which methods, what stays static).
      program_key: what identifies the program beyond ``trainer.config`` and these options (e.g. the
        panel the trainer and its environment were built from). Given, without ``extra_records``, and
        with the compilation cache on, the traced program is stored and later runs skip tracing
        (:func:`jnigt.experiments.cache.exported_program`); None: traced in every process.
    """

    def __init__(
        self,
        trainer,
        max_steps: int = 2**31 - 1,
        fast_compile: bool = False,
        extra_records: Callable[[object], dict] | None = None,
        traced_times: bool = False,
        program_key: str | None = None,
    ):
        if extra_records is not None and not callable(extra_records):
            raise TypeError(f"extra_records: must be a function of theta_t or None (got {extra_records!r})")
        if traced_times and methods.get(trainer.config.method).TRACED_TIMES is None:
            traceable = [name for name, module in methods.METHODS.items() if module.TRACED_TIMES is not None]
            raise ValueError(
                f"traced_times: supported for {', '.join(traceable)} (got method "
                f"{trainer.config.method!r}: its buffers are planned on the host from the times; use one "
                "runner per timing)"
            )
        self.traced_times = bool(traced_times)
        self.trainer = trainer
        self.extra_records = extra_records
        self.max_steps = int(max_steps)
        self.method = trainer.config.method
        self.batch_size = int(trainer.config.batch_size)
        if self.traced_times:
            self._program = jax.jit(jax.vmap(self._one_run_timed, in_axes=(0, 0, 0, None, 0, 0)))
        else:
            self._program = jax.jit(jax.vmap(self._one_run, in_axes=(0, 0, 0, None)))
        #: XLA options of its compiles (:data:`FAST_COMPILE` or None)
        self.compiler_options = FAST_COMPILE if fast_compile else None
        self._key = program_key
        self._compiled = {}

    def _call(self, *args):
        shapes = _shapes(args)
        if shapes not in self._compiled:
            self._compiled[shapes] = self.lower(*args).compile(self.compiler_options)
        return self._compiled[shapes](*args)

    def lower(self, *args) -> jax.stages.Lowered:
        """The program traced and lowered for the shapes of ``args`` (``__call__``'s arguments, as
        converted there), through ``jax.export`` so that the trace can be stored
        (:func:`jnigt.experiments.cache.exported_program`); compile it with ``.compile()``."""
        key = None  # extra_records: a function whose closure the key cannot see, so never stored
        if self._key is not None and self.extra_records is None:
            key = repr((self._key, self.trainer.config, self.traced_times, self.max_steps))
        exported = cache.exported_program(self._program, args, key)
        return jax.jit(exported.call).lower(*args)

    def call_args(self, runs: int, times) -> tuple:
        """Arguments of the shapes and dtypes of a call of ``runs`` runs on ``times`` (zeros; without
        ``traced_times``), for :meth:`lower` ahead of the call."""
        return _call_args(np.zeros(runs), 0.0, 0.0, times)

    def is_compiled(self, *args) -> bool:
        """Whether the program for the shapes of ``args`` is compiled in this runner already."""
        return _shapes(args) in self._compiled

    def add_compiled(self, args, compiled) -> None:
        """Use ``compiled`` (``self.lower(*args).compile()``, e.g. compiled in another thread) for the
        shapes of ``args``."""
        self._compiled[_shapes(args)] = compiled

    def _one_run_timed(self, seed, learning_rate, momentum, times, step_time, comm_time):
        """``_one_run`` with the method rebuilt on the traced times (module docstring)."""
        tr = self.trainer
        timing = dataclasses.replace(tr.timing, step_time=step_time, comm_time=comm_time)
        ctx = dataclasses.replace(tr.rounds.ctx, timing=timing)
        # every method reads its clock through ctx.timing (AFedPG's block size stays as planned)
        rounds = dataclasses.replace(tr.rounds, ctx=ctx)
        view = copy.copy(tr)  # Trainer.init / eval_params / evaluate with the rebuilt method's rounds
        view.rounds = rounds

        def step(state):  # Trainer.step with the rebuilt method's rounds
            state, metrics = rounds.steps(state, 1)
            return state, jax.tree.map(lambda x: x[0], metrics)

        return self._one_run(seed, learning_rate, momentum, times, view, step, rounds.next_time)

    def _one_run(self, seed, learning_rate, momentum, times, tr=None, step=None, next_time=None):
        tr = self.trainer if tr is None else tr
        step = tr.step if step is None else step
        next_time = tr.next_time if next_time is None else next_time
        state = tr.init(seed, learning_rate, momentum)
        shapes = jax.eval_shape(step, state)[1]
        advance = tr.rounds.advance
        zero = lambda name: jnp.zeros([], shapes[name].dtype)
        acc0 = dict(
            rounds=jnp.zeros([], jnp.int32),
            env_steps=zero("env_steps"),
            grads_used=zero("grads_used"),
            comms=zero("comms"),
        )

        def interval(carry, xs):
            g, j = xs

            def cond(st, x):
                return (next_time(st) <= g) & (x[0]["rounds"] < self.max_steps)

            def record(x, m, old, new):
                """The running records and divergence flags after one step ``old -> new``."""
                acc, flags = x
                acc = dict(
                    rounds=acc["rounds"] + 1,
                    env_steps=m["env_steps"],
                    grads_used=acc["grads_used"] + m["grads_used"],
                    comms=m["comms"],
                )
                moved = jnp.any(
                    jnp.stack(
                        [
                            jnp.any(a != b)
                            for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(old.params))
                        ]
                    )
                )
                streak = jnp.where(moved, 0, flags["streak"] + 1)
                flags = dict(
                    bad=flags["bad"] | ~jnp.isfinite(m["grad_norm"]) | ~jnp.isfinite(m["train_return"]),
                    streak=streak,
                    longest=jnp.maximum(flags["longest"], streak),
                )
                return acc, flags

            st, acc, flags = carry
            if advance is not None:  # AFedPG along its known schedule: arrivals in blocks
                state, (acc, flags) = advance(st, (acc, flags), cond, record)
            else:

                def body(c):
                    new, m = step(c[0])
                    return new, record(c[1], m, c[0], new)

                state, (acc, flags) = jax.lax.while_loop(lambda c: cond(*c), body, (st, (acc, flags)))
            ret = jnp.asarray(tr.evaluate(state, eval_key(seed, j)), jnp.float32)
            flags = dict(flags, bad=flags["bad"] | ~jnp.isfinite(ret))
            recs = dict(eval_return=ret, **acc)
            if self.extra_records is not None:
                extra = self.extra_records(tr.eval_params(state))
                recs["extra"] = {k: jnp.asarray(v, jnp.float32) for k, v in extra.items()}
            return (state, acc, flags), recs

        flags0 = dict(
            bad=jnp.zeros([], bool), streak=jnp.zeros([], jnp.int32), longest=jnp.zeros([], jnp.int32)
        )
        (state, acc, flags), recs = jax.lax.scan(
            interval, (state, acc0, flags0), (times, jnp.arange(times.shape[0]))
        )
        recs["capped"] = acc["rounds"] >= self.max_steps
        stall = tr.config.stall_rounds
        recs["diverged"] = flags["bad"] | (flags["longest"] >= (stall if stall is not None else 2**31 - 1))
        return recs

    def _per_run_times(self, step_time, comm_time, k: int):
        """``[K, n]`` float32 step and communication times, every distinct row checked as
        ``jnigt.training.build.make_timing`` checks the config's (values, dead agents, reachable M)."""
        if not self.traced_times:
            if step_time is not None or comm_time is not None:
                raise ValueError("step_time, comm_time: need EqualTimeRunner(..., traced_times=True)")
            return ()
        if step_time is None or comm_time is None:
            raise ValueError("step_time, comm_time: a traced-times runner needs both ([n] or [K, n] each)")
        n = self.trainer.config.num_agents
        out = []
        for name, x in (("step_time", step_time), ("comm_time", comm_time)):
            x = np.asarray(x, np.float64)
            if x.shape not in ((n,), (k, n)):
                raise ValueError(f"{name}: must be [n] or [K, n] with n={n}, K={k} (got shape {x.shape})")
            out.append(np.broadcast_to(x, (k, n)))
        module, old = methods.get(self.method), self.trainer.timing
        for h, kappa in {(tuple(a), tuple(b)) for a, b in zip(*out)}:
            t = dataclasses.replace(old, step_time=np.asarray(h), comm_time=np.asarray(kappa))
            timing_lib.check_progress(t, module.WAITS_FOR_EVERY_AGENT, module.LABEL)
            timing_lib.reachable(t, self.batch_size)
        return tuple(np.ascontiguousarray(x, np.float32) for x in out)

    def __call__(self, seeds, learning_rates, momenta, times, step_time=None, comm_time=None) -> GridRuns:
        """Run K = len(seeds) runs (one call, one compile per K). All inputs are 1-D of length K; with
        ``traced_times``, ``step_time`` and ``comm_time`` are ``[n]`` (every run) or ``[K, n]``."""
        seeds, lrs, moms, times = _call_args(seeds, learning_rates, momenta, times)
        if times.ndim != 1 or times.size < 1 or np.any(np.diff(times) < 0):
            raise ValueError(f"times: must be a non-decreasing 1-D grid (got {times!r})")
        if seeds.size == 0:
            raise ValueError("seeds: need at least one run")
        timed = self._per_run_times(step_time, comm_time, seeds.size)
        recs = jax.device_get(self._call(seeds, lrs, moms, times, *timed))
        return GridRuns(
            method=self.method,
            batch_size=self.batch_size,
            times=times,
            seeds=seeds,
            learning_rates=np.asarray(lrs),
            momenta=np.asarray(moms),
            capped=np.asarray(recs["capped"]),
            diverged=np.asarray(recs["diverged"]),
            extra={k: np.asarray(v) for k, v in recs.get("extra", {}).items()},
            **{r: np.asarray(recs[r]) for r in RECORDS},
        )

    def run_chunked(
        self,
        seeds,
        learning_rates,
        momenta,
        times,
        runs_per_call: int,
        progress=None,
        step_time=None,
        comm_time=None,
    ) -> GridRuns:
        """Like ``__call__`` but in calls of exactly ``runs_per_call`` runs (the last one padded with
        copies of its first run, dropped after), so every call reuses ONE compiled program."""
        seeds, lrs, moms, times = _call_args(seeds, learning_rates, momenta, times)
        n = self.trainer.config.num_agents
        per_run = lambda x: None if x is None else np.broadcast_to(np.asarray(x, np.float64), (seeds.size, n))
        step_time, comm_time = per_run(step_time), per_run(comm_time)
        timed = lambda pad: (
            {} if step_time is None else dict(step_time=step_time[pad], comm_time=comm_time[pad])
        )
        c = validate.integer("runs_per_call", runs_per_call)
        parts = []
        for s in range(0, seeds.size, c):
            idx = np.arange(s, min(s + c, seeds.size))
            pad = np.concatenate([idx, np.full(c - idx.size, idx[0])])
            part = self(seeds[pad], lrs[pad], moms[pad], times, **timed(pad))
            parts.append(part.take(np.arange(idx.size)))
            if progress is not None:
                progress.update(idx.size)
        return concat(parts)
