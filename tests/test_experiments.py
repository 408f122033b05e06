"""jnigt.experiments: statistics on hand-made curves, the tuning selection, panels, the compilation cache,
and (on the 'lqr' / 'fast' envs, tiny horizons) the vmapped equal-time sweep against individual runs."""

import csv
import json
import math

import numpy as np
import pytest

from jnigt.experiments import files, panels, stats, tuning

# ----------------------------------------------------------------------------------------- statistics


def test_time_to_threshold_interpolates_and_inf():
    t = np.array([0.0, 10.0, 20.0, 30.0])
    y = np.array([[0.0, 4.0, 8.0, 8.0], [0.0, 1.0, 2.0, 3.0], [9.0, 9.0, 9.0, 9.0]])
    got = stats.time_to_threshold(t, y, 6.0)
    # run 0 crosses 6 halfway between 10 (4) and 20 (8); run 1 never; run 2 starts above
    np.testing.assert_allclose(got, [15.0, np.inf, 0.0])
    assert stats.time_to_threshold(t, y[0], 8.0) == 20.0
    # NaN (diverged) never counts as reaching it
    assert stats.time_to_threshold(t, np.array([0.0, np.nan, np.nan, np.nan]), 1.0) == np.inf


def test_median_band_and_values_at():
    t = np.array([0.0, 1.0, 2.0])
    y = np.array([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 10.0], [3.0, 4.0, 5.0], [4.0, 5.0, 6.0]])
    med, lo, hi = stats.median_band(y)
    np.testing.assert_allclose(med, [2.0, 3.0, 5.0])
    np.testing.assert_allclose(lo, np.quantile(y, 0.2, axis=0))
    assert np.all(lo <= med) and np.all(med <= hi)
    np.testing.assert_allclose(stats.values_at(t, y, [2.0]), y[:, [2]])
    with pytest.raises(ValueError, match="not a point of the time grid"):
        stats.values_at(t, y, [1.5])


def test_area_under_median_is_time_average_and_penalises_divergence():
    t = np.array([0.0, 1.0, 2.0])
    y = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    assert stats.area_under_median(t, y) == pytest.approx(1.0)  # mean of the line 0 -> 2
    y_nan = np.array([[0.0, 1.0, np.nan], [0.0, np.nan, np.nan], [0.0, 5.0, 9.0]])
    assert stats.area_under_median(t, y_nan) == -math.inf


def test_ttt_ratio_cases():
    assert stats.ttt_ratio(5.0, 10.0) == 0.5
    assert stats.ttt_ratio(5.0, math.inf) == 0.0
    assert stats.ttt_ratio(math.inf, 5.0) == math.inf
    assert math.isnan(stats.ttt_ratio(math.inf, math.inf))
    assert stats.median_inf([1.0, math.inf, math.inf]) == math.inf
    assert stats.median_inf([1.0, 3.0, math.inf]) == 3.0


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    ref = rng.uniform(9.0, 11.0, 7)  # ~10
    other = rng.uniform(18.0, 22.0, 7)  # ~20
    est, lo, hi = stats.bootstrap_ratio(ref, other, seed=3)
    assert est == pytest.approx(np.median(ref) / np.median(other))
    assert lo <= est <= hi and 0.4 < lo and hi < 0.6
    assert stats.bootstrap_ratio(ref, other, seed=3) == (est, lo, hi)  # same seed, same numbers
    # only the reference reaches it: ratio 0 exactly, interval [0, 0]
    assert stats.bootstrap_ratio(ref, [math.inf] * 7) == (0.0, 0.0, 0.0)


def test_thresholds_are_stated_per_env():
    assert stats.threshold("inverted_pendulum", 100) == 80.0
    assert stats.threshold("mirrored_inverted_pendulum", 100) == 80.0
    with pytest.raises(ValueError, match="no stated threshold"):
        stats.threshold("nope", 10)
    for p in panels.panels_for("full").values():  # every panel's env has a stated threshold
        stats.threshold(p.env, p.horizon)


