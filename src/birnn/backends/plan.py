"""``LayerPlan``: one call of a birnn layer, as every backend reads it.

A plan is built once per call (:func:`plan_call`) from the layer and the validated call
(:func:`birnn.arguments.prepare_call`): shapes, the weights per layer and direction in
torch.nn's layout (W_hh weight-dropped in training), the initial states, and every random
mask the call uses, sampled here once and in one order, so that whichever backend runs the
call sees the same ones. Nothing in a plan changes after it is built.

Symbols: ``T`` time, ``B`` batch, ``I`` input size, ``L`` layers, ``D`` directions,
``H`` hidden size, ``P`` = proj_size or H, ``G`` gates.

Random draws, in order: the initial-state noise, the input dropout mask, the weight-dropped
W_hh, the inter-layer dropout masks, then per layer the recurrent dropout mask and the zoneout
masks (h, then c); the output dropout mask is drawn after the run (:meth:`LayerPlan.output`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells import CellSpec, cell_spec
from .weights import Highway, LayerWeights, Norms, Zoneout, step_weights
from ..regularization import dropout_weights, variational_mask, zoneout_masks

__all__ = ["LayerPlan", "Masks", "plan_call"]

Between = Callable[[int, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Masks:
    """One layer's masks inside the recurrence, sampled once (training only; None when unused)."""

    drop_h: Optional[Tensor] = None  # (D, B, P) recurrent dropout, scaled 0 or 1/(1-p)
    keep_h: Optional[Tensor] = None  # (T, D, B, P) zoneout of h: 1 keeps h_{t-1}
    keep_c: Optional[Tensor] = None  # (T, D, B, H) zoneout of the LSTM cell state


@dataclass(frozen=True, eq=False)
class LayerPlan:
    """What a backend needs to run one call of an ``L``-layer, ``D``-direction layer."""

    mode: str  # torch.nn's mode: "LSTM", "GRU", "RNN_TANH", "RNN_RELU"
    requested: str  # the layer's ``path`` ("auto" or a backend's path name)
    x: Tensor  # (T, B, I) time-major, zero at padded steps, input dropout applied
    lengths: Optional[Tensor]  # (B,) int64 on x's device; None when every sequence has T steps
    lengths_given: bool  # the caller gave lengths (or a mask, packed, nested or cu_seqlens input), full or not
    h0: Tensor  # (L*D, B, P), row l*D + d
    c0: Optional[Tensor]  # (L*D, B, H) for LSTM, else None
    weights: Tuple[Tuple[Tuple[Tensor, ...], ...], ...]  # [l][d]: (w_ih, w_hh, (b_ih, b_hh), (w_hr))
    hidden_size: int
    proj_size: int
    num_directions: int
    bias: bool
    training: bool
    needs_grad: bool  # autograd records the call (a training step)
    dropout: float  # torch.nn's dropout between layers, in effect (0 outside training)
    between: Optional[Between]  # between layers l and l+1: residual, dropouts; None when nothing
    between_is_dropout: bool  # ``between`` is only torch.nn's dropout (PyTorch's op does it itself)
    features: Tuple[str, ...]  # what is in use that PyTorch's fused op cannot express
    call_extras: Tuple[str, ...]  # call arguments in use that only the reference runs ("resets", ...)
    resets: Optional[Tensor]  # (T, B) bool or None
    want_layers: bool  # return every layer's output (return_all="layers")
    want_cells: bool  # return every layer's cell states (return_all="c")
    masks: Tuple[Masks, ...]  # per layer
    params: Dict[str, Tensor]  # the layer's own extra parameters (ln_*, *_hw_*) by name
    zoneout: Tuple[float, float]  # (h, c) rates: the eval-mode expectation needs them too
    highway: bool
    quantized: Optional[torch.nn.Module]  # torch.nn's dynamic quantized module, when quantized
    output_p: float  # output dropout
    variational: bool  # the output dropout's mask is one per sequence

    @property
    def spec(self) -> CellSpec:
        return cell_spec(self.mode)

    @property
    def uses(self) -> Tuple[str, ...]:
        """Everything the call uses beyond a plain torch.nn layer, by the names backends declare
        (:class:`birnn.backends.base.Capabilities`): the features, the call's extras and
        ``proj_size``."""
        return self.features + self.call_extras + ("proj_size",) * (self.proj_size > 0)

    @property
    def num_layers(self) -> int:
        return len(self.weights)

    @property
    def T(self) -> int:
        return self.x.shape[0]

    @property
    def B(self) -> int:
        return self.x.shape[1]

    @property
    def capture(self) -> Optional[str]:
        """"export" or "compile" while a graph is being captured, else None."""
        return "export" if torch.compiler.is_exporting() else "compile" if torch.compiler.is_compiling() else None

    def output(self, seq: Tensor) -> Tensor:
        """The output dropout on the stack's output (T, B, D*P), drawn after the run."""
        return _dropper(self.output_p, self.variational, self.training, self.B, seq.shape[-1], seq)(seq)

    def _stacked(self, name: str) -> Tensor:
        """The extra parameter ``name`` (``{name}{suffix}`` per direction, e.g. ``ln_ih_l0``),
        directions stacked."""
        return torch.stack([self.params[name + sfx] for sfx in ("", "_reverse")[: self.num_directions]])

    def norms(self, l: int) -> Optional[Norms]:
        """Layer ``l``'s layer-norm parameters, directions stacked (None without layer norm)."""
        if f"ln_ih_l{l}" not in self.params:
            return None
        cell = [self._stacked(f"ln_cell_{k}_l{l}") for k in ("weight", "bias")] if self.spec.has_cell_state else []
        return Norms(self._stacked(f"ln_ih_l{l}"), self._stacked(f"ln_hh_l{l}"), *cell)

    def step_layers(self) -> List[LayerWeights]:
        """Every layer's weights, directions stacked, with its layer norms, highway and masks, in the
        layout the reference step (:mod:`birnn.backends.reference`) and the fused kernel read."""
        layers = []
        for l, masks in enumerate(self.masks):
            highway = None
            if self.highway:
                highway = Highway(self._stacked(f"weight_hw_ih_l{l}").transpose(1, 2).contiguous(),
                                  self._stacked(f"weight_hw_hh_l{l}").transpose(1, 2).contiguous(),
                                  self._stacked(f"bias_hw_l{l}").unsqueeze(1))
            zoneout = Zoneout(*self.zoneout, masks.keep_h, masks.keep_c) if any(self.zoneout) else None
            layers.append(step_weights(self.spec, self.weights[l], bias=self.bias, proj=self.proj_size > 0,
                                       norms=self.norms(l), drop_h=masks.drop_h, zoneout=zoneout, highway=highway))
        return layers


