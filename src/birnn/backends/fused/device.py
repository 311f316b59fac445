"""The device functions the fused kernels share (:mod:`birnn.backends.fused.forward`,
:mod:`birnn.backends.fused.backward`): activations, a program's tile and its place in the layer's
layout, the group barrier, the recurrent product (W_hh streamed or resident), zoneout, and the
layer norms' moments across a group. Symbols as in :mod:`birnn.backends.fused.recurrent`."""

import triton
import triton.language as tl


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    return 2.0 * _sigmoid(2.0 * x) - 1.0


@triton.jit
def _program_tile(len_ptr, B, H: tl.constexpr, U: tl.constexpr, BB: tl.constexpr, GROUP: tl.constexpr,
                  NBT: tl.constexpr):
    """What this program owns: direction ``d``, its barrier group, ``U`` units and ``BB`` batch
    rows (with their mask and lengths), and the offsets of its slice of a (D, B, H) state."""
    pid = tl.program_id(0)
    grp = pid // GROUP  # (d, batch tile)
    d = grp // NBT
    units = (pid % GROUP) * U + tl.arange(0, U)
    rows_b = (grp % NBT) * BB + tl.arange(0, BB)
    mask_b = rows_b < B
    lengths = tl.load(len_ptr + rows_b, mask=mask_b, other=0)
    state_off = d * B * H + rows_b[:, None] * H + units[None, :]
    return d, grp, units, rows_b, mask_b, lengths, state_off


@triton.jit
def _natural_step(t, d, lengths):
    """Where processing step ``t`` of direction ``d`` sits in each row's own time order (BB,):
    ``t`` forward, ``lengths - 1 - t`` backward; padded steps (``t >= lengths``) at ``t``, so
    the zeros they write land on the row's padding in either direction."""
    return tl.where((t < lengths) & (d == 1), lengths - 1 - t, t)


@triton.jit
def _natural_tile(pos, rows_b, units, B, D: tl.constexpr, F: tl.constexpr, d):
    """Offsets of this program's (BB, U) tile of direction ``d`` in a (T, B, D, F) tensor, each
    row at its own time ``pos`` (:func:`_natural_step`): the layer's own layout and order."""
    return (pos[:, None] * B + rows_b[:, None]) * (D * F) + d * F + units[None, :]


@triton.jit
def _group_barrier(counter, target):
    """Arrive and wait until ``target`` arrivals: an atomic add (release), a spin on volatile
    loads, then one acquire read-modify-write (a PTX ``red.release`` / ``ld.acquire`` barrier was
    timed against it on an H200 and did not win consistently: benchmarks/GPU_NOTES.md)."""
    tl.debug_barrier()  # the whole program has stored its slice
    tl.atomic_add(counter, 1, sem="release", scope="gpu")
    seen = tl.load(counter, volatile=True)
    while seen < target:
        seen = tl.load(counter, volatile=True)
    tl.atomic_add(counter, 0, sem="acquire", scope="gpu")
    tl.debug_barrier()


@triton.jit
def _all_gates(h_base, w_base, units, rows_b, mask_b, H: tl.constexpr, BK: tl.constexpr, G: tl.constexpr,
               OP_DTYPE: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr, a0, a1, a2, a3):
    """Every gate's ``h W_gate^T`` in one pass over K: each chunk of h is loaded once and feeds
    G independent dots (G accumulators), so the gates' latencies overlap instead of adding."""
    for k0 in tl.range(0, H, BK):
        ks = k0 + tl.arange(0, BK)
        hk = tl.load(h_base + rows_b[:, None] * H + ks[None, :], mask=mask_b[:, None], other=0.0,
                     cache_modifier=".cg").to(OP_DTYPE).to(DOT_DTYPE)
        w0 = tl.load(w_base + units[:, None] * H + ks[None, :]).to(OP_DTYPE).to(DOT_DTYPE)
        a0 = tl.dot(hk, tl.trans(w0), a0, input_precision=PRECISION)
        if G > 1:
            w1 = tl.load(w_base + (H + units)[:, None] * H + ks[None, :]).to(OP_DTYPE).to(DOT_DTYPE)
            w2 = tl.load(w_base + (2 * H + units)[:, None] * H + ks[None, :]).to(OP_DTYPE).to(DOT_DTYPE)
            a1 = tl.dot(hk, tl.trans(w1), a1, input_precision=PRECISION)
            a2 = tl.dot(hk, tl.trans(w2), a2, input_precision=PRECISION)
        if G > 3:
            w3 = tl.load(w_base + (3 * H + units)[:, None] * H + ks[None, :]).to(OP_DTYPE).to(DOT_DTYPE)
            a3 = tl.dot(hk, tl.trans(w3), a3, input_precision=PRECISION)
    return a0, a1, a2, a3


