"""One time step of the Elman RNN (tanh | relu), LSTM and GRU, with torch.nn's gate layouts.

The steps work on *direction-batched* tensors: both directions of a bidirectional layer are
stacked on a leading axis ``D`` and advance together with one batched matmul. Symbols:
``D`` directions, ``B`` batch, ``H`` hidden size, ``P`` output size of the recurrence
(``proj_size`` for a projected LSTM, else ``H``), ``G`` gates (RNN 1, LSTM 4, GRU 3).

The input half of every gate, ``x_t @ W_ih^T + b``, is computed for all steps at once before
the recurrence (one large matmul); a step receives its slice ``xg`` (D, B, G*H).

Equations (identical to torch.nn):

- RNN:  ``h' = act(xg + h W_hh^T)`` where ``xg`` already holds ``b_ih + b_hh``.
- LSTM: gates ``[i|f|g|o] = xg + h W_hh^T`` (the step reads them reordered ``[i|f|o|g]`` so
  one sigmoid covers three gates); ``c' = σ(f) c + σ(i) tanh(g)``; ``h' = σ(o) tanh(c')``,
  then ``h' = h' W_hr^T`` with a projection.
- GRU:  ``[r|z|n]``: ``r = σ(x_r + h_r)``, ``z = σ(x_z + h_z)``, ``n = tanh(x_n + r * h_n)``
  with ``h_* = h W_h*^T + b_h*`` (``b_hn`` sits inside ``r *``), ``h' = (1 - z) n + z h``.

Two cells read only the input in their gates (Feng et al. 2024, "Were RNNs All We Needed?"),
so their recurrence is *linear*, ``h' = a * h + b`` with ``(a, b)`` from ``xg`` alone, and a
whole sequence is one parallel scan (:mod:`birnn.backends.scan`). They have no ``W_hh``; ``g``
is the paper's positive activation ``g(x) = x + 0.5 if x >= 0 else σ(x)`` (its log-space form):

- minGRU ``[z|h]``: ``z = σ(x_z)``; ``a = 1 - z``, ``b = z g(x_h)``.
- minLSTM ``[f|i|h]``: ``f' = σ(x_f) / (σ(x_f) + σ(x_i))`` computed as
  ``σ(log σ(x_f) - log σ(x_i))`` (no 0/0), ``i' = 1 - f'``; ``a = f'``, ``b = i' g(x_h)``.

Optional, per :class:`StepWeights` (all off for torch.nn's cells):

- recurrent dropout: ``h`` is multiplied by a fixed mask ``drop_h`` before ``W_hh`` (Gal).
- layer norm (haste's LayerNormLSTM): the recurrent pre-activation is normalised over its
  G*H units and scaled by ``ln_h`` (the input side is normalised before the loop); the LSTM
  normalises ``c'`` before the output tanh with gain and bias ``ln_c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CELLS", "CELL_NAMES", "CellSpec", "StepWeights", "cell_spec", "normalise", "positive"]

Carry = Tuple[Tensor, ...]  # (h,) or (h, c), each (D, B, ·)


class StepWeights(NamedTuple):
    """Recurrent weights of one layer, stacked over directions, laid out for ``baddbmm``."""

    hh_t: Optional[Tensor]  # (D, P, G*H): W_hh transposed, gate blocks in step order; None for a linear cell
    b_hh: Optional[Tensor] = None  # (D, 1, G*H), used inside the step only by the GRU
    hr_t: Optional[Tensor] = None  # (D, H, P): W_hr transposed (projected LSTM)
    drop_h: Optional[Tensor] = None  # (D, B, P) recurrent dropout mask, already scaled by 1/(1-p)
    ln_h: Optional[Tensor] = None  # (D, 1, G*H) gain of the recurrent pre-activation's layer norm
    ln_c: Optional[Tuple[Tensor, Tensor]] = None  # LSTM: gain and bias (D, 1, H) of the norm of c


def normalise(t: Tensor, gain: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """Layer norm over the last dimension (eps 1e-5) with a per-unit gain, plus ``bias``
    (any broadcastable tensor) when given."""
    normed = F.layer_norm(t, t.shape[-1:])
    return normed * gain if bias is None else torch.addcmul(bias, normed, gain)


def _recurrent(h: Tensor, w: StepWeights, add: Optional[Tensor] = None) -> Tensor:
    """``add + h W_hh^T`` (D, B, G*H) with recurrent dropout and layer norm applied when set."""
    if w.drop_h is not None:
        h = h * w.drop_h
    if w.ln_h is None:
        return torch.bmm(h, w.hh_t) if add is None else torch.baddbmm(add, h, w.hh_t)
    return normalise(torch.bmm(h, w.hh_t), w.ln_h, add)


def _preactivation(xg: Tensor, h: Tensor, w: StepWeights) -> Tensor:
    return _recurrent(h, w, add=xg)


def _rnn_step(activation: Callable[[Tensor], Tensor]):
    def step(xg: Tensor, carry: Carry, w: StepWeights) -> Carry:
        (h,) = carry
        return (activation(_preactivation(xg, h, w)),)  # (D, B, H)

    return step


def _lstm_step(xg: Tensor, carry: Carry, w: StepWeights) -> Carry:
    h, c = carry
    gates = _preactivation(xg, h, w)  # (D, B, 4H), step order [i|f|o|g]
    H = c.shape[-1]
    i, f, o = torch.sigmoid(gates[..., : 3 * H]).chunk(3, dim=-1)
    c = torch.addcmul(f * c, i, torch.tanh(gates[..., 3 * H:]))  # (D, B, H)
    h = o * torch.tanh(c if w.ln_c is None else normalise(c, *w.ln_c))
    if w.hr_t is not None:
        h = torch.bmm(h, w.hr_t)  # (D, B, P)
    return h, c


def _gru_step(xg: Tensor, carry: Carry, w: StepWeights) -> Carry:
    (h,) = carry
    hg = _recurrent(h, w, add=w.b_hh)  # (D, B, 3H)
    x_r, x_z, x_n = xg.chunk(3, dim=-1)
    h_r, h_z, h_n = hg.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (n + z * (h - n),)  # (1 - z) n + z h


def positive(x: Tensor) -> Tensor:
    """The paper's ``g``: ``x + 0.5`` for ``x >= 0``, else ``σ(x)``; positive and continuous."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def _mingru(xg: Tensor) -> Tuple[Tensor, Tensor]:
    k_z, k_h = xg.chunk(2, dim=-1)
    return torch.sigmoid(-k_z), torch.sigmoid(k_z) * positive(k_h)  # a = 1 - z, b = z g(h~)


