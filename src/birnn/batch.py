"""Padded batches: lengths and masks, validation, valid-part reversal, PackedSequence interop.

Shape symbols used in this module: ``B`` batch size, ``T`` time steps, ``F`` features.
A *padded batch* stores sequence ``b`` in steps ``0 .. lengths[b]-1`` and padding after it.

>>> import torch
>>> lengths = torch.tensor([3, 1, 0])
>>> mask_from_lengths(lengths, 4, batch_first=True).int()
tensor([[1, 1, 1, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0]], dtype=torch.int32)
>>> reverse_index(lengths, 4).T  # row b: where step t of the reversed sequence comes from
tensor([[2, 1, 0, 3],
        [0, 1, 2, 3],
        [0, 1, 2, 3]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

__all__ = [
    "SequenceBatch",
    "traced",
    "align",
    "check_offsets",
    "mask_side",
    "padded_from_offsets",
    "values_from_padded",
    "check_lengths",
    "lengths_from_mask",
    "mask_from_lengths",
    "pack_like",
    "reverse_index",
    "reverse_valid",
]


def traced() -> bool:
    """Whether the call is being traced rather than run: under ``torch.compile``/``torch.export``
    or a ``torch.func`` transform (``vmap``, ``grad``). Then nothing may branch on tensor values
    (value checks, loops sized by ``lengths.max()``): the graph must hold for every value."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch._C._are_functorch_transforms_active()


