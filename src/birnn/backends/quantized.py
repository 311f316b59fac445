"""torch.nn's dynamic quantized module behind birnn's call, after
:func:`birnn.quantized.quantize_dynamic` (eval mode only)."""

from __future__ import annotations

from typing import Optional

from ..quantized import QUANTIZABLE, run_quantized
from .base import Capabilities
from .plan import LayerPlan
from .stack import Ran

__all__ = ["Quantized"]


class Quantized:
    paths = ("quantized",)
    capabilities = Capabilities("the quantized module", cells=frozenset(QUANTIZABLE),
                                says=lambda names: f"does not run {', '.join(names)}")

    def supports(self, plan: LayerPlan) -> Optional[str]:
        if plan.quantized is None:
            return "is not quantized (birnn.quantized.quantize_dynamic)"
        refused = self.capabilities.refuses(plan)
        if refused is not None:
            return refused
        if plan.training:  # (its dropout between layers and its noise would be skipped, its int8 weights not train)
            return "runs in eval mode only: call .eval() (train the float layer, then quantize it)"
        if plan.want_layers:  # torch.nn's quantized module runs every layer in one call
            return "returns no per-layer outputs (return_all='layers'): use the float layer for them"
        return None

    def run(self, plan: LayerPlan, path: str = "quantized") -> Ran:
        return Ran(*run_quantized(plan.quantized, plan.mode, plan.x, plan.lengths, plan.h0, plan.c0))
