"""The fused backend: birnn's persistent Triton kernel, one launch per layer for both directions
and all steps, lengths handled natively, recurrent dropout, zoneout and layer norm fused into
the step (:class:`Fused`, at the end). Used on CUDA and tested on CPU under
``TRITON_INTERPRET=1``. The kernel modules need Triton; this one does not, so the layers can
ask what the kernels support without importing it.

Roles: :mod:`~birnn.backends.fused.grid` (sizes, grid, configuration; re-exported here),
:mod:`~birnn.backends.fused.device` (the device functions the kernels share),
:mod:`~birnn.backends.fused.forward` and :mod:`~birnn.backends.fused.backward` (the two kernels),
:mod:`~birnn.backends.fused.recurrent` (their launch: buffers, dtypes, layouts),
:mod:`~birnn.backends.fused.function` (the autograd boundary and one layer on it),
:mod:`~birnn.backends.fused.products` (the large matmuls around them) and
:mod:`~birnn.backends.fused.hardware` (the device's multiprocessors, the interpreter).
"""

from __future__ import annotations

import importlib.util
from typing import Optional

import torch

from ..base import Capabilities
from ..plan import LayerPlan
from ..multilayer import Ran, stack
from . import hardware
from .products import cudnn_rnn_uses_tf32
from .grid import (KERNEL_CELLS, KERNELS, KernelConfig, configured, current, default_kernel, describe_kernel,
                   kernel_plan, offsets_fit, plan_grid, plan_resident, supported_hidden)

__all__ = ["Fused", "KERNELS", "KernelConfig", "configured", "current", "default_kernel", "describe_kernel",
           "kernel_plan", "offsets_fit", "plan_grid", "plan_resident", "supported_hidden"]



class Fused:
    paths = ("fused",)
    capabilities = Capabilities("the fused kernel", uses=frozenset({"recurrent_dropout", "zoneout", "layer_norm"}),
                                cells=frozenset(KERNEL_CELLS), dtypes=frozenset({torch.float32, torch.bfloat16}))

    def supports(self, plan: LayerPlan) -> Optional[str]:
        x = plan.x
        refused = self.capabilities.refuses(plan)
        if refused is not None:
            return refused
        if x.device.type != "cuda" and not hardware.interpreting():
            return f"the fused kernel runs on CUDA (or under TRITON_INTERPRET=1), the input is on {x.device.type}"
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed"
        if not supported_hidden(plan.hidden_size):
            return ("the fused kernel needs hidden_size a power of two >= 16 or a multiple of 64, "
                    f"got {plan.hidden_size}")
        too_big = offsets_fit(plan.mode, plan.T, plan.B, plan.num_directions, plan.hidden_size)
        if too_big is not None:
            return too_big
        if x.device.type == "cuda":  # all programs must be resident at once
            try:
                plan_grid(plan.hidden_size, plan.B, plan.num_directions, hardware.multiprocessors(x.device))
            except ValueError as e:
                return str(e)
        return None

    @staticmethod
    def describe(plan: LayerPlan) -> str:
        """Which kernel the plan runs and its grid, for the decision's reason."""
        return describe_kernel(plan.mode, plan.hidden_size, plan.B, plan.num_directions,
                               plan.x.dtype == torch.bfloat16, hardware.multiprocessors(plan.x.device))

    def run(self, plan: LayerPlan, path: str = "fused") -> Ran:
        from .function import fused_layer  # (imports Triton)

        tf32 = cudnn_rnn_uses_tf32()  # read once for the whole call
        T, B = plan.T, plan.B
        if plan.lengths is None:
            lens, steps = torch.full((B,), T, device=plan.x.device, dtype=torch.int64), T
        else:
            lens, steps = plan.lengths.to(plan.x.device), (int(plan.lengths.max()) if B else 0)
        spec, layers = plan.spec, plan.step_layers()

        def layer(l, inp, h0, c0):
            if not steps:  # every sequence is empty: outputs are zero and the state stays h_0
                return inp.new_zeros(T, B, plan.num_directions * h0.shape[-1]), h0, c0, None
            return (*fused_layer(spec, layers[l], inp, lens, steps, h0, c0, tf32), None)

        return stack(plan, layer)
