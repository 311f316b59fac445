"""The fused recurrence as an autograd Function, and a drop-in for the reference loop's
``scan`` (same inputs, same outputs), so :func:`birnn.recurrence.run_reference` drives either.

Forward and backward each run as one persistent kernel per layer; the weight gradient is one
large matmul after the backward kernel, ``dW_hh[d] = sum_t dA_t^T (h_{t-1} * drop)``, and the
layer norms' gains and biases are reductions of saved tensors. The large matmuls run at cuDNN's
RNN precision (:mod:`birnn.kernels.products`).
"""

from __future__ import annotations

import functools
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from ..cells import Carry, CellSpec, StepWeights
from .products import cudnn_rnn_uses_tf32, project, weight_product
from .recurrent import StepExtras, layer_backward, layer_forward

__all__ = ["FusedRecurrence", "fused_scan", "fused_steps", "project", "unsupported"]


class FusedRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mode: str, xs: Tensor, w: Tensor, b_hh: Optional[Tensor], h0: Tensor, c0: Optional[Tensor],
                lengths: Tensor, precision: str, drop: Optional[Tensor], keep_h: Optional[Tensor],
                keep_c: Optional[Tensor], rate_h: float, rate_c: float, ln_h: Optional[Tensor],
                ln_cw: Optional[Tensor], ln_cb: Optional[Tensor]):
        T = xs.shape[0]
        save = any(ctx.needs_input_grad)  # inference: no gate activations written
        extras = StepExtras(drop, keep_h, keep_c, rate_h, rate_c, ln_h, None if ln_cw is None else (ln_cw, ln_cb))
        fwd = layer_forward(mode, xs, w, b_hh, h0, c0, lengths, T, save=save, precision=precision, extras=extras)
        ctx.mode, ctx.precision, ctx.dtype, ctx.extras = mode, precision, xs.dtype, extras._replace(
            drop=None, keep_h=None, keep_c=None, ln_h=None, ln_c=None)
        if save:  # what backward reads; tensors go through save_for_backward, the rest on ctx
            ctx.fwd = fwd._replace(out=None, hn=None, cn=None)
            ctx.save_for_backward(w, fwd.out, h0, c0, lengths, drop, keep_h, keep_c, ln_h, ln_cw, ln_cb)
        out_t = fwd.out.to(xs.dtype)
        return out_t, fwd.hn.to(h0.dtype), (fwd.cn.to(h0.dtype) if fwd.cn is not None else fwd.hn.new_zeros(0))

    @staticmethod
    def backward(ctx, dout, dhn, dcn):
        w, out, h0, c0, lengths, drop, keep_h, keep_c, ln_h, ln_cw, ln_cb = ctx.saved_tensors
        mode = ctx.mode
        T, D, B, H = out.shape
        extras = ctx.extras._replace(drop=drop, keep_h=keep_h, keep_c=keep_c, ln_h=ln_h,
                                     ln_c=None if ln_cw is None else (ln_cw, ln_cb))
        fwd = ctx.fwd._replace(out=out)
        zeros = out.new_zeros(D, B, H)
        grads = layer_backward(
            mode, w, fwd, h0.float(), c0.float() if mode == "LSTM" else None, lengths, T,
            dout if dout is not None else out.new_zeros(out.shape), dhn if dhn is not None else zeros,
            (dcn if dcn is not None and dcn.numel() else zeros) if mode == "LSTM" else None,
            precision=ctx.precision, extras=extras)
        # (D, T, B, H): the state each step read; the kernels' per-step tensors are (T, D, ...) views
        # of (D, T, ...) storage, so each direction's (T*B, ·) is a matrix without a copy
        h_prev = torch.cat([h0.float().unsqueeze(1), out.transpose(0, 1)[:, :-1]], 1)
        if drop is not None:
            h_prev = h_prev * drop.float().unsqueeze(1)
        draw = grads.draw.transpose(0, 1).reshape(D, T * B, -1)  # (D, T*B, G*H)
        dw = weight_product(draw.transpose(1, 2), h_prev.reshape(D, T * B, H), w.dtype, ctx.precision)
        db = grads.dy.sum((0, 2)) if mode == "GRU" else None
        d_lnh = (grads.dy * fwd.xhat).sum((0, 2)).to(ln_h.dtype) if ln_h is not None else None
        d_lncw = d_lncb = None
        if ln_cw is not None:
            d_lncw = (grads.dyc * fwd.chat).sum((0, 2)).to(ln_cw.dtype)
            d_lncb = grads.dyc.sum((0, 2)).to(ln_cb.dtype)
        return (None, grads.dx.to(ctx.dtype), dw.to(w.dtype), db, grads.dh0.to(h0.dtype),
                (grads.dc0.to(c0.dtype) if mode == "LSTM" else None), None, None,
                None, None, None, None, None, d_lnh, d_lncw, d_lncb)


