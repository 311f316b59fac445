"""A layer as one ``torch.ops.higher_order.scan`` over time: the form ExecuTorch runs.

``birnn::recurrent_layer`` (:mod:`birnn.backends.graph`), the one node per layer that
``torch.export`` records, has no kernel in ExecuTorch. :func:`scan_layer` is the same layer
written as PyTorch's higher-order ``scan`` over the time axis, with the cell's own step
(:data:`birnn.cells.CELLS`) as its body: a graph of standard ATen operators whose loop
ExecuTorch's emitter turns into a loop of jump instructions, so the program takes any T up
to the bound the export gave. The step's masks keep each row's state at its last real step
and zero its padded outputs; the backward direction reads each row's reversed real part
(:func:`birnn.backends.reference.gate_inputs`), as the reference scan does.

Arguments and outputs are ``birnn::recurrent_layer``'s: x (T, B, I), lengths (B,) or None,
h0/c0 (D, B, H), w_ih (D, G*H, I), w_hh (D, G*H, H), b_ih/b_hh (D, G*H) or None, ``mode``;
returns ``(output (T, B, D*H), h_n (D, B, H), c_n (D, B, H) (zeros without an LSTM), key
(0,) int64)``.
"""

from __future__ import annotations

import importlib
from typing import List, Optional

import torch
from torch import Tensor

from ..batch import mask_from_lengths
from ..cells import cell_spec
from .reference import gate_inputs, natural
from .weights import step_weights

__all__ = ["scan_layer", "to_scan_form"]


def scan_layer(x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor], w_ih: Tensor, w_hh: Tensor,
               b_ih: Optional[Tensor], b_hh: Optional[Tensor], mode: str, keep_graph: bool = False):
    """``birnn::recurrent_layer`` as one higher-order scan over T (see the module's docstring)."""
    hop_scan = importlib.import_module("torch._higher_order_ops.scan").scan
    spec = cell_spec(mode)
    D, T = w_hh.shape[0], x.shape[0]
    bias = b_ih is not None
    weights = [[w_ih[d], w_hh[d]] + ([b_ih[d], b_hh[d]] if bias else []) for d in range(D)]
    w = step_weights(spec, weights, bias=bias, proj=False)
    _, xs = gate_inputs(w, x, lengths, D)  # (T, D, B, G*H), each direction in its own order
    valid = mask_from_lengths(lengths, T) if lengths is not None else torch.ones_like(x[..., 0], dtype=torch.bool)
    step = w.step

    def body(carry: List[Tensor], inputs):
        xt, mt = inputs  # (D, B, G*H), (B,)
        new = spec.step(xt, tuple(carry), step)
        m = mt.unsqueeze(0).unsqueeze(-1)  # (1, B, 1): a padded step keeps the state, outputs 0
        return [torch.where(m, n, o) for n, o in zip(new, carry)], torch.where(m, new[0], 0.0)

    carry, ys = hop_scan(body, [h0] if c0 is None else [h0, c0], (xs, valid))
    out = natural(ys, T, T, lengths)  # (T, B, D*H)
    c = carry[1] if c0 is not None else torch.zeros_like(carry[0])
    return out, carry[0], c, torch.zeros(0, dtype=torch.int64)


def to_scan_form(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """``program`` with each ``birnn::recurrent_layer`` node rewritten as :func:`scan_layer`."""
    from . import graph  # noqa: F401  (registers torch.ops.birnn.recurrent_layer)

    # the scan traces its body through dynamo; with dynamo's caches from an earlier program of
    # another cell (torch 2.13, executorch 1.5) the lowering lost a body input's metadata
    torch._dynamo.reset()
    return program.run_decompositions({torch.ops.birnn.recurrent_layer.default: scan_layer})
