"""The regularised LSTM layer, packed, with a hand-written backward (backpropagation through time).

The engine of the ``packed`` backend (:mod:`birnn.backends.packed`): what runs on CPU, in eager
mode (``path="packed"``) and inside the ``birnn::regularised_layer`` graph node, for an LSTM
layer with recurrent dropout, zoneout or layer norm (what PyTorch's fused op cannot run; on
CUDA the fused Triton kernel runs those, or the reference step loop). The step is the
reference step's (:mod:`birnn.cells`); what differs is how the layer is run, which made the
regularised training step 3x the plain one on CPU before:

- the batch is *packed* (as :class:`torch.nn.utils.rnn.PackedSequence` is): sorted by length,
  longest first, every real step of every sequence once, step ``t`` a block of the ``n_t``
  sequences still running. No work on padding: the input projection, the step loop and the
  weight gradients all run on real tokens only;
- the backward is written out rather than recorded by autograd op by op: per step only the
  gates', the layer norms' and the recurrent product's; the weight gradients are one batched
  matmul each after the loop;
- the products run through oneDNN with the weights packed once per call
  (:mod:`birnn.backends.packed.prepacked`), and each step's elementwise part, forward and backward, is one call
  of a small C++ kernel (:mod:`birnn.backends.packed.cpu_kernel`, :class:`_KernelLSTM`), on CPU in float32 and
  float64. In bfloat16, or without a C++ compiler, the same steps run as PyTorch's fused ops (:class:`_PackedLSTM`: its sigmoid/tanh/layer-norm backward ops).

Symbols: ``T`` time, ``S`` steps run (``max(lengths)``), ``N`` real tokens (``sum(lengths)``),
``D`` directions, ``B`` batch, ``F`` input features, ``H`` hidden size; gates in the step's
order ``[i|f|o|g]``. The equations (the reference step's)::

    r  = (h_{t-1} * drop_h) @ W_hh^T              # (D, n_t, 4H)
    a  = xg_t + LN(r) * ln_h                      # xg_t + r without layer norm
    i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
    c' = f * c_{t-1} + i * g
    h' = o * tanh(LN(c') * ln_c_w + ln_c_b)        # o * tanh(c') without layer norm
    h_t = lerp(h', h_{t-1}, keep_h);  c_t = lerp(c', c_{t-1}, keep_c)   # zoneout

A double backward (``create_graph=True``) reruns the same loop with autograd recording it, so
gradients of gradients flow too (slowly).
"""

from __future__ import annotations

import ctypes
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...cells import StepWeights
from .cpu_kernel import Workspace, kernel
from .prepacked import Prepacked, linear

__all__ = ["CELLS", "DEVICES", "Packing", "packed_lstm_layer", "packing", "runs"]

CELLS = ("LSTM",)  # the step written out here (the backend's capabilities, birnn.backends.packed, read these)
DEVICES = ("cpu",)  # what it was built and measured for (no GPU has run it)


def runs(mode: str, device: torch.device) -> bool:
    """Whether this layer runs the cell ``mode`` on ``device`` (a regularised layer whose other
    options it runs: what the ``birnn::regularised_layer`` graph node asks)."""
    return mode in CELLS and device.type in DEVICES

EPS = 1e-5  # the layer norms' (birnn.cells.normalise)


class Packing(NamedTuple):
    """Where the real tokens of a padded (T, B) batch go when packed, longest sequence first."""

    perm: Tensor  # (B,) the batch sorted by length, longest first (stable)
    sizes: List[int]  # n_t: sequences still running at step t, t < S (non-increasing)
    index: Tensor  # (D, N) each packed token's flat position t*B + b in the padded batch, per direction


def packing(lengths: Optional[Tensor], T: int, B: int, D: int, device) -> Packing:
    """The packing of a batch of ``lengths`` (B,) (None: all T). The backward direction
    (``D == 2``) reads each sequence from its last real step: its token ``t`` is step
    ``len - 1 - t``."""
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.int64, device=device)
    lengths = lengths.to(device)
    perm = torch.argsort(lengths, descending=True, stable=True)
    ls = lengths[perm]
    steps = int(ls[0]) if B else 0
    counts = torch.bincount(ls, minlength=steps + 1).tolist()  # sequences of each length
    running, sizes = B, []
    for t in range(steps):
        running -= counts[t]
        sizes.append(running)
    t = torch.arange(steps, device=device)[:, None]  # (S, 1)
    real = t < ls[None, :]  # (S, B) in packed order: step-major, then sorted row
    index = [(t * B + perm[None, :])[real]]
    if D == 2:
        index.append(((ls[None, :] - 1 - t) * B + perm[None, :])[real])
    return Packing(perm, sizes, torch.stack(index))


