"""``NgramBag``: the mean embedding of a token sequence's n-grams of orders 1..n, hashed into a
fixed table (fastText's bag of n-grams, Joulin et al. 2017), computed from the token ids inside
the model with integer tensor ops — no encoder, no extra input, so prediction and export take
the same ``(ids, lengths)``. Over characters it is the character n-gram features of tf-idf +
logistic regression; over words, word n-grams. A classifier puts it beside the RNN's summary.

Symbols: ``B`` batch, ``T`` tokens, ``E`` embedding size.

>>> bag = NgramBag(3, buckets=97, dim=4)
>>> ids = torch.tensor([[5, 6, 7, 0], [5, 6, 0, 0]])
>>> bag(ids, torch.tensor([3, 2])).shape
torch.Size([2, 4])
>>> inside = bag.ids(torch.tensor([[5, 6, 7]]), 2)[0, :2]          # the bigrams (5, 6), (6, 7)
>>> bool((bag.ids(ids[:1], 2)[0, :2] == inside).all())              # the same with padding after them
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NgramBag"]

_MIX = 1_000_003  # the rolling hash's multiplier (h * _MIX stays far inside int64 for any table size here)
_ORDER = 7_919  # shifts each order's ids, so that a unigram and a bigram with equal hashes differ


class NgramBag(nn.Module):
    """Args:
        n: the longest n-gram (1: the tokens themselves).
        buckets: rows of the hashed table (distinct n-grams share rows beyond it).
        dim: embedding size ``E``.
    """

    def __init__(self, n: int, buckets: int = 1 << 16, dim: int = 64) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"n must be >= 1 (the longest n-gram), got {n}")
        if not 1 <= buckets <= 1 << 24:
            raise ValueError(f"buckets must be in [1, 2^24], got {buckets}")
        self.n, self.buckets = n, buckets
        self.embed = nn.Embedding(buckets, dim)
        nn.init.normal_(self.embed.weight, std=0.1)

    def rows(self, tokens: Tensor):
        """``(k, table rows (B, T))`` of the order-``k`` n-grams starting at each step, for k =
        1..n: one rolling hash, each order extending the last (the steps past a sequence's end
        read padding; :meth:`forward` masks them)."""
        T = tokens.shape[1]
        padded = F.pad(tokens, (0, self.n - 1))
        h = padded[:, 0:T] % self.buckets
        for k in range(1, self.n + 1):
            if k > 1:
                h = (h * _MIX + padded[:, k - 1:k - 1 + T]) % self.buckets
            yield k, (h + k * _ORDER) % self.buckets

    def ids(self, tokens: Tensor, k: int) -> Tensor:
        """Table rows (B, T) of the order-``k`` n-grams starting at each step (:meth:`rows`)."""
        return next(rows for order, rows in self.rows(tokens) if order == k)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The mean embedding (B, E) of every n-gram of orders 1..n that lies inside each
        sequence (``lengths``); zeros for an empty one."""
        steps = torch.arange(tokens.shape[1], device=tokens.device)[None]
        lengths = lengths.to(tokens.device)[:, None]
        total, count = 0, 0
        for k, rows in self.rows(tokens):
            inside = (steps + k <= lengths).unsqueeze(-1)  # (B, T, 1): the n-gram ends by the last token
            total = total + (self.embed(rows) * inside).sum(1)
            count = count + inside.sum(1)
        return total / count.clamp(min=1)

    def extra_repr(self) -> str:
        return f"n={self.n}, buckets={self.buckets}"
