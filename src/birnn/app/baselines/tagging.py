"""Tagging's baselines: a linear-chain CRF over the standard hand-made token features
(sklearn-crfsuite: the word, its case, affixes and shape, and its neighbours'), and without
that package each word's most frequent training tag."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Dict, List

from . import Baseline, Unavailable, needs

__all__ = ["FeatureCRF", "MostFrequentTag", "token_features"]

CRF_ITERATIONS = 100  # L-BFGS iterations (sklearn-crfsuite's tutorial setting; ~converged on NER data)


def _shape(word: str) -> str:
    """``Ada-2`` -> ``Aa-0``: character classes, runs collapsed."""
    out = []
    for ch in word:
        c = "A" if ch.isupper() else "a" if ch.islower() else "0" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def _word(word: str, prefix: str) -> Dict[str, object]:
    low = word.lower()
    return {f"{prefix}lower": low, f"{prefix}suffix3": low[-3:], f"{prefix}suffix2": low[-2:],
            f"{prefix}prefix2": low[:2], f"{prefix}title": word.istitle(), f"{prefix}upper": word.isupper(),
            f"{prefix}digit": word.isdigit(), f"{prefix}shape": _shape(word)}


def token_features(words: List[str], i: int) -> Dict[str, object]:
    """The features of ``words[i]``: its own (word, affixes, case, digits, shape, prefix and
    suffix of 1-3 characters) and its neighbours' at -2..+2, with sentence boundaries.

    >>> token_features(["Ada", "wrote"], 0)["shape"], token_features(["Ada", "wrote"], 0)["BOS"]
    ('Aa', True)
    """
    w = words[i]
    f: Dict[str, object] = {"bias": 1.0, "word": w, **_word(w, ""), "prefix1": w[:1], "prefix3": w[:3].lower(),
                            "suffix1": w[-1:].lower(), "length": min(len(w), 10)}
    for k in (-2, -1, 1, 2):
        j = i + k
        if 0 <= j < len(words):
            f.update(_word(words[j], f"{k:+d}:"))
    if i == 0:
        f["BOS"] = True
    if i == len(words) - 1:
        f["EOS"] = True
    return f


class FeatureCRF(Baseline):
    name = "feature CRF (sklearn-crfsuite)"

    def fit(self, train: list, dev: list) -> "FeatureCRF":
        crf = needs("sklearn_crfsuite", "sklearn-crfsuite").CRF
        self.model = crf(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=CRF_ITERATIONS, all_possible_transitions=True)
        self.model.fit([self._features(w) for w, _ in train], [list(map(str, t)) for _, t in train])
        self.name = "feature CRF (word, affix, shape and context features; sklearn-crfsuite)"
        return self

    @staticmethod
    def _features(words) -> list:
        return [token_features(list(words), i) for i in range(len(words))]

    def predict(self, records: list) -> list:
        return [list(t) for t in self.model.predict([self._features(w) for w, _ in records])]


class MostFrequentTag(Baseline):
    name = "most frequent tag per word"

    def fit(self, train: list, dev: list) -> "MostFrequentTag":
        by_word: Dict[str, Counter] = defaultdict(Counter)
        overall: Counter = Counter()
        for words, tags in train:
            for w, t in zip(words, tags):
                by_word[w.lower()][str(t)] += 1
                overall[str(t)] += 1
        if not overall:
            raise Unavailable("no tagged tokens in the training split")
        self.default = overall.most_common(1)[0][0]
        self.best = {w: c.most_common(1)[0][0] for w, c in by_word.items()}
        self.name = f"most frequent tag per word (lowercased; unseen words: {self.default})"
        return self

    def predict(self, records: list) -> list:
        return [[self.best.get(w.lower(), self.default) for w in words] for words, _ in records]
