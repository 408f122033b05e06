"""Real asynchronous agents on Ray (jnigt.executors.ray): arrivals, stop rules, convergence, faults, shutdown.

One local Ray (2 CPUs) and one pool of 4 warm agent actors serve the module; the last test starts
and stops its own Ray through train_ray.
"""

import json
import os
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

import jnigt_envs  # noqa: E402
from jnigt.executors.ray import agent_delays, make_agents, train_ray  # noqa: E402
from jnigt.gradients.gpomdp import trajectory_gradient  # noqa: E402
from jnigt.gradients.policy import make_policy  # noqa: E402
from jnigt.rules import malenia_ready_counts  # noqa: E402
from jnigt.training import TrainConfig  # noqa: E402
from jnigt.training.learner import Learner  # noqa: E402

LQR = dict(
    env="lqr",
    backend=None,
    policy="linear",
    num_agents=4,
    horizon=10,
    discount=0.9,
    learning_rate=0.1,
    momentum=0.2,
    eval_episodes=4,
)


@pytest.fixture(scope="module")
def pool():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield make_agents(4)
    finally:
        ray.shutdown()


def test_agent_delays_follow_the_time_model_and_reject_bad_input():
    cfg = TrainConfig(**LQR, step_model="1,4,9,16")
    np.testing.assert_allclose(agent_delays(cfg, "trajectory", 1e-3), [1e-3, 4e-3, 9e-3, 16e-3])
    np.testing.assert_allclose(agent_delays(cfg, "step", 1e-3), 10 * np.array([1e-3, 4e-3, 9e-3, 16e-3]))
    np.testing.assert_allclose(agent_delays(cfg, None), 0.0)
    with pytest.raises(ValueError, match="slowdown"):
        agent_delays(cfg, "episode")
    with pytest.raises(ValueError, match="time_scale"):
        agent_delays(cfg, "step", -1.0)
    with pytest.raises(TypeError, match="config"):
        train_ray(dict(LQR))
    with pytest.raises(ValueError, match="agents must hold num_agents=4"):
        train_ray(cfg, agents=[None, None])
    with pytest.raises(ValueError, match="end_time=50.0 is an option of the simulated clock"):
        train_ray(TrainConfig(**LQR, end_time=50.0))  # refused, not silently ignored


def test_rennala_fast_agents_contribute_more_per_round(pool):
    cfg = TrainConfig(**LQR, method="rennala", step_model="1,1,32,32", batch_size=8, rounds=6, eval_every=6)
    # The emulated delay must dwarf the real per-request cost (Ray round trip + gradient): a few ms on an
    # idle machine, but 17 ms in CI (two pytest workers on 2 cores) and over 100 ms with more load, where
    # slow agents at 8 x 10 ms or 32 x 10 ms delivered in every round. At 50 ms per unit a slow gradient
    # (1.6 s) still misses the close of a round of 4 fast gradients each up to ~350 ms of overhead.
    run = train_ray(cfg, slowdown="trajectory", time_scale=5e-2, agents=pool)
    counts = np.array([r["agent_counts"] for r in run.rows[1:]])
    assert counts.shape == (6, 4)
    assert np.all(counts.sum(axis=1) == 8)  # Rennala closes at exactly M arrivals
    fast, slow = counts[:, :2].sum(), counts[:, 2:].sum()
    assert fast > 3 * slow, counts
    assert [r["round"] for r in run.rows] == list(range(7)) and "eval_return" in run.rows[-1]


def test_malenia_stop_rule_holds_on_real_arrivals(pool):
    cfg = TrainConfig(**LQR, method="malenia", step_model="1,2,4,8", batch_size=8, rounds=5, eval_every=5)
    run = train_ray(cfg, slowdown="trajectory", time_scale=3e-3, agents=pool)
    for row in run.rows[1:]:
        counts = np.array(row["agent_counts"])
        assert malenia_ready_counts(counts, 8), row  # closed: the rule holds ...
        before = counts.copy()
        before[row["closer"]] -= 1
        assert not malenia_ready_counts(before, 8), row  # ... and did not one arrival earlier
    assert all(r["closed"] for r in run.rows[1:])


