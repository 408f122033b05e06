"""The convergence study's protocol (jnigt.experiments.study): the pilot's rules on constructed curves, the
alpha-bracket extension, and a tiny study that resumes after a kill without recomputing finished stages."""

import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

from jnigt.experiments import panels, study

ROOT = pathlib.Path(__file__).resolve().parents[1]

TINY = study.StudyDesign(
    learning_rates=(2.0**-6, 2.0**-2),
    momenta=(0.1,),
    batch_size=4,
    tune_seeds=1,
    report_seeds=10,
    pool_seeds=20,
    eval_episodes=2,
    grid_points=4,
    max_extensions=1,
    runs_per_call=10,
)


def test_settled_and_run_length_on_constructed_curves():
    t = np.linspace(0, 10, 11)
    rising = np.minimum(t, 5.0)  # crosses 3 at t = 3, flat from t = 5
    assert study.settled(rising[:11]) and not study.settled(rising[:6])
    got = study.run_length(t, {"slow": 0.5 * rising, "fast": rising}, threshold=3.0)
    # cut at t_J, the last 20% of the grid must move < 5% of the range: first at J = 7 (points 5..7 flat)
    assert got == dict(t_end=7.0, method="fast", index=7)
    assert study.run_length(t, {"a": rising}, threshold=6.0)["t_end"] is None  # never crosses
    assert study.run_length(t, {"a": t}, threshold=3.0)["t_end"] is None  # crosses, never settles
    assert not study.settled([0.0, np.nan, 1.0])
    noise = np.random.default_rng(0).normal(0, 2.0, 41)
    flat_tail = np.concatenate([np.linspace(0, 50, 21), np.full(20, 50.0)]) + noise
    assert study.settled(flat_tail)  # evaluation noise on a flat tail is not change
    assert not study.settled(np.linspace(0, 50, 41) + noise)  # a steady climb is


def test_threshold_rule_keeps_the_stated_value_or_takes_the_midpoint_once():
    assert study.study_threshold(80.0, [10, 20, 30], 95.0) == dict(threshold=80.0, rule="stated")
    met = study.study_threshold(80.0, [10, 85, 30], 95.0)
    assert met["threshold"] == 90.0 and "met at t = 0" in met["rule"]
    unreached = study.study_threshold(80.0, [10, 20], 60.0)
    assert unreached["threshold"] == 40.0 and "not reached" in unreached["rule"]
    assert study.study_threshold(80.0, [10, 50], 40.0)["threshold"] is None


def test_alpha_on_an_edge_extends_the_grid_by_one_step():
    assert study.extend_alphas([0.25, 0.5, 1.0], 1.0) == 2.0
    assert study.extend_alphas([0.25, 0.5, 1.0], 0.25) == 0.125
    assert study.extend_alphas([0.25, 0.5, 1.0], 0.5) is None


def test_tune_extends_an_edge_choice_and_records_it():
    from jnigt.experiments.sweep import GridRuns

    times = np.linspace(0, 1, 4)

    def run_point(alphas, etas, seeds):  # return grows with alpha: the top edge always wins
        k = len(seeds)
        y = np.outer(np.asarray(alphas), times)
        z = np.zeros((k, times.size))
        return GridRuns(
            "m",
            4,
            times,
            np.asarray(seeds),
            np.asarray(alphas),
            np.asarray(etas),
            y,
            z,
            z,
            z,
            z,
            z[:, 0],
            z[:, 0],
        )

    chosen, rows = study.tune(run_point, "p", "m", TINY, times)
    assert chosen["learning_rate"] == 4.0 and chosen["extensions"] == 1 and chosen["alpha_on_edge"]
    assert chosen["eta_on_edge"] and chosen["alphas_tried"] == [2.0**-6, 0.25, 4.0]  # ratio 16
    assert len(rows) == 3 and sum(r["chosen"] for r in rows) == 1
    np.testing.assert_allclose(chosen["median_curve"], 4.0 * times)


def test_design_refuses_a_pool_too_small_for_the_aa_halves():
    with pytest.raises(ValueError, match="pool_seeds: must be >= 2 x report_seeds"):
        study.StudyDesign(report_seeds=10, pool_seeds=12)


