"""``stack``: the one multi-layer loop every backend's layers run in.

A backend that runs one layer at a time gives :func:`stack` a function of one layer,
``layer(l, inp (T, B, F), h0 (D, B, P), c0 (D, B, H) or None) -> (out (T, B, D*P), h_n, c_n,
cells or None)``; the stack feeds each layer's output, through the plan's ``between``
(residual connections, dropouts), to the next, and gathers ``h_n`` / ``c_n`` as
``(L*D, B, ·)`` (row ``l*D + d``) and, when asked, every layer's output and cell states.
"""

from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .plan import LayerPlan

__all__ = ["Ran", "stack"]

OneLayer = Callable[[int, Tensor, Tensor, Optional[Tensor]],
                    Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]]


class Ran(NamedTuple):
    """What a backend returns: the stack's output and states, time-major."""

    output: Tensor  # (T, B, D*P): the last layer's output, after ``between`` (residual)
    h_n: Tensor  # (L*D, B, P)
    c_n: Optional[Tensor]  # (L*D, B, H) for LSTM
    layers: Optional[Tuple[Tensor, ...]] = None  # L x (T, B, D*P), before ``between`` (return_all="layers")
    cells: Optional[Tuple[Tensor, ...]] = None  # L x (T, B, D*H) (return_all="c")


def stack(plan: LayerPlan, layer: OneLayer) -> Ran:
    D = plan.num_directions
    inp = plan.x
    h_n: List[Tensor] = []
    c_n: List[Tensor] = []
    outs: List[Tensor] = []
    cells: List[Tensor] = []
    for l in range(plan.num_layers):
        rows = slice(l * D, (l + 1) * D)
        out, h, c, cell = layer(l, inp, plan.h0[rows], None if plan.c0 is None else plan.c0[rows])
        outs.append(out)
        if cell is not None:
            cells.append(cell)
        h_n.append(h)
        if c is not None:
            c_n.append(c)
        inp = out if plan.between is None else plan.between(l, inp, out)
    return Ran(inp, torch.cat(h_n, 0), torch.cat(c_n, 0) if c_n else None,
               tuple(outs) if plan.want_layers else None, tuple(cells) if plan.want_cells else None)
