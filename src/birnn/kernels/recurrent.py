"""A persistent Triton kernel that runs one recurrent layer — both directions, all time steps,
per-sequence lengths — in a single launch.

Symbols: ``T`` steps, ``D`` directions, ``B`` batch, ``H`` hidden size, ``G`` gates
(RNN 1, LSTM 4 in the step order ``[i|f|o|g]``, GRU 3 ``[r|z|n]``). Per-step tensors the kernels
write or save are stored direction-major, (D, T, ...), and handed out as (T, D, ...) views: each
direction's (T*B, features) is then one matrix for the weight gradient (benchmarks/GPU_NOTES.md);
xs and dout are read through their own strides.

Work split: program ``(d, batch tile, unit block)`` owns ``U`` hidden units of direction ``d``
for ``BB`` sequences. Each step it reads the whole previous ``h`` of its direction and batch
tile (``BB x H``, from a double-buffered global exchange area), multiplies it with the rows of
``W_hh`` that feed its units — streamed from L2 in K chunks (``kernel="stream"``), or held on
chip for the whole sequence as one (64, H) tile, the first operand of ``W_tile @ h^T``
(``kernel="resident"``) — adds the precomputed input projections, runs
the cell, keeps ``c`` in registers, publishes its slice of the new ``h``, and meets the other
programs of its group at a barrier (one atomic counter per group, release/acquire at GPU
scope). The grid never exceeds what the GPU runs at once, so the barrier cannot deadlock.

The backward pass walks the steps in reverse with the same split. Streaming, each program
publishes its gates' ``dA`` and, after the barrier, reads all of it with the columns of ``W_hh``
that its units' ``dh`` needs. Resident, each program multiplies its own ``dA`` by its own rows of
``W_hh`` (the forward's tile, held on chip) into a share of ``dh`` for every unit, publishes the
share, and after the barrier adds the group's shares for its units in a fixed order.

The inputs come prepared exactly as the reference loop consumes them (``birnn.recurrence``):
the backward direction already reversed within each sequence's real part, so both directions
stop at the same step; at steps ``t >= lengths[b]`` the state is kept and the output is 0.

Regularisers (:class:`StepExtras`, masks sampled by the caller): recurrent dropout multiplies
the ``h`` a program publishes (what ``W_hh`` reads; the cell keeps the unmasked state);
zoneout picks the old state where its 0/1 mask is 1 (or mixes by the rate in evaluation);
layer norm needs row statistics over all ``G*H`` gate units (and the LSTM's ``H`` cell units),
which no program holds alone: each program exchanges its rows' mean and sum of squared
deviations through a small area and one more barrier, and every program merges them in the
same order. The backward pass reduces its two norm sums the same way.

Under ``TRITON_INTERPRET=1`` (CPU) programs run one after another, so the launcher uses one
program per group there (a group of one never waits); the tests also run the GPU's grid plan on
CPU with every program in its own thread (tests/threaded_grid.py).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import (BARRIERS, KERNELS, current, default_kernel, hardware, kernel_plan, offsets_fit, plan_grid, plan_resident,
               supported_hidden)

__all__ = ["CELL_CODES", "KERNELS", "Backward", "Forward", "StepExtras", "default_kernel", "layer_backward",
           "layer_forward", "plan_grid", "plan_resident", "supported_hidden"]

CELL_CODES = {"RNN_TANH": 0, "RNN_RELU": 1, "LSTM": 2, "GRU": 3}
_GATES = {0: 1, 1: 1, 2: 4, 3: 3}


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
def _arrive_release(counter):
    """Thread 0 adds 1 to the group's counter with release semantics at GPU scope, without waiting
    for the old value (``red``, not ``atom``): the program's stores become visible first."""
    return tl.inline_asm_elementwise(
        "{ .reg .pred %p; .reg .u32 %t; mov.u32 %t, %tid.x; setp.eq.u32 %p, %t, 0; "
        "@%p red.release.gpu.global.add.s32 [$1], 1; mov.u32 $0, 0; }",
        "=r,l", [counter], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _load_acquire(counter):
    """The counter, read with acquire semantics at GPU scope: a load, not a read-modify-write, so
    spinning on it does not serialise at L2, and seeing the target needs no further fence."""
    return tl.inline_asm_elementwise("ld.acquire.gpu.global.u32 $0, [$1];", "=r,l", [counter], dtype=tl.int32,
                                     is_pure=False, pack=1)


@triton.jit
def _group_barrier(counter, target, SYNC: tl.constexpr):
    """Arrive and wait until ``target`` arrivals. SYNC=0 (Triton's atomics; the interpreter's and
    the timed default): arrive with an atomic add (release), spin on volatile loads, then one
    acquire read-modify-write. SYNC=1 (PTX): arrive with ``red.release`` from one
    thread and spin on ``ld.acquire`` — one L2 round trip fewer per barrier."""
    tl.debug_barrier()  # the whole program has stored its slice
    if SYNC == 1:
        _arrive_release(counter)
        seen = _load_acquire(counter)
        while seen < target:
            seen = _load_acquire(counter)
    else:
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
                OP_DTYPE: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr, counter, target,
                SYNC: tl.constexpr):
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
    _group_barrier(counter, target, SYNC)
    mine = area + rows_b[:, None] * H + units[None, :]
    dh = tl.zeros((BB, U), dtype=tl.float32)
    for j in tl.static_range(GROUP):
        dh += tl.load(mine + j * B * H, mask=mask_b[:, None], other=0.0, cache_modifier=".cg")
    return dh


