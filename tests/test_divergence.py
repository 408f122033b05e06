"""Divergence is loud: overflow-safe norms, runs that diverge or stall stop (or warn), strict-JSON metrics,
TensorBoard without non-finite scalars, sweeps that flag diverged runs, and output
folders that conflict refused before anything compiles."""

import json
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jnigt import cli
from jnigt.experiments import tuning
from jnigt.experiments.sweep import EqualTimeRunner, time_grid
from jnigt.training import TrainConfig, Trainer, train
from jnigt.training import run as run_lib
from jnigt.training.divergence import DivergedError, Monitor, json_row, parse_row
from jnigt.transforms.nigt import nigt, overflow_safe_norm

LQR = dict(
    env="lqr",
    backend=None,
    policy="linear",
    num_agents=4,
    horizon=6,
    discount=0.9,
    batch_size=8,
    eval_episodes=2,
    momentum=0.3,
    rounds=4,
    eval_every=2,
)
#: a step size that throws the linear policy far outside the stable region: the returns overflow to -inf
DIVERGING = dict(LQR, learning_rate=1e4)


def _strict(line):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(line, parse_constant=refuse)


# ---------------------------------------------------------------------------- overflow-safe norm
def test_overflow_safe_norm_is_the_plain_norm_bitwise_and_finite_on_huge_inputs():
    rng = np.random.default_rng(0)
    jitted = jax.jit(overflow_safe_norm)
    for scale in (0.0, 1e-30, 1.0, 1e3, 1e18):
        tree = {"w": jnp.asarray(scale * rng.normal(size=(5, 3)), jnp.float32), "b": jnp.float32(scale)}
        plain = optax.tree.norm(tree)
        assert np.asarray(overflow_safe_norm(tree)).tobytes() == np.asarray(plain).tobytes()
        assert np.asarray(jitted(tree)).tobytes() == np.asarray(jax.jit(optax.tree.norm)(tree)).tobytes()
    huge = {"w": jnp.array([3e30, -4e30], jnp.float32), "b": jnp.zeros(2, jnp.float32)}
    assert not np.isfinite(optax.tree.norm(huge))
    np.testing.assert_allclose(float(overflow_safe_norm(huge)), 5e30, rtol=1e-6)
    # NaN and inf entries are not rescaled: the plain (non-finite) result
    assert np.isnan(overflow_safe_norm(jnp.array([np.nan, 1.0], jnp.float32)))
    assert np.isinf(overflow_safe_norm(jnp.array([np.inf, 1.0], jnp.float32)))


def test_nigt_moves_by_alpha_on_a_huge_but_finite_direction():
    # before: ||d|| overflowed to inf, so d / ||d|| was 0 and the parameters never moved
    alpha, eta = 0.1, 0.5
    tx = nigt(alpha, eta)
    g = {"w": jnp.array([3e30, -4e30], jnp.float32)}
    upd, _ = tx.update(g, tx.init(g))
    c = (1 - eta) / eta
    np.testing.assert_allclose(np.asarray(upd["w"]), -(1 + c) * alpha * np.array([0.6, -0.8]), rtol=1e-6)


# ---------------------------------------------------------------------------- runs that diverge or stall
def test_a_diverging_run_stops_naming_what_to_change_and_writes_strict_json(tmp_path, capfd):
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="not written to TensorBoard") as record:
        with pytest.raises(
            DivergedError, match=r"horizon=6, --horizon.*learning_rate=10000, --learning-rate"
        ):
            train(TrainConfig(**DIVERGING), str(out), num_devices=1, progress=False)
    assert "NaN or Inf" not in capfd.readouterr().err  # tensorboardX was never handed a non-finite scalar
    skipped = [str(w.message).split(" ")[0] for w in record if "TensorBoard" in str(w.message)]
    assert len(skipped) == len(set(skipped))  # one warning per metric name
    rows = [_strict(line) for line in open(out / "metrics.jsonl")]  # every line is strict JSON
    flagged = [r for r in rows if "nonfinite" in r]
    assert flagged, rows
    for r in flagged:
        assert all(r[name] is None and v in ("nan", "inf", "-inf") for name, v in r["nonfinite"].items())
    assert any(not math.isfinite(v) for v in parse_row(flagged[0]).values() if isinstance(v, float))
    assert json_row(parse_row(flagged[0])) == flagged[0]


def test_on_divergence_warn_warns_once_and_carries_on():
    cfg = TrainConfig(**{**DIVERGING, "on_divergence": "warn", "rounds": 6})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _, state, rows = train(cfg, None, num_devices=1, progress=False, tensorboard=False)
    diverged = [w for w in record if "diverged" in str(w.message)]
    assert int(state.round) == 6 and rows[-1]["round"] == 6
    assert 1 <= len(diverged) <= 3  # at most once per kind: returns, gradients, parameters
    # every chunk of the 3 has non-finite returns, yet they are reported once
    assert len([w for w in diverged if "_return=" in str(w.message)]) == 1


