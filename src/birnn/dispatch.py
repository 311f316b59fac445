"""Which implementation runs a call, and why — an observable, explainable decision.

Paths:

- ``"torch"``: PyTorch's fused op (cuDNN on GPU, oneDNN/aten on CPU) on the whole batch;
  used when every sequence is full. Identical to torch.nn.
- ``"torch-chunked"``: the fused op on length-sorted time chunks with padded steps frozen
  (see :mod:`birnn.backends.native`); variable lengths on CPU where it beats packing (the table
  :data:`CPU_LENGTHS` below, measured by ``benchmarks/cpu.py``).
- ``"torch-packed"``: the fused op on a PackedSequence; variable lengths on GPU, where cuDNN
  handles packing natively, and on CPU where packing is faster.
- ``"packed"``: the regularised LSTM (recurrent dropout, zoneout, layer norm) on CPU, run
  eagerly: packed by length, a hand-written backward, oneDNN products and a C++ step
  (:mod:`birnn.backends.packed.layer`); what "auto" takes for those layers where it runs them.
- ``"scan"``: the linear cells (minGRU, minLSTM), whose gates read only the input, as one
  parallel scan over time (:mod:`birnn.backends.scan`); what "auto" takes for them.
- ``"reference"``: the pure-PyTorch recurrence (:mod:`birnn.backends.reference`); always available,
  the oracle, and the path for features no other backend declares.
- ``"fused"``: birnn's persistent Triton kernel (:mod:`birnn.backends.fused`), one launch per layer
  for both directions and all steps, lengths handled natively, recurrent dropout, zoneout and
  layer norm fused into the step; on CUDA where it is supported and measured faster than
  cuDNN (:func:`fused_measured_faster`, the table :mod:`birnn.speed_table`), for regularised
  calls it supports (cuDNN cannot run them; the reference loop is far slower), or when asked
  for with ``path="fused"``.

What each implementation can run is its backend's to say (:mod:`birnn.backends`); this module
is the policy that picks among them, and the measurements it reads.

A layer's ``path`` argument asks for one (``"auto"`` decides); every result carries the path
that ran in ``result.path`` and the layer keeps ``layer.last_decision`` (path and reason).

>>> cpu = torch.device("cpu")
>>> choose("auto", device=cpu, mode="LSTM", needs_grad=False, variable_lengths=True, features=[]).path
'torch-chunked'
>>> choose("auto", device=cpu, mode="GRU", needs_grad=False, variable_lengths=True, features=[]).path
'torch-packed'
>>> choose("auto", device=cpu, mode="GRU", needs_grad=False, variable_lengths=False, features=["zoneout"]).reason
'zoneout: not expressible in the fused op'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

import torch

__all__ = ["CPU_LENGTHS", "PATHS", "Decision", "check_path", "choose", "fused_measured_faster", "measured_evidence",
           "measured_note", "nearest_measured", "unexpressible"]

PATHS = ("auto", "torch", "torch-chunked", "torch-packed", "packed", "scan", "reference", "fused")

def nearest_measured(rows: Sequence[tuple], mode: str, dtype: str, hidden: int, batch: int,
                     training: Optional[bool] = None) -> Optional[tuple]:
    """The measured row closest to a call, or None when nothing measured is near.

    Rows are :data:`birnn.speed_table.MEASURED`'s. Only rows of the same dtype and cell family
    (gated: LSTM/GRU; Elman) count. Distance: ``|log2 H - log2 H_r| + |log2 B - log2 B_r|``
    (one doubling of either is 1), +0.5 for the other gated cell, +0.5 for the other step
    (inference/training) when ``training`` is given; rows farther than 2 (a factor 4) do not
    count. Among the nearest, the slowest for the kernel (lowest speed-up) is returned.

    >>> rows = [("LSTM", "float32", 8, 512, 128, "train", "equal", 8.4, 12.4),
    ...         ("LSTM", "float32", 8, 512, 1024, "infer", "equal", 49.8, 18.5)]
    >>> nearest_measured(rows, "LSTM", "float32", 256, 8)[4]      # H=256: nearer to 128
    128
    >>> nearest_measured(rows, "GRU", "float32", 1024, 16)[4]     # other gated cell, B x2
    1024
    >>> nearest_measured(rows, "LSTM", "float32", 8192, 8) is None   # a factor 8 from any row
    True
    """
    def family(m):
        return "gated" if m in ("LSTM", "GRU") else "elman"

    best, best_key = None, None
    for row in rows:
        cell, dt, B, _, H, step = row[:6]
        if dt != dtype or family(cell) != family(mode):
            continue
        dist = abs(math.log2(hidden / H)) + abs(math.log2(max(batch, 1) / B))
        dist += 0.5 * (cell != mode)
        if training is not None:
            dist += 0.5 * ((step == "train") != training)
        if dist > 2:
            continue
        key = (dist, row[7] / row[8])
        if best_key is None or key < best_key:
            best, best_key = row, key
    return best


def fused_measured_faster(mode: str, dtype: torch.dtype, hidden: int, batch: int,
                          training: Optional[bool] = None) -> bool:
    """Whether the nearest measurement in :mod:`birnn.speed_table` (written on the device by
    ``benchmarks/gpu.py --table``; its ``DEVICE`` says where and when) has the fused kernel
    faster than cuDNN. Where nothing was measured near (Elman RNNs, hidden x batch more than a
    factor 4 from every row), "auto" keeps cuDNN. The examples below read the recorded table.

    >>> fused_measured_faster("LSTM", torch.float32, 512, 64), fused_measured_faster("GRU", torch.float32, 128, 8)
    (True, False)
    """
    return measured_evidence(mode, dtype, hidden, batch, training)[0]


def _nearest(mode: str, dtype: torch.dtype, hidden: int, batch: int, training: Optional[bool]) -> Optional[tuple]:
    from .speed_table import MEASURED

    return nearest_measured(MEASURED, mode, str(dtype).split(".")[-1], hidden, batch, training)


def measured_note(mode: str, dtype: torch.dtype, hidden: int, batch: int, training: Optional[bool] = None) -> str:
    """The measurement behind :func:`fused_measured_faster`, for a decision's reason.

    >>> measured_note("LSTM", torch.float32, 1024, 8, False)
    'nearest measured: LSTM float32 B=8 H=1024 infer, cuDNN 48.7 us vs fused 15.9 us per step·layer (3.06x)'
    """
    return measured_evidence(mode, dtype, hidden, batch, training)[1]


def measured_evidence(mode: str, dtype: torch.dtype, hidden: int, batch: int,
                      training: Optional[bool] = None) -> Tuple[bool, str]:
    """``(fused_measured_faster(...), measured_note(...))`` from one lookup of the table: what a
    layer's "auto" call needs (the choice, and the reason it gives when it takes the kernel)."""
    row = _nearest(mode, dtype, hidden, batch, training)
    if row is None:
        return False, "nothing measured near this size"
    cell, dt, B, _, H, step, _, peer, fused = row
    return peer > fused, (f"nearest measured: {cell} {dt} B={B} H={H} {step}, cuDNN {peer} us vs fused {fused} us "
                          f"per step·layer ({peer / fused:.2f}x)")


