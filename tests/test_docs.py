"""Every ```python block of README.md and docs/*.md runs as written; the ```bash commands are listed
here and run by scripts/check_doc_commands.py, outside the suite (they train for minutes to hours).

Each Python block runs in a fresh namespace, in a temporary working directory (the blocks write run
folders such as ``runs/lqr``). A block whose first line is ``# continues the block above`` (a comment a
reader sees) runs in the namespace the previous block of its file left. The snippets are tiny by
themselves (the 'lqr' env, short horizons, few rounds), so the suite runs exactly what a reader copies.
"""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "check_doc_commands", ROOT / "scripts" / "check_doc_commands.py"
)
check_doc_commands = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_doc_commands)

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
