"""Theory cross-check of panels (jnigt.experiments.crosscheck): predicted against measured time per round."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import shutil

import numpy as np
import pytest

from jnigt import testing, theory
from jnigt.experiments import compare, crosscheck, files, protocol, tuning
from jnigt.experiments.panels import Panel

RESULTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results", "equal_time"
)


def _tiny_panel():
    return Panel(
        name="xc_tiny",
        title="lqr",
        env="lqr",
        num_agents=3,
        step_model="sqrt",
        comm_model="sqrt",
        methods=("rennala", "synchronized", "afedpg"),
        horizon=4,
        rounds=6,
        grid_points=3,
        backend=None,
        eval_episodes=2,
        policy="linear",
    )


def test_run_panel_writes_a_consistent_theory_table(tmp_path):
    panel = _tiny_panel()
    grid = tuning.TuningGrid((2.0**-5,), (0.1,), (4,), tune_seeds=1, report_seeds=2)
    res = compare.run_panel(panel, grid, str(tmp_path), progress=False, log=lambda s: None, fast_compile=True)
    rows = crosscheck.read(res.files["theory"])
    assert [r["method"] for r in rows] == list(panel.methods)
    with open(res.files["theory"]) as f:
        assert next(csv.reader(f)) == crosscheck.COLUMNS
    by = {r["method"]: r for r in rows}
    h, kappa = np.sqrt([1.0, 2.0, 3.0]), np.sqrt([1.0, 2.0, 3.0])
    # the reference ran exactly `rounds` rounds; its measured round is the exact heap close + one AllReduce
    ren = by["rennala"]
    assert ren["rounds"] == panel.rounds
    assert ren["measured"] == pytest.approx(testing.rennala_close_time(h, 4, 4) + kappa.max(), rel=1e-5)
    sync = by["synchronized"]
    assert sync["exact"] and sync["predicted"] == pytest.approx(4 * math.sqrt(3) * 2 + math.sqrt(3), rel=1e-5)
    assert by["afedpg"]["comm"] == 0 and by["afedpg"]["unit"] == "update"
    assert by["afedpg"]["predicted"] == pytest.approx(theory.afedpg_update_time(4 * h, kappa), rel=1e-5)
    assert all(r["consistent"] for r in rows), rows
    for r in rows:
        assert r["measured_lo"] < r["measured"] and r["lower"] <= r["predicted"] <= r["upper"]


def test_crosscheck_folder_on_committed_results_and_detects_a_wrong_count(tmp_path, capsys):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    dst.mkdir()
    for name in ("main_a_chosen.json", "main_a_summary.csv"):
        shutil.copy(os.path.join(RESULTS, name), src / name)
    rows = crosscheck.crosscheck_folder(str(src), str(dst))
    assert [r["method"] for r in rows] == ["rennala", "synchronized", "afedpg"]
    assert all(r["consistent"] for r in rows)
    # h = 1, kappa = 0, H = 100, n = 10, M = 20: synchronized 2 x 100 exactly, Rennala's bound 300 >= 200
    by = {r["method"]: r for r in rows}
    assert by["synchronized"]["predicted"] == 200.0
    assert by["rennala"]["predicted"] == pytest.approx(300.0)
    assert (dst / "main_a_theory.csv").exists() and "| main_a |" in (dst / "theory_crosscheck.md").read_text()
    assert "3 of 3 rows" in capsys.readouterr().out
    # a summary claiming twice the rounds of Synchronized NIGT falls outside its exact prediction
    with open(src / "main_a_summary.csv") as f:
        summary = list(csv.DictReader(f))
    summary[1]["median_rounds"] = "60"
    bad = crosscheck.rows(crosscheck.load_panel(str(src / "main_a_chosen.json")), summary)
    assert [r["consistent"] for r in bad] == [True, False, True]


def test_crosscheck_command_on_an_empty_folder(tmp_path, capsys):
    from jnigt.cli import main

    assert main(["crosscheck", "--dir", str(tmp_path)]) == 2
    assert "no <panel>_chosen.json" in capsys.readouterr().err


def test_humanoid_cpu_panel_has_its_own_small_grid(tmp_path):
    from jnigt.experiments import panels

    p = panels.panels_for("cpu")["humanoid_c"]
    assert (p.env, p.horizon, p.rounds, p.comm_model) == ("humanoid", 50, 20, "sqrt_d")
    # 10 tuning runs + 5 report seeds: three full calls of 5 runs per method
    assert p.grid.momenta == (0.1,) and len(p.grid.hyper_points()) * p.grid.tune_seeds == 10
    assert "humanoid_c" not in panels.panels_for("tiny") and "humanoid_c" not in panels.panels_for("full")
    assert "humanoid_c" in panels.panel_table("cpu")
    # the grid survives <panel>_chosen.json (what jnigt crosscheck reads back)
    files.write_json(
        str(tmp_path / "h_chosen.json"), tuning.choices({}, p.grid, dict(panel=dataclasses.asdict(p)))
    )
    assert crosscheck.load_panel(str(tmp_path / "h_chosen.json")) == p


def test_cpu_reacher_and_hetero_settings_reach_the_config_and_survive_chosen_json(tmp_path):
    from jnigt.experiments import panels

    ps = panels.panels_for("cpu")
    r = ps["reacher_c"]
    assert (r.discount, r.rounds, r.horizon) == (0.9, 100, 50) and r.grid.momenta == (0.1,)
    assert ps["hetero"].rounds == 90
    # gamma goes to every method's TrainConfig alike; other panels keep TrainConfig's default
    assert {protocol.make_config(r, m, 20).discount for m in r.methods} == {0.9}
    assert protocol.make_config(ps["main_c"], "rennala", 20).discount == 0.99
    assert "| reacher_c | reacher | 50 | 0.9 |" in panels.panel_table("cpu")
    # size tiny is unchanged
    tiny = panels.panels_for("tiny")
    assert tiny["reacher_c"].discount is None and tiny["hetero"].rounds == tiny["main_a"].rounds
    files.write_json(
        str(tmp_path / "r_chosen.json"), tuning.choices({}, r.grid, dict(panel=dataclasses.asdict(r)))
    )
    assert crosscheck.load_panel(str(tmp_path / "r_chosen.json")) == r


def test_planned_env_steps_by_hand():
    panel = dataclasses.replace(_tiny_panel(), step_model="equal", comm_model="zero", rounds=10)
    grid = tuning.TuningGrid((0.1, 0.2), (0.1,), (4, 6), tune_seeds=2, report_seeds=3)
    steps = crosscheck.planned_env_steps(panel, grid)
    # equal times, n = 3, H = 4 (c_i = 4); T_end = 10 x Rennala's bound at M = 4; runs per M: 2 points x 2
    # tuning seeds, + 3 report seeds for the first M
    b4, b6 = theory.rennala_round_time(np.full(3, 4.0), 4), theory.rennala_round_time(np.full(3, 4.0), 6)
    t_end = 10 * b4
    assert steps["rennala"] == pytest.approx(7 * 10 * 4 * 4 + 4 * t_end / b6 * 6 * 4)
    # Synchronized: ceil(4/3) = 2 trajectories x 4 steps per agent per round, 6 trajectories per round
    assert steps["synchronized"] == pytest.approx(7 * t_end / 8 * 6 * 4 + 4 * t_end / 8 * 6 * 4)
    # AFedPG: one trajectory per update every 4 / 3 time units (first M only)
    assert steps["afedpg"] == pytest.approx(7 * t_end / (4 / 3) * 4)
