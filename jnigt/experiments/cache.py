"""JAX's persistent compilation cache, on by default in every command (``jnigt train``, ``sweep``,
``compare``, ``reproduce``).

Compiling one training configuration takes tens of seconds on a CPU; the cache stores the compiled
XLA executables on disk so that a second run of the same configuration (same shapes, same
constants) starts at once. One switch, the same for every command: the folder is ``--cache-dir`` if
given, else ``$JNIGT_JAX_CACHE`` if set, else :data:`DEFAULT_CACHE_DIR` (``~/.cache/jnigt/jax``);
``--no-cache`` or ``JNIGT_JAX_CACHE=off`` switches it off (:func:`setup`). In Python:
``enable_compilation_cache(path)``, ``enable_compilation_cache(None)`` for off.
"""

from __future__ import annotations

import os

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
