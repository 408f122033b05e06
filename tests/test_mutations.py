"""Behaviours that only numbers pinned elsewhere used to guard: each test here fails if the behaviour is
changed (a step ending exactly on a grid time, the time-to-threshold ratio's orientation, malenia_drop_after
through the Trainer, tuning seeds apart from report seeds, evaluate() scoring theta_t). The Ray learner's
round filter is tested in tests/test_ray.py (test_rennala_learner_discards_results_of_an_older_round).

Tiny sizes: the 'lqr' env with a linear policy and h_i = 1 per trajectory, so every round ends at an
integer simulated time; brax's toy 'fast' env for the NaN agent.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_training import TINY, _NaNForAgent

import jnigt_envs
from jnigt.experiments import compare, protocol, results, tuning
from jnigt.experiments.panels import Panel
from jnigt.experiments.sweep import EqualTimeRunner, GridRuns
from jnigt.gradients import gpomdp
from jnigt.training import TrainConfig, Trainer
from jnigt.transforms import inactive_agents

# equal h_i = 1 per trajectory, no communication: n = M = 4, so every Rennala round is one gradient per
# agent and takes exactly 1.0 simulated second; momentum < 1 so that theta_t differs from theta~
LQR_UNIT_ROUNDS = dict(
    env="lqr",
    backend=None,
    policy="linear",
    method="rennala",
    num_agents=4,
    step_model="equal",
    comm_model="zero",
    time_unit="trajectory",
    horizon=6,
    discount=0.9,
    batch_size=4,
    eval_episodes=2,
    learning_rate=0.1,
    momentum=0.3,
    rounds=2,
    eval_every=2,
)


@pytest.fixture(scope="module")
def unit_trainer():
    return Trainer(TrainConfig(**LQR_UNIT_ROUNDS), num_devices=1)


def test_a_grid_time_equal_to_a_step_end_is_evaluated_after_that_step(unit_trainer):
    """EqualTimeRunner at grid time g runs every step whose end time is <= g (jnigt/experiments/sweep.py)."""
    tr = unit_trainer
    assert float(tr.next_time(tr.init(0))) == 1.0  # the first step ends exactly on a grid point
    times = np.array([0.0, 1.0, 1.5, 2.0, 3.0], np.float32)
    runs = EqualTimeRunner(tr, fast_compile=True)([0], 0.1, 0.3, times)
    # steps end at 1, 2, 3 exactly (float32 sums of 1.0): each grid point on a step end counts that step
    np.testing.assert_array_equal(runs.rounds[0], [0, 1, 1, 2, 3])
    np.testing.assert_array_equal(runs.grads_used[0], [0, 4, 4, 8, 12])


def test_evaluate_scores_theta_t_not_theta_tilde(unit_trainer):
    """Trainer.evaluate scores eval_params(state) = theta_t, not state.params = theta~ (docs/algorithms.md#nigt)."""
    tr, c = unit_trainer, unit_trainer.config
    st = tr.init(0)
    for _ in range(2):
        st, _ = tr.step(st)
    key = jax.random.key(3)

    @jax.jit
    def mean_return(params):  # the definition of Trainer.evaluate, from the public rollout
        keys = jax.random.split(key, c.eval_episodes)
        agents = jnp.arange(c.eval_episodes) % c.num_agents
        run = lambda k, a: gpomdp.rollout(tr.policy, tr.env, params, k, a, c.horizon, st.obs_stats)[2]
        return jnp.mean(jnp.sum(jax.vmap(run)(keys, agents), axis=1))

    scored = float(tr.evaluate(st, key))
    at_theta_t, at_theta_tilde = float(mean_return(tr.eval_params(st))), float(mean_return(st.params))
    np.testing.assert_allclose(scored, at_theta_t, rtol=1e-5)
    assert abs(at_theta_t - at_theta_tilde) > 1e-3 * abs(at_theta_t), (at_theta_t, at_theta_tilde)


def _constant_runs(method: str, curve, seeds=(1000, 1001, 1002)) -> GridRuns:
    k, g = len(seeds), len(curve)
    zeros = np.zeros((k, g), np.int32)
    return GridRuns(
        method=method,
        batch_size=4,
        times=np.arange(g, dtype=np.float32),
        seeds=np.array(seeds),
        learning_rates=np.full(k, 0.1),
        momenta=np.full(k, 0.1),
        eval_return=np.tile(np.asarray(curve, np.float32), (k, 1)),
        rounds=zeros,
        env_steps=zeros,
        grads_used=zeros,
        comms=zeros,
        capped=np.zeros(k, bool),
        diverged=np.zeros(k, bool),
    )


def test_time_to_threshold_ratio_is_reference_over_baseline():
    """Constructed curves, threshold 5: the reference (Rennala NIGT) reaches it at t = 0.5, AFedPG at
    t = 2.5, both end at 10. The ratio is reference / baseline = 0.2 (< 1: the reference is faster), exactly,
    interval included (every seed alike), and the rule of jnigt/experiments/results.py says the claim holds."""
    panel = Panel("constructed", "", "lqr", 2, "equal", "zero", ("rennala", "afedpg"), horizon=4, rounds=1)
    report = {
        "rennala": _constant_runs("rennala", [0.0, 10.0, 10.0, 10.0, 10.0]),
        "afedpg": _constant_runs("afedpg", [0.0, 0.0, 0.0, 10.0, 10.0]),
    }
    ref, base = protocol.summarize(panel, report, 5.0)
    assert (ref["median_time_to_threshold"], base["median_time_to_threshold"]) == (0.5, 2.5)
    assert (base["ttt_ratio"], base["ttt_ratio_lo90"], base["ttt_ratio_hi90"]) == pytest.approx((0.2,) * 3)
    assert ref["ttt_ratio"] == 1.0
    # equal final returns: only the ratio decides the verdict
    assert results.verdict("best", [ref, base], initial=0.0) == "holds"
    swapped = {"afedpg": report["afedpg"], "rennala": report["rennala"]}  # AFedPG as the reference
    slow = Panel("constructed", "", "lqr", 2, "equal", "zero", ("afedpg", "rennala"), horizon=4, rounds=1)
    ref, base = protocol.summarize(slow, swapped, 5.0)
    assert base["ttt_ratio"] == pytest.approx(5.0) and not math.isinf(base["ttt_ratio_lo90"])
    assert results.verdict("best", [ref, base], initial=0.0) == "does not hold"


def test_trainer_passes_malenia_drop_after_to_the_aggregator():
    """Malenia with agent 1's environment returning NaN: with malenia_drop_after=2 the Trainer's aggregator
    drops agent 1 and the rounds close on the other three (without it, no round ever closes)."""
    cfg = TrainConfig(
        **{**TINY, "method": "malenia", "step_model": "equal", "rounds": 6, "eval_every": 6},
        malenia_drop_after=2,
    )
    tr = Trainer(cfg, num_devices=1, env=_NaNForAgent(jnigt_envs.make_env("fast")))
    st, m, _ = tr.run_chunk(tr.init(cfg.seed))
    assert inactive_agents(st.opt_state) == [1]
    # agent 1 is dropped at its second starved call; the other three deliver 2 gradients per call each,
    # so Malenia's rule over 3 agents (harmonic mean >= M/3) closes every second call
    assert np.asarray(m["closed"]).tolist() == [False, True] * 3
    assert int(st.comms) == 3


def test_tuning_runs_only_tuning_seeds_and_report_runs_only_fresh_seeds(tmp_path, monkeypatch):
    """run_panel (jnigt/experiments/compare.py): the tuning runs use seeds 0 .. tune_seeds-1 only, the
    report runs only the fresh seeds, and the two sets are disjoint (here and in every size's grid)."""
    for grid in tuning.GRIDS.values():
        assert set(grid.tuning_seeds).isdisjoint(grid.fresh_seeds)
    calls = []
    run = EqualTimeRunner.__call__

    def recording(self, seeds, *args, **kwargs):
        calls.append(sorted({int(s) for s in np.asarray(seeds).reshape(-1)}))
        return run(self, seeds, *args, **kwargs)

    monkeypatch.setattr(EqualTimeRunner, "__call__", recording)
    panel = Panel(
        "seeds", "", "lqr", 4, "equal", "zero", ("rennala",), horizon=4, rounds=2, grid_points=2,
        backend=None, eval_episodes=2, policy="linear", time_unit="trajectory",
    )  # fmt: skip
    grid = tuning.TuningGrid((0.05, 0.1), (0.3,), (4,), tune_seeds=2, report_seeds=2)
    res = compare.run_panel(panel, grid, str(tmp_path), progress=False, log=lambda s: None, fast_compile=True)
    tuning_calls, report_call = calls[:-1], calls[-1]
    assert len(tuning_calls) == 2  # 2 (alpha, eta) points x 2 tuning seeds, 2 runs per call
    assert all(seeds == [0, 1] for seeds in tuning_calls), calls
    assert report_call == [1000, 1001] == list(res.report["rennala"].seeds)
