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
  of a small C++ kernel (:mod:`birnn.backends.packed.cpu_kernel`, :class:`birnn.backends.packed.kernel_steps.KernelLSTM`), on CPU in float32 and
  float64. In bfloat16, or without a C++ compiler, the same steps run as PyTorch's fused ops (:class:`birnn.backends.packed.steps.PackedLSTM`: its sigmoid/tanh/layer-norm backward ops).

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

from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...cells import StepWeights
from .cpu_kernel import kernel
from .kernel_steps import KernelLSTM
from .prepacked import linear
from .steps import Inputs, PackedLSTM, Schedule

__all__ = ["CELLS", "DEVICES", "Packing", "packed_lstm_layer", "packing", "runs"]

CELLS = ("LSTM",)  # the step written out here (the backend's capabilities, birnn.backends.packed, read these)
DEVICES = ("cpu",)  # what it was built and measured for (no GPU has run it)


def runs(mode: str, device: torch.device) -> bool:
    """Whether this layer runs the cell ``mode`` on ``device`` (a regularised layer whose other
    options it runs: what the ``birnn::regularised_layer`` graph node asks)."""
    return mode in CELLS and device.type in DEVICES

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
        inputs = Inputs(xp, h0.index_select(1, perm), c0.index_select(1, perm), w.hh_t, ln_x, b_x, w.ln_h, ln_cw,
                         ln_cb, drop, packed_mask(keep_h), packed_mask(keep_c))
        sched = Schedule(tuple(float(r) for r in rates), tuple(pk.sizes))
        kern = kernel(xp)
        if kern is not None:
            inputs = Inputs(*(None if a is None else a.contiguous() for a in inputs))
            y, h_n, c_n = KernelLSTM.apply(sched, kern, *inputs)
        else:
            y, h_n, c_n = PackedLSTM.apply(sched, *inputs)
    else:  # every sequence is empty
        y, h_n, c_n = xp.new_zeros(D, 0, H), h0.index_select(1, perm), c0.index_select(1, perm)
    inv = torch.argsort(perm)
    out = torch.cat([y.new_zeros(T * B, H).index_copy(0, pk.index[d], y[d]) for d in range(D)], 1)
    return out.view(T, B, D * H), h_n.index_select(1, inv), c_n.index_select(1, inv)
