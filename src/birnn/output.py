"""RecurrentOutput: what a birnn layer returns, with named parts, views and masked pooling.

Symbols: ``T`` time, ``B`` batch, ``L`` layers, ``D`` directions (2 if bidirectional),
``P`` per-direction output size (``proj_size`` or ``hidden_size``), ``H`` hidden size.

- ``output``: every time step of the *last* layer, (T, B, D*P) — or (B, T, D*P) with
  ``batch_first`` — for ``merge_mode="concat"``; (T, B, P) for sum/mul/ave; a pair
  (forward, backward) for ``merge_mode=None``; a PackedSequence if the input was packed.
- ``h_n``: the state after the *last real step* of *every* layer and direction, (L*D, B, P);
  row ``2*l + d`` is layer ``l``, direction ``d`` (0 forward, 1 backward), as in torch.nn.
  The backward direction's last step is the sequence's first token.
- ``c_n``: the LSTM cell states, (L*D, B, H); None for RNN/GRU.

It unpacks like torch.nn's result: ``output, h_n = gru(x)`` and
``output, (h_n, c_n) = lstm(x)``.

>>> import torch
>>> f, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 5.0]])
>>> [MERGES[m](f, b).tolist() for m in ("concat", "sum", "mul", "ave")]
[[[1.0, 2.0, 3.0, 5.0]], [[4.0, 7.0]], [[3.0, 10.0]], [[2.0, 3.5]]]
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple, Union

import torch
from torch import Tensor

from .batch import mask_from_lengths

__all__ = ["MERGES", "POOLS", "RecurrentOutput", "check_merge_mode", "merge"]

Merged = Union[Tensor, Tuple[Tensor, Tensor]]

MERGES: Dict[Optional[str], Callable[[Tensor, Tensor], Merged]] = {
    "concat": lambda f, b: torch.cat([f, b], -1),
    "sum": lambda f, b: f + b,
    "mul": lambda f, b: f * b,
    "ave": lambda f, b: (f + b) / 2,
    None: lambda f, b: (f, b),
}


def check_merge_mode(merge_mode) -> Optional[str]:
    if merge_mode not in MERGES:
        allowed = ", ".join(repr(k) for k in MERGES)
        raise ValueError(f"merge_mode must be one of {allowed}; got {merge_mode!r}")
    return merge_mode


def merge(per_direction: Tensor, merge_mode: Optional[str]) -> Merged:
    """Merge (..., D, P) into the layer's output; a single direction passes through as (..., P)."""
    if per_direction.shape[-2] == 1:
        return per_direction.squeeze(-2)
    return MERGES[merge_mode](per_direction[..., 0, :], per_direction[..., 1, :])


def _last(seq: Tensor, lengths: Tensor) -> Tensor:
    idx = (lengths - 1).clamp(min=0).view(1, -1, 1).expand(1, seq.shape[1], seq.shape[2])
    return torch.where((lengths > 0).view(-1, 1), seq.gather(0, idx)[0], 0.0)


def _mean(seq: Tensor, lengths: Tensor) -> Tensor:
    valid = mask_from_lengths(lengths, seq.shape[0]).unsqueeze(-1)
    total = torch.where(valid, seq, 0.0).sum(0)
    return total / lengths.clamp(min=1).view(-1, 1).to(seq.dtype)


def _max(seq: Tensor, lengths: Tensor) -> Tensor:
    valid = mask_from_lengths(lengths, seq.shape[0]).unsqueeze(-1)
    best = torch.where(valid, seq, float("-inf")).amax(0)
    return torch.where((lengths > 0).view(-1, 1), best, 0.0)


def _first(seq: Tensor, lengths: Tensor) -> Tensor:
    return torch.where((lengths > 0).view(-1, 1), seq[0], 0.0)


# Pooling over time of a time-major (T, B, F) output; padding never counts.
POOLS: Dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "last": _last,
    "first": _first,
    "mean": _mean,
    "max": _max,
}