@triton.jit
def _saved_step(t, d, dout_ptr, gates_ptr, cs_ptr, out_ptr, h0_ptr, c0_ptr, state_off, rows_b, units, m2, B, TT,
                o_st, o_sd, lengths, H: tl.constexpr, GH: tl.constexpr, BB: tl.constexpr, U: tl.constexpr,
                D: tl.constexpr, CELL: tl.constexpr, ZH: tl.constexpr, ZC: tl.constexpr, LN: tl.constexpr,
                NATURAL: tl.constexpr):
    """What backward step ``t`` reads from the forward's saved tensors, (BB, U) each: ``dout`` and
    LSTM ``i, f, o, g, c_{t-1}, c_t``; GRU ``r, z, n, h W_n^T + b_hn, h_{t-1}``; Elman the
    activation. The kernel loads them one step ahead, before the barrier, so their memory latency
    hides behind the wait instead of adding to each step. ``dout`` has its own
    strides (``o_st`` per step, ``o_sd`` per direction), the saved tensors the kernels' layout;
    with ``NATURAL`` it is (T, B, D, H), read in each row's own time order."""
    off = ((d * TT + t) * B) * H + rows_b[:, None] * H + units[None, :]
    goff = ((d * TT + t) * B) * GH + rows_b[:, None] * GH + units[None, :]
    zero = tl.zeros((BB, U), dtype=tl.float32)
    if NATURAL:
        dout = tl.load(dout_ptr + _natural_tile(_natural_step(t, d, lengths), rows_b, units, B, D, H, d), mask=m2,
                       other=0.0).to(tl.float32)  # (the layer's dtype: bf16 layers' gradients come as bf16)
    else:
        dout = tl.load(dout_ptr + off + (d * (o_sd - TT * B * H) + t * (o_st - B * H)), mask=m2, other=0.0)
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
                  NG: tl.constexpr, counter, target, SYNC: tl.constexpr):
    """Exchange two per-row values (BB,) across the group: each program writes its own to its
    place in the area ``(D, B, GROUP, 4)``, meets the others at the barrier, and reads everyone's
    back as (BB, NG) tiles (0 beyond GROUP), with their mask."""
    row = (d * B + rows_b) * GROUP
    tl.store(st_ptr + (row + jpos) * 4 + slot, v1, mask=mask_b)
    tl.store(st_ptr + (row + jpos) * 4 + slot + 1, v2, mask=mask_b)
    _group_barrier(counter, target, SYNC)
    js = tl.arange(0, NG)
    p = st_ptr + (row[:, None] + js[None, :]) * 4 + slot
    m = mask_b[:, None] & (js[None, :] < GROUP)
    q1 = tl.load(p, mask=m, other=0.0, cache_modifier=".cg")
    q2 = tl.load(p + 1, mask=m, other=0.0, cache_modifier=".cg")
    return q1, q2, m


@triton.jit
def _group_sums(st_ptr, slot: tl.constexpr, s1, s2, d, rows_b, mask_b, B, jpos, GROUP: tl.constexpr,
                NG: tl.constexpr, counter, target, SYNC: tl.constexpr):
    """Two row sums over the whole group from each program's partial sums, added in the same
    order everywhere (so every program gets the same bits)."""
    q1, q2, m = _group_gather(st_ptr, slot, s1, s2, d, rows_b, mask_b, B, jpos, GROUP, NG, counter, target, SYNC)
    return tl.sum(q1, axis=1), tl.sum(q2, axis=1)


@triton.jit
def _group_moments(st_ptr, slot: tl.constexpr, mean_j, m2_j, n_j, n_all, d, rows_b, mask_b, B, jpos,
                   GROUP: tl.constexpr, NG: tl.constexpr, counter, target, SYNC: tl.constexpr):
    """Mean and 1/sqrt(var + 1e-5) per row over the group, merged from each program's mean and
    sum of squared deviations over its ``n_j`` values (Chan et al.'s merge: no cancellation)."""
    q1, q2, m = _group_gather(st_ptr, slot, mean_j, m2_j, d, rows_b, mask_b, B, jpos, GROUP, NG, counter, target, SYNC)
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


