"""The reproduction scripts (scripts/reproduce_paper.py, scripts/reproduce_heterogeneous.py) run end to end
at --size tiny (toy 'fast' env, a few rounds, one seed) and write their figures and CSVs."""

import csv
import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")


def _load(name):
    if SCRIPTS not in sys.path:
        sys.path.insert(0, SCRIPTS)
    spec = importlib.util.spec_from_file_location(name, os.path.join(SCRIPTS, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _check_runs(root, expected_rounds):
    """Every run under ``root`` logged rounds 0..R once, with monotone time and env steps, a finite
    evaluation at round 0 and at the end; ``expected_rounds`` maps the method folder to R."""
    import glob
    import json
    import math

    found = {}
    for path in sorted(glob.glob(os.path.join(str(root), "**", "metrics.jsonl"), recursive=True)):
        method = os.path.basename(os.path.dirname(os.path.dirname(path)))
        rows = [json.loads(line) for line in open(path)]
        assert [r["round"] for r in rows] == list(range(expected_rounds[method] + 1)), path
        times = [r["time"] for r in rows]
        steps = [r["env_steps"] for r in rows]
        assert times[0] == 0.0 and all(b >= a for a, b in zip(times, times[1:])), (path, times)
        assert all(math.isfinite(t) for t in times) and times[-1] > 0
        assert steps[0] == 0 and all(b >= a for a, b in zip(steps, steps[1:])) and steps[-1] > 0
        assert math.isfinite(rows[0]["eval_return"]) and math.isfinite(rows[-1]["eval_return"])
        found[method] = len(rows)
    assert set(found) == set(expected_rounds), found


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def rp():
    return _load("reproduce_paper")


def test_reproduce_paper_tiny(tmp_path, rp, capsys):
    out = tmp_path / "paper"
    assert rp.main(["--size", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    csv_path = out / "summary.csv"
    png = out / "figures" / "fast_b_n4.png"
    assert csv_path.exists() and png.exists() and png.stat().st_size > 1000
    assert f"CSV: {csv_path}" in printed and f"figure: {png}" in printed
    rows = _read_csv(csv_path)
    assert [r["method"] for r in rows] == ["rennala", "synchronized", "afedpg"]
    assert set(rp.CSV_COLUMNS) == set(rows[0])
    for r in rows:
        assert (r["env"], r["scenario"], r["n"], r["seeds"]) == ("fast", "b", "4", "1")
        assert float(r["median_final_time"]) > 0
        float(r["median_final_return"]), float(r["median_time_to_threshold"]), float(r["ref_ttt_ratio"])
        assert r["reference"] == "Rennala NIGT"
    # same gradient budget: 4 rounds of M=20 for the aggregators, 80 single arrivals for AFedPG
    assert [int(r["rounds"]) for r in rows] == [4, 4, 80]
    assert int(rows[0]["gradients"]) == int(rows[2]["gradients"]) == 80
    assert rows[0]["ref_ttt_ratio"] in ("1", "nan")
    # the runs are where the docstring says, readable by jnigt.plotting
    from jnigt.plotting import curves

    data = curves([str(out / "runs" / "fast" / "b" / "n4")])
    assert set(data) == {"Rennala NIGT", "Synchronized NIGT", "AFedPG"}
    _check_runs(out / "runs", {"rennala": 4, "synchronized": 4, "afedpg": 80})


def test_reproduce_heterogeneous_tiny(tmp_path, rp, capsys):
    rh = _load("reproduce_heterogeneous")
    out = tmp_path / "het"
    assert rh.main(["--size", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    csv_path = out / "hetero_summary.csv"
    png = out / "figures" / "hetero_mirrored_fast.png"
    assert csv_path.exists() and png.exists() and png.stat().st_size > 1000
    assert f"CSV: {csv_path}" in printed and f"figure: {png}" in printed
    rows = _read_csv(csv_path)
    assert [r["method"] for r in rows] == ["malenia", "afedpg"]
    g = rh.malenia_gradients_per_round(8)
    assert g > 20  # the fast agent delivers more than M: harmonic-mean rule
    assert [int(r["rounds"]) for r in rows] == [4, 4 * g]
    for r in rows:
        assert (r["env"], r["step_model"], r["n"]) == ("mirrored_fast", "1,10", "2")
        assert r["reference"] == "Malenia NIGT"
    _check_runs(out, {"malenia": 4, "afedpg": 4 * g})


def test_time_to_threshold_and_median(rp):
    import math

    import numpy as np

    t, y = np.array([1.0, 2.0, 3.0]), np.array([0.0, 5.0, 4.0])
    assert rp.time_to_threshold(t, y, 5.0) == 2.0
    assert rp.time_to_threshold(t, y, 6.0) == math.inf
    assert rp.median_inf([1.0, math.inf, math.inf]) == math.inf
    assert rp.median_inf([1.0, 3.0, math.inf]) == 3.0
    assert rp.median_inf([1.0, math.inf]) == math.inf
    assert rp.median_inf([1.0, 3.0]) == 2.0
