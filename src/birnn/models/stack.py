"""``RecurrentStack``: birnn layers stacked from short specs, uni- and bidirectional in any
order, each with its own merge mode.

A spec is ``[bi]CELL:HIDDEN[:MERGE][*LAYERS]``: CELL is a name of :data:`birnn.cells.CELLS`
(lstm, gru, rnn (tanh), rnn_relu, mingru, minlstm);
``bi`` makes it bidirectional; MERGE is concat (default), sum, mul or ave; ``*LAYERS`` stacks
that many layers in one birnn layer (torch.nn-style, both directions feeding the next).

>>> import torch
>>> [LayerSpec.parse(s) for s in ("bilstm:64*2", "gru:32", "bigru:16:sum")]  # doctest: +NORMALIZE_WHITESPACE
[LayerSpec(cell='lstm', hidden=64, bidirectional=True, merge='concat', layers=2),
 LayerSpec(cell='gru', hidden=32, bidirectional=False, merge='concat', layers=1),
 LayerSpec(cell='gru', hidden=16, bidirectional=True, merge='sum', layers=1)]
>>> stack = RecurrentStack(5, ["bilstm:8", "gru:4"], batch_first=True)
>>> stack.output_size, stack(torch.randn(3, 7, 5), lengths=torch.tensor([7, 2, 5])).output.shape
(4, torch.Size([3, 7, 4]))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from torch import Tensor, nn

from ..cells import CELL_NAMES
from ..layers import layer_class
from ..output import RecurrentOutput
from ..regularization import VariationalDropout

__all__ = ["LayerSpec", "RecurrentStack"]



def _spec_pattern() -> "re.Pattern":
    """The spec grammar over the cells registered now (longest names first: rnn_relu before rnn)."""
    cells = sorted(CELL_NAMES, key=len, reverse=True)
    return re.compile(rf"^(bi)?({'|'.join(cells)}):(\d+)(?::(concat|sum|mul|ave))?(?:\*(\d+))?$")


@dataclass(frozen=True)
class LayerSpec:
    cell: str
    hidden: int
    bidirectional: bool = True
    merge: str = "concat"
    layers: int = 1

    @classmethod
    def parse(cls, spec: Union[str, "LayerSpec"]) -> "LayerSpec":
        if isinstance(spec, LayerSpec):
            return spec
        m = _spec_pattern().match(spec.strip().lower())
        if not m:
            raise ValueError(f"layer spec must look like [bi]CELL:HIDDEN[:MERGE][*LAYERS] with CELL in "
                             f"{', '.join(CELL_NAMES)} and MERGE in concat, sum, mul, ave (e.g. 'bilstm:128*2'); "
                             f"got {spec!r}")
        bi, cell, hidden, merge, layers = m.groups()
        return cls(cell, int(hidden), bool(bi), merge or "concat", int(layers or 1))

    def __str__(self) -> str:
        s = f"{'bi' if self.bidirectional else ''}{self.cell}:{self.hidden}"
        s += f":{self.merge}" if self.merge != "concat" else ""
        return s + (f"*{self.layers}" if self.layers > 1 else "")


def build_layer(spec: LayerSpec, input_size: int, *, batch_first: bool, **options) -> nn.Module:
    return layer_class(CELL_NAMES[spec.cell], input_size, spec.hidden, num_layers=spec.layers,
                       bidirectional=spec.bidirectional, batch_first=batch_first, merge_mode=spec.merge, **options)


class RecurrentStack(nn.Module):
    """Layers from specs, with variational dropout ``dropout`` between them.

    Input (B, T, F) with ``batch_first`` (else (T, B, F)) and lengths; returns the last
    layer's :class:`~birnn.output.RecurrentOutput`. ``options`` go to every layer (e.g.
    ``recurrent_dropout=0.2``, ``layer_norm=True``); LSTMs start with forget bias 1.
    """

    def __init__(self, input_size: int, specs: Sequence[Union[str, LayerSpec]], *, batch_first: bool = True,
                 dropout: float = 0.0, **options) -> None:
        super().__init__()
        if not specs:
            raise ValueError("a RecurrentStack needs at least one layer spec")
        self.specs = [LayerSpec.parse(s) for s in specs]
        self.layers = nn.ModuleList()
        size = input_size
        for spec in self.specs:
            extra = dict(options)
            if spec.cell == "lstm":
                extra.setdefault("forget_bias", 1.0)
            layer = build_layer(spec, size, batch_first=batch_first, **extra)
            self.layers.append(layer)
            size = layer.output_size
        self.output_size = size
        self.between = VariationalDropout(dropout, batch_first=batch_first)

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None) -> RecurrentOutput:
        res = None
        for k, layer in enumerate(self.layers):
            if k:
                x = self.between(x)
            res = layer(x, lengths=lengths)
            x = res.output
        return res
