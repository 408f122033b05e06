"""Malenia NIGT (docs/algorithms.md#malenia): a round closes once every agent delivered and the
harmonic mean of the counts reaches M / n (M_init / n in the first round); every agent weighs the
same, whatever its speed.

The clock samples at most ``max_per_agent`` arrivals per agent and the devices hold ``slots``
trajectories: exact for fixed times (one spare column proves the fastest agent has no more before
the close); under jitter both are scaled by ``malenia_slack``, and a round that runs out of them
makes the clock infinite (the trainer then stops with an error naming ``malenia_slack``). Under
``charge="taken"`` early-terminated trajectories make the counts exceed the full-horizon plan: every
agent samples ``ceil((plan + 1) * malenia_slack) + 1`` candidates, and running out stops the same way.

Predicted round time: ``jnigt.theory.malenia_round_time`` B, exact clock in ``[L, 2L]`` with
``L = max(c_n, mean(c) M/n)``, plus one AllReduce ``max_i kappa_i``.
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
from jnigt.training.methods._aggregating import (
    Aggregating,
    check_divides,
    first_or_later,
    per_agent_layout,
    periodic_bracket,
)
from jnigt.training.methods._common import Context, Plan
from jnigt.transforms import malenia

LABEL = "Malenia NIGT"
#: its name in jnigt.theory (Table 1 / Theorems 4.4 and 5.1)
THEORY_NAME = "malenia_nigt"
BATCHES = True
WAITS_FOR_EVERY_AGENT = True
STARVED_HINT = "or opt in to dropping it with malenia_drop_after=k (--malenia-drop-after k)"
TRACED_TIMES = None  # its arrival buffer and slot count are shapes planned on the host from the times
bracket_at = periodic_bracket


def plan(config, num_devices: int, clock) -> Plan:
    """The exact per-agent counts at the close for fixed times (``jnigt.timing.malenia_max_per_agent`` on
    ``clock()``), one spare column, scaled by ``malenia_slack`` under jitter or charge "taken"."""
    c = config
    n, d = c.num_agents, num_devices
    check_divides(n, d, "malenia")
    local_agents = n // d
    counts = timing_lib.malenia_max_per_agent(clock(), c.horizon, max(c.batch_size, first_batch(c)))
    max_per_agent = int(counts.max()) + 1
    slots = int(counts.reshape(d, -1).sum(axis=1).max())
    taken = c.charge == "taken"
    if c.jitter > 0 or taken:
        max_per_agent = math.ceil(max_per_agent * c.malenia_slack) + 1
        slots = math.ceil(slots * c.malenia_slack) + local_agents
    if taken:
        return Plan(local_agents * max_per_agent, local_agents, max_per_agent, max_per_agent)
    return Plan(slots, local_agents, 0, max_per_agent)


def aggregator(inner, config, local_agents: int, axis_name=None, first: bool = False):
    """``malenia(inner, M or M_init, local_agents)``, dropping an agent after ``malenia_drop_after``."""
    c = config
    return malenia(
        inner,
        first_batch(c) if first else c.batch_size,
        local_agents,
        axis_name=axis_name,
        drop_after=c.malenia_drop_after,
    )


def trajectories_per_round(batch_size: int, num_agents: int) -> int:
    return batch_size


def round_time(c, kappa, batch_size) -> theory.RoundTime:
    cs, k, m = theory.round_inputs(c, kappa, batch_size)
    low = float(max(cs[-1], np.mean(cs) * m / cs.size))
    return theory.RoundTime(theory.malenia_round_time(cs, m), float(np.max(k)), low, 2 * low, False)


def fixed_step_time(c, kappa, batch_size) -> float:
    """Exact time of one round with fixed costs ``c`` from a fresh start (every agent at 0): the close
    time of the exact rule (``jnigt.testing.malenia_close_time``), plus ``max_i kappa_i``."""
    cs, k, m = theory.round_inputs(c, kappa, batch_size)
    return testing.malenia_close_time(cs, 1, m) + float(np.max(k))


@dataclasses.dataclass(frozen=True, eq=False)
class Malenia(Aggregating):
    def aggregator(self, inner, first: bool):
        return aggregator(inner, self.ctx.config, self.plan.accumulators, AXIS, first)

    def close(self, key, round_index):
        c = self.ctx.config
        return first_or_later(
            round_index,
            first_batch(c),
            c.batch_size,
            lambda m: timing_lib.malenia_round(self.ctx.timing, c.horizon, m, key, self.plan.max_per_agent),
        )

    def close_on(self, arrivals, round_index):
        c = self.ctx.config
        return first_or_later(
            round_index,
            first_batch(c),
            c.batch_size,
            lambda m: timing_lib.malenia_from_arrivals(self.ctx.timing, arrivals, m),
        )

    def round(self, carry, _):
        """A Malenia round: the clock runs until every agent delivered and the harmonic mean of the counts
        reaches M / n; each device samples its agents' gradients at theta~, one segment per agent, and
        the server steps on the mean of the per-agent means."""
        st, opt_state = carry
        key, k_time, k_traj = jax.random.split(st.key, 3)
        if self.candidates:  # charge "taken": the close needs the trajectories' lengths first
            rnd, tg, seg, valid = self.sample_candidates(st, k_time, k_traj)
        else:
            rnd = self.close(k_time, st.round)
            layout = per_agent_layout(self.plan.slots, self.plan.accumulators)
            ids, seg, valid, keys = layout(rnd.counts, k_traj)
            tg = self.ctx.trajectory_gradients(st.params, keys, ids, st.obs_stats)
        return self.finish(st, opt_state, key, rnd, tg, seg, valid)


def build(ctx: Context, plan: Plan) -> Malenia:
    c = ctx.config
    return Malenia(
        ctx=ctx,
        plan=plan,
        contributors=plan.accumulators,
        first_round_differs=first_batch(c) != c.batch_size,
        stall_message=(
            f"the simulated clock became infinite: a Malenia round ran out of its slot buffers under "
            f"jitter={c.jitter}, charge={c.charge!r} ({plan.max_per_agent} trajectories per agent); raise "
            f"malenia_slack (now {c.malenia_slack})"
        ),
    )
