"""Algorithm transforms: NIGT and the asynchronous aggregators, as Optax transformations."""

from jnigt.transforms.aggregators import (
    AggregatorState,
    check_not_wrapped,
    find_aggregator_state,
    has_updated,
    inactive_agents,
    malenia,
    rennala,
    starved_agents,
    synchronized,
)
from jnigt.transforms.nigt import NigtState, nigt, nigt_eval_params

__all__ = [
    "AggregatorState",
    "NigtState",
    "check_not_wrapped",
    "find_aggregator_state",
    "has_updated",
    "inactive_agents",
    "malenia",
    "nigt",
    "nigt_eval_params",
    "rennala",
    "starved_agents",
    "synchronized",
]
