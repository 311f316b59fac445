"""From records to padded tensor batches: encoders fitted on the training split (saved with the
model as JSON, so prediction uses the same preprocessing) and length-bucketed batching.

Symbols: ``B`` batch, ``T`` longest sequence, ``W`` longest word (characters), ``C``
channels, ``K`` forecast horizon.

>>> enc = TextEncoder.fit([("a good film", "fresh"), ("a bad film", "rotten")], min_freq=1)
>>> batch = enc.collate([enc.encode(r) for r in [("good film", "fresh"), ("a bad bad film", "rotten")]])
>>> batch.inputs.shape, batch.lengths.tolist(), batch.targets.tolist()
(torch.Size([2, 4]), [2, 4], [0, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .scaling import Standardizer
from .text import tokenize
from .vocab import PAD, UNK, Vocab

__all__ = ["TEXT_INPUTS", "Batch", "ForecastEncoder", "SeriesEncoder", "TaggingEncoder", "TextEncoder",
           "bucket_batches", "make_windows"]

IGNORE = -100  # target id of padded steps (ignored by the losses)
MAX_WORD_CHARS = 64  # the character features read at most this many characters of a word


@dataclass
class Batch:
    inputs: Tensor  # (B, T) int64 ids, or (B, T, C) float features
    lengths: Tensor  # (B,) int64
    targets: Optional[Tensor] = None  # (B,) classes | (B, T) tags, IGNORE at padding | (B, K, C) values
    chars: Optional[Tensor] = None  # (B, T, W) character ids of each word
    index: Optional[Tensor] = None  # (B,) position of each example in its dataset

    def to(self, device) -> "Batch":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})

    def __len__(self) -> int:
        return self.lengths.shape[0]


def _pad(seqs: Sequence[Sequence[int]], value: int) -> Tensor:
    T = max((len(s) for s in seqs), default=0)
    out = torch.full((len(seqs), max(T, 1)), value, dtype=torch.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.int64)
    return out


def _pad_chars(words_chars: Sequence[Sequence[Sequence[int]]], value: int) -> Tensor:
    """Each example's words' character ids -> (B, T, W), ``value`` at padding."""
    T = max((len(ws) for ws in words_chars), default=1)
    W = max((len(c) for ws in words_chars for c in ws), default=1)
    out = torch.full((len(words_chars), max(T, 1), max(W, 1)), value, dtype=torch.int64)
    for i, ws in enumerate(words_chars):
        for j, c in enumerate(ws):
            out[i, j, : len(c)] = torch.as_tensor(c, dtype=torch.int64)
    return out


def _index(examples) -> Tensor:
    return torch.tensor([e.get("index", i) for i, e in enumerate(examples)], dtype=torch.int64)


SEQUENCE_KEYS = ("words", "chars", "tags", "x")  # an encoded example's per-step parts


def clip_examples(examples: Sequence[dict], max_length: int, *, split: bool) -> Tuple[list, int]:
    """Examples of at most ``max_length`` steps: longer ones split into consecutive pieces
    (``split``: tagging, where every step has its own target) or cut to their first
    ``max_length`` steps (one label per sequence). Returns the examples and how many changed."""
    out, changed = [], 0
    for ex in examples:
        n = len(ex["words"]) if "words" in ex else len(ex["x"])
        if n <= max_length:
            out.append(ex)
            continue
        changed += 1
        starts = range(0, n, max_length) if split else (0,)
        for a in starts:
            out.append({k: (v[a:a + max_length] if k in SEQUENCE_KEYS else v) for k, v in ex.items()})
    return out, changed


def repeat_steps(example: dict, times: int) -> dict:
    """``example`` with its steps repeated ``times`` times (a longer sequence of the same kind,
    for :mod:`birnn.train.memory`'s probe)."""
    def longer(v):
        return np.concatenate([v] * times, 0) if isinstance(v, np.ndarray) else list(v) * times

    return {k: (longer(v) if k in SEQUENCE_KEYS else v) for k, v in example.items()}


def bucket_batches(lengths: Sequence[int], batch_size: int, *, shuffle: bool,
                   generator: Optional[torch.Generator] = None, bucket: int = 50) -> List[List[int]]:
    """Index batches with sequences of similar lengths together (less padding).

    Shuffled: a random permutation is cut into pools of ``bucket`` batches, each pool sorted
    by length and cut into batches, and the batch order shuffled — deterministic for a given
    ``generator``. Not shuffled: sorted by length, longest first.
    """
    n = len(lengths)
    if not shuffle:
        order = sorted(range(n), key=lambda i: -lengths[i])
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    perm = torch.randperm(n, generator=generator).tolist()
    pool = batch_size * bucket
    batches = []
    for start in range(0, n, pool):
        chunk = sorted(perm[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


class TaggingEncoder:
    """Sentences (words, tags) -> word ids (lower-cased), character ids, tag ids."""

    def __init__(self, words: Vocab, chars: Vocab, tags: Vocab, lowercase: bool = True) -> None:
        self.words, self.chars, self.tags, self.lowercase = words, chars, tags, lowercase

    @classmethod
    def fit(cls, train: Sequence[Tuple[List[str], List[str]]], *, min_freq: int = 1,
            tagset: Sequence[str] = (), lowercase: bool = True) -> "TaggingEncoder":
        norm = (lambda w: w.lower()) if lowercase else (lambda w: w)
        words = Vocab.build(([norm(w) for w in ws] for ws, _ in train), min_freq=min_freq)
        chars = Vocab.build((c for ws, _ in train for c in ws), min_freq=1)
        tags = Vocab.build([[t for _, ts in train for t in ts] + list(tagset)], specials=())
        return cls(words, chars, tags, lowercase)

    def encode(self, record, index: int = 0) -> dict:
        ws, ts = record
        words = [w.lower() for w in ws] if self.lowercase else ws
        # characters of a word beyond MAX_WORD_CHARS are not read (a 1 MB "word" would allocate GBs)
        ex = {"words": self.words.encode(words), "chars": [self.chars.encode(w[:MAX_WORD_CHARS]) for w in ws],
              "index": index}
        if ts is not None:
            ex["tags"] = self.tags.encode(ts)
        return ex

    def collate(self, examples: Sequence[dict]) -> Batch:
        words = _pad([e["words"] for e in examples], self.words.pad_id)
        chars = _pad_chars([e["chars"] for e in examples], self.chars.pad_id)
        targets = _pad([e["tags"] for e in examples], IGNORE) if "tags" in examples[0] else None
        lengths = torch.tensor([len(e["words"]) for e in examples], dtype=torch.int64)
        return Batch(words, lengths, targets, chars, _index(examples))

    def to_dict(self) -> dict:
        return {"words": self.words.to_dict(), "chars": self.chars.to_dict(), "tags": self.tags.to_dict(),
                "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, d: dict) -> "TaggingEncoder":
        return cls(Vocab.from_dict(d["words"]), Vocab.from_dict(d["chars"]), Vocab.from_dict(d["tags"]), d["lowercase"])


TEXT_INPUTS = ("words", "chars", "both")
MAX_TEXT_CHARS = 2000  # input="chars" reads at most this many characters of a text


class TextEncoder:
    """(text, label) -> token ids and a class id. ``input`` says what the tokens are:

    - ``"words"``: lower-cased words and punctuation (:func:`birnn.data.text.tokenize`);
    - ``"chars"``: the text's characters, case and spaces kept (at most
      :data:`MAX_TEXT_CHARS`), for texts of a few words that a word vocabulary cannot cover;
    - ``"both"``: words, plus each word's characters in ``Batch.chars`` (B, T, W).

    >>> enc = TextEncoder.fit([("Anna", "F"), ("Otto", "M")], input="chars")
    >>> enc.encode(("Ann", None))["words"] == enc.chars.encode("Ann")
    True
    """

    def __init__(self, words: Vocab, labels: Vocab, chars: Optional[Vocab] = None, input: str = "words") -> None:
        if input not in TEXT_INPUTS:
            raise ValueError(f"input must be one of {TEXT_INPUTS}; got {input!r}")
        if input != "words" and chars is None:
            raise ValueError(f"input={input!r} needs a character vocabulary (chars=)")
        self.words, self.labels, self.chars, self.input = words, labels, chars, input

    @classmethod
    def fit(cls, train: Sequence[Tuple[str, str]], *, min_freq: int = 2, input: str = "words") -> "TextEncoder":
        """``min_freq`` applies to words; every character seen in training is kept."""
        if input not in TEXT_INPUTS:
            raise ValueError(f"input must be one of {TEXT_INPUTS}; got {input!r}")
        labels = Vocab.build([sorted({lab for _, lab in train})], specials=())
        if input == "chars":
            chars = Vocab.build((t[:MAX_TEXT_CHARS] for t, _ in train), min_freq=1)
            return cls(Vocab([PAD, UNK]), labels, chars, input)
        words = Vocab.build((tokenize(t) for t, _ in train), min_freq=min_freq)
        chars = Vocab.build((c for t, _ in train for w in tokenize(t) for c in w), min_freq=1) if input == "both" else None
        return cls(words, labels, chars, input)

    @property
    def tokens(self) -> Vocab:
        """The vocabulary of the sequence's ids (words, or characters for ``input="chars"``)."""
        return self.chars if self.input == "chars" else self.words

    def encode(self, record, index: int = 0) -> dict:
        text, label = record
        if self.input == "chars":
            ids = self.chars.encode(text[:MAX_TEXT_CHARS]) or [self.chars.unk_id]
            ex = {"words": ids, "index": index}
        else:
            tokens = tokenize(text)
            ex = {"words": self.words.encode(tokens) or [self.words.unk_id], "index": index}
            if self.input == "both":
                ex["chars"] = [self.chars.encode(w[:MAX_WORD_CHARS]) for w in tokens] or [[self.chars.unk_id]]
        if label is not None:
            ex["label"] = self.labels.encode([label])[0]
        return ex

    def collate(self, examples: Sequence[dict]) -> Batch:
        targets = torch.tensor([e["label"] for e in examples]) if "label" in examples[0] else None
        chars = _pad_chars([e["chars"] for e in examples], self.chars.pad_id) if self.input == "both" else None
        return Batch(_pad([e["words"] for e in examples], self.tokens.pad_id),
                     torch.tensor([len(e["words"]) for e in examples]), targets, chars, _index(examples))

    def to_dict(self) -> dict:
        out = {"words": self.words.to_dict(), "labels": self.labels.to_dict(), "input": self.input}
        if self.chars is not None:
            out["chars"] = self.chars.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "TextEncoder":
        chars = Vocab.from_dict(d["chars"]) if "chars" in d else None
        return cls(Vocab.from_dict(d["words"]), Vocab.from_dict(d["labels"]), chars, d.get("input", "words"))


class SeriesEncoder:
    """(series (T, C), label) -> standardised float features (NaN -> 0) and a class id."""

    def __init__(self, scaler: Standardizer, labels: Vocab) -> None:
        self.scaler, self.labels = scaler, labels

    @classmethod
    def fit(cls, train: Sequence[Tuple[np.ndarray, str]]) -> "SeriesEncoder":
        labels = Vocab.build([sorted({str(lab) for _, lab in train})], specials=())
        return cls(Standardizer.fit([s for s, _ in train]), labels)

    @property
    def channels(self) -> int:
        return len(self.scaler.mean)

    def encode(self, record, index: int = 0) -> dict:
        series, label = record
        if np.ndim(series) != 2 or np.shape(series)[1] != self.channels:
            raise ValueError(f"series {index} has shape {np.shape(series)}; the model reads (T, {self.channels}): "
                             f"{self.channels} channel(s)")
        x = np.nan_to_num(self.scaler.transform(series), nan=0.0)
        ex = {"x": x, "index": index}
        if label is not None:
            ex["label"] = self.labels.encode([str(label)])[0]
        return ex

    def collate(self, examples: Sequence[dict]) -> Batch:
        T = max(len(e["x"]) for e in examples)
        x = torch.zeros(len(examples), T, self.channels)
        for i, e in enumerate(examples):
            x[i, : len(e["x"])] = torch.from_numpy(e["x"])
        targets = torch.tensor([e["label"] for e in examples]) if "label" in examples[0] else None
        return Batch(x, torch.tensor([len(e["x"]) for e in examples]), targets, None, _index(examples))

    def to_dict(self) -> dict:
        return {"scaler": self.scaler.to_dict(), "labels": self.labels.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "SeriesEncoder":
        return cls(Standardizer.from_dict(d["scaler"]), Vocab.from_dict(d["labels"]))


def make_windows(series: np.ndarray, window: int, horizon: int, *, start: int = 0, stop: Optional[int] = None
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Windows of ``series`` (T, C): inputs (N, window, C) and the next ``horizon`` values
    (N, horizon, C), for every target range that lies in ``[start, stop)``.

    >>> x, y = make_windows(np.arange(6.0)[:, None], window=3, horizon=2)
    >>> x[:, :, 0].tolist(), y[:, :, 0].tolist()
    ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [[3.0, 4.0], [4.0, 5.0]])
    """
    stop = len(series) if stop is None else stop
    first = max(start, window)  # index of the first target step
    xs, ys = [], []
    for t in range(first, stop - horizon + 1):
        xs.append(series[t - window:t])
        ys.append(series[t:t + horizon])
    C = series.shape[1]
    if not xs:
        return np.zeros((0, window, C), np.float32), np.zeros((0, horizon, C), np.float32)
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)


class ForecastEncoder:
    """Windows of a standardised series -> inputs (B, W, C) and targets (B, K, C)."""

    def __init__(self, scaler: Standardizer, window: int, horizon: int) -> None:
        self.scaler, self.window, self.horizon = scaler, window, horizon

    @classmethod
    def fit(cls, train_series: np.ndarray, *, window: int, horizon: int) -> "ForecastEncoder":
        return cls(Standardizer.fit([train_series]), window, horizon)

    @property
    def channels(self) -> int:
        return len(self.scaler.mean)

    def encode(self, record, index: int = 0) -> dict:
        x, y = record  # raw (W, C) and (K, C) or None
        ex = {"x": self.scaler.transform(x), "index": index}
        if y is not None:
            ex["y"] = self.scaler.transform(y)
        return ex

    def collate(self, examples: Sequence[dict]) -> Batch:
        x = torch.from_numpy(np.stack([e["x"] for e in examples]))
        y = torch.from_numpy(np.stack([e["y"] for e in examples])) if "y" in examples[0] else None
        return Batch(x, torch.full((len(examples),), x.shape[1], dtype=torch.int64), y, None, _index(examples))

    def to_dict(self) -> dict:
        return {"scaler": self.scaler.to_dict(), "window": self.window, "horizon": self.horizon}

    @classmethod
    def from_dict(cls, d: dict) -> "ForecastEncoder":
        return cls(Standardizer.from_dict(d["scaler"]), d["window"], d["horizon"])


# every encoder by its class name, as a run's preprocessing.json names it ("class")
ENCODERS: Dict[str, type] = {cls.__name__: cls for cls in (TaggingEncoder, TextEncoder, SeriesEncoder, ForecastEncoder)}
