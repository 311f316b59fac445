"""The example script learns its task (a short run), and the README's code blocks run."""

import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow  # trains an example to a bar
def test_first_equals_last_learns():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import first_equals_last
    finally:
        sys.path.pop(0)
    acc = first_equals_last.main(["--steps", "300", "--no-naive"])
    assert acc >= 0.85


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", *[str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.md"))]])
def test_markdown_code_blocks_run(doc, tmp_path, monkeypatch):
    blocks = _python_blocks(ROOT / doc)
    assert blocks, f"{doc} has no python code blocks"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__doc__"}
    for block in blocks:  # blocks build on each other, top to bottom
        exec(compile(block, doc, "exec"), namespace)