def check_lengths(lengths, *, batch_size: int, max_time: int, device: torch.device) -> Tensor:
    """Validate ``lengths`` and return them as an int64 tensor of shape (B,) on ``device``.

    Accepts a tensor on any device or a list of ints. Every value must lie in [0, T]: a
    zero-length sequence is allowed (its outputs are zero and its final state is h_0).
    Under ``torch.compile`` and ``torch.func`` transforms the value range is not checked (it
    would branch on values: :func:`traced`).
    """
    if isinstance(lengths, (list, tuple)) or type(lengths).__module__ == "numpy":  # lists, numpy arrays, numpy ints
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"lengths must be integers, got {lengths!r} ({e})") from None
    if not isinstance(lengths, Tensor):
        raise TypeError(f"lengths must be a tensor, a numpy array or a list of ints, got {type(lengths).__name__}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.numel() != batch_size:
        raise ValueError(
            f"lengths must have shape (B,) = ({batch_size},), got {tuple(lengths.shape)}"
        )
    if lengths.is_meta:
        raise ValueError("lengths are on the meta device, which holds no values; pass them on the CPU or on the "
                         f"input's device ({device})")
    if batch_size and not traced():  # value checks would break the graph
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 0 or hi > max_time:
            bad = int(lengths.argmin()) if lo < 0 else int(lengths.argmax())
            value = lo if lo < 0 else hi
            raise ValueError(
                f"lengths must be in [0, T={max_time}], got {value} at batch index {bad}"
            )
    return lengths.to(device=device, dtype=torch.int64)


def mask_from_lengths(lengths: Tensor, max_time: int, *, batch_first: bool = False) -> Tensor:
    """Boolean mask of real steps: (T, B), or (B, T) with ``batch_first``."""
    steps = torch.arange(max_time, device=lengths.device)
    mask = steps[:, None] < lengths[None, :]  # (T, B)
    return mask.T if batch_first else mask


def mask_side(mask: Tensor, *, batch_first: bool) -> str:
    """"left" for a suffix mask (left padding: False steps first, then True), else "right"
    (a prefix mask, or any other mask, which :func:`lengths_from_mask` then checks)."""
    time_major = mask.T if batch_first else mask
    if bool(time_major.all()) or time_major.shape[0] < 2:
        return "right"
    flipped = time_major.flip(0)
    prefix_of_flipped = flipped.long().cumprod(0).bool()
    return "left" if bool((prefix_of_flipped == flipped).all()) and not bool(time_major[0].all()) else "right"


def lengths_from_mask(mask: Tensor, *, batch_first: bool, batch_size: int, max_time: int) -> Tensor:
    """Lengths (B,) of a boolean prefix mask laid out like the input: (B, T) or (T, B)."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a boolean tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must have dtype torch.bool, got {mask.dtype}")
    expected = (batch_size, max_time) if batch_first else (max_time, batch_size)
    layout = "(B, T)" if batch_first else "(T, B)"
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask must have shape {layout} = {expected}, got {tuple(mask.shape)}")
    time_major = mask.T if batch_first else mask  # (T, B)
    lengths = time_major.long().cumprod(0).sum(0)  # leading True steps per sequence
    late = time_major & ~mask_from_lengths(lengths, max_time)  # a True after the first False
    if not traced() and bool(late.any()):
        step, row = (int(v) for v in late.nonzero()[0])
        raise ValueError(
            "mask must be a prefix mask (True for the first lengths[b] steps, then False); "
            f"batch index {row} is True at step {step} after False at step {int(lengths[row])}"
        )
    return lengths


def reverse_index(lengths: Tensor, max_time: int) -> Tensor:
    """Time index (T, B) that reverses the real part of each sequence and keeps padding in place.

    ``x.gather(0, idx)`` turns ``[x0 x1 x2 pad]`` into ``[x2 x1 x0 pad]``. The map is its own
    inverse, so the same index undoes it.
    """
    steps = torch.arange(max_time, device=lengths.device)[:, None]  # (T, 1)
    return torch.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps)


def reverse_valid(x: Tensor, lengths: Tensor | None, *, time_dim: int = 0) -> Tensor:
    """Reverse the real steps of every sequence of a padded batch ``x`` along ``time_dim``.

    ``x`` is (T, B, ...) for ``time_dim=0`` or (B, T, ...) for ``time_dim=1``. With
    ``lengths=None`` every sequence is full and this is a plain flip.
    """
    if lengths is None:
        return x.flip(time_dim)
    xt = x if time_dim == 0 else x.transpose(0, 1)
    idx = reverse_index(lengths.to(x.device), xt.shape[0])  # (T, B)
    idx = idx.view(*idx.shape, *([1] * (xt.dim() - 2))).expand_as(xt)
    out = xt.gather(0, idx)
    return out if time_dim == 0 else out.transpose(0, 1)


def align(x: Tensor, lengths: Tensor, *, to: str) -> Tensor:
    """Move each sequence of a time-major batch (T, B, ...) between left padding (real steps last)
    and right padding (real steps first): ``to="right"`` or ``to="left"``; the other steps are 0."""
    T = x.shape[0]
    steps = torch.arange(T, device=x.device)[:, None]  # (T, 1)
    pad = (T - lengths.to(x.device))[None, :]  # (1, B) padded steps per sequence
    src = steps + pad if to == "right" else steps - pad  # where step t comes from
    valid = (src >= 0) & (src < T) & ((steps < (T - pad)) if to == "right" else (steps >= pad))
    idx = src.clamp(0, T - 1).view(T, -1, *([1] * (x.dim() - 2))).expand_as(x)
    out = x.gather(0, idx)
    return torch.where(valid.view(T, -1, *([1] * (x.dim() - 2))), out, torch.zeros((), dtype=x.dtype,
                                                                                  device=x.device))


def check_offsets(offsets, total: int, device: torch.device) -> Tensor:
    """``cu_seqlens``-style offsets (B+1,): integers from 0 to ``total``, never decreasing."""
    if type(offsets).__module__ == "numpy" or isinstance(offsets, (list, tuple)):
        offsets = torch.as_tensor(offsets)
    if not isinstance(offsets, Tensor) or offsets.dtype.is_floating_point or offsets.dtype == torch.bool \
            or offsets.dim() != 1 or offsets.numel() < 1:
        got = f"{offsets.dtype} of shape {tuple(offsets.shape)}" if isinstance(offsets, Tensor) else type(offsets).__name__
        raise ValueError(f"cu_seqlens must be a 1-D integer tensor (B+1,) of offsets into the input's rows, got {got}")
    offsets = offsets.to(device=device, dtype=torch.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    if first != 0 or last != total:
        raise ValueError(f"cu_seqlens must start at 0 and end at the number of rows N={total}, got {first} ... {last}")
    steps = offsets.diff()
    if bool((steps < 0).any()):
        at = int((steps < 0).nonzero()[0])
        raise ValueError(f"cu_seqlens must not decrease, got {int(offsets[at])} then {int(offsets[at + 1])} at "
                         f"positions {at} and {at + 1}")
    return offsets


def padded_from_offsets(values: Tensor, offsets: Tensor) -> Tuple[Tensor, Tensor]:
    """Rows of ``values`` (N, F), sequence b being ``values[offsets[b]:offsets[b+1]]``, as a
    time-major padded batch (T, B, F) and its lengths (B,)."""
    lengths = offsets.diff()
    B, N = lengths.numel(), values.shape[0]
    T = int(lengths.max()) if B else 0
    row = torch.repeat_interleave(torch.arange(B, device=values.device), lengths)
    t = torch.arange(N, device=values.device) - offsets[:-1][row]
    out = values.new_zeros(T, B, values.shape[-1])
    out[t, row] = values
    return out, lengths


def values_from_padded(padded: Tensor, lengths: Tensor) -> Tensor:
    """The inverse of :func:`padded_from_offsets`: (T, B, F) -> (N, F), sequence by sequence."""
    mask = mask_from_lengths(lengths.to(padded.device), padded.shape[0], batch_first=True)  # (B, T)
    return padded.transpose(0, 1)[mask]


def pack_like(padded: Tensor, lengths: Tensor, template: PackedSequence) -> PackedSequence:
    """Pack a time-major padded tensor (T, B, F) with the batch order of ``template``."""
    sorted_indices = template.sorted_indices
    lengths = lengths.cpu()
    if sorted_indices is not None:
        padded = padded.index_select(1, sorted_indices.to(padded.device))
        lengths = lengths.index_select(0, sorted_indices.cpu())
    packed = pack_padded_sequence(padded, lengths, enforce_sorted=True)
    return PackedSequence(
        packed.data, packed.batch_sizes, template.sorted_indices, template.unsorted_indices
    )


@dataclass(frozen=True)
class SequenceBatch:
    """A padded batch and its lengths: ``padded`` (B, T, F...) batch-first, ``lengths`` (B,).

    >>> import torch
    >>> batch = SequenceBatch.from_sequences([torch.ones(3, 2), torch.ones(1, 2)])
    >>> batch.padded.shape, batch.lengths.tolist()
    (torch.Size([2, 3, 2]), [3, 1])
    >>> batch.mask().tolist()
    [[True, True, True], [True, False, False]]
    """

    padded: Tensor
    lengths: Tensor

    @classmethod
    def from_sequences(cls, sequences: Sequence[Tensor], padding_value: float = 0.0) -> "SequenceBatch":
        """Pad a list of (T_b, F...) tensors of varying T_b; no sorting needed."""
        if len(sequences) == 0:
            raise ValueError("from_sequences needs at least one sequence, got an empty list")
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
        padded = torch.nn.utils.rnn.pad_sequence(
            list(sequences), batch_first=True, padding_value=padding_value
        )
        return cls(padded, lengths)

    @classmethod
    def from_packed(cls, packed: PackedSequence) -> "SequenceBatch":
        """Unpack a PackedSequence into the original (unsorted) batch order."""
        padded, lengths = pad_packed_sequence(packed, batch_first=True)
        return cls(padded, lengths)

    def mask(self) -> Tensor:
        """Boolean mask (B, T) of real steps."""
        return mask_from_lengths(self.lengths.to(self.padded.device), self.padded.shape[1], batch_first=True)

    def to_packed(self) -> PackedSequence:
        """Pack for torch.nn (sorting is done for you)."""
        return pack_padded_sequence(self.padded, self.lengths.cpu(), batch_first=True, enforce_sorted=False)

    def to(self, *args, **kwargs) -> "SequenceBatch":
        return SequenceBatch(self.padded.to(*args, **kwargs), self.lengths)
