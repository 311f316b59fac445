"""The reference backend: the pure-PyTorch scan (:mod:`birnn.recurrence`), every feature,
always available; the oracle the other backends are tested against. It runs the scan and
nothing else, whatever the call (the packed regularised LSTM is a backend of its own,
:mod:`birnn.backends.packed`)."""

from __future__ import annotations

from typing import Optional

from ..recurrence import reference_layer, walk
from .base import ANY, Capabilities
from .plan import LayerPlan
from .stack import Ran, stack

__all__ = ["Reference"]


class Reference:
    paths = ("reference",)
    capabilities = Capabilities("the reference scan", uses=ANY)  # every feature, the oracle

    def supports(self, plan: LayerPlan) -> Optional[str]:
        return self.capabilities.refuses(plan)

    def run(self, plan: LayerPlan, path: str = "reference") -> Ran:
        spec, layers = plan.spec, plan.step_layers()
        shared = walk(plan.x, plan.lengths, plan.num_directions, plan.resets)
        return stack(plan, lambda l, inp, h0, c0: reference_layer(spec, layers[l], inp, plan.lengths, h0, c0, shared,
                                                                  cell_states=plan.want_cells))
