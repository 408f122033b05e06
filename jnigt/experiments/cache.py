"""JAX's persistent compilation cache, on by default in the experiment entry points.

Compiling one training configuration takes tens of seconds on a CPU; the cache stores the compiled
XLA executables on disk so that a second run of the same configuration (same shapes, same
constants) starts at once. Folder: ``$JNIGT_JAX_CACHE`` if set, else :data:`DEFAULT_CACHE_DIR`
(``~/.cache/jnigt/jax``). Switch it off with ``enable_compilation_cache(None)`` (``--no-cache`` on the
command line) or ``JNIGT_JAX_CACHE=off``.
"""

from __future__ import annotations

import os

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "jnigt", "jax")


def default_cache_dir() -> str | None:
    """``$JNIGT_JAX_CACHE`` (``off``/``none``/empty: no cache) or :data:`DEFAULT_CACHE_DIR`."""
    env = os.environ.get("JNIGT_JAX_CACHE")
    if env is None:
        return DEFAULT_CACHE_DIR
    return None if env.strip().lower() in ("", "off", "none", "0") else env


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