def _dropper(p: float, variational: bool, training: bool, batch: int, width: int, like: Tensor
             ) -> Callable[[Tensor], Tensor]:
    """Dropout of (T, B, F) tensors: one mask per sequence (variational, drawn now) or per step."""
    if not training or p == 0:
        return lambda t: t
    if not variational:
        return lambda t: F.dropout(t, p, True)
    mask = variational_mask(batch, width, p, like=like).unsqueeze(0)  # (1, B, F)
    return lambda t: t * mask


def _initial_states(layer, call, batch: int) -> Tuple[Tensor, Optional[Tensor]]:
    h0, c0 = call.h0, call.c0
    rows, P = layer.num_layers * layer.num_directions, layer.proj_size or layer.hidden_size
    cell = cell_spec(layer.mode).has_cell_state
    if h0 is None:
        if layer.initial_state == "learned":
            h0 = layer.initial_h.expand(rows, batch, P).contiguous()
            c0 = layer.initial_c.expand(rows, batch, layer.hidden_size).contiguous() if cell else None
        else:
            w = layer._flat_weights[0]
            h0 = w.new_zeros(rows, batch, P)
            c0 = w.new_zeros(rows, batch, layer.hidden_size) if cell else None
    if layer.training and layer.initial_state_noise > 0:
        h0 = h0 + layer.initial_state_noise * torch.randn_like(h0)
    return h0, c0


