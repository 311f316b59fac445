"""ONNX export: each birnn layer as the standard ``LSTM`` / ``GRU`` / ``RNN`` operator.

``torch.onnx.export(..., dynamo=True)`` exports through ``torch.export``, where a birnn layer
is one ``birnn::recurrent_layer`` node (:mod:`birnn.backends.graph`). The translation here writes
that node as ONNX's own recurrent operator, which takes ``sequence_lens`` and
``direction="bidirectional"`` natively: the model takes any T, B and lengths, and runs on
onnxruntime's fused kernels. Its backward direction starts at each sequence's last real step,
as birnn's. Needs ``onnxscript`` (and ``onnx``); onnxruntime runs the result.

Gate orders: torch.nn's ``i f g o`` (LSTM) and ``r z n`` (GRU) become ONNX's ``i o f c`` and
``z r h``; the GRU uses ``linear_before_reset=1`` (torch.nn's form of the reset gate). ONNX's
``Y`` (T, D, B, H) becomes birnn's output (T, B, D*H).

>>> import torch, birnn
>>> table = onnx_translations()   # for torch.onnx.export(..., custom_translation_table=table)
>>> torch.ops.birnn.recurrent_layer.default in table
True
"""

from __future__ import annotations

from typing import Optional

import torch

from .backends import graph  # noqa: F401  (registers torch.ops.birnn.recurrent_layer)
from .cells import cell_spec

__all__ = ["export_onnx", "onnx_translations"]



def onnx_translations() -> dict:
    """``{op overload: onnxscript function}`` for ``torch.onnx.export``'s ``custom_translation_table``."""
    from onnxscript import opset18 as op

    def reorder(w, mode: str, H: int):
        blocks = cell_spec(mode).onnx_order  # torch.nn's gate blocks, in ONNX's order
        if len(blocks) == 1:
            return w
        rows = [k * H + j for k in blocks for j in range(H)]  # a Gather of constant rows: folded on weights
        return op.Gather(w, op.Constant(value_ints=rows), axis=1)

    def recurrent_layer(x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, mode: str, keep_graph: bool = False):
        D, H = w_hh.shape[0], w_hh.shape[2]
        W, R = reorder(w_ih, mode, H), reorder(w_hh, mode, H)
        B = None if b_ih is None else op.Concat(reorder(b_ih, mode, H), reorder(b_hh, mode, H), axis=1)
        seq = None if lengths is None else op.Cast(lengths, to=6)  # INT32
        direction = "bidirectional" if D == 2 else "forward"
        if mode == "LSTM":
            Y, Y_h, Y_c = op.LSTM(x, W, R, B, seq, h0, c0, hidden_size=H, direction=direction)
        elif mode == "GRU":
            Y, Y_h = op.GRU(x, W, R, B, seq, h0, hidden_size=H, direction=direction, linear_before_reset=1)
        else:
            act = "Tanh" if mode == "RNN_TANH" else "Relu"
            Y, Y_h = op.RNN(x, W, R, B, seq, h0, hidden_size=H, direction=direction, activations=[act] * D)
        if mode != "LSTM":
            Y_c = op.ConstantOfShape(op.Shape(Y_h))  # zeros, as the node's c_n for GRU/RNN
        out = op.Reshape(op.Transpose(Y, perm=[0, 2, 1, 3]), op.Constant(value_ints=[0, 0, -1]))  # (T, B, D*H)
        no_key = op.Cast(op.ConstantOfShape(op.Constant(value_ints=[0])), to=7)  # empty INT64: no graph to keep
        return out, Y_h, Y_c, no_key

    return {torch.ops.birnn.recurrent_layer.default: recurrent_layer}


def export_onnx(model: torch.nn.Module, args: tuple, f=None, *, dynamic_shapes=None,
                custom_translation_table: Optional[dict] = None, **kwargs):
    """``torch.onnx.export(model, args, f, dynamo=True, ...)`` with birnn's layers written as
    ONNX's recurrent operators; returns the ONNXProgram. ``dynamic_shapes`` as for
    ``torch.export`` (e.g. ``({0: Dim("T"), 1: Dim("B")}, {0: Dim("B")})`` for ``(x, lengths)``);
    other keyword arguments go to ``torch.onnx.export``."""
    table = {**onnx_translations(), **(custom_translation_table or {})}
    return torch.onnx.export(model, args, f, dynamo=True, dynamic_shapes=dynamic_shapes,
                             custom_translation_table=table, **kwargs)