def test_tiny_study_resumes_after_a_kill_without_recomputing(tmp_path):
    panel = panels.panels_for("tiny")["main_b"]
    out = str(tmp_path)
    plans = {panel.name: dict(rounds=3, threshold=1.0)}
    first = study.study([panel], TINY, out, plans, log=lambda *a: None, fast_compile=True)[panel.name]
    rep = first["report"]
    assert set(rep) == set(panel.methods)
    assert rep["rennala"].seeds.tolist() == list(range(1000, 1020))  # the reference's A/A pool
    assert rep["afedpg"].seeds.tolist() == list(range(1000, 1010))  # paired by seed with its first half
    res = first["result"]
    assert (
        res["verdict"] in ("holds", "does not hold", "no difference detected")
        or "too short" in res["verdict"]
    )
    assert 0 <= res["aa_rate"] <= 1 and res["aa_splits"] >= 200
    assert os.path.exists(os.path.join(out, "results.md")) and os.path.exists(
        os.path.join(out, "main_b", "main_b.png")
    )
    folder = os.path.join(out, panel.name)
    for f in ("summary.csv", "curves.csv", "main_b.png"):
        os.remove(os.path.join(folder, f))  # outputs of the analysis, rewritten from the stage files
    # a kill during AFedPG's report: its file is missing, the others are kept and never recomputed
    os.remove(os.path.join(folder, "report_afedpg.npz"))
    stamps = {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in os.listdir(folder)}
    again = study.study([panel], TINY, out, plans, log=lambda *a: None, fast_compile=True)[panel.name]
    for f, ns in stamps.items():
        assert os.stat(os.path.join(folder, f)).st_mtime_ns == ns, f
    for m in panel.methods:
        np.testing.assert_array_equal(again["report"][m].eval_return, rep[m].eval_return)
    with open(os.path.join(folder, "chosen_rennala.json")) as f:
        assert json.load(f)["alphas_tried"][0] <= 2.0**-6
    # the same folder under another design is refused, not mixed
    with pytest.raises(ValueError, match="under another plan"):
        study.study([panel], study.StudyDesign(**{**TINY.__dict__, "tune_seeds": 2}), out, plans)


def _synthetic_runs(method, seeds, reach_at, times):
    from jnigt.experiments.sweep import GridRuns

    y = np.clip(times[None, :] / reach_at[:, None], 0, 1.5)  # crosses 1.0 at reach_at
    z = np.zeros_like(y)
    k = len(seeds)
    return GridRuns(
        method,
        20,
        times,
        np.asarray(seeds),
        np.full(k, 0.1),
        np.full(k, 0.1),
        y,
        z,
        z,
        z,
        z,
        z[:, 0],
        z[:, 0],
    )


def test_analysis_of_a_panel_where_the_reference_is_clearly_faster(tmp_path):
    panel = panels.panels_for("tiny")["main_b"]
    design = study.StudyDesign()
    times = np.linspace(0, 1, 25)
    rng = np.random.default_rng(0)
    seeds = 1000 + np.arange(20)
    base = rng.uniform(0.3, 0.9, 20)  # per-seed difficulty shared by every method (the pairing)
    report = {
        "rennala": _synthetic_runs("rennala", seeds, 0.4 * base, times),
        "synchronized": _synthetic_runs("synchronized", seeds[:10], base[:10], times),
        "afedpg": _synthetic_runs("afedpg", seeds[:10], 1.1 * base[:10], times),
    }
    folder = tmp_path / panel.name
    folder.mkdir()
    for m in report:
        chosen = dict(learning_rate=0.1, momentum=0.1, alpha_on_edge=False, eta_on_edge=True)
        (folder / f"chosen_{m}.json").write_text(json.dumps(chosen))
    res = study.analyze(panel, design, str(tmp_path), 1.0, times, report, ("best", "Rennala NIGT fastest"))
    assert res["verdict"] == "holds" and res["aa_rate"] <= 0.1
    rows = {r["method"]: r for r in res["rows"]}
    assert rows["rennala"]["ratio"] == 1.0
    assert rows["synchronized"]["ratio"] < 0.6 and rows["synchronized"]["ratio_hi90"] < 1.0
    assert rows["afedpg"]["p_faster_holm"] < 0.025 and rows["rennala"]["seeds_reached"] == 10
    md = study.results_markdown([res], {"walker2d_c": "too short to decide"})
    assert "| main_b |" in md and "holds" in md and "walker2d_c" in md
    for f in ("summary.csv", "curves.csv", "main_b.png"):
        assert (folder / f).exists()


