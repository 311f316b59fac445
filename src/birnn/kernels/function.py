"""The fused recurrence as an autograd Function, and a drop-in for the reference loop's
``scan`` (same inputs, same outputs), so :func:`birnn.recurrence.run_reference` drives either.

Forward and backward each run as one persistent kernel per layer; the weight gradient is one
large matmul after the backward kernel, ``dW_hh[d] = sum_t dA_t^T h_{t-1}``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..cells import Carry, CellSpec, StepWeights
from .recurrent import layer_backward, layer_forward

__all__ = ["FusedRecurrence", "fused_scan", "unsupported"]


class FusedRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mode: str, xs: Tensor, w: Tensor, b_hh: Optional[Tensor], h0: Tensor, c0: Optional[Tensor],
                lengths: Tensor, precision: str):
        T = xs.shape[0]
        save = any(ctx.needs_input_grad)  # inference: no gate activations written
        out, hn, cn, cs, gates = layer_forward(mode, xs, w, b_hh, h0, c0, lengths, T, save=save, precision=precision)
        ctx.mode, ctx.precision, ctx.dtype = mode, precision, xs.dtype
        ctx.save_for_backward(w, out, h0, c0 if c0 is not None else h0, cs if cs is not None else out,
                              gates if gates is not None else out, lengths)
        out_t = out.to(xs.dtype)
        return out_t, hn.to(h0.dtype), (cn.to(h0.dtype) if cn is not None else hn.new_zeros(0))

    @staticmethod
    def backward(ctx, dout, dhn, dcn):
        w, out, h0, c0, cs, gates, lengths = ctx.saved_tensors
        mode = ctx.mode
        T, D, B, H = out.shape
        zeros = out.new_zeros(D, B, H)
        dx, dah, dh0, dc0 = layer_backward(
            mode, w, out, h0.float(), c0.float() if mode == "LSTM" else None, cs, gates, lengths, T,
            dout if dout is not None else out.new_zeros(out.shape), dhn if dhn is not None else zeros,
            (dcn if dcn is not None and dcn.numel() else zeros) if mode == "LSTM" else None, precision=ctx.precision)
        h_prev = torch.cat([h0.float().unsqueeze(0), out[:-1]], 0)  # (T, D, B, H): the state each step read
        dw = torch.bmm(dah.permute(1, 3, 0, 2).reshape(D, -1, T * B), h_prev.permute(1, 0, 2, 3).reshape(D, T * B, H))
        db = dah.sum((0, 2)) if mode == "GRU" else None
        return (None, dx.to(ctx.dtype), dw.to(w.dtype), db, dh0.to(h0.dtype),
                (dc0.to(c0.dtype) if mode == "LSTM" else None), None, None)


def unsupported(w: StepWeights, highway=None, zoneout=None) -> Optional[str]:
    """Why the fused kernel cannot run this layer, or None."""
    for name, value in (("recurrent_dropout", w.drop_h), ("layer_norm", w.ln_h), ("proj_size", w.hr_t),
                        ("highway", highway), ("zoneout", zoneout)):
        if value is not None:
            return name
    return None


def fused_scan(spec: CellSpec, xs: Tensor, carry: Carry, w: StepWeights, valid: Optional[Tensor], *,
               highway=None, zoneout=None, precision: Optional[str] = None) -> Tuple[Tensor, Carry]:
    """:func:`birnn.recurrence.scan` on the fused kernel: ``xs`` (T, D, B, G*H) -> (T, D, B, H).

    float32 matmuls use TF32 when ``torch.backends.cudnn.allow_tf32`` is on (PyTorch's default,
    which is what cuDNN's RNNs do), else full float32."""
    if precision is None:
        precision = "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"
    why = unsupported(w, highway, zoneout)
    if why is not None:
        raise ValueError(f"the fused kernel does not run {why} yet")
    T, D, B = xs.shape[:3]
    lengths = valid.sum(0) if valid is not None else torch.full((B,), T, device=xs.device, dtype=torch.int64)
    weight = w.hh_t.transpose(1, 2)  # (D, G*H, H), step order
    b_hh = w.b_hh[:, 0] if (spec.mode == "GRU" and w.b_hh is not None) else None
    if spec.mode == "GRU" and b_hh is None:
        b_hh = xs.new_zeros(D, xs.shape[-1])
    c0 = carry[1] if spec.has_cell_state else None
    out, hn, cn = FusedRecurrence.apply(spec.mode, xs, weight, b_hh, carry[0], c0, lengths, precision)
    return out, ((hn, cn) if spec.has_cell_state else (hn,))
