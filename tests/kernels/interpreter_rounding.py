"""Triton's interpreter rounds float32 to bfloat16 as the GPU does: to nearest, ties to even.

Triton 3.6's interpreter converts float32 to bfloat16 (``.to(tl.bfloat16)``, and stores of
float32 values into bfloat16 tensors) by dropping the low 16 bits, while the GPU's conversion
(``cvt.rn.bf16.f32``) and PyTorch's round to nearest even. With truncation a bfloat16 kernel
checked on CPU differs by one unit in the last place from the same kernel on the GPU, and from
PyTorch's rounding, wherever it rounds. :func:`install` replaces that one conversion in the
interpreter (test_kernels.py calls it); every other conversion stays Triton's own.
"""

import numpy as np
import triton.language as tl
from triton.runtime import interpreter

_triton_convert = interpreter._convert_float


def bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 values -> bfloat16 bit patterns (uint16), rounded to nearest even (NaN stays NaN).

    >>> import torch
    >>> x = np.array([1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5e-39, np.inf, 3.4e38], dtype=np.float32)
    >>> bool((bfloat16_bits(x) == torch.from_numpy(x).bfloat16().view(torch.int16).numpy().view(np.uint16)).all())
    True
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    quiet_nan = ((bits >> 16) | np.uint32(0x40)).astype(np.uint16)
    return np.where(np.isnan(x), quiet_nan, rounded)


def _convert_float(input, input_dtype, output_dtype, rounding_mode):
    if input_dtype == tl.float32 and output_dtype == tl.bfloat16:
        return bfloat16_bits(np.asarray(input)).reshape(np.shape(input))
    return _triton_convert(input, input_dtype, output_dtype, rounding_mode)


def install() -> None:
    interpreter._convert_float = _convert_float