@triton.jit
def _recurrent_layer_kernel(
    xg_ptr,  # (T, D, B, G*H) input projections (biases folded in; GRU: b_ih only), strides x_st, x_sd;
             # NATURAL: (T, B, D, G*H) in each row's own time order (the layer's input projection as it is)
    w_ptr,  # (D, G*H, H) W_hh, gate blocks in step order
    bhh_ptr,  # (D, G*H) GRU hidden bias (unused otherwise)
    h0_ptr, c0_ptr,  # (D, B, H)
    len_ptr,  # (B,) int32
    y_ptr,  # NATURAL: (T, B, D, H) the layer's output (its dtype), each row in its own time order, 0 at padded steps
    out_ptr,  # (D, T, B, H) outputs in processing order, 0 at padded steps (NATURAL: only when SAVE)
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
    xh_ptr,  # (D, T, B, G*H) normalised recurrent pre-activations (LN and SAVE); NATURAL: (T, B, D, G*H)
    ch_ptr,  # (D, T, B, H) normalised LSTM cell (LN and SAVE)
    rs_ptr,  # (D, T, B, 2) 1/std of both norms (LN and SAVE)
    steps, TT, B, x_st, x_sd,  # steps run, the buffers' T, the batch; xg's strides per step and direction
    H: tl.constexpr, U: tl.constexpr, BB: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr, NG: tl.constexpr,
    NBT: tl.constexpr, D: tl.constexpr, CELL: tl.constexpr, G: tl.constexpr, SAVE: tl.constexpr,
    DROP: tl.constexpr, ZH: tl.constexpr, ZC: tl.constexpr, LN: tl.constexpr, FOLD: tl.constexpr,
    RESIDENT: tl.constexpr, GP: tl.constexpr, SYNC: tl.constexpr, NATURAL: tl.constexpr,
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
        if NATURAL:  # xs, xhat and y in the layer's (T, B, D, ·) layout, each row at its own time
            xo = _natural_tile(_natural_step(t, d, lengths), rows_b, units, B, D, GH, d)
            xio = xo
        else:
            xio = ((d * TT + t) * B) * GH + rows_b[:, None] * GH + units[None, :]  # stored (D, T, B, G*H)
            xo = xio + (d * (x_sd - TT * B * GH) + t * (x_st - B * GH))  # xs's strides: the same tile, moved
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
                                            counter, nb * GROUP, SYNC)
                if SAVE:
                    tl.store(rs_ptr + ((d * TT + t) * B + rows_b) * 2, rstd, mask=mask_b)
                gain = lnh_ptr + d * GH + units
                a0 = _normalise(a0, mean, rstd, gain, xh_ptr + xio, m2, SAVE)
                if G > 1:
                    a1 = _normalise(a1, mean, rstd, gain + H, xh_ptr + xio + H, m2, SAVE)
                    a2 = _normalise(a2, mean, rstd, gain + 2 * H, xh_ptr + xio + 2 * H, m2, SAVE)
                if G > 3:
                    a3 = _normalise(a3, mean, rstd, gain + 3 * H, xh_ptr + xio + 3 * H, m2, SAVE)
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
                                                counter, nb * GROUP, SYNC)
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
        if NATURAL:
            tl.store(y_ptr + _natural_tile(_natural_step(t, d, lengths), rows_b, units, B, D, H, d), h_out, mask=m2)
            if SAVE and CELL != 2:  # the GRU's and Elman backward read the states in processing order
                tl.store(out_ptr + so, h_out, mask=m2)
        else:
            tl.store(out_ptr + so, h_out, mask=m2)
        tl.store(hx_ptr + (d * 2 + 1 - par) * B * H + rows_b[:, None] * H + units[None, :],
                 (h_own * dmask).to(hx_ptr.dtype.element_ty), mask=m2)
        # the group's barrier: every unit block has published step t before anyone reads it
        nb += 1
        _group_barrier(counter, nb * GROUP, SYNC)
        t += 1
    tl.store(hn_ptr + state_off, h_own, mask=m2)
    if CELL == 2:
        tl.store(cn_ptr + state_off, c, mask=m2)


