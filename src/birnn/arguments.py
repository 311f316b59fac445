"""Normalise and validate the arguments of a layer call, once, at the entrance.

Whatever the caller passes — a padded tensor (T, B, I) or (B, T, I), an unbatched (T, I)
tensor, a PackedSequence, ``lengths`` or a boolean ``mask``, ``hx`` as a tensor or an
``(h_0, c_0)`` pair — the layer receives one :class:`Call` in a single layout: time-major,
batched, padded steps zeroed (so they can neither leak into states nor receive gradient).

Every malformed argument raises a ``TypeError``/``ValueError`` naming the argument, what was
expected and what was received; where torch.nn raises another class for the same mistake, the
class is both (:mod:`birnn.errors`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .batch import (align, check_lengths, check_offsets, lengths_from_mask, mask_from_lengths, mask_side, pack_like,
                    padded_from_offsets, traced, values_from_padded)
from .errors import DeviceError, DtypeError, ShapeError

__all__ = ["Call", "LayerShape", "input_shape", "lengths_and_side", "prepare_call"]


class LayerShape(NamedTuple):
    """What a layer expects: I = input_size, P = per-direction output size, H = hidden size."""

    input_size: int
    hidden_size: int
    output_size: int
    num_layers: int
    num_directions: int
    has_cell_state: bool
    batch_first: bool
    dtype: torch.dtype
    device: torch.device


class Call(NamedTuple):
    x: Tensor  # (T, B, I), zero at padded steps, real steps first
    lengths: Optional[Tensor]  # (B,) int64 on x's device; None when every sequence has T steps
    user_lengths: Optional[Tensor]  # the lengths the caller gave (or the packing held), else None
    h0: Optional[Tensor]  # (L*D, B, P) or None
    c0: Optional[Tensor]  # (L*D, B, H) or None
    packed: Optional[PackedSequence]  # the packed input, to pack the output alike
    unbatched: bool
    resets: Optional[Tensor] = None  # (T, B) bool, real steps first: the state restarts from h_0 there
    form: str = "padded"  # the caller's form: "padded", "packed", "nested" (jagged) or "flat" (cu_seqlens)
    left: bool = False  # the caller's padded batch is left-padded (real steps last)
    offsets: Optional[Tensor] = None  # (B+1,) the flat form's cu_seqlens

    def layout(self, t: Tensor, batch_first: bool):
        """A time-major (T, B, F) result, real steps first, in the caller's form and layout."""
        if self.form == "packed":
            return pack_like(t, self.user_lengths, self.packed)
        if self.form == "flat":
            return values_from_padded(t, self.user_lengths)
        if self.form == "nested":
            return torch.nested.nested_tensor_from_jagged(values_from_padded(t, self.user_lengths),
                                                          self.offsets)
        if self.left:
            t = align(t, self.user_lengths, to="left")
        if self.unbatched:
            return t[:, 0]
        return t.transpose(0, 1) if batch_first else t


def input_shape(input_size: int, batch_first: bool, module: torch.nn.Module, input) -> LayerShape:
    """What a layer that takes no ``hx`` of its own checks (``Recurrent(cell)``, ``Bidirectional``):
    the input's size and layout, and its dtype and device, those of ``module``'s parameters (the
    input's where it has none)."""
    p = next(module.parameters(), None)
    data = input.data if isinstance(input, PackedSequence) else input
    dtype = p.dtype if p is not None else getattr(data, "dtype", torch.float32)
    device = p.device if p is not None else getattr(data, "device", torch.device("cpu"))
    return LayerShape(input_size, 0, 0, 1, 1, False, batch_first, dtype, device)


def _describe(t: Tensor) -> str:
    return f"{t.dim()}-D tensor of shape {tuple(t.shape)}"


def _check_tensor(name: str, t, shape: LayerShape) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.dtype != shape.dtype:
        raise DtypeError(f"{name} has dtype {t.dtype} but the layer's parameters are {shape.dtype}; "
                        f"cast one to match (e.g. layer.to({t.dtype}))")
    if t.device != shape.device:
        raise DeviceError(f"{name} is on {t.device} but the layer's parameters are on {shape.device}")


