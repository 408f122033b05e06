"""The training loop: convergence on LQR ground truth, determinism, resume, bad input, NaN agents."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Wrapper

import jnigt_envs
from jnigt import cli
from jnigt.training import TrainConfig, Trainer, train

TINY = dict(
    env="fast",
    backend=None,
    hidden_sizes=(8,),
    horizon=8,
    batch_size=8,
    num_agents=4,
    rounds=4,
    eval_every=2,
    eval_episodes=2,
)


def _exact_J(trainer, params, mirrored=False):
    c = trainer.config
    env = trainer.env.env if mirrored else trainer.env
    if not mirrored:
        return float(env.exact_policy_objective_and_grad(trainer.policy, params, c.horizon, c.discount)[0])
    # agent 0 sees (s, 0), agent 1 sees (-s, 1): mu_0 = W_s s + b, mu_1 = -W_s s + w_flag + b
    W, b, std = jnigt_envs.linear_policy_to_wbs(trainer.policy, params)
    ws, wf = W[:, :-1], W[:, -1]
    return float(
        0.5
        * (
            env.exact_objective(ws, b, std, c.horizon, c.discount)
            + env.exact_objective(-ws, b + wf, std, c.horizon, c.discount)
        )
    )


def test_rennala_nigt_drives_lqr_to_riccati_optimum_deterministically():
    cfg = TrainConfig(
        env="lqr",
        backend=None,
        policy="linear",
        method="rennala",
        num_agents=4,
        horizon=10,
        discount=0.9,
        batch_size=16,
        rounds=60,
        eval_every=60,
        learning_rate=0.1,
        momentum=0.2,
        eval_episodes=4,
    )
    tr = Trainer(cfg, num_devices=1)
    st0 = tr.init_state()
    K = tr.env.riccati_gain(cfg.discount)
    _, _, std0 = jnigt_envs.linear_policy_to_wbs(tr.policy, st0.params)
    j_star = float(tr.env.exact_objective(-K, jnp.zeros(1), jnp.full(1, tr.policy.min_std), 10, 0.9))
    gap0 = j_star - _exact_J(tr, tr.eval_params(st0))
    st, metrics, _ = tr.run_chunk(st0)
    gap = j_star - _exact_J(tr, tr.eval_params(st))
    assert gap0 > 100.0
    assert gap < 0.01 * gap0, (gap0, gap)  # the cost gap shrinks by at least 100x
    assert bool(jnp.all(metrics["closed"]))
    # the same seed gives the same numbers, and the chunk compiled once
    st_again, metrics_again, _ = tr.run_chunk(tr.init_state())
    chex.assert_trees_all_equal((st.params, metrics), (st_again.params, metrics_again))
    assert tr._chunk._cache_size() == 1


def test_malenia_nigt_on_heterogeneous_lqr_improves_average_objective():
    cfg = TrainConfig(
        env="mirrored_lqr",
        backend=None,
        policy="linear",
        method="malenia",
        num_agents=2,
        step_model="1,10",
        horizon=10,
        discount=0.9,
        batch_size=8,
        rounds=60,
        eval_every=60,
        learning_rate=0.1,
        momentum=0.2,
        eval_episodes=4,
    )
    tr = Trainer(cfg, num_devices=1)
    st0 = tr.init_state()
    j0 = _exact_J(tr, tr.eval_params(st0), mirrored=True)
    # reference optimum of the average objective: exact gradient ascent on the exact formula
    W, b, std = jnigt_envs.linear_policy_to_wbs(tr.policy, st0.params)
    env = tr.env.env
    f = lambda W, b: (
        0.5
        * (
            env.exact_objective(W[:, :-1], b, std * 0 + 0.05, 10, 0.9)
            + env.exact_objective(-W[:, :-1], b + W[:, -1], std * 0 + 0.05, 10, 0.9)
        )
    )
    g = jax.jit(jax.grad(f, argnums=(0, 1)))
    Wr, br = jnp.zeros_like(W), jnp.zeros_like(b)
    for _ in range(2000):
        gw, gb = g(Wr, br)
        Wr, br = Wr + 1e-3 * gw, br + 1e-3 * gb
    j_star = float(f(Wr, br))
    st, metrics, _ = tr.run_chunk(st0)
    j = _exact_J(tr, tr.eval_params(st), mirrored=True)
    assert j_star - j < 0.05 * (j_star - j0), (j0, j, j_star)  # the gap shrinks by at least 20x
    # the slow agent (h = 10) still counts in every round
    assert bool(jnp.all(metrics["closed"]))


class _NaNForAgent(Wrapper):
    """Agent 1's environment returns NaN rewards."""

    def reset_agent(self, rng, agent_id):
        state = self.env.reset(rng)
        return state.replace(info={**state.info, "agent_id": jnp.asarray(agent_id, jnp.int32)})

    def reset(self, rng):
        return self.reset_agent(rng, 0)

    def step(self, state, action):
        out = self.env.step(state, action)
        bad = state.info["agent_id"] == 1
        return out.replace(
            reward=jnp.where(bad, jnp.nan, out.reward), info={**out.info, "agent_id": state.info["agent_id"]}
        )


