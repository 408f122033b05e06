"""``jnigt reproduce`` (jnigt.experiments.commands.reproduce_command) runs every panel end to end at
--size tiny ('fast' env, horizon 4, a 2-point tuning grid) and write tables, curves and figures whose
numbers have the properties the protocol promises."""

import csv
import json
import math

import numpy as np
import pytest

from jnigt.experiments import cache, commands, crosscheck, files, panels, results, stats, tuning

#: the homogeneous panels and the heterogeneous ones (the default of jnigt reproduce: all of them)
HOMOGENEOUS = (
    "main_a",
    "main_b",
    "main_c",
    "reacher_c",
    "walker2d_c",
    "hopper_c",
    "n100_a",
    "n100_c",
    "decreasing",
    "main_c_trajectory",
)
HETEROGENEOUS = ("hetero", "physics")


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _check_panel(out, panel):
    grid = tuning.GRIDS["tiny"]
    summary = _read_csv(out / f"{panel.name}_summary.csv")
    assert list(summary[0]) == files.SUMMARY_COLUMNS
    assert [r["method"] for r in summary] == list(panel.methods)
    t_end = float(summary[0]["t_end"])
    curves = _read_csv(out / f"{panel.name}_curves.csv")
    # every method's curve on the same time grid: grid_points times from 0 to T_end
    expected = np.linspace(0.0, t_end, panel.grid_points)
    for m in panel.methods:
        rows = [r for r in curves if r["method"] == m]
        assert len(rows) == grid.report_seeds * panel.grid_points
        for s in grid.fresh_seeds:
            t = [float(r["time"]) for r in rows if int(r["seed"]) == s]
            np.testing.assert_allclose(t, expected, rtol=1e-5)
            ret = [float(r["eval_return"]) for r in rows if int(r["seed"]) == s]
            assert all(math.isfinite(v) for v in ret)
            # counters are cumulative: non-decreasing along the grid, work done by T_end
            for c in ("rounds", "grads_used", "env_steps", "comms"):
                v = [float(r[c]) for r in rows if int(r["seed"]) == s]
                assert v[0] == 0 and all(b >= a for a, b in zip(v, v[1:])) and v[-1] > 0, (m, c, v)
    for r in summary:
        assert float(r["t_end"]) == t_end
        assert float(r["q20_final_return"]) <= float(r["median_final_return"]) <= float(r["q80_final_return"])
        assert float(r["threshold"]) == pytest.approx(stats.threshold(panel.env, panel.horizon))
        lo, est, hi = (float(r[k]) for k in ("ttt_ratio_lo90", "ttt_ratio", "ttt_ratio_hi90"))
        if not math.isnan(est) and not math.isnan(lo):
            assert lo <= est <= hi
    ref = summary[0]
    # the reference ran exactly `rounds` rounds by T_end (fixed times: T_end = rounds x its round time)
    assert float(ref["median_rounds"]) == panel.rounds
    assert ref["ttt_ratio"] in ("1", "nan")
    chosen = json.load(open(out / f"{panel.name}_chosen.json"))
    assert set(chosen["chosen"]) == set(panel.methods)
    tuned = _read_csv(out / f"{panel.name}_tuning.csv")
    assert len(tuned) == len(panel.methods) * len(grid.hyper_points())
    assert sum(r["chosen"] == "True" for r in tuned) == len(panel.methods)
    assert (out / f"{panel.name}.png").stat().st_size > 1000
    # theory cross-check: every method's measured time per round inside its predicted bracket
    xc = crosscheck.read(out / f"{panel.name}_theory.csv")
    assert [r["method"] for r in xc] == list(panel.methods) and all(r["consistent"] for r in xc), xc


def _run(names, out, capsys):
    args = commands.ReproduceArgs(size="tiny", panels=names, out=str(out), progress=False)
    # the persistent compilation cache in its default folder: later runs of the suite start at once
    try:
        assert commands.reproduce_command(args) == 0
    finally:
        cache.enable_compilation_cache(None)
    printed = capsys.readouterr().out
    walls = json.load(open(out / "walls.json"))
    return printed, walls


def test_reproduce_paper_tiny(tmp_path, capsys):
    out = tmp_path / "paper"
    printed, walls = _run(HOMOGENEOUS, out, capsys)
    table = panels.panels_for("tiny")
    assert "| main_a | fast |" in printed and (out / "panels.md").exists()
    ran = list(HOMOGENEOUS)
    assert set(walls["wall_s"]) == set(ran)
    for n in ran:
        _check_panel(out, table[n])
    summary = _read_csv(out / "summary.csv")
    assert {r["panel"] for r in summary} == set(ran)
    # the results table: one verdict row per panel run, one row per method below
    text = (out / "results.md").read_text()
    for n in ran:
        assert f"| {n} | {results.CLAIMS.get(n, (None, '- (beyond the paper)'))[1]} |" in text
    assert text.count("\n|  | ") == len(summary) - len(ran)


def test_reproduce_heterogeneous_tiny(tmp_path, capsys):
    out = tmp_path / "het"
    _, walls = _run(HETEROGENEOUS, out, capsys)
    assert set(walls["wall_s"]) == {"hetero", "physics"}
    table = panels.panels_for("tiny")
    for n in ("hetero", "physics"):
        _check_panel(out, table[n])
    summary = {r["method"]: r for r in _read_csv(out / "hetero_summary.csv")}
    assert summary["malenia"]["reference"] == "Malenia NIGT" and summary["malenia"]["step_model"] == "1,10"
