"""``Recurrent``: run any step cell over a padded batch, honouring lengths (Keras ``RNN(cell)``).

The step-cell protocol is small: a module with

- ``input_size`` (int), and
- ``forward(x_t, state) -> (y_t, new_state)`` with ``x_t`` (B, I), ``y_t`` (B, P) and
  ``state`` a tensor ``h`` (B, P) or a pair ``(h, c)``;
- optionally ``initial_state(batch_size, *, device, dtype)``; without it the initial state
  must be passed as ``hx``.

``torch.nn.RNNCell``, ``GRUCell`` and ``LSTMCell`` are accepted as they are.

At padded steps the state is kept and the output is zero, so ``h_n`` is the state after each
sequence's last real step. The result is a :class:`~birnn.output.RecurrentOutput` with one
layer and one direction; wrap in :class:`~birnn.bidirectional.Bidirectional` for two.

>>> import torch
>>> rec = Recurrent(torch.nn.GRUCell(4, 3))
>>> out, h_n = rec(torch.randn(6, 2, 4), lengths=torch.tensor([6, 2]))
>>> out.shape, h_n.shape, bool(torch.equal(h_n[0, 1], out[1, 1]))
(torch.Size([6, 2, 3]), torch.Size([1, 2, 3]), True)
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .arguments import _check_tensor, input_shape, prepare_call
from .batch import mask_from_lengths
from .errors import ShapeError
from .output import RecurrentOutput

__all__ = ["Recurrent", "TorchCell"]


class TorchCell(nn.Module):
    """Adapt ``torch.nn.RNNCell``/``GRUCell``/``LSTMCell`` to the step-cell protocol."""

    def __init__(self, cell: nn.RNNCellBase) -> None:
        super().__init__()
        self.cell = cell
        self.input_size = cell.input_size
        self.is_lstm = isinstance(cell, nn.LSTMCell)

    def initial_state(self, batch_size: int, *, device, dtype):
        h = torch.zeros(batch_size, self.cell.hidden_size, device=device, dtype=dtype)
        return (h, h.clone()) if self.is_lstm else h

    def forward(self, x_t: Tensor, state):
        new = self.cell(x_t, state)
        return (new[0], new) if self.is_lstm else (new, new)


def _initial(hx, batch: int, unbatched: bool, shape, size: Optional[int]):
    """``hx`` — h_0 (1, B, P), or a tuple of such (LSTM: (h_0, c_0)); (1, P) for an unbatched
    input — checked (dtype and device as the cell's parameters, P the cell's ``hidden_size`` where
    it has one), without its leading one-layer axis."""
    parts = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
    out = []
    for k, t in enumerate(parts):
        name = "hx" if len(parts) == 1 else f"hx[{k}]"
        _check_tensor(name, t, shape)
        P = "P" if size is None else f"P={size}"
        want = f"(1, {P})" if unbatched else f"(1, B={batch}, {P})"
        if (t.dim() != (2 if unbatched else 3) or t.shape[0] != 1 or (not unbatched and t.shape[1] != batch)
                or (size is not None and t.shape[-1] != size)):
            raise ShapeError(f"{name} must have shape {want} (one layer, one direction), got {tuple(t.shape)}")
        out.append(t if unbatched else t[0])  # unbatched: (1, P) is already (B=1, P)
    return tuple(out) if isinstance(hx, (tuple, list)) else out[0]


def _states(state):
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


class Recurrent(nn.Module):
    """Run a step cell (see the module doc) over time, with lengths or a mask.

    Args:
        cell: a step cell, or a torch.nn RNNCell/GRUCell/LSTMCell.
        batch_first: input and output are (B, T, ·) instead of (T, B, ·).
    """

    num_layers = 1
    bidirectional = False

    def __init__(self, cell: nn.Module, *, batch_first: bool = False) -> None:
        super().__init__()
        if isinstance(cell, nn.RNNCellBase):
            cell = TorchCell(cell)
        if not hasattr(cell, "input_size"):
            raise TypeError(f"cell must have an input_size attribute (the step-cell protocol); "
                            f"{type(cell).__name__} has none")
        self.cell = cell
        self.batch_first = batch_first

    def reset_parameters(self) -> None:
        for m in self.cell.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, input, hx=None, *, lengths=None, mask=None, padding: str = "right",
                cu_seqlens=None) -> RecurrentOutput:
        """``input``, ``lengths``, ``mask``, ``padding`` and ``cu_seqlens`` as for birnn's layers
        (:meth:`birnn.RecurrentLayer.forward`); ``hx`` the cell's state with a leading 1."""
        shape = input_shape(self.cell.input_size, self.batch_first, self.cell, input)
        call = prepare_call(input, None, lengths, mask, shape, padding=padding, cu_seqlens=cu_seqlens)
        x = call.x  # (T, B, I)
        T, B = x.shape[:2]
        if hx is None:
            if not hasattr(self.cell, "initial_state"):
                raise ValueError("hx is required: the cell has no initial_state(batch_size, device=, dtype=) method")
            state = self.cell.initial_state(B, device=x.device, dtype=x.dtype)
        else:
            state = _initial(hx, B, call.unbatched, shape, getattr(getattr(self.cell, "cell", self.cell),
                                                                       "hidden_size", None))
        steps = T if call.lengths is None else int(call.lengths.max()) if B else 0
        valid = None if call.lengths is None else mask_from_lengths(call.lengths, T)  # (T, B)
        ys = []
        for t, x_t in enumerate(x[:steps].unbind(0)):
            y, new = self.cell(x_t, state)
            if valid is None:
                state = new
            else:
                m = valid[t].view(-1, 1)
                state = tuple(torch.where(m, n, o) for n, o in zip(_states(new), _states(state)))
                state = state if isinstance(new, (tuple, list)) else state[0]
                y = torch.where(m, y, 0.0)
            ys.append(y)
        parts = _states(state)
        # (steps, B, P); with no step to run (T=0, or only empty sequences) P is the state's size
        seq = torch.stack(ys, 0) if ys else x.new_zeros(0, B, parts[0].shape[-1])
        if steps < T:
            seq = torch.cat([seq, seq.new_zeros(T - steps, *seq.shape[1:])], 0)
        h_n = parts[0].unsqueeze(0)
        c_n: Optional[Tensor] = parts[1].unsqueeze(0) if len(parts) > 1 else None
        output = call.layout(seq, self.batch_first)
        if call.unbatched:
            h_n = h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        return RecurrentOutput(output, h_n, c_n, sequence=seq, lengths=call.user_lengths, num_layers=1,
                               num_directions=1, merge_mode="concat", batch_first=self.batch_first,
                               unbatched=call.unbatched, path="reference")