@triton.jit
def _recurrent_layer_backward_kernel(
    w_ptr,  # (D, G*H, H)
    out_ptr,  # (D, T, B, H) forward outputs (h_t at real steps)
    h0_ptr, c0_ptr,  # (D, B, H)
    cs_ptr,  # (D, T, B, H) LSTM: c_t; GRU: h W_n^T + b_hn
    gates_ptr,  # (D, T, B, G*H) gate activations (Elman with zoneout: the state before zoneout)
    len_ptr,
    dout_ptr,  # (T, D, B, H), strides o_st, o_sd; NATURAL: (T, B, D, H) in each row's own time order
    dhn_ptr, dcn_ptr,  # (D, B, H)
    dx_ptr,  # (D, T, B, G*H) gradient of the input projections (bf16 layers: bf16, _gradient_dtype);
             # NATURAL: (T, B, D, G*H), as dy, draw and xh
    dy_ptr,  # (D, T, B, G*H) gradient of the hidden pre-activations after the norm (GRU only; else dx)
    draw_ptr,  # (D, T, B, G*H) gradient of h W_hh^T before the norm (LN only; else dy)
    dyc_ptr,  # (D, T, B, H) gradient of the normalised cell's affine output (LN, LSTM)
    ex_ptr,  # (D, 2, B, G*H) exchange area of dA (streaming); (D, 2, GROUP, B, H) shares of dh (RESIDENT)
    dh0_ptr, dc0_ptr,  # (D, B, H)
    bar_ptr,
    drop_ptr, kh_ptr, kc_ptr, rate_h, rate_c, lnh_ptr, lncw_ptr, lncb_ptr, st_ptr, xh_ptr, ch_ptr, rs_ptr,
    steps, TT, B, o_st, o_sd,
    H: tl.constexpr, U: tl.constexpr, BB: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr, NG: tl.constexpr,
    NBT: tl.constexpr, D: tl.constexpr, CELL: tl.constexpr, G: tl.constexpr,
    DROP: tl.constexpr, ZH: tl.constexpr, ZC: tl.constexpr, LN: tl.constexpr,
    RESIDENT: tl.constexpr, GP: tl.constexpr, PREFETCH: tl.constexpr, SYNC: tl.constexpr, NATURAL: tl.constexpr,
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
                      B, TT, o_st, o_sd, lengths, H, GH, BB, U, D, CELL, ZH, ZC, LN, NATURAL)
    while k < steps:
        t = steps - 1 - k
        par = k % 2
        if not PREFETCH:  # (prefetch off: loaded here, after the barrier, for timing it)
            pre = _saved_step(t, d, dout_ptr, gates_ptr, cs_ptr, out_ptr, h0_ptr, c0_ptr, state_off, rows_b, units, m2,
                              B, TT, o_st, o_sd, lengths, H, GH, BB, U, D, CELL, ZH, ZC, LN, NATURAL)
        dout_t, p0, p1, p2, p3, p4, p5 = pre
        valid = (t < lengths)[:, None]
        off = ((d * TT + t) * B) * H + rows_b[:, None] * H + units[None, :]
        if NATURAL:  # dx, dy, draw and xh in the layer's (T, B, D, G*H) layout, each row at its own time
            goff = _natural_tile(_natural_step(t, d, lengths), rows_b, units, B, D, GH, d)
        else:
            goff = ((d * TT + t) * B) * GH + rows_b[:, None] * GH + units[None, :]
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
                                     B, jpos, GROUP, NG, counter, nb * GROUP, SYNC)
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
            t1, t2 = _group_sums(st_ptr, 0, s1, s2, d, rows_b, mask_b, B, jpos, GROUP, NG, counter, nb * GROUP, SYNC)
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
        if PREFETCH:
            pre = _saved_step(tl.maximum(t - 1, 0), d, dout_ptr, gates_ptr, cs_ptr, out_ptr, h0_ptr, c0_ptr, state_off,
                              rows_b, units, m2, B, TT, o_st, o_sd, lengths, H, GH, BB, U, D, CELL, ZH, ZC, LN, NATURAL)
        nb += 1
        if RESIDENT:
            acc = _scatter_dh(ex_ptr, w_rt, y0, y1, y2, y3, d, par, jpos, rows_b, mask_b, units, B, H, U, BB, GP, GROUP,
                              NG, OP_DTYPE, DOT_DTYPE, PRECISION, counter, nb * GROUP, SYNC)
        else:
            e_off = ((d * 2 + par) * B) * GH + rows_b[:, None] * GH + units[None, :]
            ex_ty = ex_ptr.dtype.element_ty  # the product's operand type (bf16 layers: bf16)
            tl.store(ex_ptr + e_off, y0.to(ex_ty), mask=m2)
            if G > 1:
                tl.store(ex_ptr + e_off + H, y1.to(ex_ty), mask=m2)
                tl.store(ex_ptr + e_off + 2 * H, y2.to(ex_ty), mask=m2)
            if G > 3:
                tl.store(ex_ptr + e_off + 3 * H, y3.to(ex_ty), mask=m2)
            _group_barrier(counter, nb * GROUP, SYNC)
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


def _launch(kernel, grid, args, BK: int, **meta):
    """Launch, narrowing the K chunk when a configuration needs more shared memory than the GPU has."""
    while True:
        try:
            return kernel[grid](*args, BK=BK, **meta)
        except triton.runtime.errors.OutOfResources:
            if BK <= 16:
                raise
            BK //= 2


