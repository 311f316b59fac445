"""The reference backend: a multi-layer, bidirectional recurrence in plain PyTorch ops, every
feature, always available; the oracle the other backends are tested against.

Symbols: ``T`` time steps, ``B`` batch, ``F`` input features of a layer, ``D`` directions,
``G`` gates, ``H`` hidden size, ``P`` recurrence output size (``proj_size`` or ``H``),
``L`` layers.

How it runs, per layer:

1. The backward direction reads the input *reversed within each sequence's real part*
   (``[x0 x1 x2 pad] -> [x2 x1 x0 pad]``), so both directions consume real steps first and
   stop at the same step: one loop advances both with a batched matmul.
2. The input half of every gate, for every step and both directions, is one batched matmul:
   ``(D, T*B, F) @ (D, F, G*H)`` (then layer-normalised, with ``layer_norm``).
3. At step ``t`` a sequence with ``lengths[b] <= t`` keeps its state (``torch.where``) and
   emits zeros; the loop ends at ``max(lengths)``.
4. The backward outputs are reversed back and directions are concatenated; what happens
   between layers (dropout, residual connections) is the stack's (:mod:`birnn.backends.multilayer`).

Per-step masks (zoneout) are indexed in *processing order*: ``keep_h[t, d]`` applies to the
t-th step direction ``d`` processes (for the backward direction, real step ``len-1-t``).

Everything is differentiable by autograd, traceable by ``torch.compile``, and serves as the
oracle the fused paths are tested against. It is always this loop: the packed regularised
LSTM (:mod:`birnn.backends.packed.layer`) is a backend of its own (``path="packed"``).
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..batch import mask_from_lengths, reverse_valid, traced
from ..cells import Carry, CellSpec, StepWeights, normalise
from .base import ANY, Capabilities
from .plan import LayerPlan
from .multilayer import Ran, stack
from .weights import Highway, LayerWeights, Zoneout

__all__ = ["Reference", "Walk", "gate_inputs", "natural", "project_inputs", "reference_layer", "scan", "walk"]


def _zone(new: Tensor, old: Tensor, rate: float, keep: Optional[Tensor]) -> Tensor:
    # training: keep is 0/1 and lerp returns exactly old (1) or new (0); eval: the expectation
    if keep is not None:
        return torch.lerp(new, old, keep)
    return new if rate == 0 else torch.lerp(new, old, rate)  # rate*old + (1-rate)*new


def scan(spec: CellSpec, xs: Tensor, carry: Carry, w: StepWeights, valid: Optional[Tensor], *,
         highway: Optional[Tuple[Tensor, Highway]] = None, zoneout: Optional[Zoneout] = None,
         resets: Optional[Tensor] = None, cells: Optional[List[Tensor]] = None) -> Tuple[Tensor, Carry]:
    """Run ``spec.step`` over ``xs`` (T, D, B, G*H) from ``carry``; return outputs (T, D, B, P).

    ``valid`` (T, B) bool marks real steps; at other steps the carry is kept and the output is 0.
    ``highway`` is ``(hx (T, D, B, 2H), weights)``; ``zoneout`` mixes old and new states.
    ``resets`` (T, D, B) bool, in processing order: the carry restarts from its initial value
    before those steps. ``cells``, a list, receives the LSTM's cell state of every step
    (T, D, B, H), 0 at padded steps.
    """
    ys: List[Tensor] = []
    if valid is None and highway is None and zoneout is None and resets is None and cells is None:  # the plain loop
        for xt in xs.unbind(0):
            carry = spec.step(xt, carry, w)
            ys.append(carry[0])
        return torch.stack(ys, 0), carry
    hx_all = highway[0].unbind(0) if highway is not None else None
    valid_t = valid.unbind(0) if valid is not None else None
    init = carry
    cs: List[Tensor] = []
    for t, xt in enumerate(xs.unbind(0)):
        if resets is not None:
            r = resets[t].unsqueeze(-1)  # (D, B, 1)
            carry = tuple(torch.where(r, i, c) for i, c in zip(init, carry))
        new = spec.step(xt, carry, w)
        if highway is not None:
            hw = highway[1]
            H = hw.hh_t.shape[-1]
            h_prev = carry[0] if w.drop_h is None else carry[0] * w.drop_h
            r = torch.sigmoid(torch.baddbmm(hx_all[t][..., :H] + hw.bias, h_prev, hw.hh_t))
            new = (torch.lerp(hx_all[t][..., H:], new[0], r),) + tuple(new[1:])
        if zoneout is not None:
            keep_h = None if zoneout.keep_h is None else zoneout.keep_h[t]
            zoned = [_zone(new[0], carry[0], zoneout.rate_h, keep_h)]
            if len(new) > 1:
                keep_c = None if zoneout.keep_c is None else zoneout.keep_c[t]
                zoned.append(_zone(new[1], carry[1], zoneout.rate_c, keep_c))
            new = tuple(zoned)
        if valid_t is not None:
            m = valid_t[t].view(1, -1, 1)  # (1, B, 1)
            ys.append(torch.where(m, new[0], 0.0))
            if cells is not None:
                cs.append(torch.where(m, new[1], 0.0))
            carry = tuple(torch.where(m, n, o) for n, o in zip(new, carry))
        else:
            ys.append(new[0])
            if cells is not None:
                cs.append(new[1])
            carry = new
    if cells is not None:
        cells.append(torch.stack(cs, 0))
    return torch.stack(ys, 0), carry


def natural(ys: Tensor, steps: int, T: int, lengths: Optional[Tensor]) -> Tensor:
    """Per-step states (steps, D, B, F) in processing order -> (T, B, D*F) in each row's own order."""
    if steps < T:
        ys = F.pad(ys, (0, 0, 0, 0, 0, 0, 0, T - steps))
    if ys.shape[1] == 2:
        return torch.cat([ys[:, 0], reverse_valid(ys[:, 1], lengths)], -1)  # (T, B, 2F)
    return ys[:, 0]