@triton.jit
def _resident_weights(w_base, first_unit, H: tl.constexpr, U: tl.constexpr, G: tl.constexpr, GP: tl.constexpr,
                      OP_DTYPE: tl.constexpr, DOT_DTYPE: tl.constexpr):
    """This program's rows of W_hh as one (GP*U, H) tile, gate-major (row ``k*U + j`` is gate k of
    unit ``units[j]``; slots k >= G are zero), loaded once before the time loop. As the first
    operand of the product Triton keeps it on chip for the whole sequence: in registers (bf16) or
    shared memory (fp32), read by the tensor cores each step (benchmarks/GPU_NOTES.md)."""
    r = tl.arange(0, GP * U)
    k = r // U
    rows = k * H + first_unit + r % U
    ks = tl.arange(0, H)
    w = tl.load(w_base + rows[:, None] * H + ks[None, :], mask=(k < G)[:, None], other=0.0)
    return w.to(OP_DTYPE).to(DOT_DTYPE)


@triton.jit
def _resident_gates(h_base, w_res, rows_b, mask_b, H: tl.constexpr, U: tl.constexpr, BB: tl.constexpr,
                    GP: tl.constexpr, OP_DTYPE: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr):
    """Every gate's ``h W_gate^T`` (BB, U) from the resident tile: one product
    ``W_tile (GP*U, H) @ h^T (H, BB)`` (only h moves each step), split back into gates."""
    ks = tl.arange(0, H)
    h_t = tl.load(h_base + rows_b[None, :] * H + ks[:, None], mask=mask_b[None, :], other=0.0,
                  cache_modifier=".cg").to(OP_DTYPE).to(DOT_DTYPE)  # (H, BB)
    acc = tl.trans(tl.dot(w_res, h_t, input_precision=PRECISION))  # (BB, GP*U)
    zero = tl.zeros((BB, U), dtype=tl.float32)
    a0 = zero
    a1 = zero
    a2 = zero
    a3 = zero
    if GP == 1:
        a0 = acc
    else:  # columns are [gate 0 | gate 1 | gate 2 | gate 3] x U: two halvings, no arithmetic
        q = tl.permute(tl.reshape(acc, (BB, 2, 2, U)), (0, 3, 1, 2))  # (BB, U, gate // 2, gate % 2)
        even, odd = tl.split(q)  # (BB, U, gate // 2): gates 0|2 and 1|3
        a0, a2 = tl.split(even)
        a1, a3 = tl.split(odd)
    return a0, a1, a2, a3