class StepExtras(NamedTuple):
    """What the fused step adds to the plain cell, as :mod:`birnn.cells` and
    :func:`birnn.recurrence.scan` define it; masks are sampled by the caller, so the kernel and
    the reference loop give the same numbers for the same masks. Every field is optional."""

    drop: Optional[Tensor] = None  # (D, B, H) recurrent dropout mask, scaled; multiplies h before W_hh
    keep_h: Optional[Tensor] = None  # (T, D, B, H) zoneout masks of h (1 keeps h_{t-1}), in processing order
    keep_c: Optional[Tensor] = None  # (T, D, B, H) the same for the LSTM cell
    rate_h: float = 0.0  # zoneout rates, used (as the expectation) where the masks are None
    rate_c: float = 0.0
    ln_h: Optional[Tensor] = None  # (D, G*H) gain of the recurrent pre-activation's layer norm
    ln_c: Optional[Tuple[Tensor, Tensor]] = None  # LSTM: gain and bias (D, H) of the cell's layer norm

    def codes(self) -> dict:
        """The kernels' compile-time switches."""
        def zone(mask, rate):
            return 1 if mask is not None else (2 if rate > 0 else 0)
        return dict(DROP=self.drop is not None, ZH=zone(self.keep_h, self.rate_h), ZC=zone(self.keep_c, self.rate_c),
                    LN=self.ln_h is not None)

    def pointers(self, dummy: Tensor, T: int) -> list:
        """The kernels' extra arguments (``dummy`` where a feature is off); the zoneout masks'
        first ``T`` steps, stored direction-major as the kernels' other per-step tensors."""
        def t(x):
            return dummy if x is None else x.contiguous()

        def per_step(x):
            return dummy if x is None else _direction_major(x[:T])
        ln_c = self.ln_c if self.ln_c is not None else (None, None)
        return [t(self.drop), per_step(self.keep_h), per_step(self.keep_c), float(self.rate_h), float(self.rate_c),
                t(self.ln_h), t(ln_c[0]), t(ln_c[1])]


def _direction_major(x: Tensor) -> Tensor:
    """A (T, D, ...) tensor's (D, T, ...) contiguous storage, the kernels' layout for every per-step
    tensor: each direction's steps are one block, so a direction's (T*B, features) is a matrix the
    large matmuls read without a copy. No copy when ``x`` is already such a view."""
    return x.transpose(0, 1).contiguous()


def _dense_blocks(x: Tensor) -> Tensor:
    """``x`` (T, D, B, F) as the kernels read xs and dout: any step and direction strides, each
    (B, F) block dense (copied only where it is not)."""
    return x if x.stride(3) == 1 and x.stride(2) == x.shape[3] else x.contiguous()


def _time_major(x: Tensor) -> Tensor:
    """The (T, D, ...) view of (D, T, ...) storage."""
    return x.transpose(0, 1)


class Forward(NamedTuple):
    """:func:`layer_forward`'s results; the saved tensors are None unless ``save`` (and the feature)
    asks. The per-step tensors are (T, D, ...) views of direction-major (D, T, ...) storage, in
    processing order (the backward direction's step t is its row's real step ``len-1-t``), but
    for ``y`` and, with ``natural``, ``xhat``: (T, B, D, ...) in each row's own time order."""

    out: Optional[Tensor]  # (T, D, B, H); with ``natural`` only when ``save``, and not for the LSTM (unread)
    hn: Tensor  # (D, B, H)
    cn: Optional[Tensor]  # (D, B, H), LSTM
    cs: Optional[Tensor]  # (T, D, B, H) LSTM cell states / GRU h W_n^T + b_hn
    gates: Optional[Tensor]  # (T, D, B, G*H) gate activations
    xhat: Optional[Tensor] = None  # (T, D, B, G*H) normalised recurrent pre-activations (layer norm)
    chat: Optional[Tensor] = None  # (T, D, B, H) normalised LSTM cells (layer norm)
    rstd: Optional[Tensor] = None  # (T, D, B, 2) 1/std of both norms (layer norm)
    y: Optional[Tensor] = None  # (T, B, D*H) with ``natural``: the layer's output as torch.nn lays it out (:func:`_output_dtype`)


def _dot_types(dtype: torch.dtype, precision: str) -> dict:
    """How the recurrent products run: operands rounded to ``OP_DTYPE`` (bfloat16 for bfloat16
    layers), multiplied as ``DOT_DTYPE``. Triton's interpreter cannot multiply bfloat16 (numpy has
    no such type), so there the rounded operands multiply in float32 — exact products, as the
    tensor cores', accumulated in float32."""
    if dtype != torch.bfloat16:
        return dict(OP_DTYPE=tl.float32, DOT_DTYPE=tl.float32, PRECISION=precision)
    if hardware.interpreting():
        return dict(OP_DTYPE=tl.bfloat16, DOT_DTYPE=tl.float32, PRECISION="ieee")
    return dict(OP_DTYPE=tl.bfloat16, DOT_DTYPE=tl.bfloat16, PRECISION="tf32")


