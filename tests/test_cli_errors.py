"""The command line's user errors (one line, exit 2, the flag named), its help, its cache switch, and
``jnigt crosscheck``'s read-only default (jnigt.cli, jnigt.cli_support, jnigt.experiments.commands)."""

import os
import shutil
import sys

import jax
import pytest

from jnigt import cli, cli_support
from jnigt.experiments import cache, commands
from jnigt.training import TrainConfig, Trainer
from jnigt.training.precompile import precompile
from jnigt.training.progress import RunProgress

RESULTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "results", "equal_time")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jnigt: error: "), err
    return lines[0]


@pytest.mark.parametrize(
    "argv, says",
    [
        (["train", "--batch-size", "2.5"], ["--batch-size:", "'2.5'", "jnigt train --help"]),
        (["train", "--batch-sizes", "3"], ["--batch-sizes", "did you mean --batch-size?"]),
        (["train", "--executor", "slurm"], ["'slurm'", "--executor"]),
        (["theory", "--agents"], ["--agents"]),
        (["sweep", "--learning-rates", "x"], ["--learning-rates:"]),
    ],
)
def test_a_command_line_tyro_cannot_parse_is_one_line_and_exit_2(argv, says, capsys):
    assert cli.main(argv) == 2
    line = _one_error_line(capsys)
    assert all(s in line for s in says), line
    assert "╭" not in line and "│" not in line
    assert cli.main([*argv, "--verbose"]) == 2  # --verbose: tyro's own box as well
    assert len(capsys.readouterr().err.strip().splitlines()) > 2


def test_tyro_utf8_box_becomes_one_line():
    box = """\
╭─ Unrecognized options ────────────────────────────────────────────╮
│ Unrecognized options: --batch-sizes, 3                            │
│ ───────────────────────────────────────────────────────────────── │
│ Perhaps you meant:                                                │
│     --batch-size INT                                              │
│         M, gradients per round (default: 20)                      │
│ ───────────────────────────────────────────────────────────────── │
│ For full helptext, run jnigt train --help                         │
╰───────────────────────────────────────────────────────────────────╯
"""
    assert cli_support._one_line(box, "jnigt train") == (
        "Unrecognized options: --batch-sizes, 3; did you mean --batch-size? (see jnigt train --help)"
    )


@pytest.mark.parametrize(
    "argv, says",
    [
        (["theory", "--agents", "0"], "--agents must be an int >= 1, got 0"),
        (["theory", "--gamma", "1"], "--gamma must be in [0, 1)"),
        (["theory", "--comm", "sqrt_d"], "--comm='sqrt_d' requires --num-params"),
        (["train", "--batch-size", "0"], "--batch-size: must be an int >= 1"),
        (["train", "--rounds", "7"], "--rounds: must be a multiple of --eval-every=10"),
        (["compare", "--seeds", "0"], "--seeds must be an int >= 1, got 0"),
    ],
)
def test_messages_name_the_flag_the_user_typed(argv, says, capsys):
    assert cli.main(argv) == 2
    assert says in _one_error_line(capsys)


def test_name_flags_spells_setting_names_as_flags_and_leaves_words_and_paths_alone():
    flags = cli_support.flags_of(TrainConfig)
    assert flags["malenia_patience"] == "--malenia-patience"
    msg = "rounds: 3 consecutive rounds with malenia_patience=2 in /tmp/eval_every/x and 'eval_every'"
    assert cli_support.name_flags(msg, flags) == (
        "--rounds: 3 consecutive rounds with --malenia-patience=2 in /tmp/eval_every/x and 'eval_every'"
    )


def test_a_missing_optional_dependency_says_which_pip_command_installs_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("JNIGT_JAX_CACHE", "off")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError(name="ray")
    argv = ["train", "--executor", "ray", "--env", "lqr", "--backend", "none", "--out", str(tmp_path / "r")]
    assert cli.main(argv) == 2
    assert "jnigt[ray]" in _one_error_line(capsys)
    bare = ModuleNotFoundError("No module named 'ray'", name="ray")
    assert cli_support.error_line(bare) == (
        "jnigt: error: No module named 'ray'; install it with: pip install \"jnigt[ray]\""
    )
    assert "pip install -e ." in cli_support.error_line(ModuleNotFoundError("x", name="yaml"))


def test_help_lists_every_command_with_a_line_and_train_shows_the_everyday_options_first(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, line) in cli.COMMANDS.items():
        assert f"  {name}  " in out and line in out
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    everyday = max(out.index(f) for f in ("--out", "--method", "--env", "--num-agents", "--rounds"))
    assert everyday < min(out.index(f) for f in ("--devices", "--coordinator", "--cache-dir"))


