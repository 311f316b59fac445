"""The launch of the fused kernels (:mod:`~birnn.backends.fused.forward`, :mod:`~birnn.backends.fused.backward`,
sharing :mod:`~birnn.backends.fused.device`): persistent Triton kernels that run one recurrent layer —
both directions, all time steps, per-sequence lengths — in a single launch each way. This
module owns their buffers, dtypes and layouts (:func:`layer_forward`, :func:`layer_backward`);
how they work is described here once.

Symbols: ``T`` steps, ``D`` directions, ``B`` batch, ``H`` hidden size, ``G`` gates
(RNN 1, LSTM 4 in the step order ``[i|f|o|g]``, GRU 3 ``[r|z|n]``). At the boundary the kernels
take and give the layer's own layout, as cuDNN's layers do: the input projections ``xs`` and
their gradient (T, B, D, G*H), the output ``y`` and its gradient (T, B, D*H), each row in its
own time order — the kernels read and write the backward direction's step ``t`` at
``len-1-t`` —, so no reversed or concatenated copies surround them. What they save for the
backward pass is stored direction-major, (D, T, ...), in processing order, handed out as
(T, D, ...) views: each direction's (T*B, features) is then one matrix for the weight gradient.

Work split: program ``(d, batch tile, unit block)`` owns ``U`` hidden units of direction ``d``
for ``BB`` sequences. Each step it reads the whole previous ``h`` of its direction and batch
tile (``BB x H``, from a double-buffered global exchange area), multiplies it with the rows of
``W_hh`` that feed its units — held on chip for the whole sequence as one (64, H) tile, the
first operand of ``W_tile @ h^T`` (``kernel="resident"``, the default where it fits: 2.3-2.9x
faster steps on an H200), or streamed from L2 in K chunks (``kernel="stream"``, for the hidden
sizes and batches the resident tile does not fit) — adds the precomputed input projections, runs
the cell, keeps ``c`` in registers, publishes its slice of the new ``h``, and meets the other
programs of its group at a barrier (one atomic counter per group, release/acquire at GPU
scope). The grid never exceeds what the GPU runs at once, so the barrier cannot deadlock.

The backward pass walks the steps in reverse with the same split. Streaming, each program
publishes its gates' ``dA`` and, after the barrier, reads all of it with the columns of ``W_hh``
that its units' ``dh`` needs. Resident, each program multiplies its own ``dA`` by its own rows of
``W_hh`` (the forward's tile, held on chip) into a share of ``dh`` for every unit, publishes the
share, and after the barrier adds the group's shares for its units in a fixed order.

Both directions stop at the same step; at steps ``t >= lengths[b]`` the state is kept and the
output is 0.

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

from ...cells import CELLS
from .backward import _recurrent_layer_backward_kernel
from .forward import _recurrent_layer_kernel
from . import KERNELS, default_kernel, hardware, kernel_plan, offsets_fit, plan_grid, plan_resident, supported_hidden

__all__ = ["CELL_CODES", "KERNELS", "Backward", "Forward", "StepExtras", "default_kernel", "layer_backward",
           "layer_forward", "plan_grid", "plan_resident", "supported_hidden"]

CELL_CODES = {mode: spec.code for mode, spec in CELLS.items() if spec.code >= 0}  # (birnn.cells: the one cell table)
_GATES = {spec.code: spec.gates for spec in CELLS.values() if spec.code >= 0}


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
    :func:`birnn.backends.reference.scan` define it; masks are sampled by the caller, so the kernel and
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


def _time_major(x: Tensor) -> Tensor:
    """The (T, D, ...) view of (D, T, ...) storage."""
    return x.transpose(0, 1)


class Forward(NamedTuple):
    """:func:`layer_forward`'s results; the saved tensors are None unless ``save`` (and the feature)
    asks. ``y`` and ``xhat`` are (T, B, ...) in each row's own time order; the other per-step
    tensors (T, D, ...) views of direction-major (D, T, ...) storage, in processing order (the
    backward direction's step t is its row's real step ``len-1-t``)."""

    out: Optional[Tensor]  # (T, D, B, H) the outputs in processing order, only when ``save``, not for the LSTM (unread)
    hn: Tensor  # (D, B, H)
    cn: Optional[Tensor]  # (D, B, H), LSTM
    cs: Optional[Tensor]  # (T, D, B, H) LSTM cell states / GRU h W_n^T + b_hn
    gates: Optional[Tensor]  # (T, D, B, G*H) gate activations
    xhat: Optional[Tensor] = None  # (T, B, D, G*H) normalised recurrent pre-activations (layer norm)
    chat: Optional[Tensor] = None  # (T, D, B, H) normalised LSTM cells (layer norm)
    rstd: Optional[Tensor] = None  # (T, D, B, 2) 1/std of both norms (layer norm)
    y: Optional[Tensor] = None  # (T, B, D*H) the layer's output as torch.nn lays it out (:func:`_output_dtype`)


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
    """The dtype of the layer's output y and of its gradient at the kernels' boundary:
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
                  extras: StepExtras = StepExtras(), kernel: Optional[str] = None) -> Forward:
    """Run one layer. ``xs`` the layer's input projections (T, B, D, G*H), each row in its own
    time order (the kernel reads the backward direction's steps reversed within each row and
    writes ``y`` (T, B, D*H) likewise), ``w_hh`` (D, G*H, H) in step order, ``h0``/``c0``
    (D, B, H), ``lengths`` (B,) (the number of real steps, any device), ``steps`` how many steps
    to run (max(lengths)), ``extras`` the fused regularisers, ``kernel`` how W_hh is read
    (``"resident"`` on chip, ``"stream"`` from L2 each step; None: :func:`default_kernel`, which
    falls back to streaming where the resident tile does not fit). Returns ``y``, ``h_n``,
    ``c_n`` (D, B, H), and with ``save`` what the backward pass needs (every buffer it writes
    comes from :func:`_written`)."""
    T, B, D, GH = xs.shape
    xs = xs.contiguous()
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
    y = _written((T, B, D, H), device=dev, dtype=_output_dtype(xs.dtype))
    # per-step tensors direction-major (:func:`_direction_major`), in processing order: the outputs only for the
    # GRU's and the Elman RNN's backward (the LSTM's reads c)
    out = _written((D, T, B, H), **f32) if save and mode != "LSTM" else y
    hx = torch.zeros(D, 2, B, H, device=dev, dtype=_exchange_dtype(xs.dtype))
    hx[:, 0] = h0 if extras.drop is None else h0 * extras.drop
    hn = _written((D, B, H), **f32)
    cn = _written((D, B, H), **f32) if mode == "LSTM" else hn
    keeps = save and (G > 1 or codes["ZH"] != 0)  # the Elman backward needs only the outputs, unless zoneout
    cs = _written((D, T, B, H), **f32) if keeps and G > 1 else out  # (the Elman RNN has no second state)
    gates = _written((D, T, B, GH), **f32) if keeps else out
    ln = codes["LN"]
    st = torch.zeros(D, B, geo["GROUP"], 4, **f32) if ln else out
    xhat = _written((T, B, D, GH), **f32) if ln and save else out
    chat = _written((D, T, B, H), **f32) if ln and save and mode == "LSTM" else out
    rstd = _written((D, T, B, 2), zero=True, **f32) if ln and save else out  # (slot 1, the cell norm's, stays 0 but for LSTMs)
    y[steps:] = 0.0  # steps >= ``steps`` are every row's padding (the kernel runs the first ``steps``)
    bar = torch.zeros(D * geo["NBT"], device=dev, dtype=torch.int32)
    lens = lengths.to(device=dev, dtype=torch.int32)
    grid = (D * geo["NBT"] * geo["GROUP"],)
    _launch(_recurrent_layer_kernel, grid, (
        xs, w_hh.contiguous(), (b_hh if b_hh is not None else hn).contiguous(), h0.contiguous(),
        (c0 if c0 is not None else h0).contiguous(), lens, y, out, hx, hn, cn, cs, gates, bar,
        *extras.pointers(out, T), st, xhat, chat, rstd, steps, T, B), BK,
        H=H, **geo, D=D, CELL=cell, G=G, SAVE=save, FOLD=not (ln or resident) and mode != "GRU", **codes,
        RESIDENT=resident, GP=4 if G > 1 else 1, **_dot_types(xs.dtype, precision), num_warps=4)

    def saved(x):
        return _time_major(x) if save and x is not out and x is not y else None

    return Forward(None if out is y else _time_major(out), hn, (cn if mode == "LSTM" else None), saved(cs),
                   saved(gates), (xhat if ln and save else None), saved(chat), saved(rstd), y.view(T, B, D * H))


