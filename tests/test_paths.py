"""Every repository path that the README, docs/, benchmarks/RESULTS.md and the tests name exists:
a moved or renamed file leaves no stale pointer behind (16 had drifted before this test)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "birnn"
# a path names the repository when its first folder is one of the repository's own (a top-level
# folder, the package, or one of the package's folders at any depth: docs say "fused/grid.py");
# others are placeholders (RUN/run.toml), other projects' files (torch/testing/...) or data in packages
FOLDERS = [p for p in PACKAGE.rglob("*") if p.is_dir() and not p.name.startswith("__")]
OWN = ({p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")} - {"runs"}
       | {"birnn", ".ci"} | {p.name for p in FOLDERS})
PATH = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)+[\w.-]+\.(?:py|md|json|cpp|sh|toml|txt))\b")


def _documents():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").glob("*.md"))
    yield from sorted((ROOT / "benchmarks").glob("*.md"))
    yield from sorted((ROOT / "tests").rglob("*.py"))


def named_paths():
    """(document, line, path) of each repository path a document names."""
    for doc in _documents():
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for m in PATH.finditer(line):
                path = m.group(1)
                if path.split("/")[0] in OWN:
                    yield doc, n, path


def test_every_repository_path_named_exists():
    bases = (ROOT, ROOT / "src", PACKAGE, *(p.parent for p in FOLDERS))
    named = list(named_paths())
    assert len(named) > 50  # the pattern finds what the docs name
    stale = [f"{doc.relative_to(ROOT)}:{n}: {path}" for doc, n, path in named
             if not any((base / path).exists() for base in bases + (doc.parent,))]
    assert not stale, "stale paths:\n" + "\n".join(stale)


def test_the_check_sees_a_stale_path(tmp_path):
    gone = "tests/" "test_gone.py"  # (split, so that this file names no stale path itself)
    assert PATH.findall(f"see {gone} and `fused/grid.py`, not RUN/run.toml") == [gone, "fused/grid.py",
                                                                                "RUN/run.toml"]
    assert "tests" in OWN and "fused" in OWN and "csrc" in OWN and "RUN" not in OWN
