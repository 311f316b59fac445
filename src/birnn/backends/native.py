"""PyTorch's fused op (cuDNN on GPU, oneDNN/aten on CPU) as a backend, under three paths
(:mod:`birnn.native`): ``torch`` (every row full: one call, exactly torch.nn), ``torch-chunked``
(length-sorted time chunks, padded steps frozen) and ``torch-packed`` (a PackedSequence)."""

from __future__ import annotations

from typing import Optional

import torch

from ..dispatch import unexpressible
from ..native import run_chunked, run_packed, run_whole
from .base import Capabilities
from .plan import LayerPlan
from .stack import Ran, stack

__all__ = ["Native"]


class Native:
    paths = ("torch", "torch-chunked", "torch-packed")
    capabilities = Capabilities("PyTorch's fused op", uses=frozenset({"proj_size"}), says=unexpressible)

    def supports(self, plan: LayerPlan) -> Optional[str]:
        return self.capabilities.refuses(plan) or self.traced_blocker(plan)

    @staticmethod
    def traced_blocker(plan: LayerPlan) -> Optional[str]:
        """Why the op cannot be recorded in the graph being traced (compile, torch.func), or None."""
        if plan.mode == "LSTM" and plan.needs_grad and plan.x.device.type == "cpu" and torch.compiler.is_compiling():
            return ("LSTM training under torch.compile on CPU: PyTorch's fused op cannot be compiled there "
                    "(aten.mkldnn_rnn_layer, pytorch#158007); the reference loop")
        if torch._C._are_functorch_transforms_active():
            return ("under a torch.func transform (vmap, grad): the masked loop, which has no data-dependent "
                    "control flow and batches per sample")
        if plan.lengths is not None and torch.compiler.is_compiling():
            return "variable lengths under torch.compile: the masked loop has no data-dependent control flow"
        return None

    def run(self, plan: LayerPlan, path: str) -> Ran:
        if (plan.between is None or plan.between_is_dropout) and not plan.want_layers:
            out, h, c = _call(path, plan, plan.weights, plan.x, plan.h0, plan.c0, plan.dropout)
            return Ran(out, h, c)
        return stack(plan, lambda l, inp, h0, c0: (*_call(path, plan, plan.weights[l:l + 1], inp, h0, c0, 0.0), None))


def _call(path: str, plan: LayerPlan, weights, x, h0, c0, dropout: float):
    """The op on ``weights[l][d]`` (one or all layers): (output (T, B, D*P), h_n, c_n)."""
    common = dict(bias=plan.bias, dropout=dropout, training=plan.training)
    if path == "torch-chunked":
        return run_chunked(plan.mode, plan.spec.gates, x, plan.lengths, h0, c0, weights, **common)
    flat = [w for layer in weights for direction in layer for w in direction]
    shape = dict(num_layers=len(weights), bidirectional=plan.num_directions == 2)
    if path == "torch":
        return run_whole(plan.mode, x, h0=h0, c0=c0, weights=flat, **shape, **common)
    return run_packed(plan.mode, x, lengths=plan.lengths, h0=h0, c0=c0, weights=flat, **shape, **common)