class Backward(NamedTuple):
    """:func:`layer_backward`'s results: ``dx``, ``dy`` and ``draw`` (T, B, D, G*H) in each row's
    own time order, as ``xs``; ``dyc`` a (T, D, ...) view of direction-major storage."""

    dx: Tensor  # gradient of the input projections (bfloat16 layers: see :func:`_gradient_dtype`)
    dy: Tensor  # of the hidden pre-activations after the norm (for the GRU's b_hh, the norm's gain)
    draw: Tensor  # of h W_hh^T (for W_hh)
    dh0: Tensor  # (D, B, H)
    dc0: Optional[Tensor]  # (D, B, H), LSTM
    dyc: Optional[Tensor]  # (T, D, B, H) of the cell norm's output (for its gain and bias), LSTM with layer norm


def layer_backward(mode: str, w_hh: Tensor, fwd: Forward, h0: Tensor, c0: Optional[Tensor], lengths: Tensor,
                   steps: int, dout: Tensor, dhn: Tensor, dcn: Optional[Tensor], *, precision: str = "tf32",
                   extras: StepExtras = StepExtras(), kernel: Optional[str] = None) -> Backward:
    """Backpropagation through time for :func:`layer_forward` (run with ``save=True`` and the
    same ``extras``). ``dout`` is the gradient of ``y`` (T, B, D*H); ``dx``, ``dy``, ``draw``
    come back (T, B, D, G*H), in the same layout as ``xs``. ``kernel`` as there: ``"stream"``
    reads W_hh's columns from L2 each step, ``"resident"`` keeps this program's rows on chip and
    sums every program's share of dh. The resident backward runs 8 warps from H=128, whose (H, BB)
    share then splits over two warpgroups of at least 64 rows each (ptxas: no spills at H=512,
    where 4 warps spill up to 176 bytes); the others 4."""
    out = fwd.out if fwd.out is not None else fwd.cs  # (an LSTM's backward reads c, not the outputs)
    T, D, B, H = out.shape
    cell = CELL_CODES[mode]
    G = _GATES[cell]
    GH = G * H
    dev = out.device
    resident, plan = kernel_plan(kernel, mode, H, B, D, w_hh.dtype == torch.bfloat16, hardware.multiprocessors(dev))
    geo = _geometry(plan)
    codes = extras.codes()
    ln = codes["LN"]
    BK = 128 if H % 128 == 0 else min(64, H)
    f32 = dict(device=dev, dtype=torch.float32)
    # the layer's layout; the kernel writes every step < ``steps``
    grad = dict(device=dev, dtype=_gradient_dtype(w_hh.dtype, mode, ln))
    dx = _written((T, B, D, GH), **grad)
    dy = _written(dx.shape, device=dev, dtype=torch.float32) if mode == "GRU" else dx
    draw = _written(dx.shape, device=dev, dtype=torch.float32) if ln else dy
    dyc = _written((D, T, B, H), **f32) if ln and mode == "LSTM" else None
    for buf in {id(x): x for x in (dx, dy, draw) if x is not None}.values():  # (dy, draw may be dx)
        buf[steps:] = 0.0  # steps beyond ``steps``: every row's padding
    if dyc is not None:
        dyc[:, steps:] = 0.0
    # exchange area: streaming, dA (D, 2, B, G*H); resident, the shares of dh (D, 2, GROUP, B, H),
    # each written in full by its program before the barrier that precedes any read (no fill)
    ex = (torch.empty(D, 2, geo["GROUP"], B, H, **f32) if resident  # shares are sums: float32
          else torch.zeros(D, 2, B, GH, device=dev, dtype=_exchange_dtype(w_hh.dtype)))
    st = torch.zeros(D, B, geo["GROUP"], 4, **f32) if ln else ex
    dh0 = torch.empty(D, B, H, **f32)
    dc0 = torch.empty(D, B, H, **f32) if mode == "LSTM" else dh0
    bar = torch.zeros(D * geo["NBT"], device=dev, dtype=torch.int32)
    out_d = _direction_major(out)  # no copy for layer_forward's results
    cs, gates, chat, rstd = (_direction_major(x) if x is not None else out_d
                             for x in (fwd.cs, fwd.gates, fwd.chat, fwd.rstd))
    xhat = fwd.xhat if fwd.xhat is not None else out_d  # (T, B, D, G*H) as the forward wrote it
    dout = dout.to(_output_dtype(dout.dtype)).contiguous().view(T, B, D, H)
    _launch(_recurrent_layer_backward_kernel, (D * geo["NBT"] * geo["GROUP"],), (
        w_hh.contiguous(), out_d, h0.contiguous(), (c0 if c0 is not None else h0).contiguous(), cs, gates,
        lengths.to(device=dev, dtype=torch.int32), dout, dhn.contiguous().float(),
        (dcn if dcn is not None else dhn).contiguous().float(), dx, dy, draw, (dyc if dyc is not None else dx), ex,
        dh0, dc0, bar, *extras.pointers(out_d, T), st, xhat, chat, rstd, steps, T, B), BK,
        H=H, **geo, D=D, CELL=cell, G=G, **codes, RESIDENT=resident, GP=4 if G > 1 else 1,
        **_dot_types(w_hh.dtype, precision), num_warps=8 if resident and H >= 128 else 4)
    return Backward(dx, dy, draw, dh0, (dc0 if mode == "LSTM" else None), None if dyc is None else _time_major(dyc))
