"""Synchronized NIGT (docs/algorithms.md#synchronized): every round waits until every agent has
delivered its share ceil(M / n) (ceil(M_init / n) in the first round), then one AllReduce.

Predicted round time, exact: ``jnigt.theory.synchronized_round_time`` ``max_i c_i ceil(M / n)``, plus
one AllReduce ``max_i kappa_i``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from jnigt import theory
from jnigt import timing as timing_lib
from jnigt.distributed import AXIS
from jnigt.training.build import first_batch
from jnigt.training.methods._aggregating import (
    Aggregating,
    check_divides,
    first_or_later,
    per_agent_layout,
    periodic_bracket,
)
from jnigt.training.methods._common import Context, Plan
from jnigt.transforms import synchronized

LABEL = "Synchronized NIGT"
#: its name in jnigt.theory (Table 1 / Theorems 4.4 and 5.1)
THEORY_NAME = "synchronous_nigt"
BATCHES = True
WAITS_FOR_EVERY_AGENT = True
STARVED_HINT = "or use method='rennala', which pools whatever arrives"
TRACED_TIMES = "rebuilt in the trace"
bracket_at = periodic_bracket


def _shares(config) -> tuple[int, int]:
    """Each agent's share of a round: ceil(M_init / n) in the first, ceil(M / n) in the others."""
    n = config.num_agents
    return math.ceil(first_batch(config) / n), math.ceil(config.batch_size / n)


def share(config, round_index: int) -> int:
    """ceil(M / n) (ceil(M_init / n) in round 0): the gradients each agent delivers in a round (the Ray
    executor stops an agent there until the round closes)."""
    first, later = _shares(config)
    return first if round_index == 0 else later


def plan(config, num_devices: int, clock=None) -> Plan:
    """Each device's ``n / d`` agents deliver their share: ``(n / d) max(shares)`` slots; charge "taken":
    every agent samples its share as candidates."""
    n = config.num_agents
    check_divides(n, num_devices, "synchronized")
    share = max(_shares(config))
    candidates = share if config.charge == "taken" else 0
    return Plan(slots=n // num_devices * share, candidates=candidates)


def aggregator(inner, config, local_agents: int, axis_name=None, first: bool = False):
    """``synchronized(inner, share, local_agents)``: every agent's share of the round."""
    first_share, share = _shares(config)
    return synchronized(inner, first_share if first else share, local_agents, axis_name=axis_name)


def trajectories_per_round(batch_size: int, num_agents: int) -> int:
    return num_agents * -(-batch_size // num_agents)


def round_time(c, kappa, batch_size) -> theory.RoundTime:
    cs, k, m = theory.round_inputs(c, kappa, batch_size)
    t = theory.synchronized_round_time(cs, m)
    return theory.RoundTime(t, float(np.max(k)), t, t, True)


def fixed_step_time(c, kappa, batch_size) -> float:
    """Exact time of one round with fixed costs ``c``: :func:`round_time` is exact (compute + comm)."""
    rt = round_time(c, kappa, batch_size)
    return rt.compute + rt.comm


@dataclasses.dataclass(frozen=True, eq=False)
class Synchronized(Aggregating):
    def aggregator(self, inner, first: bool):
        return aggregator(inner, self.ctx.config, self.contributors, AXIS, first)

    def close(self, key, round_index):
        t, horizon = self.ctx.timing, self.ctx.config.horizon
        first_share, share = _shares(self.ctx.config)
        return first_or_later(
            round_index, first_share, share, lambda p: timing_lib.synchronized_round(t, horizon, p, key)
        )

    def close_on(self, arrivals, round_index):
        first_share, share = _shares(self.ctx.config)
        return first_or_later(
            round_index,
            first_share,
            share,
            lambda p: timing_lib.synchronized_from_arrivals(self.ctx.timing, arrivals, p),
        )

    def round(self, carry, _):
        """A synchronized round: the clock waits for every agent's share; each device samples its agents'
        shares at theta~, one segment per agent, and the server steps on their mean."""
        st, opt_state = carry
        key, k_time, k_traj = jax.random.split(st.key, 3)
        if self.candidates:  # charge "taken": the close needs the trajectories' lengths first
            rnd, tg, seg, valid = self.sample_candidates(st, k_time, k_traj)
        else:
            rnd = self.close(k_time, st.round)
            ids, seg, valid, keys = per_agent_layout(self.plan.slots, self.contributors)(rnd.counts, k_traj)
            tg = self.ctx.trajectory_gradients(st.params, keys, ids, st.obs_stats)
        return self.finish(st, opt_state, key, rnd, tg, seg, valid)


def build(ctx: Context, plan: Plan) -> Synchronized:
    first_share, share = _shares(ctx.config)
    return Synchronized(
        ctx=ctx,
        plan=plan,
        contributors=ctx.config.num_agents // ctx.mesh.devices.size,
        first_round_differs=first_share != share,
        stall_message="the simulated clock became infinite: a synchronized round waits for an agent that never delivers",
    )