def _exchange_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of what programs exchange for a product each step (h in the forward, dA in the
    streaming backward): those values only feed the recurrent product, whose operands are rounded
    to the layer's dtype anyway, so a bfloat16 layer exchanges them as bfloat16 — the same numbers
    in half the bytes (benchmarks/GPU_NOTES.md)."""
    return torch.bfloat16 if dtype == torch.bfloat16 else torch.float32


def _output_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the layer's output y and of its gradient at the kernels' natural boundary:
    the layer's own for bfloat16 layers — the kernel rounds y as the layer would (to nearest
    even) instead of writing float32 for PyTorch to convert, and reads the gradient as autograd
    hands it over (benchmarks/GPU_NOTES.md); float32 otherwise."""
    return torch.bfloat16 if dtype == torch.bfloat16 else torch.float32


def _gradient_dtype(dtype: torch.dtype, mode: str, ln: bool) -> torch.dtype:
    """The dtype the backward kernel writes dx in: a bfloat16 layer's dx feeds only bfloat16
    products (the projection's backward; as dW_hh's operand too where dx is draw: the LSTM's and
    the Elman RNN's without layer norm), which would round it to bfloat16 anyway, so it is written
    as bfloat16 — the same bits in half the bytes, and no conversion after (benchmarks/GPU_NOTES.md).
    Where dx is also what the norm's gain gradient sums (layer norm, but for the GRU, whose dy is
    separate), it stays float32."""
    return torch.bfloat16 if dtype == torch.bfloat16 and (mode == "GRU" or not ln) else torch.float32


def _sync_code(barrier: Optional[str]) -> int:
    """The kernels' SYNC switch: ``barrier`` or :func:`birnn.kernels.current`'s (``atomic``, the
    timed default, or ``ptx``: red.release + ld.acquire spin). The interpreter cannot run inline
    PTX, so it always takes Triton's atomics."""
    kind = barrier if barrier is not None else current().barrier
    if kind not in BARRIERS:
        raise ValueError(f"barrier must be one of {BARRIERS}, got {kind!r}")
    return 1 if kind == "ptx" and not hardware.interpreting() else 0


def _written(shape: Tuple[int, ...], *, zero: bool = False, **kw) -> Tensor:
    """A buffer the kernels write, every element the caller reads (``zero``: one that starts at
    zero, parts of which only some cells write). The one place such buffers are allocated, so the
    kernel tests can have them start as NaN and see that nothing is left unwritten."""
    return torch.zeros(shape, **kw) if zero else torch.empty(shape, **kw)


def _geometry(plan: Tuple[int, int, int, int]) -> dict:
    U, BB, nbt, group = plan
    return dict(U=U, BB=BB, NBT=nbt, GROUP=group, NG=max(2, triton.next_power_of_2(group)))


