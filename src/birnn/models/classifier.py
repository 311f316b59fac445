"""``SequenceClassifier``: many-to-one. Tokens (or numeric features) -> embedding (+ each
word's character BiLSTM features) -> birnn stack -> pooling -> MLP head -> class scores.

The tokens are words or characters: which, is the encoder's choice
(:class:`birnn.data.TextEncoder`'s ``input``); ``char_vocab_size`` adds character features per
word to word tokens (``input="both"``).

Symbols: ``B`` batch, ``T`` time, ``W`` characters per word, ``V`` vocabulary, ``E`` embedding
size, ``C`` input channels, ``F`` stack output size, ``K`` classes.

>>> from birnn.data import Batch
>>> model = SequenceClassifier(num_classes=3, vocab_size=20, embedding_dim=8, layers=["bigru:6"])
>>> batch = Batch(torch.randint(2, 20, (4, 9)), torch.tensor([9, 3, 5, 1]), torch.tensor([0, 2, 1, 0]))
>>> model(batch).shape                     # (B, K)
torch.Size([4, 3])
>>> total, count = model.loss(batch)
>>> count
4
>>> both = SequenceClassifier(num_classes=2, vocab_size=20, embedding_dim=8, char_vocab_size=15, char_dim=4,
...                           char_hidden=3, layers=["bigru:6"])
>>> both(Batch(torch.randint(2, 20, (2, 3)), torch.tensor([3, 1]), None, torch.randint(2, 15, (2, 3, 5)))).shape
torch.Size([2, 2])
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..regularization import EmbeddingDropout
from .chars import CharWordEncoder
from .heads import AttentionPooling, mlp
from .ngrams import NgramBag
from .stack import RecurrentStack

__all__ = ["POOLINGS", "SequenceClassifier"]

POOLINGS = ("final", "mean", "max", "last", "attention")


class SequenceClassifier(nn.Module):
    """Give ``vocab_size`` for token ids (B, T), or ``input_size`` for features (B, T, C).

    Args:
        layers: stack specs (see :mod:`birnn.models.stack`), e.g. ``["bilstm:128"]``.
        pooling: "final" (forward state at the last real token + backward state at the first),
            "mean", "max", "last" or "attention".
        head: hidden sizes of the MLP head.
        dropout: on embeddings/features, between stacked layers (variational) and in the head.
        embedding_dropout: whole-word dropout on the embedding matrix (AWD-LSTM).
        input_noise: σ of Gaussian noise added to feature inputs in training (augmentation).
        patch: feature inputs: the RNN reads ``patch`` consecutive steps at once, (B, T, C) ->
            (B, ceil(T/patch), patch*C), so a long series becomes a short sequence.
        layer_options: birnn layer extras for every layer (e.g. ``{"recurrent_dropout": 0.2}``).
        ngrams: with token ids, puts beside the RNN's summary the mean embedding of the tokens'
            n-grams of orders 1..``ngrams`` (:class:`~birnn.models.ngrams.NgramBag`: over
            characters, what char n-gram tf-idf features see; ``ngram_buckets`` hashed rows of
            ``ngram_dim``); 0: none.
        char_vocab_size: with token ids, adds each word's character BiLSTM features
            (``char_dim`` embedding, ``char_hidden`` per direction) to its embedding; the batch
            then carries ``chars`` (B, T, W).
    """

    def __init__(self, *, num_classes: int, vocab_size: Optional[int] = None, embedding_dim: int = 100,
                 input_size: Optional[int] = None, padding_idx: int = 0, layers: Sequence[str] = ("bilstm:128",),
                 pooling: str = "final", head: Sequence[int] = (), dropout: float = 0.3,
                 embedding_dropout: float = 0.0, input_noise: float = 0.0, layer_options: Optional[dict] = None,
                 char_vocab_size: Optional[int] = None, char_dim: int = 32, char_hidden: int = 32,
                 patch: int = 1, ngrams: int = 0, ngram_buckets: int = 1 << 15, ngram_dim: int = 32) -> None:
        super().__init__()
        if (vocab_size is None) == (input_size is None):
            raise ValueError("give exactly one of vocab_size (token input) or input_size (feature input)")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}")
        self.config = dict(num_classes=num_classes, vocab_size=vocab_size, embedding_dim=embedding_dim,
                           input_size=input_size, padding_idx=padding_idx, layers=list(layers), pooling=pooling,
                           head=list(head), dropout=dropout, embedding_dropout=embedding_dropout,
                           input_noise=input_noise, layer_options=dict(layer_options or {}),
                           char_vocab_size=char_vocab_size, char_dim=char_dim, char_hidden=char_hidden, patch=patch,
                           ngrams=ngrams, ngram_buckets=ngram_buckets, ngram_dim=ngram_dim)
        if not isinstance(ngrams, int) or isinstance(ngrams, bool) or ngrams < 0:
            raise ValueError(f"ngrams must be an int >= 0 (the longest token n-gram; 0: none), got {ngrams!r}")
        if ngrams and vocab_size is None:
            raise ValueError("ngrams applies to token ids (vocab_size), not feature inputs (input_size)")
        if not isinstance(patch, int) or isinstance(patch, bool) or patch < 1:
            raise ValueError(f"patch must be an int >= 1 (time steps per RNN step), got {patch!r}")
        if patch > 1 and vocab_size is not None:
            raise ValueError("patch applies to feature inputs (input_size), not token ids")
        self.patch = patch
        if input_noise and vocab_size is not None:
            raise ValueError("input_noise applies to feature inputs (input_size), not token ids")
        if char_vocab_size is not None and vocab_size is None:
            raise ValueError("char_vocab_size adds character features to token ids: give vocab_size too")
        self.input_noise = input_noise
        if vocab_size is not None:
            self.embed = EmbeddingDropout(nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx),
                                          embedding_dropout)
            size = embedding_dim
            self.chars = CharWordEncoder(char_vocab_size, char_dim, char_hidden) if char_vocab_size else None
            size += self.chars.output_size if self.chars is not None else 0
        else:
            self.chars = None
            self.embed = None
            size = input_size * patch
        self.input_dropout = nn.Dropout(dropout)
        self.stack = RecurrentStack(size, list(layers), dropout=dropout, **(layer_options or {}))
        self.attention = AttentionPooling(self.stack.output_size) if pooling == "attention" else None
        self.pooling = pooling
        self.ngrams = NgramBag(ngrams, ngram_buckets, ngram_dim) if ngrams else None
        self.head = mlp(self.stack.output_size + (ngram_dim if ngrams else 0), head, num_classes, dropout)
        self.head_dropout = nn.Dropout(dropout)

    def features(self, batch) -> Tensor:
        """The pooled sequence summary (B, F), and with ``ngrams`` the tokens' n-gram bag beside
        it (B, F + ngram_dim)."""
        x = self.embed(batch.inputs) if self.embed is not None else batch.inputs
        x, lengths = self.patched(x, batch.lengths)
        if self.chars is not None:
            if batch.chars is None:
                raise ValueError("this classifier reads each word's characters: the batch has no chars (B, T, W); "
                                 "encode with TextEncoder(input='both')")
            x = torch.cat([x, self.chars(batch.chars)], -1)
        if self.training and self.input_noise > 0:
            valid = (torch.arange(x.shape[1], device=x.device)[None] < lengths.to(x.device)[:, None])
            x = x + self.input_noise * torch.randn_like(x) * valid.unsqueeze(-1)
        res = self.stack(self.input_dropout(x), lengths=lengths)
        pooled = self.attention(res.output, lengths) if self.pooling == "attention" else res.pool(self.pooling)
        if self.ngrams is None:
            return pooled
        return torch.cat([pooled, self.ngrams(batch.inputs, batch.lengths)], -1)

    def patched(self, x: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, T, C) -> (B, ceil(T/k), k*C): k = ``patch`` consecutive steps side by side (zeros
        after the end), and lengths ceil(length/k); unchanged for ``patch=1``."""
        if self.patch == 1:
            return x, lengths
        k = self.patch
        x = F.pad(x, (0, 0, 0, k - 1)).unfold(1, k, k).transpose(2, 3).flatten(2)  # windows of k steps
        return x, torch.div(lengths + k - 1, k, rounding_mode="floor")

    def forward(self, batch) -> Tensor:
        return self.head(self.head_dropout(self.features(batch)))  # (B, K)

    def loss(self, batch) -> Tuple[Tensor, int]:
        """Summed cross-entropy and the number of examples."""
        return F.cross_entropy(self(batch), batch.targets, reduction="sum"), len(batch)

    @torch.no_grad()
    def predict(self, batch) -> Tuple[Tensor, Tensor]:
        """Class ids (B,) and probabilities (B, K)."""
        probs = torch.softmax(self(batch), -1)
        return probs.argmax(-1), probs