class _Norms(NamedTuple):
    """The layer norms of one layer, directions stacked (any may be None): the input
    projection's gain and bias ``x`` / ``b`` and the recurrent one's ``h``, (D, 1, 4H); the
    cell's gain and bias ``cw`` / ``cb``, (D, 1, H)."""

    x: Optional[Tensor]
    b: Optional[Tensor]
    h: Optional[Tensor]
    cw: Optional[Tensor]
    cb: Optional[Tensor]


def _blocks(sizes: Sequence[int]) -> List[Tuple[int, int, int]]:
    """Every step's block of packed rows: (offset, n_t, n_{t+1}), n_S = 0 (the rows past n_{t+1}
    end at step t)."""
    out, off = [], 0
    for t, n in enumerate(sizes):
        out.append((off, n, sizes[t + 1] if t + 1 < len(sizes) else 0))
        off += n
    return out


def _run(xp: Tensor, h0: Tensor, c0: Tensor, hh_t: Tensor, norms: _Norms, drop: Optional[Tensor],
         keep_h: Optional[Tensor], keep_c: Optional[Tensor], rates: Sequence[float], sizes: Sequence[int],
         saved: Optional[dict]) -> Tuple[Tensor, Tensor, Tensor]:
    """The forward over packed ``xp`` (D, N, 4H) from the sorted ``h0``/``c0`` (D, B, H): the
    outputs (D, N, H) and final states (D, B, H), sorted. ``saved`` (a dict) receives what the
    backward reads. With autograd recording (a double backward) the same loop is differentiable."""
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
    for off, n, ending in _blocks(sizes):
        hp, cp, xt = hp[:, :n], cp[:, :n], xp[:, off:off + n]
        hd = hp if drop is None else hp * drop[:, :n]
        if keep:
            inputs[:, off:off + n] = hd
        if norms.x is not None:
            xn, *stats_x = torch.native_layer_norm(xt, [G], None, None, EPS)
            xt = torch.addcmul(norms.b, xn, norms.x) if norms.b is not None else xn * norms.x
        r = product(hd)
        if norms.h is None:
            a = xt + r
        else:
            rn, *stats_r = torch.native_layer_norm(r, [G], None, None, EPS)
            a = torch.addcmul(xt, rn, norms.h)
        sig = torch.sigmoid(a[..., :3 * H])
        g = torch.tanh(a[..., 3 * H:])
        i, f, o = sig.chunk(3, -1)
        c = torch.addcmul(f * cp, i, g)
        if norms.cw is None:
            tc = torch.tanh(c)
        else:
            cn, *stats_c = torch.native_layer_norm(c, [H], None, None, EPS)
            tc = torch.tanh(torch.addcmul(norms.cb, cn, norms.cw))
        h = o * tc
        if keep:
            steps["acts"].append((sig, g))
            steps["tc"].append(tc)
            if norms.x is not None:
                steps["x"].append((xn, *stats_x))
            if norms.h is not None:
                steps["r"].append((r, rn, *stats_r))
            if norms.cw is not None:
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


class _PackedLSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb, drop, keep_h, keep_c, rates, sizes):
        norms = _Norms(ln_x, b_x, ln_h, ln_cw, ln_cb)
        saved = {} if any(ctx.needs_input_grad[:9]) else None
        out = _run(xp, h0, c0, hh_t, norms, drop, keep_h, keep_c, rates, sizes, saved)
        if saved is not None:
            ctx.save_for_backward(xp, h0, c0, hh_t, *norms, drop, keep_h, keep_c)
            ctx.saved, ctx.rates, ctx.sizes = saved, rates, sizes
        return out

    @staticmethod
    def backward(ctx, d_y, d_hn, d_cn):
        xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb, drop, keep_h, keep_c = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: rerun the loop with autograd recording it
            return _double_backward(ctx, d_y, d_hn, d_cn)
        s, rates, sizes = ctx.saved, ctx.rates, ctx.sizes
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
        blocks = _blocks(sizes)
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
        d_hh = torch.bmm(s["inputs"].transpose(1, 2), d_r) if ctx.needs_input_grad[3] else None
        gains = [None if a is None else a.sum(1, keepdim=True) for a in acc.values()]
        return (d_xp, dh0, dc0, d_hh, *gains, None, None, None, None, None)


