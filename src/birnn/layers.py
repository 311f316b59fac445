"""``birnn.RNN``, ``birnn.LSTM``, ``birnn.GRU``: drop-in torch.nn layers with lengths, merge
modes and regularisers.

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
both ways. birnn's keyword-only extras (:mod:`birnn.options`) default to torch.nn's
behaviour; those that add parameters (``layer_norm``, ``residual="highway"``,
``initial_state="learned"``) add them under their own names.

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

import numbers
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from . import backends
from .backends import segments
from .arguments import Call, LayerShape, prepare_call
from .cells import cell_spec
from .dispatch import Decision, check_path
from .errors import ArgumentTypeError
from .options import PROBABILITIES, LayerOptions
from .output import RecurrentOutput, merge
from .parameters import create_extras, create_weights, extra_names, reset, torch_draws

__all__ = ["GRU", "LSTM", "RNN", "RecurrentLayer", "layer_class", "refuse_projection"]


def _check_constructor(input_size, hidden_size, proj_size, **flags) -> None:
    """Sizes are ints (not bools) and switches are bools, checked by type: torch.nn would take
    ``hidden_size=True`` as 1 and ``bidirectional="no"`` as true without a word."""
    for name, value, low in (("input_size", input_size, 0), ("hidden_size", hidden_size, 1),
                             ("proj_size", proj_size, 0)):
        if isinstance(value, bool) or not isinstance(value, int):  # (torch.nn takes Python ints only)
            raise ArgumentTypeError(f"{name} must be an int >= {low}, got {type(value).__name__} {value!r}")
        if value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value}")
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ArgumentTypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


class RecurrentLayer(nn.RNNBase):
    """Shared machinery of RNN, LSTM, GRU, MinGRU and MinLSTM; use those classes."""

    CLASSES: dict = {}  # mode -> the public class of that cell (each class registers its modes)

    def __init_subclass__(cls, modes: Sequence[str] = (), **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for mode in modes:
            RecurrentLayer.CLASSES[mode] = cls

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, **extras) -> None:
        _check_constructor(input_size, hidden_size, proj_size, bias=bias, batch_first=batch_first,
                           bidirectional=bidirectional)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a number in [0, 1] (torch.nn's range), got {dropout!r}")
        if not isinstance(num_layers, int) or isinstance(num_layers, bool):
            raise ArgumentTypeError(f"num_layers must be an int >= 1, got {type(num_layers).__name__} {num_layers!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be an int >= 1 (num_layers must be greater than zero), got {num_layers}")
        unknown = sorted(set(extras) - set(LayerOptions.names()))
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}; birnn's extras are "
                            f"{', '.join(LayerOptions.names())}")
        options = LayerOptions(mode, num_layers, bias, proj_size, **extras)
        check_path(options.path)
        self._extras_ready = False
        if cell_spec(mode).in_torch:
            super().__init__(mode, input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
                             dropout=dropout, bidirectional=bidirectional, proj_size=proj_size, device=device,
                             dtype=dtype)
        else:  # a cell torch.nn does not know: RNNBase's attributes, the parameters the registry declares
            nn.Module.__init__(self)
            self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
            self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
            self.bidirectional, self.proj_size = bidirectional, proj_size
            create_weights(self, device, dtype)
            self.reset_parameters()
        for name in LayerOptions.names():
            setattr(self, name, getattr(options, name))
        self.last_decision: Optional[Decision] = None
        self.quantized: Optional[nn.Module] = None  # torch.nn's dynamic quantized module (birnn.quantized)
        self._create_extra_parameters(device, dtype)
        self._extras_ready = True
        # torch.nn has drawn its weights; keep those draws for init="torch" (same seed, same weights)
        reset(self, scheme=None if self.init == "torch" else self.init)

    # -- parameters (birnn.parameters: names, shapes, how they start) ------------------------
    def _create_extra_parameters(self, device, dtype) -> None:
        for name, p in create_extras(self, device, dtype).items():
            setattr(self, name, p)
        self._extra_names = extra_names(self)  # what the backends read besides torch.nn's weights

    def reset_parameters(self) -> None:
        """torch.nn's initialisation (same draws, same order), or the ``init`` scheme, then extras."""
        if not getattr(self, "_extras_ready", False):  # called by RNNBase.__init__: torch.nn's scheme
            torch_draws(self._flat_weights, self.hidden_size)
            return
        reset(self, scheme=self.init)

    def flatten_parameters(self) -> None:
        """torch.nn's cuDNN weight flattening, for the cells cuDNN runs (a no-op for the others)."""
        if cell_spec(self.mode).in_torch:
            super().flatten_parameters()

    def extra_repr(self) -> str:
        s = super().extra_repr()
        defaults = LayerOptions(self.mode, self.num_layers, self.bias, self.proj_size)
        for name in LayerOptions.names():
            value = getattr(self, name, getattr(defaults, name))
            if value != getattr(defaults, name):
                s += f", {name}={value!r}"
        return s

    # -- shapes ------------------------------------------------------------------------------
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
                          self.num_directions, cell_spec(self.mode).has_cell_state, self.batch_first, w.dtype, w.device)

    def _weights_by_layer_flat(self) -> List[List[Tensor]]:
        # under torch.export the parameters are read by name (the cached _flat_weights are not refreshed there)
        flat = [getattr(self, n) for n in self._flat_weights_names] if torch.compiler.is_exporting() \
            else self._flat_weights
        per = len(flat) // (self.num_layers * self.num_directions)
        return [flat[k * per:(k + 1) * per] for k in range(self.num_layers * self.num_directions)]

    def _stochastic(self) -> bool:
        """Whether a training call samples masks or noise (besides torch.nn's own dropout)."""
        return any(getattr(self, name) for name in PROBABILITIES + ("initial_state_noise",))

    # -- calling -----------------------------------------------------------------------------
    def forward(self, input, hx=None, *, lengths=None, mask=None, padding: str = "right", resets=None,
                cu_seqlens=None, return_all: Sequence[str] = ()) -> RecurrentOutput:
        """Run the layer. See the module docstring for shapes.

        Args:
            input: padded tensor, unbatched (T, I) tensor, PackedSequence, jagged nested tensor
                (B, j, I), or the sequences' rows one after another (N, I) with ``cu_seqlens``.
            hx: h_0, or (h_0, c_0) for LSTM; default zeros (or the learned initial state).
            lengths: (B,) real steps per sequence (a tensor on any device, a numpy array or a
                list); no sorting needed.
            mask: boolean mask, (T, B) or (B, T) with batch_first; instead of lengths. A prefix
                mask marks right padding, a suffix mask left padding.
            padding: "right" (real steps first, the default) or "left" (real steps last, as
                Hugging Face tokenizers' ``padding_side="left"``); outputs keep the caller's side.
            resets: bool (T, B) ((B, T) with batch_first; (N,) with cu_seqlens): the state
                restarts from h_0 before each marked step (episode or document boundaries), in
                both directions: the backward direction restarts at each segment's last step.
            cu_seqlens: (B+1,) offsets of the sequences in the (N, I) input (varlen attention's
                form); the output is (N, D*P) in the same rows.
            return_all: names of extra results: "layers" (``result.layer_outputs``: every
                layer's per-step output) and "c" (``result.cell_states``: every layer's LSTM
                cell state at every step), each a tuple of L tensors laid out as ``output``.

        Returns:
            RecurrentOutput, a 2-tuple ``(output, h_n)`` / ``(output, (h_n, c_n))`` with
            named parts, views and pooling.
        """
        if not torch.compiler.is_exporting():  # export must not assign module attributes
            self._update_flat_weights()
        wanted = self._check_return_all(return_all)
        call = prepare_call(input, hx, lengths, mask, self._shape(), padding=padding, resets=resets,
                            cu_seqlens=cu_seqlens)
        run_call, join = call, None
        if not cell_spec(self.mode).linear and segments.applies(call, self.training and self._stochastic()):
            # a row with resets is several sequences (the linear cells' scan takes resets as they are)
            run_call, join = segments.split(call, self.num_directions)
        plan = backends.plan_call(self, run_call, wanted)  # shapes, weights, every mask: sampled once
        if plan.T == 0:
            return self._empty(call, plan)
        decision = backends.decide(plan)  # raises where torch.jit.trace would record it wrongly
        ran = backends.run(plan, decision)
        if join is not None:
            ran = join(ran)
            decision = Decision(decision.path, f"resets: the rows' {plan.B} segments as sequences of their own; "
                                               f"{decision.reason}")
        self.last_decision = decision
        return self._result(call, ran, decision.path)

    def _empty(self, call: Call, plan) -> RecurrentOutput:
        """A batch of empty sequences (T=0): nothing to run, outputs (0, B, ·), h_n = h_0."""
        self.last_decision = Decision("empty", "T=0: every sequence is empty; outputs (0, B, ·), h_n = h_0")
        B, L, D = plan.B, self.num_layers, self.num_directions
        seq = call.x.new_zeros(0, B, D * plan.h0.shape[-1])
        cells = tuple(call.x.new_zeros(0, B, D * self.hidden_size) for _ in range(L)) if plan.want_cells else None
        return self._result(call, backends.Ran(seq, plan.h0, plan.c0, (seq,) * L if plan.want_layers else None,
                                               cells), "empty")

    def __prepare_scriptable__(self):
        """torch.jit.script calls this first: refuse with the routes that work."""
        raise RuntimeError(f"torch.jit.script cannot compile birnn.{type(self).__name__} (its call is Python: "
                           "argument checks, dispatch, lengths); use torch.export.export, torch.compile, or "
                           "torch.jit.trace on a call without lengths")

    RETURN_ALL = ("layers", "c")

    def _check_return_all(self, return_all) -> Tuple[str, ...]:
        names = (return_all,) if isinstance(return_all, str) else tuple(return_all)
        unknown = [n for n in names if n not in self.RETURN_ALL]
        if unknown:
            raise ValueError(f"return_all takes names from {self.RETURN_ALL}, got {unknown}")
        if "c" in names and not cell_spec(self.mode).has_cell_state:
            raise ValueError(f"return_all='c' needs an LSTM: {self.mode} has no cell state")
        return names

    def step(self, x_t: Tensor, state=None):
        """One time step for streaming inference (unidirectional layers), equal to the sequence call.

        Args:
            x_t: (B, I), or (I,) unbatched.
            state: None (zeros / learned), h (L, B, P), or (h, c) for LSTM — what the previous
                call returned.

        Returns:
            ``(y_t, state)``: the last layer's output (B, P) and the new state.
        """
        if self.bidirectional:
            raise ValueError("step() needs a unidirectional layer: a backward direction reads the whole sequence")
        if self.training and self._stochastic():
            raise RuntimeError("step() in training mode would draw new dropout/zoneout masks at every step; "
                               "call .eval() first")
        if not isinstance(x_t, Tensor):
            raise ArgumentTypeError(f"x_t must be a torch.Tensor of shape (B, I) or (I,), got {type(x_t).__name__}"
                                    + (" (wrap it with torch.as_tensor)" if hasattr(x_t, "__array__") else ""))
        unbatched = x_t.dim() == 1
        if unbatched:
            x = x_t.unsqueeze(0)  # (1, I): one unbatched step
        else:
            x = x_t.unsqueeze(1 if self.batch_first else 0)  # (1, B, I) or (B, 1, I)
        res = self(x, state)
        y = res.output[0] if unbatched else res.output.squeeze(1 if self.batch_first else 0)
        return y, res.hidden

    def _result(self, call: Call, ran, path: str) -> RecurrentOutput:
        """The caller's layout (batch-first, left padding, unbatched) and merge mode on ``ran``."""
        seq, h_n, c_n, D = ran.output, ran.h_n, ran.c_n, self.num_directions
        if D == 1 or self.merge_mode == "concat":
            merged = seq
        else:
            merged = merge(seq.unflatten(-1, (D, seq.shape[-1] // D)), self.merge_mode)

        def layout(t: Tensor):
            return call.layout(t, self.batch_first)

        output = tuple(layout(t) for t in merged) if isinstance(merged, tuple) else layout(merged)
        if call.unbatched:
            h_n = h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        res = RecurrentOutput(output, h_n, c_n, sequence=seq, lengths=call.user_lengths, num_layers=self.num_layers,
                              num_directions=D, merge_mode=self.merge_mode, batch_first=self.batch_first,
                              unbatched=call.unbatched, path=path)
        res.layer_outputs = None if ran.layers is None else tuple(layout(t) for t in ran.layers)
        res.cell_states = None if ran.cells is None else tuple(layout(t) for t in ran.cells)
        return res


def refuse_projection(extras: dict) -> None:
    """RNN and GRU have no projection: refuse ``proj_size`` as torch.nn does (ValueError)."""
    if "proj_size" in extras:
        raise ValueError(f"proj_size argument is only supported for LSTM, not RNN or GRU "
                         f"(got proj_size={extras['proj_size']!r})")


class RNN(RecurrentLayer, modes=("RNN_TANH", "RNN_RELU")):
    """Elman RNN, ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, act = tanh or relu.

    Arguments and parameters as ``torch.nn.RNN``, plus birnn's keyword-only extras
    (:mod:`birnn.options`).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, **extras) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        refuse_projection(extras)
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype, **extras)


class LSTM(RecurrentLayer, modes=("LSTM",)):
    """LSTM with torch.nn's gates ``[i|f|g|o]`` and optional projection (``proj_size``).

    Arguments and parameters as ``torch.nn.LSTM``, plus birnn's keyword-only extras
    (:mod:`birnn.options`).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, **extras) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype, **extras)


class GRU(RecurrentLayer, modes=("GRU",)):
    """GRU with torch.nn's gates ``[r|z|n]`` (``b_hn`` inside ``r *``).

    Arguments and parameters as ``torch.nn.GRU``, plus birnn's keyword-only extras
    (:mod:`birnn.options`).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, **extras) -> None:
        refuse_projection(extras)
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype, **extras)



def layer_class(mode: str, input_size: int, hidden_size: int, **kwargs) -> RecurrentLayer:
    """The public layer of cell ``mode`` (:data:`birnn.cells.CELLS`), e.g. ``birnn.RNN`` with
    ``nonlinearity="relu"`` for "RNN_RELU"; ``kwargs`` as that class takes them. A layer class
    registers its cells by ``class MyCell(RecurrentLayer, modes=("MYCELL",))``."""
    if mode not in RecurrentLayer.CLASSES:
        raise ValueError(f"mode must be one of {sorted(RecurrentLayer.CLASSES)}, got {mode!r}")
    if mode.startswith("RNN_"):
        kwargs["nonlinearity"] = mode[4:].lower()
    return RecurrentLayer.CLASSES[mode](input_size, hidden_size, **kwargs)
