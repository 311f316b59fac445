"""Regularisers torch.nn lacks: variational (locked) dropout, recurrent dropout masks, zoneout
masks, weight dropout (DropConnect) and embedding (whole-word) dropout.

Masks are sampled *outside* the recurrence, as plain tensors, so every implementation (the
reference loop, a fused kernel) consumes the same masks and gives the same numbers.
Symbols: ``T`` time, ``B`` batch, ``F`` features, ``V`` vocabulary size.

>>> import torch
>>> torch.manual_seed(0) and None
>>> m = variational_mask(3, 4, 0.5, like=torch.empty(0))   # one mask per sequence and feature
>>> sorted(set(m.flatten().tolist())) in ([0.0, 2.0], [2.0], [0.0])  # kept units scaled by 1/(1-p)
True
"""

from __future__ import annotations

import numbers
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "EmbeddingDropout",
    "VariationalDropout",
    "check_probability",
    "dropout_weights",
    "variational_mask",
    "zoneout_masks",
]


def check_probability(name: str, p) -> float:
    """``p`` must be a number in [0, 1); returns it as a float."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {p!r}")
    return float(p)


def variational_mask(batch: int, features: int, p: float, *, like: Tensor) -> Tensor:
    """A dropout mask (B, F), scaled by 1/(1-p), to reuse at every time step (Gal & Ghahramani)."""
    keep = torch.empty(batch, features, dtype=like.dtype, device=like.device).bernoulli_(1 - p)
    return keep / (1 - p)


def zoneout_masks(shape: Tuple[int, ...], p: float, *, like: Tensor) -> Tensor:
    """0/1 masks of the given shape in ``like``'s dtype, 1 with probability ``p`` (the unit keeps its value).

    Drawn as ``uniform < p`` (float32 uniforms, float64 for float64 layers): on CPU half the
    time of ``bernoulli_``, and these masks are T*D*B*H per layer and call."""
    wide = torch.float64 if like.dtype == torch.float64 else torch.float32
    return (torch.rand(shape, dtype=wide, device=like.device) < p).to(like.dtype)


def dropout_weights(weight: Tensor, p: float, training: bool) -> Tensor:
    """DropConnect (AWD-LSTM's weight drop): a fresh copy of ``weight`` with entries dropped.

    The result is a new contiguous tensor, so fused ops take it as they take the parameter.
    """
    return F.dropout(weight, p, training) if training and p > 0 else weight


class VariationalDropout(nn.Module):
    """Dropout with one mask per sequence, shared by all time steps (locked dropout).

    Input (T, B, F), or (B, T, F) with ``batch_first``. Identity in eval mode.
    """

    def __init__(self, p: float, batch_first: bool = False) -> None:
        super().__init__()
        self.p = check_probability("p", p)
        self.batch_first = batch_first

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        B = x.shape[0] if self.batch_first else x.shape[1]
        mask = variational_mask(B, x.shape[-1], self.p, like=x)
        return x * (mask.unsqueeze(1) if self.batch_first else mask.unsqueeze(0))

    def extra_repr(self) -> str:
        return f"p={self.p}, batch_first={self.batch_first}"


class EmbeddingDropout(nn.Module):
    """Whole-word dropout (AWD-LSTM): in training, each vocabulary row of ``embedding`` is
    zeroed with probability ``p`` for the whole call (every occurrence of the word), and the
    kept rows are scaled by 1/(1-p). Identity in eval mode.

    >>> emb = EmbeddingDropout(nn.Embedding(10, 4), p=0.5)
    >>> emb(torch.tensor([[1, 1, 2]])).shape
    torch.Size([1, 3, 4])
    """

    def __init__(self, embedding: nn.Embedding, p: float) -> None:
        super().__init__()
        self.embedding = embedding
        self.p = check_probability("p", p)

    def forward(self, tokens: Tensor) -> Tensor:
        e = self.embedding
        weight = e.weight
        if self.training and self.p > 0:
            keep = torch.empty(weight.shape[0], 1, dtype=weight.dtype, device=weight.device).bernoulli_(1 - self.p)
            weight = weight * keep / (1 - self.p)
        return F.embedding(tokens, weight, e.padding_idx, e.max_norm, e.norm_type, e.scale_grad_by_freq, e.sparse)

    def extra_repr(self) -> str:
        return f"p={self.p}"

