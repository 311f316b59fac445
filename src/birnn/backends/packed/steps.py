"""The packed LSTM's steps in PyTorch ops, and the inputs both of its engines take.

:class:`Inputs` and :class:`Schedule` are one packed layer call (its tensors; its zoneout rates
and rows per step); :class:`PackedLSTM` runs the steps forward and backward in PyTorch ops
(bfloat16, or without the C++ kernel), with a double backward that reruns the loop under
autograd. :mod:`birnn.backends.packed.kernel_steps` runs the same steps in the C++ kernel;
:mod:`birnn.backends.packed.layer` packs a layer's call and picks one. Symbols as there.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .prepacked import Prepacked

__all__ = ["GRADS", "Inputs", "PackedLSTM", "Schedule", "double_backward", "step_blocks"]

EPS = 1e-5  # the layer norms' (birnn.cells.normalise)


class Inputs(NamedTuple):
    """One packed layer call's tensors, in the order its autograd Functions take them (the first
    :data:`GRADS` may need gradients): the packed input projections ``xp`` (D, N, 4H); the
    sorted initial states ``h0``, ``c0`` (D, B, H); ``hh_t`` (D, H, 4H); the layer norms,
    directions stacked, or None: the input projection's gain and bias ``ln_x`` / ``b_x`` and the
    recurrent one's ``ln_h`` (D, 1, 4H), the cell's ``ln_cw`` / ``ln_cb`` (D, 1, H); the masks or
    None: recurrent dropout ``drop`` (D, B, H), zoneout ``keep_h`` / ``keep_c`` (D, N, H)."""

    xp: Tensor
    h0: Tensor
    c0: Tensor
    hh_t: Tensor
    ln_x: Optional[Tensor]
    b_x: Optional[Tensor]
    ln_h: Optional[Tensor]
    ln_cw: Optional[Tensor]
    ln_cb: Optional[Tensor]
    drop: Optional[Tensor]
    keep_h: Optional[Tensor]
    keep_c: Optional[Tensor]


GRADS = 9  # xp ... ln_cb: the inputs that may need gradients


class Schedule(NamedTuple):
    """What is not a tensor: the zoneout rates of h and c (the eval-mode expectation) and the
    packing's rows per step."""

    rates: Tuple[float, float]
    sizes: Tuple[int, ...]


def step_blocks(sizes: Sequence[int]) -> List[Tuple[int, int, int]]:
    """Every step's block of packed rows: (offset, n_t, n_{t+1}), n_S = 0 (the rows past n_{t+1}
    end at step t)."""
    out, off = [], 0
    for t, n in enumerate(sizes):
        out.append((off, n, sizes[t + 1] if t + 1 < len(sizes) else 0))
        off += n
    return out


