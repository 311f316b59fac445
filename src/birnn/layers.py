"""``birnn.RNN``, ``birnn.LSTM``, ``birnn.GRU``: drop-in torch.nn layers with lengths and merge modes.

Shape symbols (as torch.nn): ``T`` time steps, ``B`` batch, ``I`` = input_size,
``H`` = hidden_size, ``P`` = proj_size if > 0 else H, ``L`` = num_layers,
``D`` = 2 if bidirectional else 1.

======================  ======================================================
input                   (T, B, I); (B, T, I) with batch_first; unbatched (T, I);
                        or a PackedSequence
lengths / mask          (B,) ints in [0, T] / bool (T, B), or (B, T) with batch_first
h_0, h_n                (L*D, B, P) — row 2*l + d is layer l, direction d
c_0, c_n (LSTM)         (L*D, B, H)
output                  (T, B, D*P) for merge_mode="concat"; (T, B, P) for sum/mul/ave;
                        a (forward, backward) pair for None; (B, T, ·) with batch_first
======================  ======================================================

The constructors take torch.nn's arguments in torch.nn's order and create the same
parameters (names, shapes, gate layouts, initialisation and random draws), so state dicts load
both ways. Extra keyword-only arguments default to torch.nn's behaviour:

- ``merge_mode``: how the two directions form ``output`` (Keras): "concat", "sum", "mul",
  "ave" or None. ``h_n``/``c_n`` are never merged.
- ``forget_bias`` (LSTM): the forget-gate bias starts at this value (``b_ih`` forget slice =
  value, ``b_hh`` forget slice = 0), re-applied by ``reset_parameters``.
- ``initial_state``: "zeros" or "learned" (trainable ``initial_h`` (L*D, 1, P), and
  ``initial_c`` (L*D, 1, H) for LSTM, broadcast over the batch when ``hx`` is None).
- ``initial_state_noise``: σ of Gaussian noise added to h_0 in training.
- ``path``: "auto" or a forced implementation (see :mod:`birnn.dispatch`).

>>> import torch, birnn
>>> lstm = birnn.LSTM(5, 3, num_layers=2, bidirectional=True)
>>> x = torch.randn(7, 4, 5)                          # (T, B, I)
>>> output, (h_n, c_n) = lstm(x, lengths=torch.tensor([7, 5, 4, 3]))
>>> output.shape, h_n.shape, c_n.shape                 # (T, B, D*H), (L*D, B, H), (L*D, B, H)
(torch.Size([7, 4, 6]), torch.Size([4, 4, 3]), torch.Size([4, 4, 3]))
>>> bool(output[5:, 1].eq(0).all())                    # padded steps are zero
True
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch
from torch import Tensor, nn
from torch.nn import init

from .arguments import Call, LayerShape, prepare_call
from .batch import pack_like
from .cells import cell_spec
from .dispatch import Decision, check_path, choose
from .native import run_chunked, run_packed, run_whole
from .output import RecurrentOutput, check_merge_mode, merge
from .recurrence import layer_weights, run_reference

__all__ = ["GRU", "LSTM", "RNN", "RecurrentLayer"]

_INITIAL_STATES = ("zeros", "learned")


class RecurrentLayer(nn.RNNBase):
    """Shared machinery of RNN, LSTM and GRU; use those classes."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, *, merge_mode: Optional[str] = "concat", forget_bias: Optional[float] = None,
                 initial_state: str = "zeros", initial_state_noise: float = 0.0, path: str = "auto") -> None:
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
            raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
        check_merge_mode(merge_mode)
        if initial_state not in _INITIAL_STATES:
            raise ValueError(f"initial_state must be one of {_INITIAL_STATES}; got {initial_state!r}")
        if not isinstance(initial_state_noise, (int, float)) or initial_state_noise < 0:
            raise ValueError(f"initial_state_noise must be a number >= 0, got {initial_state_noise!r}")
        if forget_bias is not None:
            if mode != "LSTM":
                raise ValueError(f"forget_bias applies to LSTM only, got it for mode {mode!r}")
            if not bias:
                raise ValueError("forget_bias needs bias=True (there is no bias to set)")
        self._extras_ready = False
        super().__init__(mode, input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
                         dropout=dropout, bidirectional=bidirectional, proj_size=proj_size, device=device, dtype=dtype)
        self.merge_mode = merge_mode
        self.forget_bias = forget_bias
        self.initial_state = initial_state
        self.initial_state_noise = float(initial_state_noise)
        self.path = check_path(path)
        self.last_decision: Optional[Decision] = None
        rows = num_layers * (2 if bidirectional else 1)
        if initial_state == "learned":
            factory = {"device": device, "dtype": dtype}
            self.initial_h = nn.Parameter(torch.zeros(rows, 1, proj_size or hidden_size, **factory))
            if mode == "LSTM":
                self.initial_c = nn.Parameter(torch.zeros(rows, 1, hidden_size, **factory))
        self._extras_ready = True
        self._init_extras()

    # -- parameters --------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """torch.nn's initialisation (same draws, same order), then birnn's extras."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self._flat_weights:
            init.uniform_(w, -stdv, stdv)
        if getattr(self, "_extras_ready", False):
            self._init_extras()

    @torch.no_grad()
    def _init_extras(self) -> None:
        if self.forget_bias is not None:
            f = cell_spec(self.mode).gate_slice("f", self.hidden_size)
            for names in self._all_weights:
                getattr(self, names[2])[f] = self.forget_bias
                getattr(self, names[3])[f] = 0.0
        for name in ("initial_h", "initial_c"):
            if hasattr(self, name):
                getattr(self, name).zero_()

    def extra_repr(self) -> str:
        s = super().extra_repr()
        for name, default in (("merge_mode", "concat"), ("forget_bias", None), ("initial_state", "zeros"),
                              ("initial_state_noise", 0.0), ("path", "auto")):
            value = getattr(self, name, default)
            if value != default:
                s += f", {name}={value!r}"
        return s

    # -- calling -----------------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Features per step of ``output``: D*P for concat, P for sum/mul/ave or one direction."""
        P = self.proj_size or self.hidden_size
        return P * self.num_directions if (self.bidirectional and self.merge_mode == "concat") else P

    def _shape(self) -> LayerShape:
        w = self._flat_weights[0]
        return LayerShape(self.input_size, self.hidden_size, self.proj_size or self.hidden_size, self.num_layers,
                          self.num_directions, self.mode == "LSTM", self.batch_first, w.dtype, w.device)

    def _reference_features(self) -> List[str]:
        """birnn-only features in use that PyTorch's fused op cannot run (none in the core layer)."""
        return []

    def _initial_states(self, call: Call, batch: int):
        h0, c0 = call.h0, call.c0
        rows, P = self.num_layers * self.num_directions, self.proj_size or self.hidden_size
        w = self._flat_weights[0]
        if h0 is None:
            if self.initial_state == "learned":
                h0 = self.initial_h.expand(rows, batch, P).contiguous()
                c0 = self.initial_c.expand(rows, batch, self.hidden_size).contiguous() if self.mode == "LSTM" else None
            else:
                h0 = w.new_zeros(rows, batch, P)
                c0 = w.new_zeros(rows, batch, self.hidden_size) if self.mode == "LSTM" else None
        if self.training and self.initial_state_noise > 0:
            h0 = h0 + self.initial_state_noise * torch.randn_like(h0)
        return h0, c0

    def _weights_by_layer(self):
        per = len(self._flat_weights) // (self.num_layers * self.num_directions)
        D = self.num_directions
        return [[self._flat_weights[(l * D + d) * per:(l * D + d + 1) * per] for d in range(D)]
                for l in range(self.num_layers)]

    def _run(self, path: str, call: Call, h0: Tensor, c0: Optional[Tensor]):
        common = dict(bias=self.bias, dropout=self.dropout, training=self.training)
        if path == "torch":
            return run_whole(self.mode, call.x, h0, c0, self._flat_weights, num_layers=self.num_layers,
                             bidirectional=self.bidirectional, **common)
        if path == "torch-packed":
            return run_packed(self.mode, call.x, call.lengths, h0, c0, self._flat_weights,
                              num_layers=self.num_layers, bidirectional=self.bidirectional, **common)
        spec = cell_spec(self.mode)
        if path == "torch-chunked":
            return run_chunked(self.mode, spec.gates, call.x, call.lengths, h0, c0, self._weights_by_layer(), **common)
        layers = [layer_weights(spec, dirs, bias=self.bias, proj=self.proj_size > 0) for dirs in self._weights_by_layer()]
        return run_reference(spec, layers, call.x, call.lengths, h0, c0, dropout=self.dropout, training=self.training)

    def forward(self, input, hx=None, *, lengths=None, mask=None) -> RecurrentOutput:
        """Run the layer. See the module docstring for shapes.

        Args:
            input: padded tensor, unbatched (T, I) tensor, or PackedSequence.
            hx: h_0, or (h_0, c_0) for LSTM; default zeros (or the learned initial state).
            lengths: (B,) real steps per sequence, on any device; no sorting needed.
            mask: boolean prefix mask, (T, B) or (B, T) with batch_first; instead of lengths.

        Returns:
            RecurrentOutput, a 2-tuple ``(output, h_n)`` / ``(output, (h_n, c_n))`` with
            named parts, views and pooling.
        """
        self._update_flat_weights()
        call = prepare_call(input, hx, lengths, mask, self._shape())
        T, B = call.x.shape[:2]
        h0, c0 = self._initial_states(call, B)
        needs_grad = torch.is_grad_enabled() and (call.x.requires_grad or any(w.requires_grad for w in self._flat_weights))
        decision = choose(self.path, device=call.x.device, mode=self.mode, needs_grad=needs_grad,
                          variable_lengths=call.lengths is not None, features=self._reference_features())
        if B == 0:
            decision = Decision("empty", "empty batch (B=0): nothing to run")
            seq = call.x.new_zeros(T, 0, self.num_directions * h0.shape[-1])
            h_n, c_n = h0, c0
        else:
            seq, h_n, c_n = self._run(decision.path, call, h0, c0)
        self.last_decision = decision
        return self._result(call, seq, h_n, c_n, decision.path)

    def _result(self, call: Call, seq: Tensor, h_n: Tensor, c_n: Optional[Tensor], path: str) -> RecurrentOutput:
        D = self.num_directions
        if D == 1 or self.merge_mode == "concat":
            merged = seq
        else:
            merged = merge(seq.view(*seq.shape[:2], D, -1), self.merge_mode)

        def layout(t: Tensor):
            if call.packed is not None:
                return pack_like(t, call.user_lengths, call.packed)
            if call.unbatched:
                return t[:, 0]
            return t.transpose(0, 1) if self.batch_first else t

        output = tuple(layout(t) for t in merged) if isinstance(merged, tuple) else layout(merged)
        if call.unbatched:
            h_n = h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        return RecurrentOutput(output, h_n, c_n, sequence=seq, lengths=call.user_lengths, num_layers=self.num_layers,
                               num_directions=D, merge_mode=self.merge_mode, batch_first=self.batch_first,
                               unbatched=call.unbatched, path=path)


class RNN(RecurrentLayer):
    """Elman RNN, ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, act = tanh or relu.

    Arguments and parameters as ``torch.nn.RNN``, plus birnn's keyword-only extras (see
    :mod:`birnn.layers`).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, **extras) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype, **extras)


class LSTM(RecurrentLayer):
    """LSTM with torch.nn's gates ``[i|f|g|o]`` and optional projection (``proj_size``).

    Arguments and parameters as ``torch.nn.LSTM``, plus birnn's keyword-only extras (see
    :mod:`birnn.layers`).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, **extras) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype, **extras)


class GRU(RecurrentLayer):
    """GRU with torch.nn's gates ``[r|z|n]`` (``b_hn`` inside ``r *``).

    Arguments and parameters as ``torch.nn.GRU``, plus birnn's keyword-only extras (see
    :mod:`birnn.layers`).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, **extras) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype, **extras)
