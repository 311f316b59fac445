"""The fused path's large matmuls — every step's input projection before the recurrence, the
weight gradient after it — at the precision cuDNN's RNNs use, which the fused path replaces.

PyTorch runs float32 matmuls in full float32 unless ``torch.backends.cuda.matmul`` allows TF32
(off by default), while cuDNN's RNNs use TF32 tensor cores by default
(``torch.backends.cudnn.rnn.fp32_precision``, or the older ``torch.backends.cudnn.allow_tf32``).
The recurrent products inside the kernel already follow cuDNN's flag; so do these matmuls, else
the float32 fused path would spend most of a training step in CUDA-core GEMMs that its peer
runs on tensor cores (benchmarks/GPU_NOTES.md). bfloat16 layers multiply bfloat16
operands with float32 accumulation, as the reference path and cuDNN do.

Only CUDA matmuls are affected: on CPU (the interpreter tests) the products are unchanged.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Projection", "cudnn_rnn_uses_tf32", "project", "tf32_matmuls", "weight_product"]


def cudnn_rnn_uses_tf32() -> bool:
    """Whether cuDNN's RNNs may use TF32 for float32 (PyTorch's default: yes). Read through the
    per-operator ``fp32_precision`` settings where this PyTorch has them — ``cudnn.rnn``, then
    ``cudnn``, then the generic one, the first that is not ``"none"`` — since reading the legacy
    ``allow_tf32`` raises once a program has set the new ones."""
    cudnn = torch.backends.cudnn
    rnn = getattr(cudnn, "rnn", None)
    if rnn is None or not hasattr(rnn, "fp32_precision"):
        return bool(cudnn.allow_tf32)
    for setting in (rnn.fp32_precision, getattr(cudnn, "fp32_precision", "none"),
                    getattr(torch.backends, "fp32_precision", "none")):
        if setting != "none":
            return setting == "tf32"
    return False


@contextlib.contextmanager
def tf32_matmuls(enabled: bool) -> Iterator[None]:
    """CUDA float32 matmuls run as TF32 inside the block (when ``enabled``), restored after.

    The setting is process-wide in PyTorch, so a matmul another thread launches meanwhile would
    see it; within one training step the fused path's own calls are the only ones in flight."""
    if not enabled:
        yield
        return
    matmul = torch.backends.cuda.matmul
    try:  # PyTorch >= 2.9; older ones have only allow_tf32
        name, old, tf32 = "fp32_precision", matmul.fp32_precision, "tf32"
    except AttributeError:
        name, old, tf32 = "allow_tf32", matmul.allow_tf32, True
    setattr(matmul, name, tf32)
    try:
        yield
    finally:
        setattr(matmul, name, old)


class Projection(torch.autograd.Function):
    """``flat (N, F) @ w^T (F, M) (+ bias (M,))`` — ``torch.nn.functional.linear`` — with the
    forward and both backward products as TF32 matmuls (float32 on CUDA)."""

    @staticmethod
    def forward(ctx, flat: Tensor, w: Tensor, bias: Optional[Tensor]):
        ctx.has_bias = bias is not None
        ctx.save_for_backward(flat, w)
        with tf32_matmuls(True):
            return F.linear(flat, w, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        flat, w = ctx.saved_tensors
        d_flat = d_w = d_bias = None
        with tf32_matmuls(True):
            if ctx.needs_input_grad[0]:
                d_flat = grad @ w
            if ctx.needs_input_grad[1]:
                d_w = grad.t() @ flat
        if ctx.has_bias and ctx.needs_input_grad[2]:
            d_bias = grad.sum(0)
        return d_flat, d_w, d_bias


def project(flat: Tensor, w: Tensor, bias: Optional[Tensor], *, tf32: Optional[bool] = None) -> Tensor:
    """The input projections of every step and both directions for the fused path, one matmul on
    the layer's input as it is: ``flat (T*B, F) @ w^T`` with ``w`` (D*G*H, F), the directions'
    W_ih stacked (+ ``bias`` (D*G*H,)) -> (T*B, D*G*H); in TF32 where cuDNN's RNNs would use it
    (``tf32``: that setting read once by the caller; None reads it here)."""
    if tf32 is None:
        tf32 = cudnn_rnn_uses_tf32()
    if flat.is_cuda and flat.dtype == torch.float32 and tf32:
        return Projection.apply(flat, w, bias)
    return F.linear(flat, w, bias)


def weight_product(a: Tensor, b: Tensor, dtype: torch.dtype, precision: str) -> Tensor:
    """``a (D, M, K) @ b (D, K, N)`` (any strides) for a weight gradient of a ``dtype`` layer: bfloat16 operands
    (float32 accumulation) for bfloat16 layers, TF32 for float32 ones when ``precision`` says so."""
    if dtype == torch.bfloat16:
        return torch.bmm(a.to(dtype), b.to(dtype))
    with tf32_matmuls(precision == "tf32" and a.is_cuda):
        return torch.bmm(a, b)
