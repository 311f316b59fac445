"""Resets as segments: a row with resets is several sequences, run as such.

``resets`` (T, B) marks the steps before which the state restarts from h_0 (episode or
document boundaries); the backward direction restarts at each segment's last step. So each
segment is a sequence of its own, read from its row's h_0 in both directions: :func:`split`
turns the call into a padded batch of the S segments (T', S, I) with their lengths — the
form every fast path runs (PyTorch's fused op on the packed batch, the packed LSTM layer) —
and the returned ``join`` maps the segments' results back onto the rows (T, B, ·):

- each step's output is its segment's output at that step, zeros at padding;
- h_n (and c_n) of a forward direction is the row's last segment's; of a backward
  direction, the row's first segment's (the backward direction ends at the row's first step).

Symbols: ``T`` steps, ``B`` rows, ``S`` segments, ``T'`` the longest segment, ``N`` real steps.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from ..arguments import Call
from ..batch import mask_from_lengths, padded_from_offsets, traced, values_from_padded
from .multilayer import Ran

__all__ = ["applies", "split"]


def applies(call: Call, stochastic: bool) -> bool:
    """Whether a call with resets runs as segments: eagerly (a graph must not depend on where
    the resets are), every row non-empty, and no per-row masks or noise sampled (``stochastic``:
    a training call with recurrent dropout, zoneout or state noise, whose masks are drawn per
    row: the reference scan runs it, as before)."""
    if call.resets is None or stochastic or traced() or call.x.shape[0] == 0 or call.x.shape[1] == 0:
        return False
    return call.lengths is None or bool((call.lengths > 0).all())


def split(call: Call, num_directions: int) -> Tuple[Call, Callable[[Ran], Ran]]:
    """The call on its segments, and ``join``, which maps a :class:`Ran` of it back to the rows."""
    x, resets = call.x, call.resets
    T, B = x.shape[:2]
    lengths = call.lengths if call.lengths is not None else torch.full((B,), T, dtype=torch.long, device=x.device)
    valid = mask_from_lengths(lengths, T).T  # (B, T), real steps: the rows' steps in row-major order
    starts = (resets.T | (torch.arange(T, device=x.device) == 0)) & valid  # (B, T): a segment starts here
    first_flags = starts[valid]  # (N,)
    offsets = torch.cat([first_flags.nonzero().flatten(), first_flags.new_full((1,), first_flags.numel(),
                                                                                dtype=torch.long)])
    padded, seg_lengths = padded_from_offsets(x.transpose(0, 1)[valid], offsets)  # (T', S, I), (S,)
    counts = starts.sum(1)  # (B,) segments per row
    row = torch.repeat_interleave(torch.arange(B, device=x.device), counts)  # (S,) each segment's row
    last = counts.cumsum(0) - 1  # (B,) each row's last segment
    first = last - counts + 1

    def per_segment(state: Optional[Tensor]) -> Optional[Tensor]:
        return None if state is None else state[:, row]

    run_lengths = None if bool((seg_lengths == padded.shape[0]).all()) else seg_lengths
    segments = Call(padded, run_lengths, seg_lengths, per_segment(call.h0), per_segment(call.c0), None, False)

    def rows(t: Tensor) -> Tensor:  # (T', S, F) -> (T, B, F), zeros at padding
        out = t.new_zeros(B, T, t.shape[-1])
        out[valid] = values_from_padded(t, seg_lengths)
        return out.transpose(0, 1)

    def final(state: Optional[Tensor]) -> Optional[Tensor]:  # (L*D, S, F) -> (L*D, B, F)
        if state is None:
            return None
        at_end = state[:, last]
        if num_directions == 1:
            return at_end
        backward = torch.arange(state.shape[0], device=state.device) % num_directions == 1
        return torch.where(backward.view(-1, 1, 1), state[:, first], at_end)

    def join(ran: Ran) -> Ran:
        return Ran(rows(ran.output), final(ran.h_n), final(ran.c_n),
                   None if ran.layers is None else tuple(rows(t) for t in ran.layers),
                   None if ran.cells is None else tuple(rows(t) for t in ran.cells))

    return segments, join
