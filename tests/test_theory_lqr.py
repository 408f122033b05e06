"""The theory-LQR study (jnigt/experiments/theory_lqr.py) and the traced per-agent times of the equal-time
runner it relies on (jnigt/experiments/sweep.py)."""

from __future__ import annotations

import numpy as np
import pytest

from jnigt.experiments.sweep import EqualTimeRunner
from jnigt.training import TrainConfig, Trainer

#: two cells of a crossover map: (h_i, kappa_i) of n = 3 agents
CELLS = (((1.0, 2.0, 3.0), (0.0, 0.0, 0.0)), ((1.0, 1.0, 1.0), (40.0, 40.0, 40.0)))


def _config(method, step="equal", comm="zero"):
    return TrainConfig(
        env="lqr",
        backend=None,
        policy="linear",
        fixed_std=0.5,
        mean_init="zeros",
        method=method,
        num_agents=3,
        step_model=step,
        comm_model=comm,
        horizon=6,
        discount=0.9,
        batch_size=4,
        learning_rate=0.05,
        momentum=0.3,
        eval_episodes=2,
    )


@pytest.mark.parametrize("method", ["rennala", "afedpg"])
def test_traced_times_equal_the_static_program_at_two_cells(method):
    times = np.array([0.0, 50.0, 200.0, 400.0], np.float32)
    # AFedPG's block size B is planned from the runner's trainer: cell 0's (B = 1), cell 1 plans B = 3
    base = _config(method, *CELLS[0])
    traced = EqualTimeRunner(Trainer(base, num_devices=1), fast_compile=True, traced_times=True)
    seeds = np.array([0, 1, 2, 3])  # K = 4 runs per call: both cells in one traced call
    h = np.repeat([c[0] for c in CELLS], 2, axis=0)
    kappa = np.repeat([c[1] for c in CELLS], 2, axis=0)
    both = traced(seeds, 0.05, 0.3, times, step_time=h, comm_time=kappa)
    for i, (h_i, k_i) in enumerate(CELLS):
        static = EqualTimeRunner(Trainer(_config(method, h_i, k_i), num_devices=1), fast_compile=True)
        want = static(seeds, 0.05, 0.3, times).take(np.arange(2 * i, 2 * i + 2))
        cell = both.take(np.arange(2 * i, 2 * i + 2))
        for r in ("eval_return", "rounds", "env_steps", "grads_used", "comms", "diverged"):
            if method == "afedpg" and i == 1 and r == "eval_return":  # another B: batched sums round apart
                np.testing.assert_allclose(cell.eval_return, want.eval_return, rtol=1e-5)
            else:
                np.testing.assert_array_equal(getattr(cell, r), getattr(want, r), err_msg=f"{method} {i} {r}")
    assert both.rounds[0, -1] != both.rounds[2, -1]  # the cells differ: the times were used
    with pytest.raises(ValueError, match="comm_time"):
        traced(seeds, 0.05, 0.3, times, step_time=h, comm_time=kappa[:, :2])
    with pytest.raises(ValueError, match="step_time"):
        traced(seeds, 0.05, 0.3, times, step_time=-h, comm_time=kappa)


def test_traced_times_refuse_malenia():
    with pytest.raises(ValueError, match="traced_times"):
        EqualTimeRunner(Trainer(_config("malenia"), num_devices=1), traced_times=True)


def test_theory_lqr_tiny_end_to_end_resumes_and_refuses_another_plan(tmp_path, monkeypatch):
    import dataclasses

    from jnigt.experiments import theory_lqr

    out = str(tmp_path / "study")
    lines = []
    res = theory_lqr.run("tiny", out, log=lines.append)
    text = open(f"{out}/results.md").read()
    for section in ("## Instance", "## Time to eps", "## Rates", "## The crossover map", "## Heterogeneous"):
        assert section in text
    design = theory_lqr.DESIGNS["tiny"]
    assert len(res["map"]) == 2 * len(design.map_eps) * len(design.scenarios()) * len(design.map_ratios)
    assert (tmp_path / "study" / "map_rennala_afedpg.png").stat().st_size > 0
    # the map's grids end where the method's step time at r says: same steps, later times
    far = theory_lqr.load_runs(f"{out}/map_n2_sqrt_rennala_r{len(design.map_ratios) - 1}.npz")
    near = theory_lqr.load_runs(f"{out}/map_n2_sqrt_rennala_r0.npz")
    assert far.times[-1] > 10 * near.times[-1]
    assert np.all(np.abs(far.rounds[:, -1] - near.rounds[:, -1]) <= 1)  # float32 clock at the grid's end
    # a rerun reads every stage back: nothing is recomputed, the same results.md comes out
    again = []
    theory_lqr.run("tiny", out, log=again.append)
    assert not any("done" in line for line in again)
    assert open(f"{out}/results.md").read() == text
    # another plan in the same folder is refused
    monkeypatch.setitem(theory_lqr.DESIGNS, "tiny", dataclasses.replace(design, report_seeds=4))
    with pytest.raises(ValueError, match="another plan"):
        theory_lqr.run("tiny", out, log=lines.append)
