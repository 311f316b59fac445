"""Metrics: accuracy, macro-F1, a per-class report and confusion matrix, span-F1 for BIO tags,
MAE and RMSE.

>>> accuracy([1, 2, 3], [1, 2, 0]), round(macro_f1([0, 0, 1], [0, 1, 1]), 3)
(0.6666666666666666, 0.667)
>>> sorted(bio_spans(["B-PER", "I-PER", "O", "B-LOC", "I-ORG"]))
[('LOC', 3, 4), ('ORG', 4, 5), ('PER', 0, 2)]
>>> span_f1([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
0.0
>>> class_report(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])["b"]
{'precision': 1.0, 'recall': 0.5, 'f1': 0.6666666666666666, 'support': 2}
>>> confusion_matrix(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])   # rows: gold, columns: predicted
[[1, 0], [1, 1]]
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Sequence, Set, Tuple

__all__ = ["accuracy", "bio_spans", "class_report", "confusion_matrix", "macro_f1", "mae", "rmse", "span_f1"]


def accuracy(pred: Sequence, gold: Sequence) -> float:
    if len(pred) != len(gold):
        raise ValueError(f"pred and gold must have the same length, got {len(pred)} and {len(gold)}")
    return sum(p == g for p, g in zip(pred, gold)) / max(len(gold), 1)


def macro_f1(pred: Sequence, gold: Sequence) -> float:
    """Mean F1 over the classes present in gold or predictions."""
    scores = []
    for c in set(gold) | set(pred):
        tp = sum(p == c and g == c for p, g in zip(pred, gold))
        fp = sum(p == c and g != c for p, g in zip(pred, gold))
        fn = sum(p != c and g == c for p, g in zip(pred, gold))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / max(len(scores), 1)


def class_report(pred: Sequence, gold: Sequence, labels: Sequence) -> Dict[str, Dict[str, float]]:
    """Per class of ``labels``: precision, recall, F1 (0 where undefined) and support (gold count)."""
    if len(pred) != len(gold):
        raise ValueError(f"pred and gold must have the same length, got {len(pred)} and {len(gold)}")
    out = {}
    for c in labels:
        tp = sum(p == c and g == c for p, g in zip(pred, gold))
        n_pred, n_gold = sum(p == c for p in pred), sum(g == c for g in gold)
        precision, recall = (tp / n_pred if n_pred else 0.0), (tp / n_gold if n_gold else 0.0)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[str(c)] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}
    return out


def confusion_matrix(pred: Sequence, gold: Sequence, labels: Sequence) -> List[List[int]]:
    """``matrix[i][j]``: how many of gold class ``labels[i]`` were predicted ``labels[j]``."""
    index = {c: i for i, c in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for p, g in zip(pred, gold):
        matrix[index[g]][index[p]] += 1
    return matrix


def bio_spans(tags: Sequence[str]) -> Set[Tuple[str, int, int]]:
    """Spans (type, start, end) of a BIO/IOB2 sequence (E-/S- of BIOES are read as I-/B-).
    An I-X that does not continue an X span starts a new one (the usual conlleval reading)."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, typ = tag.partition("-")
        prefix = {"S": "B", "E": "I"}.get(prefix, prefix)
        if kind is not None and not (prefix == "I" and typ == kind):
            spans.add((kind, start, i))
            kind = None
        if prefix in ("B", "I") and kind is None:
            start, kind = i, typ
    return spans


def span_f1(pred: Iterable[Sequence[str]], gold: Iterable[Sequence[str]]) -> float:
    """Micro F1 of exact spans over sentences."""
    tp = fp = fn = 0
    for p, g in zip(pred, gold):
        ps = bio_spans(p)
        gs = bio_spans(g)
        tp += len(ps & gs)
        fp += len(ps - gs)
        fn += len(gs - ps)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def mae(pred: Sequence[float], gold: Sequence[float]) -> float:
    return sum(abs(p - g) for p, g in zip(pred, gold)) / max(len(gold), 1)


def rmse(pred: Sequence[float], gold: Sequence[float]) -> float:
    return math.sqrt(sum((p - g) ** 2 for p, g in zip(pred, gold)) / max(len(gold), 1))