class RecurrentOutput(tuple):
    """The result of a birnn layer: a 2-tuple ``(output, hidden)`` with named parts.

    ``hidden`` is ``h_n`` for RNN/GRU and ``(h_n, c_n)`` for LSTM, exactly as torch.nn.
    Attributes: ``output``, ``h_n``, ``c_n``, ``lengths`` ((B,) or None when all are full),
    ``num_layers``, ``num_directions``, ``merge_mode``, ``batch_first``, ``path`` (which
    implementation ran: see :mod:`birnn.dispatch`).
    """

    def __new__(cls, output, h_n: Tensor, c_n: Optional[Tensor], *, sequence: Tensor, lengths: Optional[Tensor],
                num_layers: int, num_directions: int, merge_mode: Optional[str], batch_first: bool,
                unbatched: bool = False, path: str = "reference"):
        self = super().__new__(cls, (output, h_n if c_n is None else (h_n, c_n)))
        self.output = output
        self.h_n = h_n
        self.c_n = c_n
        self.lengths = lengths
        self.num_layers = num_layers
        self.num_directions = num_directions
        self.merge_mode = merge_mode
        self.batch_first = batch_first
        self.unbatched = unbatched
        self.path = path
        self.layer_outputs = None  # return_all="layers": every layer's output, laid out as ``output``
        self.cell_states = None  # return_all="c": every layer's LSTM cell states at every step
        self._sequence = sequence  # unmerged, padded, time-major, batched: (T, B, D*P)
        return self

    def __getnewargs_ex__(self):
        return (self.output, self.h_n, self.c_n), dict(
            sequence=self._sequence, lengths=self.lengths, num_layers=self.num_layers,
            num_directions=self.num_directions, merge_mode=self.merge_mode, batch_first=self.batch_first,
            unbatched=self.unbatched, path=self.path)

    @property
    def time_major(self) -> Tensor:
        """The unmerged last-layer output, padded and time-major: (T, B, D*P), whatever the input form."""
        return self._sequence

    @property
    def hidden(self):
        """``h_n``, or ``(h_n, c_n)`` for an LSTM: the second item of the tuple."""
        return self[1]

    def __repr__(self) -> str:
        def shape(v):
            if v is None:
                return "None"
            if isinstance(v, tuple):
                return "(" + ", ".join(shape(x) for x in v) + ")"
            if isinstance(v, torch.nn.utils.rnn.PackedSequence):
                return f"PackedSequence(data={tuple(v.data.shape)})"
            return str(tuple(v.shape))

        return (f"RecurrentOutput(output={shape(self.output)}, h_n={shape(self.h_n)}, c_n={shape(self.c_n)}, "
                f"layers={self.num_layers}, directions={self.num_directions}, path={self.path!r})")

    # -- views ---------------------------------------------------------------------------------
    def _user_layout(self, t: Tensor) -> Tensor:
        if self.unbatched:
            return t[:, 0]
        return t.transpose(0, 1) if self.batch_first else t

    def _time_lengths(self) -> Tensor:
        T, B = self._sequence.shape[:2]
        if self.lengths is None:
            return torch.full((B,), T, dtype=torch.int64, device=self._sequence.device)
        return self.lengths

    def per_direction(self) -> Tensor:
        """The unmerged last-layer output split by direction: (T, B, D, P) or (B, T, D, P).

        ``[..., 0, :]`` is the forward direction, ``[..., 1, :]`` the backward one.
        """
        return self._user_layout(self._split_directions(self._sequence))

    def _split_directions(self, seq: Tensor) -> Tensor:
        """(T, B, D*P) -> (T, B, D, P), also for an empty batch (no ``-1`` to infer)."""
        D = self.num_directions
        return seq.unflatten(-1, (D, seq.shape[-1] // D))

    def per_layer(self, state: str = "h") -> Tensor:
        """``h_n`` (or ``c_n`` with ``state="c"``) as (L, D, B, P): ``[l, d]`` is layer l, direction d."""
        if state not in ("h", "c"):
            raise ValueError(f"state must be 'h' or 'c', got {state!r}")
        t = self.h_n if state == "h" else self.c_n
        if t is None:
            raise ValueError("state='c' needs an LSTM; this layer has no cell state")
        return t.view(self.num_layers, self.num_directions, *t.shape[1:])

    def mask(self) -> Tensor:
        """Boolean mask of real steps, laid out like the input: (T, B) or (B, T)."""
        T = self._sequence.shape[0]
        return mask_from_lengths(self._time_lengths(), T, batch_first=self.batch_first)

    def pool(self, kind: str = "final") -> Merged:
        """One vector per sequence, padding never counted: (B, D*P) for concat.

        - ``final``: forward state at the last real step and backward state at the first step,
          merged with the layer's merge_mode: the right input for a classifier. For a single
          direction it is the state at the last real step. It reads ``h_n``, so an empty
          sequence (length 0) pools to its ``h_0``: zeros, unless an initial state was passed
          or learned (the state after reading nothing, as ``h_n`` is).
        - ``last`` / ``first``: the output at the last real / the first step (for a
          bidirectional layer the backward half of ``last`` has seen one token only).
        - ``mean`` / ``max``: masked mean / max of the output over real steps.

        ``last``, ``first``, ``mean`` and ``max`` pool an empty sequence to zeros (it has no
        output step; Keras' last output of a fully masked row is zeros too).
        """
        D = self.num_directions
        if kind == "final":
            if D == 1:
                res = self.h_n[-1]
            else:
                res = MERGES[self.merge_mode](self.h_n[-2], self.h_n[-1])
        elif kind in POOLS:
            seq, lengths = self._sequence, self._time_lengths()
            per_dir = self._split_directions(seq)
            if D == 2 and self.merge_mode is None:
                return tuple(self._squeeze(POOLS[kind](per_dir[:, :, k], lengths)) for k in (0, 1))
            res = POOLS[kind](merge(per_dir, self.merge_mode), lengths)
        else:
            raise ValueError(f"kind must be one of {['final', *POOLS]}; got {kind!r}")
        return self._squeeze(res) if isinstance(res, Tensor) else tuple(self._squeeze(r) for r in res)

    def _squeeze(self, t: Tensor) -> Tensor:
        return t[0] if self.unbatched and t.dim() == 2 else t
