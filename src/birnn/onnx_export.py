"""ONNX export: each birnn layer as the standard ``LSTM`` / ``GRU`` / ``RNN`` operator.

``torch.onnx.export(..., dynamo=True)`` exports through ``torch.export``, where a birnn layer
is one ``birnn::recurrent_layer`` node (:mod:`birnn.backends.graph`). The translation here writes
that node as ONNX's own recurrent operator: the model takes any T, B and lengths, and runs on
onnxruntime's and OpenVINO's fused kernels with eager birnn's numbers. Without lengths a layer
is one operator (``direction="bidirectional"``); with lengths each direction is one forward
operator over its own order, in a form every runtime reads alike whether or not it honours
``sequence_lens`` (see :data:`FREEZE`). Needs ``onnxscript`` (and ``onnx``).

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



# Runtimes read ONNX's recurrent operators with ``sequence_lens`` differently: onnxruntime stops
# each row at its length (and starts the reverse direction at its last real step); OpenVINO
# (2026.4) runs every row through all T steps, so its padded outputs are not zero, its final
# states are those after the padding, and its reverse direction starts in the padding. The
# form exported here reads the same in both: each direction runs forward over its own order
# (the backward one on ``ReverseSequence`` of the input: real steps first), padded outputs are
# masked, h_n is gathered at each row's last real step, and an LSTM gets one more input column,
# 1 at padded steps, whose weights saturate its forget gate to exactly 1 and its input gate to
# exactly 0, so its cell state, c_n, stays at the last real step's whatever the runtime does.
BIG = 1.0e4
FREEZE = {"LSTM": (-BIG, 0.0, BIG, 0.0)}  # the padding column's weight per gate block, ONNX's [i|o|f|c]


def _operator(op, mode: str, x, W, R, B, seq, h0, c0, H: int, D: int, act: str):
    """ONNX's own operator for ``mode``: ``(Y (T, D, B, H), Y_h, Y_c)`` (zeros for c without an LSTM)."""
    way = "bidirectional" if D == 2 else "forward"
    if mode == "LSTM":
        return op.LSTM(x, W, R, B, seq, h0, c0, hidden_size=H, direction=way)
    if mode == "GRU":
        Y, Y_h = op.GRU(x, W, R, B, seq, h0, hidden_size=H, direction=way, linear_before_reset=1)
    else:
        Y, Y_h = op.RNN(x, W, R, B, seq, h0, hidden_size=H, direction=way, activations=[act] * D)
    return Y, Y_h, op.ConstantOfShape(op.Shape(Y_h))


def onnx_translations() -> dict:
    """``{op overload: onnxscript function}`` for ``torch.onnx.export``'s ``custom_translation_table``."""
    from onnxscript import opset18 as op

    def reorder(w, mode: str, H: int):
        blocks = cell_spec(mode).onnx_order  # torch.nn's gate blocks, in ONNX's order
        if len(blocks) == 1:
            return w
        rows = [k * H + j for k in blocks for j in range(H)]  # a Gather of constant rows: folded on weights
        return op.Gather(w, op.Constant(value_ints=rows), axis=1)

    def ints(*values):
        return op.Constant(value_ints=list(values))

    def direction(t, d: int):  # one direction's block (1, ...) of a (D, ...) tensor
        return op.Gather(t, ints(d), axis=0)

    def recurrent_layer(x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, mode: str, keep_graph: bool = False):
        D, H = w_hh.shape[0], w_hh.shape[2]
        W, R = reorder(w_ih, mode, H), reorder(w_hh, mode, H)
        B = None if b_ih is None else op.Concat(reorder(b_ih, mode, H), reorder(b_hh, mode, H), axis=1)
        act = "Tanh" if mode == "RNN_TANH" else "Relu"
        if lengths is None:
            seq = None
            Y, Y_h, Y_c = _operator(op, mode, x, W, R, B, None, h0, c0, H, D, act)
        else:  # each direction forward over its own order, h_n read at the last real step (see FREEZE)
            seq = op.Cast(lengths, to=6)  # INT32
            steps = op.Range(op.Constant(value_int=0), op.Squeeze(op.Shape(x, start=0, end=1), ints(0)),
                             op.Constant(value_int=1))
            valid = op.Less(op.Unsqueeze(steps, ints(1)), op.Unsqueeze(lengths, ints(0)))  # (T, B)
            if mode in FREEZE:  # a padding input column that holds the cell state still
                x = op.Concat(x, op.Unsqueeze(op.CastLike(op.Not(valid), x), ints(2)), axis=2)  # 1 at padded steps
                column = op.Constant(value_floats=[v for v in FREEZE[mode] for _ in range(H)] * D)
                W = op.Concat(W, op.CastLike(op.Reshape(column, ints(D, -1, 1)), W), axis=2)
            runs, cells = [], []
            for d in range(D):
                xd = x if d == 0 else op.ReverseSequence(x, lengths, batch_axis=1, time_axis=0)
                Yd, _, Y_cd = _operator(op, mode, xd, direction(W, d), direction(R, d),
                                        None if B is None else direction(B, d), seq, direction(h0, d),
                                        None if c0 is None else direction(c0, d), H, 1, act)
                runs.append(Yd)  # (T, 1, B, H) in this direction's processing order
                cells.append(Y_cd)
            ordered = runs[0] if D == 1 else op.Concat(*runs, axis=1)
            last = op.Reshape(op.Max(op.Sub(lengths, op.Constant(value_int=1)), op.Constant(value_int=0)),
                              ints(1, 1, -1, 1))
            shape = op.Concat(ints(1), op.Shape(ordered, start=1), axis=0)
            Y_h = op.Squeeze(op.GatherElements(ordered, op.Expand(last, shape), axis=0), ints(0))
            read = op.Unsqueeze(op.Greater(lengths, op.Constant(value_int=0)), ints(0, 2))  # an empty row: h_0, c_0
            Y_h = op.Where(read, Y_h, h0)
            Y_c = cells[0] if D == 1 else op.Concat(*cells, axis=0)
            if c0 is not None:  # (onnxruntime gives zeros for an empty row's states)
                Y_c = op.Where(read, Y_c, c0)
            Y = runs[0]
            if D == 2:
                back = op.ReverseSequence(op.Squeeze(runs[1], ints(1)), lengths, batch_axis=1, time_axis=0)
                Y = op.Concat(Y, op.Unsqueeze(back, ints(1)), axis=1)
            Y = op.Mul(Y, op.CastLike(op.Unsqueeze(valid, ints(1, 3)), Y))  # padded steps output zeros
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