def _run(inp: Inputs, sched: Schedule, saved: Optional[dict]) -> Tuple[Tensor, Tensor, Tensor]:
    """The forward over packed ``xp`` (D, N, 4H) from the sorted ``h0``/``c0`` (D, B, H): the
    outputs (D, N, H) and final states (D, B, H), sorted. ``saved`` (a dict) receives what the
    backward reads. With autograd recording (a double backward) the same loop is differentiable."""
    xp, h0, c0, hh_t, drop, keep_h, keep_c = inp.xp, inp.h0, inp.c0, inp.hh_t, inp.drop, inp.keep_h, inp.keep_c
    rates, sizes = sched
    D, N, G = xp.shape
    H = G // 4
    recording = torch.is_grad_enabled()
    product = Prepacked(hh_t, sizes[0] if sizes else 0)  # (D, n, H) @ (D, H, 4H), packed once
    hs: List[Tensor] = []
    cs: List[Tensor] = []
    y = None if recording else xp.new_empty(D, N, H)
    h_n, c_n = h0.clone(), c0.clone()
    hp, cp = h0, c0
    keep = saved is not None
    if keep:
        steps = {k: [] for k in ("x", "r", "c", "acts", "tc")}
        inputs = xp.new_empty(D, N, H)  # h_{t-1} * drop of every token: W_hh's gradient reads it
    for off, n, ending in step_blocks(sizes):
        hp, cp, xt = hp[:, :n], cp[:, :n], xp[:, off:off + n]
        hd = hp if drop is None else hp * drop[:, :n]
        if keep:
            inputs[:, off:off + n] = hd
        if inp.ln_x is not None:
            xn, *stats_x = torch.native_layer_norm(xt, [G], None, None, EPS)
            xt = torch.addcmul(inp.b_x, xn, inp.ln_x) if inp.b_x is not None else xn * inp.ln_x
        r = product(hd)
        if inp.ln_h is None:
            a = xt + r
        else:
            rn, *stats_r = torch.native_layer_norm(r, [G], None, None, EPS)
            a = torch.addcmul(xt, rn, inp.ln_h)
        sig = torch.sigmoid(a[..., :3 * H])
        g = torch.tanh(a[..., 3 * H:])
        i, f, o = sig.chunk(3, -1)
        c = torch.addcmul(f * cp, i, g)
        if inp.ln_cw is None:
            tc = torch.tanh(c)
        else:
            cn, *stats_c = torch.native_layer_norm(c, [H], None, None, EPS)
            tc = torch.tanh(torch.addcmul(inp.ln_cb, cn, inp.ln_cw))
        h = o * tc
        if keep:
            steps["acts"].append((sig, g))
            steps["tc"].append(tc)
            if inp.ln_x is not None:
                steps["x"].append((xn, *stats_x))
            if inp.ln_h is not None:
                steps["r"].append((r, rn, *stats_r))
            if inp.ln_cw is not None:
                steps["c"].append((c, cn, *stats_c))
        if keep_h is not None:
            h = torch.lerp(h, hp, keep_h[:, off:off + n])
        elif rates[0]:
            h = torch.lerp(h, hp, rates[0])
        if keep_c is not None:
            c = torch.lerp(c, cp, keep_c[:, off:off + n])
        elif rates[1]:
            c = torch.lerp(c, cp, rates[1])
        hs.append(h)
        cs.append(c)
        if y is not None:
            y[:, off:off + n] = h
        if ending < n:  # sequences that end at this step: their final states
            h_n[:, ending:n] = h[:, ending:]
            c_n[:, ending:n] = c[:, ending:]
        hp, cp = h, c
    if keep:
        saved.update(steps, hs=hs, cs=cs, inputs=inputs)
    return (torch.cat(hs, 1) if y is None else y), h_n, c_n


def _accumulate(acc: Optional[Tensor], n: int, grad: Tensor, normed: Optional[Tensor] = None) -> None:
    """A gain's (``normed`` given) or bias's gradient, summed over steps row by row: acc[:, :n] +=."""
    if acc is not None:
        if normed is None:
            acc[:, :n].add_(grad)
        else:
            acc[:, :n].addcmul_(grad, normed)