# ----------------------------------------------------------------------------------------- tuning


def test_select_picks_best_score_and_writes_files(tmp_path):
    t = np.linspace(0.0, 1.0, 5)
    good = np.tile(np.linspace(0, 10, 5), (3, 1))
    slow = np.tile(np.linspace(0, 5, 5), (3, 1))
    diverged = good.copy()
    diverged[:2, 3:] = np.nan  # 2 of 3 seeds diverge: the median is NaN -> -inf
    rows = [
        tuning.grid_row("p", "rennala", 20, 2.0**-5, 0.1, t, slow),
        tuning.grid_row("p", "rennala", 20, 2.0**-3, 0.1, t, good),
        tuning.grid_row("p", "rennala", 20, 2.0**-1, 0.1, t, diverged),
        tuning.grid_row("p", "afedpg", 20, 2.0**-1, 0.1, t, diverged),
        tuning.grid_row("p", "afedpg", 20, 2.0**-5, 0.1, t, slow),
    ]
    assert rows[2]["score"] == -math.inf and rows[2]["diverged_runs"] == 2
    best = tuning.select(rows)
    assert best["rennala"]["learning_rate"] == 2.0**-3 and best["afedpg"]["learning_rate"] == 2.0**-5
    grid = tuning.GRIDS["tiny"]
    files.write_tuning(tmp_path / "g.csv", rows)
    files.write_json(tmp_path / "c.json", tuning.choices(best, grid))
    with open(tmp_path / "g.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == files.TUNING_COLUMNS and len(table) == 5
    assert [r["chosen"] for r in table] == ["False", "True", "False", "False", "True"]
    chosen = json.load(open(tmp_path / "c.json"))
    assert chosen["chosen"]["rennala"]["learning_rate"] == 2.0**-3
    assert set(chosen["tuning_seeds"]).isdisjoint(chosen["report_seeds"])
    with pytest.raises(ValueError, match="diverged"):
        tuning.select([rows[2]])


def test_paper_grid_and_bad_grids():
    g = tuning.GRIDS["full"]
    assert g.learning_rates[0] == 2.0**-10 and g.learning_rates[-1] == 2.0**-1 and len(g.learning_rates) == 10
    assert g.momenta == (0.001, 0.01, 0.1) and g.batch_sizes == (20, 30, 50)
    assert g.batches("afedpg") == (20,) and g.batches("rennala") == (20, 30, 50)
    assert len(g.hyper_points()) == 30 and g.report_seeds == 5
    with pytest.raises(ValueError, match="momenta"):
        tuning.TuningGrid((0.1,), (0.0,), (20,), 1, 1)
    with pytest.raises(TypeError, match="tune_seeds must be an int >= 1, got True"):
        tuning.TuningGrid((0.1,), (0.1,), (20,), True, 1)


# ----------------------------------------------------------------------------------------- panels, cache


def test_panels_cover_the_paper():
    for size in panels.SIZES:
        ps = panels.panels_for(size)
        assert {
            "main_a",
            "main_b",
            "main_c",
            "reacher_c",
            "walker2d_c",
            "hopper_c",
            "n100_a",
            "n100_c",
        } <= set(ps)
        assert {"decreasing", "hetero", "physics", "main_c_trajectory"} <= set(ps)
        assert ps["hetero"].methods == ("malenia", "afedpg") and ps["hetero"].step_model == "1,10"
        assert ps["hetero"].env.startswith("mirrored_") and ps["hetero"].num_agents == 2
        assert ps["physics"].physics_spread > 0 and ps["physics"].reference == "malenia"
        assert ps["main_c"].comm_model == "sqrt_d" and ps["main_a"].step_model == "equal"
    assert panels.panels_for("full")["main_a"].env == "humanoid"
    assert panels.panels_for("full")["n100_c"].num_agents == 100
    assert "humanoid is too slow" in panels.panel_table("cpu")
    with pytest.raises(ValueError, match="size"):
        panels.panels_for("huge")


def test_experiment_layers_import_downwards():
    """files imports nothing of the project; the runner (sweep), the protocol and the analysis modules
    never import the composition (compare) or the commands, so no import cycle can come back."""
    import ast
    import os

    folder = os.path.dirname(files.__file__)

    def imports(name):
        tree = ast.parse(open(os.path.join(folder, f"{name}.py")).read())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jnigt"):
                out |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names if a.name.startswith("jnigt")}
        return {m.removeprefix("jnigt.experiments.") for m in out}

    assert not {m for m in imports("files") if m.startswith("jnigt")}, imports("files")
    assert not imports("sweep") & {"protocol", "tuning", "stats", "files", "crosscheck", "results", "compare"}
    for lower in (
        "sweep",
        "protocol",
        "tuning",
        "panels",
        "files",
        "crosscheck",
        "results",
        "plots",
        "stats",
    ):
        assert not imports(lower) & {"compare", "commands"}, (lower, imports(lower))


