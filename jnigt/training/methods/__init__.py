"""The training methods, one module each: the one place that knows a method.

Every method module carries:

- ``LABEL``: its name in figures and tables ("Rennala NIGT"); ``THEORY_NAME``: its name in
  :mod:`jnigt.theory` ("rennala_nigt"; Synchronized NIGT is Table 1's "synchronous_nigt");
- ``BATCHES``: whether a step aggregates a round of ``batch_size`` gradients (False: AFedPG, a step is
  one arrival), so whether ``batch_size`` is a hyperparameter of the method;
- ``WAITS_FOR_EVERY_AGENT``: whether a round waits for every agent (then no agent may be dead, and a
  starved agent stalls it); ``STARVED_HINT``: what to do then (None when it does not wait);
- ``TRACED_TIMES``: how its per-agent times can be traced (``EqualTimeRunner(traced_times=True)``,
  jnigt/experiments/sweep.py), or None where its buffers are planned on the host from the times;
- ``plan(config, num_devices, clock) -> Plan``: the slots and accumulators of one round per device
  (``clock()`` returns the run's :class:`jnigt.timing.Timing` for a method whose plan needs it);
- ``aggregator(inner, config, local_agents, axis_name=None, first=False)``: the aggregator wrapper
  around the inner optimizer (``first``: the first round's, when M_init differs);
- ``trajectories_per_round(batch_size, num_agents)``: gradients one step aggregates (fixed times);
- ``round_time(c, kappa, batch_size) -> jnigt.theory.RoundTime``: the predicted time of one step, and
  ``bracket_at(round_time, t_end, num_agents) -> (lower, upper)``: the bracket of the measured
  ``t_end / steps`` (docs/algorithms.md#theory); ``fixed_step_time(c, kappa, batch_size) -> float``: the
  exact time of one step with fixed costs (AFedPG: its steady time per update);
- ``build(ctx: Context, plan: Plan) -> Method``: the round itself (a Trainer's ``rounds``).

The :class:`~jnigt.training.Trainer` runs any of them the same way. Methods name the aggregation
(docs/algorithms.md#rennala, #malenia, #synchronized, #afedpg); the inner optimizer is separate
(``TrainConfig.optimizer``): rennala+nigt = Rennala NIGT, rennala+adam = a "Rennala PG" ablation.
"""

from __future__ import annotations

from types import ModuleType

from jnigt.training.methods import afedpg, malenia, rennala, synchronized
from jnigt.training.methods._common import METRIC_NAMES, Context, Method, Plan

#: name -> method module
METHODS: dict[str, ModuleType] = {
    "rennala": rennala,
    "malenia": malenia,
    "synchronized": synchronized,
    "afedpg": afedpg,
}


def get(name: str) -> ModuleType:
    """The method module called ``name``; ValueError naming the allowed names otherwise."""
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"method: unknown method; valid methods: {', '.join(METHODS)} (got {name!r})")
    return METHODS[name]


def label(method: str, optimizer: str = "nigt") -> str:
    """The figure label of a run: the method's LABEL with nigt ("Rennala NIGT"), else "method+optimizer"."""
    if optimizer == "nigt" and method in METHODS:
        return METHODS[method].LABEL
    return f"{method}+{optimizer}"


__all__ = ["METHODS", "METRIC_NAMES", "Context", "Method", "Plan", "get", "label"]
