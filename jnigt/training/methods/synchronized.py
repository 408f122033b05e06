"""Synchronized NIGT (docs/algorithms.md#synchronized): every round waits until every agent has
delivered its share ceil(M / n) (ceil(M_init / n) in the first round), then one AllReduce."""

from __future__ import annotations

import math

from jnigt import timing as timing_lib
from jnigt.distributed import AXIS
from jnigt.training.build import first_batch
from jnigt.training.methods._aggregating import Aggregating, by_round, check_divides, per_agent_layout
from jnigt.training.methods._common import Context
from jnigt.transforms import synchronized

LABEL = "Synchronized NIGT"
#: a step aggregates a round of gradients (AFedPG: one gradient per step)
ONE_GRADIENT_PER_STEP = False
#: Whether a round waits for every agent (then no agent may be dead, and a starved agent stalls it).
WAITS_FOR_EVERY_AGENT = True


def share(config, round_index: int) -> int:
    """ceil(M / n) (ceil(M_init / n) in round 0): the gradients each agent delivers in a round (the Ray
    executor stops an agent there until the round closes)."""
    return math.ceil((first_batch(config) if round_index == 0 else config.batch_size) / config.num_agents)


def build(ctx: Context) -> Aggregating:
    c, t = ctx.config, ctx.timing
    n, d = c.num_agents, ctx.mesh.devices.size
    check_divides(n, d, "synchronized")
    local_agents = n // d
    per_agent = share(c, 1)
    per_agent_first = share(c, 0)
    slots = local_agents * max(per_agent, per_agent_first)

    round_timing = by_round(
        per_agent_first, per_agent, lambda p, key: timing_lib.synchronized_round(t, c.horizon, p, key)
    )
    # charge "taken"
    arrivals_round = by_round(
        per_agent_first, per_agent, lambda p, a: timing_lib.synchronized_from_arrivals(t, a, p)
    )

    return Aggregating(
        ctx=ctx,
        round_timing=round_timing,
        layout=per_agent_layout(slots, local_agents),
        contributors=local_agents,
        wrap=lambda inner, first: synchronized(
            inner, per_agent_first if first else per_agent, local_agents, axis_name=AXIS
        ),
        first_differs=per_agent_first != per_agent,
        candidates=max(per_agent, per_agent_first) if t.charge == "taken" else 0,
        arrivals_round=arrivals_round,
        stalled="the simulated clock became infinite: a synchronized round waits for an agent that never delivers",
    )