@triton.jit
def _resident_rows_t(w_base, first_unit, H: tl.constexpr, U: tl.constexpr, G: tl.constexpr, GP: tl.constexpr,
                     OP_DTYPE: tl.constexpr, DOT_DTYPE: tl.constexpr):
    """The backward pass's resident tile: the forward's (GP*U, H) rows of W_hh, transposed to
    (H, GP*U) (column ``k*U + j`` is row ``units[j]`` of gate k's block; slots k >= G zero), the
    first operand of this program's share of ``dh_{t-1}``, loaded once before the time loop.
    Loaded transposed from memory rather than as ``tl.trans`` of :func:`_resident_weights`' tile,
    so the compiler lays it out in shared memory as the product needs (K-major for tf32)."""
    r = tl.arange(0, GP * U)
    k = r // U
    rows = k * H + first_unit + r % U
    ks = tl.arange(0, H)
    w = tl.load(w_base + rows[None, :] * H + ks[:, None], mask=(k < G)[None, :], other=0.0)
    return w.to(OP_DTYPE).to(DOT_DTYPE)


@triton.jit
def _join_gates(y0, y1, y2, y3, BB: tl.constexpr, U: tl.constexpr, GP: tl.constexpr):
    """The inverse of :func:`_resident_gates`' split: G blocks (BB, U) side by side as one
    (BB, GP*U) tile, gate-major (column ``k*U + j``)."""
    if GP == 1:
        da = y0
    else:
        even = tl.join(y0, y2)  # (BB, U, gate // 2) for gates 0|2
        odd = tl.join(y1, y3)
        q = tl.join(even, odd)  # (BB, U, gate // 2, gate % 2)
        da = tl.reshape(tl.permute(q, (0, 2, 3, 1)), (BB, GP * U))
    return da


@triton.jit
def _scatter_dh(pt_ptr, w_rt, y0, y1, y2, y3, d, par, jpos, rows_b, mask_b, units, B, H: tl.constexpr,
                U: tl.constexpr, BB: tl.constexpr, GP: tl.constexpr, GROUP: tl.constexpr, NG: tl.constexpr,
                OP_DTYPE: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr, counter, target):
    """``dh_{t-1}[:, units]`` (BB, U) with W_hh resident (benchmarks/GPU_NOTES.md):
    this program's gates feed every unit of h_{t-1}, so it multiplies its own dA (BB, GP*U) by its
    own rows of W_hh — ``W_rows^T (H, GP*U) @ dA^T (GP*U, BB)``, no W traffic — and publishes that
    (H, BB) share in the area ``(D, 2, GROUP, B, H)``; after the barrier each program adds the
    GROUP shares of its own units, in the same order every run (no atomics: same bits each run)."""
    da = _join_gates(y0, y1, y2, y3, BB, U, GP)
    share = tl.dot(w_rt, tl.trans(da).to(OP_DTYPE).to(DOT_DTYPE), input_precision=PRECISION)  # (H, BB)
    ks = tl.arange(0, H)
    area = pt_ptr + (d * 2 + par) * GROUP * B * H
    tl.store(area + jpos * B * H + rows_b[None, :] * H + ks[:, None], share, mask=mask_b[None, :])
    _group_barrier(counter, target)
    mine = area + rows_b[:, None] * H + units[None, :]
    dh = tl.zeros((BB, U), dtype=tl.float32)
    for j in tl.static_range(GROUP):
        dh += tl.load(mine + j * B * H, mask=mask_b[:, None], other=0.0, cache_modifier=".cg")
    return dh


