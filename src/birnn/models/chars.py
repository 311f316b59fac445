"""``CharWordEncoder``: each word's characters through a BiLSTM, one feature vector per word
(Ling et al. 2015; Lample et al. 2016) — the word features of the tagger and of the classifier
with ``input="both"``.

Symbols: ``B`` batch, ``T`` words, ``W`` characters per word, ``H`` hidden size per direction.

>>> import torch
>>> enc = CharWordEncoder(vocab_size=10, dim=4, hidden=3)
>>> enc(torch.tensor([[[2, 3, 0], [4, 0, 0], [0, 0, 0]]])).shape   # (B, T, 2 * H)
torch.Size([1, 3, 6])
"""

from __future__ import annotations

from torch import Tensor, nn

from ..layers import LSTM

__all__ = ["CharWordEncoder"]


class CharWordEncoder(nn.Module):
    """A word's characters (W) through a BiLSTM: forward state after the last character +
    backward state after the first, (B, T, W) -> (B, T, 2 * hidden). Padding words have no
    characters (length 0) and get zero features."""

    def __init__(self, vocab_size: int, dim: int = 32, hidden: int = 32, padding_idx: int = 0) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)
        self.rnn = LSTM(dim, hidden, bidirectional=True, batch_first=True, forget_bias=1.0)
        self.padding_idx = padding_idx
        self.output_size = 2 * hidden

    def forward(self, chars: Tensor) -> Tensor:
        B, T, W = chars.shape
        flat = chars.reshape(B * T, W)
        lengths = (flat != self.padding_idx).sum(1)
        res = self.rnn(self.embed(flat), lengths=lengths)
        return res.pool("final").view(B, T, -1)
