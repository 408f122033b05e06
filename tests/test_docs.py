"""Every ```python block of README.md and docs/*.md runs as written (the shell blocks are checked by
scripts/check_doc_commands.py, outside the suite).

Each block runs in a fresh namespace, in a temporary working directory (the blocks write run folders such
as ``runs/...``). A block whose first line is ``# continues the block above`` (a comment a reader sees)
runs in the namespace the previous block left. The snippets themselves are tiny (small envs, horizons
and round counts), so the suite runs them exactly as a reader copies them.
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONTINUES = "# continues the block above"
FENCE = re.compile(r"^```(\w*)\s*$")


def code_blocks(path: pathlib.Path, language: str) -> list[tuple[int, str]]:
    """(first line number, source) of every fenced block of ``language`` in ``path``."""
    blocks, lang, start, body = [], None, 0, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = FENCE.match(line)
        if lang is None:
            if fence is not None:
                lang, start, body = fence.group(1), number + 1, []
        elif fence is not None and fence.group(1) == "":
            if lang == language:
                blocks.append((start, "\n".join(body) + "\n"))
            lang = None
        else:
            body.append(line)
    if lang is not None:
        raise ValueError(f"{path.name}: the code block opened at line {start - 1} is never closed")
    return blocks


def _python_blocks():
    out = []
    for path in DOCS:
        for line, source in code_blocks(path, "python"):
            out.append(pytest.param(path, line, source, id=f"{path.name}:{line}"))
    return out


BLOCKS = _python_blocks()


def test_the_docs_have_python_blocks_and_continuations_follow_a_block():
    assert len(BLOCKS) >= 6, [b.id for b in BLOCKS]
    previous = None
    for param in BLOCKS:
        path, _, source = param.values
        if source.startswith(CONTINUES):
            assert previous == path, f"{param.id} continues a block of another file"
        previous = path


_namespaces: dict[pathlib.Path, dict] = {}


@pytest.mark.parametrize("path,line,source", BLOCKS)
def test_python_block_runs_as_written(path, line, source, tmp_path_factory, monkeypatch):
    if source.startswith(CONTINUES):
        namespace = _namespaces.get(path)
        assert namespace is not None, f"{path.name}:{line} continues a block that did not run"
        monkeypatch.chdir(namespace["__docs_cwd__"])
    else:
        cwd = tmp_path_factory.mktemp(f"{path.stem}_{line}")
        monkeypatch.chdir(cwd)
        namespace = {"__name__": "__main__", "__docs_cwd__": cwd}
    _namespaces.pop(path, None)
    exec(compile(source, f"{path.name}:{line}", "exec"), namespace)
    _namespaces[path] = namespace
