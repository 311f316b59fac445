"""Vocabularies: token <-> id maps with padding and unknown ids, saved as JSON with a model.

>>> v = Vocab.build([["a", "b", "a"], ["c"]], min_freq=2)
>>> v.itos, v.encode(["a", "z"]), v.pad_id
(['<pad>', '<unk>', 'a'], [2, 1], 0)
>>> labels = Vocab.build([["pos", "neg", "pos"]], specials=())
>>> labels.encode(["neg"]), Vocab.from_dict(labels.to_dict()).itos
([1], ['pos', 'neg'])
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence

__all__ = ["PAD", "UNK", "Vocab"]

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    """Ids 0.. for ``specials`` (default ``<pad>`` = 0, ``<unk>`` = 1), then items by frequency
    (ties: first seen). A vocabulary without ``<unk>`` refuses unknown items."""

    def __init__(self, itos: Sequence[str], specials: Sequence[str] = (PAD, UNK)) -> None:
        self.itos: List[str] = list(itos)
        self.specials = tuple(specials)
        self.stoi: Dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary items must be unique")

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], *, min_freq: int = 1, max_size: Optional[int] = None,
              specials: Sequence[str] = (PAD, UNK)) -> "Vocab":
        counts: Counter = Counter()
        for seq in sequences:
            counts.update(seq)
        items = [w for w, c in counts.most_common() if c >= min_freq and w not in specials]
        if max_size is not None:
            items = items[: max(0, max_size - len(specials))]
        return cls(list(specials) + items, specials)

    def extended(self, items: Iterable[str]) -> "Vocab":
        """This vocabulary with ``items`` it lacks appended (in order, once each): the ids it
        had stay.

        >>> Vocab(["<pad>", "<unk>", "a"]).extended(["b", "a", "b"]).itos
        ['<pad>', '<unk>', 'a', 'b']
        """
        itos, seen = list(self.itos), set(self.itos)
        for item in items:
            if item not in seen:
                seen.add(item)
                itos.append(item)
        return type(self)(itos, self.specials)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, item: str) -> bool:
        return item in self.stoi

    @property
    def pad_id(self) -> Optional[int]:
        return self.stoi.get(PAD)

    @property
    def unk_id(self) -> Optional[int]:
        return self.stoi.get(UNK)

    def encode(self, items: Iterable[str]) -> List[int]:
        unk = self.unk_id
        out = []
        for item in items:
            i = self.stoi.get(item, unk)
            if i is None:
                raise KeyError(f"{item!r} is not in the vocabulary (known: {self.itos[:10]}{'...' if len(self) > 10 else ''})")
            out.append(i)
        return out

    def decode(self, ids: Iterable[int]) -> List[str]:
        return [self.itos[int(i)] for i in ids]

    def to_dict(self) -> dict:
        return {"itos": self.itos, "specials": list(self.specials)}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        return cls(d["itos"], d["specials"])

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos and self.specials == other.specials
