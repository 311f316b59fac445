"""The fused recurrence as an autograd Function, and one layer on it (:func:`fused_layer`, the
fused counterpart of :func:`birnn.backends.reference.reference_layer`; :mod:`birnn.backends.fused`
stacks the layers).

Each layer is three steps, as cuDNN runs it:

1. every step's input projection, both directions, is one matmul on the layer's input as it is,
   ``(T*B, F) @ (F, D*G*H)`` — no reversed copy of the input for the backward direction;
2. one persistent kernel runs the recurrence; it reads the backward direction's steps reversed
   within each row (``len-1-t``) and writes the output in the layer's own order and layout,
   (T, B, D*H), so nothing is reversed or concatenated afterwards (benchmarks/GPU_NOTES.md);
3. the backward kernel writes the gradient of the projections in the same layout, so the input's
   gradient and W_ih's are again one matmul each; W_hh's is one batched matmul,
   ``dW_hh[d] = sum_t dA_t^T (h_{t-1} * drop)``, and the layer norms' gains and biases are
   reductions of saved tensors.

The large matmuls run at cuDNN's RNN precision (:mod:`birnn.backends.fused.products`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from ...cells import CellSpec, StepWeights, normalise
from ..weights import LayerWeights
from .products import project, weight_product
from .recurrent import StepExtras, layer_backward, layer_forward

__all__ = ["FusedRecurrence", "LayerSettings", "LayerTensors", "fused_layer", "project"]


def _states_before(y: Tensor, h0: Tensor, lengths: Tensor) -> Tensor:
    """The state each step read, (D, T, B, H), in each row's own time order, from the layer's
    output ``y`` (T, B, D, H): the forward direction's h_{t-1} (h_0 at t=0), the backward
    direction's h_{t+1} (h_0 at each row's last real step). Padded steps get whatever is there
    (their gradients are zero). Two copies and a B-element scatter."""
    T, B, D, H = y.shape
    h = y.new_empty(D, T, B, H)
    h[0, 0] = h0[0]
    h[0, 1:] = y[:-1, :, 0]
    if D == 2:
        h[1, :-1] = y[1:, :, 1]
        h[1, -1] = 0.0
        # each row's last real step read h_0 (rows of length 0 read nothing: any position will do)
        h[1, (lengths - 1).clamp(min=0), torch.arange(B, device=y.device)] = h0[1].to(h.dtype)
    return h


class LayerTensors(NamedTuple):
    """The tensors one fused layer reads: what crosses the autograd boundary, each field with its
    gradient in the same place of :meth:`FusedRecurrence.backward`'s result."""

    xs: Tensor  # (T, B, D, G*H) input projections, each row in its own time order
    w: Tensor  # (D, G*H, H) W_hh in step order
    h0: Tensor  # (D, B, H)
    lengths: Tensor  # (B,) int64
    b_hh: Optional[Tensor] = None  # (D, G*H), GRU
    c0: Optional[Tensor] = None  # (D, B, H), LSTM
    drop: Optional[Tensor] = None  # (D, B, H) recurrent dropout mask
    keep_h: Optional[Tensor] = None  # (T, D, B, H) zoneout masks
    keep_c: Optional[Tensor] = None
    ln_h: Optional[Tensor] = None  # (D, G*H) the recurrent pre-activation's norm gain
    ln_cw: Optional[Tensor] = None  # (D, H) the LSTM cell norm's gain and bias
    ln_cb: Optional[Tensor] = None


class LayerSettings(NamedTuple):
    """What one fused layer is told besides tensors (no gradients)."""

    mode: str
    steps: int  # max(lengths) > 0: the kernels run this many steps
    precision: str  # "tf32" or "ieee" (float32 products)
    rate_h: float = 0.0  # zoneout rates (the eval-mode expectation)
    rate_c: float = 0.0


