"""The ONNX form of a layer: ONNX's standard ``LSTM`` / ``GRU`` / ``RNN`` operator.

The user's own call works: ``torch.onnx.export(model, (x, lengths), f, dynamo=True,
dynamic_shapes=...)`` on any module holding birnn layers. While ``torch.onnx.export`` traces
(``torch.onnx.is_in_onnx_export()`` under ``torch.export``), a layer that PyTorch's fused op
runs (:func:`birnn.backends.graph.graph_layer`) writes itself through :func:`onnx_layer`: ONNX's
own recurrent operator, emitted with ``torch.onnx.ops.symbolic_multi_out``, and plain tensor ops
around it. The model takes any T, B and lengths and runs on onnxruntime's and OpenVINO's fused
kernels, without birnn, with eager birnn's numbers. Without lengths a layer is one operator
(``direction="bidirectional"``); with lengths each direction is one forward operator over its
own order, in a form every runtime reads alike whether or not it honours ``sequence_lens``
(see :data:`FREEZE`). ``torch.onnx.export`` needs ``onnxscript`` (and ``onnx``).

Gate orders: torch.nn's ``i f g o`` (LSTM) and ``r z n`` (GRU) become ONNX's ``i o f c`` and
``z r h``; the GRU uses ``linear_before_reset=1`` (torch.nn's form of the reset gate). ONNX's
``Y`` (T, D, B, H) becomes birnn's output (T, B, D*H).

Symbols: ``T`` time, ``B`` batch, ``I`` input size, ``D`` directions, ``H`` hidden size.
"""

from __future__ import annotations

import contextlib
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..batch import mask_from_lengths
from ..cells import cell_spec

__all__ = ["onnx_layer", "onnxruntime_form", "writing_onnx"]


# Runtimes read ONNX's recurrent operators with ``sequence_lens`` differently: onnxruntime stops
# each row at its length (and starts the reverse direction at its last real step); OpenVINO
# (2026.4) runs every row through all T steps, so its padded outputs are not zero, its final
# states are those after the padding, and its reverse direction starts in the padding. The
# form exported here reads the same in both: each direction runs forward over its own order
# (the backward one on the per-row reversal of the input: real steps first), padded outputs are
# masked, h_n is gathered at each row's last real step, and an LSTM gets one more input column,
# 1 at padded steps, whose weights saturate its forget gate to exactly 1 and its input gate to
# exactly 0, so its cell state, c_n, stays at the last real step's whatever the runtime does.
BIG = 1.0e4
FREEZE = {"LSTM": (-BIG, 0.0, BIG, 0.0)}  # the padding column's weight per gate block, ONNX's [i|o|f|c]


@torch.compiler.assume_constant_result  # (dynamo would read torch.onnx.is_in_onnx_export() as False)
def _onnx_exporting() -> bool:
    return torch.onnx.is_in_onnx_export()


_FORM = {"onnxruntime": False}


@contextlib.contextmanager
def onnxruntime_form():
    """Export layers with lengths in onnxruntime's reading of ``sequence_lens`` only: one
    operator per layer, no padding column (see :data:`FREEZE`). For a file that onnxruntime
    alone runs, such as one with int8 weights, whose single scale per tensor the padding
    column's large weights would swamp."""
    _FORM["onnxruntime"] = True
    try:
        yield
    finally:
        _FORM["onnxruntime"] = False


def writing_onnx() -> bool:
    """Whether ``torch.onnx.export(..., dynamo=True)`` is tracing the call now (``torch.export``
    under it, strict or not)."""
    return torch.compiler.is_exporting() and _onnx_exporting()


def _reorder(w: Tensor, mode: str, H: int) -> Tensor:
    """(D, G*H, ·) in torch.nn's gate order -> ONNX's."""
    blocks = cell_spec(mode).onnx_order
    return w if len(blocks) == 1 else torch.cat([w[:, k * H:(k + 1) * H] for k in blocks], dim=1)


def _reverse(x: Tensor, lengths: Tensor) -> Tensor:
    """ONNX's ``ReverseSequence`` of x (T, B, ...): each row's real steps reversed, padding kept."""
    return torch.onnx.ops.symbolic("ReverseSequence", [x, lengths], {"batch_axis": 1, "time_axis": 0},
                                   dtype=x.dtype, shape=x.shape)


