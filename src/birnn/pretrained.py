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
        enc = self._run.encoder
        if self.kind == "tagging":
            return list(enc.tags.itos)
        if self.kind in ("text", "series"):
            return list(enc.labels.itos)
        return None

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
        from . import __version__
        from .data.encoding import ENCODERS
        from .models import MODELS
        from .tasks import TASKS, Run

        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if type(model).__name__ not in MODELS or not hasattr(model, "config"):
            raise TypeError(f"model must be one of birnn.models' {', '.join(MODELS)}, got {type(model).__name__}")
        if type(encoder).__name__ not in ENCODERS:
            raise TypeError(f"encoder must be one of birnn.data's {', '.join(ENCODERS)}, got {type(encoder).__name__}")
        kinds = {"TaggingEncoder": "tagging", "TextEncoder": "text", "SeriesEncoder": "series",
                 "ForecastEncoder": "forecast"}
        kind = kinds[type(encoder).__name__]
        expected = {"tag": ("tagging",), "forecast": ("forecast",), "classify": ("text", "series")}[task]
        if kind not in expected:
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

        from .train.checkpoint import atomic_write_text, save_weights

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
        from .train import precision as context

        return context(precision or self.config.get("train", {}).get("precision", "fp32"), device)

    def predict(self, inputs, *, device: str = "cpu", precision: Optional[str] = None):
        """Predictions on raw inputs (see the module doc): the same as ``birnn predict``.
        ``precision``: "fp32" or "bf16" (bfloat16 autocast); default, what the run trained at."""
        from .tasks import predict_records

        records, single = self._records(inputs)
        with self._precision(precision, device):
            out = predict_records(self._run, records, device)
        out = [np.asarray(o) for o in out] if self.kind == "forecast" else out
        return out[0] if single else out

    def predict_proba(self, inputs, *, device: str = "cpu", precision: Optional[str] = None):
        """Classification: each input's class probabilities, ``{label: p}`` (``birnn predict
        --scores``)."""
        from .tasks import class_scores

        if self.kind not in ("text", "series"):
            raise ValueError(f"predict_proba gives class probabilities of classify runs; this is a {self.task} run")
        records, single = self._records(inputs)
        with self._precision(precision, device):
            out = class_scores(self._run, records, device)
        return out[0] if single else out

    def evaluate(self, data, *, format: Optional[str] = None, report: bool = False, device: str = "cpu",
                 precision: Optional[str] = None) -> dict:
        """Metrics on labelled data — a file (``format`` as ``birnn evaluate --format``, else
        from its extension) or a list of ``(input, label)`` records as :mod:`birnn.data`'s
        readers make them — as ``birnn evaluate`` prints them (``test_*``). ``report=True``
        adds ``report``: per class (tag) precision, recall, F1 and support, the confusion
        matrix, and for BIO tags the entity-level scores per type (as seqeval computes them)."""
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
        return metrics

    def _records(self, inputs) -> Tuple[list, bool]:
        """Raw inputs as the run's records, and whether one item was given."""
        kind = self.kind
        if kind == "text":
            if isinstance(inputs, str):
                return [(inputs, None)], True
            items = _sequence(inputs, "a string or a list of strings")
            for i, t in enumerate(items):
                if not isinstance(t, str):
                    raise TypeError(f"inputs[{i}] must be a string (a text), got {type(t).__name__}")
            return [(t, None) for t in items], False
        if kind == "tagging":
            if isinstance(inputs, str):
                return [(inputs.split(), None)], True
            items = _sequence(inputs, "a string, a list of strings or a list of token lists")
            out = []
            for i, s in enumerate(items):
                if isinstance(s, str):
                    out.append((s.split(), None))
                elif isinstance(s, (list, tuple)) and all(isinstance(w, str) for w in s):
                    out.append((list(s), None))
                else:
                    raise TypeError(f"inputs[{i}] must be a sentence (a string) or a list of tokens, "
                                    f"got {type(s).__name__}")
            return out, False
        arrays, single = _arrays(inputs)
        if kind == "series":
            C = self._run.encoder.channels
            for i, x in enumerate(arrays):
                if x.shape[1] != C:
                    raise ValueError(f"inputs[{i}] has {x.shape[1]} channels, the model reads {C} (arrays (T, C))")
            return [(x, None) for x in arrays], single
        W, C = self._run.encoder.window, self._run.encoder.channels
        records = []
        for i, x in enumerate(arrays):
            if x.shape[1] != C or len(x) < W:
                raise ValueError(f"inputs[{i}] must be a series (T >= {W}, C = {C}) for a window of {W} steps, "
                                 f"got shape {tuple(x.shape)}")
            records.append((x[-W:], None))
        return records, single


def _sequence(inputs, what: str) -> list:
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    raise TypeError(f"inputs must be {what}, got {type(inputs).__name__}")


def _arrays(inputs) -> Tuple[List[np.ndarray], bool]:
    """Series inputs as float32 (T, C) arrays: one (T,) or (T, C) array, an (N, T, C) array, or
    a list of them."""
    def one(x, where: str) -> np.ndarray:
        a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or not len(a):
            raise ValueError(f"{where} must be a series, (T,) or (T, C) with T >= 1, got shape {a.shape}")
        return a

    if isinstance(inputs, (list, tuple)):
        return [one(x, f"inputs[{i}]") for i, x in enumerate(inputs)], False
    a = np.asarray(inputs.detach().cpu() if hasattr(inputs, "detach") else inputs, dtype=np.float32)
    if a.ndim == 3:
        return [one(x, f"inputs[{i}]") for i, x in enumerate(a)], False
    return [one(a, "inputs")], True


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
