"""A persistent Triton kernel that runs one recurrent layer — both directions, all time steps,
per-sequence lengths — in a single launch.

Symbols: ``T`` steps, ``D`` directions, ``B`` batch, ``H`` hidden size, ``G`` gates
(RNN 1, LSTM 4 in the step order ``[i|f|o|g]``, GRU 3 ``[r|z|n]``).

Work split: program ``(d, batch tile, unit block)`` owns ``U`` hidden units of direction ``d``
for ``BB`` sequences. Each step it reads the whole previous ``h`` of its direction and batch
tile (``BB x H``, from a double-buffered global exchange area), multiplies it with the rows of
``W_hh`` that feed its units (streamed from L2), adds the precomputed input projections, runs
the cell, keeps ``c`` in registers, publishes its slice of the new ``h``, and meets the other
programs of its group at a barrier (one atomic counter per group, release/acquire at GPU
scope). The grid never exceeds what the GPU runs at once, so the barrier cannot deadlock.

The inputs come prepared exactly as the reference loop consumes them (``birnn.recurrence``):
the backward direction already reversed within each sequence's real part, so both directions
stop at the same step; at steps ``t >= lengths[b]`` the state is kept and the output is 0.

Under ``TRITON_INTERPRET=1`` (CPU) programs run one after another, so the launcher uses one
program per group there (a group of one never waits).
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import supported_hidden

__all__ = ["CELL_CODES", "layer_backward", "layer_forward", "plan_grid", "supported_hidden"]

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
def _group_barrier(counter, target):
    """Arrive (release) and wait until ``target`` arrivals: spin on plain volatile loads, which
    do not serialise at L2 as read-modify-writes would, then one acquire on the counter."""
    tl.debug_barrier()  # the whole program has stored its slice
    tl.atomic_add(counter, 1, sem="release", scope="gpu")
    seen = tl.load(counter, volatile=True)
    while seen < target:
        seen = tl.load(counter, volatile=True)
    tl.atomic_add(counter, 0, sem="acquire", scope="gpu")
    tl.debug_barrier()


@triton.jit
def _all_gates(h_base, w_base, units, rows_b, mask_b, H: tl.constexpr, BK: tl.constexpr, G: tl.constexpr,
               DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr, a0, a1, a2, a3):
    """Every gate's ``h W_gate^T`` in one pass over K: each chunk of h is loaded once and feeds
    G independent dots (G accumulators), so the gates' latencies overlap instead of adding."""
    for k0 in tl.range(0, H, BK):
        ks = k0 + tl.arange(0, BK)
        hk = tl.load(h_base + rows_b[:, None] * H + ks[None, :], mask=mask_b[:, None], other=0.0,
                     cache_modifier=".cg").to(DOT_DTYPE)
        w0 = tl.load(w_base + units[:, None] * H + ks[None, :]).to(DOT_DTYPE)
        a0 = tl.dot(hk, tl.trans(w0), a0, input_precision=PRECISION)
        if G > 1:
            w1 = tl.load(w_base + (H + units)[:, None] * H + ks[None, :]).to(DOT_DTYPE)
            w2 = tl.load(w_base + (2 * H + units)[:, None] * H + ks[None, :]).to(DOT_DTYPE)
            a1 = tl.dot(hk, tl.trans(w1), a1, input_precision=PRECISION)
            a2 = tl.dot(hk, tl.trans(w2), a2, input_precision=PRECISION)
        if G > 3:
            w3 = tl.load(w_base + (3 * H + units)[:, None] * H + ks[None, :]).to(DOT_DTYPE)
            a3 = tl.dot(hk, tl.trans(w3), a3, input_precision=PRECISION)
    return a0, a1, a2, a3


