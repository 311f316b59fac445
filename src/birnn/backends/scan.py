"""The scan backend: linear cells (minGRU, minLSTM) as one parallel scan over time.

A linear cell's gates read only the input (:attr:`birnn.cells.CellSpec.coefficients`), so
its recurrence is ``h_t = a_t * h_{t-1} + b_t`` with every ``(a_t, b_t)`` known before the
loop. Pairs compose associatively, ``(a2, b2) o (a1, b1) = (a1 a2, a2 b1 + b2)``, so the
whole sequence is a prefix scan: :func:`linear_scan` runs it in ``ceil(log2 T)`` vectorised
levels (Hillis-Steele doubling: at level ``k`` every step composes with the one ``2^k``
before it), no loop over T. It works on ``a`` and ``b`` directly, in the layer's dtype: the
decays ``a`` lie in (0, 1), so products only shrink (they underflow to 0, never overflow)
and no logarithm, division or ``logcumsumexp`` is needed; float32 is stable at any T.

Symbols: ``T`` time, ``D`` directions, ``B`` batch, ``H`` hidden size, ``G`` gates.

Lengths, padding and resets are folded into the coefficients before the scan, in each
direction's processing order (the backward direction reads each sequence reversed within its
real part, :func:`birnn.backends.reference.walk`):

- a padded step is the identity ``(a, b) = (1, 0)``: the state passes through unchanged, so
  the last step holds each sequence's state at its last real step (``h_n``), an empty
  sequence keeps ``h_0``, and the padded steps' outputs are zero (masked after the scan);
- the first step, and every real step marked in ``resets``, start from ``h_0``:
  ``(a, b) -> (0, b + a * h_0)``.

Gradients: eagerly, :class:`_Scan` keeps only ``a`` and the outputs ``h`` (T, D, B, H) and its
backward is the same scan run backwards in time (``δ_t = g_t + a_{t+1} δ_{t+1}``; ``da_t =
δ_t h_{t-1}``, ``db_t = δ_t``), so training stores nothing per level. While a graph is
captured (torch.compile, torch.export, ONNX) the scan is plain differentiable tensor ops with a
fixed depth of :data:`MAX_DEPTH` levels, so one graph serves every T up to ``2**MAX_DEPTH``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..cells import CELLS, CellSpec
from .base import Capabilities
from .plan import LayerPlan
from .reference import Walk, gate_inputs, natural, walk
from .stack import Ran, stack
from .weights import LayerWeights

__all__ = ["MAX_DEPTH", "Scan", "linear_scan", "scan_layer"]

MAX_DEPTH = 16  # levels of a captured scan: one graph for every T <= 65,536


def _levels(T: int) -> int:
    return max(T - 1, 0).bit_length()  # ceil(log2 T): after it every step has composed with step 0


def _doubling(a: Tensor, b: Tensor, reverse: bool = False) -> Tensor:
    """The inclusive scan of ``h_t = a_t h_{t-1} + b_t`` along dim 0 from ``h_{-1} = 0``
    (``reverse``: ``h_t = a_t h_{t+1} + b_t`` from the end), eagerly, without autograd: two
    buffers per operand, written in turn, one fused multiply-add per element and level."""
    T = a.shape[0]
    levels = _levels(T)
    if levels == 0:
        return b.clone()
    b, nb = b.clone(), torch.empty_like(b)
    a, na = a.clone(), torch.empty_like(a)
    k = 1
    for level in range(levels):
        # step t composes with step t - k (t + k in reverse); the first k steps are done
        here, there = (slice(0, T - k), slice(k, T)) if reverse else (slice(k, T), slice(0, T - k))
        done = slice(T - k, T) if reverse else slice(0, k)
        nb[done] = b[done]
        torch.addcmul(b[here], a[here], b[there], out=nb[here])
        b, nb = nb, b
        if level < levels - 1:
            na[done] = a[done]
            torch.mul(a[here], a[there], out=na[here])
            a, na = na, a
        k *= 2
    return b


def _shifted(x: Tensor, k: int, fill: float) -> Tensor:
    """``x`` moved ``k`` steps later along dim 0, ``fill`` in front; any ``k`` (even >= T)."""
    T = x.shape[0]
    front = x.new_full((k,) + tuple(x.shape[1:]), fill)
    return torch.cat([front, x], 0)[:T]


def _captured(a: Tensor, b: Tensor) -> Tensor:
    """The same scan as differentiable ops of a fixed depth (no branch on T): what a graph holds."""
    torch._check(a.shape[0] <= 2 ** MAX_DEPTH, lambda: f"a captured scan runs at most 2**{MAX_DEPTH} steps")
    k = 1
    for level in range(MAX_DEPTH):
        b = torch.addcmul(b, a, _shifted(b, k, 0.0))
        if level < MAX_DEPTH - 1:
            a = a * _shifted(a, k, 1.0)
        k *= 2
    return b


class _Scan(torch.autograd.Function):
    """The eager scan with its backward: saves ``a`` and ``h``, nothing per level."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:
        h = _doubling(a, b)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tuple[Tensor, Tensor]:
        a, h = ctx.saved_tensors
        following = torch.cat([a[1:], torch.zeros_like(a[:1])], 0)  # a_{t+1}, 0 after the last step
        delta = _doubling(following, g.contiguous(), reverse=True)  # δ_t = g_t + a_{t+1} δ_{t+1}
        before = torch.cat([torch.zeros_like(h[:1]), h[:-1]], 0)  # h_{t-1}, 0 before the first step
        return delta * before, delta