class PackedLSTM(torch.autograd.Function):
    """The packed layer in PyTorch ops: ``apply(schedule, *inputs)`` (:class:`Schedule`,
    :class:`Inputs`) -> y (D, N, H), h_n, c_n (D, B, H), sorted."""

    @staticmethod
    def forward(ctx, sched: Schedule, *tensors):
        inp = Inputs(*tensors)
        saved = {} if any(ctx.needs_input_grad[1:1 + GRADS]) else None
        out = _run(inp, sched, saved)
        if saved is not None:
            ctx.save_for_backward(*inp)
            ctx.saved, ctx.sched = saved, sched
        return out

    @staticmethod
    def backward(ctx, d_y, d_hn, d_cn):
        xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb, drop, keep_h, keep_c = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: rerun the loop with autograd recording it
            return (None,) + double_backward(ctx, 1, d_y, d_hn, d_cn)
        s, (rates, sizes) = ctx.saved, ctx.sched
        D, N, G = xp.shape
        H = G // 4
        d_y = xp.new_zeros(D, N, H) if d_y is None else d_y
        d_hn = torch.zeros_like(h0) if d_hn is None else d_hn
        d_cn = torch.zeros_like(c0) if d_cn is None else d_cn
        product = Prepacked(hh_t.transpose(1, 2), sizes[0])  # (D, n, 4H) @ (D, 4H, H)
        d_xp = torch.empty_like(xp)  # xp's gradient, step by step
        # the gradient of r = (h * drop) @ W_hh^T, every token: W_hh's gradient reads it
        d_r = torch.empty_like(xp) if ln_h is not None or ln_x is not None else d_xp
        n0 = sizes[0]
        acc = {k: (None if p is None else xp.new_zeros(D, n0, p.shape[-1]))  # gains' and biases' gradients
               for k, p in (("x", ln_x), ("b", b_x), ("h", ln_h), ("cw", ln_cw), ("cb", ln_cb))}
        sig_bwd, tanh_bwd = torch.ops.aten.sigmoid_backward.grad_input, torch.ops.aten.tanh_backward.grad_input
        ln_bwd = torch.ops.aten.native_layer_norm_backward
        only_input = [True, False, False]
        dh = dc = h0[:, :0]
        blocks = step_blocks(sizes)
        for t in reversed(range(len(sizes))):
            off, n, m = blocks[t]
            if n > m:  # sequences whose last step is t: their final states' gradients join
                dh = torch.cat([dh, d_hn[:, m:n]], 1)
                dc = torch.cat([dc, d_cn[:, m:n]], 1)
            cp = c0[:, :n] if t == 0 else s["cs"][t - 1][:, :n]
            gh, gc = dh + d_y[:, off:off + n], dc
            kept_h = kept_c = None
            if keep_h is not None:
                kept_h = gh * keep_h[:, off:off + n]
                gh = gh - kept_h
            elif rates[0]:
                kept_h, gh = gh * rates[0], gh * (1 - rates[0])
            if keep_c is not None:
                kept_c = gc * keep_c[:, off:off + n]
                gc = gc - kept_c
            elif rates[1]:
                kept_c, gc = gc * rates[1], gc * (1 - rates[1])
            sig, g = s["acts"][t]
            i, f, o = sig.chunk(3, -1)
            tc = s["tc"][t]
            d_tc = torch.ops.aten.tanh_backward(gh * o, tc)
            if ln_cw is None:
                gc = gc + d_tc
            else:
                c, cn, mean, rstd = s["c"][t]
                _accumulate(acc["cw"], n, d_tc, cn)
                _accumulate(acc["cb"], n, d_tc)
                gc = gc + ln_bwd(d_tc * ln_cw, c, [H], mean, rstd, None, None, only_input)[0]
            da = d_xp[:, off:off + n] if ln_x is None else xp.new_empty(D, n, G)  # [i|f|o|g]
            torch.mul(gc, g, out=da[..., :H])
            torch.mul(gc, cp, out=da[..., H:2 * H])
            torch.mul(gh, tc, out=da[..., 2 * H:3 * H])
            torch.mul(gc, i, out=da[..., 3 * H:])
            sig_bwd(da[..., :3 * H], sig, grad_input=da[..., :3 * H])
            tanh_bwd(da[..., 3 * H:], g, grad_input=da[..., 3 * H:])
            if ln_x is not None:
                xn, mean, rstd = s["x"][t]
                _accumulate(acc["x"], n, da, xn)
                _accumulate(acc["b"], n, da)
                d_xp[:, off:off + n] = ln_bwd(da * ln_x, xp[:, off:off + n], [G], mean, rstd, None, None,
                                              only_input)[0]
            if ln_h is not None:
                r, rn, mean, rstd = s["r"][t]
                _accumulate(acc["h"], n, da, rn)
                da = ln_bwd(da * ln_h, r, [G], mean, rstd, None, None, only_input)[0]
            if d_r is not d_xp:
                d_r[:, off:off + n] = da
            d_hd = product(da)  # (D, n, H)
            if drop is not None:
                d_hd = d_hd * drop[:, :n]
            dh = d_hd if kept_h is None else d_hd + kept_h
            dc = gc * f if kept_c is None else torch.addcmul(kept_c, gc, f)
        dh0 = torch.cat([dh, d_hn[:, dh.shape[1]:]], 1)
        dc0 = torch.cat([dc, d_cn[:, dc.shape[1]:]], 1)
        # W_hh's gradient: one batched matmul over all N tokens
        d_hh = torch.bmm(s["inputs"].transpose(1, 2), d_r) if ctx.needs_input_grad[1 + 3] else None
        gains = [None if a is None else a.sum(1, keepdim=True) for a in acc.values()]
        return (None, d_xp, dh0, dc0, d_hh, *gains, None, None, None)


def double_backward(ctx, first: int, d_y, d_hn, d_cn):
    """The gradients through a rerun of :func:`_run` with autograd recording it (differentiable):
    one per :class:`Inputs` field (``first``: where the inputs start among the Function's
    arguments)."""
    inp = Inputs(*ctx.saved_tensors)
    leaves = list(inp[:GRADS])
    with torch.enable_grad():
        outs = _run(inp, ctx.sched, None)
        pairs = [(o, g) for o, g in zip(outs, (d_y, d_hn, d_cn)) if g is not None]
        wrt = [k for k, t in enumerate(leaves) if t is not None and ctx.needs_input_grad[first + k]]
        grads = torch.autograd.grad([o for o, _ in pairs], [leaves[k] for k in wrt], [g for _, g in pairs],
                                    create_graph=True, allow_unused=True)
    result: List[Optional[Tensor]] = [None] * len(Inputs._fields)
    for k, g in zip(wrt, grads):
        result[k] = g
    return tuple(result)