def test_stall_detector():
    params = {"w": np.zeros(3, np.float32)}
    cfg = TrainConfig(**LQR, stall_rounds=20)
    m = Monitor(cfg, params, 0)
    m.check([], params, 10)
    with pytest.raises(DivergedError, match=r"not changed from round 0 to round 20 \(stall_rounds=20"):
        m.check([], params, 20)
    m = Monitor(cfg, params, 0)
    m.check([], params, 10)
    m.check([], {"w": np.ones(3, np.float32)}, 20)  # moved: the count starts again
    m.check([], {"w": np.ones(3, np.float32)}, 30)
    with pytest.raises(DivergedError, match="from round 20 to round 40"):
        m.check([], {"w": np.ones(3, np.float32)}, 40)
    warn = Monitor(TrainConfig(**LQR, stall_rounds=20, on_divergence="warn"), params, 0)
    with pytest.warns(RuntimeWarning, match="stopped moving"):
        warn.check([], params, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn.check([], params, 30)  # warned once
        Monitor(TrainConfig(**LQR, stall_rounds=None), params, 0).check([], params, 10**6)
    with pytest.raises(
        DivergedError, match="initial policy's return is non-finite: eval_return=-inf; .*--horizon"
    ):
        Monitor(cfg, params, 0).check_rows([{"round": 0, "eval_return": -math.inf}])
    with pytest.raises(
        DivergedError, match="round 3: train_return=nan .*2 gradients were dropped as non-finite"
    ):
        Monitor(cfg, params, 0).check_rows([{"round": 3, "train_return": math.nan, "grads_dropped": 2}])
    with pytest.raises(ValueError, match="on_divergence: must be one of error, warn"):
        TrainConfig(on_divergence="ignore")


# ---------------------------------------------------------------------------- sweeps and tuning
def test_a_sweep_flags_the_diverging_run_and_tuning_scores_it_worst():
    runner = EqualTimeRunner(
        Trainer(TrainConfig(**DIVERGING, method="rennala"), num_devices=1), fast_compile=True
    )
    tr = runner.trainer
    times = time_grid(4.5 * float(tr.next_time(tr.init(0))), 4)
    res = runner(np.array([0, 0]), np.array([0.05, 1e4]), np.array([0.3, 0.3]), times)  # no exception
    np.testing.assert_array_equal(res.diverged, [False, True])
    rows = [
        tuning.grid_row(
            "p", "rennala", 8, lr, 0.3, times, res.where(lr, 0.3).eval_return, res.where(lr, 0.3).diverged
        )
        for lr in (0.05, 1e4)
    ]
    assert rows[1]["score"] == -math.inf and rows[1]["diverged_runs"] == 1
    assert tuning.select(rows)["rennala"]["learning_rate"] == 0.05
    # a diverged flag on finite returns scores -inf too; without flags the score is as before
    y = np.tile(np.linspace(0.0, 1.0, 4), (2, 1))
    plain = tuning.grid_row("p", "m", 8, 0.1, 0.1, times, y)
    assert tuning.grid_row("p", "m", 8, 0.1, 0.1, times, y, [False, False]) == plain
    assert tuning.grid_row("p", "m", 8, 0.1, 0.1, times, y, [False, True])["score"] == -math.inf


# ---------------------------------------------------------------------------- output folders
def test_an_output_folder_conflict_is_refused_before_compiling_or_starting_ray(tmp_path, monkeypatch):
    cfg = TrainConfig(**LQR)
    run_dir = tmp_path / "rennala+nigt"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({**json.loads(json.dumps(vars(cfg))), "rounds": 8}))

    def no_build(*args, **kwargs):
        raise AssertionError("built a trainer or started Ray before checking the output folder")

    monkeypatch.setattr(run_lib, "_cached_trainer", no_build)
    with pytest.raises(ValueError, match=r"different config \(rounds differ\)"):
        train(cfg, str(run_dir), num_devices=1, progress=False)
    from jnigt.executors import ray as ray_executor

    monkeypatch.setattr(ray_executor, "_import_ray", no_build)
    monkeypatch.setattr(ray_executor, "_run", no_build)
    argv = ["train", "--env", "lqr", "--backend", "none", "--policy", "linear", "--method", "rennala"]
    argv += ["--num-agents", "4", "--horizon", "6", "--out", str(tmp_path)]
    assert cli.main(argv) == 2  # simulated: refused by the pre-check, one line, exit 2
    assert cli.main([*argv, "--executor", "ray"]) == 2  # ray: refused before Ray is imported or started
