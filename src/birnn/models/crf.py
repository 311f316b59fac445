"""A linear-chain CRF output layer: log-likelihood training and Viterbi decoding, with lengths.

Symbols: ``B`` batch, ``T`` time, ``N`` tags. A path ``y`` scores
``start[y_0] + sum_t e_t[y_t] + sum_{t>0} trans[y_{t-1}, y_t] + end[y_last]`` over the
real steps; ``log p(y | x) = score(y) - log Z``.

>>> crf = CRF(3)
>>> e = torch.randn(2, 4, 3)
>>> paths = crf.decode(e, torch.tensor([4, 2]))
>>> paths.shape, paths[1, 2:].tolist()
(torch.Size([2, 4]), [-100, -100])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..batch import mask_from_lengths
from ..data.encoding import IGNORE

__all__ = ["CRF"]


class CRF(nn.Module):
    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # [from, to]
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))

    def _check(self, emissions: Tensor, lengths: Tensor) -> Tensor:
        if emissions.dim() != 3 or emissions.shape[-1] != self.num_tags:
            raise ValueError(f"emissions must be (B, T, N={self.num_tags}), got {tuple(emissions.shape)}")
        lengths = lengths.to(emissions.device)
        if emissions.shape[0] and int(lengths.min()) < 1:
            raise ValueError("a CRF needs every sequence to have at least one step")
        return mask_from_lengths(lengths, emissions.shape[1], batch_first=True)  # (B, T)

    def score(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """The unnormalised score (B,) of the given tag paths (padding ignored)."""
        valid = self._check(emissions, lengths)
        tags = tags.clamp(min=0)
        e = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, T)
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        last = tags.gather(1, (lengths.to(tags.device) - 1).unsqueeze(1)).squeeze(1)
        return (self.start[tags[:, 0]] + (e * valid).sum(1) + (trans * valid[:, 1:]).sum(1) + self.end[last])

    def log_partition(self, emissions: Tensor, lengths: Tensor) -> Tensor:
        """``log Z`` (B,) by the forward algorithm."""
        valid = self._check(emissions, lengths)
        alpha = self.start + emissions[:, 0]  # (B, N)
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + emissions[:, t]
            alpha = torch.where(valid[:, t:t + 1], nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def log_likelihood(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """``log p(tags | x)`` (B,)."""
        return self.score(emissions, tags, lengths) - self.log_partition(emissions, lengths)

    @torch.no_grad()
    def decode(self, emissions: Tensor, lengths: Tensor) -> Tensor:
        """The best path (B, T) by Viterbi; padded steps hold -100."""
        valid = self._check(emissions, lengths)
        B, T, N = emissions.shape
        delta = self.start + emissions[:, 0]
        back = []
        for t in range(1, T):
            cand = delta.unsqueeze(2) + self.transitions  # (B, from, to)
            best, arg = cand.max(dim=1)
            nxt = best + emissions[:, t]
            keep = valid[:, t:t + 1]
            delta = torch.where(keep, nxt, delta)
            back.append(torch.where(keep, arg, torch.arange(N, device=arg.device).expand(B, N)))  # pads: identity
        best_last = (delta + self.end).argmax(dim=1)  # (B,)
        path = [best_last]
        for arg in reversed(back):
            path.append(arg.gather(1, path[-1].unsqueeze(1)).squeeze(1))
        out = torch.stack(path[::-1], dim=1)  # (B, T)
        return out.masked_fill(~valid, IGNORE)
