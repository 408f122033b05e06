"""Rennala NIGT (docs/algorithms.md#rennala): a round closes at the M-th gradient overall, from
agents of any speed (M_init for the first round); the server steps on their pooled mean."""

from __future__ import annotations

import math

from jnigt import timing as timing_lib
from jnigt.distributed import AXIS
from jnigt.training.build import first_batch
from jnigt.training.methods._aggregating import Aggregating, by_round, pooled_layout
from jnigt.training.methods._common import Context
from jnigt.transforms import rennala

LABEL = "Rennala NIGT"
#: a step aggregates a round of gradients (AFedPG: one gradient per step)
ONE_GRADIENT_PER_STEP = False
#: Whether a round waits for every agent (then no agent may be dead, and a starved agent stalls it).
WAITS_FOR_EVERY_AGENT = False


def build(ctx: Context) -> Aggregating:
    c, t = ctx.config, ctx.timing
    m_first = first_batch(c)
    slots = math.ceil(max(c.batch_size, m_first) / ctx.mesh.devices.size)

    round_timing = by_round(
        m_first, c.batch_size, lambda m, key: timing_lib.rennala_round(t, c.horizon, m, key)
    )
    taken = t.charge == "taken"
    big = max(c.batch_size, m_first)
    # charge "taken": no agent delivers more than M in a round
    arrivals_round = by_round(m_first, c.batch_size, lambda m, a: timing_lib.rennala_from_arrivals(t, a, m))

    return Aggregating(
        ctx=ctx,
        round_timing=round_timing,
        layout=pooled_layout(slots),
        contributors=-(-c.num_agents // ctx.mesh.devices.size) if taken else slots,
        candidates=big if taken else 0,
        arrivals_round=arrivals_round,
        # the wrapper itself closes the first round at M_init
        wrap=lambda inner, first: rennala(inner, c.batch_size, c.init_batch_size, axis_name=AXIS),
        first_differs=False,
        stalled="the simulated clock became infinite: no live agent can fill a Rennala batch",
    )
