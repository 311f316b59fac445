"""Direction-batched products with the weight packed once for oneDNN (CPU), for step loops.

A step loop multiplies a small block of rows by the same weight at every step:
``(D, n, K) @ (D, K, M)``. On CPU, ``torch.bmm`` runs that through BLAS at ~100 GFLOP/s on this
project's machines; oneDNN's linear with the weight reordered once into its blocked layout
(``torch.ops.mkldnn._reorder_linear_weight``, what inductor uses for CPU linears) runs it about
twice as fast (benchmarks/RESULTS.md). :class:`Prepacked` packs once per call and multiplies
every step; where oneDNN cannot run the product (not CPU, not float32/bfloat16, a build without
oneDNN, autograd recording the loop) it is ``torch.bmm``.

>>> import torch
>>> w = torch.randn(2, 3, 8)
>>> x = torch.randn(2, 5, 3)
>>> torch.allclose(Prepacked(w, rows=5)(x), torch.bmm(x, w), atol=1e-5)
True
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

__all__ = ["Prepacked", "linear", "onednn_runs"]


def _onednn_takes(t: Tensor) -> bool:
    """float32/bfloat16 on CPU, with oneDNN built in."""
    return (t.device.type == "cpu" and t.dtype in (torch.float32, torch.bfloat16)
            and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def onednn_runs(t: Tensor) -> bool:
    """Whether oneDNN's packed linear can multiply ``t``: float32/bfloat16 on CPU, oneDNN built
    in, and no autograd recording (the packed op has no derivative)."""
    return _onednn_takes(t) and not torch.is_grad_enabled()


class Prepacked:
    """``x @ w`` for ``w`` (D, K, M) and every ``x`` (D, n, K) of one call: (D, n, M).

    ``rows``: the usual ``n`` (oneDNN's packing hint; any ``n`` runs)."""

    def __init__(self, w: Tensor, rows: int) -> None:
        self.w = w
        self.packed: Optional[List[Tensor]] = None
        if onednn_runs(w):
            try:  # (D, K, M) -> per direction (M, K), linear's layout, reordered for oneDNN
                self.packed = [torch.ops.mkldnn._reorder_linear_weight(w[d].t().contiguous(), max(rows, 1))
                               for d in range(w.shape[0])]
            except RuntimeError:  # a build or CPU oneDNN declines: BLAS it is
                self.packed = None

    def __call__(self, x: Tensor) -> Tensor:
        if self.packed is None or not onednn_runs(x):
            return torch.bmm(x, self.w)
        return torch.stack(self.each(x))

    def each(self, x: Tensor) -> List[Tensor]:
        """The products per direction, each (n, M) contiguous (no stacking)."""
        if self.packed is None or not onednn_runs(x):
            return list(torch.bmm(x, self.w).unbind(0))
        return [torch.ops.mkldnn._linear_pointwise(x[d], p, None, "none", [], "") for d, p in enumerate(self.packed)]


class _Linear(torch.autograd.Function):
    """``x @ w[d]^T (+ b)`` per direction through oneDNN, both products of the backward too."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        out = Prepacked(w.transpose(1, 2), x.shape[1])(x)
        return out if b is None else out.add_(b)

    @staticmethod
    def backward(ctx, d_out):
        x, w = ctx.saved_tensors  # (under create_graph Prepacked is torch.bmm, recorded)
        d_x = Prepacked(w, d_out.shape[1])(d_out) if ctx.needs_input_grad[0] else None
        d_w = torch.bmm(d_out.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        d_b = d_out.sum(1, keepdim=True) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return d_x, d_w, d_b


def linear(x: Tensor, w: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """Every direction's ``x[d] @ w[d]^T + bias[d]``: ``x`` (D, N, K), ``w`` (D, M, K) (torch.nn's
    linear layout), ``bias`` (D, 1, M) or None; (D, N, M). Through oneDNN where it runs (forward
    and the input's gradient), else ``torch.baddbmm``."""
    if not _onednn_takes(x) or torch._C._are_functorch_transforms_active():  # (autograd may record: _Linear)
        return torch.bmm(x, w.transpose(1, 2)) if bias is None else torch.baddbmm(bias, x, w.transpose(1, 2))
    return _Linear.apply(x, w, bias)
