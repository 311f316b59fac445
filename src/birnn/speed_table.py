"""The fused kernel against cuDNN, as measured on a GPU: the table :mod:`birnn.dispatch` reads
to decide whether ``path="auto"`` runs the fused kernel. The data is ``speed_table.json`` next
to this module, written by ``benchmarks/gpu.py --table`` on the device (:func:`write`); edit
it only by measuring again. This module loads and validates it.

Rows: (cell, dtype, B, T, H, step, lengths, cuDNN us/(step*layer), fused us/(step*layer)),
bidirectional, 2 layers, I=256.

>>> DEVICE.split(",")[0], KERNEL, MEASURED[0][:6]
('NVIDIA H200', 'resident', ('LSTM', 'float32', 1, 512, 512, 'infer'))
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import NamedTuple, Sequence, Tuple

__all__ = ["COLUMNS", "DEVICE", "KERNEL", "MEASURED", "PATH", "Table", "load", "write"]

PATH = pathlib.Path(__file__).with_name("speed_table.json")
COLUMNS = ("cell", "dtype", "B", "T", "H", "step", "lengths", "cudnn_us", "fused_us")
_CHOICES = {"cell": ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"), "dtype": ("float32", "bfloat16", "float16"),
            "step": ("infer", "train"), "lengths": ("equal", "random")}
_KERNELS = ("stream", "resident")


class Table(NamedTuple):
    device: str  # the GPU, software versions, date, and the log the rows come from
    kernel: str  # the fused kernel measured ("resident": W_hh on chip where it fits; "stream": from L2)
    rows: Tuple[tuple, ...]


def _check_row(k: int, row) -> tuple:
    where = f"speed table row {k}"
    if not isinstance(row, (list, tuple)) or len(row) != len(COLUMNS):
        raise ValueError(f"{where} must have the {len(COLUMNS)} columns {COLUMNS}, got {row!r}")
    for name, value in zip(COLUMNS, row):
        if name in _CHOICES and value not in _CHOICES[name]:
            raise ValueError(f"{where}: {name} must be one of {_CHOICES[name]}, got {value!r}")
        if name in ("B", "T", "H") and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{where}: {name} must be an int >= 1, got {value!r}")
        if name.endswith("_us") and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                     or not math.isfinite(value) or value <= 0):
            raise ValueError(f"{where}: {name} must be a time in microseconds > 0, got {value!r}")
    return tuple(row)


def load(path=PATH) -> Table:
    """The table at ``path``, validated: ValueError naming the row and column that is wrong."""
    data = json.loads(pathlib.Path(path).read_text())
    if not isinstance(data, dict) or tuple(data.get("columns", ())) != COLUMNS:
        raise ValueError(f"{path}: expected an object with columns {list(COLUMNS)}")
    if data.get("kernel") not in _KERNELS or not isinstance(data.get("device"), str):
        raise ValueError(f"{path}: 'kernel' must be one of {_KERNELS} and 'device' a string")
    return Table(data["device"], data["kernel"], tuple(_check_row(k, r) for k, r in enumerate(data["rows"])))


def write(path, rows: Sequence[tuple], device: str, kernel: str) -> None:
    """Write measured ``rows`` as a table :func:`load` reads (validated first), one row per line."""
    rows = [_check_row(k, r) for k, r in enumerate(rows)]
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    lines = ["{", f' "device": {json.dumps(device)},', f' "kernel": {json.dumps(kernel)},',
             f' "columns": {json.dumps(list(COLUMNS))},', ' "rows": [']
    lines += ["  " + json.dumps(list(r)) + ("," if k < len(rows) - 1 else "") for k, r in enumerate(rows)]
    pathlib.Path(path).write_text("\n".join(lines + [" ]", "}"]) + "\n")


DEVICE, KERNEL, MEASURED = load()
