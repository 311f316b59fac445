"""The regularised LSTM, packed, with a hand-written backward (:mod:`birnn.backends.packed.layer`) as a backend.

An LSTM with recurrent dropout, zoneout or layer norm (what PyTorch's fused op cannot run),
run eagerly on CPU: the batch packed by length, the products through oneDNN with the weights
packed once (:mod:`birnn.backends.packed.prepacked`), each step's elementwise part one call of a small C++
kernel (:mod:`birnn.backends.packed.cpu_kernel`; PyTorch's ops where it cannot be built). Tested against the
reference scan, which it replaces only where it declares it can."""

from __future__ import annotations

from typing import Optional

import torch

from ..base import EAGER, Capabilities
from ..plan import LayerPlan
from ..multilayer import Ran, stack
from ..weights import Zoneout
from .cpu_kernel import kernel, unavailable
from .layer import CELLS, DEVICES, packed_lstm_layer

__all__ = ["Packed"]


class Packed:
    paths = ("packed",)
    capabilities = Capabilities("the packed LSTM layer", uses=frozenset({"recurrent_dropout", "zoneout", "layer_norm"}),
                                cells=frozenset(CELLS), devices=frozenset(DEVICES), captures=frozenset({EAGER}))

    def supports(self, plan: LayerPlan) -> Optional[str]:
        refused = self.capabilities.refuses(plan)
        if refused is None and torch._C._are_functorch_transforms_active():
            return "the packed LSTM layer sizes its loop by the lengths' values: not under a torch.func transform"
        return refused

    @staticmethod
    def describe(plan: LayerPlan) -> str:
        """Which step the packed layer takes, for the decision's reason."""
        if kernel(plan.x) is not None:
            return "packed by length, oneDNN products, each step's elementwise part in birnn's C++ kernel"
        why = unavailable() or f"the C++ kernel runs float32 and float64, not {plan.x.dtype}"
        return f"packed by length, each step in PyTorch ops ({why})"

    def run(self, plan: LayerPlan, path: str = "packed") -> Ran:
        layers = plan.step_layers()

        def layer(l, inp, h0, c0):
            w = layers[l]
            z = w.zoneout or Zoneout(0.0, 0.0)
            return (*packed_lstm_layer(inp, plan.lengths, h0, c0, w.w_ih, w.b_in, w.ln_x, w.step, (z.rate_h, z.rate_c),
                                       z.keep_h, z.keep_c), None)
        return stack(plan, layer)
