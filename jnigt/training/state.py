"""The training state every method shares (checkpointed as is)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class TrainState(NamedTuple):
    """The whole training state.

    params: theta~ for NIGT (the point the agents compute at, docs/algorithms.md#nigt); plain
      params otherwise. opt_state: the method's optimizer state (aggregating methods: with a
      leading device axis, one row per device). key: PRNG key carried from step to step.
    eval_key: key of the evaluations (folded with ``round``). time: simulated seconds after the last
      step. round: steps done (AFedPG: arrivals). env_steps, comms: running totals.
    method: the method's own state (AFedPG: stale points and clock; ``{}`` for the others).
    obs_stats: the fixed observation statistics (``jnigt.gradients.ObsStats``) when
      ``config.obs_norm != "off"``, else None (docs/algorithms.md#obs-norm).
    """

    params: Any
    opt_state: Any
    key: jax.Array
    eval_key: jax.Array
    time: jax.Array
    round: jax.Array
    env_steps: jax.Array
    comms: jax.Array
    method: Any
    obs_stats: Any = None
