"""The method registry: every method module carries the same facts, and the library reads them there
(the memory estimate plans with the Trainer's plan, theory's round time is the module's)."""

import numpy as np
import pytest
from test_training import LQR

from jnigt import testing, theory
from jnigt import timing as timing_lib
from jnigt.experiments import panels, tuning
from jnigt.training import TrainConfig, Trainer, build, memory, methods

INTERFACE = (
    "LABEL",
    "THEORY_NAME",
    "BATCHES",
    "WAITS_FOR_EVERY_AGENT",
    "STARVED_HINT",
    "plan",
    "aggregator",
    "trajectories_per_round",
    "round_time",
    "bracket_at",
    "fixed_step_time",
    "build",
)


@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_every_method_module_carries_the_whole_interface(name):
    module = methods.get(name)
    missing = [a for a in INTERFACE if not hasattr(module, a)]
    assert not missing, f"{name} lacks {missing}"
    assert isinstance(module.LABEL, str) and panels.LABELS[name] == module.LABEL
    assert module.THEORY_NAME in theory.PREDICTED_METHODS
    assert isinstance(module.BATCHES, bool) and isinstance(module.WAITS_FOR_EVERY_AGENT, bool)
    # a method that waits for every agent says what to do when one starves it
    assert (module.STARVED_HINT is not None) == module.WAITS_FOR_EVERY_AGENT
    # a method that does not batch sweeps one batch size and aggregates one gradient per step
    grid = tuning.TuningGrid((0.1,), (0.5,), (4, 8), 1, 1)
    assert len(grid.batches(name)) == (2 if module.BATCHES else 1)
    assert (module.trajectories_per_round(8, 4) == 1) == (not module.BATCHES)


def test_an_unknown_method_is_refused_in_one_line_naming_the_allowed_ones():
    with pytest.raises(
        ValueError, match=r"^method: unknown method; valid methods: rennala, .*afedpg \(got 'adam'\)$"
    ):
        methods.get("adam")
    with pytest.raises(ValueError, match="method"):
        theory.round_time("adam", [1.0], [0.0], 2)


@pytest.mark.parametrize(
    "name, extra",
    [
        ("rennala", {}),
        ("rennala", dict(init_batch_size=12)),
        ("malenia", dict(step_model=(1.0, 2.0, 1.0, 3.0))),
        ("malenia", dict(jitter=0.2)),
        ("synchronized", dict(init_batch_size=12)),
        ("afedpg", {}),
    ],
)
def test_the_memory_estimate_plans_with_the_trainers_plan(name, extra):
    """Without a plan, check_round_memory asks the method for the plan the Trainer builds with."""
    cfg = TrainConfig(**dict(LQR, method=name, **extra))
    tr = Trainer(cfg, num_devices=1)
    own = methods.get(name).plan(cfg, 1, lambda: build.make_timing(cfg, tr.num_params))
    assert own == tr.plan and tr.plan.slots >= 1
    if name == "afedpg":  # a block of arrivals is sampled at once: the estimate counts its trajectories
        assert tr.plan.slots == tr.rounds.block == timing_lib.afedpg_block_size(tr.timing, cfg.horizon) > 1
    kw = dict(obs_size=tr.env.observation_size, action_size=tr.env.action_size, num_params=tr.num_params)
    assert memory.check_round_memory(cfg, **kw, limit=2**62) == memory.check_round_memory(
        cfg, **kw, plan=tr.plan, limit=2**62
    )


def test_round_time_and_bracket_are_the_method_modules():
    c, kappa, t_end = np.array([2.0, 1.0, 4.0]), np.array([0.5, 0.0, 0.25]), 40.0
    for name in methods.METHODS:
        rt = theory.round_time(name, c, kappa, 6)
        assert rt == methods.get(name).round_time(c, kappa, 6)
        lower, upper = methods.get(name).bracket_at(rt, t_end, c.size)
        assert lower <= rt.total <= upper
    # AFedPG's updates are not periodic: its bracket widens by T_end (T S - n < N <= T S)
    rt = theory.round_time("afedpg", c, kappa, 6)
    assert methods.get("afedpg").bracket_at(rt, t_end, 3)[1] == t_end / (t_end / rt.compute - 3)


def test_fixed_step_time_is_the_event_heap_close_plus_the_allreduce():
    # fixed costs from a fresh start: the round closes where the event-by-event heap says, AFedPG's
    # update time is its steady 1 / sum_i 1/(c_i + kappa_i); each lies in its method's predicted bracket
    c, kappa = np.array([2.0, 1.0, 4.0, 1.5]), np.array([0.5, 0.0, 0.25, 0.0])
    arrivals = np.arange(1, 40)[None, :] * c[:, None]
    rules = dict(
        rennala=testing.rennala_rule,
        malenia=testing.malenia_rule,
        synchronized=lambda m: testing.synchronized_rule(-(-m // c.size)),
    )
    for m in (1, 3, 6, 13):
        for name, rule in rules.items():
            _, close = testing.heap_round(arrivals, rule(m))
            got = methods.get(name).fixed_step_time(c, kappa, m)
            assert got == close + kappa.max(), (name, m)
            rt = methods.get(name).round_time(c, kappa, m)
            assert rt.lower + rt.comm <= got <= rt.upper + rt.comm, (name, m)
        assert methods.get("afedpg").fixed_step_time(c, kappa, m) == 1 / np.sum(1 / (c + kappa))
