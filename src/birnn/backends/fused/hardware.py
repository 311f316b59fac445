"""What the fused kernels need to know of the machine: the one source of the GPU's
multiprocessor count (the decision and the launch both read it) and whether Triton's
interpreter runs the kernels."""

from __future__ import annotations

import os
from typing import Optional

import torch

__all__ = ["interpreting", "multiprocessors"]


def interpreting() -> bool:
    """Whether Triton's interpreter runs the kernels (``TRITON_INTERPRET=1``, CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def multiprocessors(device) -> Optional[int]:
    """The GPU's multiprocessor count, which bounds the fused kernel's grid; None off CUDA and
    under the interpreter (which plans one program per group)."""
    device = torch.device(device)
    if device.type != "cuda" or interpreting():
        return None
    return torch.cuda.get_device_properties(device).multi_processor_count
