"""``SequenceTagger``: many-to-many. Word embedding (+ character-level BiLSTM word features,
Plank et al. 2016; Lample et al. 2016) -> birnn stack -> a per-step head (Keras'
TimeDistributed) -> tag scores, optionally through a CRF.

Symbols: ``B`` batch, ``T`` words, ``W`` characters per word, ``N`` tags.

>>> from birnn.data import Batch
>>> model = SequenceTagger(num_tags=5, vocab_size=30, char_vocab_size=12, word_dim=8, char_dim=4,
...                        char_hidden=3, layers=["bilstm:6"], crf=True)
>>> batch = Batch(torch.randint(2, 30, (2, 6)), torch.tensor([6, 3]), torch.randint(0, 5, (2, 6)),
...               torch.randint(2, 12, (2, 6, 4)))
>>> model(batch).shape, model.predict(batch)[1, 3:].tolist()
(torch.Size([2, 6, 5]), [-100, -100, -100])
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .chars import CharWordEncoder
from .crf import CRF, IGNORE
from .stack import RecurrentStack

__all__ = ["CharWordEncoder", "SequenceTagger"]  # CharWordEncoder: from .chars, kept importable here


class SequenceTagger(nn.Module):
    """Args:
        vocab_size / word_dim: word embedding (lower-cased words).
        char_vocab_size: enables character features (``char_dim``, ``char_hidden``).
        layers: stack specs, e.g. ``["bilstm:128*2"]``.
        word_dropout: in training, each word id becomes ``<unk>`` (id ``unk_idx``) with this
            probability, so the model learns to lean on characters for rare words.
        crf: a CRF output layer (Viterbi decoding) instead of independent softmaxes.
    """

    def __init__(self, *, num_tags: int, vocab_size: int, word_dim: int = 100, char_vocab_size: Optional[int] = None,
                 char_dim: int = 32, char_hidden: int = 32, layers: Sequence[str] = ("bilstm:128",),
                 dropout: float = 0.3, word_dropout: float = 0.0, crf: bool = False, padding_idx: int = 0,
                 unk_idx: int = 1, layer_options: Optional[dict] = None) -> None:
        super().__init__()
        self.config = dict(num_tags=num_tags, vocab_size=vocab_size, word_dim=word_dim,
                           char_vocab_size=char_vocab_size, char_dim=char_dim, char_hidden=char_hidden,
                           layers=list(layers), dropout=dropout, word_dropout=word_dropout, crf=crf,
                           padding_idx=padding_idx, unk_idx=unk_idx, layer_options=dict(layer_options or {}))
        self.words = nn.Embedding(vocab_size, word_dim, padding_idx=padding_idx)
        self.chars = CharWordEncoder(char_vocab_size, char_dim, char_hidden) if char_vocab_size else None
        size = word_dim + (self.chars.output_size if self.chars else 0)
        self.dropout = nn.Dropout(dropout)
        self.stack = RecurrentStack(size, list(layers), dropout=dropout, **(layer_options or {}))
        self.head = nn.Linear(self.stack.output_size, num_tags)  # applied at every step
        self.crf = CRF(num_tags) if crf else None
        self.word_dropout, self.unk_idx, self.padding_idx = word_dropout, unk_idx, padding_idx

    def forward(self, batch) -> Tensor:
        words = batch.inputs
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(words.shape, device=words.device) < self.word_dropout) & (words != self.padding_idx)
            words = words.masked_fill(drop, self.unk_idx)
        x = self.words(words)
        if self.chars is not None:
            x = torch.cat([x, self.chars(batch.chars)], -1)
        res = self.stack(self.dropout(x), lengths=batch.lengths)
        return self.head(self.dropout(res.output))  # (B, T, N)

    def loss(self, batch) -> Tuple[Tensor, int]:
        """Summed token cross-entropy and the token count; with a CRF, the summed negative
        log-likelihood of the sentences and their count."""
        emissions = self(batch)
        if self.crf is not None:
            return -self.crf.log_likelihood(emissions, batch.targets, batch.lengths).sum(), len(batch)
        total = F.cross_entropy(emissions.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE, reduction="sum")
        return total, int((batch.targets != IGNORE).sum())

    @torch.no_grad()
    def predict(self, batch) -> Tensor:
        """Tag ids (B, T), -100 at padded steps."""
        emissions = self(batch)
        if self.crf is not None:
            return self.crf.decode(emissions, batch.lengths)
        valid = torch.arange(emissions.shape[1], device=emissions.device)[None] < batch.lengths.to(emissions.device)[:, None]
        return emissions.argmax(-1).masked_fill(~valid, IGNORE)