def _double_backward(ctx, d_y, d_hn, d_cn):
    """The gradients through a rerun of :func:`_run` with autograd recording it (differentiable)."""
    xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb, drop, keep_h, keep_c = ctx.saved_tensors[:12]
    leaves = [xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb]
    with torch.enable_grad():
        outs = _run(xp, h0, c0, hh_t, _Norms(*leaves[4:]), drop, keep_h, keep_c, ctx.rates, ctx.sizes, None)
        pairs = [(o, g) for o, g in zip(outs, (d_y, d_hn, d_cn)) if g is not None]
        wrt = [k for k, t in enumerate(leaves) if t is not None and ctx.needs_input_grad[k]]
        grads = torch.autograd.grad([o for o, _ in pairs], [leaves[k] for k in wrt], [g for _, g in pairs],
                                    create_graph=True, allow_unused=True)
    result: List[Optional[Tensor]] = [None] * 14
    for k, g in zip(wrt, grads):
        result[k] = g
    return tuple(result)


def _ptr(t: Optional[Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


def _kernel_forward(kern, xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb, drop, keep_h, keep_c, rates, sizes):
    """The forward through the kernel: (its tensors by the kernel's names, the per-step products
    the recurrent layer norm's backward reads, the workspace holding the buffers)."""
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
    for off, n, n_next in _blocks(sizes):
        r = product.each(t["inputs"][:, off:off + n])
        kern.forward(ctypes.byref(st), off, n, n_next, prev_off, r[0].data_ptr(), r[1].data_ptr() if D == 2 else None)
        if ln_h is not None:
            rs.append(r)
        prev_off = off
    return t, rs, ws


class _KernelLSTM(torch.autograd.Function):
    """:class:`_PackedLSTM` with each step's elementwise part in the C++ kernel
    (:mod:`birnn.backends.packed.cpu_kernel`): per step, forward, the product and one kernel call; backward,
    one kernel call and the product. The buffers the backward reads come from a pool
    (:class:`birnn.backends.packed.cpu_kernel.Workspace`) and go back to it when the backward is done; a second
    backward through a retained graph runs the forward again for them."""

    @staticmethod
    def forward(ctx, xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb, drop, keep_h, keep_c, rates, sizes, kern):
        inputs = (xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb, drop, keep_h, keep_c)
        t, rs, ws = _kernel_forward(kern, *inputs, rates, sizes)
        if any(ctx.needs_input_grad[:9]):
            ctx.save_for_backward(*inputs)
            ctx.rates, ctx.sizes, ctx.kern = rates, sizes, kern
            ctx.kept = ({k: t[k] for k in _KEPT}, rs, ws)
        else:
            ws.release()
        return t["y"], t["h_n"], t["c_n"]

    @staticmethod
    def backward(ctx, d_y, d_hn, d_cn):
        if torch.is_grad_enabled():  # create_graph: rerun the loop with autograd recording it
            return _double_backward(ctx, d_y, d_hn, d_cn) + (None,)
        saved = ctx.saved_tensors
        xp, h0, c0, hh_t, ln_x, b_x, ln_h, ln_cw, ln_cb, drop, keep_h, keep_c = saved
        sizes, kern = ctx.sizes, ctx.kern
        D, N, G = xp.shape
        B, H = h0.shape[1], G // 4
        if ctx.kept is None:  # a second backward (retained graph): the buffers went back, make them again
            kept, rs, forward_ws = _kernel_forward(kern, *saved, ctx.rates, sizes)
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
        st = kern.layer((D, N, B, H), ctx.rates, t)
        product = Prepacked(hh_t.transpose(1, 2), sizes[0])  # (n, 4H) @ (4H, H) per direction
        blocks = _blocks(sizes)
        g = [None, None]
        for k in reversed(range(len(sizes))):
            off, n, n_after = blocks[k]
            r = rs[k] if ln_h is not None else [None, None]
            kern.backward(ctypes.byref(st), off, n, n_after, blocks[k - 1][0] if k else -1, _ptr(g[0]),
                          _ptr(g[1]) if D == 2 else None, _ptr(r[0]), _ptr(r[1]) if D == 2 else None)
            g = product.each(t["d_r"][:, off:off + n])
        kern.add_product(ctypes.byref(st), sizes[0], _ptr(g[0]), _ptr(g[1]) if D == 2 else None)
        d_hh = torch.bmm(t["inputs"].transpose(1, 2), t["d_r"]) if ctx.needs_input_grad[3] else None
        gains = [None if t[k] is None else t[k].unsqueeze(1) for k in ("acc_x", "acc_b", "acc_h", "acc_cw", "acc_cb")]
        ws.release()
        forward_ws.release()
        return (t["d_xp"], t["dh"], t["dc"], d_hh, *gains, None, None, None, None, None, None)


_KEPT = ("y", "cs", "acts", "tc", "mean_x", "rstd_x", "mean_r", "rstd_r", "cn", "rstd_c", "inputs")  # for the backward


def packed_lstm_layer(inp: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Tensor, w_ih: Tensor,
                      b_in: Optional[Tensor], ln_x: Optional[Tensor], w: StepWeights, rates: Sequence[float],
                      keep_h: Optional[Tensor], keep_c: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """One regularised LSTM layer, both directions, packed (see above).

    Args:
        inp: (T, B, F) layer input; lengths: (B,) int64 or None (every sequence has T steps).
        h0, c0: (D, B, H) initial states.
        w_ih: (D*4H, F) input weights, ``b_in`` (D*4H,) or None, ``ln_x`` (D, 1, 4H) the input
            projection's layer-norm gain or None, in the step's gate order
            (:class:`birnn.backends.weights.LayerWeights`); ``w`` the step's weights (no projection).
        rates: the zoneout rates of h and c (the eval-mode expectation); ``keep_h``/``keep_c``
            (T, D, B, H) the training masks in processing order, or None.

    Returns:
        output (T, B, D*H) (0 at padded steps), h_n and c_n (D, B, H).
    """
    T, B, Fin = inp.shape
    D, H = h0.shape[0], c0.shape[-1]
    pk = packing(lengths, T, B, D, inp.device)
    flat = inp.reshape(T * B, Fin)
    xs = torch.stack([flat.index_select(0, pk.index[d]) for d in range(D)])  # (D, N, F)
    bias = None if b_in is None else b_in.view(D, 1, 4 * H)
    b_x = bias if ln_x is not None else None  # after the layer norm, step by step
    xp = linear(xs, w_ih.view(D, 4 * H, Fin), None if ln_x is not None else bias)  # (D, N, 4H)
    perm = pk.perm
    drop = None if w.drop_h is None else w.drop_h.index_select(1, perm)

    def packed_mask(m):  # (T, D, B, H) in processing order -> (D, N, H)
        return None if m is None else m.transpose(0, 1).reshape(D, T * B, H).index_select(1, pk.index[0])
    ln_cw, ln_cb = w.ln_c if w.ln_c is not None else (None, None)
    if pk.sizes:
        args = (xp, h0.index_select(1, perm), c0.index_select(1, perm), w.hh_t, ln_x, b_x, w.ln_h, ln_cw, ln_cb,
                drop, packed_mask(keep_h), packed_mask(keep_c), tuple(float(r) for r in rates), pk.sizes)
        kern = kernel(xp)
        if kern is not None:
            args = tuple(a.contiguous() if isinstance(a, Tensor) else a for a in args)
            y, h_n, c_n = _KernelLSTM.apply(*args, kern)
        else:
            y, h_n, c_n = _PackedLSTM.apply(*args)
    else:  # every sequence is empty
        y, h_n, c_n = xp.new_zeros(D, 0, H), h0.index_select(1, perm), c0.index_select(1, perm)
    inv = torch.argsort(perm)
    out = torch.cat([y.new_zeros(T * B, H).index_copy(0, pk.index[d], y[d]) for d in range(D)], 1)
    return out.view(T, B, D * H), h_n.index_select(1, inv), c_n.index_select(1, inv)
