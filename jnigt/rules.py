"""The rounds' stop rules, defined once (docs/algorithms.md#rennala, #malenia, #synchronized).

Used by the Optax aggregators (on psum-ed counts), the simulated clock, the test references and the
theory calculator. Each rule works on NumPy and JAX arrays alike (``xp`` is inferred).

    Rennala:      sum_i M_i >= M
    Malenia:      min_i M_i >= 1  and  ((1/n) sum_i 1/M_i)^(-1) >= M / n
                  <=>  min_i M_i >= 1  and  sum_i 1/M_i <= n^2 / M
    Synchronized: min_i M_i >= per_agent
"""

from __future__ import annotations

#: Relative slack on Malenia's harmonic-mean rule: float32 rounding of ``sum_i 1/M_i`` must not keep open
#: a round that the exact rule closes (e.g. counts (1, 1) for M = n = 2). The simulated clock uses
#: ``HARMONIC_RTOL``; the aggregators use ``2 * HARMONIC_RTOL``, so a round that the clock closes always
#: closes in the aggregator too, whatever order the devices summed ``1/M_i`` in.
HARMONIC_RTOL = 1e-5


def rennala_ready(total_count, batch_size):
    """Rennala: the pooled count ``sum_i M_i`` reached ``M``."""
    return total_count >= batch_size


def malenia_ready(inv_count_sum, min_count, num_agents, batch_size, rtol=HARMONIC_RTOL):
    """Malenia, given ``sum_i 1/M_i`` (over agents with ``M_i >= 1``) and ``min_i M_i``.

    True when every agent delivered at least once and ``sum_i 1/M_i <= n^2 / M * (1 + rtol)``.
    """
    return (min_count >= 1) & (inv_count_sum * batch_size <= num_agents * num_agents * (1.0 + rtol))


def malenia_ready_counts(counts, batch_size, rtol=HARMONIC_RTOL):
    """:func:`malenia_ready` from the per-agent counts ``[n]`` themselves (NumPy or JAX)."""
    xp = _namespace(counts)
    c = xp.asarray(counts)
    inv = xp.sum(1.0 / xp.maximum(c.astype(xp.float32), 1.0))
    return malenia_ready(inv, xp.min(c), c.shape[-1], batch_size, rtol)


def synchronized_ready(min_count, per_agent):
    """Synchronized: every agent delivered its ``per_agent`` share."""
    return min_count >= per_agent


def _namespace(x):
    import numpy as np

    if isinstance(x, (np.ndarray, list, tuple)):
        return np
    import jax.numpy as jnp

    return jnp