@triton.jit
def _recurrent_layer_kernel(
    xg_ptr,  # (T, D, B, G*H) input projections (biases folded in; GRU: b_ih only)
    w_ptr,  # (D, G*H, H) W_hh, gate blocks in step order
    bhh_ptr,  # (D, G*H) GRU hidden bias (unused otherwise)
    h0_ptr, c0_ptr,  # (D, B, H)
    len_ptr,  # (B,) int32
    out_ptr,  # (T, D, B, H) outputs, 0 at padded steps
    hx_ptr,  # (D, 2, B, H) exchange area, parity 0 holds h0
    hn_ptr, cn_ptr,  # (D, B, H) final states
    cs_ptr,  # (T, D, B, H) when SAVE: LSTM cell states, GRU h W_n^T + b_hn
    gates_ptr,  # (T, D, B, G*H) gate activations (when SAVE; the GRU keeps h W_n^T + b_hn in cs_ptr)
    bar_ptr,  # (D * NBT,) int32 barrier counters, zero at launch
    steps, B,
    H: tl.constexpr, U: tl.constexpr, BB: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr,
    NBT: tl.constexpr, D: tl.constexpr, CELL: tl.constexpr, G: tl.constexpr, SAVE: tl.constexpr,
    DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
):
    d, grp, units, rows_b, mask_b, lengths, state_off = _program_tile(len_ptr, B, H, U, BB, GROUP, NBT)
    m2 = mask_b[:, None]
    h_own = tl.load(h0_ptr + state_off, mask=m2, other=0.0).to(tl.float32)
    c = tl.zeros((BB, U), dtype=tl.float32)
    if CELL == 2:
        c = tl.load(c0_ptr + state_off, mask=m2, other=0.0).to(tl.float32)
    w_base = w_ptr + d * (G * H * H)
    GH: tl.constexpr = G * H
    t = 0
    while t < steps:  # (a while loop: Triton's interpreter cannot index range() with numpy >= 2.4 scalars)
        par = t % 2
        h_base = hx_ptr + (d * 2 + par) * B * H
        x_base = xg_ptr + ((t * D + d) * B) * GH + rows_b[:, None] * GH + units[None, :]
        acc0 = tl.load(x_base, mask=m2, other=0.0).to(tl.float32)
        if CELL == 3:  # GRU: the hidden part of n is needed apart (b_hn sits inside r *)
            zero = tl.zeros((BB, U), dtype=tl.float32)
            hr, hz, hn, _ = _all_gates(h_base, w_base, units, rows_b, mask_b, H, BK, 3, DOT_DTYPE, PRECISION,
                                       zero, zero, zero, zero)
            b_r = tl.load(bhh_ptr + d * GH + units)
            b_z = tl.load(bhh_ptr + d * GH + H + units)
            b_n = tl.load(bhh_ptr + d * GH + 2 * H + units)
            xz = tl.load(x_base + H, mask=m2, other=0.0).to(tl.float32)
            xn = tl.load(x_base + 2 * H, mask=m2, other=0.0).to(tl.float32)
            r = _sigmoid(acc0 + hr + b_r[None, :])
            z = _sigmoid(xz + hz + b_z[None, :])
            hn_b = hn + b_n[None, :]
            n = _tanh(xn + r * hn_b)
            h_new = n + z * (h_own - n)
            if SAVE:
                g_base = gates_ptr + ((t * D + d) * B) * GH + rows_b[:, None] * GH + units[None, :]
                tl.store(g_base, r, mask=m2)
                tl.store(g_base + H, z, mask=m2)
                tl.store(g_base + 2 * H, n, mask=m2)
                tl.store(cs_ptr + ((t * D + d) * B) * H + rows_b[:, None] * H + units[None, :], hn_b, mask=m2)
        elif CELL == 2:  # LSTM, step order [i|f|o|g]
            x_f = tl.load(x_base + H, mask=m2, other=0.0).to(tl.float32)
            x_o = tl.load(x_base + 2 * H, mask=m2, other=0.0).to(tl.float32)
            x_g = tl.load(x_base + 3 * H, mask=m2, other=0.0).to(tl.float32)
            a_i, a_f, a_o, a_g = _all_gates(h_base, w_base, units, rows_b, mask_b, H, BK, 4, DOT_DTYPE, PRECISION,
                                            acc0, x_f, x_o, x_g)
            i = _sigmoid(a_i)
            f = _sigmoid(a_f)
            o = _sigmoid(a_o)
            g = _tanh(a_g)
            c_new = f * c + i * g
            h_new = o * _tanh(c_new)
            valid_c = (t < lengths)[:, None]
            c = tl.where(valid_c, c_new, c)
            if SAVE:
                g_base = gates_ptr + ((t * D + d) * B) * GH + rows_b[:, None] * GH + units[None, :]
                tl.store(g_base, i, mask=m2)
                tl.store(g_base + H, f, mask=m2)
                tl.store(g_base + 2 * H, o, mask=m2)
                tl.store(g_base + 3 * H, g, mask=m2)
                tl.store(cs_ptr + ((t * D + d) * B) * H + rows_b[:, None] * H + units[None, :], c, mask=m2)
        else:  # Elman RNN
            a, _, _, _ = _all_gates(h_base, w_base, units, rows_b, mask_b, H, BK, 1, DOT_DTYPE, PRECISION,
                                    acc0, acc0, acc0, acc0)
            if CELL == 0:
                h_new = _tanh(a)
            else:
                h_new = tl.maximum(a, 0.0)
        valid = (t < lengths)[:, None]
        h_own = tl.where(valid, h_new, h_own)
        tl.store(out_ptr + ((t * D + d) * B) * H + rows_b[:, None] * H + units[None, :],
                 tl.where(valid, h_new, 0.0), mask=m2)
        tl.store(hx_ptr + (d * 2 + 1 - par) * B * H + rows_b[:, None] * H + units[None, :], h_own, mask=m2)
        # the group's barrier: every unit block has published step t before anyone reads it
        _group_barrier(bar_ptr + grp, (t + 1) * GROUP)
        t += 1
    tl.store(hn_ptr + state_off, h_own, mask=m2)
    if CELL == 2:
        tl.store(cn_ptr + state_off, c, mask=m2)


