"""Rennala NIGT (docs/algorithms.md#rennala): a round closes at the M-th gradient overall, from
agents of any speed (M_init for the first round); the server steps on their pooled mean.

Predicted round time: ``jnigt.theory.rennala_round_time`` B (the Rennala SGD bound), exact clock in
``[B/2, B]``, plus one AllReduce ``max_i kappa_i``.
"""

from __future__ import annotations

import math

import numpy as np

from jnigt import theory
from jnigt import timing as timing_lib
from jnigt.distributed import AXIS
from jnigt.training.build import first_batch
from jnigt.training.methods._aggregating import Aggregating, by_round, periodic_bracket, pooled_layout
from jnigt.training.methods._common import Context, Plan
from jnigt.transforms import rennala

LABEL = "Rennala NIGT"
BATCHES = True
WAITS_FOR_EVERY_AGENT = False
STARVED_HINT = None
bracket_at = periodic_bracket


def plan(config, num_devices: int, clock=None) -> Plan:
    """The round's gradients agent-major over ``ceil(max(M, M_init) / d)`` slots per device; charge
    "taken": every agent samples ``max(M, M_init)`` candidates (no agent delivers more in a round)."""
    c = config
    big = max(c.batch_size, first_batch(c))
    if c.charge == "taken":
        return Plan(slots=-(-c.num_agents // num_devices) * big, candidates=big)
    return Plan(slots=math.ceil(big / num_devices))


def aggregator(inner, config, local_agents: int, axis_name=None, first: bool = False):
    """``rennala(inner, M, M_init)``: the wrapper itself closes the first round at M_init."""
    return rennala(inner, config.batch_size, config.init_batch_size, axis_name=axis_name)


def trajectories_per_round(batch_size: int, num_agents: int) -> int:
    return batch_size


def round_time(c, kappa, batch_size) -> theory.RoundTime:
    cs, k, m = theory.round_inputs(c, kappa, batch_size)
    t = theory.rennala_round_time(cs, m)
    return theory.RoundTime(t, float(np.max(k)), t / 2, t, False)


def build(ctx: Context, plan: Plan) -> Aggregating:
    c, t = ctx.config, ctx.timing
    m_first = first_batch(c)
    taken = plan.candidates > 0
    return Aggregating(
        ctx=ctx,
        round_timing=by_round(
            m_first, c.batch_size, lambda m, key: timing_lib.rennala_round(t, c.horizon, m, key)
        ),
        layout=None if taken else pooled_layout(plan.slots),
        contributors=-(-c.num_agents // ctx.mesh.devices.size) if taken else plan.slots,
        candidates=plan.candidates,
        arrivals_round=by_round(
            m_first, c.batch_size, lambda m, a: timing_lib.rennala_from_arrivals(t, a, m)
        ),
        wrap=lambda inner, first: aggregator(inner, c, 1, AXIS, first),
        first_differs=False,
        stalled="the simulated clock became infinite: no live agent can fill a Rennala batch",
    )
