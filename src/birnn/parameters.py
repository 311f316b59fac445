"""The parameters of birnn's layers, in one place: torch.nn's (the same names, shapes, gate
layouts and random draws, created by ``RNNBase.__init__``) and the ones some options add, each
under its own name, with how every one of them starts.

======================================  ====================  ==============================
parameter                               shape                 added by
======================================  ====================  ==============================
``initial_h`` / ``initial_c``           (L*D, 1, P) / (L*D,   ``initial_state="learned"``
                                        1, H)                 (zeros)
``ln_ih_l{l}{sfx}``, ``ln_hh_l{l}{sfx}``  (G*H,)              ``layer_norm`` (ones)
``ln_cell_weight/bias_l{l}{sfx}``       (H,)                  ``layer_norm``, LSTM (1 / 0)
``weight_hw_ih_l{l}{sfx}``,             (2H, F_l), (H, P),    ``residual="highway"``
``weight_hw_hh_l{l}{sfx}``,             (H,)                  (torch.nn's uniform draws)
``bias_hw_l{l}{sfx}``
======================================  ====================  ==============================

``sfx`` is ``""`` or ``"_reverse"`` (torch.nn's direction suffix), ``F_l`` layer ``l``'s
input size (I, then D*P). :data:`EXTRA_PREFIXES` names the per-layer extras the backends read
(:class:`birnn.backends.plan.LayerPlan`'s ``params``).

>>> import birnn
>>> lstm = birnn.LSTM(3, 4, layer_norm=True)
>>> extra_names(lstm)
('ln_ih_l0', 'ln_hh_l0', 'ln_cell_weight_l0', 'ln_cell_bias_l0')
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn import init

from .cells import cell_spec
from .init import initialise

__all__ = ["EXTRA_PREFIXES", "create_extras", "create_weights", "extra_names", "reset", "torch_draws"]

EXTRA_PREFIXES = ("ln_", "weight_hw_", "bias_hw_")


def _suffixes(layer) -> Tuple[str, ...]:
    return ("", "_reverse")[: 2 if layer.bidirectional else 1]


def create_weights(layer, device=None, dtype=None) -> None:
    """Register the weights of a cell torch.nn does not know (``RNNBase.__init__`` creates the
    others), in torch.nn's naming and order: per layer and direction the names of
    :meth:`birnn.cells.CellSpec.weight_names` (a linear cell: ``weight_ih_l{l}{sfx}`` (G*H, F_l)
    and ``bias_ih_l{l}{sfx}`` (G*H,)), listed in ``_flat_weights_names`` / ``_all_weights`` as
    ``RNNBase`` lists its own, so every reader of torch.nn's layout reads these too."""
    spec, H = cell_spec(layer.mode), layer.hidden_size
    P = layer.proj_size or H
    D = 2 if layer.bidirectional else 1
    shapes = {"weight_ih": None, "weight_hh": (spec.gates * H, P), "bias_ih": (spec.gates * H,),
              "bias_hh": (spec.gates * H,), "weight_hr": (P, H)}
    layer._flat_weight_refs = []
    layer._flat_weights_names, layer._all_weights = [], []
    for l in range(layer.num_layers):
        F_l = layer.input_size if l == 0 else P * D
        for sfx in _suffixes(layer):
            names = [n.format(l, sfx) for n in spec.weight_names(layer.bias, layer.proj_size > 0)]
            for name in names:
                shape = shapes[name.rsplit("_l", 1)[0]] or (spec.gates * H, F_l)
                setattr(layer, name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
            layer._flat_weights_names.extend(names)
            layer._all_weights.append(names)
    layer._init_flat_weights()


def create_extras(layer, device=None, dtype=None) -> Dict[str, nn.Parameter]:
    """The parameters ``layer``'s options add (see the module doc), by name, uninitialised but
    for their shapes; the caller registers them (``setattr``) and then :func:`reset` starts them."""
    factory = {"device": device, "dtype": dtype}
    spec, H = cell_spec(layer.mode), layer.hidden_size
    P = layer.proj_size or H
    D = 2 if layer.bidirectional else 1
    rows = layer.num_layers * D
    out: Dict[str, nn.Parameter] = {}

    def add(name: str, *shape: int) -> None:
        out[name] = nn.Parameter(torch.empty(*shape, **factory))

    if layer.initial_state == "learned":
        add("initial_h", rows, 1, P)
        if spec.has_cell_state:
            add("initial_c", rows, 1, H)
    for l in range(layer.num_layers):
        F_l = layer.input_size if l == 0 else P * D
        for sfx in _suffixes(layer):
            if layer.layer_norm:
                add(f"ln_ih_l{l}{sfx}", spec.gates * H)
                add(f"ln_hh_l{l}{sfx}", spec.gates * H)
                if spec.has_cell_state:
                    add(f"ln_cell_weight_l{l}{sfx}", H)
                    add(f"ln_cell_bias_l{l}{sfx}", H)
            if layer.residual == "highway":
                add(f"weight_hw_ih_l{l}{sfx}", 2 * H, F_l)
                add(f"weight_hw_hh_l{l}{sfx}", H, P)
                add(f"bias_hw_l{l}{sfx}", H)
    return out


def extra_names(layer) -> Tuple[str, ...]:
    """The names of ``layer``'s per-layer extras (layer norm, highway), in creation order: what
    the backends read besides torch.nn's weights (the layer keeps them, read once)."""
    return tuple(n for n in _own_extras(layer) if n.startswith(EXTRA_PREFIXES))


def _own_extras(layer) -> Tuple[str, ...]:
    """Every parameter of ``layer`` that torch.nn does not have."""
    return tuple(n for n, _ in layer.named_parameters(recurse=False) if n not in layer._flat_weights_names)


def torch_draws(weights, hidden_size: int) -> None:
    """torch.nn's initialisation of its own parameters: every one uniform in +-1/sqrt(H), in
    torch.nn's order (the same seed gives the same weights)."""
    stdv = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for w in weights:
            init.uniform_(w, -stdv, stdv)


@torch.no_grad()
def reset(layer, scheme: Optional[str]) -> None:
    """Start ``layer``'s parameters: torch.nn's with the ``init`` scheme (``None`` keeps the draws
    already made), the forget-gate bias, then every extra as the module doc says."""
    spec = cell_spec(layer.mode)
    groups = layer._weights_by_layer_flat()
    if scheme is not None:
        initialise(groups, scheme=scheme, gates=spec.gates, hidden_size=layer.hidden_size, recurrent=not spec.linear)
    if layer.forget_bias is not None:
        f = spec.gate_slice("f", layer.hidden_size)
        names = spec.weight_names(True, False)
        for group in groups:  # b_ih holds the forget bias, b_hh (where the cell has one) starts at 0
            group[names.index("bias_ih_l{}{}")][f] = layer.forget_bias
            if "bias_hh_l{}{}" in names:
                group[names.index("bias_hh_l{}{}")][f] = 0.0
    stdv = 1.0 / math.sqrt(layer.hidden_size)
    for name in _own_extras(layer):
        p: Tensor = getattr(layer, name)
        if name.startswith(("weight_hw_", "bias_hw_")):
            init.uniform_(p, -stdv, stdv)
        elif name.startswith("ln_"):
            p.fill_(0.0 if "bias" in name else 1.0)
        else:  # initial_h, initial_c
            p.zero_()