@triton.jit
def _recurrent_layer_backward_kernel(
    w_ptr,  # (D, G*H, H)
    out_ptr,  # (T, D, B, H) forward outputs (h_t at real steps)
    h0_ptr, c0_ptr,  # (D, B, H)
    cs_ptr,  # (T, D, B, H) LSTM: c_t; GRU: h W_n^T + b_hn
    gates_ptr,  # (T, D, B, G*H) gate activations
    len_ptr,
    dout_ptr,  # (T, D, B, H)
    dhn_ptr, dcn_ptr,  # (D, B, H)
    dx_ptr,  # (T, D, B, G*H) gradient of the input projections
    dah_ptr,  # (T, D, B, G*H) gradient of the hidden pre-activations (GRU only; else dx)
    ex_ptr,  # (D, 2, B, G*H) exchange area
    dh0_ptr, dc0_ptr,  # (D, B, H)
    bar_ptr,
    steps, B,
    H: tl.constexpr, U: tl.constexpr, BB: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr,
    NBT: tl.constexpr, D: tl.constexpr, CELL: tl.constexpr, G: tl.constexpr,
    DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
):
    d, grp, units, rows_b, mask_b, lengths, state_off = _program_tile(len_ptr, B, H, U, BB, GROUP, NBT)
    m2 = mask_b[:, None]
    dh = tl.load(dhn_ptr + state_off, mask=m2, other=0.0)
    dc = tl.zeros((BB, U), dtype=tl.float32)
    if CELL == 2:
        dc = tl.load(dcn_ptr + state_off, mask=m2, other=0.0)
    GH: tl.constexpr = G * H
    w_base = w_ptr + d * (GH * H)
    k = 0
    while k < steps:
        t = steps - 1 - k
        par = k % 2
        valid = (t < lengths)[:, None]
        off = ((t * D + d) * B) * H + rows_b[:, None] * H + units[None, :]
        goff = ((t * D + d) * B) * GH + rows_b[:, None] * GH + units[None, :]
        dh_t = dh + tl.where(valid, tl.load(dout_ptr + off, mask=m2, other=0.0), 0.0)
        if CELL == 2:
            i = tl.load(gates_ptr + goff, mask=m2, other=0.0)
            f = tl.load(gates_ptr + goff + H, mask=m2, other=0.0)
            o = tl.load(gates_ptr + goff + 2 * H, mask=m2, other=0.0)
            g = tl.load(gates_ptr + goff + 3 * H, mask=m2, other=0.0)
            c_t = tl.load(cs_ptr + off, mask=m2, other=0.0)
            if t > 0:
                c_prev = tl.load(cs_ptr + off - D * B * H, mask=m2, other=0.0)
            else:
                c_prev = tl.load(c0_ptr + state_off, mask=m2, other=0.0)
            tc = _tanh(c_t)
            dct = dc + dh_t * o * (1.0 - tc * tc)
            da0 = tl.where(valid, dct * g * i * (1.0 - i), 0.0)
            da1 = tl.where(valid, dct * c_prev * f * (1.0 - f), 0.0)
            da2 = tl.where(valid, dh_t * tc * o * (1.0 - o), 0.0)
            da3 = tl.where(valid, dct * i * (1.0 - g * g), 0.0)
            dc = tl.where(valid, dct * f, dc)
            tl.store(dx_ptr + goff, da0, mask=m2)
            tl.store(dx_ptr + goff + H, da1, mask=m2)
            tl.store(dx_ptr + goff + 2 * H, da2, mask=m2)
            tl.store(dx_ptr + goff + 3 * H, da3, mask=m2)
            e_off = ((d * 2 + par) * B) * GH + rows_b[:, None] * GH + units[None, :]
            tl.store(ex_ptr + e_off, da0, mask=m2)
            tl.store(ex_ptr + e_off + H, da1, mask=m2)
            tl.store(ex_ptr + e_off + 2 * H, da2, mask=m2)
            tl.store(ex_ptr + e_off + 3 * H, da3, mask=m2)
            keep = tl.zeros((BB, U), dtype=tl.float32)
        elif CELL == 3:
            r = tl.load(gates_ptr + goff, mask=m2, other=0.0)
            z = tl.load(gates_ptr + goff + H, mask=m2, other=0.0)
            n = tl.load(gates_ptr + goff + 2 * H, mask=m2, other=0.0)
            hn_b = tl.load(cs_ptr + off, mask=m2, other=0.0)
            if t > 0:
                h_prev = tl.load(out_ptr + off - D * B * H, mask=m2, other=0.0)
            else:
                h_prev = tl.load(h0_ptr + state_off, mask=m2, other=0.0)
            da_z = tl.where(valid, dh_t * (h_prev - n) * z * (1.0 - z), 0.0)
            da_n = tl.where(valid, dh_t * (1.0 - z) * (1.0 - n * n), 0.0)
            da_r = da_n * hn_b * r * (1.0 - r)
            tl.store(dx_ptr + goff, da_r, mask=m2)
            tl.store(dx_ptr + goff + H, da_z, mask=m2)
            tl.store(dx_ptr + goff + 2 * H, da_n, mask=m2)
            tl.store(dah_ptr + goff, da_r, mask=m2)
            tl.store(dah_ptr + goff + H, da_z, mask=m2)
            tl.store(dah_ptr + goff + 2 * H, da_n * r, mask=m2)
            e_off = ((d * 2 + par) * B) * GH + rows_b[:, None] * GH + units[None, :]
            tl.store(ex_ptr + e_off, da_r, mask=m2)
            tl.store(ex_ptr + e_off + H, da_z, mask=m2)
            tl.store(ex_ptr + e_off + 2 * H, da_n * r, mask=m2)
            keep = dh_t * z
        else:
            h_t = tl.load(out_ptr + off, mask=m2, other=0.0)
            if CELL == 0:
                da = tl.where(valid, dh_t * (1.0 - h_t * h_t), 0.0)
            else:
                da = tl.where(valid & (h_t > 0.0), dh_t, 0.0)
            tl.store(dx_ptr + goff, da, mask=m2)
            tl.store(ex_ptr + ((d * 2 + par) * B) * GH + rows_b[:, None] * GH + units[None, :], da, mask=m2)
            keep = tl.zeros((BB, U), dtype=tl.float32)
        _group_barrier(bar_ptr + grp, (k + 1) * GROUP)
        # dh_{t-1}[units] = dA (BB, G*H) @ W[:, units] (G*H, U)
        acc = tl.zeros((BB, U), dtype=tl.float32)
        e_base = ex_ptr + ((d * 2 + par) * B) * GH
        for k0 in tl.range(0, GH, BK):
            ks = k0 + tl.arange(0, BK)
            ak = tl.load(e_base + rows_b[:, None] * GH + ks[None, :], mask=m2, other=0.0, cache_modifier=".cg")
            wk = tl.load(w_base + ks[:, None] * H + units[None, :])
            acc = tl.dot(ak.to(DOT_DTYPE), wk.to(DOT_DTYPE), acc, input_precision=PRECISION)
        dh = tl.where(valid, acc + keep, dh_t)
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


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def plan_grid(H: int, B: int, D: int, sms: Optional[int]) -> Tuple[int, int, int, int]:
    """(U units per program, BB batch rows per program, number of batch tiles, programs per group).

    Tensor-core tiles of 16/32/64 batch rows (small batches are padded: measured faster than
    CUDA-core products, benchmarks/GPU_NOTES.md) and 16-unit blocks, widened until the grid fits
    the GPU's ``sms`` multiprocessors (all programs must run at once for the barrier)."""
    BB = 16 if B <= 16 else (32 if B <= 32 else 64)
    nbt = -(-B // BB)
    if sms is None:  # interpreter: one program per group
        return H, BB, nbt, 1
    U = 16
    while U < H and H % (2 * U) == 0 and D * nbt * (H // U) > sms:
        U *= 2
    if D * nbt * (H // U) > sms:
        raise ValueError(f"batch {B} needs {D * nbt} groups of programs, more than the {sms} that run at once")
    return U, BB, nbt, H // U


def layer_forward(mode: str, xs: Tensor, w_hh: Tensor, b_hh: Optional[Tensor], h0: Tensor, c0: Optional[Tensor],
                  lengths: Tensor, steps: int, *, save: bool = False, precision: str = "tf32",
                  num_warps: Optional[int] = None, poison: bool = False):
    """Run one layer. ``xs`` (T, D, B, G*H), ``w_hh`` (D, G*H, H) in step order, ``h0``/``c0``
    (D, B, H), ``lengths`` (B,) (the number of real steps, any device). Returns
    ``out`` (T, D, B, H), ``h_n``, ``c_n`` (D, B, H), and with ``save`` the saved cell states
    and gate activations for the backward pass; ``poison`` fills the outputs with NaN first (tests)."""
    T, D, B, GH = xs.shape
    H = w_hh.shape[-1]
    cell = CELL_CODES[mode]
    G = _GATES[cell]
    if GH != G * H or not supported_hidden(H):
        raise ValueError(f"the fused kernel needs H a power of two >= 16 or a multiple of 64, and xs (..., {G}*H); "
                         f"got H={H}, G*H={GH}")
    dev = xs.device
    sms = None if _interpreting() else torch.cuda.get_device_properties(dev).multi_processor_count
    U, BB, nbt, group = plan_grid(H, B, D, sms)
    BK = 128 if H % 128 == 0 else min(64, H)
    dtype = torch.float32
    out = torch.empty(T, D, B, H, device=dev, dtype=dtype)
    hx = torch.zeros(D, 2, B, H, device=dev, dtype=dtype)
    hx[:, 0] = h0
    hn = torch.empty(D, B, H, device=dev, dtype=dtype)
    cn = torch.empty(D, B, H, device=dev, dtype=dtype) if mode == "LSTM" else hn
    cs = torch.empty(T, D, B, H, device=dev, dtype=dtype) if save else out
    gates = torch.empty(T, D, B, GH, device=dev, dtype=dtype) if save else out
    if poison:  # tests: every output element must be written by the kernel
        for buf in (out, hn, cn, cs, gates):
            buf.fill_(float("nan"))
    bar = torch.zeros(D * nbt, device=dev, dtype=torch.int32)
    lens = lengths.to(device=dev, dtype=torch.int32)
    dot_dtype = tl.bfloat16 if xs.dtype == torch.bfloat16 else tl.float32
    grid = (D * nbt * group,)
    _launch(_recurrent_layer_kernel, grid, (
        xs.contiguous(), w_hh.contiguous(), (b_hh if b_hh is not None else hn).contiguous(), h0.contiguous(),
        (c0 if c0 is not None else h0).contiguous(), lens, out, hx, hn, cn, cs, gates, bar, steps, B), BK,
        H=H, U=U, BB=BB, GROUP=group, NBT=nbt, D=D, CELL=cell, G=G, SAVE=save, DOT_DTYPE=dot_dtype,
        PRECISION=precision if dot_dtype == tl.float32 else "tf32",
        num_warps=num_warps or int(os.environ.get("BIRNN_FUSED_WARPS", 4)))
    keeps = save and mode != "RNN_TANH" and mode != "RNN_RELU"  # the Elman backward needs only the outputs
    return out, hn, (cn if mode == "LSTM" else None), (cs if keeps else None), (gates if keeps else None)


def layer_backward(mode: str, w_hh: Tensor, out: Tensor, h0: Tensor, c0: Optional[Tensor], cs: Tensor, gates: Tensor,
                   lengths: Tensor, steps: int, dout: Tensor, dhn: Tensor, dcn: Optional[Tensor], *,
                   precision: str = "tf32"):
    """Backpropagation through time for :func:`layer_forward` (``save=True``). Returns the
    gradients of the input projections ``dx`` (T, D, B, G*H), of the hidden pre-activations
    ``dah`` (for W_hh and the GRU's hidden bias; the same tensor as ``dx`` but for the GRU),
    ``dh0`` and ``dc0`` (D, B, H)."""
    T, D, B, H = out.shape
    cell = CELL_CODES[mode]
    G = _GATES[cell]
    GH = G * H
    dev = out.device
    sms = None if _interpreting() else torch.cuda.get_device_properties(dev).multi_processor_count
    U, BB, nbt, group = plan_grid(H, B, D, sms)
    BK = 128 if H % 128 == 0 else min(64, H)
    dx = torch.zeros(T, D, B, GH, device=dev, dtype=torch.float32)
    dah = torch.zeros_like(dx) if mode == "GRU" else dx
    ex = torch.zeros(D, 2, B, GH, device=dev, dtype=torch.float32)
    dh0 = torch.empty(D, B, H, device=dev, dtype=torch.float32)
    dc0 = torch.empty(D, B, H, device=dev, dtype=torch.float32) if mode == "LSTM" else dh0
    bar = torch.zeros(D * nbt, device=dev, dtype=torch.int32)
    dot_dtype = tl.bfloat16 if w_hh.dtype == torch.bfloat16 else tl.float32
    _launch(_recurrent_layer_backward_kernel, (D * nbt * group,), (
        w_hh.contiguous(), out.contiguous(), h0.contiguous(), (c0 if c0 is not None else h0).contiguous(), cs, gates,
        lengths.to(device=dev, dtype=torch.int32), dout.contiguous().float(), dhn.contiguous().float(),
        (dcn if dcn is not None else dhn).contiguous().float(), dx, dah, ex, dh0, dc0, bar, steps, B), BK,
        H=H, U=U, BB=BB, GROUP=group, NBT=nbt, D=D, CELL=cell, G=G, DOT_DTYPE=dot_dtype,
        PRECISION=precision if dot_dtype == tl.float32 else "tf32", num_warps=4)
    return dx, dah, dh0, (dc0 if mode == "LSTM" else None)