def _minlstm(xg: Tensor) -> Tuple[Tensor, Tensor]:
    k_f, k_i, k_h = xg.chunk(3, dim=-1)
    d = F.logsigmoid(k_f) - F.logsigmoid(k_i)  # log f - log i
    return torch.sigmoid(d), torch.sigmoid(-d) * positive(k_h)  # a = f / (f + i), b = i / (f + i) g(h~)


def _linear_step(coefficients: Callable[[Tensor], Tuple[Tensor, Tensor]]):
    def step(xg: Tensor, carry: Carry, w: StepWeights) -> Carry:
        (h,) = carry
        a, b = coefficients(xg)
        return (torch.addcmul(b, a, h),)  # (D, B, H)

    return step


@dataclass(frozen=True)
class CellSpec:
    """What a cell type is: its mode name, gate count, parameters and step function."""

    mode: str  # the layer's mode string: torch.nn's "RNN_TANH", "RNN_RELU", "LSTM", "GRU", or birnn's
    gates: int
    has_cell_state: bool
    hidden_bias_in_step: bool  # GRU: b_hh stays inside the step (b_hn is multiplied by r)
    step: Callable[[Tensor, Carry, StepWeights], Carry]
    gate_names: str  # the order of gate blocks in W_ih / W_hh / biases (torch.nn's)
    step_order: Tuple[int, ...] = ()  # torch.nn's blocks in the order the step reads them (() = same)
    name: str = ""  # the cell in layer specs and on the command line ("bilstm:128", --mode lstm)
    code: int = -1  # the kernels' CELL switch (-1: no kernel runs it)
    onnx_order: Tuple[int, ...] = (0,)  # torch.nn's blocks in the order ONNX's operator reads them
    # a linear cell (no W_hh): xg (..., G*H) -> (a, b) of h' = a * h + b, each (..., H)
    coefficients: Optional[Callable[[Tensor], Tuple[Tensor, Tensor]]] = None

    @property
    def linear(self) -> bool:
        """The gates read only the input: no ``W_hh``, one bias, a parallel scan runs it."""
        return self.coefficients is not None

    @property
    def in_torch(self) -> bool:
        """``torch.nn.RNNBase`` knows the mode (creates its parameters, has an op for it)."""
        return self.mode in ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")

    def weight_names(self, bias: bool, proj: bool) -> Tuple[str, ...]:
        """One layer and direction's parameters, as ``str.format`` patterns of (layer, suffix), in
        torch.nn's order: ``weight_ih``, ``weight_hh`` (not for a linear cell), the biases (one
        for a linear cell), ``weight_hr`` (projection)."""
        recurrent = not self.linear
        names = ("weight_ih_l{}{}",) + ("weight_hh_l{}{}",) * recurrent
        if bias:
            names += ("bias_ih_l{}{}",) + ("bias_hh_l{}{}",) * recurrent
        return names + ("weight_hr_l{}{}",) * proj

    @property
    def layout(self) -> str:
        """torch.nn's gate blocks as documented: ``[i|f|g|o]``, ``[r|z|n]``, or "" for one gate."""
        return f"[{'|'.join(self.gate_names)}]" if self.gates > 1 else ""

    def to_step_order(self, t: Tensor, dim: int = 0) -> Tensor:
        """Reorder the gate blocks of a torch.nn-layout weight or bias along ``dim`` for the step."""
        if not self.step_order:
            return t
        blocks = t.chunk(self.gates, dim)
        return torch.cat([blocks[k] for k in self.step_order], dim)

    def gate_slice(self, name: str, hidden_size: int) -> slice:
        """Rows of W_ih/W_hh/b_* that hold gate ``name`` (e.g. "f" for the LSTM forget gate)."""
        k = self.gate_names.index(name)
        return slice(k * hidden_size, (k + 1) * hidden_size)


