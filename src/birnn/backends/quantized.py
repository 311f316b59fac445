"""torch.nn's dynamic quantized module behind birnn's call, after
:func:`birnn.quantized.quantize_dynamic` (eval mode only)."""

from __future__ import annotations

from typing import Optional

from ..quantized import run_quantized
from .plan import LayerPlan
from .stack import Ran

__all__ = ["Quantized"]


class Quantized:
    paths = ("quantized",)

    def supports(self, plan: LayerPlan) -> Optional[str]:
        if plan.quantized is None:
            return "is not quantized (birnn.quantized.quantize_dynamic)"
        if plan.training:  # (its dropout between layers and its noise would be skipped, its int8 weights not train)
            return "runs in eval mode only: call .eval() (train the float layer, then quantize it)"
        if plan.want_layers:  # torch.nn's quantized module runs every layer in one call
            return "returns no per-layer outputs (return_all='layers'): use the float layer for them"
        if plan.call_extras:
            return f"does not run {', '.join(plan.call_extras)}"
        return None

    def run(self, plan: LayerPlan, path: str = "quantized") -> Ran:
        return Ran(*run_quantized(plan.quantized, plan.mode, plan.x, plan.lengths, plan.h0, plan.c0))
