"""The packed LSTM's steps through birnn's C++ kernel (:mod:`birnn.backends.packed.cpu_kernel`).

:class:`KernelLSTM` is :class:`birnn.backends.packed.steps.PackedLSTM` with each step's
elementwise part, forward and backward, one call of the kernel; the products stay oneDNN's
(:mod:`birnn.backends.packed.prepacked`). Float32 and float64 on CPU.
"""

from __future__ import annotations

import ctypes
from typing import Optional

import torch
from torch import Tensor

from .cpu_kernel import Workspace
from .prepacked import Prepacked
from .steps import GRADS, Inputs, Schedule, double_backward, step_blocks

__all__ = ["KernelLSTM"]


def _ptr(t: Optional[Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


def _kernel_forward(kern, inp: Inputs, sched: Schedule):
    """The forward through the kernel: (its tensors by the kernel's names, the per-step products
    the recurrent layer norm's backward reads, the workspace holding the buffers)."""
    xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb, drop, keep_h, keep_c = inp
    rates, sizes = sched
    D, N, G = xp.shape
    B, H = h0.shape[1], G // 4
    ws = Workspace(xp)

    def buf(*shape, when=True):
        return ws.take(*shape) if when else None
    t = dict(xp=xp, h0=h0, c0=c0, drop=drop, keep_h=keep_h, keep_c=keep_c, ln_x=ln_x, b_x=b_x, ln_h=ln_h,
             ln_cw=ln_cw, ln_cb=ln_cb, y=xp.new_empty(D, N, H), cs=buf(D, N, H), acts=buf(D, N, G), tc=buf(D, N, H),
             mean_x=buf(D, N, when=ln_x is not None), rstd_x=buf(D, N, when=ln_x is not None),
             mean_r=buf(D, N, when=ln_h is not None), rstd_r=buf(D, N, when=ln_h is not None),
             cn=buf(D, N, H, when=ln_cw is not None), rstd_c=buf(D, N, when=ln_cw is not None),
             inputs=buf(D, N, H), h_n=h0.clone(), c_n=c0.clone(), scratch=buf(D * (3 * G + 2 * H)))
    n0 = sizes[0]
    t["inputs"][:, :n0] = h0[:, :n0] if drop is None else h0[:, :n0] * drop[:, :n0]
    st = kern.layer((D, N, B, H), rates, t)
    product = Prepacked(hh_t, n0)  # (n, H) @ (H, 4H) per direction, packed once
    rs, prev_off = [], -1  # (the previous step's offset: -1, the initial states)
    for off, n, n_next in step_blocks(sizes):
        r = product.each(t["inputs"][:, off:off + n])
        kern.forward(ctypes.byref(st), off, n, n_next, prev_off, r[0].data_ptr(), r[1].data_ptr() if D == 2 else None)
        if ln_h is not None:
            rs.append(r)
        prev_off = off
    return t, rs, ws


class KernelLSTM(torch.autograd.Function):
    """:class:`PackedLSTM` with each step's elementwise part in the C++ kernel
    (:mod:`birnn.backends.packed.cpu_kernel`): per step, forward, the product and one kernel call; backward,
    one kernel call and the product. The buffers the backward reads come from a pool
    (:class:`birnn.backends.packed.cpu_kernel.Workspace`) and go back to it when the backward is done; a second
    backward through a retained graph runs the forward again for them."""

    @staticmethod
    def forward(ctx, sched: Schedule, kern, *tensors):
        inp = Inputs(*tensors)
        t, rs, ws = _kernel_forward(kern, inp, sched)
        if any(ctx.needs_input_grad[2:2 + GRADS]):
            ctx.save_for_backward(*inp)
            ctx.sched, ctx.kern = sched, kern
            ctx.kept = ({k: t[k] for k in _KEPT}, rs, ws)
        else:
            ws.release()
        return t["y"], t["h_n"], t["c_n"]

    @staticmethod
    def backward(ctx, d_y, d_hn, d_cn):
        if torch.is_grad_enabled():  # create_graph: rerun the loop with autograd recording it
            return (None, None) + double_backward(ctx, 2, d_y, d_hn, d_cn)
        inp = Inputs(*ctx.saved_tensors)
        xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb, drop, keep_h, keep_c = inp
        sizes, kern = ctx.sched.sizes, ctx.kern
        D, N, G = xp.shape
        B, H = h0.shape[1], G // 4
        if ctx.kept is None:  # a second backward (retained graph): the buffers went back, make them again
            kept, rs, forward_ws = _kernel_forward(kern, inp, ctx.sched)
        else:
            kept, rs, forward_ws = ctx.kept
        ctx.kept = None
        t = {k: kept[k] for k in _KEPT}
        ws = Workspace(xp)
        zeros = xp.new_zeros
        t.update(xp=xp, h0=h0, c0=c0, drop=drop, keep_h=keep_h, keep_c=keep_c, ln_x=ln_x, b_x=b_x, ln_h=ln_h,
                 ln_cw=ln_cw, ln_cb=ln_cb, scratch=ws.take(D * (3 * G + 2 * H)),
                 dy=zeros(D, N, H) if d_y is None else d_y.contiguous(),
                 dh=zeros(D, B, H) if d_hn is None else d_hn.clone(memory_format=torch.contiguous_format),
                 dc=zeros(D, B, H) if d_cn is None else d_cn.clone(memory_format=torch.contiguous_format),
                 d_xp=xp.new_empty(D, N, G))
        t["d_r"] = ws.take(D, N, G) if ln_h is not None or ln_x is not None else t["d_xp"]
        for name, p in (("acc_x", ln_x), ("acc_b", b_x), ("acc_h", ln_h), ("acc_cw", ln_cw), ("acc_cb", ln_cb)):
            t[name] = None if p is None else zeros(D, p.shape[-1])
        st = kern.layer((D, N, B, H), ctx.sched.rates, t)
        product = Prepacked(hh_t.transpose(1, 2), sizes[0])  # (n, 4H) @ (4H, H) per direction
        blocks = step_blocks(sizes)
        g = [None, None]
        for k in reversed(range(len(sizes))):
            off, n, n_after = blocks[k]
            r = rs[k] if ln_h is not None else [None, None]
            kern.backward(ctypes.byref(st), off, n, n_after, blocks[k - 1][0] if k else -1, _ptr(g[0]),
                          _ptr(g[1]) if D == 2 else None, _ptr(r[0]), _ptr(r[1]) if D == 2 else None)
            g = product.each(t["d_r"][:, off:off + n])
        kern.add_product(ctypes.byref(st), sizes[0], _ptr(g[0]), _ptr(g[1]) if D == 2 else None)
        d_hh = torch.bmm(t["inputs"].transpose(1, 2), t["d_r"]) if ctx.needs_input_grad[2 + 3] else None
        gains = [None if t[k] is None else t[k].unsqueeze(1) for k in ("acc_x", "acc_b", "acc_h", "acc_cw", "acc_cb")]
        ws.release()
        forward_ws.release()
        return (None, None, t["d_xp"], t["dh"], t["dc"], d_hh, *gains, None, None, None)


_KEPT = ("y", "cs", "acts", "tc", "mean_x", "rstd_x", "mean_r", "rstd_r", "cn", "rstd_c", "inputs")  # for the backward