@dataclass(frozen=True)
class Decision:
    path: str
    reason: str


def check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}; got {path!r}")
    return path


# Variable lengths on CPU: (mode, needs_grad) -> strategy. Measured with benchmarks/cpu.py
# (B=32, T=128, H=256, 2 layers, bidirectional; 2 cores): torch's LSTM runs on oneDNN only
# unpacked, so chunking wins by 1.35x (inference) to 2.3x (training); torch's GRU/RNN packed
# inference shrinks the batch each step and beats chunking (0.75x), chunked training wins (1.1-1.2x).
CPU_LENGTHS = {
    ("LSTM", False): "torch-chunked", ("LSTM", True): "torch-chunked",
    ("GRU", False): "torch-packed", ("GRU", True): "torch-chunked",
    ("RNN_TANH", False): "torch-packed", ("RNN_TANH", True): "torch-chunked",
    ("RNN_RELU", False): "torch-packed", ("RNN_RELU", True): "torch-chunked",
}


def unexpressible(features: Sequence[str]) -> str:
    """Why PyTorch's fused op cannot run a call that uses ``features`` (birnn's extras).

    >>> unexpressible(["zoneout", "layer_norm"])
    'zoneout, layer_norm: not expressible in the fused op'
    """
    return f"{', '.join(features)}: not expressible in the fused op"


