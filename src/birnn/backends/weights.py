"""One layer's weights in the layout the engines read: both directions stacked, gate blocks in
the step's order (:class:`birnn.cells.CellSpec`), with the regularisers' extras.

What a call's plan builds once (:meth:`birnn.backends.plan.LayerPlan.step_layers`) and the
reference scan, the packed LSTM, the fused kernel and the regularised graph node read.
Symbols: ``D`` directions, ``B`` batch, ``F`` input features, ``G`` gates, ``H`` hidden size,
``P`` recurrence output size (``proj_size`` or ``H``), ``T`` time.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from ..cells import CellSpec, StepWeights

__all__ = ["Highway", "LayerWeights", "Norms", "Zoneout", "layer_weights", "step_weights"]


class Highway(NamedTuple):
    """AllenNLP AugmentedLstm's highway: ``h = r * h_cell + (1 - r) * x W_p`` with
    ``r = σ(x W_r + h_{t-1} W_rh + b)``."""

    w_x: Tensor  # (D, F, 2H): input projections [gate | highway input]
    hh_t: Tensor  # (D, P, H)
    bias: Tensor  # (D, 1, H)


class Zoneout(NamedTuple):
    """Zoneout (Krueger et al. 2016) of one layer: masks in training, expectation in eval."""

    rate_h: float
    rate_c: float
    keep_h: Optional[Tensor] = None  # (T, D, B, P) 0/1 in the state's dtype, training only: 1 keeps h_{t-1}
    keep_c: Optional[Tensor] = None  # (T, D, B, H) 0/1 in the state's dtype, training only: 1 keeps c_{t-1}


class LayerWeights(NamedTuple):
    """One layer's weights, both directions stacked, in the layout the reference loop uses."""

    w_ih: Tensor  # (D*G*H, F)
    b_in: Optional[Tensor]  # (D*G*H,) bias added to the input projection (after its norm)
    step: StepWeights
    ln_x: Optional[Tensor] = None  # (D, 1, G*H) gain of the input projection's layer norm
    highway: Optional[Highway] = None
    zoneout: Optional[Zoneout] = None


def layer_weights(spec: CellSpec, directions: Sequence[Sequence[Tensor]], *, bias: bool, proj: bool,
                  **extras) -> LayerWeights:
    """Stack torch.nn-layout parameters ``[w_ih, w_hh, (b_ih, b_hh), (w_hr)]`` (a linear cell's
    ``[w_ih, (b_ih)]``, :attr:`birnn.cells.CellSpec.linear`) per direction,
    gate blocks reordered as the cell's step reads them. ``extras`` fill the other fields of
    :class:`LayerWeights` (step extras go in via ``step_extras``)."""
    order = spec.to_step_order
    w_ih = torch.cat([order(p[0]) for p in directions], 0)
    if spec.linear:  # [w_ih, (b_ih)]: no W_hh, one bias
        b_in = torch.cat([order(p[1]) for p in directions], 0) if bias else None
        return LayerWeights(w_ih, b_in, StepWeights(None, **extras.pop("step_extras", {})), **extras)
    hh_t = torch.stack([order(p[1]).t() for p in directions], 0)
    b_in = b_hh = None
    if bias:
        b_ih = torch.cat([order(p[2]) for p in directions], 0)
        if spec.hidden_bias_in_step:
            b_in = b_ih
            b_hh = torch.stack([order(p[3]) for p in directions], 0).unsqueeze(1)
        else:
            b_in = b_ih + torch.cat([order(p[3]) for p in directions], 0)
    hr_t = torch.stack([p[-1].t() for p in directions], 0) if proj else None
    step = StepWeights(hh_t, b_hh, hr_t, **extras.pop("step_extras", {}))
    return LayerWeights(w_ih, b_in, step, **extras)


class Norms(NamedTuple):
    """A layer's layer-norm gains (and the LSTM cell norm's bias), directions stacked, in
    torch.nn's gate order: ``ih``, ``hh`` (D, G*H); ``cell_w``, ``cell_b`` (D, H) or None."""

    ih: Tensor
    hh: Tensor
    cell_w: Optional[Tensor] = None
    cell_b: Optional[Tensor] = None


def step_weights(spec: CellSpec, directions: Sequence[Sequence[Tensor]], *, bias: bool, proj: bool,
                 norms: Optional[Norms] = None, drop_h: Optional[Tensor] = None,
                 zoneout: Optional[Zoneout] = None, highway: Optional[Highway] = None) -> LayerWeights:
    """One layer's :class:`LayerWeights` with its extras: torch.nn-layout ``directions``, the
    layer norms (:class:`Norms`), the recurrent dropout mask ``drop_h`` (D, B, P), zoneout and
    highway; gate blocks reordered as the step reads them. What a call's plan and the
    regularised graph node (:mod:`birnn.backends.graph`) both build."""
    extras: dict = {}
    step: dict = {}
    if drop_h is not None:
        step["drop_h"] = drop_h
    if norms is not None:
        order = spec.to_step_order
        extras["ln_x"] = torch.stack([order(g) for g in norms.ih]).unsqueeze(1)
        step["ln_h"] = torch.stack([order(g) for g in norms.hh]).unsqueeze(1)
        if norms.cell_w is not None:
            step["ln_c"] = (norms.cell_w.unsqueeze(1), norms.cell_b.unsqueeze(1))
    if highway is not None:
        extras["highway"] = highway
    if zoneout is not None:
        extras["zoneout"] = zoneout
    return layer_weights(spec, directions, bias=bias, proj=proj, step_extras=step, **extras)