def test_study_panels_move_humanoid_to_full_and_charge_b_per_gradient_too():
    cpu = study.study_panels("cpu")
    assert "humanoid_c" not in cpu and "humanoid_c" in study.LEFT_OUT["cpu"]
    b, bt = cpu["main_b"], cpu["main_b_trajectory"]
    assert bt.time_unit == "trajectory" and (bt.step_model, bt.comm_model) == (b.step_model, b.comm_model)
    assert cpu["main_c_trajectory"].time_unit == "trajectory"
    d = study.DESIGNS["cpu"]
    assert d.tune_seeds >= 3 and d.report_seeds >= 10 and d.eval_episodes >= 16 and d.grid_points >= 25
    assert d.momenta == study.PAPER_MOMENTA and d.pool_seeds >= 20


def test_tiny_convergence_study_runs_end_to_end_from_the_command_line_and_resumes(tmp_path, capsys):
    """`jnigt reproduce --study convergence --size tiny`: the pilot decides, the study runs or reports the
    panel too short; a rerun reads every finished file back and writes the same results.md."""
    from jnigt import cli

    out = str(tmp_path / "conv")
    argv = ["reproduce", "--study", "convergence", "--size", "tiny", "--panels", "main_a", "--out", out]
    assert cli.main([*argv, "--no-progress"]) == 0
    pilot = json.loads((tmp_path / "conv" / "pilot" / "main_a" / "pilot.json").read_text())
    assert {"threshold", "rule", "t_end", "rounds", "chosen", "medians", "max_initial_return"} <= set(pilot)
    assert len(pilot["times"]) == study.PILOT_DESIGNS["tiny"].grid_points
    results = (tmp_path / "conv" / "results.md").read_text()
    assert "main_a" in results
    if pilot["rounds"] is None:
        assert "too short to decide" in results
    else:
        assert (tmp_path / "conv" / "main_a" / "summary.csv").exists()
    stamps = {
        f: f.stat().st_mtime_ns for f in (tmp_path / "conv").rglob("*") if f.suffix in (".npz", ".json")
    }
    assert cli.main([*argv, "--no-progress"]) == 0
    assert {f: f.stat().st_mtime_ns for f in stamps} == stamps
    assert (tmp_path / "conv" / "results.md").read_text() == results
    assert len((tmp_path / "conv" / "machines.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    assert cli.main(["reproduce", "--study", "bogus", "--size", "tiny"]) == 2
    assert "--study: must be one of equal-time, pilot, convergence" in capsys.readouterr().err


def test_time_unit_statement_and_partial_results():
    v = lambda **kw: [dict(panel=k, verdict=x) for k, x in kw.items()]
    step, traj = study.time_unit_statement(
        v(main_a="no difference detected", main_b="holds", main_c="holds", main_b_trajectory="holds")
    )
    assert "per environment step: reproduces" in step
    assert "per gradient (trajectory): undecided, 1 of its panels" in traj
    step, _ = study.time_unit_statement(v(main_a="does not hold", main_b="holds", main_c="holds"))
    assert "does not reproduce" in step  # (a) all alike fails
    step, _ = study.time_unit_statement(v(main_a="holds", main_b="holds", main_c="no difference detected"))
    assert "does not reproduce" in step  # (c) not clearly fastest
    md = study.results_markdown([], None, missing=["main_b", "hetero"])
    assert "**Partial: 2 of the study's panels are not in this table** (main_b, hetero" in md
    assert "Partial" not in study.results_markdown([], None)


def test_panels_run_at_once_write_the_files_of_one_panel_after_another(tmp_path, capsys):
    """`--jobs 2`: the pilot and stages 1-2 of two panels in threads give byte-identical stage files and the
    same results.md as the panels run one after another; a bad --jobs is refused before anything runs."""
    from jnigt import cli

    argv = ["reproduce", "--study", "convergence", "--size", "tiny", "--panels", "main_a", "main_b"]
    for jobs, name in ((1, "one"), (2, "two")):
        argv_ = [*argv, "--out", str(tmp_path / name), "--jobs", str(jobs), "--no-progress"]
        assert cli.main(argv_) == 0
    tuned = list((tmp_path / "one").rglob("tune_*.csv"))  # the computed stage (tiny: the pilot's)
    assert len(tuned) == 6 and (tmp_path / "two" / "results.md").exists()
    # every stage and result file the same (report runs array by array), and the same set of files
    spec = importlib.util.spec_from_file_location("compare_studies", ROOT / "scripts" / "compare_studies.py")
    compare_studies = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_studies)
    assert compare_studies.main(["--fresh", str(tmp_path / "two"), "--stored", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert cli.main([*argv, "--out", str(tmp_path / "bad"), "--jobs", "0"]) == 2
    assert "--jobs: a whole number >= 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