def layer_forward(mode: str, xs: Tensor, w_hh: Tensor, b_hh: Optional[Tensor], h0: Tensor, c0: Optional[Tensor],
                  lengths: Tensor, steps: int, *, save: bool = False, precision: str = "tf32",
                  extras: StepExtras = StepExtras(), kernel: Optional[str] = None, num_warps: Optional[int] = None,
                  barrier: Optional[str] = None, natural: bool = False) -> Forward:
    """Run one layer. ``xs`` (T, D, B, G*H) in processing order — or, with ``natural``, the
    layer's input projections as they are, (T, B, D, G*H) contiguous in each row's own time
    order, and the kernel reads the backward direction's steps reversed within each row and
    writes ``y`` (T, B, D*H) likewise —, ``w_hh`` (D, G*H, H) in step order, ``h0``/``c0``
    (D, B, H), ``lengths`` (B,) (the number of real steps, any device), ``extras`` the fused
    regularisers, ``kernel`` how W_hh is read (``"stream"`` from L2 each step, ``"resident"``
    on chip; None: :func:`default_kernel`), ``barrier`` how programs meet (``"atomic"`` or
    ``"ptx"``; None: :func:`birnn.kernels.current`'s, see :func:`_sync_code`). Returns ``out``
    (T, D, B, H), ``h_n``, ``c_n`` (D, B, H), and with ``save`` what the backward pass needs
    (every buffer it writes comes from :func:`_written`)."""
    if natural:
        T, B, D, GH = xs.shape
        xs = xs.contiguous()
    else:
        T, D, B, GH = xs.shape
        xs = _dense_blocks(xs)
    H = w_hh.shape[-1]
    cell = CELL_CODES[mode]
    G = _GATES[cell]
    if GH != G * H or not supported_hidden(H):
        raise ValueError(f"the fused kernel needs H a power of two >= 16 or a multiple of 64, and xs (..., {G}*H); "
                         f"got H={H}, G*H={GH}")
    too_big = offsets_fit(mode, T, B, D, H)
    if too_big is not None:
        raise ValueError(too_big)
    dev = xs.device
    resident, plan = kernel_plan(kernel, mode, H, B, D, xs.dtype == torch.bfloat16, hardware.multiprocessors(dev))
    geo = _geometry(plan)
    codes = extras.codes()
    BK = 128 if H % 128 == 0 else min(64, H)
    f32 = dict(device=dev, dtype=torch.float32)
    y = _written((T, B, D, H), device=dev, dtype=_output_dtype(xs.dtype)) if natural else None
    # per-step tensors direction-major (:func:`_direction_major`), in processing order; with ``natural``
    # the outputs in that order only for the GRU's and the Elman RNN's backward (the LSTM's reads c)
    out = _written((D, T, B, H), **f32) if not natural or (save and mode != "LSTM") else y
    hx = torch.zeros(D, 2, B, H, device=dev, dtype=_exchange_dtype(xs.dtype))
    hx[:, 0] = h0 if extras.drop is None else h0 * extras.drop
    hn = _written((D, B, H), **f32)
    cn = _written((D, B, H), **f32) if mode == "LSTM" else hn
    keeps = save and (G > 1 or codes["ZH"] != 0)  # the Elman backward needs only the outputs, unless zoneout
    cs = _written((D, T, B, H), **f32) if keeps and G > 1 else out  # (the Elman RNN has no second state)
    gates = _written((D, T, B, GH), **f32) if keeps else out
    ln = codes["LN"]
    st = torch.zeros(D, B, geo["GROUP"], 4, **f32) if ln else out
    xhat = _written((T, B, D, GH) if natural else (D, T, B, GH), **f32) if ln and save else out
    chat = _written((D, T, B, H), **f32) if ln and save and mode == "LSTM" else out
    rstd = _written((D, T, B, 2), zero=True, **f32) if ln and save else out  # (slot 1, the cell norm's, stays 0 but for LSTMs)
    if natural:  # steps >= ``steps`` are every row's padding (the kernel runs the first ``steps``)
        y[steps:] = 0.0
    bar = torch.zeros(D * geo["NBT"], device=dev, dtype=torch.int32)
    lens = lengths.to(device=dev, dtype=torch.int32)
    grid = (D * geo["NBT"] * geo["GROUP"],)
    _launch(_recurrent_layer_kernel, grid, (
        xs, w_hh.contiguous(), (b_hh if b_hh is not None else hn).contiguous(), h0.contiguous(),
        (c0 if c0 is not None else h0).contiguous(), lens, y if natural else out, out, hx, hn, cn, cs, gates, bar,
        *extras.pointers(out, T), st, xhat, chat, rstd, steps, T, B, xs.stride(0), xs.stride(1)), BK,
        H=H, **geo, D=D, CELL=cell, G=G, SAVE=save, FOLD=not (ln or resident) and mode != "GRU", **codes,
        RESIDENT=resident, GP=4 if G > 1 else 1, SYNC=_sync_code(barrier), NATURAL=natural,
        **_dot_types(xs.dtype, precision), num_warps=num_warps or current().num_warps or 4)
    saved = (lambda x: _time_major(x) if save and x is not out else None)
    return Forward(None if out is y else _time_major(out), hn, (cn if mode == "LSTM" else None), saved(cs),
                   saved(gates), (xhat if natural and save and ln else saved(xhat)), saved(chat), saved(rstd),
                   None if y is None else y.view(T, B, D * H))


class Backward(NamedTuple):
    """:func:`layer_backward`'s results; the per-step tensors are (T, D, ...) views of
    direction-major storage, as :class:`Forward`'s — but ``dx``, ``dy`` and ``draw`` with
    ``natural``: (T, B, D, G*H) in each row's own time order."""

    dx: Tensor  # (T, D, B, G*H) gradient of the input projections (bfloat16 layers: see :func:`_gradient_dtype`)
    dy: Tensor  # (T, D, B, G*H) of the hidden pre-activations after the norm (for the GRU's b_hh, the norm's gain)
    draw: Tensor  # (T, D, B, G*H) of h W_hh^T (for W_hh)
    dh0: Tensor  # (D, B, H)
    dc0: Optional[Tensor]  # (D, B, H), LSTM
    dyc: Optional[Tensor]  # (T, D, B, H) of the cell norm's output (for its gain and bias), LSTM with layer norm


