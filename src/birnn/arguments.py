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

from .batch import check_lengths, lengths_from_mask, mask_from_lengths
from .errors import DeviceError, DtypeError, ShapeError

__all__ = ["Call", "LayerShape", "prepare_call"]


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
    x: Tensor  # (T, B, I), zero at padded steps
    lengths: Optional[Tensor]  # (B,) int64 on x's device; None when every sequence has T steps
    user_lengths: Optional[Tensor]  # the lengths the caller gave (or the packing held), else None
    h0: Optional[Tensor]  # (L*D, B, P) or None
    c0: Optional[Tensor]  # (L*D, B, H) or None
    packed: Optional[PackedSequence]  # the packed input, to pack the output alike
    unbatched: bool


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


def prepare_call(input, hx, lengths, mask, shape: LayerShape) -> Call:
    """Check everything about a call and bring it to the one internal layout (see module doc)."""
    packed = None
    if isinstance(input, PackedSequence):
        if lengths is not None or mask is not None:
            raise ValueError("lengths/mask cannot be given with a PackedSequence input: it carries its own lengths")
        packed = input
        x, lengths = pad_packed_sequence(input)  # (T, B, I), lengths in the original order
        unbatched = False
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
                         f"got {x.shape[-1]} (input shape {tuple(input.data.shape if packed else input.shape)})")
    if not x.dtype.is_floating_point:
        raise DtypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
    _check_tensor("input", x, shape)
    T, B = x.shape[0], x.shape[1]
    if T == 0:
        raise ShapeError(f"input must have at least one time step, got T=0 (input shape {tuple(input.shape)})")

    if lengths is not None and mask is not None:
        raise ValueError("give either lengths or mask, not both")
    if mask is not None:
        lengths = lengths_from_mask(mask, batch_first=shape.batch_first, batch_size=B, max_time=T)
    user_lengths = None
    run_lengths = None
    if lengths is not None:
        user_lengths = check_lengths(lengths, batch_size=B, max_time=T, device=x.device)
        if B and (torch.compiler.is_compiling() or bool((user_lengths != T).any())):
            run_lengths = user_lengths
            valid = mask_from_lengths(run_lengths, T).unsqueeze(-1)  # (T, B, 1)
            x = torch.where(valid, x, 0.0)

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
    return Call(x, run_lengths, user_lengths, h0, c0, packed, unbatched)
