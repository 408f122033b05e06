"""Malenia NIGT (docs/algorithms.md#malenia): a round closes once every agent delivered and the
harmonic mean of the counts reaches M / n (M_init / n in the first round); every agent weighs the
same, whatever its speed.

The clock samples at most ``max_per_agent`` arrivals per agent and the devices hold ``slots``
trajectories: exact for fixed times (one spare column proves the fastest agent has no more before
the close); under jitter both are scaled by ``malenia_slack``, and a round that runs out of them
makes the clock infinite (the trainer then stops with an error naming ``malenia_slack``). Under
``charge="taken"`` early-terminated trajectories make the counts exceed the full-horizon plan: every
agent samples ``ceil((plan + 1) * malenia_slack) + 1`` candidates, and running out stops the same way.
"""

from __future__ import annotations

import math

from jnigt import timing as timing_lib
from jnigt.distributed import AXIS
from jnigt.training.build import first_batch
from jnigt.training.methods._aggregating import Aggregating, by_round, check_divides, per_agent_layout
from jnigt.training.methods._common import Context
from jnigt.transforms import malenia

LABEL = "Malenia NIGT"
#: a step aggregates a round of gradients (AFedPG: one gradient per step)
ONE_GRADIENT_PER_STEP = False
#: Whether a round waits for every agent (then no agent may be dead, and a starved agent stalls it).
WAITS_FOR_EVERY_AGENT = True


def build(ctx: Context) -> Aggregating:
    c, t = ctx.config, ctx.timing
    n, d = c.num_agents, ctx.mesh.devices.size
    check_divides(n, d, "malenia")
    local_agents = n // d
    m_first = first_batch(c)
    counts = timing_lib.malenia_max_per_agent(t, c.horizon, max(c.batch_size, m_first))
    per_device = counts.reshape(d, -1).sum(axis=1)
    max_per_agent = int(counts.max()) + 1
    slots = int(per_device.max())
    taken = t.charge == "taken"
    if c.jitter > 0 or taken:
        max_per_agent = math.ceil(max_per_agent * c.malenia_slack) + 1
        slots = math.ceil(slots * c.malenia_slack) + local_agents

    round_timing = by_round(
        m_first, c.batch_size, lambda m, key: timing_lib.malenia_round(t, c.horizon, m, key, max_per_agent)
    )
    # charge "taken"
    arrivals_round = by_round(m_first, c.batch_size, lambda m, a: timing_lib.malenia_from_arrivals(t, a, m))

    return Aggregating(
        ctx=ctx,
        round_timing=round_timing,
        layout=per_agent_layout(slots, local_agents),
        contributors=local_agents,
        wrap=lambda inner, first: malenia(
            inner,
            m_first if first else c.batch_size,
            local_agents,
            axis_name=AXIS,
            drop_after=c.malenia_drop_after,
        ),
        first_differs=m_first != c.batch_size,
        stalled=(
            f"the simulated clock became infinite: a Malenia round ran out of its slot buffers under "
            f"jitter={c.jitter}, charge={c.charge!r} ({max_per_agent} trajectories per agent); raise "
            f"malenia_slack (now {c.malenia_slack})"
        ),
        candidates=max_per_agent if taken else 0,
        arrivals_round=arrivals_round,
    )
