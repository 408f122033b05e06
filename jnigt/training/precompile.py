"""Compile a run's programs before it trains: ``jax.jit(...).lower(...).compile()``, in threads.

A :class:`~jnigt.training.Trainer` runs two programs: the chunk (``eval_every`` steps and an
evaluation) and, for a fresh run, the evaluation of the initial policy. Compiled ahead of time, a
later call of the same jitted function with the same argument types runs the compiled executable
at once, so the progress bar's rate and ETA count training only. XLA releases the GIL while it
compiles, so the programs of several runs (a comparison's methods) compile concurrently while the
calling thread traces and lowers the next one. The executables are the ones a plain call would
compile: same program, same numbers.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import jax

from jnigt.distributed import is_writer

#: Trainer -> names of its programs already compiled ahead in this process
_DONE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: compiling threads (idle ones cost nothing; a comparison of m methods has up to 2 m programs)
_THREADS = 8


def _to_stderr(message: str) -> None:
    if is_writer():
        print(message, file=sys.stderr, flush=True)


def _persistent_cache_on() -> bool:
    """Whether JAX's persistent compilation cache is on (jnigt.experiments.cache), so that later runs
    load these programs instead of compiling them."""
    return bool(jax.config.jax_enable_compilation_cache and jax.config.jax_compilation_cache_dir)


def precompile(
    runs: Iterable[tuple[str, object, object]],
    *,
    evaluate: bool = True,
    log: Callable[[str], None] | None = _to_stderr,
    meanwhile: Callable[[], object] | None = None,
) -> float:
    """Compile the chunk (and, if ``evaluate``, the initial evaluation) of each ``(name, trainer,
    state)`` of ``runs``; ``state`` is the state the run starts from. ``runs`` may be a generator: the
    next run is built while the programs of the previous ones compile. Programs compiled ahead before
    (same trainer) are skipped. Says ``compiling <name> (first run only)`` per run through ``log``
    (default: stderr of the writing process; None: silent). ``meanwhile()`` runs in this thread while
    the last programs compile (e.g. the imports the run needs next). Returns the seconds it took."""
    t0 = time.perf_counter()
    futures = []
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        for name, trainer, state in runs:
            done = _DONE.setdefault(trainer, set())
            programs = [("chunk", trainer._chunk, (state,))]
            if evaluate:
                programs.append(("evaluate", trainer._evaluate, (state, None)))
            programs = [p for p in programs if p[0] not in done]
            if programs and log is not None:
                log(f"compiling {name}{' (first run only)' if _persistent_cache_on() else ''}")
            for program, fn, args in programs:
                # trace and lower here (Python, holds the GIL); compile in a thread (XLA releases it)
                futures.append((done, program, pool.submit(fn.lower(*args).compile)))
        if meanwhile is not None:
            meanwhile()
        for done, program, future in futures:
            future.result()
            done.add(program)
    if not futures:
        return 0.0
    seconds = time.perf_counter() - t0
    if log is not None:
        log(f"compiled in {seconds:.1f} s")
    return seconds