def test_afedpg_steps_on_every_arrival_with_real_staleness(pool):
    cfg = TrainConfig(**LQR, method="afedpg", step_model="1,1,8,8", rounds=24, eval_every=12)
    run = train_ray(cfg, slowdown="trajectory", time_scale=4e-3, agents=pool)
    rows = run.rows[1:]
    assert [r["round"] for r in rows] == list(range(1, 25)) and all(r["grads_used"] == 1 for r in rows)
    assert [r["env_steps"] for r in rows] == [10 * k for k in range(1, 25)]  # LQR never terminates: H each
    slow = [r["staleness"] for r in rows if r["closer"] >= 2]
    fast = [r["staleness"] for r in rows if r["closer"] < 2]
    assert slow and max(slow) >= 3, rows  # a slow agent's gradient is several server steps old
    assert np.mean(fast) < np.mean(slow)


def _gap(env, policy, params, cfg):
    K = env.riccati_gain(cfg.discount)
    j_star = env.exact_objective(-K, jnp.zeros(1), jnp.full(1, policy.min_std), cfg.horizon, cfg.discount)
    j = env.exact_policy_objective_and_grad(policy, params, cfg.horizon, cfg.discount)[0]
    return float(j_star - j)


def test_rennala_nigt_shrinks_the_lqr_gap_and_resumes(pool, tmp_path):
    cfg = TrainConfig(**LQR, method="rennala", batch_size=16, rounds=60, eval_every=30)
    env = jnigt_envs.make_env("lqr")
    policy = make_policy(env, hidden_sizes=(), action_scale=None, state_dependent_std=False)
    out = str(tmp_path / "run")
    first = train_ray(cfg, out, slowdown=None, agents=pool, stop_after_chunks=1)  # "killed" after 30 rounds
    assert first.state["round"] == 30
    run = train_ray(cfg, out, slowdown=None, agents=pool)  # resumes from the round-30 checkpoint
    assert run.state["round"] == 60
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["round"] for r in rows] == list(range(61))
    assert rows[31]["time"] >= rows[30]["time"] and rows[31]["comms"] == 31
    assert [r["round"] for r in rows if "eval_return" in r] == [0, 30, 60]
    assert os.path.isdir(os.path.join(out, "tb"))
    gap0 = _gap(env, policy, policy.init(jax.random.split(jax.random.key(cfg.seed))[1]), cfg)
    chex.assert_trees_all_equal_shapes_and_dtypes(run.state["params"], first.state["params"])
    chex.assert_tree_all_finite(run.state["params"])
    gap = _gap(env, policy, run.state["eval_params"], cfg)
    assert gap0 > 100.0
    assert gap < 0.01 * gap0, (gap0, gap)  # the cost gap shrinks by at least 100x
    with pytest.raises(ValueError, match="different config"):
        train_ray(
            TrainConfig(**{**LQR, "learning_rate": 0.2}, method="rennala", rounds=60, eval_every=30), out
        )
    # the run folder is the simulator's: an unreadable newest checkpoint falls back to the older one
    (tmp_path / "run" / "checkpoints" / "60" / "default" / "_METADATA").write_bytes(b"\xff")
    with pytest.warns(UserWarning, match=r"checkpoints/60 is unreadable .*older checkpoint of round 30"):
        again = train_ray(cfg, out, slowdown=None, agents=pool)
    assert again.state["round"] == 60
    assert [json.loads(line)["round"] for line in open(os.path.join(out, "metrics.jsonl"))] == list(range(61))


