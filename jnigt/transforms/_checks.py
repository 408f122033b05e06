"""Plain-Python argument checks of the transformations (run before tracing).

Numbers go through :mod:`jnigt.validate`; this module adds only what is specific to Optax
transformations: hyperparameters that may be JAX arrays or tracers (``optax.inject_hyperparams``,
``jax.vmap`` over step sizes), the agent axis of contributions and the state a wrapper expects.
"""

from __future__ import annotations

import jax
import numpy as np
import optax

from jnigt import validate


def hyperparameter(name: str, value, **bounds):
    """A real hyperparameter: a Python / NumPy number, a 0-d array, or a traced 0-d value.

    Concrete values are checked by :func:`jnigt.validate.real` (``bounds`` are its interval) and
    returned as Python floats; a 0-d tracer is returned as is, its value unchecked.
    """
    if isinstance(value, jax.core.Tracer):
        if np.ndim(value) != 0 or not np.issubdtype(value.dtype, np.number) or value.dtype == bool:
            raise TypeError(
                f"{name} must be a real scalar, got a traced {value.dtype}{list(np.shape(value))}"
            )
        return value
    if isinstance(value, (jax.Array, np.ndarray, np.generic)) and not isinstance(value, bool):
        if np.ndim(value) != 0:
            raise TypeError(f"{name} must be a real scalar, got an array of shape {np.shape(value)}")
        if value.dtype == bool or not np.issubdtype(value.dtype, np.number):
            raise TypeError(f"{name} must be a number, got {value!r} ({value.dtype})")
        value = np.asarray(value).item()
    return validate.real(name, value, **bounds)


def learning_rate(value):
    """A positive step size, or an optax schedule ``step -> alpha_t``."""
    if callable(value):
        return value
    try:
        return hyperparameter("learning_rate", value, low=0.0, low_open=True)
    except TypeError:
        if isinstance(value, (jax.Array, np.ndarray, np.generic)):
            raise
        raise TypeError(
            f"learning_rate must be a positive number or an optax schedule, got {value!r} ({type(value).__name__})"
        ) from None


def momentum(value):
    """eta in (0, 1] (1 = no momentum)."""
    return hyperparameter("momentum", value, low=0.0, high=1.0, low_open=True)


def axis_name(value) -> None:
    if value is not None and not (
        isinstance(value, str)
        or (isinstance(value, tuple) and value and all(isinstance(a, str) for a in value))
    ):
        raise TypeError(f"axis_name must be None, a str or a non-empty tuple of str, got {value!r}")


def inner_transformation(inner) -> None:
    """``inner`` must be an optax transformation (``optax.adam(0.1)``, not ``optax.adam``)."""
    if not (
        isinstance(inner, optax.GradientTransformation)
        or (hasattr(inner, "init") and hasattr(inner, "update") and callable(inner.update))
    ):
        hint = " (call it: e.g. optax.adam(1e-3), jnigt.nigt(0.1, 0.5))" if callable(inner) else ""
        raise TypeError(f"inner must be an optax.GradientTransformation, got {inner!r}{hint}")


def state(value, expected: type, where: str) -> None:
    """The state passed to ``update`` must be the one ``init`` returned."""
    if not isinstance(value, expected):
        raise TypeError(
            f"{where}.update: state must be the {expected.__name__} returned by {where}.init(params), "
            f"got {type(value).__name__}"
        )


def same_tree(name: str, tree, reference, reference_name: str, leading: int = 0) -> None:
    """``tree`` has the structure of ``reference`` and each leaf is ``[leading axes..., *ref.shape]``."""
    t_def, r_def = jax.tree.structure(tree), jax.tree.structure(reference)
    if t_def != r_def:
        raise ValueError(f"{name} must have the tree structure of {reference_name}: {r_def}, got {t_def}")
    for t, r in zip(jax.tree.leaves(tree), jax.tree.leaves(reference)):
        t_shape, r_shape = _shape(t), _shape(r)
        if t_shape[leading:] != r_shape or len(t_shape) != len(r_shape) + leading:
            what = "the agent axis followed by " if leading else ""
            raise ValueError(
                f"a leaf of {name} has shape {t_shape}; expected {what}the shape of {reference_name} {r_shape}"
            )


def _shape(x) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else tuple(np.shape(x))


def float_leaves(name: str, tree) -> None:
    """Every leaf of ``tree`` is a floating-point array."""
    for leaf in jax.tree.leaves(tree):
        dtype = getattr(leaf, "dtype", None) or np.asarray(leaf).dtype
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"every leaf of {name} must be a float array, got dtype {dtype}")


def contributions(updates, counts, expected_agents: int | None = None) -> int:
    """Check per-agent contributions; return the size of the leading agent axis.

    Every leaf of ``updates`` must be a float array with the same leading axis n; ``counts`` must be
    an integer array of shape [n] (and, when concrete, non-negative).
    """
    if counts is None:
        raise TypeError("update() needs the keyword argument counts: an int array, one entry per agent")
    leaves = jax.tree.leaves(updates)
    if not leaves:
        raise ValueError("updates must be a non-empty pytree of arrays with a leading agent axis")
    float_leaves("updates", updates)
    shapes = [np.shape(leaf) for leaf in leaves]
    if any(len(s) == 0 for s in shapes):
        raise ValueError(
            "every leaf of updates needs a leading agent axis (one row per agent); got a scalar leaf"
        )
    n = shapes[0][0]
    if any(s[0] != n for s in shapes):
        raise ValueError(
            f"every leaf of updates must have the same leading agent axis; got sizes {sorted({s[0] for s in shapes})}"
        )
    if n == 0:
        raise ValueError("updates must hold at least one agent (the leading axis has size 0)")
    if isinstance(counts, (str, bytes)):
        raise TypeError(f"counts must be an integer array, one entry per agent, got {counts!r}")
    counts_shape = np.shape(counts)
    if counts_shape != (n,):
        raise ValueError(
            f"counts must have shape ({n},), one entry per agent (the leading axis of updates); got {counts_shape}"
        )
    dtype = counts.dtype if hasattr(counts, "dtype") else np.asarray(counts).dtype
    if not np.issubdtype(dtype, np.integer):
        raise TypeError(f"counts must be an integer array, got dtype {dtype}")
    if expected_agents is not None and n != expected_agents:
        raise ValueError(
            f"the leading axis of updates and counts must equal num_agents={expected_agents}; got {n}"
        )
    if not isinstance(counts, jax.core.Tracer):
        host = np.asarray(counts)
        if np.any(host < 0):
            raise ValueError(f"counts must be non-negative, got {host}")
        if np.any(host > np.iinfo(np.int32).max):
            raise ValueError(f"counts must fit in int32 (<= {np.iinfo(np.int32).max}), got {host}")
    return n
