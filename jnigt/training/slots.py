"""Slot layout of a round: the gradients each agent delivers (counts from :mod:`jnigt.timing`), laid out in
a fixed number of slots so that a round's cost follows the arriving gradients, not the agents."""

from __future__ import annotations

import jax.numpy as jnp


def slots_from_counts(counts, num_slots: int):
    """Agent-major slot layout: agent i repeated ``counts[i]`` times, then padding.

    Returns ``(agent_ids int32 [num_slots], valid bool [num_slots])``; ``valid`` marks the first
    ``sum(counts)`` slots; padded slots hold agent 0. Counts beyond ``num_slots`` are truncated.
    """
    counts = jnp.asarray(counts, jnp.int32)
    n = counts.shape[0]
    ids = jnp.repeat(jnp.arange(n, dtype=jnp.int32), counts, total_repeat_length=num_slots)
    valid = jnp.arange(num_slots) < jnp.sum(counts)
    return jnp.where(valid, ids, 0).astype(jnp.int32), valid