def _files(folder):
    """name -> (modification time, bytes) of every file in ``folder``."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def test_crosscheck_reads_by_default_and_writes_only_with_write(tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    for name in ("main_a_chosen.json", "main_a_summary.csv", "main_a_theory.csv"):
        shutil.copy(os.path.join(RESULTS, name), folder / name)
    before = _files(folder)
    assert cli.main(["crosscheck", "--dir", str(folder)]) == 1  # no theory_crosscheck.md: it differs
    out = capsys.readouterr().out
    assert "| main_a |" in out and "theory_crosscheck.md" in out and "--write" in out
    assert _files(folder) == before  # nothing written, nothing touched
    assert cli.main(["crosscheck", "--dir", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "--write" in _one_error_line(capsys) and not (tmp_path / "o").exists()
    assert cli.main(["crosscheck", "--dir", str(folder), "--write"]) == 0
    assert set(_files(folder)) == set(before) | {"theory_crosscheck.md"}
    capsys.readouterr()
    assert cli.main(["crosscheck", "--dir", str(folder)]) == 0  # now they match
    assert "match (nothing written)" in capsys.readouterr().out


def _cache_state():
    return jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir


def test_jnigt_jax_cache_off_is_honoured_by_every_command(monkeypatch, tmp_path):
    from jnigt import training

    # jnigt train, up to its training (stubbed: the cache is set up before anything compiles)
    monkeypatch.setattr(training, "train", lambda *a, **k: (None, None, [{"round": 1, "time": 1.0}]))
    train = ["train", "--method", "rennala", "--no-plot", "--out", str(tmp_path / "t")]
    starts = {
        "train": lambda extra: cli.main([*train, *extra]),
        **{
            name: lambda extra, a=args: commands._start(
                cli_support.parse(a, ["--out", str(tmp_path / "o"), *extra], "jnigt")
            )
            for name, args in (
                ("sweep", commands.SweepArgs),
                ("compare", commands.CompareArgs),
                ("reproduce", commands.ReproduceArgs),
            )
        },
    }
    try:
        for name, start in starts.items():
            monkeypatch.setenv("JNIGT_JAX_CACHE", str(tmp_path / "env"))
            start([])
            assert _cache_state() == (True, str(tmp_path / "env")), name
            start(["--cache-dir", str(tmp_path / "flag")])  # the flag wins over the variable
            assert _cache_state()[1] == str(tmp_path / "flag"), name
            monkeypatch.setenv("JNIGT_JAX_CACHE", "off")
            start([])
            assert not _cache_state()[0], name
            monkeypatch.delenv("JNIGT_JAX_CACHE")
            start(["--no-cache"])
            assert not _cache_state()[0], name
    finally:
        cache.enable_compilation_cache(None)


def test_progress_counts_rounds_or_arrivals_and_estimates_a_run_to_a_simulated_time():
    bar = RunProgress(TrainConfig(rounds=50, eval_every=10), round=0, time=0.0)
    assert (bar.bar.unit, bar.bar.total) == ("round", 50)
    bar.update(10, 320.0, 1.0)
    assert bar.bar.n == 10
    bar.close()
    afedpg = TrainConfig(method="afedpg", rounds=1000, eval_every=10, end_time=100.0)
    bar = RunProgress(afedpg, round=0, time=0.0)
    assert bar.bar.unit == "arrival" and bar.bar.total is None
    bar.update(10, 25.0, 1.0)  # 10 arrivals in 25 s: 40 by time 100
    assert (bar.bar.n, bar.bar.total) == (10, 40)
    bar.update(50, 101.0, 1.0)  # reached end_time: done
    assert (bar.bar.n, bar.bar.total) == (50, 50)
    bar.close()
    # Ray: updated every round, stops at rounds whatever end_time (its time is wall-clock)
    bar = RunProgress(afedpg, round=20, time=3.0, where="ray", by_time=False)
    assert (bar.bar.desc, bar.bar.unit, bar.bar.total, bar.bar.n) == ("ray afedpg+nigt", "arrival", 1000, 20)
    bar.update(30, 4.0, 2.5)
    bar.update(31, 4.1)  # a row without evaluation keeps the last eval_return shown
    assert (bar.bar.n, bar.bar.total, bar.bar.postfix) == (31, 1000, "time=4.1, eval_return=2.5")
    bar.close()


def test_precompiled_programs_are_the_ones_the_run_calls(caplog):
    config = TrainConfig(
        env="fast",
        backend=None,
        num_agents=2,
        horizon=4,
        batch_size=2,
        rounds=4,
        eval_every=2,
        hidden_sizes=(4,),
        eval_episodes=2,
    )
    trainer = Trainer(config, num_devices=1)
    state = trainer.init(0)
    said = []
    assert precompile([("rennala+nigt", trainer, state)], log=said.append) > 0
    assert said[0].startswith("compiling rennala+nigt") and said[1].startswith("compiled in")
    assert precompile([("rennala+nigt", trainer, state)], log=said.append) == 0.0  # done: skipped
    with jax.log_compiles(), caplog.at_level("WARNING"):
        trainer.evaluate(state)
        trainer.run_chunk(state)
    compiled = [
        r.getMessage()
        for r in caplog.records
        if "_chunk_impl" in r.getMessage() or "_evaluate_impl" in r.getMessage()
    ]
    assert compiled == [], compiled
