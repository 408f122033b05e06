"""Algorithm transforms: NIGT and the asynchronous aggregators, as Optax transformations."""

from jnigt.transforms.aggregators import (
    AggregatorState,
    has_updated,
    malenia,
    rennala,
    synchronized,
)
from jnigt.transforms.nigt import NigtState, nigt, nigt_eval_params

__all__ = [
    "AggregatorState",
    "NigtState",
    "has_updated",
    "malenia",
    "nigt",
    "nigt_eval_params",
    "rennala",
    "synchronized",
]
