"""The Task interface: what one kind of run (text or series classification, tagging,
forecasting) owns, as Hugging Face pipelines split it — preprocess (formats, splitting, the
encoder, the choices ``"auto"`` makes from the data), the model, and postprocess (collecting a
batch's predictions, metrics, what the run reports and monitors, display) — and :class:`Run`,
a trained run: its task, preprocessing and model. The lifecycle that drives them
(:mod:`birnn.tasks.lifecycle`) has no branch on the kind: each task overrides what differs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from torch import nn

__all__ = ["KINDS", "Run", "Task", "register", "task_of"]


class Task:
    """One kind of run. Subclasses set the class attributes and override the methods that
    differ; the defaults here are the labelled-sequence (classification) ones where one exists."""

    task: str = ""  # the command-line task: "classify", "tag", "forecast"
    kind: str = ""  # the kind of run (config.json's "kind")
    model_class: type = nn.Module
    model_keys: Tuple[str, ...] = ()  # the model options this kind reads
    encoder_defaults: Dict[str, object] = {}
    metrics: Tuple[str, ...] = ("accuracy", "macro_f1", "loss")  # what a run reports on dev (--monitor)
    default_monitor: str = "accuracy"
    formats: Tuple[str, ...] = ()  # what `birnn predict` reads
    formats_said: str = ""  # ... as a user would name it
    unit: str = "examples"  # what the dev split's size counts
    classifies: bool = False  # predictions are classes with probabilities (--scores, predict_proba)
    forecasts: bool = False  # predictions are future values (the forecast plot)
    encoder_name: str = ""  # the birnn.data encoder that makes this kind's batches
    # the practitioner's baselines (birnn.app.baselines), preferred first: the first that can run
    # here is fitted on the run's split and reported beside the model
    baselines: Tuple[type, ...] = ()
    embedding_key: str = ""  # the option sizing the word embedding pretrained vectors fill ("": none)

    # -- preprocess ----------------------------------------------------------------------------
    def split_records(self, data, options: dict) -> dict:
        """``{"train", "dev", "test"}`` records of the loaded data."""
        return {"train": data.train, "dev": data.dev, "test": data.test}

    def auto_options(self, records: dict, options: dict) -> List[str]:
        """Fill the options left at ``"auto"`` from the data (in ``options``); the header notes."""
        return []

    def fit_encoder(self, data, options: dict):
        raise NotImplementedError

    def make_model(self, encoder, options: dict) -> nn.Module:
        raise NotImplementedError

    def word_vocab(self, encoder):
        """The vocabulary of the word embedding (--embeddings), or None where the run reads none."""
        return None

    def set_word_vocab(self, encoder, vocab) -> None:
        """Give ``encoder`` the (extended) word vocabulary ``vocab`` (--embeddings)."""
        encoder.words = vocab

    def word_embedding(self, model: nn.Module) -> nn.Embedding:
        """The model's word embedding (--embeddings fills it)."""
        raise NotImplementedError

    def model_options(self, options: dict) -> dict:
        return {k: v for k, v in options.items() if k in self.model_keys}

    def resolved_options(self, options: dict) -> dict:
        """Every model option the kind reads, the given ones and the defaults of the rest (for
        run.toml: a rerun must not depend on the installed version's defaults)."""
        sig = inspect.signature(self.model_class).parameters
        out = dict(self.encoder_defaults)
        for key in self.model_keys:
            if key == "layer_options":
                continue
            p = sig.get(key)
            if p is not None and p.default is not inspect.Parameter.empty:
                out[key] = list(p.default) if isinstance(p.default, tuple) else p.default
        out.update({k: v for k, v in options.items() if k != "layer_options"})
        return out

    def chosen(self, run: "Run") -> dict:
        """The options ``"auto"`` resolved for this run, as run.toml records them."""
        return {}

    def split_long(self) -> bool:
        """--max-length: split long training sequences into pieces (else cut them)."""
        return False

    def dev_size(self, dev: list) -> int:
        return len(dev)

    def tags(self, run: "Run") -> tuple:
        """The tag set that decides the dev metric (BIO tags: span F1); () where none."""
        return ()

    def monitorable(self, tags=()) -> tuple:
        return self.metrics

    def check_records(self, run: "Run", records: list, what: str) -> None:
        """Every label of labelled ``records`` is one the model knows (else ValueError)."""

    def check_splits(self, data) -> None:
        """Labels of the dev and test splits that training cannot know, found before training."""

    def evaluation_records(self, run: "Run", records: list, path) -> list:
        """Labelled records read from ``path`` as the run is scored on them."""
        return records

    def read_channels(self, run: "Run") -> Optional[int]:
        """The channels a series file must have (series classification), else None."""
        return None

    # -- postprocess ---------------------------------------------------------------------------
    def collect(self, pred, batch, k: int):
        """Example ``k`` of a batch's ``model.predict`` output."""
        raise NotImplementedError

    def score(self, run: "Run", examples: list, preds: list, records: list) -> Dict[str, float]:
        raise NotImplementedError

    def breakdown(self, run: "Run", examples: list, preds: list) -> Optional[dict]:
        """Per-class report and confusion matrix (classification, tagging), or None."""
        return None

    def decode(self, run: "Run", preds: list) -> list:
        """Human-readable predictions."""
        raise NotImplementedError

    def encode_predictions(self, run: "Run", decoded: list) -> list:
        """Human-readable predictions (a baseline's) as :meth:`collect` gives the model's, so
        that :meth:`score` scores both alike: the inverse of :meth:`decode`."""
        raise NotImplementedError

    def labels(self, encoder) -> Optional[List[str]]:
        return None

    def infer_format(self, path: str) -> str:
        """The format of ``path`` when none was given: from its extension, else one item per line."""
        from ...data import infer_format

        try:
            return infer_format(path, None)
        except ValueError:
            return "lines"  # no known extension: one item per line

    def read_for_prediction(self, run: "Run", path: str, fmt: str) -> list:
        raise NotImplementedError

    def records_of(self, run: "Run", inputs) -> Tuple[list, bool]:
        """Raw Python inputs (:meth:`birnn.TrainedModel.predict`) as records, and whether one
        item was given."""
        raise NotImplementedError

    def output(self, record, pred) -> dict:
        """One prediction as ``birnn predict --output json`` writes it."""
        raise NotImplementedError

    def show(self, item: dict) -> str:
        """One prediction as ``birnn predict`` prints it."""
        raise NotImplementedError

    # -- export --------------------------------------------------------------------------------
    def export_inputs(self, run: "Run", B, T, Dim) -> Tuple[List[str], tuple, tuple]:
        """Input names, an example batch and its dynamic shapes for ``birnn export``."""
        raise NotImplementedError

    def exported(self, model: nn.Module, x, lengths, chars):
        """The exported module's output (scores) from plain tensors."""
        raise NotImplementedError

    def export_meta(self, run: "Run") -> dict:
        """What preprocessing.json adds for this kind (a CRF's decoding)."""
        return {}


KINDS: Dict[str, Task] = {}


def register(task: Task) -> Task:
    KINDS[task.kind] = task
    return task


def task_of(kind: str) -> Task:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}") from None


@dataclass
class Run:
    """Everything a trained run needs for prediction: task, preprocessing and model."""

    task: str
    kind: str  # "text", "series", "tagging" or "forecast"
    encoder: object
    model: nn.Module
    config: dict = field(default_factory=dict)

    @property
    def impl(self) -> Task:
        """The :class:`Task` that owns this kind of run."""
        return task_of(self.kind)
