"""The data flows one way: a module imports only modules below it in LAYERS (DESIGN.md)."""

import ast
import pathlib

import birnn

SRC = pathlib.Path(birnn.__file__).parent

# lowest first; a module may import only modules that come before it
LAYERS = [
    "batch", "cells", "output", "bridge", "regularization", "options", "init", "recurrence", "native",
    "arguments", "dispatch",
    "layers", "driver", "bidirectional",
]


def _internal_imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            yield (node.module or "").split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("birnn."):
            yield node.module.split(".")[1]


def test_every_module_is_placed():
    modules = {p.stem for p in SRC.glob("*.py")} - {"__init__", "__main__"}
    assert modules == set(LAYERS), f"place new modules in LAYERS: {sorted(modules ^ set(LAYERS))}"


def test_imports_point_down_only():
    for name in LAYERS:
        rank = LAYERS.index(name)
        for dep in _internal_imports(SRC / f"{name}.py"):
            assert dep in LAYERS, f"{name} imports unknown birnn module {dep}"
            assert LAYERS.index(dep) < rank, f"{name} must not import {dep} (it sits above it)"