@triton.jit
def _saved_step(t, d, dout_ptr, gates_ptr, cs_ptr, out_ptr, h0_ptr, c0_ptr, state_off, rows_b, units, m2, B, TT,
                lengths, H: tl.constexpr, GH: tl.constexpr, BB: tl.constexpr, U: tl.constexpr,
                D: tl.constexpr, CELL: tl.constexpr, ZH: tl.constexpr, ZC: tl.constexpr, LN: tl.constexpr):
    """What backward step ``t`` reads from the forward's saved tensors, (BB, U) each: ``dout`` and
    LSTM ``i, f, o, g, c_{t-1}, c_t``; GRU ``r, z, n, h W_n^T + b_hn, h_{t-1}``; Elman the
    activation. The kernel loads them one step ahead, before the barrier, so their memory latency
    hides behind the wait instead of adding to each step. ``dout`` is the gradient of the layer's
    output, (T, B, D, H) in each row's own time order; the saved tensors are in the kernels'
    direction-major processing order."""
    off = ((d * TT + t) * B) * H + rows_b[:, None] * H + units[None, :]
    goff = ((d * TT + t) * B) * GH + rows_b[:, None] * GH + units[None, :]
    zero = tl.zeros((BB, U), dtype=tl.float32)
    dout = tl.load(dout_ptr + _natural_tile(_natural_step(t, d, lengths), rows_b, units, B, D, H, d), mask=m2,
                   other=0.0).to(tl.float32)  # (the layer's dtype: bf16 layers' gradients come as bf16)
    p0 = zero
    p1 = zero
    p2 = zero
    p3 = zero
    p4 = zero
    p5 = zero
    if CELL == 2:
        p0 = tl.load(gates_ptr + goff, mask=m2, other=0.0)
        p1 = tl.load(gates_ptr + goff + H, mask=m2, other=0.0)
        p2 = tl.load(gates_ptr + goff + 2 * H, mask=m2, other=0.0)
        p3 = tl.load(gates_ptr + goff + 3 * H, mask=m2, other=0.0)
        if t > 0:
            p4 = tl.load(cs_ptr + off - B * H, mask=m2, other=0.0)
        else:
            p4 = tl.load(c0_ptr + state_off, mask=m2, other=0.0)
        if not LN and ZC == 0:  # else the cell's own c_t is recomputed (zoneout) or normalised (saved)
            p5 = tl.load(cs_ptr + off, mask=m2, other=0.0)
    elif CELL == 3:
        p0 = tl.load(gates_ptr + goff, mask=m2, other=0.0)
        p1 = tl.load(gates_ptr + goff + H, mask=m2, other=0.0)
        p2 = tl.load(gates_ptr + goff + 2 * H, mask=m2, other=0.0)
        p3 = tl.load(cs_ptr + off, mask=m2, other=0.0)
        if t > 0:
            p4 = tl.load(out_ptr + off - B * H, mask=m2, other=0.0)
        else:
            p4 = tl.load(h0_ptr + state_off, mask=m2, other=0.0)
    else:
        if ZH != 0:
            p0 = tl.load(gates_ptr + goff, mask=m2, other=0.0)
        else:
            p0 = tl.load(out_ptr + off, mask=m2, other=0.0)
    return dout, p0, p1, p2, p3, p4, p5


@triton.jit
def _zone(new, old, k_ptr, off, m2, rate, Z: tl.constexpr):
    """Zoneout of one state: with 0/1 masks (Z=1; 1 keeps ``old``, exactly), the expectation
    ``new + rate (old - new)`` (Z=2, evaluation), or nothing (Z=0)."""
    res = new
    if Z == 1:
        keep = tl.load(k_ptr + off, mask=m2, other=0.0).to(tl.float32)
        res = tl.where(keep != 0.0, old, new)
    if Z == 2:
        res = new + rate * (old - new)
    return res


@triton.jit
def _keep_factor(k_ptr, off, m2, rate, Z: tl.constexpr, BB: tl.constexpr, U: tl.constexpr):
    """d(zoned state)/d(previous state) of :func:`_zone`: the mask, the rate, or 0."""
    k = tl.zeros((BB, U), dtype=tl.float32)
    if Z == 1:
        k = tl.load(k_ptr + off, mask=m2, other=0.0).to(tl.float32)
    if Z == 2:
        k = k + rate
    return k


