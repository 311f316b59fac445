"""The practitioner's baseline of every run: the simple model a practitioner tries first on the
same data (tf-idf + logistic regression for text, a feature CRF for tagging, 1-NN DTW for
series, the naive forecasts), fitted on the run's own train split, chosen on its dev split and
scored with the task's own metrics beside the trained model, so that every default is judged
on the user's data.

A :class:`Baseline` fits or raises :class:`Unavailable` (a package it needs is missing; the
data is too large for it within its budget); a task names its baselines in order of
preference (:attr:`birnn.app.tasks.task.Task.baselines`), and :func:`fit_baseline` takes the
first that fits, so a missing optional package makes a weaker baseline, said in its name,
never a failed run.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["BASELINE_CHOICES", "Baseline", "Fitted", "Unavailable", "fit_baseline", "needs", "score_baseline"]

BASELINE_CHOICES = ("auto", "none")  # --baseline


class Unavailable(RuntimeError):
    """A baseline cannot run here (a missing package, data beyond its budget): the task's next
    baseline is tried. The message says why, for the run's note."""


def needs(module: str, package: str):
    """``module`` imported, or :class:`Unavailable` saying which optional package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise Unavailable(f"needs {package} (pip install 'birnn[baselines]')") from None


class Baseline:
    """One baseline: :meth:`fit` on ``(input, target)`` training records (choosing its variants
    on ``dev``), then :meth:`predict` decoded predictions — labels, tag lists, or forecast
    arrays ``(horizon, C)`` in the data's units — as the task's :meth:`decode` gives them."""

    name: str = ""  # what the run reports: "char 1-4-gram tf-idf + logistic regression"

    def fit(self, train: list, dev: list) -> "Baseline":
        raise NotImplementedError

    def predict(self, records: list) -> list:
        raise NotImplementedError


@dataclass
class Fitted:
    """A fitted baseline and how long fitting took."""

    baseline: Baseline
    seconds: float

    @property
    def name(self) -> str:
        return self.baseline.name


def fit_baseline(classes: Sequence[type], train: list, dev: list) -> Tuple[Optional[Fitted], List[str]]:
    """The first of ``classes`` that fits on ``train`` (choosing on ``dev``, else on train):
    ``(fitted or None, notes on the ones passed over)``."""
    skipped = []
    for cls in classes:
        start = time.perf_counter()
        try:
            baseline = cls().fit(train, dev or train)
        except Unavailable as e:
            skipped.append(f"{cls.name or cls.__name__}: {e}")
            continue
        return Fitted(baseline, time.perf_counter() - start), skipped
    return None, skipped


def score_baseline(run, fitted: Fitted, splits: Dict[str, list]) -> dict:
    """The baseline's metrics on each labelled split, as the run's own (``{split}_{metric}``),
    with its name and fitting time: ``{"name", "seconds", "dev_accuracy", ...}``."""
    impl = run.impl
    out = {"name": fitted.name, "seconds": round(fitted.seconds, 3)}
    for split, records in splits.items():
        if not records:
            continue
        preds = impl.encode_predictions(run, fitted.baseline.predict(records))
        examples = [run.encoder.encode(r, i) for i, r in enumerate(records)]
        metrics = impl.score(run, examples, preds, records)
        out.update({f"{split}_{k}": v for k, v in metrics.items() if not k.startswith("naive_")})
    return out
