"""birnn.kernels: fused Triton kernels (a persistent recurrent layer), used on CUDA and tested
on CPU under ``TRITON_INTERPRET=1``. The kernel modules need Triton; this one does not."""

__all__ = ["supported_hidden"]


def supported_hidden(H: int) -> bool:
    """Hidden sizes the kernels tile: powers of two from 16, or multiples of 64."""
    return H >= 16 and (H & (H - 1) == 0 or H % 64 == 0)
