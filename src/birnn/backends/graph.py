"""One graph node per layer while a graph is captured (:mod:`birnn.graph_op`): under
``torch.compile`` and ``torch.export`` (and ONNX export through it) a layer PyTorch's fused op
runs is recorded as ``birnn::recurrent_layer`` nodes, so ``T``, ``B`` and lengths stay dynamic;
under ``torch.compile`` a layer with recurrent dropout, zoneout or layer norm is one
``birnn::regularised_layer`` node (the reference layer inside), for any ``T`` and ``B`` too.
(``torch.export`` records those layers step by step: ONNX has no operator for them.)"""

from __future__ import annotations

from typing import Optional

from ..graph_op import graph_layer, reference_graph_layer
from .base import Capabilities
from .plan import LayerPlan
from .stack import Ran, stack

__all__ = ["Graph"]

REGULARISERS = ("recurrent_dropout", "zoneout", "layer_norm")  # what the regularised node runs


def _no_node(names) -> str:
    return f"{', '.join(names)} has no single-node form (ONNX has no operator for it)"


class Graph:
    paths = ("graph-op",)
    capabilities = Capabilities("graph capture", uses=frozenset(REGULARISERS), captures=frozenset({"compile", "export"}),
                                says=_no_node)

    def supports(self, plan: LayerPlan) -> Optional[str]:
        refused = self.capabilities.refuses(plan)
        if refused is None and plan.capture == "export" and plan.features:  # ONNX has no regularised operator
            return _no_node(plan.features)
        return refused

    def run(self, plan: LayerPlan, path: str = "graph-op") -> Ran:
        keep = plan.needs_grad  # a training step: each node keeps its forward's graph for the backward
        if not plan.features:
            return stack(plan, lambda l, inp, h0, c0: (
                *graph_layer(plan.mode, inp, plan.lengths, h0, c0, plan.weights[l], bias=plan.bias, keep_graph=keep),
                None))

        def regularised(l, inp, h0, c0):
            m = plan.masks[l]
            return (*reference_graph_layer(plan.mode, inp, plan.lengths, h0, c0, plan.weights[l], bias=plan.bias,
                                           norms=plan.norms(l), masks=[m.drop_h, m.keep_h, m.keep_c],
                                           rates=plan.zoneout, keep_graph=keep), None)
        return stack(plan, regularised)
