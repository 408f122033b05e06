"""Rennala NIGT (docs/algorithms.md#rennala): a round closes at the M-th gradient overall, from
agents of any speed (M_init for the first round); the server steps on their pooled mean.

Predicted round time: ``jnigt.theory.rennala_round_time`` B (the Rennala SGD bound), exact clock in
``[B/2, B]``, plus one AllReduce ``max_i kappa_i``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from jnigt import testing, theory
from jnigt import timing as timing_lib
from jnigt.distributed import AXIS
from jnigt.training.build import first_batch
from jnigt.training.methods._aggregating import Aggregating, first_or_later, periodic_bracket, pooled_layout
from jnigt.training.methods._common import Context, Plan
from jnigt.transforms import rennala

LABEL = "Rennala NIGT"
#: its name in jnigt.theory (Table 1 / Theorems 4.4 and 5.1)
THEORY_NAME = "rennala_nigt"
BATCHES = True
WAITS_FOR_EVERY_AGENT = False
STARVED_HINT = None
TRACED_TIMES = "rebuilt in the trace"
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


def fixed_step_time(c, kappa, batch_size) -> float:
    """Exact time of one round with fixed costs ``c`` from a fresh start (every agent at 0): the M-th
    smallest of ``j c_i`` (j >= 1, ``jnigt.testing.rennala_close_time``), as ``jnigt.timing.rennala_round``
    closes it, plus ``max_i kappa_i``."""
    cs, k, m = theory.round_inputs(c, kappa, batch_size)
    return testing.rennala_close_time(cs, 1, m) + float(np.max(k))


@dataclasses.dataclass(frozen=True, eq=False)
class Rennala(Aggregating):
    def aggregator(self, inner, first: bool):
        return aggregator(inner, self.ctx.config, 1, AXIS, first)

    def close(self, key, round_index):
        c = self.ctx.config
        return first_or_later(
            round_index,
            first_batch(c),
            c.batch_size,
            lambda m: timing_lib.rennala_round(self.ctx.timing, c.horizon, m, key),
        )

    def close_on(self, arrivals, round_index):
        c = self.ctx.config
        return first_or_later(
            round_index,
            first_batch(c),
            c.batch_size,
            lambda m: timing_lib.rennala_from_arrivals(self.ctx.timing, arrivals, m),
        )

    def round(self, carry, _):
        """A Rennala round: the clock names the round's M gradients (whoever delivers them), they are
        sampled at theta~ pooled over the devices' slots, and the server steps on their mean."""
        st, opt_state = carry
        key, k_time, k_traj = jax.random.split(st.key, 3)
        if self.candidates:  # charge "taken": the close needs the trajectories' lengths first
            rnd, tg, seg, valid = self.sample_candidates(st, k_time, k_traj)
        else:
            rnd = self.close(k_time, st.round)
            ids, seg, valid, keys = pooled_layout(self.plan.slots)(rnd.counts, k_traj)
            tg = self.ctx.trajectory_gradients(st.params, keys, ids, st.obs_stats)
        return self.finish(st, opt_state, key, rnd, tg, seg, valid)


def build(ctx: Context, plan: Plan) -> Rennala:
    c = ctx.config
    return Rennala(
        ctx=ctx,
        plan=plan,
        contributors=-(-c.num_agents // ctx.mesh.devices.size) if plan.candidates else plan.slots,
        # the wrapper itself closes the first round at M_init
        first_round_differs=False,
        stall_message="the simulated clock became infinite: no live agent can fill a Rennala batch",
    )
