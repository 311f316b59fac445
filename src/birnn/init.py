"""Weight initialisation schemes: torch.nn's uniform, orthogonal and Xavier.

Weights are given per layer and direction in torch.nn's layout
``[w_ih (G*H, F), w_hh (G*H, P), (b_ih, b_hh (G*H,)), (w_hr (P, H))]``; schemes other than
"torch" initialise each gate block on its own (an orthogonal W_hh has orthogonal blocks).

>>> import torch
>>> w = [torch.empty(8, 3), torch.empty(8, 2), torch.empty(8), torch.empty(8)]   # LSTM, H=2
>>> initialise([w], scheme="orthogonal", gates=4, hidden_size=2)
>>> w[2].tolist()                     # biases start at 0
[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
>>> blk = w[1][:2]                    # one gate block of W_hh is orthogonal
>>> torch.allclose(blk @ blk.T, torch.eye(2), atol=1e-6)
True
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor
from torch.nn import init

__all__ = ["initialise"]


@torch.no_grad()
def initialise(weights: Sequence[Sequence[Tensor]], *, scheme: str, gates: int, hidden_size: int,
               recurrent: bool = True) -> None:
    """Initialise torch.nn-layout weights in place (see the module doc); ``recurrent=False``: a
    linear cell's ``[w_ih, (b_ih)]`` (no W_hh)."""
    if scheme == "torch":  # torch.nn's draws, in torch.nn's order
        stdv = 1.0 / math.sqrt(hidden_size)
        for group in weights:
            for w in group:
                init.uniform_(w, -stdv, stdv)
    else:
        for group in weights:
            for block in group[0].chunk(gates, 0):  # w_ih
                init.xavier_uniform_(block)
            if recurrent:
                for block in group[1].chunk(gates, 0):  # w_hh
                    init.orthogonal_(block) if scheme == "orthogonal" else init.xavier_uniform_(block)
            for w in group[1 + recurrent:]:
                init.zeros_(w) if w.dim() == 1 else init.xavier_uniform_(w)  # biases; w_hr
