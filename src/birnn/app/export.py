"""A trained run as a file that runs without birnn: ONNX (onnxruntime), a torch.export
program (``.pt2``) or an ExecuTorch program (``.pte``: one example at a time, T up to
``max_steps``), with the preprocessing written beside it as JSON (``birnn export``).

The exported model takes the encoded batch — what the run's encoder makes of raw records —
with dynamic B and T, and returns scores:

==========  ====================================================  ============================
kind        inputs                                                output
==========  ====================================================  ============================
text        ``ids`` (B, T) int64, ``lengths`` (B,) int64          class probabilities (B, K)
            (+ ``chars`` (B, T, W) int64 for ``input="both"``)
series      ``x`` (B, T, C) float32, ``lengths`` (B,) int64        class probabilities (B, K)
tagging     ``ids`` (B, T), ``lengths`` (B,) (+ ``chars`` (B,     tag scores (B, T, N): argmax
            T, W))                                                per step, or with a CRF its
                                                                  emissions, to decode by Viterbi
forecast    ``x`` (B, W, C) float32 (standardised)                next values (B, K, C),
                                                                  standardised
==========  ====================================================  ============================

``int8=True`` (``birnn export --int8``) writes the ONNX file with int8 weights, for
onnxruntime (:func:`_int8`); ``preprocessing.json`` lists the int8 operators it holds.

``preprocessing.json`` holds the encoder (vocabularies, labels, scaler), for a CRF tagger
``decode: "viterbi"`` and ``crf`` (``transitions`` [from][to], ``start``, ``end``: a path scores
``start[y_0] + sum_t scores[t, y_t] + sum_{t>0} transitions[y_{t-1}][y_t] + end[y_last]``), these
input names and
``patch``: a series model that reads k steps at once (``patch`` k > 1) takes ``x`` as
(B, ceil(T/k), k*C) — k consecutive standardised steps side by side, zeros after the end — and
``lengths`` as ceil(length/k) (:meth:`birnn.models.SequenceClassifier.patched`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from pathlib import Path
from typing import List, Tuple

import torch
from torch import nn
from torch.export import Dim


__all__ = ["FORMATS", "export_run"]

FORMATS = ("onnx", "pt2", "pte")
MAX_STEPS = 1024  # a .pte's default bound on T (ExecuTorch plans its memory for it)


class _Scores(nn.Module):
    """The run's model on plain tensors (export takes no dataclasses as inputs): what its task
    exports (class probabilities, tag emissions, forecasts)."""

    def __init__(self, model: nn.Module, task) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x, lengths=None, chars=None):
        return self.task.exported(self.model, x, lengths, chars)


def _example(run, fmt: str, max_steps: int) -> Tuple[List[str], tuple, tuple]:
    """Input names, an example batch and its dynamic shapes (for a .pte: one row, any T up
    to ``max_steps``)."""
    if fmt != "pte":
        return run.impl.export_inputs(run, Dim("B", min=1), Dim("T", min=2), Dim)
    names, args, dynamic = run.impl.export_inputs(run, None, Dim("T", min=2, max=max_steps), Dim)
    return names, tuple(a[:1] for a in args), dynamic


def _int8(path: Path) -> List[str]:
    """Rewrite the ONNX file at ``path`` with int8 weights (onnxruntime's dynamic quantization:
    activations quantized per batch at run time); returns the quantized operators' types.

    Layers with lengths are exported in onnxruntime's form (one operator each, without the
    padding column whose large weights would swamp the single int8 scale of a weight tensor;
    :func:`birnn.backends.onnx.onnxruntime_form`). The weights' reordering into ONNX's gate
    order is folded into constants first (the exporter folds only small tensors), so each ``LSTM`` operator holds its weights as
    initializers and becomes ``DynamicQuantizeLSTM`` (onnxruntime's contrib operator: the file
    then runs in onnxruntime only). ``GRU`` / ``RNN`` operators have no int8 form there and
    stay in float; products (``MatMul``, ``Gemm``) and embeddings (``Gather``) become int8."""
    try:
        import onnx
        import onnxscript.optimizer
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise ImportError(f"int8 needs onnxruntime (its quantization tool) and onnxscript ({e})") from None
    model = onnxscript.optimizer.optimize(onnx.load(str(path)), input_size_limit=1 << 40, output_size_limit=1 << 40)
    before = {n.op_type for n in model.graph.node}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # (its advice to run shape inference first: the optimizer did)
    try:
        quantize_dynamic(model, str(path), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return sorted({n.op_type for n in onnx.load(str(path)).graph.node} - before)


def export_run(run, path, fmt: str, *, int8: bool = False, max_steps: int = MAX_STEPS) -> Path:
    """Write ``run``'s model to ``path`` as ``fmt`` ("onnx", "pt2" or "pte") and
    ``preprocessing.json`` beside it; returns the model file's path. ``int8``: ONNX with int8
    weights (:func:`_int8`). A "pte" (ExecuTorch) takes one example at a time, of any T up to
    ``max_steps`` (:mod:`birnn.pte_export`)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if int8 and fmt != "onnx":
        raise ValueError(f"int8 is an ONNX export (onnxruntime's dynamic quantization); got format {fmt!r}")
    if fmt == "pte" and max_steps < 2:
        raise ValueError(f"max_steps must be at least 2, got {max_steps}")
    names, args, dynamic = _example(run, fmt, max_steps)
    model, patch = run.model.eval(), getattr(run.model, "patch", 1)
    if patch > 1:  # the windowing's size arithmetic would pin T: the exported model takes the patches
        model = copy.deepcopy(model)
        model.patch = 1
    module = _Scores(model, run.impl).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pt2":
        program = torch.export.export(module, args, dynamic_shapes=dynamic)
        torch.export.save(program, str(path))
    elif fmt == "pte":
        from ..pte_export import export_pte

        export_pte(module, args, str(path), dynamic_shapes=dynamic)
    else:
        from ..backends.onnx import onnxruntime_form
        from ..onnx_export import export_onnx

        with onnxruntime_form() if int8 else contextlib.nullcontext():
            export_onnx(module, args, dynamic_shapes=dynamic, input_names=names, output_names=["scores"],
                        verbose=False).save(str(path))
    quantized = _int8(path) if int8 else None
    meta = {"kind": run.kind, "format": fmt, "inputs": names, "output": "scores", "patch": patch,
            **({"batch": 1, "max_steps": max_steps} if fmt == "pte" else {}),
            **({"int8": quantized} if int8 else {}),
            "preprocessing": {"class": type(run.encoder).__name__, **run.encoder.to_dict()}}
    meta.update(run.impl.export_meta(run))
    (path.parent / "preprocessing.json").write_text(json.dumps(meta, indent=1))
    return path
