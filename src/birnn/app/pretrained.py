"""A trained model as a Python object: load a run (or a saved model), predict on raw inputs,
evaluate on a labelled file, save it and load it back — Hugging Face's
``save_pretrained``/``from_pretrained`` habit, on safetensors and JSON (the vocabularies, labels
and scalers ride along in ``config.json``; nothing is pickled).

::

    import birnn
    model = birnn.fit("classify", train="reviews.csv", epochs=5)   # the same run `birnn train` makes
    model.predict(["a fine film", "a dull film"])                  # raw texts in, labels out: ['pos', 'neg']
    model.save("my-model")
    birnn.load("my-model").predict("fine acting")                  # 'pos'

What ``predict`` takes, by task (one item gives one prediction, a list gives a list):

===============================  ==============================  ==============================
run                              one item                        returns
===============================  ==============================  ==============================
classify, text                   a string                        its label
classify, series                 an array (T, C) or (T,)         its label
tag                              a string (split on spaces), or  its tags, one per token
                                 a list of token lists
forecast                         a series (T, C) or (T,)         the next values (horizon, C),
                                                                 from its last window
===============================  ==============================  ==============================

For tagging, a list of strings is a list of *sentences*; to tag one pre-tokenised sentence,
pass ``[["Ada", "Lovelace", "wrote"]]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy as np
from torch import nn

__all__ = ["TrainedModel", "fit", "load"]

PathLike = Union[str, Path]


class TrainedModel:
    """A trained task model: preprocessing (vocabularies, labels, scaler), the network, and
    what it was trained for. Make one with :func:`load`, :func:`fit` or :meth:`from_parts`.

    Attributes: ``task`` ("classify", "tag", "forecast"), ``kind`` ("text", "series",
    "tagging", "forecast"), ``module`` (the ``torch.nn.Module``), ``labels`` (class labels or
    tags; None for forecasting), ``metrics`` (what the training run reported, when it was
    trained by :func:`fit`) and ``path`` (where it was loaded from or saved to).
    """

    def __init__(self, run, *, metrics: Optional[dict] = None, path: Optional[PathLike] = None) -> None:
        self._run = run
        self.metrics = dict(metrics or {})
        self.path = None if path is None else Path(path)

    # -- what it is --------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self._run.task

    @property
    def kind(self) -> str:
        return self._run.kind

    @property
    def module(self) -> nn.Module:
        return self._run.model

    @property
    def labels(self) -> Optional[List[str]]:
        return self._run.impl.labels(self._run.encoder)

    @property
    def config(self) -> dict:
        """config.json's content: task, model class and options, preprocessing, training."""
        return self._run.config

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"TrainedModel(task={self.task!r}, kind={self.kind!r}, module={type(self.module).__name__}{where})"

    # -- loading and saving ----------------------------------------------------------------
    @classmethod
    def load(cls, path: PathLike, *, weights: str = "final") -> "TrainedModel":
        """:func:`load`."""
        from .tasks import load_run

        return cls(load_run(path, weights=weights), path=path)

    @classmethod
    def from_parts(cls, model: nn.Module, encoder, task: str) -> "TrainedModel":
        """A model trained from Python (one of :mod:`birnn.models`) with the encoder that made
        its batches (one of :mod:`birnn.data`'s), ready to predict, :meth:`save` and load
        back — from Python or with ``birnn predict``."""
        from .. import __version__
        from ..data.encoding import ENCODERS
        from ..models import MODELS
        from .tasks import KINDS, TASKS, Run

        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if type(model).__name__ not in MODELS or not hasattr(model, "config"):
            raise TypeError(f"model must be one of birnn.models' {', '.join(MODELS)}, got {type(model).__name__}")
        if type(encoder).__name__ not in ENCODERS:
            raise TypeError(f"encoder must be one of birnn.data's {', '.join(ENCODERS)}, got {type(encoder).__name__}")
        impl = next(t for t in KINDS.values() if t.encoder_name == type(encoder).__name__)
        kind = impl.kind
        if impl.task != task:
            raise ValueError(f"a {type(encoder).__name__} makes {kind} batches, not batches for the {task} task")
        config = {"birnn_version": __version__, "task": task, "kind": kind,
                  "model": {"class": type(model).__name__, "config": model.config},
                  "preprocessing": {"class": type(encoder).__name__, **encoder.to_dict()}}
        return cls(Run(task, kind, encoder, model.eval(), config))

    def save(self, directory: PathLike) -> Path:
        """Write ``config.json`` (task, model, preprocessing) and ``model.safetensors`` (with the
        SHA-256 of its tensors, checked on load) into ``directory``; :func:`load`, ``birnn
        predict``, ``birnn evaluate`` and ``birnn export`` read it. Returns the directory."""
        import json

        from ..train.checkpoint import atomic_write_text, save_weights

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {k: v for k, v in self.config.items() if k not in ("resolved",)}
        atomic_write_text(directory / "config.json", json.dumps(config, indent=1, default=str))
        save_weights(directory / "model.safetensors", self.module.state_dict())
        self.path = directory
        return directory

    def export(self, path: PathLike, format: str = "onnx") -> Path:
        """``birnn export``: the model as ONNX (onnxruntime) or a torch.export program
        (``.pt2``) that runs without birnn, with ``preprocessing.json`` beside it."""
        from .export import export_run

        return export_run(self._run, Path(path), format)

    # -- using it ------------------------------------------------------------------------------
    def _precision(self, precision: Optional[str], device: str):
        from ..train import precision as context

        return context(precision or self.config.get("train", {}).get("precision", "fp32"), device)

    def predict(self, inputs, *, device: str = "cpu", precision: Optional[str] = None):
        """Predictions on raw inputs (see the module doc): the same as ``birnn predict``.
        ``precision``: "fp32" or "bf16" (bfloat16 autocast); default, what the run trained at."""
        from .tasks import predict_records

        records, single = self._records(inputs)
        with self._precision(precision, device):
            out = predict_records(self._run, records, device)
        out = [np.asarray(o) for o in out] if self._run.impl.forecasts else out
        return out[0] if single else out

    def predict_file(self, path: PathLike, *, format: Optional[str] = None, scores: bool = False,
                     device: str = "cpu", precision: Optional[str] = None) -> List[dict]:
        """Predictions on a file (``format`` as ``birnn predict --format``, else from its
        extension), one dict per record as ``birnn predict --output json`` writes them (the
        input, and the label, tags or forecast); ``scores=True`` adds each classify record's class
        probabilities."""
        from .tasks import class_scores, predict_records, read_for_prediction

        impl = self._run.impl
        if scores and not impl.classifies:
            raise ValueError(f"scores are class probabilities of classify runs; this is a {self.task} run")
        records = read_for_prediction(self._run, str(path), format)
        with self._precision(precision, device):
            preds = predict_records(self._run, records, device)
            probs = class_scores(self._run, records, device) if scores else [None] * len(records)
        out = []
        for record, pred, p in zip(records, preds, probs):
            out.append(impl.output(record, pred))
            if p is not None:
                out[-1]["scores"] = p
        return out

    def show(self, item: dict) -> str:
        """One of :meth:`predict_file`'s predictions as ``birnn predict`` prints it."""
        return self._run.impl.show(item)

    def predict_proba(self, inputs, *, device: str = "cpu", precision: Optional[str] = None):
        """Classification: each input's class probabilities, ``{label: p}`` (``birnn predict
        --scores``)."""
        from .tasks import class_scores

        if not self._run.impl.classifies:
            raise ValueError(f"predict_proba gives class probabilities of classify runs; this is a {self.task} run")
        records, single = self._records(inputs)
        with self._precision(precision, device):
            out = class_scores(self._run, records, device)
        return out[0] if single else out

    def evaluate(self, data, *, format: Optional[str] = None, report: bool = False, device: str = "cpu",
                 precision: Optional[str] = None, baseline: bool = False) -> dict:
        """Metrics on labelled data — a file (``format`` as ``birnn evaluate --format``, else
        from its extension) or a list of ``(input, label)`` records as :mod:`birnn.data`'s
        readers make them — as ``birnn evaluate`` prints them (``test_*``). ``report=True``
        adds ``report``: per class (tag) precision, recall, F1 and support, the confusion
        matrix, and for BIO tags the entity-level scores per type (as seqeval computes them).
        ``baseline=True`` adds ``baseline``: the task's practitioner's baseline refitted on
        the run's training split (read again from its recorded source) and scored on the same
        data (``{"name", "seconds", "test_<metric>", ...}``; ``{"unavailable": why}`` where it
        cannot be refitted)."""
        from .tasks import class_breakdown, evaluate_run, predictions, read_for_evaluation

        if isinstance(data, (str, Path)):
            records = read_for_evaluation(self._run, data, format)
        else:
            records = list(data)
            if not records:
                raise ValueError("data holds no records to evaluate")
        with self._precision(precision, device):
            predicted = predictions(self._run, records, device)
        metrics = {f"test_{k}": v for k, v in evaluate_run(self._run, records, device, predicted).items()}
        if report:
            breakdown = class_breakdown(self._run, records, device, predicted)
            if breakdown is not None:
                metrics["report"] = breakdown
        if baseline:
            from .runs import refit_baseline

            metrics["baseline"] = refit_baseline(self._run, records)
        return metrics

    def _records(self, inputs) -> Tuple[list, bool]:
        """Raw inputs as the run's records, and whether one item was given."""
        return self._run.impl.records_of(self._run, inputs)


