"""``bridge``: turn a bidirectional encoder's final states into a unidirectional decoder's h_0.

An encoder with ``L`` layers and ``D = 2`` directions returns ``h_n`` (L*D, B, P) ordered
``[l0-fwd, l0-bwd, l1-fwd, ...]``; a unidirectional ``L``-layer decoder wants (L, B, P').

==========  ==================================  ======================================
mode        decoder state per layer l           decoder hidden size P'
==========  ==================================  ======================================
concat      ``cat(fwd_l, bwd_l)``               2P (size the decoder's hidden_size so)
sum         ``fwd_l + bwd_l``                   P
ave         ``(fwd_l + bwd_l) / 2``             P
forward     ``fwd_l``                           P
backward    ``bwd_l``                           P
==========  ==================================  ======================================

>>> import torch
>>> h_n = torch.arange(8.).view(4, 1, 2)   # L=2, D=2, B=1, P=2: rows l0f, l0b, l1f, l1b
>>> bridge(h_n, num_layers=2, mode="concat")[:, 0].tolist()
[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
>>> bridge(h_n, num_layers=2, mode="sum")[:, 0].tolist()
[[2.0, 4.0], [10.0, 12.0]]
"""

from __future__ import annotations

import numbers
from typing import Callable, Dict, Tuple, Union

import torch
from torch import Tensor

from .errors import ArgumentTypeError

__all__ = ["BRIDGES", "bridge"]

BRIDGES: Dict[str, Callable[[Tensor], Tensor]] = {  # each maps (L, D, B, P) -> (L, B, P')
    "concat": lambda v: torch.cat([v[:, 0], v[:, 1]], -1),
    "sum": lambda v: v[:, 0] + v[:, 1],
    "ave": lambda v: (v[:, 0] + v[:, 1]) / 2,
    "forward": lambda v: v[:, 0],
    "backward": lambda v: v[:, 1],
}

States = Union[Tensor, Tuple[Tensor, Tensor]]


def bridge(states: States, num_layers: int, mode: str = "concat") -> States:
    """Bridge ``h_n`` (L*D, B, P) — or the LSTM pair ``(h_n, c_n)`` — to (L, B, P').

    A unidirectional encoder's states (D = 1) pass through unchanged for every mode.
    """
    if isinstance(num_layers, bool) or not isinstance(num_layers, numbers.Integral) or num_layers < 1:
        raise ArgumentTypeError(f"num_layers must be an int >= 1 (the encoder's layers), got "
                                f"{type(num_layers).__name__} {num_layers!r}")
    if not isinstance(mode, str) or mode not in BRIDGES:
        raise ValueError(f"mode must be one of {sorted(BRIDGES)}; got {mode!r}")
    if isinstance(states, (tuple, list)):
        if len(states) != 2:
            raise ValueError(f"states must be h_n or the LSTM pair (h_n, c_n), got a sequence of {len(states)}")
        h, c = states
        if isinstance(h, Tensor) and isinstance(c, Tensor) and (h.dim() != 3 or c.dim() != 3
                                                                 or h.shape[:2] != c.shape[:2]):
            raise ValueError(f"h_n {tuple(h.shape)} and c_n {tuple(c.shape)} must agree on (L*D, B)")
        return tuple(bridge(s, num_layers, mode) for s in states)
    if not isinstance(states, Tensor) or states.dim() != 3:
        got = f"{states.dim()}-D tensor" if isinstance(states, Tensor) else type(states).__name__
        raise ValueError(f"states must be h_n of shape (L*D, B, P) or a pair (h_n, c_n), got a {got}")
    rows = states.shape[0]
    if rows % num_layers or rows // num_layers not in (1, 2):
        raise ValueError(f"states have {rows} rows, which is not num_layers={num_layers} times 1 or 2 directions")
    D = rows // num_layers
    if D == 1:
        return states
    return BRIDGES[mode](states.view(num_layers, D, *states.shape[1:]))