@pytest.mark.parametrize("method", ["rennala", "afedpg"])
def test_nan_agent_is_dropped_and_training_goes_on(method):
    cfg = TrainConfig(**{**TINY, "method": method, "step_model": "equal", "rounds": 8, "eval_every": 8})
    tr = Trainer(cfg, num_devices=1, env=_NaNForAgent(jnigt_envs.make_env("fast")))
    st, m, _ = tr.run_chunk(tr.init_state())
    chex.assert_tree_all_finite(st.params)
    assert int(jnp.sum(m["grads_dropped"])) > 0
    assert int(jnp.sum(m["grads_used"])) > 0 and int(st.comms) > 0
    p0 = tr.init_state().params
    assert not jnp.allclose(jax.tree.leaves(st.params)[0], jax.tree.leaves(p0)[0])


def test_resume_equals_uninterrupted(tmp_path):
    cfg = TrainConfig(**{**TINY, "method": "rennala", "rounds": 6})
    _, full, rows_full = train(cfg, str(tmp_path / "a"), num_devices=1, progress=False)
    _, _, rows_part = train(cfg, str(tmp_path / "b"), num_devices=1, progress=False, stop_after_chunks=1)
    assert len(rows_part) == 3  # the initial evaluation (round 0) and one chunk
    # a half-written chunk after the checkpoint must not survive the resume
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"round": 3, "time": -1.0}) + "\n")
    _, resumed, rows_resumed = train(cfg, str(tmp_path / "b"), num_devices=1, progress=False)
    chex.assert_trees_all_equal(full.params, resumed.params)
    chex.assert_trees_all_equal(full.opt_state, resumed.opt_state)
    assert rows_full == rows_resumed
    with open(tmp_path / "b" / "metrics.jsonl") as f:
        assert [json.loads(line) for line in f] == rows_full
    # a different config in the same folder is refused
    with pytest.raises(ValueError, match="different config"):
        train(TrainConfig(**{**TINY, "rounds": 8}), str(tmp_path / "b"), num_devices=1, progress=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="sgd_nigt"), "method: unknown method; valid methods: rennala, malenia"),
        (dict(optimizer="adamax2"), "optimizer: unknown optimizer"),
        (dict(batch_size=0), "batch_size"),
        (dict(rounds=5, eval_every=2), "rounds: must be a multiple of eval_every"),
        (dict(momentum=0.0), "momentum"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{**TINY, **kwargs})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(env="hopperz"), "unknown env name 'hopperz'; valid names: ant"),
        (dict(step_model="1,-2,3,4"), "step"),
        (dict(step_model="fastest"), "step"),
        (dict(method="malenia", dead=1), "Malenia can never close a round"),
        (dict(method="rennala", dead=4), "every agent has infinite step time"),
        (dict(method="synchronized", dead=1), "dead|infinite"),
    ],
)
def test_bad_setup_stops_before_training(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trainer(TrainConfig(**{**TINY, **kwargs}), num_devices=1)


def test_cli_bad_input_and_help(capsys):
    assert cli.main(["train", "--method", "nope", "--out", "/nonexistent/x"]) == 2
    assert "valid methods" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--num-agents",
        "--step-model",
        "--comm-model",
        "--batch-size",
        "--learning-rate",
        "--momentum",
        "--coordinator",
        "--devices",
        "--pmap",
        "--jitter",
        "--dead",
    ):
        assert option in out


def test_cli_comparison_writes_metrics_and_plot(tmp_path):
    out = tmp_path / "demo"
    argv = [
        "train",
        "--out",
        str(out),
        "--env",
        "fast",
        "--backend",
        "none",
        "--hidden-sizes",
        "8",
        "--horizon",
        "8",
        "--batch-size",
        "4",
        "--num-agents",
        "4",
        "--rounds",
        "4",
        "--eval-every",
        "2",
        "--eval-episodes",
        "2",
        "--devices",
        "1",
    ]
    assert cli.main(argv) == 0
    for run in ("rennala+nigt", "afedpg+nigt"):
        rows = [json.loads(line) for line in open(out / run / "metrics.jsonl")]
        assert rows and all(np.isfinite(r["time"]) for r in rows)
    # AFedPG got the same gradient budget: rounds x batch_size arrivals
    assert len(open(out / "afedpg+nigt" / "metrics.jsonl").readlines()) == 1 + 16
    assert os.path.getsize(out / "return_vs_time.png") > 1000
    assert cli.main(["plot", str(out), "--out", str(tmp_path / "p.png")]) == 0
    assert os.path.exists(tmp_path / "p.png")