def _state(name: str, t, expected: tuple, shape: LayerShape, unbatched: bool) -> Tensor:
    _check_tensor(name, t, shape)
    want = expected[:1] + expected[2:] if unbatched else expected
    if tuple(t.shape) != want:
        sym = "(L*D, P)" if unbatched else "(L*D, B, P)"
        if name == "c_0":
            sym = sym.replace("P", "H")
        raise ShapeError(f"{name} must have shape {sym} = {want}, got {tuple(t.shape)}")
    return t.unsqueeze(1) if unbatched else t


PADDINGS = ("right", "left")


def lengths_and_side(lengths, mask, padding: str, *, batch_first: bool, batch_size: int, max_time: int):
    """``(lengths or None, left)`` of a padded batch from ``lengths`` or a ``mask`` and ``padding``:
    a suffix mask means left padding, said with ``padding="left"`` or seen in the mask (not when
    traced: that would branch on its values). Lengths are not checked here (``check_lengths``)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be 'right' (real steps first) or 'left' (real steps last), got {padding!r}")
    if lengths is not None and mask is not None:
        raise ValueError("give either lengths or mask, not both")
    left = padding == "left"
    if mask is not None:
        if isinstance(mask, Tensor) and mask.is_meta:
            raise ValueError("mask is on the meta device, which holds no values; pass it on the CPU or the input's "
                             "device")
        if isinstance(mask, Tensor) and mask.dtype == torch.bool and (
                left or (not traced() and mask_side(mask, batch_first=batch_first) == "left")):
            left, mask = True, mask.flip(1 if batch_first else 0)
        lengths = lengths_from_mask(mask, batch_first=batch_first, batch_size=batch_size, max_time=max_time)
    if left and lengths is None:
        raise ValueError("padding='left' needs lengths (or a mask): which steps are padding?")
    return lengths, left


def prepare_call(input, hx, lengths, mask, shape: LayerShape, *, padding: str = "right", resets=None,
                 cu_seqlens=None) -> Call:
    """Check everything about a call and bring it to the one internal layout (see module doc)."""
    packed = None
    form, offsets = "padded", None
    if padding not in PADDINGS:  # (checked first: the forms below refuse any but "right")
        raise ValueError(f"padding must be 'right' (real steps first) or 'left' (real steps last), got {padding!r}")
    if cu_seqlens is not None:
        if not isinstance(input, Tensor) or input.dim() != 2:
            got = _describe(input) if isinstance(input, Tensor) else type(input).__name__
            raise ShapeError(f"with cu_seqlens, input must be the sequences' rows one after another, (N, I); got {got}")
        if lengths is not None or mask is not None or padding != "right":
            raise ValueError("cu_seqlens gives the lengths itself: no lengths, mask or padding with it")
        offsets = check_offsets(cu_seqlens, input.shape[0], input.device)
        x, lengths = padded_from_offsets(input, offsets)
        form, unbatched = "flat", False
    elif isinstance(input, Tensor) and input.is_nested:
        if input.layout != torch.jagged:
            raise TypeError(f"a nested input must have layout=torch.jagged (B, j, I), got {input.layout}")
        if lengths is not None or mask is not None or padding != "right":
            raise ValueError("a nested input carries its lengths: no lengths, mask or padding with it")
        offsets = input.offsets()
        x, lengths = padded_from_offsets(input.values(), offsets)
        form, unbatched = "nested", False
    elif isinstance(input, PackedSequence):
        if lengths is not None or mask is not None:
            raise ValueError("lengths/mask cannot be given with a PackedSequence input: it carries its own lengths")
        packed = input
        x, lengths = pad_packed_sequence(input)  # (T, B, I), lengths in the original order
        form, unbatched = "packed", False
    elif isinstance(input, Tensor):
        if input.dim() not in (2, 3):
            layout = "(B, T, I)" if shape.batch_first else "(T, B, I)"
            raise ShapeError(f"input must be 3-D {layout} or 2-D unbatched (T, I), got a {_describe(input)}")
        unbatched = input.dim() == 2
        if unbatched:
            if lengths is not None or mask is not None:
                raise ValueError("lengths/mask need a batched 3-D input; the input is 2-D (unbatched)")
            x = input.unsqueeze(1)
        else:
            x = input.transpose(0, 1) if shape.batch_first else input
    else:
        raise TypeError(f"input must be a tensor or a PackedSequence, got {type(input).__name__}")
    if x.shape[-1] != shape.input_size:
        raise ShapeError(f"input must have input_size={shape.input_size} features in its last dimension, "
                         f"got {x.shape[-1]} (input shape {tuple(x.shape)})")
    if not x.dtype.is_floating_point:
        raise DtypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
    _check_tensor("input", x, shape)
    T, B = x.shape[0], x.shape[1]

    lengths, left = lengths_and_side(lengths, mask, padding, batch_first=shape.batch_first, batch_size=B, max_time=T)
    user_lengths = None
    run_lengths = None
    if lengths is not None:
        user_lengths = check_lengths(lengths, batch_size=B, max_time=T, device=x.device)
        if left:
            x = align(x, user_lengths, to="right")
        if B and (traced() or bool((user_lengths != T).any())):
            run_lengths = user_lengths
            valid = mask_from_lengths(run_lengths, T).unsqueeze(-1)  # (T, B, 1)
            x = torch.where(valid, x, 0.0)
    reset_steps = None if resets is None else _resets(resets, form, shape, T, B, unbatched, left, user_lengths,
                                                      offsets)

    L, D = shape.num_layers, shape.num_directions
    h0 = c0 = None
    if hx is not None:
        if shape.has_cell_state:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx must be a pair (h_0, c_0) for an LSTM, got {type(hx).__name__}")
            h0 = _state("h_0", hx[0], (L * D, B, shape.output_size), shape, unbatched)
            c0 = _state("c_0", hx[1], (L * D, B, shape.hidden_size), shape, unbatched)
        else:
            if isinstance(hx, (tuple, list)):
                raise TypeError("hx must be a tensor h_0 for RNN/GRU, got a tuple (the (h_0, c_0) pair is for LSTM)")
            h0 = _state("h_0", hx, (L * D, B, shape.output_size), shape, unbatched)
    return Call(x, run_lengths, user_lengths, h0, c0, packed, unbatched, reset_steps, form, left, offsets)


def _resets(resets, form: str, shape: LayerShape, T: int, B: int, unbatched: bool, left: bool,
            lengths: Optional[Tensor], offsets: Optional[Tensor]) -> Tensor:
    """``resets`` in the caller's layout -> (T, B) bool, time-major, real steps first; True at a
    step where the state restarts from h_0 (before reading that step)."""
    if not isinstance(resets, Tensor) or resets.dtype != torch.bool:
        got = f"dtype {resets.dtype}" if isinstance(resets, Tensor) else type(resets).__name__
        raise TypeError(f"resets must be a boolean tensor, got {got}")
    if form in ("nested", "packed"):
        raise ValueError(f"resets are taken with padded or cu_seqlens inputs, not a {form} input")
    if form == "flat":
        if tuple(resets.shape) != (int(offsets[-1]),):
            raise ShapeError(f"with cu_seqlens, resets must have shape (N,) = ({int(offsets[-1])},), one per row, "
                             f"got {tuple(resets.shape)}")
        steps, _ = padded_from_offsets(resets.to(shape.device).unsqueeze(-1).float(), offsets)
        return steps[..., 0] > 0
    if unbatched:
        want, layout = (T,), "(T,)"
    else:
        want, layout = ((B, T), "(B, T)") if shape.batch_first else ((T, B), "(T, B)")
    if tuple(resets.shape) != want:
        raise ShapeError(f"resets must have shape {layout} = {want}, like the input's steps, got {tuple(resets.shape)}")
    r = resets.to(shape.device)
    r = r.unsqueeze(1) if unbatched else (r.T if shape.batch_first else r)
    if left:
        r = align(r, lengths, to="right")
    if lengths is not None:
        r = r & mask_from_lengths(lengths, T)
    return r