def project_inputs(flat: Tensor, w_ih: Tensor, bias: Optional[Tensor]) -> Tensor:
    """(D, T*B, F) @ (D, F, G*H) (+ bias (D, 1, G*H)): every step's input projection at once."""
    return torch.bmm(flat, w_ih) if bias is None else torch.baddbmm(bias, flat, w_ih)


class Walk(NamedTuple):
    """What every layer of one call shares: the steps to run and the masks, computed once."""

    steps: int  # T, or max(lengths) (not when traced: that would branch on the lengths' values)
    valid: Optional[Tensor]  # (T, B) bool, or None when every sequence has T steps
    resets: Optional[Tensor]  # (T, D, B) bool in each direction's processing order, or None


def walk(x: Tensor, lengths: Optional[Tensor], D: int, resets: Optional[Tensor] = None) -> Walk:
    """The shared part of a call on ``x`` (T, B, F): ``lengths`` (B,) int64 or None, ``resets``
    (T, B) bool or None (the state restarts from h_0 before each marked step; the backward
    direction restarts after each segment's last step, so each direction reads each segment on
    its own)."""
    T, B = x.shape[:2]
    valid = None if lengths is None else mask_from_lengths(lengths, T)  # (T, B)
    if resets is not None:  # (T, D, B) in each direction's processing order
        # the backward direction starts a segment at its original last step: reversed, a restart
        # before step u where the original step after it (len-u) started a segment
        ahead = torch.cat([resets[1:], resets.new_zeros(1, B)], 0)
        per_direction = [resets, reverse_valid(ahead, lengths)] if D == 2 else [resets]
        resets = torch.stack(per_direction, 1)
    steps = T if lengths is None or traced() else (int(lengths.max()) if B else 0)
    return Walk(steps, valid, resets)