def layer_backward(mode: str, w_hh: Tensor, fwd: Forward, h0: Tensor, c0: Optional[Tensor], lengths: Tensor,
                   steps: int, dout: Tensor, dhn: Tensor, dcn: Optional[Tensor], *, precision: str = "tf32",
                   extras: StepExtras = StepExtras(), kernel: Optional[str] = None, prefetch: Optional[bool] = None,
                   num_warps: Optional[int] = None, barrier: Optional[str] = None, natural: bool = False) -> Backward:
    """Backpropagation through time for :func:`layer_forward` (run with ``save=True`` and the
    same ``extras``). ``kernel`` as there: ``"stream"`` reads W_hh's columns from L2 each step,
    ``"resident"`` keeps this program's rows on chip and sums every program's share of dh.
    ``prefetch`` loads each step's saved activations a step early, before the barrier (variant
    13; off only to time it). ``num_warps``: 4 streaming; 8 resident from H=128, whose (H, BB)
    share then splits over two warpgroups of at least 64 rows each (ptxas: no spills at H=512,
    where 4 warps spill up to 176 bytes; 64-row halves, as a 64-row product over 8 warps failed on
    the GPU, are not used). ``barrier`` and ``natural`` as in :func:`layer_forward`:
    with ``natural``, ``dout`` is the gradient of ``y`` (T, B, D*H) and ``dx``, ``dy``, ``draw``
    come back (T, B, D, G*H)."""
    out = fwd.out if fwd.out is not None else fwd.cs  # (an LSTM's backward reads c, not the outputs)
    T, D, B, H = out.shape
    cell = CELL_CODES[mode]
    G = _GATES[cell]
    GH = G * H
    dev = out.device
    resident, plan = kernel_plan(kernel, mode, H, B, D, w_hh.dtype == torch.bfloat16, hardware.multiprocessors(dev))
    prefetch = current().prefetch if prefetch is None else prefetch
    geo = _geometry(plan)
    codes = extras.codes()
    ln = codes["LN"]
    BK = 128 if H % 128 == 0 else min(64, H)
    f32 = dict(device=dev, dtype=torch.float32)
    # direction-major (:func:`_direction_major`) or natural; the kernel writes every step < ``steps``
    grad = dict(device=dev, dtype=_gradient_dtype(w_hh.dtype, mode, ln))
    dx = _written((T, B, D, GH) if natural else (D, T, B, GH), **grad)
    dy = _written(dx.shape, device=dev, dtype=torch.float32) if mode == "GRU" else dx
    draw = _written(dx.shape, device=dev, dtype=torch.float32) if ln else dy
    dyc = _written((D, T, B, H), **f32) if ln and mode == "LSTM" else None
    for buf in {id(x): x for x in (dx, dy, draw, dyc) if x is not None}.values():  # (dy, draw may be dx)
        steps_of = buf if natural and buf is not dyc else buf.transpose(0, 1)  # (T, ...) either way
        steps_of[steps:] = 0.0  # steps beyond ``steps``: every row's padding
    # exchange area: streaming, dA (D, 2, B, G*H); resident, the shares of dh (D, 2, GROUP, B, H),
    # each written in full by its program before the barrier that precedes any read (no fill)
    ex = (torch.empty(D, 2, geo["GROUP"], B, H, **f32) if resident  # shares are sums: float32
          else torch.zeros(D, 2, B, GH, device=dev, dtype=_exchange_dtype(w_hh.dtype)))
    st = torch.zeros(D, B, geo["GROUP"], 4, **f32) if ln else ex
    dh0 = torch.empty(D, B, H, **f32)
    dc0 = torch.empty(D, B, H, **f32) if mode == "LSTM" else dh0
    bar = torch.zeros(D * geo["NBT"], device=dev, dtype=torch.int32)
    out_d = _direction_major(out)  # no copy for layer_forward's results
    cs, gates, *saved = (_direction_major(x) if x is not None else out_d
                         for x in (fwd.cs, fwd.gates, None if natural else fwd.xhat, fwd.chat, fwd.rstd))
    if natural:
        saved[0] = fwd.xhat if fwd.xhat is not None else out_d  # (T, B, D, G*H) as the forward wrote it
        dout = dout.to(_output_dtype(dout.dtype)).contiguous().view(T, B, D, H)
    else:
        dout = _dense_blocks(dout.float())
    _launch(_recurrent_layer_backward_kernel, (D * geo["NBT"] * geo["GROUP"],), (
        w_hh.contiguous(), out_d, h0.contiguous(), (c0 if c0 is not None else h0).contiguous(), cs, gates,
        lengths.to(device=dev, dtype=torch.int32), dout, dhn.contiguous().float(),
        (dcn if dcn is not None else dhn).contiguous().float(), dx, dy, draw, (dyc if dyc is not None else dx), ex,
        dh0, dc0, bar, *extras.pointers(out_d, T), st, *saved, steps, T, B, dout.stride(0), dout.stride(1)), BK,
        H=H, **geo, D=D, CELL=cell, G=G, **codes, RESIDENT=resident, GP=4 if G > 1 else 1, PREFETCH=prefetch,
        SYNC=_sync_code(barrier), NATURAL=natural, **_dot_types(w_hh.dtype, precision),
        num_warps=num_warps or current().num_warps or (8 if resident and H >= 128 else 4))
    per_step = (lambda x: x) if natural else _time_major
    return Backward(per_step(dx), per_step(dy), per_step(draw), dh0, (dc0 if mode == "LSTM" else None),
                    None if dyc is None else _time_major(dyc))
