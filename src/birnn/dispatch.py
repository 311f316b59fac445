"""Which implementation runs a call, and why — an observable, explainable decision.

Paths:

- ``"torch"``: PyTorch's fused op (cuDNN on GPU, oneDNN/aten on CPU) on the whole batch;
  used when every sequence is full. Identical to torch.nn.
- ``"torch-chunked"``: the fused op on length-sorted time chunks with padded steps frozen
  (see :mod:`birnn.native`); variable lengths on CPU, where it beats packing.
- ``"torch-packed"``: the fused op on a PackedSequence; variable lengths on GPU, where cuDNN
  handles packing natively.
- ``"reference"``: the pure-PyTorch recurrence (:mod:`birnn.recurrence`); always available,
  and the only path for features the fused op cannot express.

A layer's ``path`` argument asks for one (``"auto"`` decides); every result carries the path
that ran in ``result.path`` and the layer keeps ``layer.last_decision`` (path and reason).

>>> choose("auto", device=torch.device("cpu"), variable_lengths=True, features=[]).path
'torch-chunked'
>>> choose("auto", device=torch.device("cpu"), variable_lengths=False, features=["zoneout"]).reason
'zoneout: not expressible in the fused op'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["PATHS", "Decision", "check_path", "choose"]

PATHS = ("auto", "torch", "torch-chunked", "torch-packed", "reference")


@dataclass(frozen=True)
class Decision:
    path: str
    reason: str


def check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}; got {path!r}")
    return path


def _lengths_strategy(device: torch.device) -> Decision:
    if device.type == "cuda":
        return Decision("torch-packed", "variable lengths on CUDA: cuDNN runs packed sequences natively")
    return Decision("torch-chunked", "variable lengths on CPU: fused op on length-sorted chunks, padded steps frozen "
                                     "(faster than packing)")


def choose(requested: str, *, device: torch.device, variable_lengths: bool, features: Sequence[str]) -> Decision:
    """Pick the path for one call.

    Args:
        requested: the layer's ``path`` setting (one of :data:`PATHS`).
        variable_lengths: some sequence is shorter than T.
        features: birnn-only features in use that the fused op cannot express.
    """
    if requested == "reference":
        return Decision("reference", "requested with path='reference'")
    if features:
        if requested != "auto":
            raise ValueError(f"path={requested!r} cannot run {', '.join(features)}; use path='auto' or 'reference'")
        return Decision("reference", f"{', '.join(features)}: not expressible in the fused op")
    if not variable_lengths:
        why = "requested with path='torch'" if requested == "torch" else "every sequence is full"
        return Decision("torch", f"{why}: one call of PyTorch's fused op, as torch.nn")
    if requested in ("torch-chunked", "torch-packed"):
        return Decision(requested, f"requested with path={requested!r}")
    return _lengths_strategy(device)