def test_compilation_cache_on_and_off(tmp_path, monkeypatch):
    import jax

    from jnigt.experiments import cache

    try:
        assert cache.enable_compilation_cache(str(tmp_path / "c")) == str(tmp_path / "c")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
        assert cache.enable_compilation_cache(None) is None
        assert not jax.config.jax_enable_compilation_cache
        monkeypatch.setenv("JNIGT_JAX_CACHE", "off")
        assert cache.default_cache_dir() is None
        monkeypatch.delenv("JNIGT_JAX_CACHE")
        assert cache.default_cache_dir() == cache.DEFAULT_CACHE_DIR
    finally:
        cache.enable_compilation_cache(None)


# ----------------------------------------------------------------------------------------- runner (lqr, fast)


def _lqr_config(method, **kw):
    from jnigt.training import TrainConfig

    base = dict(
        env="lqr",
        backend=None,
        policy="linear",
        method=method,
        num_agents=3,
        step_model="sqrt",
        comm_model="sqrt",
        horizon=6,
        discount=0.9,
        batch_size=4,
        eval_episodes=2,
        learning_rate=0.1,
        momentum=0.2,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("method", ["rennala", "afedpg"])
def test_vmapped_sweep_equals_individual_runs(method):
    import jax

    from jnigt.experiments.sweep import EqualTimeRunner, eval_key, time_grid
    from jnigt.training import Trainer

    runner = EqualTimeRunner(Trainer(_lqr_config(method), num_devices=1))
    tr = runner.trainer  # the pure per-run API (the Trainer itself, or jnigt.experiments.adapter's)
    first = float(tr.next_time(tr.init(0)))
    times = time_grid(6.3 * first, 4)
    seeds, lrs, moms = np.array([0, 1, 0]), np.array([0.1, 0.05, 0.4]), np.array([0.2, 0.5, 0.2])
    res = runner(seeds, lrs, moms, times)
    for name in ("eval_return", "rounds", "env_steps", "grads_used", "comms"):
        assert getattr(res, name).shape == (3, 4)
    np.testing.assert_array_equal(res.times, times)
    # individual runs, stepped from Python with the public Trainer API: same numbers
    step, next_time, evaluate = jax.jit(tr.step), jax.jit(tr.next_time), jax.jit(tr.evaluate)
    for k in range(3):
        # Python floats of the float32 values the vmapped runs hold (the state keeps float32)
        st = tr.init(int(seeds[k]), float(np.float32(lrs[k])), float(np.float32(moms[k])))
        rounds, grads, env_steps, comms = 0, 0, 0, 0
        for j, g in enumerate(times):
            while next_time(st) <= g:
                st, m = step(st)
                rounds, grads = rounds + 1, grads + int(m["grads_used"])
                env_steps, comms = int(m["env_steps"]), int(m["comms"])
            ret = float(evaluate(st, eval_key(int(seeds[k]), j)))
            np.testing.assert_allclose(res.eval_return[k, j], ret, rtol=1e-5, atol=1e-5)
            assert (res.rounds[k, j], res.grads_used[k, j]) == (rounds, grads)
            assert (res.env_steps[k, j], res.comms[k, j]) == (env_steps, comms)
    assert res.eval_return[0, 0] == res.eval_return[2, 0]  # same seed, same start
    assert res.eval_return[0, -1] != res.eval_return[2, -1]  # the learning rate is really swept
    assert np.all(np.diff(res.rounds, axis=1) >= 1)  # every interval holds at least one step
    assert not res.capped.any()


def test_tuning_picks_the_constructed_best_step_size(tmp_path):
    """LQR, linear policy: alpha = 2^-12 barely moves, alpha = 4 throws the gains far out (unstable
    closed loop), alpha = 2^-3 learns; the protocol must pick 2^-3 and report on fresh seeds."""
    from jnigt.experiments import compare
    from jnigt.experiments.panels import Panel

    panel = Panel(
        name="lqr_tune",
        title="lqr",
        env="lqr",
        num_agents=3,
        step_model="sqrt",
        comm_model="zero",
        methods=("rennala", "afedpg"),
        horizon=6,
        rounds=12,
        grid_points=5,
        backend=None,
        eval_episodes=4,
        policy="linear",
    )
    grid = tuning.TuningGrid((2.0**-12, 2.0**-3, 4.0), (0.2,), (4,), tune_seeds=2, report_seeds=3)
    res = compare.run_panel(panel, grid, str(tmp_path), progress=False, log=lambda s: None)
    for m in panel.methods:
        assert res.chosen[m]["learning_rate"] == 2.0**-3, res.tuning_rows
        assert list(res.report[m].seeds) == list(grid.fresh_seeds)
        np.testing.assert_array_equal(res.report[m].times, res.times)  # one grid for every method
    scores = {(r["method"], r["learning_rate"]): r["score"] for r in res.tuning_rows}
    assert scores["rennala", 2.0**-3] > scores["rennala", 2.0**-12] > scores["rennala", 4.0]
    with open(res.files["curves"]) as f:
        curves = list(csv.DictReader(f))
    times_by_method = {}
    for r in curves:
        times_by_method.setdefault(r["method"], set()).add(float(r["time"]))
    assert times_by_method["rennala"] == times_by_method["afedpg"] and len(times_by_method["afedpg"]) == 5
    assert len(curves) == 2 * 3 * 5 and set(files.CURVE_COLUMNS) == set(curves[0])


def test_event_loop_baseline_matches_vectorised_round_times():
    """The benchmark's Python event heap closes rounds exactly when jnigt.timing's vectorised
    Rennala round does (fixed times), and runs the same NIGT update (deterministic per seed)."""
    import jax

    from jnigt import timing as timing_lib
    from jnigt.experiments.eventloop import RennalaEventLoop
    from jnigt.training import Trainer

    cfg = _lqr_config("rennala", num_agents=4, comm_model="sqrt", batch_size=6)
    tr = Trainer(cfg, num_devices=1)
    t = tr.timing
    loop = RennalaEventLoop(tr.policy, tr.env, t.step_time, t.comm_time, cfg.horizon, cfg.discount, 6)
    params, sim_time, env_steps, traj = loop.run(0, 0.1, 0.2, rounds=3)
    rnd = timing_lib.rennala_round(t, cfg.horizon, 6, None)
    assert sim_time == pytest.approx(3 * float(rnd.duration + rnd.comm), rel=1e-6)
    assert traj == 18 and env_steps == 18 * cfg.horizon  # LQR never terminates
    again = loop.run(0, 0.1, 0.2, rounds=3)[0]
    jax.tree.map(np.testing.assert_array_equal, params, again)


def test_sweep_command_writes_grid_curves_and_best(tmp_path, capsys):
    from jnigt.experiments import cache
    from jnigt.experiments.commands import SweepArgs, sweep_command

    args = SweepArgs(
        env="lqr",
        backend=None,
        num_agents=2,
        step_model="equal",
        horizon=4,
        rounds=3,
        grid_points=3,
        eval_episodes=2,
        method="rennala",
        learning_rates=(2.0**-6, 2.0**-3),
        batch_sizes=(2,),
        seeds=2,
        out=str(tmp_path),
        no_cache=True,
        progress=False,
    )
    try:
        assert sweep_command(args) == 0
    finally:
        cache.enable_compilation_cache(None)
    assert "<- best" in capsys.readouterr().out
    grid = list(csv.DictReader(open(tmp_path / "sweep_rennala_grid.csv")))
    assert [float(r["learning_rate"]) for r in grid] == [2.0**-6, 2.0**-3]
    assert sum(r["chosen"] == "True" for r in grid) == 1
    curves = list(csv.DictReader(open(tmp_path / "sweep_rennala_curves.csv")))
    assert len(curves) == 2 * 2 * 3  # points x seeds x grid times
    assert {int(r["rounds"]) for r in curves if float(r["time"]) > 0} == {1, 3}  # rounds at T_end/2 and T_end
    best = json.load(open(tmp_path / "sweep_rennala_best.json"))
    assert best["chosen"]["rennala"]["batch_size"] == 2


def test_compilation_cache_turned_on_after_a_compile_still_stores(tmp_path):
    import jax
    import jax.numpy as jnp

    from jnigt.experiments import cache

    jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()  # the process has compiled already
    try:
        cache.enable_compilation_cache(str(tmp_path / "c"), min_compile_secs=0.0)
        jax.jit(lambda x: jnp.sin(x) * 3.0 - x)(jnp.ones(7)).block_until_ready()
        assert any((tmp_path / "c").iterdir())
    finally:
        cache.enable_compilation_cache(None)


def test_exported_program_is_stored_and_read_back_without_tracing(tmp_path, monkeypatch):
    import jax
    import jax.numpy as jnp

    from jnigt.experiments import cache

    traces = []
    export = jax.export.export

    def counted(fn):
        traces.append(1)
        return export(fn)

    monkeypatch.setattr(jax.export, "export", counted)
    f = jax.jit(lambda x, k: {"y": jnp.sin(x) * 3.0 - x, "n": k + 1})
    args = (np.linspace(0, 1, 5, dtype=np.float32), np.int32(2))
    try:
        assert cache.exported_program(f, args, "f") is not None and len(traces) == 1  # cache off: traced
        cache.enable_compilation_cache(str(tmp_path / "c"), min_compile_secs=0.0)
        first = cache.exported_program(f, args, "f")
        stored = list((tmp_path / "c" / cache.EXPORTED_DIR).iterdir())
        assert len(traces) == 2 and len(stored) == 1
        again = cache.exported_program(f, args, "f")
        assert len(traces) == 2  # read back, not traced
        out = jax.jit(again.call)(*args)
        jax.tree.map(np.testing.assert_array_equal, out, f(*args))
        jax.tree.map(np.testing.assert_array_equal, out, jax.jit(first.call)(*args))
        cache.exported_program(f, args, "g")  # another key: another program
        cache.exported_program(f, (args[0][:3], args[1]), "f")  # other shapes: another program
        assert len(traces) == 4 and len(list(stored[0].parent.iterdir())) == 3
        stored[0].write_bytes(b"damaged")
        with pytest.warns(UserWarning, match="cannot read"):
            cache.exported_program(f, args, "f")
        assert len(traces) == 5
        cache.exported_program(f, args, "f")
        assert len(traces) == 5  # replaced by a good file
        cache.exported_program(f, args, None)
        assert len(traces) == 6  # no key: never stored
    finally:
        cache.enable_compilation_cache(None)


def test_compare_and_sweep_spell_no_backend_none_as_train_does():
    from jnigt.experiments.commands import CompareArgs

    for spelling in ("none", "None", None):
        assert CompareArgs(backend=spelling).panel("compare", ("rennala",)).backend is None
    assert CompareArgs(backend="spring").panel("compare", ("rennala",)).backend == "spring"