def _between(layer, x: Tensor, B: int) -> Tuple[Optional[Between], bool]:
    """What happens between stacked layers, and whether it is only torch.nn's dropout."""
    L, training = layer.num_layers, layer.training
    torch_p = layer.dropout if training else 0.0
    if L == 1:
        return None, False
    if layer.residual is not True and not (training and layer.inter_layer_dropout > 0):
        if torch_p == 0:
            return None, False
        return (lambda l, inp, out: F.dropout(out, torch_p, True) if l < L - 1 else out), True
    width = (layer.proj_size or layer.hidden_size) * layer.num_directions
    drops = [_dropper(layer.inter_layer_dropout, layer.variational, training, B, width, x) for _ in range(L - 1)]
    residual = layer.residual is True

    def between(l: int, inp: Tensor, out: Tensor) -> Tensor:
        if residual and l >= 1:
            out = out + inp
        if l < L - 1:
            out = drops[l](F.dropout(out, torch_p, True) if torch_p > 0 else out)
        return out

    return between, False


def _masks(layer, T: int, B: int, like: Tensor) -> Tuple[Masks, ...]:
    D, H = layer.num_directions, layer.hidden_size
    P = layer.proj_size or H
    out = []
    for _ in range(layer.num_layers):
        if not layer.training:
            out.append(Masks())
            continue
        drop_h = (variational_mask(D * B, P, layer.recurrent_dropout, like=like).view(D, B, P)
                  if layer.recurrent_dropout > 0 else None)
        keep_h = zoneout_masks((T, D, B, P), layer.zoneout, like=like) if layer.zoneout else None
        keep_c = zoneout_masks((T, D, B, H), layer.cell_zoneout, like=like) if layer.cell_zoneout else None
        out.append(Masks(drop_h, keep_h, keep_c))
    return tuple(out)


def _features(layer) -> Tuple[str, ...]:
    """Options in use that PyTorch's fused op cannot run (so "auto" takes the reference path)."""
    return tuple(name for name, on in (
        ("recurrent_dropout", layer.training and layer.recurrent_dropout > 0),
        ("zoneout", layer.zoneout > 0 or layer.cell_zoneout > 0),
        ("layer_norm", layer.layer_norm),
        ("highway", layer.residual == "highway")) if on)


def _weights(layer) -> Tuple[Tuple[Tuple[Tensor, ...], ...], ...]:
    """``[l][d]`` -> torch.nn's ``(w_ih, w_hh, (b_ih, b_hh), (w_hr))``, W_hh weight-dropped in training."""
    D = layer.num_directions
    groups = layer._weights_by_layer_flat()
    if layer.training and layer.weight_dropout > 0:
        groups = [[g[0], dropout_weights(g[1], layer.weight_dropout, True), *g[2:]] for g in groups]
    return tuple(tuple(tuple(groups[l * D + d]) for d in range(D)) for l in range(layer.num_layers))


def plan_call(layer, call, wanted: Sequence[str] = ()) -> LayerPlan:
    """The plan of one call of ``layer`` (a :class:`birnn.layers.RecurrentLayer`) on ``call``
    (:class:`birnn.arguments.Call`); ``wanted``: the names of ``return_all``."""
    x = call.x
    T, B = x.shape[:2]
    h0, c0 = _initial_states(layer, call, B)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(w.requires_grad for w in layer._flat_weights))
    x = _dropper(layer.input_dropout, layer.variational, layer.training, B, layer.input_size, x)(x)
    weights = _weights(layer)
    between, between_is_dropout = _between(layer, x, B)
    masks = _masks(layer, T, B, x)
    params = {n: getattr(layer, n) for n in layer._extra_names}  # (birnn.parameters: named once per layer)
    return LayerPlan(
        mode=layer.mode, requested=layer.path, x=x, lengths=call.lengths, lengths_given=call.user_lengths is not None,
        h0=h0, c0=c0, weights=weights,
        hidden_size=layer.hidden_size, proj_size=layer.proj_size, num_directions=layer.num_directions,
        bias=layer.bias, training=layer.training, needs_grad=needs_grad,
        dropout=layer.dropout if layer.training else 0.0, between=between, between_is_dropout=between_is_dropout,
        features=_features(layer),
        call_extras=("resets",) * (call.resets is not None) + ("return_all=c",) * ("c" in wanted),
        resets=call.resets, want_layers="layers" in wanted, want_cells="c" in wanted, masks=masks, params=params,
        zoneout=(layer.zoneout, layer.cell_zoneout), highway=layer.residual == "highway", quantized=layer.quantized,
        output_p=layer.output_dropout, variational=layer.variational)