def load(path: PathLike, *, weights: str = "final") -> TrainedModel:
    """A trained model from a run directory (``birnn train``'s ``--out``) or a directory
    :meth:`TrainedModel.save` wrote. ``weights``: ``"final"`` (what the run ended on),
    ``"best"`` (its best dev epoch) or ``"latest"`` (its latest checkpoint)."""
    return TrainedModel.load(path, weights=weights)


def fit(task: Optional[str] = None, *, dataset: Optional[str] = None, train: Optional[PathLike] = None,
        dev: Optional[PathLike] = None, test: Optional[PathLike] = None, out: Optional[PathLike] = None,
        config: Optional[PathLike] = None, verbose: bool = True, **options: Any) -> TrainedModel:
    """Train as ``birnn train`` does — the same defaults, presets, checks, header and run
    directory — and return the trained model. ``options`` are the command's options by name
    (``layers=["bilstm:64"]``, ``epochs=10``, ``lr=1e-3``, ``crf=False``, ``recurrent_dropout=0.2``,
    ``format="columns"``...); ``config`` a TOML file as ``--config``; ``out`` the run directory
    (default ``runs/TASK-NAME-TIME``); ``verbose=False`` keeps it quiet.
    ``model.metrics`` holds the run's dev and test metrics, ``model.path`` its directory."""
    from . import runs
    from .config import LAYER_FIELDS, MODEL_FIELDS, SOURCE_FIELDS, TRAIN_FIELDS, UsageError, check_value, resolve

    known = set(SOURCE_FIELDS) | set(MODEL_FIELDS) | set(LAYER_FIELDS) | set(TRAIN_FIELDS)
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"fit() got unknown option(s) {', '.join(unknown)}; the options are birnn train's: "
                        f"{', '.join(sorted(known))}")
    for name, value in options.items():
        if value is not None:
            check_value(name, value, where=f"{name}=")
    flags = dict(options, task=task, dataset=dataset, train=None if train is None else str(train),
                 dev=None if dev is None else str(dev), test=None if test is None else str(test), config=config)
    try:
        conf = resolve(flags)
    except UsageError as e:
        raise ValueError(str(e).replace("--", "")) from None
    run_dir = runs.run_dir_for(conf, out)
    done = runs.train(conf, run_dir, log=print if verbose else (lambda line: None))
    return TrainedModel(done.run, metrics=done.metrics, path=run_dir)
