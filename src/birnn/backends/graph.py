"""One graph node per layer while a graph is captured (:mod:`birnn.graph_op`): under
``torch.compile`` and ``torch.export`` (and ONNX export through it) a layer PyTorch's fused op
runs is recorded as ``birnn::recurrent_layer`` nodes, so ``T``, ``B`` and lengths stay dynamic."""

from __future__ import annotations

from typing import Optional

from ..graph_op import graph_layer
from .plan import LayerPlan
from .stack import Ran, stack

__all__ = ["Graph"]


class Graph:
    paths = ("graph-op",)

    def supports(self, plan: LayerPlan) -> Optional[str]:
        blocked = list(plan.features) + list(plan.call_extras) + ["proj_size"] * bool(plan.proj_size)
        if blocked:
            return f"{', '.join(blocked)} has no single-node form (ONNX has no operator for it)"
        return None

    def run(self, plan: LayerPlan, path: str = "graph-op") -> Ran:
        keep = plan.needs_grad  # a training step: each node keeps its forward's graph for the backward
        return stack(plan, lambda l, inp, h0, c0: (
            *graph_layer(plan.mode, inp, plan.lengths, h0, c0, plan.weights[l], bias=plan.bias, keep_graph=keep),
            None))
