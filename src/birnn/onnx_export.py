"""ONNX export of models holding birnn layers: :func:`export_onnx`.

The user's own ``torch.onnx.export(model, args, f, dynamo=True, dynamic_shapes=...)`` works on
its own: while it traces, each birnn layer writes itself as ONNX's recurrent operator
(:mod:`birnn.backends.onnx`). :func:`export_onnx` is that call with ``dynamo=True`` set, and
also takes a ``torch.export`` program, whose ``birnn::recurrent_layer`` nodes it rewrites in
the same form first.
"""

from __future__ import annotations

import torch

from .backends import graph  # noqa: F401  (registers torch.ops.birnn.recurrent_layer)
from .backends.onnx import onnx_layer

__all__ = ["export_onnx"]


def _program_layer(x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, mode, keep_graph=False):
    """``birnn::recurrent_layer`` of an exported program, as :func:`onnx_layer` (its four outputs)."""
    out, h, c = onnx_layer(mode, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh)
    return out, h, torch.zeros_like(h) if c is None else c, torch.zeros(0, dtype=torch.int64)


def export_onnx(model, args: tuple, f=None, *, dynamic_shapes=None, **kwargs):
    """``torch.onnx.export(model, args, f, dynamo=True, ...)``; returns the ONNXProgram.

    ``model`` a module (as the plain call takes it) or a ``torch.export.ExportedProgram``
    holding birnn's ``birnn::recurrent_layer`` nodes, which are rewritten as ONNX's operators
    first (the plain call would not know them). ``dynamic_shapes`` as for ``torch.export``
    (e.g. ``({0: Dim("T"), 1: Dim("B")}, {0: Dim("B")})`` for ``(x, lengths)``); other keyword
    arguments go to ``torch.onnx.export``."""
    if isinstance(model, torch.export.ExportedProgram):
        model = model.run_decompositions({torch.ops.birnn.recurrent_layer.default: _program_layer})
    return torch.onnx.export(model, args, f, dynamo=True, dynamic_shapes=dynamic_shapes, **kwargs)
