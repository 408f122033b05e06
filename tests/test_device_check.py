"""scripts/device_check.py at --tiny (CPU, one subprocess) and its stage supervision; the estimate reads it."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("device") / "check.json"
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "device_check.py"), "--tiny", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, json.load(open(out))


def test_tiny_check_measures_every_stage(tiny_report):
    _, r = tiny_report
    st = r["stages"]
    assert list(st) == ["raw_brax", "equal_time", "panel_slice"]
    # under load a stage may spend its budget: then it says so
    assert all(s["status"] in ("done", "over_budget") and s["wall_s"] > 0 for s in st.values()), st
    raw = [v for k, v in st["raw_brax"]["results"].items() if "_B" in k]
    assert raw and all(v["env_steps_per_s"] > 0 for v in raw)
    eq = st["equal_time"]["results"]
    assert eq["rennala"]["K"] * eq["rennala"]["M"] == 16 and eq["rennala"]["first_call_s"] > 0
    if st["equal_time"]["status"] == "done":
        assert eq["ratios"]["rennala_over_event_loop"] > 0 and eq["event_loop"]["env_steps"] > 0
    sl = st["panel_slice"]["results"]["rennala"]
    assert (
        sl["size"] == "tiny" and sl["runs_per_call"] == sl["tuning_runs"] == 2
    )  # fits: all runs in one call
    assert r["machine"]["versions"]["jax"] and "cpu" in r["machine"]["backend"]


def test_estimate_reads_the_measured_rates(tiny_report, capsys):
    path, r = tiny_report
    assert (
        _load("estimate_full_run").main(["--size", "tiny", "--panels", "main_c", "--measured", str(path)])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    measured = [x for x in lines if x.startswith("# MEASURED by scripts/device_check.py")]
    st = r["stages"]
    rennala = {**st["equal_time"]["results"], **st["panel_slice"]["results"]}["rennala"]  # the slice wins
    assert measured
    if "env_steps_per_s" in rennala:  # (a stage over its budget under load may have no rate)
        assert f"Rennala NIGT {rennala['env_steps_per_s']:.3g} env steps/s" in measured[0], lines
    assert any(x.startswith("all 1 panels:") for x in lines) and lines[-1].startswith(
        "by method: Rennala NIGT"
    )


FAKE_CHILD = """
import json, sys, time
events = sys.argv[sys.argv.index("--events") + 1]
for name in sys.argv[sys.argv.index("--stages") + 1].split(","):
    with open(events, "a") as f:
        f.write(json.dumps(dict(stage=name, event="start")) + "\\n")
    if name.startswith("hangs"):
        time.sleep(60)
    with open(events, "a") as f:
        f.write(json.dumps(dict(stage=name, event="result", key="x", value=1)) + "\\n")
        f.write(json.dumps(dict(stage=name, event="end", wall_s=0.0)) + "\\n")
"""


def test_a_stage_past_its_budget_is_killed_and_the_next_runs(tmp_path):
    dc = _load("device_check")
    stages = ["hangs", "fine"]
    report = dict(stages={s: dict(status="not_run", budget_s=0.5, results={}) for s in stages})
    out, events = str(tmp_path / "r.json"), str(tmp_path / "r.events")
    cmd = [sys.executable, "-c", FAKE_CHILD, "--events", events]
    dc.supervise(cmd, stages, {"hangs": 0.5, "fine": 0.5}, events, report, out, grace=0.5, poll=0.05)
    written = json.load(open(out))
    assert written["stages"]["hangs"]["status"] == "killed" and written["stages"]["hangs"]["results"] == {}
    assert written["stages"]["fine"] == dict(status="done", budget_s=0.5, results={"x": 1}, wall_s=0.0)


def test_past_the_deadline_everything_left_is_recorded(tmp_path):
    dc = _load("device_check")
    stages = ["hangs", "hangs_too"]
    report = dict(stages={s: dict(status="not_run", budget_s=100, results={}) for s in stages})
    out, events = str(tmp_path / "r.json"), str(tmp_path / "r.events")
    cmd = [sys.executable, "-c", FAKE_CHILD, "--events", events]
    dc.supervise(cmd, stages, dict.fromkeys(stages, 100), events, report, out, 1, poll=0.05, deadline=1.0)
    st = json.load(open(out))["stages"]
    assert st["hangs"]["status"] == "killed" and st["hangs"]["reason"] == "deadline"
    assert st["hangs_too"] == dict(status="not_run", budget_s=100, results={}, reason="deadline")
