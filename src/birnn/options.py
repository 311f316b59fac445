"""``LayerOptions``: birnn's keyword-only extras of a layer, validated once on entry.

Every option defaults to torch.nn's behaviour, so a layer built with no extras is a drop-in
torch.nn layer. Probabilities must lie in [0, 1).

=======================  =====================================================================
option                   meaning
=======================  =====================================================================
merge_mode               how the two directions form ``output``: concat, sum, mul, ave, None
forget_bias              LSTM: the forget-gate bias starts at this value
initial_state            "zeros" or "learned" (trainable h_0, and c_0 for LSTM)
initial_state_noise      σ of Gaussian noise added to h_0 in training
path                     "auto" or a forced implementation (birnn.dispatch)
input_dropout            dropout on the layer's input
inter_layer_dropout      dropout on each layer's output that feeds the next layer
output_dropout           dropout on ``output`` (never on h_n/c_n)
variational              the three dropouts above use one mask per sequence for all steps
                         (Gal & Ghahramani 2016; default True) or a fresh mask per step
recurrent_dropout        variational dropout on h_{t-1} inside the recurrence
weight_dropout           DropConnect on W_hh, one mask per call (AWD-LSTM)
zoneout                  per unit and step, h keeps its previous value with this probability
cell_zoneout             the same for the LSTM cell state c
layer_norm               layer-normalised cell (haste's LayerNormLSTM formulation)
residual                 False, True (add each stacked layer's input to its output, layers
                         >= 2), or "highway" (AllenNLP AugmentedLstm's highway in every layer)
init                     "torch" (torch.nn's uniform), "orthogonal" (W_hh orthogonal per gate,
                         W_ih Xavier, biases 0) or "xavier" (Xavier per gate, biases 0)
=======================  =====================================================================
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Optional, Tuple, Union

from .cells import cell_spec
from .output import check_merge_mode
from .regularization import check_probability

__all__ = ["INITS", "PROBABILITIES", "LayerOptions"]

INITS = ("torch", "orthogonal", "xavier")
_INITIAL_STATES = ("zeros", "learned")
PROBABILITIES = ("input_dropout", "inter_layer_dropout", "output_dropout", "recurrent_dropout", "weight_dropout",
                 "zoneout", "cell_zoneout")  # each in [0, 1)


def _cli(default, help: str):
    """An option the command line also sets, for every recurrent layer of a task model
    (``--recurrent-dropout``...): its flag, rule and help derive from this entry."""
    return field(default=default, metadata={"cli": True, "help": help})


@dataclass(frozen=True)
class LayerOptions:
    mode: str
    num_layers: int
    bias: bool
    proj_size: int
    merge_mode: Optional[str] = "concat"
    forget_bias: Optional[float] = None
    initial_state: str = "zeros"
    initial_state_noise: float = 0.0
    path: str = "auto"
    input_dropout: float = 0.0
    inter_layer_dropout: float = 0.0
    output_dropout: float = 0.0
    variational: bool = True
    recurrent_dropout: float = _cli(0.0, "variational dropout on h inside the recurrence")
    weight_dropout: float = _cli(0.0, "DropConnect on W_hh")
    zoneout: float = _cli(0.0, "zoneout probability of each unit per step")
    cell_zoneout: float = 0.0
    layer_norm: bool = _cli(False, "layer-normalised cells")
    residual: Union[bool, str] = False
    init: str = "torch"

    def __post_init__(self) -> None:
        check_merge_mode(self.merge_mode)
        if self.initial_state not in _INITIAL_STATES:
            raise ValueError(f"initial_state must be one of {_INITIAL_STATES}; got {self.initial_state!r}")
        noise = self.initial_state_noise
        if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0 <= noise < math.inf:
            raise ValueError(f"initial_state_noise must be a finite number >= 0, got {noise!r}")
        for name in PROBABILITIES:
            check_probability(name, getattr(self, name))
        if self.forget_bias is not None:
            fb = self.forget_bias
            if isinstance(fb, bool) or not isinstance(fb, numbers.Real) or not math.isfinite(fb):
                raise ValueError(f"forget_bias must be a finite number, got {fb!r}")
            if "f" not in cell_spec(self.mode).gate_names:
                raise ValueError(f"forget_bias applies to LSTM only, got it for mode {self.mode!r}")
            if not self.bias:
                raise ValueError("forget_bias needs bias=True (there is no bias to set)")
        if cell_spec(self.mode).linear:  # no W_hh and no recurrent pre-activation to act on
            for name in ("recurrent_dropout", "weight_dropout", "layer_norm"):
                if getattr(self, name):
                    raise ValueError(f"{name} acts on h_{{t-1}} W_hh, which the {self.mode} cell does not have "
                                     f"(its gates read only the input); got {name}={getattr(self, name)!r}")
        if self.cell_zoneout and not cell_spec(self.mode).has_cell_state:
            raise ValueError(f"cell_zoneout applies to the LSTM cell state; mode {self.mode!r} has none")
        if not isinstance(self.variational, bool):
            raise TypeError(f"variational must be a bool, got {type(self.variational).__name__}")
        if not isinstance(self.layer_norm, bool):
            raise TypeError(f"layer_norm must be a bool, got {type(self.layer_norm).__name__}")
        if not (self.residual is True or self.residual is False or self.residual == "highway"):
            raise ValueError(f"residual must be False, True or 'highway'; got {self.residual!r}")
        if self.residual is True and self.num_layers < 2:
            raise ValueError("residual=True adds each stacked layer's input to its output (layers >= 2); "
                             f"it needs num_layers >= 2, got {self.num_layers} (use residual='highway' for one layer)")
        if self.residual == "highway" and self.proj_size:
            raise ValueError(f"residual='highway' needs proj_size=0, got proj_size={self.proj_size}")
        if self.inter_layer_dropout and self.num_layers < 2:
            raise ValueError(f"inter_layer_dropout needs num_layers >= 2, got {self.num_layers}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {self.init!r}")

    @classmethod
    def names(cls):
        return [f.name for f in fields(cls)][4:]

    @classmethod
    def command_line(cls) -> Tuple[Tuple[str, type, object, str], ...]:
        """``(name, type, default, help)`` of the options the command line sets (config's
        ``[layer]`` section and its flags derive from these).

        >>> [name for name, *_ in LayerOptions.command_line()]
        ['recurrent_dropout', 'weight_dropout', 'zoneout', 'layer_norm']
        """
        types = {"float": float, "bool": bool}
        return tuple((f.name, types[str(f.type)], f.default, f.metadata["help"]) for f in fields(cls)
                     if f.metadata.get("cli"))
