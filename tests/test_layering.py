"""The data flows one way (README.md, "How it is built"): a unit imports only units below it in LAYERS.

Units are the top-level modules and the subpackages (backends, data, models, train, app) of
birnn; imports inside a subpackage are free, except inside the task layer (app), whose own
modules are ordered too (APP_LAYERS). Function-level imports count like any other.
"""

import ast
import pathlib

import birnn

SRC = pathlib.Path(birnn.__file__).parent

# lowest first
LAYERS = [
    "errors", "batch", "cells", "output", "bridge", "regularization", "options", "init", "parameters",
    "speed_table", "arguments", "dispatch", "backends", "layers", "linear_cells", "onnx_export", "pte_export", "driver",
    "bidirectional", "explain",
    "data", "models", "train", "app", "__main__",
]
# the task layer (birnn/app), lowest first
APP_LAYERS = ["baselines", "tasks", "export", "plots", "run_options", "config", "runs", "pretrained", "report", "flags", "cli"]


def unit_of(path: pathlib.Path, src: pathlib.Path = SRC) -> str:
    rel = path.relative_to(src)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_units(path: pathlib.Path, src: pathlib.Path = SRC):
    """The birnn units ``path`` imports from: each import resolved against the module's own
    package (``from ..base import`` in birnn/backends/fused/__init__.py is birnn.backends.base)."""
    rel = path.relative_to(src).with_suffix("")
    package = list(rel.parts[:-1])  # (for __init__.py, its own package)
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            if node.module and node.module.startswith("birnn."):
                yield node.module.split(".")[1]
            continue
        base = package[: len(package) - (node.level - 1)]
        names = (node.module.split(".") if node.module else [])
        if base:
            yield base[0]  # within a subpackage, or from it: the unit is the subpackage
        elif names:
            yield names[0]
        else:  # from . import x
            for alias in node.names:
                yield alias.name


def test_every_unit_is_placed():
    units = {unit_of(p) for p in SRC.rglob("*.py")} - {"__init__"}
    assert units == set(LAYERS), f"place new modules in LAYERS: {sorted(units ^ set(LAYERS))}"


def test_imports_point_down_only():
    for path in SRC.rglob("*.py"):
        unit = unit_of(path)
        if unit == "__init__":
            continue
        for dep in imported_units(path):
            if dep == "__version__" or dep == unit:
                continue
            assert dep in LAYERS, f"{path.name} imports unknown birnn unit {dep}"
            assert LAYERS.index(dep) < LAYERS.index(unit), f"{path.relative_to(SRC)} ({unit}) must not import {dep}"


def test_the_task_layer_points_down_too():
    app = SRC / "app"
    units = {unit_of(p, app) for p in app.rglob("*.py")} - {"__init__"}
    assert units == set(APP_LAYERS), f"place new modules of birnn/app in APP_LAYERS: {sorted(units ^ set(APP_LAYERS))}"
    for path in app.rglob("*.py"):
        unit = unit_of(path, app)
        if unit == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):  # imports of app's own modules only
            if isinstance(node, ast.ImportFrom) and node.level:
                rel = path.relative_to(app).with_suffix("")
                package = list(rel.parts[:-1])
                if node.level - 1 > len(package):
                    continue  # from birnn itself (the layers below the task layer)
                base = package[: len(package) - (node.level - 1)]
                names = [base[0]] if base else ([node.module.split(".")[0]] if node.module else
                                                [a.name for a in node.names])
                for dep in names:
                    if dep in (unit, "__version__"):
                        continue
                    assert dep in APP_LAYERS, f"{path.name} imports unknown app unit {dep}"
                    assert APP_LAYERS.index(dep) < APP_LAYERS.index(unit), \
                        f"app/{path.relative_to(app)} ({unit}) must not import {dep}"