class FusedRecurrence(torch.autograd.Function):
    """One layer, both directions: ``FusedRecurrence.apply(settings, *tensors)`` with
    :class:`LayerSettings` and :class:`LayerTensors` -> output (T, B, D*H) in each row's own time
    order (padded steps 0), h_n and c_n (D, B, H)."""

    @staticmethod
    def forward(ctx, settings: LayerSettings, *tensors):
        t = LayerTensors(*tensors)
        save = any(ctx.needs_input_grad)  # inference: no gate activations written
        extras = StepExtras(t.drop, t.keep_h, t.keep_c, settings.rate_h, settings.rate_c, t.ln_h,
                            None if t.ln_cw is None else (t.ln_cw, t.ln_cb))
        fwd = layer_forward(settings.mode, t.xs, t.w, t.b_hh, t.h0, t.c0, t.lengths, settings.steps, save=save,
                            precision=settings.precision, extras=extras)
        ctx.settings, ctx.dtype = settings, t.xs.dtype
        if save:  # what backward reads; tensors go through save_for_backward, the rest on ctx
            ctx.fwd = fwd._replace(out=None, hn=None, cn=None, y=None)
            ctx.save_for_backward(fwd.out, fwd.y, *t._replace(xs=None, b_hh=None))
        return (fwd.y.to(t.xs.dtype), fwd.hn.to(t.h0.dtype),
                (fwd.cn.to(t.h0.dtype) if fwd.cn is not None else fwd.hn.new_zeros(0)))

    @staticmethod
    def backward(ctx, dout, dhn, dcn):
        out, y, *saved = ctx.saved_tensors
        t = LayerTensors(*saved)
        settings, mode, w, h0, c0 = ctx.settings, ctx.settings.mode, t.w, t.h0, t.c0
        T, B = y.shape[:2]
        D, _, H = h0.shape
        extras = StepExtras(t.drop, t.keep_h, t.keep_c, settings.rate_h, settings.rate_c, t.ln_h,
                            None if t.ln_cw is None else (t.ln_cw, t.ln_cb))
        fwd = ctx.fwd._replace(out=out)
        zeros = y.new_zeros(D, B, H)
        grads = layer_backward(
            mode, w, fwd, h0.float(), c0.float() if mode == "LSTM" else None, t.lengths, settings.steps,
            dout if dout is not None else y.new_zeros(y.shape), dhn if dhn is not None else zeros,
            (dcn if dcn is not None and dcn.numel() else zeros) if mode == "LSTM" else None,
            precision=settings.precision, extras=extras)
        # dW_hh[d] = draw_d^T (T*B, G*H) @ (h_{t-1} * drop)_d (T*B, H), both in each row's own time order
        h_prev = _states_before(y.view(T, B, D, H), h0.float(), t.lengths.to(y.device))
        if t.drop is not None:
            h_prev = h_prev * t.drop.float().unsqueeze(1)
        draw = grads.draw.view(T * B, D, -1).permute(1, 2, 0)  # (D, G*H, T*B), a view
        dw = weight_product(draw, h_prev.reshape(D, T * B, H), w.dtype, settings.precision)
        d = LayerTensors(xs=grads.dx.to(ctx.dtype), w=dw.to(w.dtype), h0=grads.dh0.to(h0.dtype), lengths=None,
                         b_hh=grads.dy.sum((0, 1)) if mode == "GRU" else None,
                         c0=grads.dc0.to(c0.dtype) if mode == "LSTM" else None)
        if t.ln_h is not None:
            d = d._replace(ln_h=(grads.dy * fwd.xhat).sum((0, 1)).to(t.ln_h.dtype))
        if t.ln_cw is not None:
            d = d._replace(ln_cw=(grads.dyc * fwd.chat).sum((0, 2)).to(t.ln_cw.dtype),
                           ln_cb=grads.dyc.sum((0, 2)).to(t.ln_cb.dtype))
        return (None, *d)  # (settings: none)


def fused_layer(spec: CellSpec, w: LayerWeights, inp: Tensor, lengths: Tensor, steps: int, h0: Tensor,
                c0: Optional[Tensor], tf32: bool) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """:func:`birnn.backends.reference.reference_layer` on the fused kernel: one layer, (T, B, F) ->
    output (T, B, D*H), h_n, c_n (D, B, H), recurrent dropout, zoneout and layer norm included
    (``w`` as the reference reads it; what the kernel cannot run is refused before, by
    :mod:`birnn.backends.fused`). ``lengths`` (B,) int64 on the input's device (T for full
    rows), ``steps`` = max(lengths) > 0; ``tf32``: float32 products use TF32 where cuDNN's
    RNNs would (:func:`birnn.backends.fused.products.cudnn_rnn_uses_tf32`), read once per call."""
    T, B, F_in = inp.shape
    D = h0.shape[0]
    norm = w.ln_x is not None
    xg = project(inp.reshape(T * B, F_in), w.w_ih, None if norm else w.b_in, tf32=tf32)  # (T*B, D*G*H)
    if norm:  # each direction's projection normalised over its own G*H units, then its bias
        bias = None if w.b_in is None else w.b_in.view(D, -1)
        xg = normalise(xg.view(T * B, D, -1), w.ln_x.view(D, -1), bias)
    xs = xg.view(T, B, D, -1)
    step: StepWeights = w.step
    zo = w.zoneout
    b_hh = step.b_hh[:, 0] if (spec.mode == "GRU" and step.b_hh is not None) else None
    if spec.mode == "GRU" and b_hh is None:
        b_hh = xs.new_zeros(D, xs.shape[-1])
    ln_cw, ln_cb = (step.ln_c[0][:, 0], step.ln_c[1][:, 0]) if step.ln_c is not None else (None, None)
    settings = LayerSettings(spec.mode, steps, "tf32" if tf32 else "ieee",
                             *((zo.rate_h, zo.rate_c) if zo is not None else ()))
    tensors = LayerTensors(xs, step.hh_t.transpose(1, 2), h0, lengths, b_hh=b_hh,
                           c0=c0 if spec.has_cell_state else None, drop=step.drop_h,
                           keep_h=None if zo is None else zo.keep_h, keep_c=None if zo is None else zo.keep_c,
                           ln_h=None if step.ln_h is None else step.ln_h[:, 0], ln_cw=ln_cw, ln_cb=ln_cb)
    y, hn, cn = FusedRecurrence.apply(settings, *tensors)
    return y, hn, (cn if spec.has_cell_state else None)
