"""The reference path: a multi-layer, bidirectional recurrence in plain PyTorch ops.

Symbols: ``T`` time steps, ``B`` batch, ``F`` input features of a layer, ``D`` directions,
``G`` gates, ``H`` hidden size, ``P`` recurrence output size (``proj_size`` or ``H``),
``L`` layers.

How it runs, per layer:

1. The backward direction reads the input *reversed within each sequence's real part*
   (``[x0 x1 x2 pad] -> [x2 x1 x0 pad]``), so both directions consume real steps first and
   stop at the same step: one loop advances both with a batched matmul.
2. The input half of every gate, for every step and both directions, is one batched matmul:
   ``(D, T*B, F) @ (D, F, G*H)``.
3. At step ``t`` a sequence with ``lengths[b] <= t`` keeps its state (``torch.where``) and
   emits zeros; the loop ends at ``max(lengths)``.
4. The backward outputs are reversed back, directions are concatenated, and the next layer
   starts (with torch.nn's inter-layer dropout in training).

Everything is differentiable by autograd, scriptable by ``torch.compile``, and serves as the
oracle the fused paths are tested against.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .batch import mask_from_lengths, reverse_valid
from .cells import Carry, CellSpec, StepWeights

__all__ = ["LayerWeights", "layer_weights", "run_reference", "scan"]


class LayerWeights(NamedTuple):
    """One layer's weights, both directions stacked, in the layout the reference loop uses."""

    w_ih: Tensor  # (D*G*H, F)
    b_in: Optional[Tensor]  # (D*G*H,) bias folded into the input projection
    step: StepWeights


def layer_weights(spec: CellSpec, directions: Sequence[Sequence[Tensor]], *, bias: bool, proj: bool) -> LayerWeights:
    """Stack torch.nn-layout parameters ``[w_ih, w_hh, (b_ih, b_hh), (w_hr)]`` per direction,
    gate blocks reordered as the cell's step reads them."""
    order = spec.to_step_order
    w_ih = torch.cat([order(p[0]) for p in directions], 0)
    hh_t = torch.stack([order(p[1]).t() for p in directions], 0)
    b_in = b_hh = None
    if bias:
        b_ih = torch.cat([order(p[2]) for p in directions], 0)
        if spec.hidden_bias_in_step:
            b_in = b_ih
            b_hh = torch.stack([order(p[3]) for p in directions], 0).unsqueeze(1)
        else:
            b_in = b_ih + torch.cat([order(p[3]) for p in directions], 0)
    hr_t = torch.stack([p[-1].t() for p in directions], 0) if proj else None
    return LayerWeights(w_ih, b_in, StepWeights(hh_t, b_hh, hr_t))


def scan(spec: CellSpec, xs: Tensor, carry: Carry, w: StepWeights, valid: Optional[Tensor]) -> Tuple[Tensor, Carry]:
    """Run ``spec.step`` over ``xs`` (T, D, B, G*H) from ``carry``; return outputs (T, D, B, P).

    ``valid`` (T, B) bool marks real steps; at other steps the carry is kept and the output is 0.
    """
    ys: List[Tensor] = []
    if valid is None:
        for xt in xs.unbind(0):
            carry = spec.step(xt, carry, w)
            ys.append(carry[0])
    else:
        for xt, m in zip(xs.unbind(0), valid.unbind(0)):
            new = spec.step(xt, carry, w)
            m = m.view(1, -1, 1)  # (1, B, 1)
            carry = tuple(torch.where(m, n, o) for n, o in zip(new, carry))
            ys.append(torch.where(m, new[0], 0.0))
    return torch.stack(ys, 0), carry


def run_reference(
    spec: CellSpec,
    layers: Sequence[LayerWeights],
    x: Tensor,
    lengths: Optional[Tensor],
    h0: Tensor,
    c0: Optional[Tensor],
    *,
    dropout: float = 0.0,
    training: bool = False,
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Run a stack of recurrent layers on a time-major padded batch.

    Args:
        x: (T, B, F) input, zero at padded steps.
        lengths: (B,) int64 on ``x``'s device, or None when every sequence has T steps.
        h0: (L*D, B, P) initial hidden states, row ``l*D + d`` for layer l, direction d.
        c0: (L*D, B, H) initial cell states (LSTM) or None.

    Returns:
        output (T, B, D*P), h_n (L*D, B, P), c_n (L*D, B, H) or None.
    """
    T, B = x.shape[:2]
    D = h0.shape[0] // len(layers)
    valid = None if lengths is None else mask_from_lengths(lengths, T)  # (T, B)
    # stop at the longest sequence (but not under torch.compile: that would break the graph)
    steps = T if lengths is None or torch.compiler.is_compiling() else (int(lengths.max()) if B else 0)
    h_n: List[Tensor] = []
    c_n: List[Tensor] = []
    inp = x
    for l, w in enumerate(layers):
        # each direction reads its own time order: reverse the (narrow) input, not the gates
        seqs = torch.stack([inp, reverse_valid(inp, lengths)], 0) if D == 2 else inp.unsqueeze(0)  # (D, T, B, F)
        w_ih = w.w_ih.view(D, -1, inp.shape[-1]).transpose(1, 2)  # (D, F, G*H)
        flat = seqs.reshape(D, T * B, -1)
        xg = torch.bmm(flat, w_ih) if w.b_in is None else torch.baddbmm(w.b_in.view(D, 1, -1), flat, w_ih)
        xs = xg.view(D, T, B, -1).transpose(0, 1)  # (T, D, B, G*H), a view
        rows = slice(l * D, (l + 1) * D)
        carry: Carry = (h0[rows],) if c0 is None else (h0[rows], c0[rows])
        v = None if valid is None else valid[:steps]
        if steps:
            ys, carry = scan(spec, xs[:steps], carry, w.step, v)  # (steps, D, B, P)
        else:  # every sequence is empty: outputs are zero and the state stays h_0
            ys = h0.new_zeros(0, D, B, h0.shape[-1])
        if steps < T:
            ys = F.pad(ys, (0, 0, 0, 0, 0, 0, 0, T - steps))
        if D == 2:
            inp = torch.cat([ys[:, 0], reverse_valid(ys[:, 1], lengths)], -1)  # (T, B, 2P)
        else:
            inp = ys[:, 0]
        h_n.append(carry[0])
        if c0 is not None:
            c_n.append(carry[1])
        if dropout > 0 and training and l < len(layers) - 1:
            inp = F.dropout(inp, dropout, True)
    return inp, torch.cat(h_n, 0), (torch.cat(c_n, 0) if c0 is not None else None)