@triton.jit
def _group_gather(st_ptr, slot: tl.constexpr, v1, v2, d, rows_b, mask_b, B, jpos, GROUP: tl.constexpr,
                  NG: tl.constexpr, counter, target):
    """Exchange two per-row values (BB,) across the group: each program writes its own to its
    place in the area ``(D, B, GROUP, 4)``, meets the others at the barrier, and reads everyone's
    back as (BB, NG) tiles (0 beyond GROUP), with their mask."""
    row = (d * B + rows_b) * GROUP
    tl.store(st_ptr + (row + jpos) * 4 + slot, v1, mask=mask_b)
    tl.store(st_ptr + (row + jpos) * 4 + slot + 1, v2, mask=mask_b)
    _group_barrier(counter, target)
    js = tl.arange(0, NG)
    p = st_ptr + (row[:, None] + js[None, :]) * 4 + slot
    m = mask_b[:, None] & (js[None, :] < GROUP)
    q1 = tl.load(p, mask=m, other=0.0, cache_modifier=".cg")
    q2 = tl.load(p + 1, mask=m, other=0.0, cache_modifier=".cg")
    return q1, q2, m


@triton.jit
def _group_sums(st_ptr, slot: tl.constexpr, s1, s2, d, rows_b, mask_b, B, jpos, GROUP: tl.constexpr,
                NG: tl.constexpr, counter, target):
    """Two row sums over the whole group from each program's partial sums, added in the same
    order everywhere (so every program gets the same bits)."""
    q1, q2, m = _group_gather(st_ptr, slot, s1, s2, d, rows_b, mask_b, B, jpos, GROUP, NG, counter, target)
    return tl.sum(q1, axis=1), tl.sum(q2, axis=1)


@triton.jit
def _group_moments(st_ptr, slot: tl.constexpr, mean_j, m2_j, n_j, n_all, d, rows_b, mask_b, B, jpos,
                   GROUP: tl.constexpr, NG: tl.constexpr, counter, target):
    """Mean and 1/sqrt(var + 1e-5) per row over the group, merged from each program's mean and
    sum of squared deviations over its ``n_j`` values (Chan et al.'s merge: no cancellation)."""
    q1, q2, m = _group_gather(st_ptr, slot, mean_j, m2_j, d, rows_b, mask_b, B, jpos, GROUP, NG, counter, target)
    mean = tl.sum(q1, axis=1) / GROUP
    dev = tl.where(m, q1 - mean[:, None], 0.0)
    var = (tl.sum(q2, axis=1) + n_j * tl.sum(dev * dev, axis=1)) / n_all
    return mean, 1.0 / tl.sqrt(var + 1e-5)


@triton.jit
def _local_moments(a0, a1, a2, a3, G: tl.constexpr, U: tl.constexpr):
    """Mean and sum of squared deviations per row over this program's G x U values."""
    s = tl.sum(a0, axis=1)
    if G > 1:
        s += tl.sum(a1, axis=1) + tl.sum(a2, axis=1)
    if G > 3:
        s += tl.sum(a3, axis=1)
    mean = s / (G * U)
    e = a0 - mean[:, None]
    m2 = tl.sum(e * e, axis=1)
    if G > 1:
        e = a1 - mean[:, None]
        m2 += tl.sum(e * e, axis=1)
        e = a2 - mean[:, None]
        m2 += tl.sum(e * e, axis=1)
    if G > 3:
        e = a3 - mean[:, None]
        m2 += tl.sum(e * e, axis=1)
    return mean, m2


@triton.jit
def _normalise(a, mean, rstd, gain_ptr, xh_ptr, m2, SAVE: tl.constexpr):
    """``(a - mean) / std * gain`` of one gate block (BB, U); saves the normalised values."""
    xh = (a - mean[:, None]) * rstd[:, None]
    if SAVE:
        tl.store(xh_ptr, xh, mask=m2)
    return xh * tl.load(gain_ptr).to(tl.float32)[None, :]


@triton.jit
def _gained(dy, gain_ptr, xh_ptr, m2):
    """Layer-norm backward, first half for one gate block: ``dy * gain`` and the saved ``x̂``."""
    return dy * tl.load(gain_ptr).to(tl.float32)[None, :], tl.load(xh_ptr, mask=m2, other=0.0)