def _operator(mode: str, x: Tensor, W: Tensor, R: Tensor, B: Optional[Tensor], seq: Optional[Tensor],
              h0: Tensor, c0: Optional[Tensor]) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """ONNX's own operator for ``mode`` over x (T, B, I'): ``(Y (T, D, B, H), Y_h (D, B, H), Y_c or None)``."""
    D, H = R.shape[0], R.shape[2]
    attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
    inputs: List[Optional[Tensor]] = [x, W, R, B, seq, h0]
    if mode == "LSTM":
        inputs.append(c0)
    elif mode == "GRU":
        attrs["linear_before_reset"] = 1
    else:
        attrs["activations"] = ["Tanh" if mode == "RNN_TANH" else "Relu"] * D
    state = (D, x.shape[1], H)
    n = 3 if mode == "LSTM" else 2
    outs = torch.onnx.ops.symbolic_multi_out(
        "LSTM" if mode == "LSTM" else "GRU" if mode == "GRU" else "RNN", inputs, attrs,
        dtypes=[x.dtype] * n, shapes=[(x.shape[0], D, x.shape[1], H)] + [state] * (n - 1))
    return outs[0], outs[1], (outs[2] if n == 3 else None)


def onnx_layer(mode: str, x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor], w_ih: Tensor,
               w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor]
               ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """One layer, both directions, as ONNX's operators (only meaningful while exporting).

    Arguments as ``birnn::recurrent_layer``'s: x (T, B, I), lengths (B,) or None, h0/c0
    (D, B, H), w_ih (D, G*H, I), w_hh (D, G*H, H), b_ih/b_hh (D, G*H) or None, torch.nn's gate
    order. Returns ``(output (T, B, D*H), h_n (D, B, H), c_n (D, B, H) or None)``.
    """
    D, H = w_hh.shape[0], w_hh.shape[2]
    W, R = _reorder(w_ih, mode, H), _reorder(w_hh, mode, H)
    B = None if b_ih is None else torch.cat([_reorder(b_ih, mode, H), _reorder(b_hh, mode, H)], dim=1)
    if lengths is None:
        Y, h, c = _operator(mode, x, W, R, B, None, h0, c0)
    elif _FORM["onnxruntime"]:  # one operator that honours sequence_lens; an empty row keeps h_0 (and c_0)
        Y, h, c = _operator(mode, x, W, R, B, lengths.to(torch.int32), h0, c0)
        read = (lengths > 0).view(1, -1, 1)
        h, c = torch.where(read, h, h0), None if c0 is None else torch.where(read, c, c0)
    else:  # each direction forward over its own order, h_n read at the last real step (see FREEZE)
        valid = mask_from_lengths(lengths, x.shape[0])  # (T, B)
        if mode in FREEZE:  # a padding input column that holds the cell state still
            x = torch.cat([x, (~valid).to(x.dtype).unsqueeze(2)], dim=2)  # 1 at padded steps
            column = torch.cat([W.new_full((H,), v) for v in FREEZE[mode]])  # (4*H,)
            W = torch.cat([W, column.view(1, -1, 1).expand(D, -1, 1)], dim=2)
        seq = lengths.to(torch.int32)
        runs, cells = [], []
        for d in range(D):
            xd = x if d == 0 else _reverse(x, lengths)
            one = slice(d, d + 1)  # this direction's block (1, ...) of each (D, ...) tensor
            Yd, _, cd = _operator(mode, xd, W[one], R[one], None if B is None else B[one], seq, h0[one],
                                  None if c0 is None else c0[one])
            runs.append(Yd)  # (T, 1, B, H) in this direction's processing order
            cells.append(cd)
        ordered = torch.cat(runs, dim=1)  # (T, D, B, H)
        last = (lengths - 1).clamp(min=0).view(1, 1, -1, 1).expand(1, D, -1, H)
        read = (lengths > 0).view(1, -1, 1)  # an empty row keeps h_0 (and c_0)
        h = torch.where(read, ordered.gather(0, last).squeeze(0), h0)
        c = None if c0 is None else torch.where(read, torch.cat(cells, dim=0), c0)
        if D == 2:
            runs[1] = _reverse(runs[1].squeeze(1), lengths).unsqueeze(1)  # back to time order
        Y = torch.cat(runs, dim=1) * valid.to(x.dtype)[:, None, :, None]  # padded steps output zeros
    out = Y.permute(0, 2, 1, 3).reshape(Y.shape[0], Y.shape[2], D * H)  # (T, B, D*H)
    return out, h, c
