"""The scan backend: linear cells (minGRU, minLSTM) as one parallel scan over time.

A linear cell's gates read only the input (:attr:`birnn.cells.CellSpec.coefficients`), so
its recurrence is ``h_t = a_t * h_{t-1} + b_t`` with every ``(a_t, b_t)`` known before the
loop: the whole sequence is one scan, :func:`birnn.backends.scan.linear.linear_scan` (on
CPU birnn's C++ pass over time, vectorised over the channels; elsewhere a doubling scan in
``ceil(log2 T)`` vectorised levels; under graph capture a fixed-depth doubling graph). No loop
over T in Python; no logarithms: decays in (0, 1) only shrink, so float32 is stable at any T.

Symbols: ``T`` time, ``D`` directions, ``B`` batch, ``H`` hidden size, ``G`` gates.

Lengths, padding and resets are folded into the coefficients before the scan, in each
direction's processing order (the backward direction reads each sequence reversed within its
real part, :func:`birnn.backends.reference.walk`):

- a padded step is the identity ``(a, b) = (1, 0)``: the state passes through unchanged, so
  the last step holds each sequence's state at its last real step (``h_n``), an empty
  sequence keeps ``h_0``, and the padded steps' outputs are zero (masked after the scan);
- the scan starts from ``h_0``, and every real step marked in ``resets`` starts from it
  again: ``(a, b) -> (0, b + a * h_0)``.

Gradients: eagerly the scan keeps only ``a`` and the outputs ``h`` (T, D, B, H); its backward
is the same recurrence run backwards in time (``δ_t = g_t + a_{t+1} δ_{t+1}``; ``da_t =
δ_t h_{t-1}``, ``db_t = δ_t``), so training stores nothing per level or per step beyond them.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ...cells import CELLS, CellSpec
from ..base import Capabilities
from ..plan import LayerPlan
from ..reference import Walk, gate_inputs, natural, walk
from ..multilayer import Ran, stack
from ..weights import LayerWeights
from .linear import CELL_KERNELS, MAX_DEPTH, cell_kernel_runs, cell_scan, kernel_unavailable, linear_scan

__all__ = ["Scan", "linear_scan", "scan_layer"]

def scan_layer(spec: CellSpec, w: LayerWeights, inp: Tensor, lengths: Optional[Tensor], h0: Tensor, shared: Walk
               ) -> Tuple[Tensor, Tensor, None, None]:
    """One layer of a linear cell, both directions, on a time-major padded batch.

    Args:
        inp: (T, B, F) layer input, zero at padded steps.
        lengths: (B,) int64 or None; h0: (D, B, H); shared: the call's
            :func:`birnn.backends.reference.walk`.

    Returns:
        output (T, B, D*H), zero at padded steps; h_n (D, B, H) at each sequence's last real
        step (``h_0`` for an empty one); no cell state.
    """
    T = inp.shape[0]
    D, steps = h0.shape[0], shared.steps
    if steps == 0:  # every sequence is empty: outputs are zero and the state stays h_0
        return natural(h0.new_zeros(0, *h0.shape), 0, T, lengths), h0, None, None
    xs = gate_inputs(w, inp, lengths, D)[1]
    xs = xs if steps == T else xs[:steps]  # (steps, D, B, G*H)
    if cell_kernel_runs(spec.mode, xs):  # the cell whole in C++: gates, coefficients, scan
        valid = None if shared.valid is None else shared.valid[:steps]
        h = cell_scan(spec.mode, xs, h0, valid, None if shared.resets is None else shared.resets[:steps])
        ys = h if valid is None else torch.where(valid.view(steps, 1, -1, 1), h, 0.0)
        return natural(ys, steps, T, lengths), h[-1], None, None  # (padded steps keep the state exactly)
    a, b = spec.coefficients(xs)  # each (steps, D, B, H)
    valid = None if shared.valid is None else shared.valid[:steps].view(steps, 1, -1, 1)
    if valid is not None:  # padded steps pass the state through
        a = torch.where(valid, a, 1.0)
        b = torch.where(valid, b, 0.0)
    if shared.resets is not None:  # each marked real step starts from h_0 again
        r = shared.resets[:steps].unsqueeze(-1)
        r = r if valid is None else r & valid
        b = torch.where(r, torch.addcmul(b, a, h0), b)
        a = torch.where(r, 0.0, a)
    h = linear_scan(a, b, h0)  # (steps, D, B, H), from h_0
    if valid is None:
        return natural(h, steps, T, lengths), h[-1], None, None
    # h_n: each sequence's own last real step (its output, bit for bit), h_0 for an empty one
    last = (lengths - 1).clamp(min=0).view(1, 1, -1, 1).expand(1, D, -1, h.shape[-1])
    h_n = torch.where(lengths.view(1, -1, 1) > 0, h.gather(0, last)[0], h0)
    return natural(torch.where(valid, h, 0.0), steps, T, lengths), h_n, None, None


class _LinearCells:
    """The linear cells registered now (:attr:`birnn.cells.CellSpec.linear`), as a set of modes
    (a cell registered later is included: the scan runs any cell's coefficients)."""

    def __contains__(self, mode) -> bool:
        return mode in CELLS and CELLS[mode].linear

    def __iter__(self):
        return iter(sorted(mode for mode, spec in CELLS.items() if spec.linear))


class Scan:
    paths = ("scan",)
    # every device, dtype and capture mode (plain tensor ops); the calls' features go to the reference loop
    capabilities = Capabilities("the parallel scan", uses=frozenset({"resets"}),
                                cells=_LinearCells(),
                                says=lambda names: f"the parallel scan does not run {', '.join(names)} (the "
                                                   "reference loop does)")

    def supports(self, plan: LayerPlan) -> Optional[str]:
        return self.capabilities.refuses(plan)

    @staticmethod
    def describe(plan: LayerPlan) -> str:
        """Which scan runs ``plan`` (for its decision's reason)."""
        if plan.capture is not None or torch._C._functorch.is_functorch_wrapped_tensor(plan.x):
            return f"a fixed-depth doubling graph ({MAX_DEPTH} levels: any T up to {2 ** MAX_DEPTH:,})"
        why = kernel_unavailable() if plan.x.device.type == "cpu" else f"on {plan.x.device.type}"
        if plan.x.dtype not in (torch.float32, torch.float64):
            why = f"{plan.x.dtype}"
        if why is None:
            what = "the cell whole (gates, coefficients, scan)" if plan.mode in CELL_KERNELS else "the scan"
            return f"birnn's C++ kernel: {what} in one pass over T (birnn.backends.scan.linear)"
        return f"the doubling scan, ceil(log2 T) vectorised levels ({why})"

    def run(self, plan: LayerPlan, path: str = "scan") -> Ran:
        spec, layers = plan.spec, plan.step_layers()
        shared = walk(plan.x, plan.lengths, plan.num_directions, plan.resets)
        return stack(plan, lambda l, inp, h0, c0: scan_layer(spec, layers[l], inp, plan.lengths, h0, shared))

