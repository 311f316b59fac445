"""birnn.kernels: fused Triton kernels (a persistent recurrent layer), used on CUDA and tested
on CPU under ``TRITON_INTERPRET=1``. The kernel modules need Triton; this one does not, so the
layers can ask what the kernels support without importing it.

Roles: :mod:`~birnn.kernels.plan` (sizes, grid, configuration; re-exported here),
:mod:`~birnn.kernels.device` (the device functions the kernels share),
:mod:`~birnn.kernels.forward` and :mod:`~birnn.kernels.backward` (the two kernels),
:mod:`~birnn.kernels.recurrent` (their launch: buffers, dtypes, layouts),
:mod:`~birnn.kernels.function` (the autograd boundary and one layer on it),
:mod:`~birnn.kernels.products` (the large matmuls around them) and
:mod:`~birnn.kernels.hardware` (the device's multiprocessors, the interpreter).
"""

from .plan import (KERNELS, KernelConfig, configured, current, default_kernel, describe_kernel, kernel_plan,
                   offsets_fit, plan_grid, plan_resident, supported_hidden)

__all__ = ["KERNELS", "KernelConfig", "configured", "current", "default_kernel", "describe_kernel",
           "kernel_plan", "offsets_fit", "plan_grid", "plan_resident", "supported_hidden"]