# The one cell table: the steps, gate layouts, the kernels' codes, ONNX's gate order and the
# names layer specs and the command line accept all come from here.
CELLS = {
    "RNN_TANH": CellSpec("RNN_TANH", 1, False, False, _rnn_step(torch.tanh), "h", name="rnn", code=0),
    "RNN_RELU": CellSpec("RNN_RELU", 1, False, False, _rnn_step(torch.relu), "h", name="rnn_relu", code=1),
    "LSTM": CellSpec("LSTM", 4, True, False, _lstm_step, "ifgo", step_order=(0, 1, 3, 2),  # the step reads [i|f|o|g]
                     name="lstm", code=2, onnx_order=(0, 3, 1, 2)),  # ONNX: [i|o|f|c]
    "GRU": CellSpec("GRU", 3, False, True, _gru_step, "rzn", name="gru", code=3, onnx_order=(1, 0, 2)),  # ONNX: [z|r|h]
    "MINGRU": CellSpec("MINGRU", 2, False, False, _linear_step(_mingru), "zh", name="mingru",
                       coefficients=_mingru),
    "MINLSTM": CellSpec("MINLSTM", 3, False, False, _linear_step(_minlstm), "fih", name="minlstm",
                        coefficients=_minlstm),
}
CELL_NAMES = {spec.name: mode for mode, spec in CELLS.items()}  # "lstm" -> "LSTM", ...


def cell_spec(mode: str) -> CellSpec:
    try:
        return CELLS[mode]
    except KeyError:
        raise ValueError(f"mode must be one of {sorted(CELLS)}, got {mode!r}") from None