def test_obs_norm_statistics_reach_the_agents(pool):
    """obs_norm="initial" under Ray: the learner's statistics are the simulator's (same seed), and the agents
    compute with them: one synchronized round of one gradient per agent lands where the learner's own update
    of the same trajectories' gradients under the statistics lands, not where raw observations would."""
    cfg = TrainConfig(**LQR, method="synchronized", batch_size=4, rounds=1, eval_every=1, obs_norm="initial")
    run = train_ray(cfg, slowdown=None, agents=pool)
    assert [r["agent_counts"] for r in run.rows[1:]] == [[1, 1, 1, 1]]
    learner = Learner(cfg, num_devices=1)
    start = learner.init(cfg.seed)
    chex.assert_trees_all_equal(run.state["obs_stats"], start.obs_stats)

    agents = jnp.arange(cfg.num_agents)  # agent i's first trajectory at round 0's point (ray_agent.Agent)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(jax.random.key(cfg.seed), 0), i))(agents)
    keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys)
    grads = jax.jit(
        lambda stats: jax.vmap(
            lambda k, i: (
                trajectory_gradient(learner.policy, learner.env, start.params, k, i, 10, 0.9, stats).grad
            )
        )(keys, agents)
    )

    def one_round(obs_stats):
        state, g = start, grads(obs_stats)
        for i in range(cfg.num_agents):
            state, _ = learner.update(state, jax.tree.map(lambda x: x[i], g), i)
        return state.params

    chex.assert_trees_all_close(run.state["params"], one_round(start.obs_stats), rtol=1e-4, atol=1e-6)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(run.state["params"], one_round(None), rtol=1e-4, atol=1e-6)


def test_rennala_learner_discards_results_of_an_older_round(pool):
    """preempt=False: an agent learns of a new round only when its result comes back. Agent 3 (20x slower)
    computes each gradient while several rounds close, so every later result of it belongs to an older
    round: the learner drops it (grads_stale) and never counts it in the round now open."""
    cfg = TrainConfig(**LQR, method="rennala", step_model="1,1,1,20", batch_size=4, rounds=24, eval_every=24)
    run = train_ray(cfg, slowdown="trajectory", time_scale=2e-2, agents=pool, preempt=False)
    rows = run.rows[1:]
    assert all(sum(r["agent_counts"]) == 4 for r in rows)
    assert sum(r["grads_stale"] for r in rows) >= 1, rows
    # its first result may land in round 1 (sent at round 0's point); none after that can be current
    assert all(r["agent_counts"][3] == 0 for r in rows[1:]), rows


def test_dead_agent_rennala_carries_on_malenia_stops(pool):
    def kill_agent_3(rnd, actors):
        if rnd == 2:
            ray.kill(actors[3])

    cfg = dict(**LQR, step_model="1,1,1,1", batch_size=4, eval_every=6, rounds=6)
    with pytest.raises(RuntimeError, match="agent 3 died"):
        train_ray(TrainConfig(**cfg, method="malenia"), slowdown=None, agents=pool, on_round=kill_agent_3)
    # the pool's agent 3 is dead from the start now: Rennala warns and carries on with 0, 1, 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train_ray(TrainConfig(**cfg, method="rennala"), slowdown=None, agents=pool)
    assert any("agent 3 died" in str(w.message) for w in caught)
    assert run.state["round"] == 6
    assert all(r["agent_counts"][3] == 0 for r in run.rows[1:])


def _ray_children():
    names = ("raylet", "gcs_server", "plasma_store", "default_worker", "ray::")
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline()) + " " + p.name()
        except psutil.Error:
            continue
        if any(n in cmd for n in names):
            out.append(cmd[:80])
    return out


def test_no_ray_processes_remain_after_a_run(pool):
    ray.shutdown()  # the module's Ray: train_ray starts and stops its own
    cfg = TrainConfig(
        **{**LQR, "num_agents": 2, "eval_episodes": 1},
        method="synchronized",
        batch_size=2,
        rounds=2,
        eval_every=2,
    )
    run = train_ray(cfg, slowdown=None)
    assert run.state["round"] == 2
    assert [r["agent_counts"] for r in run.rows[1:]] == [[1, 1], [1, 1]]  # each agent its share, no more
    assert not ray.is_initialized()
    assert _ray_children() == []
