"""``Bidirectional``: Keras-style wrapper that runs any unidirectional recurrent layer both ways.

The backward copy reads each sequence *reversed within its real part*
(``[x0 x1 x2 pad] -> [x2 x1 x0 pad]``), so it starts at the last real token, never at the
padding, and its outputs are reversed back to line up with the input. Symbols: ``T`` time,
``B`` batch, ``L`` layers of the wrapped layer, ``P`` its output size.

- ``output``: the two directions merged with ``merge_mode`` ("concat" -> (T, B, 2P); "sum",
  "mul", "ave" -> (T, B, P); None -> the pair).
- ``h_n``/``c_n``: (2L, B, P) interleaved as torch.nn: ``[l0-fwd, l0-bwd, l1-fwd, ...]``.
  ``hx`` is split the same way.

Unlike ``birnn.LSTM(..., num_layers=2, bidirectional=True)``, where layer 2 of each
direction reads both directions of layer 1, wrapping a 2-layer unidirectional layer stacks
each direction on its own (Keras semantics).

>>> import torch, birnn
>>> bi = Bidirectional(birnn.GRU(4, 3), merge_mode="sum")
>>> out, h_n = bi(torch.randn(5, 2, 4), lengths=[5, 3])
>>> out.shape, h_n.shape
(torch.Size([5, 2, 3]), torch.Size([2, 2, 3]))
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from .arguments import _state, input_shape, prepare_call
from .backends.native import run_packed
from .batch import reverse_valid
from .cells import cell_spec
from .errors import ShapeError
from .output import RecurrentOutput, check_merge_mode, merge

__all__ = ["Bidirectional"]


def _interleave(f: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """(L, B, P) twice -> (2L, B, P) as [f0, b0, f1, b1, ...]."""
    if f is None:
        return None
    return torch.stack([f, b], 1).flatten(0, 1)


def _split(hx, batch: int, unbatched: bool):
    """(2L, B, P) [f0, b0, ...] -> forward (L, B, P), backward (L, B, P); pairs element-wise.
    Each state must have an even number of rows (two directions) and the input's batch; with an
    unbatched input, (2L, P)."""
    if hx is None:
        return None, None
    parts = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
    for k, h in enumerate(parts):
        name = "hx" if len(parts) == 1 else f"hx[{k}]"
        dims = 2 if unbatched else 3
        if (not isinstance(h, torch.Tensor) or h.dim() != dims or h.shape[0] % 2
                or (not unbatched and h.shape[1] != batch)):
            got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            want = "(2*L, ·)" if unbatched else f"(2*L, B={batch}, ·)"
            raise ShapeError(f"{name} must have shape {want}: rows [l0-fwd, l0-bwd, ...], got {got}")
    if len(parts) > 1 and len({h.shape[0] for h in parts}) != 1:
        raise ShapeError(f"the states of hx must have the same number of rows, got {[tuple(h.shape) for h in parts]}")
    parts = tuple(h.unsqueeze(1) if unbatched else h for h in parts)
    if isinstance(hx, (tuple, list)):
        return tuple(h[0::2] for h in parts), tuple(h[1::2] for h in parts)
    return parts[0][0::2], parts[0][1::2]


def _state_of(layer: nn.Module):
    """``(has_cell_state, P, H, L)`` of a wrapped layer — whether its state is (h, c), its output
    and hidden sizes, its layers — with None where a custom step cell does not say."""
    if hasattr(layer, "mode") and hasattr(layer, "hidden_size"):  # birnn's and torch.nn's layers
        P = layer.proj_size or layer.hidden_size
        return cell_spec(layer.mode).has_cell_state, P, layer.hidden_size, layer.num_layers
    cell = getattr(layer, "cell", None)  # Recurrent(cell): torch.nn's cells through TorchCell, or the user's
    size = getattr(getattr(cell, "cell", cell), "hidden_size", None)
    return getattr(cell, "is_lstm", None), size, size, getattr(layer, "num_layers", 1)


def _kind(has_c, P, H, L) -> str:
    state = {True: "an (h, c) state", False: "an h state", None: "a state"}[has_c]
    return f"{state} of size {P if P is not None else '?'}" + (f" (cell {H})" if has_c and H != P else "") \
        + f" in {L} layer(s)"


def _check_pair(forward: nn.Module, backward: nn.Module) -> None:
    """The two directions must carry the same kind of state: h_n/c_n interleave them row by row."""
    f, b = _state_of(forward), _state_of(backward)
    if any(x is not None and y is not None and x != y for x, y in zip(f, b)):
        raise ValueError(f"layer and backward_layer must have the same kind of state, since h_n/c_n interleave "
                         f"their rows: layer ({type(forward).__name__}) has {_kind(*f)}, backward_layer "
                         f"({type(backward).__name__}) has {_kind(*b)}")


def _check_states(hx, layer: nn.Module, call, shape) -> None:
    """``hx`` against the wrapped layer's dtype and sizes, where the layer says them (birnn's layers
    check their own half again; torch.nn's and cells would fail deep inside with torch's words)."""
    has_c, P, H, L = _state_of(layer)
    if hx is None or has_c is None or P is None:
        return
    B = call.x.shape[1]
    if has_c:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"hx must be a pair (h_0, c_0) for LSTM layers, got {type(hx).__name__}")
        _state("h_0", hx[0], (2 * L, B, P), shape, call.unbatched)
        _state("c_0", hx[1], (2 * L, B, H), shape, call.unbatched)
    elif isinstance(hx, (tuple, list)):
        raise TypeError("hx must be a tensor h_0 for RNN/GRU layers, got a tuple (the (h_0, c_0) pair is for LSTM)")
    else:
        _state("h_0", hx, (2 * L, B, P), shape, call.unbatched)


def _is_torch_layer(layer: nn.Module) -> bool:
    """A torch.nn RNN/LSTM/GRU (not one of birnn's, which subclass RNNBase too)."""
    return isinstance(layer, nn.RNNBase) and not hasattr(layer, "last_decision")


def _run_torch_layer(layer: nn.RNNBase, input: torch.Tensor, hx, lengths: Optional[torch.Tensor]):
    """A unidirectional torch.nn layer on a padded batch: time-major output (T, B, P), h_n, c_n (L, B, ·).
    With lengths it runs PyTorch's packed op on the layer's own parameters (empty sequences keep h_0)."""
    x = input.transpose(0, 1) if layer.batch_first else input  # (T, B, I)
    is_lstm = cell_spec(layer.mode).has_cell_state
    if lengths is None:
        out, h = layer(x.transpose(0, 1) if layer.batch_first else x, hx)
        seq = out.transpose(0, 1) if layer.batch_first else out
        return (seq, h[0], h[1]) if is_lstm else (seq, h, None)
    B = x.shape[1]
    P = layer.proj_size or layer.hidden_size
    if hx is None:
        h0 = x.new_zeros(layer.num_layers, B, P)
        c0 = x.new_zeros(layer.num_layers, B, layer.hidden_size) if is_lstm else None
    else:
        h0, c0 = (hx[0], hx[1]) if is_lstm else (hx, None)
    return run_packed(layer.mode, x, lengths, h0, c0, layer._flat_weights, bias=layer.bias,
                      num_layers=layer.num_layers, dropout=layer.dropout, training=layer.training,
                      bidirectional=False)


class Bidirectional(nn.Module):
    """Wrap a unidirectional layer (birnn RNN/LSTM/GRU, ``Recurrent(cell)``, or torch.nn's
    RNN/LSTM/GRU, whose own parameters it then trains) to run both ways.

    Args:
        layer: the forward layer; must not be bidirectional itself.
        merge_mode: "concat" (default), "sum", "mul", "ave" or None (Keras).
        backward_layer: the backward layer; default a copy of ``layer`` with fresh weights.
    """

    def __init__(self, layer: nn.Module, merge_mode: Optional[str] = "concat",
                 backward_layer: Optional[nn.Module] = None) -> None:
        super().__init__()
        for name, l in (("layer", layer), ("backward_layer", backward_layer)):
            if l is not None and getattr(l, "bidirectional", None) is not False:
                raise ValueError(f"{name} must be a unidirectional recurrent layer (bidirectional=False), "
                                 f"got {type(l).__name__} with bidirectional={getattr(l, 'bidirectional', None)}")
        self.merge_mode = check_merge_mode(merge_mode)
        if backward_layer is None:
            backward_layer = copy.deepcopy(layer)
            backward_layer.reset_parameters()
        if backward_layer.batch_first != layer.batch_first:
            raise ValueError(f"layer and backward_layer must agree on batch_first, got {layer.batch_first} "
                             f"and {backward_layer.batch_first}")
        _check_pair(layer, backward_layer)
        self.forward_layer = layer
        self.backward_layer = backward_layer
        self.batch_first = layer.batch_first
        self.bidirectional = True

    def forward(self, input, hx=None, *, lengths=None, mask=None, padding: str = "right",
                cu_seqlens=None) -> RecurrentOutput:
        """``input``, ``lengths``, ``mask``, ``padding`` and ``cu_seqlens`` as for birnn's layers
        (every input form, checked once by :func:`birnn.arguments.prepare_call`); ``hx`` split
        into the two directions' states ([l0-fwd, l0-bwd, ...])."""
        layer = self.forward_layer
        size = layer.input_size if hasattr(layer, "input_size") else layer.cell.input_size
        shape = input_shape(size, self.batch_first, layer, input)
        call = prepare_call(input, None, lengths, mask, shape, padding=padding, cu_seqlens=cu_seqlens)
        x, lengths = call.x, call.user_lengths  # (T, B, I) real steps first, zero at padding
        hx_f, hx_b = _split(hx, x.shape[1], call.unbatched)
        _check_states(hx, layer, call, shape)
        reverse = reverse_valid(x, lengths)

        def as_layer(t):  # the wrapped layers' own layout
            return t.transpose(0, 1) if self.batch_first else t

        if _is_torch_layer(layer):
            (f_seq, f_h, f_c), (b_seq, b_h, b_c) = (_run_torch_layer(m, as_layer(t), h, lengths) for m, t, h in (
                (layer, x, hx_f), (self.backward_layer, reverse, hx_b)))
            num_layers, path = layer.num_layers, "torch.nn"
        else:
            fwd = layer(as_layer(x), hx_f, lengths=lengths)
            bwd = self.backward_layer(as_layer(reverse), hx_b, lengths=lengths)
            (f_seq, f_h, f_c), (b_seq, b_h, b_c) = ((r.time_major, r.h_n, r.c_n) for r in (fwd, bwd))
            num_layers, path = fwd.num_layers, fwd.path
        if (f_c is None) != (b_c is None) or f_seq.shape[-1] != b_seq.shape[-1]:  # custom cells say only now
            raise ShapeError(f"the two directions returned different states: forward output size {f_seq.shape[-1]}"
                             f" {'with' if f_c is not None else 'without'} c_n, backward {b_seq.shape[-1]} "
                             f"{'with' if b_c is not None else 'without'} c_n; wrap layers of one kind and size")
        seq = torch.cat([f_seq, reverse_valid(b_seq, lengths)], -1)  # (T, B, 2P)
        merged = merge(seq.unflatten(-1, (2, seq.shape[-1] // 2)), self.merge_mode)
        output = (tuple(call.layout(t, self.batch_first) for t in merged) if isinstance(merged, tuple)
                  else call.layout(merged, self.batch_first))
        h_n, c_n = _interleave(f_h, b_h), _interleave(f_c, b_c)
        if call.unbatched:
            h_n, c_n = h_n[:, 0], (None if c_n is None else c_n[:, 0])
        return RecurrentOutput(output, h_n, c_n, sequence=seq, lengths=lengths, num_layers=num_layers,
                               num_directions=2, merge_mode=self.merge_mode, batch_first=self.batch_first,
                               unbatched=call.unbatched, path=path)
