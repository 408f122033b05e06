"""Every ```python block of README.md and docs/*.md runs as written; docs/configuration.md is what
scripts/gen_config_docs.py writes; each training and comparison command of README.md runs at a tiny size
(the command as written, parsed from the README, with tiny options appended), and the docs' LQR command
learns. The ```bash commands as written are run by scripts/check_doc_commands.py, outside the suite
(they train for minutes to hours), which also checks that they learn.

Each Python block runs in a fresh namespace, in a temporary working directory (the blocks write run
folders such as ``runs/lqr``). A block whose first line is ``# continues the block above`` (a comment a
reader sees) runs in the namespace the previous block of its file left. The snippets are tiny by
themselves (the 'lqr' env, short horizons, few rounds), so the suite runs exactly what a reader copies.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import pathlib
import shlex

import numpy as np
import pytest

from jnigt import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "check_doc_commands", ROOT / "scripts" / "check_doc_commands.py"
)
check_doc_commands = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_doc_commands)
_spec = importlib.util.spec_from_file_location("gen_config_docs", ROOT / "scripts" / "gen_config_docs.py")
gen_config_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_config_docs)

CONTINUES = "# continues the block above"
BLOCKS = [
    pytest.param(path, line, source, id=f"{path.name}:{line}")
    for path in check_doc_commands.doc_files(ROOT)
    for line, source in check_doc_commands.code_blocks(path, "python")
]


def test_the_docs_have_python_blocks_and_continuations_follow_a_block():
    assert len(BLOCKS) >= 6, [b.id for b in BLOCKS]
    previous = None
    for param in BLOCKS:
        path, _, source = param.values
        if source.startswith(CONTINUES):
            assert previous == path, f"{param.id} continues a block of another file"
        previous = path


def test_the_shell_commands_are_found_and_shrunk_by_appended_options():
    found = dict((command, where) for where, command in check_doc_commands.commands(ROOT))
    assert "jnigt train --help" in found and any(c.startswith("jnigt reproduce") for c in found)
    assert all(not c.endswith("\\") and "  #" not in c for c in found)  # continuations joined, comments cut
    tiny = check_doc_commands.tiny
    assert (
        tiny("jnigt sweep --seeds 4")
        == "jnigt sweep --seeds 4 --rounds 2 --grid-points 3 --seeds 1 --eval-episodes 2"
    )
    assert (
        tiny("pip install -e . && jnigt train")
        == f"pip install -e . && jnigt train {check_doc_commands.TINY_TRAIN}"
    )
    assert check_doc_commands.without_installs("pip install -e . && jnigt train") == (
        "jnigt train",
        ["pip install -e ."],
    )


_namespaces: dict[pathlib.Path, dict] = {}


@pytest.mark.parametrize("path,line,source", BLOCKS)
def test_python_block_runs_as_written(path, line, source, tmp_path_factory, monkeypatch):
    if source.startswith(CONTINUES):
        namespace = _namespaces.get(path)
        assert namespace is not None, f"{path.name}:{line} continues a block that did not run"
    else:
        namespace = {"__name__": "__main__", "__cwd__": tmp_path_factory.mktemp(f"{path.stem}_{line}")}
    monkeypatch.chdir(namespace["__cwd__"])
    _namespaces.pop(path, None)
    exec(compile(source, f"{path.name}:{line}", "exec"), namespace)
    _namespaces[path] = namespace


# ---------------------------------------------------------------------------- configuration.md
def test_configuration_page_is_generated_from_the_field_docstrings():
    """docs/configuration.md is exactly what scripts/gen_config_docs.py writes (rerun it after changing a
    docstring of TrainConfig), and it lists every field of TrainConfig."""
    import dataclasses

    from jnigt.training import TrainConfig

    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == gen_config_docs.render(), (
        "docs/configuration.md is stale: python scripts/gen_config_docs.py"
    )
    names = [name for name, *_ in gen_config_docs.fields()[1]]
    assert names == [f.name for f in dataclasses.fields(TrainConfig)]
    # the generator reads a docstring change (it cannot pass by ignoring the source)
    source = gen_config_docs.SOURCE.read_text().replace('"""H, steps per trajectory"""', '"""H, CHANGED"""')
    assert "CHANGED" in gen_config_docs.render(source) and "CHANGED" not in committed


# ---------------------------------------------------------------------------- the docs' shell commands
def _parts(path: pathlib.Path, prefix: str) -> list[tuple[str, list[str]]]:
    """("FILE:LINE", argv after ``jnigt``) of every ``&&`` part of the bash commands of ``path`` that starts
    with ``prefix``."""
    out = []
    for where, command in check_doc_commands.commands(ROOT):
        if where.split(":")[0] != path.name:
            continue
        for part in command.split(" && "):
            if part.startswith(prefix) and "--help" not in part:
                out.append((where, shlex.split(part)[1:]))
    return out


README = ROOT / "README.md"
DOCS = check_doc_commands.doc_files(ROOT)
#: appended to the README's comparison commands in the suite: the same command (its methods, step sizes and
#: seeds as written) at a tiny size, on jnigt's 'fast' env as reproduce's tiny size does (a Brax env's
#: compile alone would take the suite's budget for this test; scripts/check_doc_commands.py runs it as written)
SUITE_COMPARE = (
    "--env fast --backend None --rounds 2 --grid-points 3 --tune-seeds 1 --seeds 1 --eval-episodes 1 --horizon 8 "
    "--num-agents 2"
)


def test_the_readme_main_job_is_a_comparison_on_one_time_grid():
    (main,) = _parts(README, "jnigt compare")[:1]
    assert main[1][0] == "compare" and "--methods" in main[1], main
    assert not [p for p in DOCS for _ in _parts(p, "jnigt train --methods")]  # jnigt train trains one config


def test_the_train_commands_of_the_docs_have_their_own_output_folders():
    argvs = [argv[1:] for path in DOCS for _, argv in _parts(path, "jnigt train")]
    assert len(argvs) >= 3
    outs = [cli.parse_train(argv)[0].out for argv in argvs]
    assert len(set(outs)) == len(outs), outs


@pytest.mark.parametrize(
    "where,argv", _parts(README, "jnigt compare"), ids=lambda x: x if isinstance(x, str) else ""
)
def test_readme_comparison_runs_at_tiny_size(where, argv, tmp_path):
    """The README's comparison as written, shrunk by appended options: every method on one time grid,
    finite returns, the summary and the figure written."""
    out = tmp_path / "out"
    assert cli.main([*argv, *shlex.split(SUITE_COMPARE), "--out", str(out), "--no-progress"]) == 0, where
    methods = argv[argv.index("--methods") + 1 :]
    methods = methods[: next((i for i, a in enumerate(methods) if a.startswith("--")), len(methods))]
    with open(out / "compare_curves.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    grids = {m: sorted({float(r["time"]) for r in rows if r["method"] == m}) for m in methods}
    assert list(dict.fromkeys(r["method"] for r in rows)) == methods
    assert all(g == grids[methods[0]] for g in grids.values()) and len(grids[methods[0]]) == 3
    assert all(math.isfinite(float(r["eval_return"])) for r in rows)
    with open(out / "compare_summary.csv", newline="") as f:
        assert [r["method"] for r in csv.DictReader(f)] == methods
    assert (out / "compare.png").stat().st_size > 1000


def test_the_docs_lqr_command_learns_at_tiny_size(tmp_path):
    """The docs' Ray LQR example (here on the simulated executor) at 4 rounds: the return improves and
    every metric is finite."""
    (argv,) = [
        argv[1:]
        for path in DOCS
        for _, argv in _parts(path, "jnigt train")
        if "lqr" in argv and "ray" in argv
    ]
    argv = [a for a in argv if a not in ("--executor", "ray")]
    argv += ["--rounds", "4", "--eval-every", "2", "--eval-episodes", "4", "--devices", "1"]
    assert cli.main(["train", *argv, "--out", str(tmp_path), "--no-plot"]) == 0
    rows = [json.loads(line) for line in open(tmp_path / "rennala+nigt" / "metrics.jsonl")]
    assert not any("nonfinite" in r for r in rows)
    evals = [r["eval_return"] for r in rows if "eval_return" in r]
    assert np.all(np.isfinite(evals)) and evals[-1] > evals[0], evals
