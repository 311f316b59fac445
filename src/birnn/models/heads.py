"""Heads: an MLP, and masked attention pooling over time."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..batch import mask_from_lengths

__all__ = ["AttentionPooling", "mlp"]


def mlp(in_size: int, hidden: Sequence[int], out_size: int, dropout: float = 0.0) -> nn.Sequential:
    """Linear -> ReLU -> Dropout blocks, then a Linear to ``out_size``."""
    layers = []
    for h in hidden:
        layers += [nn.Linear(in_size, h), nn.ReLU(), nn.Dropout(dropout)]
        in_size = h
    layers.append(nn.Linear(in_size, out_size))
    return nn.Sequential(*layers)


class AttentionPooling(nn.Module):
    """``sum_t softmax_t(v . tanh(W h_t)) h_t`` over real steps: (B, T, F) -> (B, F).

    >>> pool = AttentionPooling(4)
    >>> out = pool(torch.randn(2, 5, 4), torch.tensor([5, 2]))
    >>> out.shape
    torch.Size([2, 4])
    """

    def __init__(self, size: int, hidden: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(size, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, seq: Tensor, lengths: Tensor) -> Tensor:
        scores = self.score(torch.tanh(self.proj(seq))).squeeze(-1)  # (B, T)
        valid = mask_from_lengths(lengths.to(seq.device), seq.shape[1], batch_first=True)
        weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=1)
        weights = torch.nan_to_num(weights)  # empty sequences: all weights 0
        return torch.einsum("bt,btf->bf", weights, seq)