def linear_scan(a: Tensor, b: Tensor) -> Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` for every ``t`` along dim 0 (``h_{-1} = 0``): ``a``, ``b``
    (T, ...) -> ``h`` (T, ...), in ``ceil(log2 T)`` vectorised levels.

    >>> a, b = torch.tensor([0.5, 0.5, 0.0, 0.5]), torch.tensor([1.0, 2.0, 3.0, 4.0])
    >>> linear_scan(a, b).tolist()        # 1, 0.5*1+2, 0*2.5+3, 0.5*3+4
    [1.0, 2.5, 3.0, 5.5]
    """
    if torch.compiler.is_compiling() or torch._C._functorch.is_functorch_wrapped_tensor(a):
        return _captured(a, b)
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return _Scan.apply(a.contiguous(), b.contiguous())
    return _doubling(a, b)


def scan_layer(spec: CellSpec, w: LayerWeights, inp: Tensor, lengths: Optional[Tensor], h0: Tensor, shared: Walk
               ) -> Tuple[Tensor, Tensor, None, None]:
    """One layer of a linear cell, both directions, on a time-major padded batch.

    Args:
        inp: (T, B, F) layer input, zero at padded steps.
        lengths: (B,) int64 or None; h0: (D, B, H); shared: the call's
            :func:`birnn.backends.reference.walk`.

    Returns:
        output (T, B, D*H), zero at padded steps; h_n (D, B, H) at each sequence's last real
        step (``h_0`` for an empty one); no cell state.
    """
    T = inp.shape[0]
    D, steps = h0.shape[0], shared.steps
    if steps == 0:  # every sequence is empty: outputs are zero and the state stays h_0
        return natural(h0.new_zeros(0, *h0.shape), 0, T, lengths), h0, None, None
    xs = gate_inputs(w, inp, lengths, D)[1]
    a, b = spec.coefficients(xs if steps == T else xs[:steps])  # each (steps, D, B, H)
    valid = None if shared.valid is None else shared.valid[:steps].view(steps, 1, -1, 1)
    if valid is not None:  # padded steps pass the state through
        a = torch.where(valid, a, 1.0)
        b = torch.where(valid, b, 0.0)
    # the first step, and each marked real step, start from h_0 (a mask, not a slice of T-1 steps:
    # a captured graph would specialise on T-1 == 1)
    start = (torch.arange(a.shape[0], device=a.device) == 0).view(-1, 1, 1, 1)
    if shared.resets is not None:
        r = shared.resets[:steps].unsqueeze(-1)
        start = start | (r if valid is None else r & valid)
    b = torch.where(start, torch.addcmul(b, a, h0), b)
    a = torch.where(start, 0.0, a)
    h = linear_scan(a, b)  # (steps, D, B, H)
    if valid is None:
        return natural(h, steps, T, lengths), h[-1], None, None
    # h_n: each sequence's own last real step (its output, bit for bit), h_0 for an empty one
    last = (lengths - 1).clamp(min=0).view(1, 1, -1, 1).expand(1, D, -1, h.shape[-1])
    h_n = torch.where(lengths.view(1, -1, 1) > 0, h.gather(0, last)[0], h0)
    return natural(torch.where(valid, h, 0.0), steps, T, lengths), h_n, None, None


class Scan:
    paths = ("scan",)
    # every device, dtype and capture mode (plain tensor ops); the calls' features go to the reference loop
    capabilities = Capabilities("the parallel scan", uses=frozenset({"resets"}),
                                cells=frozenset(mode for mode, spec in CELLS.items() if spec.linear),
                                says=lambda names: f"the parallel scan does not run {', '.join(names)} (the "
                                                   "reference loop does)")

    def supports(self, plan: LayerPlan) -> Optional[str]:
        return self.capabilities.refuses(plan)

    def run(self, plan: LayerPlan, path: str = "scan") -> Ran:
        spec, layers = plan.spec, plan.step_layers()
        shared = walk(plan.x, plan.lengths, plan.num_directions, plan.resets)
        return stack(plan, lambda l, inp, h0, c0: scan_layer(spec, layers[l], inp, plan.lengths, h0, shared))