def gate_inputs(w: LayerWeights, inp: Tensor, lengths: Optional[Tensor], D: int) -> Tuple[Tensor, Tensor]:
    """Every step's input half of the gates, each direction in its own time order.

    Each direction reads its own order: the (narrow) input is reversed within each sequence's
    real part for the backward direction, not the gates. Returns the directions' inputs
    ``flat`` (D, T*B, F) and the gates ``xs`` (T, D, B, G*H) (a view; layer-normalised with
    ``ln_x``, bias added)."""
    T, B = inp.shape[:2]
    seqs = torch.stack([inp, reverse_valid(inp, lengths)], 0) if D == 2 else inp.unsqueeze(0)  # (D, T, B, F)
    flat = seqs.reshape(D, T * B, inp.shape[-1])  # (explicit sizes: B may be 0)
    w_ih = w.w_ih.view(D, -1, inp.shape[-1]).transpose(1, 2)  # (D, F, G*H)
    bias = None if w.b_in is None else w.b_in.view(D, 1, -1)
    if w.ln_x is not None:
        xg = normalise(project_inputs(flat, w_ih, None), w.ln_x, bias)
    else:
        xg = project_inputs(flat, w_ih, bias)
    return flat, xg.view(D, T, B, xg.shape[-1]).transpose(0, 1)


def reference_layer(spec: CellSpec, w: LayerWeights, inp: Tensor, lengths: Optional[Tensor], h0: Tensor,
                    c0: Optional[Tensor], shared: Walk, *, cell_states: bool = False
                    ) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """One layer, both directions, on a time-major padded batch.

    Args:
        inp: (T, B, F) layer input, zero at padded steps.
        lengths: (B,) int64 on ``inp``'s device, or None when every sequence has T steps.
        h0: (D, B, P) initial hidden states; c0: (D, B, H) initial cell states (LSTM) or None.
        shared: :func:`walk` of the call.
        cell_states: also return the LSTM cell state at every step, laid out as the output.

    Returns:
        output (T, B, D*P) (0 at padded steps), h_n (D, B, P), c_n (D, B, H) or None, and the
        cell states (T, B, D*H) or None.
    """
    T, B = inp.shape[:2]
    D, steps = h0.shape[0], shared.steps
    flat, xs = gate_inputs(w, inp, lengths, D)
    highway = None
    if w.highway is not None:
        hx_all = torch.bmm(flat, w.highway.w_x)
        highway = (hx_all.view(D, T, B, hx_all.shape[-1]).transpose(0, 1)[:steps], w.highway)
    carry: Carry = (h0,) if c0 is None else (h0, c0)
    if steps:
        v = None if shared.valid is None else shared.valid[:steps]
        run = xs if steps == T else xs[:steps]  # (no slice when whole: its backward would copy the gradient)
        cs: Optional[List[Tensor]] = [] if cell_states else None
        ys, carry = scan(spec, run, carry, w.step, v, highway=highway, zoneout=w.zoneout,
                         resets=None if shared.resets is None else shared.resets[:steps], cells=cs)
    else:  # every sequence is empty: outputs are zero and the state stays h_0
        ys = h0.new_zeros(0, D, B, h0.shape[-1])
        cs = [h0.new_zeros(0, D, B, c0.shape[-1])] if cell_states else None
    out = natural(ys, steps, T, lengths)
    cells = natural(cs[0], steps, T, lengths) if cell_states else None
    return out, carry[0], (carry[1] if c0 is not None else None), cells


class Reference:
    paths = ("reference",)
    capabilities = Capabilities("the reference scan", uses=ANY)  # every feature, the oracle

    def supports(self, plan: LayerPlan) -> Optional[str]:
        return self.capabilities.refuses(plan)

    def run(self, plan: LayerPlan, path: str = "reference") -> Ran:
        spec, layers = plan.spec, plan.step_layers()
        shared = walk(plan.x, plan.lengths, plan.num_directions, plan.resets)
        return stack(plan, lambda l, inp, h0, c0: reference_layer(spec, layers[l], inp, plan.lengths, h0, c0, shared,
                                                                  cell_states=plan.want_cells))