def unsupported(w: StepWeights, highway=None) -> Optional[str]:
    """Why the fused kernel cannot run this layer, or None."""
    for name, value in (("proj_size", w.hr_t), ("highway", highway)):
        if value is not None:
            return name
    return None


def fused_scan(spec: CellSpec, xs: Tensor, carry: Carry, w: StepWeights, valid: Optional[Tensor], *,
               highway=None, zoneout=None, precision: Optional[str] = None) -> Tuple[Tensor, Carry]:
    """:func:`birnn.recurrence.scan` on the fused kernel: ``xs`` (T, D, B, G*H) -> (T, D, B, H),
    recurrent dropout (``w.drop_h``), layer norm (``w.ln_h``, ``w.ln_c``) and ``zoneout`` included.

    float32 products use TF32 where cuDNN's RNNs would (PyTorch's default; see
    :func:`birnn.kernels.products.cudnn_rnn_uses_tf32`), else full float32."""
    if precision is None:
        precision = "tf32" if cudnn_rnn_uses_tf32() else "ieee"
    why = unsupported(w, highway)
    if why is not None:
        raise ValueError(f"the fused kernel does not run {why}")
    T, D, B = xs.shape[:3]
    lengths = valid.sum(0) if valid is not None else torch.full((B,), T, device=xs.device, dtype=torch.int64)
    weight = w.hh_t.transpose(1, 2)  # (D, G*H, H), step order
    b_hh = w.b_hh[:, 0] if (spec.mode == "GRU" and w.b_hh is not None) else None
    if spec.mode == "GRU" and b_hh is None:
        b_hh = xs.new_zeros(D, xs.shape[-1])
    c0 = carry[1] if spec.has_cell_state else None
    zo = zoneout
    keep_h = None if zo is None or zo.keep_h is None else zo.keep_h[:T]
    keep_c = None if zo is None or zo.keep_c is None else zo.keep_c[:T]
    ln_cw, ln_cb = (w.ln_c[0][:, 0], w.ln_c[1][:, 0]) if w.ln_c is not None else (None, None)
    out, hn, cn = FusedRecurrence.apply(
        spec.mode, xs, weight, b_hh, carry[0], c0, lengths, precision, w.drop_h, keep_h, keep_c,
        zo.rate_h if zo is not None else 0.0, zo.rate_c if zo is not None else 0.0,
        None if w.ln_h is None else w.ln_h[:, 0], ln_cw, ln_cb)
    return out, ((hn, cn) if spec.has_cell_state else (hn,))


def fused_steps() -> Tuple[Callable, Callable]:
    """``(scan_fn, project)`` for :func:`birnn.recurrence.run_reference` on the fused kernel, both
    bound to one reading of cuDNN's RNN precision: every layer of a call computes its
    projections and its recurrence at the same precision, read once."""
    tf32 = cudnn_rnn_uses_tf32()
    return (functools.partial(fused_scan, precision="tf32" if tf32 else "ieee"),
            functools.partial(project, tf32=tf32))
