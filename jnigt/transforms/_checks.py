"""Plain-Python argument checks shared by the transformations (run before tracing)."""

from __future__ import annotations

import numbers

import jax
import numpy as np


def check_learning_rate(learning_rate) -> None:
    if callable(learning_rate):
        return
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise TypeError(f"learning_rate must be a positive float or an optax schedule, got {learning_rate!r}")
    if not np.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"learning_rate must be a positive finite float, got {learning_rate!r}")


def check_momentum(momentum) -> float:
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"momentum must be a float in (0, 1], got {momentum!r}")
    if not 0.0 < float(momentum) <= 1.0:
        raise ValueError(f"momentum must be in (0, 1] (1 = no momentum), got {momentum!r}")
    return float(momentum)


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(value)


def check_axis_name(axis_name) -> None:
    if axis_name is not None and not isinstance(axis_name, (str, tuple)):
        raise TypeError(f"axis_name must be None, a str or a tuple of str, got {axis_name!r}")


def check_contributions(updates, counts, expected_agents: int | None = None) -> int:
    """Check per-agent contributions; return the size of the leading agent axis.

    Every leaf of ``updates`` must have the same leading axis n; ``counts`` must be an
    integer array of shape [n] (and, when concrete, non-negative).
    """
    if counts is None:
        raise TypeError("update() needs the keyword argument counts: an int array, one entry per agent")
    leaves = jax.tree.leaves(updates)
    if not leaves:
        raise ValueError("updates must be a non-empty pytree of arrays with a leading agent axis")
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
        if np.any(np.asarray(counts) < 0):
            raise ValueError(f"counts must be non-negative, got {np.asarray(counts)}")
    return n


def check_param_shapes(updates, reference, leading: int) -> None:
    """Each update leaf must be ``[leading..., *reference_leaf.shape]``."""
    u_def, r_def = jax.tree.structure(updates), jax.tree.structure(reference)
    if u_def != r_def:
        raise ValueError(f"updates must have the tree structure of the params: {r_def}, got {u_def}")
    for u, r in zip(jax.tree.leaves(updates), jax.tree.leaves(reference)):
        if tuple(np.shape(u)[leading:]) != tuple(np.shape(r)):
            raise ValueError(
                f"an update leaf has shape {np.shape(u)}; expected the agent axis followed by the "
                f"parameter shape {tuple(np.shape(r))}"
            )