def _lengths_strategy(device: torch.device, mode: str, needs_grad: bool) -> Decision:
    if device.type == "cuda":
        return Decision("torch-packed", "variable lengths on CUDA: cuDNN runs packed sequences natively")
    path = CPU_LENGTHS[(mode, needs_grad)]
    how = ("fused op on length-sorted chunks, padded steps frozen" if path == "torch-chunked"
           else "fused op on packed sequences")
    return Decision(path, f"variable lengths on CPU, {mode} {'training' if needs_grad else 'inference'}: {how} "
                          f"(the faster one measured, see birnn.dispatch.CPU_LENGTHS)")


def choose(requested: str, *, device: torch.device, mode: str, needs_grad: bool, variable_lengths: bool,
           features: Sequence[str], refused: Optional[Mapping[str, Optional[str]]] = None,
           fused_faster: bool = False) -> Decision:
    """Pick the path for one call.

    Args:
        requested: the layer's ``path`` setting (one of :data:`PATHS`).
        mode: torch.nn's mode string ("LSTM", "GRU", "RNN_TANH", "RNN_RELU").
        needs_grad: autograd will record the call (training) rather than inference.
        variable_lengths: some sequence is shorter than T.
        features: birnn-only features and call arguments in use that the fused op cannot express.
        refused: each backend's answer, by path: why it cannot run this call, or None where it
            can (:meth:`birnn.backends.base.Backend.supports`). A path missing here was not asked
            (it cannot run). PyTorch's op is under ``"torch"``.
        fused_faster: the fused kernel was measured faster than cuDNN for this configuration.

    The backends (:mod:`birnn.backends`) say what each can run; this function is the policy
    that ranks what can: the fused kernel on CUDA (regularised calls, or measured faster), the
    packed LSTM for regularised calls it runs, PyTorch's op for the rest, the reference scan
    where nothing else runs the call.
    """
    refused = dict(refused or {})

    def can(path: str) -> bool:
        return path in refused and refused[path] is None

    if requested == "reference":
        return Decision("reference", "requested with path='reference'")
    if requested in ("fused", "packed", "scan"):
        if not can(requested):
            raise ValueError(f"path={requested!r} cannot run this call: {refused.get(requested) or 'not asked'}")
        return Decision(requested, f"requested with path={requested!r}")
    if requested == "auto" and can("fused") and device.type == "cuda" and not torch.compiler.is_compiling():
        if features:  # only the reference loop runs them otherwise: the kernel was 18-25x faster on an H200
            return Decision("fused", f"CUDA, {mode} with {', '.join(features)}: birnn's persistent kernel runs them "
                                     "in the step (measured 18-25x faster than the reference loop, "
                                     "benchmarks/RESULTS.md)")
        if fused_faster:
            return Decision("fused", f"CUDA, {mode}: birnn's persistent kernel, measured faster than cuDNN for this "
                                     "size (birnn.dispatch.fused_measured_faster)")
    if requested == "auto" and can("scan"):
        return Decision("scan", f"{mode}: its gates read only the input, so the whole sequence is one scan, lengths "
                                "and resets folded in (birnn.backends.scan)")
    if features:
        if requested != "auto":
            raise ValueError(f"path={requested!r} cannot run {', '.join(features)}; use path='auto' or 'reference'")
        if can("packed"):
            return Decision("packed", f"{unexpressible(features)}; the packed {mode} layer with its hand-written "
                                      "backward (birnn.backends.packed.layer)")
        return Decision("reference", unexpressible(features))
    native_blocker = refused.get("torch")
    if native_blocker is not None:
        return Decision("reference", native_blocker)
    if not variable_lengths:
        why = "requested with path='torch'" if requested == "torch" else "every sequence is full"
        return Decision("torch", f"{why}: one call of PyTorch's fused op, as torch.nn")
    if requested in ("torch-chunked", "torch-packed"):
        return Decision(requested, f"requested with path={requested!r}")
    return _lengths_strategy(device, mode, needs_grad)
