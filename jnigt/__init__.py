"""jnigt: JAX-native asynchronous policy-gradient aggregation (Rennala NIGT, Malenia NIGT).

Layout: ``jnigt.transforms`` (algorithm transforms), ``jnigt.gradients`` (policy and GPOMDP
estimation), ``jnigt.timing`` (simulated time), ``jnigt.training`` (training loop),
``jnigt.distributed`` (devices and hosts), ``jnigt.theory`` (time-complexity calculator).
"""

from jnigt.transforms import (
    AggregatorState,
    NigtState,
    has_updated,
    malenia,
    nigt,
    nigt_eval_params,
    rennala,
    synchronized,
)

__version__ = "0.1.0"

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
