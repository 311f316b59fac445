"""The native backend: PyTorch's own fused recurrent op (oneDNN/aten on CPU, cuDNN on GPU), three
ways to call it, as the paths ``torch``, ``torch-packed`` and ``torch-chunked`` (:class:`Native`).

Symbols: ``T`` time, ``B`` batch, ``F`` features, ``L`` layers, ``D`` directions, ``H``
hidden size, ``P`` recurrence output size (``proj_size`` or ``H``).

- :func:`run_whole`: every sequence is full: one call, exactly what torch.nn does.
- :func:`run_packed`: variable lengths through ``pack_padded_sequence`` (what torch.nn users
  do by hand); zero-length sequences are taken out first (torch refuses them).
- :func:`run_chunked`: variable lengths *without packing*. Rows are sorted by length once;
  time is cut into a few chunks and each chunk runs the op on the rows still active. A
  sequence that ends inside a chunk must not change its state on the padded steps that follow:
  an extra input column, 1 at padded steps, carries a huge weight into the gates that hold
  the state (LSTM: input gate -> 0 and forget gate -> 1, so ``c`` is kept exactly; GRU:
  update gate -> 1, so ``h`` is kept exactly). Saturated gates have exactly zero derivative,
  so gradients are unaffected. ``h_n`` is read from the output at each sequence's last real
  step. The backward direction runs on each sequence reversed within its real part, so its
  padding also comes last. On CPU this beats packing by far (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..batch import mask_from_lengths, reverse_index
from ..dispatch import unexpressible
from .base import Capabilities
from .plan import LayerPlan
from .multilayer import Ran, stack

__all__ = ["Native", "packed_call", "plan_chunks", "run_chunked", "run_packed", "run_whole"]

_OPS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}

# Gates driven to saturation at padded steps, with the sign of the drive (see module doc).
_FREEZE = {"LSTM": {0: -1.0, 1: +1.0}, "GRU": {1: +1.0}}  # gate block index -> sign

Result = Tuple[Tensor, Tensor, Optional[Tensor]]  # output, h_n, c_n


def _hx(mode: str, h: Tensor, c: Optional[Tensor]):
    return (h, c) if mode == "LSTM" else h


def _lower_precision(x: Tensor) -> bool:
    """Whether the op runs in bfloat16/float16 on CPU (the input's dtype, or autocast's)."""
    half = (torch.bfloat16, torch.float16)
    return x.dtype in half or (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") in half)


def _call_op(mode: str, x: Tensor, *args):
    """PyTorch's op; where oneDNN cannot build its primitive for the call's lower precision on
    this CPU (bfloat16 without bf16 instructions, at some sizes: "could not create a primitive
    descriptor", torch.nn's own LSTM included), PyTorch's generic kernel instead, as where oneDNN
    is off."""
    if (x.device.type != "cpu" or torch.compiler.is_compiling() or not torch._C._get_mkldnn_enabled()
            or not _lower_precision(x)):
        return _OPS[mode](x, *args)
    try:
        return _OPS[mode](x, *args)
    except RuntimeError as e:
        if "primitive descriptor" not in str(e):
            raise
    torch._C._set_mkldnn_enabled(False)  # (torch.backends.mkldnn.flags would warn about TF32 on every call)
    try:
        return _OPS[mode](x, *args)
    finally:
        torch._C._set_mkldnn_enabled(True)


def _op(mode: str, x: Tensor, h: Tensor, c: Optional[Tensor], weights: Sequence[Tensor], bias: bool,
        num_layers: int, dropout: float, training: bool, bidirectional: bool) -> Result:
    res = _call_op(mode, x, _hx(mode, h, c), list(weights), bias, num_layers, dropout, training, bidirectional, False)
    return res[0], res[1], (res[2] if mode == "LSTM" else None)


def _op_packed(mode: str, data: Tensor, batch_sizes: Tensor, h: Tensor, c: Optional[Tensor],
               weights: Sequence[Tensor], bias: bool, num_layers: int, dropout: float, training: bool,
               bidirectional: bool) -> Result:
    res = _call_op(mode, data, batch_sizes, _hx(mode, h, c), list(weights), bias, num_layers, dropout, training,
                   bidirectional)
    return res[0], res[1], (res[2] if mode == "LSTM" else None)


def run_whole(mode: str, x: Tensor, h0: Tensor, c0: Optional[Tensor], weights: Sequence[Tensor], *, bias: bool,
              num_layers: int, dropout: float, training: bool, bidirectional: bool) -> Result:
    """All sequences full: ``x`` (T, B, F) -> output (T, B, D*P), h_n (L*D, B, P), c_n."""
    return _op(mode, x, h0, c0, weights, bias, num_layers, dropout, training, bidirectional)


def run_packed(mode: str, x: Tensor, lengths: Tensor, h0: Tensor, c0: Optional[Tensor], weights: Sequence[Tensor], *,
               bias: bool, num_layers: int, dropout: float, training: bool, bidirectional: bool) -> Result:
    """Variable lengths by packing. ``x`` (T, B, F), ``lengths`` (B,) may hold zeros."""
    def op(data, batch_sizes, h, c):
        return _op_packed(mode, data, batch_sizes, h, c, weights, bias, num_layers, dropout, training, bidirectional)

    return packed_call(op, x, lengths, h0, c0, h0.shape[-1] * (2 if bidirectional else 1))


def packed_call(op, x: Tensor, lengths: Tensor, h0: Tensor, c0: Optional[Tensor], out_size: int) -> Result:
    """``op(data, batch_sizes, h, c) -> (data, h, c)`` on the packed form of the padded ``x``
    (T, B, F), rows sorted by length for it and put back after; zero-length rows (which packing
    refuses) are taken out first: their outputs are zero and their states stay h_0 (c_0)."""
    T, B = x.shape[:2]
    keep = None
    if bool((lengths == 0).any()):
        keep = (lengths > 0).nonzero().squeeze(1)
        x, lengths = x.index_select(1, keep), lengths.index_select(0, keep)
        h_in = h0.index_select(1, keep)
        c_in = None if c0 is None else c0.index_select(1, keep)
    else:
        h_in, c_in = h0, c0
    if x.shape[1] == 0:
        return x.new_zeros(T, B, out_size), h0, c0
    packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
    order = packed.sorted_indices
    data, h, c = op(packed.data, packed.batch_sizes, h_in.index_select(1, order),
                    None if c_in is None else c_in.index_select(1, order))
    out, _ = pad_packed_sequence(PackedSequence(data, packed.batch_sizes, order, packed.unsorted_indices),
                                 total_length=T)
    h = h.index_select(1, packed.unsorted_indices)
    c = None if c is None else c.index_select(1, packed.unsorted_indices)
    if keep is None:
        return out, h, c
    full = out.new_zeros(T, B, out.shape[-1]).index_copy(1, keep, out)
    h = h0.index_copy(1, keep, h)
    c = None if c is None else c0.index_copy(1, keep, c)
    return full, h, c


def plan_chunks(sorted_lengths: Sequence[int], *, overhead: float, max_candidates: int = 48) -> List[Tuple[int, int, int]]:
    """Cut time into chunks ``(start, stop, rows)`` minimising ``sum((stop-start)*rows + overhead)``.

    ``sorted_lengths`` is descending; ``rows`` is how many sequences are still running at
    ``start``. Boundaries are chosen among the distinct lengths by dynamic programming.

    >>> plan_chunks([8, 8, 2, 1], overhead=0.0)
    [(0, 1, 4), (1, 2, 3), (2, 8, 2)]
    >>> plan_chunks([8, 8, 2, 1], overhead=100.0)
    [(0, 8, 4)]
    """
    lengths = [int(v) for v in sorted_lengths if v > 0]
    if not lengths:
        return []
    cands = sorted(set(lengths))
    if len(cands) > max_candidates:  # keep the longest and evenly spaced quantiles
        step = len(cands) / max_candidates
        cands = sorted({cands[int(k * step)] for k in range(max_candidates)} | {cands[-1]})
    points = [0] + cands

    def active(t: int) -> int:
        return sum(1 for v in lengths if v > t)

    rows = [active(p) for p in points]
    best = [0.0] + [float("inf")] * (len(points) - 1)
    prev = [0] * len(points)
    for j in range(1, len(points)):
        for i in range(j):
            cost = best[i] + (points[j] - points[i]) * rows[i] + overhead
            if cost < best[j]:
                best[j], prev[j] = cost, i
    plan, j = [], len(points) - 1
    while j > 0:
        i = prev[j]
        plan.append((points[i], points[j], rows[i]))
        j = i
    return plan[::-1]


def _freeze_column(mode: str, gates: int, hidden: int, like: Tensor) -> Optional[Tensor]:
    signs = _FREEZE.get(mode)
    if signs is None:
        return None
    big = 1e30 if like.dtype != torch.float16 else 8e3
    col = like.new_zeros(gates * hidden, 1)
    for k, sign in signs.items():
        col[k * hidden:(k + 1) * hidden] = sign * big
    return col


def run_chunked(mode: str, gates: int, x: Tensor, lengths: Tensor, h0: Tensor, c0: Optional[Tensor],
                weights: Sequence[Sequence[Sequence[Tensor]]], *, bias: bool, dropout: float, training: bool,
                overhead_steps: float = 3.0) -> Result:
    """Variable lengths without packing (see the module doc).

    Args:
        x: (T, B, F), zero at padded steps. lengths: (B,) int64 on x's device.
        weights: ``weights[l][d]`` is torch.nn's ``[w_ih, w_hh, (b_ih, b_hh), (w_hr)]``.
        overhead_steps: the cost of one more op call, in full-batch time steps.
    """
    T, B = x.shape[:2]
    L, D = len(weights), len(weights[0])
    srt, order = lengths.sort(descending=True, stable=True)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(B, device=order.device)
    plan = plan_chunks(srt.tolist(), overhead=overhead_steps * B)
    valid = mask_from_lengths(srt, T).unsqueeze(-1)  # (T, B, 1)
    flip = reverse_index(srt, T).unsqueeze(-1)  # (T, B, 1)
    last = (srt - 1).clamp(min=0).view(1, B, 1)
    nonempty = (srt > 0).view(B, 1)
    pad_col = (~valid).to(x.dtype)
    inp = x.index_select(1, order)
    h0, c0 = h0.index_select(1, order), (None if c0 is None else c0.index_select(1, order))
    h_n: List[Tensor] = []
    c_n: List[Tensor] = []
    for l in range(L):
        outs = []
        for d in range(D):
            w = list(weights[l][d])
            xin = inp if d == 0 else inp.gather(0, flip.expand_as(inp))
            H = w[1].shape[0] // gates
            col = _freeze_column(mode, gates, H, w[0])
            if col is not None:
                xin = torch.cat([xin, pad_col], -1)
                w[0] = torch.cat([w[0], col], 1)
            row = l * D + d
            h, c = h0[row], (None if c0 is None else c0[row])  # (B, P), (B, H)
            pieces = []
            for start, stop, n in plan:
                o, hn, cn = _op(mode, xin[start:stop, :n], h[:n].unsqueeze(0),
                                None if c is None else c[:n].unsqueeze(0), w, bias, 1, 0.0, training, False)
                pieces.append(o if n == B else F.pad(o, (0, 0, 0, B - n)))
                h = hn[0] if n == B else torch.cat([hn[0], h[n:]], 0)
                if c is not None:
                    c = cn[0] if n == B else torch.cat([cn[0], c[n:]], 0)
            P = h0.shape[-1]
            o = torch.cat(pieces, 0) if pieces else x.new_zeros(0, B, P)
            if o.shape[0] < T:
                o = F.pad(o, (0, 0, 0, 0, 0, T - o.shape[0]))
            o = torch.where(valid, o, 0.0)  # (T, B, P)
            h_last = o.gather(0, last.expand(1, B, P))[0]
            h_n.append(torch.where(nonempty, h_last, h0[row]))
            if c is not None:
                c_n.append(c)
            outs.append(o if d == 0 else o.gather(0, flip.expand_as(o)))
        inp = torch.cat(outs, -1) if D == 2 else outs[0]
        if dropout > 0 and training and l < L - 1:
            inp = F.dropout(inp, dropout, True)
    out = inp.index_select(1, inverse)
    h = torch.stack(h_n, 0).index_select(1, inverse)
    c = torch.stack(c_n, 0).index_select(1, inverse) if c_n else None
    return out, h, c


class Native:
    paths = ("torch", "torch-chunked", "torch-packed")
    capabilities = Capabilities("PyTorch's fused op", uses=frozenset({"proj_size"}), cells=frozenset(_OPS),
                                says=unexpressible)

    def supports(self, plan: LayerPlan) -> Optional[str]:
        return self.capabilities.refuses(plan) or self.traced_blocker(plan)

    @staticmethod
    def traced_blocker(plan: LayerPlan) -> Optional[str]:
        """Why the op cannot be recorded in the graph being traced (compile, torch.func), or None."""
        if plan.mode == "LSTM" and plan.needs_grad and plan.x.device.type == "cpu" and torch.compiler.is_compiling():
            return ("LSTM training under torch.compile on CPU: PyTorch's fused op cannot be compiled there "
                    "(aten.mkldnn_rnn_layer, pytorch#158007); the reference loop")
        if torch._C._are_functorch_transforms_active():
            return ("under a torch.func transform (vmap, grad): the masked loop, which has no data-dependent "
                    "control flow and batches per sample")
        if plan.lengths is not None and torch.compiler.is_compiling():
            return "variable lengths under torch.compile: the masked loop has no data-dependent control flow"
        return None

    def run(self, plan: LayerPlan, path: str) -> Ran:
        if (plan.between is None or plan.between_is_dropout) and not plan.want_layers:
            out, h, c = _call(path, plan, plan.weights, plan.x, plan.h0, plan.c0, plan.dropout)
            return Ran(out, h, c)
        return stack(plan, lambda l, inp, h0, c0: (*_call(path, plan, plan.weights[l:l + 1], inp, h0, c0, 0.0), None))


def _call(path: str, plan: LayerPlan, weights, x, h0, c0, dropout: float):
    """The op on ``weights[l][d]`` (one or all layers): (output (T, B, D*P), h_n, c_n)."""
    common = dict(bias=plan.bias, dropout=dropout, training=plan.training)
    if path == "torch-chunked":
        return run_chunked(plan.mode, plan.spec.gates, x, plan.lengths, h0, c0, weights, **common)
    flat = [w for layer in weights for direction in layer for w in direction]
    shape = dict(num_layers=len(weights), bidirectional=plan.num_directions == 2)
    if path == "torch":
        return run_whole(plan.mode, x, h0=h0, c0=c0, weights=flat, **shape, **common)
    return run_packed(plan.mode, x, lengths=plan.lengths, h0=h0, c0=c0, weights=flat, **shape, **common)
