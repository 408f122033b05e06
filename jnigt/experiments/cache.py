"""JAX's persistent compilation cache, on by default in every command (``jnigt train``, ``sweep``,
``compare``, ``reproduce``).

Compiling one training configuration takes tens of seconds on a CPU; the cache stores the compiled
XLA executables on disk so that a second run of the same configuration (same shapes, same
constants) starts at once. One switch, the same for every command: the folder is ``--cache-dir`` if
given, else ``$JNIGT_JAX_CACHE`` if set, else :data:`DEFAULT_CACHE_DIR` (``~/.cache/jnigt/jax``);
``--no-cache`` or ``JNIGT_JAX_CACHE=off`` switches it off (:func:`setup`). In Python:
``enable_compilation_cache(path)``, ``enable_compilation_cache(None)`` for off.

The same switch covers the traced programs of the equal-time runner (``jnigt compare``, ``sweep``,
``reproduce``): tracing a training program in Python costs about as much as the rest of a warm start, and
XLA's cache does not keep it, so :func:`exported_program` stores the traced and lowered programs
(``jax.export``) in the cache folder's ``exported/``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import json
import os
import sys
import threading
import warnings

import numpy as np

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "jnigt", "jax")
#: spellings of ``JNIGT_JAX_CACHE`` that switch the cache off
OFF = ("", "off", "none", "0", "false", "no")


def default_cache_dir() -> str | None:
    """``$JNIGT_JAX_CACHE`` (one of :data:`OFF`: no cache) or :data:`DEFAULT_CACHE_DIR`."""
    env = os.environ.get("JNIGT_JAX_CACHE")
    if env is None:
        return DEFAULT_CACHE_DIR
    return None if env.strip().lower() in OFF else env


def setup(cache_dir: str | None = None, no_cache: bool = False, min_compile_secs: float = 1.0) -> str | None:
    """A command's cache: off with ``no_cache``, else at ``cache_dir``, else at :func:`default_cache_dir`.

    Returns the folder in use (None when off); see :func:`enable_compilation_cache`.
    """
    path = None if no_cache else (cache_dir if cache_dir is not None else default_cache_dir())
    return enable_compilation_cache(path, min_compile_secs)


def enable_compilation_cache(
    path: str | None = DEFAULT_CACHE_DIR, min_compile_secs: float = 1.0
) -> str | None:
    """Turn JAX's persistent compilation cache on at ``path`` (created), or off when ``path`` is None.

    Every program that took at least ``min_compile_secs`` to compile is stored. Returns the folder
    in use (None when off).
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    # JAX sets its cache up once, at the first compile of the process: start it over so that a change
    # made after some compiles (e.g. by an earlier entry point in the same process) takes effect
    compilation_cache.reset_cache()
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def is_on() -> bool:
    """Whether JAX's persistent compilation cache is on (in this process)."""
    import jax

    return bool(jax.config.jax_enable_compilation_cache and jax.config.jax_compilation_cache_dir)


#: folder of the stored traced programs, inside the compilation cache's folder
EXPORTED_DIR = "exported"
#: distributions whose versions change what a trace produces
_TRACING_LIBRARIES = (
    "jax",
    "jaxlib",
    "brax",
    "mujoco",
    "mujoco-mjx",
    "optax",
    "flax",
    "chex",
    "numpy",
    "playground",
)
#: JAX flags that change what a trace produces
_TRACING_FLAGS = (
    "jax_enable_x64",
    "jax_default_matmul_precision",
    "jax_default_prng_impl",
    "jax_threefry_partitionable",
    "jax_numpy_dtype_promotion",
)


@functools.cache
def _code_fingerprint() -> str:
    """A hash of jnigt's and jnigt_envs's source files and of the versions of the tracing libraries."""
    h = hashlib.sha256(sys.version.encode())
    for package in ("jnigt", "jnigt_envs"):
        root = os.path.dirname(importlib.import_module(package).__file__)
        for folder, subfolders, names in os.walk(root):
            subfolders.sort()
            for name in sorted(n for n in names if n.endswith(".py")):
                path = os.path.join(folder, name)
                h.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as f:
                    h.update(f.read())
    for dist in _TRACING_LIBRARIES:
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist}=-".encode())
    return h.hexdigest()


def exported_program(fn, args, key: str | None):
    """``jax.export.export(fn)(*args)`` (``fn`` jitted), read back from the cache folder when an earlier run
    stored the same program.

    The persistent compilation cache stores XLA's compiled code only, so every run traces its programs
    again in Python, which costs about as much as the rest of a warm start-up. With the cache on and a
    ``key`` (a string that identifies the program beyond its arguments: the caller's configuration),
    the traced and lowered program is stored as ``<cache folder>/exported/<hash>.bin``. The hash covers
    ``key``, the shapes and dtypes of ``args``, jnigt's source files, the versions of the libraries that
    trace (:data:`_TRACING_LIBRARIES`), the JAX flags that change a trace (:data:`_TRACING_FLAGS`) and the
    backend. A file that cannot be read back is exported again and replaced. Calling the result
    (``jax.jit(exported.call)``) gives the numbers of calling ``fn``: the same program
    (tests/test_experiments.py checks it bitwise)."""
    import jax

    folder = None
    if key is not None and is_on():
        folder = os.path.join(jax.config.jax_compilation_cache_dir, EXPORTED_DIR)
    if folder is None:
        return jax.export.export(fn)(*args)
    what = [
        key,
        [(tuple(np.shape(a)), np.result_type(a).str) for a in args],
        _code_fingerprint(),
        [str(getattr(jax.config, flag)) for flag in _TRACING_FLAGS],
        jax.default_backend(),
    ]
    path = os.path.join(folder, hashlib.sha256(json.dumps(what).encode()).hexdigest() + ".bin")
    if os.path.exists(path):
        try:
            with open(path, "rb") as f:
                return jax.export.deserialize(bytearray(f.read()))
        except Exception as e:  # noqa: BLE001 -- a damaged cache entry is traced again, not fatal
            warnings.warn(
                f"compilation cache: cannot read {path} ({type(e).__name__}); tracing again", stacklevel=2
            )
    exported = jax.export.export(fn)(*args)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(exported.serialize())
    os.replace(tmp, path)  # readers see a whole file or none
    return exported
