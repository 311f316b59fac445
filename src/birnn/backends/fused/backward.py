"""The backward kernel: backpropagation through time over the forward's saved activations, one
persistent program per (direction, batch tile, unit block) (:func:`birnn.backends.fused.recurrent.layer_backward`
launches it)."""

import triton
import triton.language as tl

from .device import (_tanh, _program_tile, _natural_step, _natural_tile, _group_barrier, _resident_rows_t, _scatter_dh,
                     _saved_step, _keep_factor, _group_sums, _gained)


@triton.jit
def _recurrent_layer_backward_kernel(
    w_ptr,  # (D, G*H, H)
    out_ptr,  # (D, T, B, H) forward outputs (h_t at real steps)
    h0_ptr, c0_ptr,  # (D, B, H)
    cs_ptr,  # (D, T, B, H) LSTM: c_t; GRU: h W_n^T + b_hn
    gates_ptr,  # (D, T, B, G*H) gate activations (Elman with zoneout: the state before zoneout)
    len_ptr,
    dout_ptr,  # (T, B, D, H) gradient of the layer's output, each row in its own time order
    dhn_ptr, dcn_ptr,  # (D, B, H)
    dx_ptr,  # (T, B, D, G*H) gradient of the input projections, each row in its own time order, as dy, draw and
             # xh (bf16 layers: bf16, _gradient_dtype)
    dy_ptr,  # gradient of the hidden pre-activations after the norm (GRU only; else dx)
    draw_ptr,  # gradient of h W_hh^T before the norm (LN only; else dy)
    dyc_ptr,  # (D, T, B, H) gradient of the normalised cell's affine output (LN, LSTM)
    ex_ptr,  # (D, 2, B, G*H) exchange area of dA (streaming); (D, 2, GROUP, B, H) shares of dh (RESIDENT)
    dh0_ptr, dc0_ptr,  # (D, B, H)
    bar_ptr,
    drop_ptr, kh_ptr, kc_ptr, rate_h, rate_c, lnh_ptr, lncw_ptr, lncb_ptr, st_ptr, xh_ptr, ch_ptr, rs_ptr,
    steps, TT, B,
    H: tl.constexpr, U: tl.constexpr, BB: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr, NG: tl.constexpr,
    NBT: tl.constexpr, D: tl.constexpr, CELL: tl.constexpr, G: tl.constexpr,
    DROP: tl.constexpr, ZH: tl.constexpr, ZC: tl.constexpr, LN: tl.constexpr,
    RESIDENT: tl.constexpr, GP: tl.constexpr,
    OP_DTYPE: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
):
    d, grp, units, rows_b, mask_b, lengths, state_off = _program_tile(len_ptr, B, H, U, BB, GROUP, NBT)
    jpos = tl.program_id(0) % GROUP
    m2 = mask_b[:, None]
    dh = tl.load(dhn_ptr + state_off, mask=m2, other=0.0)
    dc = tl.zeros((BB, U), dtype=tl.float32)
    if CELL == 2:
        dc = tl.load(dcn_ptr + state_off, mask=m2, other=0.0)
    dmask = tl.full((BB, U), 1.0, dtype=tl.float32)
    if DROP:
        dmask = tl.load(drop_ptr + state_off, mask=m2, other=0.0).to(tl.float32)
    GH: tl.constexpr = G * H
    w_base = w_ptr + d * (GH * H)
    counter = bar_ptr + grp
    if RESIDENT:
        w_rt = _resident_rows_t(w_base, jpos * U, H, U, G, GP, OP_DTYPE, DOT_DTYPE)
    nb = 0
    k = 0
    pre = _saved_step(steps - 1, d, dout_ptr, gates_ptr, cs_ptr, out_ptr, h0_ptr, c0_ptr, state_off, rows_b, units, m2,
                      B, TT, lengths, H, GH, BB, U, D, CELL, ZH, ZC, LN)
    while k < steps:
        t = steps - 1 - k
        par = k % 2
        dout_t, p0, p1, p2, p3, p4, p5 = pre
        valid = (t < lengths)[:, None]
        off = ((d * TT + t) * B) * H + rows_b[:, None] * H + units[None, :]
        # dx, dy, draw and xh in the layer's (T, B, D, G*H) layout, each row at its own time
        goff = _natural_tile(_natural_step(t, d, lengths), rows_b, units, B, D, GH, d)
        zero = tl.zeros((BB, U), dtype=tl.float32)
        dh_t = dh + tl.where(valid, dout_t, 0.0)
        keep = zero  # zoneout: the part that flows straight to h_{t-1}
        dhn = dh_t  # the part that reaches the cell's new state
        if ZH != 0:
            keep = dh_t * _keep_factor(kh_ptr, off, m2, rate_h, ZH, BB, U)
            dhn = dh_t - keep
        if CELL == 2:
            i = p0
            f = p1
            o = p2
            g = p3
            c_prev = p4
            if LN:
                chat = tl.load(ch_ptr + off, mask=m2, other=0.0)
                gw = tl.load(lncw_ptr + d * H + units).to(tl.float32)[None, :]
                tc = _tanh(chat * gw + tl.load(lncb_ptr + d * H + units).to(tl.float32)[None, :])
            elif ZC != 0:  # the saved c_t is after zoneout: recompute the cell's own c_t
                tc = _tanh(f * c_prev + i * g)
            else:
                tc = _tanh(p5)
            y2 = tl.where(valid, dhn * tc * o * (1.0 - o), 0.0)
            dyc = tl.where(valid, dhn * o * (1.0 - tc * tc), 0.0)
            if LN:  # back through the cell's norm: two row sums over all H units
                tl.store(dyc_ptr + off, dyc, mask=m2)
                dch = dyc * gw
                nb += 1
                t1, t2 = _group_sums(st_ptr, 2, tl.sum(dch, axis=1), tl.sum(dch * chat, axis=1), d, rows_b, mask_b,
                                     B, jpos, GROUP, NG, counter, nb * GROUP)
                rstd_c = tl.load(rs_ptr + ((d * TT + t) * B + rows_b) * 2 + 1, mask=mask_b, other=0.0)
                dyc = rstd_c[:, None] * (dch - (t1 / H)[:, None] - chat * (t2 / H)[:, None])
            if ZC != 0:
                kc = _keep_factor(kc_ptr, off, m2, rate_c, ZC, BB, U)
                dct = dc * (1.0 - kc) + dyc
            else:
                dct = dc + dyc
            y0 = tl.where(valid, dct * g * i * (1.0 - i), 0.0)
            y1 = tl.where(valid, dct * c_prev * f * (1.0 - f), 0.0)
            y3 = tl.where(valid, dct * i * (1.0 - g * g), 0.0)
            if ZC != 0:
                dc = tl.where(valid, dct * f + dc * kc, dc)
            else:
                dc = tl.where(valid, dct * f, dc)
            tl.store(dx_ptr + goff, y0, mask=m2)
            tl.store(dx_ptr + goff + H, y1, mask=m2)
            tl.store(dx_ptr + goff + 2 * H, y2, mask=m2)
            tl.store(dx_ptr + goff + 3 * H, y3, mask=m2)
        elif CELL == 3:
            r = p0
            z = p1
            n = p2
            hn_b = p3
            h_prev = p4
            y1 = tl.where(valid, dhn * (h_prev - n) * z * (1.0 - z), 0.0)
            da_n = tl.where(valid, dhn * (1.0 - z) * (1.0 - n * n), 0.0)
            y0 = da_n * hn_b * r * (1.0 - r)
            y2 = da_n * r
            y3 = zero
            tl.store(dx_ptr + goff, y0, mask=m2)
            tl.store(dx_ptr + goff + H, y1, mask=m2)
            tl.store(dx_ptr + goff + 2 * H, da_n, mask=m2)
            tl.store(dy_ptr + goff, y0, mask=m2)
            tl.store(dy_ptr + goff + H, y1, mask=m2)
            tl.store(dy_ptr + goff + 2 * H, y2, mask=m2)
            keep += dhn * z
        else:
            act = p0
            if CELL == 0:
                y0 = tl.where(valid, dhn * (1.0 - act * act), 0.0)
            else:
                y0 = tl.where(valid & (act > 0.0), dhn, 0.0)
            y1 = zero
            y2 = zero
            y3 = zero
            tl.store(dx_ptr + goff, y0, mask=m2)
        if LN:  # back through the recurrent norm: draw = (g*dy - mean(g*dy) - x̂ mean(g*dy x̂)) / std
            gain = lnh_ptr + d * GH + units
            y0, xh0 = _gained(y0, gain, xh_ptr + goff, m2)
            s1 = tl.sum(y0, axis=1)
            s2 = tl.sum(y0 * xh0, axis=1)
            xh1 = zero
            xh2 = zero
            xh3 = zero
            if G > 1:
                y1, xh1 = _gained(y1, gain + H, xh_ptr + goff + H, m2)
                y2, xh2 = _gained(y2, gain + 2 * H, xh_ptr + goff + 2 * H, m2)
                s1 += tl.sum(y1, axis=1) + tl.sum(y2, axis=1)
                s2 += tl.sum(y1 * xh1, axis=1) + tl.sum(y2 * xh2, axis=1)
            if G > 3:
                y3, xh3 = _gained(y3, gain + 3 * H, xh_ptr + goff + 3 * H, m2)
                s1 += tl.sum(y3, axis=1)
                s2 += tl.sum(y3 * xh3, axis=1)
            nb += 1
            t1, t2 = _group_sums(st_ptr, 0, s1, s2, d, rows_b, mask_b, B, jpos, GROUP, NG, counter, nb * GROUP)
            rstd = tl.load(rs_ptr + ((d * TT + t) * B + rows_b) * 2, mask=mask_b, other=0.0)[:, None]
            m1 = (t1 / GH)[:, None]
            mx = (t2 / GH)[:, None]
            y0 = rstd * (y0 - m1 - xh0 * mx)
            tl.store(draw_ptr + goff, y0, mask=m2)
            if G > 1:
                y1 = rstd * (y1 - m1 - xh1 * mx)
                y2 = rstd * (y2 - m1 - xh2 * mx)
                tl.store(draw_ptr + goff + H, y1, mask=m2)
                tl.store(draw_ptr + goff + 2 * H, y2, mask=m2)
            if G > 3:
                y3 = rstd * (y3 - m1 - xh3 * mx)
                tl.store(draw_ptr + goff + 3 * H, y3, mask=m2)
        # the next step's saved values, loaded now: their latency overlaps the product and the barrier
        # (measured on an H200: benchmarks/GPU_NOTES.md)
        pre = _saved_step(tl.maximum(t - 1, 0), d, dout_ptr, gates_ptr, cs_ptr, out_ptr, h0_ptr, c0_ptr, state_off,
                          rows_b, units, m2, B, TT, lengths, H, GH, BB, U, D, CELL, ZH, ZC, LN)
        nb += 1
        if RESIDENT:
            acc = _scatter_dh(ex_ptr, w_rt, y0, y1, y2, y3, d, par, jpos, rows_b, mask_b, units, B, H, U, BB, GP, GROUP,
                              NG, OP_DTYPE, DOT_DTYPE, PRECISION, counter, nb * GROUP)
        else:
            e_off = ((d * 2 + par) * B) * GH + rows_b[:, None] * GH + units[None, :]
            ex_ty = ex_ptr.dtype.element_ty  # the product's operand type (bf16 layers: bf16)
            tl.store(ex_ptr + e_off, y0.to(ex_ty), mask=m2)
            if G > 1:
                tl.store(ex_ptr + e_off + H, y1.to(ex_ty), mask=m2)
                tl.store(ex_ptr + e_off + 2 * H, y2.to(ex_ty), mask=m2)
            if G > 3:
                tl.store(ex_ptr + e_off + 3 * H, y3.to(ex_ty), mask=m2)
            _group_barrier(counter, nb * GROUP)
            # dh_{t-1}[units] = (dA (BB, G*H) @ W[:, units] (G*H, U)) * drop[units]
            acc = tl.zeros((BB, U), dtype=tl.float32)
            e_base = ex_ptr + ((d * 2 + par) * B) * GH
            for k0 in tl.range(0, GH, BK):
                ks = k0 + tl.arange(0, BK)
                ak = tl.load(e_base + rows_b[:, None] * GH + ks[None, :], mask=m2, other=0.0, cache_modifier=".cg")
                wk = tl.load(w_base + ks[:, None] * H + units[None, :])
                acc = tl.dot(ak.to(OP_DTYPE).to(DOT_DTYPE), wk.to(OP_DTYPE).to(DOT_DTYPE), acc,
                             input_precision=PRECISION)
        dh = tl.where(valid, acc * dmask + keep, dh_t)
        k += 1
    tl.store(dh0_ptr + state_off, dh, mask=m2)
    if CELL == 2:
        tl.store(dc0_ptr + state_off, dc, mask=m2)
