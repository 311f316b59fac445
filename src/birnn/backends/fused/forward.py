"""The forward kernel: one persistent program per (direction, batch tile, unit block) runs every
step of one layer (:func:`birnn.backends.fused.recurrent.layer_forward` launches it; the design:
:mod:`birnn.backends.fused.recurrent` and docs/design.md)."""

import triton
import triton.language as tl

from .device import (_sigmoid, _tanh, _program_tile, _natural_step, _natural_tile, _group_barrier, _all_gates,
                     _resident_weights, _resident_gates, _zone, _group_moments, _local_moments,
                     _normalise)


@triton.jit
def _recurrent_layer_kernel(
    xg_ptr,  # (T, B, D, G*H) input projections (biases folded in; GRU: b_ih only), each row in its own time
             # order (the layer's input projection as it is)
    w_ptr,  # (D, G*H, H) W_hh, gate blocks in step order
    bhh_ptr,  # (D, G*H) GRU hidden bias (unused otherwise)
    h0_ptr, c0_ptr,  # (D, B, H)
    len_ptr,  # (B,) int32
    y_ptr,  # (T, B, D, H) the layer's output (its dtype), each row in its own time order, 0 at padded steps
    out_ptr,  # (D, T, B, H) outputs in processing order, 0 at padded steps (when SAVE, GRU and Elman only)
    hx_ptr,  # (D, 2, B, H) exchange area of h (times the recurrent dropout mask), parity 0 holds h0
    hn_ptr, cn_ptr,  # (D, B, H) final states
    cs_ptr,  # (D, T, B, H) when SAVE: LSTM cell states, GRU h W_n^T + b_hn
    gates_ptr,  # (D, T, B, G*H) gate activations when SAVE (Elman with zoneout: the new state before zoneout)
    bar_ptr,  # (D * NBT,) int32 barrier counters, zero at launch
    drop_ptr,  # (D, B, H) recurrent dropout mask, scaled (DROP)
    kh_ptr, kc_ptr,  # (D, T, B, H) zoneout masks of h and c, 1 keeps the old value (ZH, ZC == 1)
    rate_h, rate_c,  # zoneout rates (ZH, ZC == 2: evaluation, the expectation)
    lnh_ptr,  # (D, G*H) gain of the recurrent pre-activation's layer norm (LN)
    lncw_ptr, lncb_ptr,  # (D, H) gain and bias of the LSTM cell's layer norm (LN)
    st_ptr,  # (D, B, GROUP, 4) partial row sums exchanged for the norms (LN)
    xh_ptr,  # (T, B, D, G*H) normalised recurrent pre-activations (LN and SAVE), as xg
    ch_ptr,  # (D, T, B, H) normalised LSTM cell (LN and SAVE)
    rs_ptr,  # (D, T, B, 2) 1/std of both norms (LN and SAVE)
    steps, TT, B,  # steps run, the buffers' T, the batch
    H: tl.constexpr, U: tl.constexpr, BB: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr, NG: tl.constexpr,
    NBT: tl.constexpr, D: tl.constexpr, CELL: tl.constexpr, G: tl.constexpr, SAVE: tl.constexpr,
    DROP: tl.constexpr, ZH: tl.constexpr, ZC: tl.constexpr, LN: tl.constexpr, FOLD: tl.constexpr,
    RESIDENT: tl.constexpr, GP: tl.constexpr,
    OP_DTYPE: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
):
    d, grp, units, rows_b, mask_b, lengths, state_off = _program_tile(len_ptr, B, H, U, BB, GROUP, NBT)
    jpos = tl.program_id(0) % GROUP
    m2 = mask_b[:, None]
    h_own = tl.load(h0_ptr + state_off, mask=m2, other=0.0).to(tl.float32)
    c = tl.zeros((BB, U), dtype=tl.float32)
    if CELL == 2:
        c = tl.load(c0_ptr + state_off, mask=m2, other=0.0).to(tl.float32)
    dmask = tl.full((BB, U), 1.0, dtype=tl.float32)
    if DROP:
        dmask = tl.load(drop_ptr + state_off, mask=m2, other=0.0).to(tl.float32)
    w_base = w_ptr + d * (G * H * H)
    GH: tl.constexpr = G * H
    counter = bar_ptr + grp
    if RESIDENT:
        w_res = _resident_weights(w_base, jpos * U, H, U, G, GP, OP_DTYPE, DOT_DTYPE)
    nb = 0  # barriers passed
    t = 0
    while t < steps:  # (a while loop: Triton's interpreter cannot index range() with numpy >= 2.4 scalars)
        par = t % 2
        h_base = hx_ptr + (d * 2 + par) * B * H
        # xs, xhat and y in the layer's (T, B, D, ·) layout, each row at its own time
        xo = _natural_tile(_natural_step(t, d, lengths), rows_b, units, B, D, GH, d)
        valid = (t < lengths)[:, None]
        zero = tl.zeros((BB, U), dtype=tl.float32)
        x0 = tl.load(xg_ptr + xo, mask=m2, other=0.0).to(tl.float32)
        x1 = zero
        x2 = zero
        x3 = zero
        if G > 1:
            x1 = tl.load(xg_ptr + xo + H, mask=m2, other=0.0).to(tl.float32)
            x2 = tl.load(xg_ptr + xo + 2 * H, mask=m2, other=0.0).to(tl.float32)
        if G > 3:
            x3 = tl.load(xg_ptr + xo + 3 * H, mask=m2, other=0.0).to(tl.float32)
        if FOLD:  # the input projections start the sums: a_k = x_k + h W_k^T
            a0, a1, a2, a3 = _all_gates(h_base, w_base, units, rows_b, mask_b, H, BK, G, OP_DTYPE, DOT_DTYPE, PRECISION,
                                        x0, x1, x2, x3)
        else:  # the recurrent part alone first (normalised, or the GRU's r * (h W_n^T + b_hn))
            if RESIDENT:
                a0, a1, a2, a3 = _resident_gates(h_base, w_res, rows_b, mask_b, H, U, BB, GP, OP_DTYPE, DOT_DTYPE,
                                                 PRECISION)
            else:
                a0, a1, a2, a3 = _all_gates(h_base, w_base, units, rows_b, mask_b, H, BK, G, OP_DTYPE, DOT_DTYPE,
                                            PRECISION, zero, zero, zero, zero)
            if LN:  # layer norm over all G*H units of each row: partial sums meet across the group
                mean_j, m2_j = _local_moments(a0, a1, a2, a3, G, U)
                nb += 1
                mean, rstd = _group_moments(st_ptr, 0, mean_j, m2_j, G * U, GH, d, rows_b, mask_b, B, jpos, GROUP, NG,
                                            counter, nb * GROUP)
                if SAVE:
                    tl.store(rs_ptr + ((d * TT + t) * B + rows_b) * 2, rstd, mask=mask_b)
                gain = lnh_ptr + d * GH + units
                a0 = _normalise(a0, mean, rstd, gain, xh_ptr + xo, m2, SAVE)
                if G > 1:
                    a1 = _normalise(a1, mean, rstd, gain + H, xh_ptr + xo + H, m2, SAVE)
                    a2 = _normalise(a2, mean, rstd, gain + 2 * H, xh_ptr + xo + 2 * H, m2, SAVE)
                if G > 3:
                    a3 = _normalise(a3, mean, rstd, gain + 3 * H, xh_ptr + xo + 3 * H, m2, SAVE)
            if CELL != 3:
                a0 += x0
                a1 += x1
                a2 += x2
                a3 += x3
        so = ((d * TT + t) * B) * H + rows_b[:, None] * H + units[None, :]  # this step's (BB, U), stored (D, T, B, H)
        go = ((d * TT + t) * B) * GH + rows_b[:, None] * GH + units[None, :]  # gate 0's, stored (D, T, B, G*H)
        if CELL == 3:  # GRU, [r|z|n]: b_hn sits inside r *
            b_r = tl.load(bhh_ptr + d * GH + units).to(tl.float32)
            b_z = tl.load(bhh_ptr + d * GH + H + units).to(tl.float32)
            b_n = tl.load(bhh_ptr + d * GH + 2 * H + units).to(tl.float32)
            r = _sigmoid(x0 + a0 + b_r[None, :])
            z = _sigmoid(x1 + a1 + b_z[None, :])
            hn_b = a2 + b_n[None, :]
            n = _tanh(x2 + r * hn_b)
            h_new = n + z * (h_own - n)
            if SAVE:
                tl.store(gates_ptr + go, r, mask=m2)
                tl.store(gates_ptr + go + H, z, mask=m2)
                tl.store(gates_ptr + go + 2 * H, n, mask=m2)
                tl.store(cs_ptr + so, hn_b, mask=m2)
        elif CELL == 2:  # LSTM, step order [i|f|o|g]
            i = _sigmoid(a0)
            f = _sigmoid(a1)
            o = _sigmoid(a2)
            g = _tanh(a3)
            c_new = f * c + i * g
            y = c_new
            if LN:  # the cell's layer norm over its H units, with gain and bias
                mean_j, m2_j = _local_moments(c_new, c_new, c_new, c_new, 1, U)
                nb += 1
                mean_c, rstd_c = _group_moments(st_ptr, 2, mean_j, m2_j, U, H, d, rows_b, mask_b, B, jpos, GROUP, NG,
                                                counter, nb * GROUP)
                chat = (c_new - mean_c[:, None]) * rstd_c[:, None]
                y = (chat * tl.load(lncw_ptr + d * H + units).to(tl.float32)[None, :]
                     + tl.load(lncb_ptr + d * H + units).to(tl.float32)[None, :])
                if SAVE:
                    tl.store(ch_ptr + so, chat, mask=m2)
                    tl.store(rs_ptr + ((d * TT + t) * B + rows_b) * 2 + 1, rstd_c, mask=mask_b)
            h_new = o * _tanh(y)
            c = tl.where(valid, _zone(c_new, c, kc_ptr, so, m2, rate_c, ZC), c)
            if SAVE:
                tl.store(gates_ptr + go, i, mask=m2)
                tl.store(gates_ptr + go + H, f, mask=m2)
                tl.store(gates_ptr + go + 2 * H, o, mask=m2)
                tl.store(gates_ptr + go + 3 * H, g, mask=m2)
                tl.store(cs_ptr + so, c, mask=m2)
        else:  # Elman RNN
            if CELL == 0:
                h_new = _tanh(a0)
            else:
                h_new = tl.maximum(a0, 0.0)
            if SAVE:
                if ZH != 0:  # the backward pass needs the activation before zoneout
                    tl.store(gates_ptr + go, h_new, mask=m2)
        h_new = _zone(h_new, h_own, kh_ptr, so, m2, rate_h, ZH)
        h_own = tl.where(valid, h_new, h_own)
        h_out = tl.where(valid, h_new, 0.0)
        tl.store(y_ptr + _natural_tile(_natural_step(t, d, lengths), rows_b, units, B, D, H, d), h_out, mask=m2)
        if SAVE and CELL != 2:  # the GRU's and Elman backward read the states in processing order
            tl.store(out_ptr + so, h_out, mask=m2)
        tl.store(hx_ptr + (d * 2 + 1 - par) * B * H + rows_b[:, None] * H + units[None, :],
                 (h_own * dmask).to(hx_ptr.dtype.element_ty), mask=m2)
        # the group's barrier: every unit block has published step t before anyone reads it
        nb += 1
        _group_barrier(counter, nb * GROUP)
        t += 1
    tl.store(hn_ptr + state_off, h_own, mask=m2)
    if CELL == 2:
        tl.store(cn_ptr + state_off, c, mask=m2)
