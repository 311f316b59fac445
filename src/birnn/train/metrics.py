"""Metrics: accuracy, macro-F1, a per-class report and confusion matrix, entity span F1 and the
per-type entity report for BIO tags (seqeval's, tested against it), MAE and RMSE.

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
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

__all__ = ["accuracy", "bio_spans", "class_report", "confusion_matrix", "entity_report", "macro_f1", "mae", "rmse",
           "span_f1"]


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


def _parts(tag: str) -> Tuple[str, str]:
    """(prefix, type) of a tag: ``B-PER`` -> ("B", "PER"), ``O`` -> ("O", "_")."""
    return tag[:1], (tag[1:].split("-", 1)[-1] or "_")


def bio_spans(tags: Sequence[str]) -> Set[Tuple[str, int, int]]:
    """Entity spans (type, start, end exclusive) of a BIO/IOB2/IOBES tag sequence, read as
    seqeval's default (conlleval) mode reads them: a span ends after ``E-``/``S-``, before a
    ``B-``/``S-``/``O``, or where the type changes; a span starts at ``B-``/``S-``, at a type
    change, or at an ``I-``/``E-`` that continues nothing (after ``O``, ``E-`` or ``S-``).

    >>> sorted(bio_spans(["S-LOC", "I-LOC", "E-LOC", "I-PER"]))   # S- then I-: two spans
    [('LOC', 0, 1), ('LOC', 1, 3), ('PER', 3, 4)]
    """
    spans: Set[Tuple[str, int, int]] = set()
    start: Optional[int] = None
    prev, prev_type = "O", ""
    for i, tag in enumerate(list(tags) + ["O"]):
        p, typ = _parts(tag)
        ends = (prev in ("E", "S") or (prev in ("B", "I") and p in ("B", "S", "O"))
                or (prev not in ("O", ".") and prev_type != typ))
        begins = (p in ("B", "S") or (prev in ("E", "S", "O") and p in ("E", "I"))
                  or (p not in ("O", ".") and prev_type != typ))
        if ends and start is not None:
            spans.add((prev_type, start, i))
            start = None
        if begins:
            start = i
        prev, prev_type = p, typ
    return spans


def _counts(pred: Iterable[Sequence[str]], gold: Iterable[Sequence[str]]) -> Dict[str, List[int]]:
    """Per entity type: [true positives, predicted spans, gold spans]."""
    counts: Dict[str, List[int]] = {}
    for p, g in zip(pred, gold):
        ps, gs = bio_spans(p), bio_spans(g)
        for kind, spans in ((1, ps), (2, gs)):
            for typ, _, _ in spans:
                counts.setdefault(typ, [0, 0, 0])[kind] += 1
        for typ, _, _ in ps & gs:
            counts[typ][0] += 1
    return counts


def _prf(tp: int, n_pred: int, n_gold: int) -> Tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def span_f1(pred: Iterable[Sequence[str]], gold: Iterable[Sequence[str]]) -> float:
    """Micro F1 of exact entity spans over sentences (seqeval's ``f1_score``)."""
    tp, n_pred, n_gold = (sum(c[k] for c in _counts(pred, gold).values()) for k in range(3))
    return _prf(tp, n_pred, n_gold)[2]


def entity_report(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> Dict[str, Dict[str, float]]:
    """Entity-level precision, recall, F1 and support (gold spans) per type, then ``micro avg``,
    ``macro avg`` and ``weighted avg`` (by support), as seqeval's ``classification_report``
    computes them (0 where undefined); types sorted by name.

    >>> r = entity_report([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]])
    >>> r["PER"]["f1"], r["LOC"]["precision"], r["ORG"]["recall"], round(r["micro avg"]["f1"], 3)
    (1.0, 0.0, 0.0, 0.5)
    """
    counts = _counts(pred, gold)
    out: Dict[str, Dict[str, float]] = {}
    for typ in sorted(counts):
        tp, n_pred, n_gold = counts[typ]
        precision, recall, f1 = _prf(tp, n_pred, n_gold)
        out[typ] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}
    totals = [sum(c[k] for c in counts.values()) for k in range(3)]
    precision, recall, f1 = _prf(*totals)
    out["micro avg"] = {"precision": precision, "recall": recall, "f1": f1, "support": totals[2]}
    types = [out[t] for t in sorted(counts)]
    for name in ("macro avg", "weighted avg"):
        weights = [1.0 if name == "macro avg" else float(r["support"]) for r in types]
        total = sum(weights)
        out[name] = {k: (sum(w * r[k] for w, r in zip(weights, types)) / total if total else 0.0)
                     for k in ("precision", "recall", "f1")}
        out[name]["support"] = totals[2]
    return out


def mae(pred: Sequence[float], gold: Sequence[float]) -> float:
    return sum(abs(p - g) for p, g in zip(pred, gold)) / max(len(gold), 1)


def rmse(pred: Sequence[float], gold: Sequence[float]) -> float:
    return math.sqrt(sum((p - g) ** 2 for p, g in zip(pred, gold)) / max(len(gold), 1))
