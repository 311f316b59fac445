"""The three tasks — ``classify`` (many-to-one), ``tag`` (many-to-many), ``forecast`` — as
recipes that join data, preprocessing, model, metrics and training. The command line composes
these; so do the quality benchmarks. A run directory written here loads back with
:func:`load_run` for evaluation and prediction with the same preprocessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from . import __version__
from .data import (ForecastEncoder, SeriesEncoder, SeriesSplits, TaggingEncoder, TextEncoder, bio_tags, bucket_batches,
                   make_windows)
from .data.encoding import ENCODERS, clip_examples
from .train.memory import MemoryNeeded, check_model
from .models import MODELS, Forecaster, SequenceClassifier, SequenceTagger
from .train import (TrainConfig, Trainer, accuracy, class_report, confusion_matrix, entity_report, load_config,
                    load_weights, macro_f1, span_f1)
from .train.checkpoint import CheckpointError

__all__ = ["PREDICT_FORMATS", "PRESETS", "TASKS", "Run", "build_run", "evaluate_run", "load_run", "predict_format",
           "predict_records", "read_for_prediction"]

TASKS = ("classify", "tag", "forecast")

# Defaults per dataset: model options and training options that reach the quality bars
# recorded in benchmarks/RESULTS.md. Command-line flags override any of them.
PRESETS: Dict[str, dict] = {
    # the dev split has 27 cases, too few to select on: a fixed cosine budget, last weights
    "japanese-vowels": {"model": {"layers": ["bigru:128*2"], "dropout": 0.4, "pooling": "mean", "input_noise": 0.1},
                        "train": {"epochs": 80, "batch_size": 16, "lr": 2e-3, "schedule": "cosine",
                                  "patience": 1000, "select": "last"}},
    "rotten-tomatoes": {"model": {"layers": ["bilstm:128"], "embedding_dim": 128, "dropout": 0.5,
                                  "embedding_dropout": 0.1, "pooling": "max", "min_freq": 2},
                        "train": {"epochs": 12, "batch_size": 32, "lr": 2e-3, "patience": 4}},
    # the model defaults; larger batches and a shorter patience keep it within ~2 minutes on 2 CPUs
    "first-names": {"train": {"epochs": 20, "batch_size": 64, "patience": 4}},
    "turkish-upos": {"model": {"layers": ["bilstm:128*2"], "word_dim": 100, "char_dim": 32, "char_hidden": 64,
                               "dropout": 0.33, "word_dropout": 0.1},
                     "train": {"epochs": 20, "batch_size": 32, "lr": 2e-3, "patience": 4}},
    "sunspots": {"model": {"layers": ["bilstm:32"], "window": 20, "horizon": 1, "dropout": 0.0},
                 "train": {"epochs": 200, "batch_size": 16, "lr": 3e-3, "patience": 30, "schedule": "plateau"}},
    "sine": {"model": {"layers": ["bilstm:32"], "window": 60, "horizon": 20},
             "train": {"epochs": 40, "batch_size": 32, "lr": 3e-3, "patience": 8}},
}


@dataclass
class Run:
    """Everything a trained run needs for prediction: task, preprocessing and model."""

    task: str
    kind: str  # "text", "series", "tagging" or "forecast"
    encoder: object
    model: nn.Module
    config: dict = field(default_factory=dict)


# -- preprocessing and models ------------------------------------------------------------------
def _kind(task: str, train: list) -> str:
    if task == "tag":
        return "tagging"
    if task == "forecast":
        return "forecast"
    return "text" if isinstance(train[0][0], str) else "series"


_MODEL_KEYS = {
    "text": ("layers", "embedding_dim", "dropout", "embedding_dropout", "pooling", "head", "layer_options",
             "char_dim", "char_hidden"),
    "series": ("layers", "dropout", "pooling", "head", "input_noise", "layer_options", "patch"),
    "tagging": ("layers", "word_dim", "char_dim", "char_hidden", "dropout", "word_dropout", "crf", "layer_options",
                "chars"),
    "forecast": ("layers", "dropout", "pooling", "head", "layer_options"),
}


_ENCODER_DEFAULTS = {"text": {"min_freq": 2, "input": "auto"}, "tagging": {"min_freq": 1}, "series": {},
                     "forecast": {"window": 30, "horizon": 1}}
_MODEL_CLASSES = {"text": SequenceClassifier, "series": SequenceClassifier, "tagging": SequenceTagger,
                  "forecast": Forecaster}


def resolved_model_options(kind: str, options: dict) -> dict:
    """Every model option the kind reads, the given ones and the defaults of the rest (for
    run.toml: a rerun must not depend on the installed version's defaults)."""
    import inspect

    sig = inspect.signature(_MODEL_CLASSES[kind]).parameters
    out = dict(_ENCODER_DEFAULTS[kind])
    for key in _MODEL_KEYS[kind]:
        if key == "layer_options":
            continue
        p = sig.get(key)
        if p is not None and p.default is not inspect.Parameter.empty:
            out[key] = list(p.default) if isinstance(p.default, tuple) else p.default
    if kind == "tagging":
        out["chars"] = True
    out.update({k: v for k, v in options.items() if k != "layer_options"})
    return out


def monitorable(kind: str, tags=()) -> tuple:
    """The dev metrics a run of this kind reports (what --monitor may name)."""
    if kind == "forecast":
        return ("mae", "rmse", "rmse_step1", "loss")
    if kind == "tagging":
        return ("accuracy", "macro_f1", "loss") + (("span_f1",) if bio_tags(tags) else ())
    return ("accuracy", "macro_f1", "loss")


SMALL_DEV = 100  # dev units (examples; tokens for tagging) below which epochs cannot be told apart
MIN_STEPS = 600  # optimizer steps a fixed budget gives at least (a few dozen examples make few steps per epoch)


def selection_defaults(kind: str, records: dict, tags, given: dict, epochs: int,
                       steps_per_epoch: int = 1) -> Tuple[dict, List[str]]:
    """What a run monitors and which weights it ends on, where the user (or a preset) did not say:
    ``(TrainConfig updates, header lines saying why)``.

    - BIO/IOB tag sets: the dev metric is entity span F1, not token accuracy (on NER data, where
      most tokens are O, accuracy can rise while entities are lost).
    - A dev split too small to select on (fewer than :data:`SMALL_DEV` examples, or tokens for
      tagging: the accuracy's standard error is then over 0.05, wider than the differences
      between epochs): a fixed budget, no early stopping, ending on the last weights. The
      budget is the configured epochs, raised (unless epochs were given) to at least
      :data:`MIN_STEPS` optimizer steps; the learning rate follows a cosine schedule (unless
      one was given): the plateau schedule, like early stopping, would read the dev split.
    """
    updates, notes = {}, []
    if kind == "tagging" and "monitor" not in given and bio_tags(tags):
        updates.update(monitor="span_f1", maximize=True)
        notes.append("selection: BIO tags, so the dev metric is entity span F1 (--monitor to change)")
    dev = records.get("dev") or []
    size = sum(len(words) for words, _ in dev) if kind == "tagging" else len(dev)
    unit = "tokens" if kind == "tagging" else "examples"
    if dev and size < SMALL_DEV and "select" not in given and "patience" not in given:
        if "epochs" not in given:
            epochs = max(epochs, -(-MIN_STEPS // max(steps_per_epoch, 1)))
        updates.update(select="last", patience=epochs, epochs=epochs)
        schedule = ""
        if "schedule" not in given:
            updates["schedule"] = "cosine"
            schedule = ", a cosine learning-rate schedule"
        notes.append(f"selection: the dev split has {size} {unit}, too few to select on: a fixed budget of {epochs} "
                     f"epochs ({epochs * steps_per_epoch} steps){schedule}, ending on the last weights (--select best "
                     f"or --patience to change)")
    return updates, notes


SHORT_TEXT_TOKENS = 3.0  # texts averaging at most this many words read characters
UNSEEN_SHARE = 0.3  # ... and so do texts whose dev words are this often not in the training vocabulary


def text_input(records: dict, min_freq: int = 2) -> Tuple[str, str]:
    """What a text classifier reads when ``input="auto"``: ``("chars" or "words", reason)``.

    Characters where words are too few to learn from: texts of at most
    :data:`SHORT_TEXT_TOKENS` words on average (names, codes, single words), or dev texts whose
    words are mostly unknown to the training vocabulary (at least :data:`UNSEEN_SHARE` of
    them: a word model would see little but ``<unk>``). Words otherwise; ``"both"`` (words plus
    each word's characters) only when asked for.

    >>> text_input({"train": [("Anna", "F"), ("Otto", "M")], "dev": [("Eva", "F")]})[0]
    'chars'
    """
    from collections import Counter

    from .data.text import tokenize

    counts = Counter(w for t, _ in records["train"] for w in tokenize(t))
    per_text = sum(counts.values()) / max(len(records["train"]), 1)
    dev = [w for t, _ in records.get("dev") or [] for w in tokenize(t)]
    unseen = sum(counts[w] < min_freq for w in dev) / len(dev) if dev else 0.0
    stats = f"texts average {per_text:.1f} words; {unseen:.0%} of dev words are not in the training vocabulary"
    if per_text <= SHORT_TEXT_TOKENS or unseen >= UNSEEN_SHARE:
        return "chars", f"input: characters ({stats}; --input words to change)"
    return "words", f"input: words ({stats}; --input chars or both to change)"


def tagger_crf(records: dict) -> Tuple[bool, str]:
    """Whether a tagger decodes through a CRF when ``crf="auto"``: ``(crf, reason)``. Yes for
    BIO/IOB tag sets, whose spans need consistent transitions (an ``I-X`` only after ``B-X`` or
    ``I-X``) that independent per-token softmaxes do not learn from small data (Lample et al.
    2016); no for other tag sets (part-of-speech tags), where it costs time and adds little.

    >>> tagger_crf({"train": [(["Ada", "wrote"], ["B-PER", "O"])]})[0]
    True
    """
    tags = {t for _, ts in records["train"] for t in ts}
    if bio_tags(tags):
        return True, "output: a CRF layer (BIO tags: entity spans need consistent B-/I- transitions; --no-crf to change)"
    return False, "output: a softmax per token (the tags are not BIO spans; --crf to change)"


PATCHED_STEPS = 32  # a series is read in patches so that the RNN takes about this many steps


def series_patch(records: dict) -> Tuple[int, str]:
    """How many consecutive steps the RNN reads at once when ``patch="auto"``: ``(k, reason)``
    with ``k = ceil(median training length / PATCHED_STEPS)``. Long series make long
    recurrences that a few dozen examples cannot train (gradients fade over hundreds of steps);
    read in patches, a series of 250 steps is a sequence of 32.

    >>> series_patch({"train": [(np.zeros((251, 1)), "a"), (np.zeros((240, 1)), "b")]})[0]
    8
    """
    lengths = sorted(len(x) for x, _ in records["train"])
    median = lengths[len(lengths) // 2]
    k = max(1, -(-median // PATCHED_STEPS))
    if k == 1:
        return 1, f"input: series of median length {median}, read step by step (--patch to change)"
    return k, (f"input: series of median length {median}, read in patches of {k} steps ({-(-median // k)} RNN steps; "
               f"--patch to change)")


def _fit_encoder(kind: str, data, options: dict):
    if kind == "tagging":
        tagset = sorted({t for split in (data.dev, data.test) for _, ts in split for t in ts})
        return TaggingEncoder.fit(data.train, min_freq=options.get("min_freq", 1), tagset=tagset)
    if kind == "text":
        return TextEncoder.fit(data.train, min_freq=options.get("min_freq", 2), input=options.get("input", "words"))
    if kind == "series":
        return SeriesEncoder.fit(data.train)
    return ForecastEncoder.fit(data.series[: data.dev_start], window=options.get("window", 30),
                               horizon=options.get("horizon", 1))


def _make_model(kind: str, encoder, options: dict) -> nn.Module:
    opts = {k: v for k, v in options.items() if k in _MODEL_KEYS[kind]}
    if kind == "text":
        chars = len(encoder.chars) if encoder.input == "both" else None
        return SequenceClassifier(num_classes=len(encoder.labels), vocab_size=len(encoder.tokens),
                                  char_vocab_size=chars, **opts)
    if kind == "series":
        return SequenceClassifier(num_classes=len(encoder.labels), input_size=encoder.channels, **opts)
    if kind == "tagging":
        chars = opts.pop("chars", True)
        return SequenceTagger(num_tags=len(encoder.tags), vocab_size=len(encoder.words),
                              char_vocab_size=len(encoder.chars) if chars else None, unk_idx=encoder.words.unk_id,
                              **opts)
    return Forecaster(channels=encoder.channels, horizon=encoder.horizon, **opts)


def split_records(task: str, data, options: dict) -> dict:
    """``{"train", "dev", "test"}`` records; a forecast series becomes windows whose targets
    lie in each split's time range (inputs may reach back into the previous one)."""
    if task != "forecast":
        return {"train": data.train, "dev": data.dev, "test": data.test}
    if not isinstance(data, SeriesSplits):
        raise TypeError(f"forecasting needs a SeriesSplits, got {type(data).__name__}")
    window, horizon = options.get("window", 30), options.get("horizon", 1)
    bounds = {"train": (0, data.dev_start), "dev": (data.dev_start, data.test_start),
              "test": (data.test_start, len(data.series))}
    return {k: list(zip(*make_windows(data.series, window, horizon, start=a, stop=b))) for k, (a, b) in bounds.items()}


def encode_all(encoder, records) -> list:
    return [encoder.encode(r, i) for i, r in enumerate(records)]


def _length(ex) -> int:
    return len(ex["words"]) if "words" in ex else len(ex["x"])


def batches_of(encoder, examples: list, batch_size: int = 64, device="cpu"):
    for idx in bucket_batches([_length(e) for e in examples], batch_size, shuffle=False):
        yield encoder.collate([examples[i] for i in idx]).to(device)


# -- checking labels before any training or scoring ------------------------------------------
def check_known_labels(records, known, what: str, tagging: bool = False) -> None:
    """Every label (or tag) of ``records`` is in ``known``, else ValueError naming ``file:line``."""
    from .data import where

    known = set(known)
    for i, (_, label) in enumerate(records):
        labels = (label or []) if tagging else ([] if label is None else [str(label)])
        for j, lab in enumerate(labels):
            if lab not in known:
                shown = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
                at = where(records, i, j if tagging else None)  # a tag: its token's own line
                raise ValueError(f"{at}: {'tag' if tagging else 'label'} {lab!r} of the {what} "
                                 f"data is not one the model knows ({shown})")


def check_labels(task: str, data) -> None:
    """Classification: dev and test labels must occur in the training split (found before
    training, not after it)."""
    if task != "classify" or not hasattr(data, "dev"):
        return
    known = {str(label) for _, label in data.train}
    for what, records in (("dev", data.dev), ("test", data.test)):
        check_known_labels(records, known, what)


# -- evaluation --------------------------------------------------------------------------------
def _predict_all(run: Run, examples: list, device="cpu"):
    """Predictions for every example, in the examples' order."""
    model = run.model.eval()
    out: List = [None] * len(examples)
    with torch.no_grad():
        for batch in batches_of(run.encoder, examples, device=device):
            pred = model.predict(batch)
            if run.kind in ("text", "series"):
                pred = pred[0]
            for k, i in enumerate(batch.index.tolist()):
                if run.kind == "tagging":
                    out[i] = pred[k, : int(batch.lengths[k])].tolist()
                elif run.kind == "forecast":
                    out[i] = pred[k].float().cpu().numpy()  # (bfloat16 under --precision bf16)
                else:
                    out[i] = int(pred[k])
    return out


def predictions(run: Run, records: list, device="cpu") -> Tuple[list, list]:
    """``(encoded examples, predictions)`` of ``run`` on ``records``: what :func:`score` and
    :func:`class_breakdown` read (pass it to both to predict once)."""
    examples = encode_all(run.encoder, records)
    return examples, _predict_all(run, examples, device)


def _class_ids(run: Run, examples: list, preds: list) -> Tuple[list, list]:
    """Classification and tagging: predicted and gold class (tag) ids, one per example (token)."""
    if run.kind == "tagging":
        return [t for p in preds for t in p], [t for ex in examples for t in ex["tags"]]
    return preds, [ex["label"] for ex in examples]


def score(run: Run, records: list, device="cpu", predicted: Optional[Tuple[list, list]] = None) -> Dict[str, float]:
    """Metrics of ``run`` on labelled records (accuracy / macro-F1 / span-F1 / MAE / RMSE);
    ``predicted``: :func:`predictions` already made on them."""
    examples, preds = predicted or predictions(run, records, device)
    if run.kind in ("text", "series", "tagging"):
        flat_p, flat_g = _class_ids(run, examples, preds)
        metrics = {"accuracy": accuracy(flat_p, flat_g), "macro_f1": macro_f1(flat_p, flat_g)}
        tags = run.encoder.tags if run.kind == "tagging" else None
        if tags is not None and bio_tags(tags.itos):
            metrics["span_f1"] = span_f1([tags.decode(p) for p in preds], [tags.decode(ex["tags"]) for ex in examples])
        return metrics
    scaler = run.encoder.scaler
    pred = np.stack([scaler.inverse(p) for p in preds])  # (N, K, C) in original units
    gold = np.stack([y for _, y in records])
    last = np.stack([x[-1:] for x, _ in records]).repeat(gold.shape[1], 1)  # naive: repeat the last value
    err, naive = pred - gold, last - gold
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
            "rmse_step1": float(np.sqrt((err[:, 0] ** 2).mean())),
            "naive_mae": float(np.abs(naive).mean()), "naive_rmse": float(np.sqrt((naive ** 2).mean())),
            "naive_rmse_step1": float(np.sqrt((naive[:, 0] ** 2).mean()))}


# -- building, training, loading ---------------------------------------------------------------
def build_run(task: str, data, model_options: Optional[dict] = None, seed: int = 0) -> Tuple[Run, dict]:
    """Fit preprocessing on the training split and build a fresh model; returns the run and
    the split records (``{"train": ..., "dev": ..., "test": ...}``)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}")
    options = dict(model_options or {})
    records = split_records(task, data, options)
    if not records["train"]:
        raise ValueError("the training split is empty")
    kind = _kind(task, records["train"])
    notes = []
    if kind == "text" and options.get("input", "auto") == "auto":
        options["input"], note = text_input(records, options.get("min_freq", 2))
        notes.append(note)
    if kind == "series" and options.get("patch", "auto") == "auto":
        options["patch"], note = series_patch(records)
        notes.append(note)
    if kind == "tagging" and options.get("crf", "auto") == "auto":
        options["crf"], note = tagger_crf(records)
        notes.append(note)
    encoder = _fit_encoder(kind, data, options)
    torch.manual_seed(seed)
    layers = " ".join(map(str, options.get("layers") or ())) or "the default layers"
    check_model(lambda: _make_model(kind, encoder, options), f"--layers {layers}", training=True,
                way_out="use smaller --layers (hidden sizes, fewer layers) or a smaller vocabulary (--min-freq)")
    model = _make_model(kind, encoder, options)
    config = {"birnn_version": __version__, "task": task, "kind": kind,
              "model": {"class": type(model).__name__, "config": model.config},
              "preprocessing": {"class": type(encoder).__name__, **encoder.to_dict()},
              "data": dict(getattr(data, "info", {})), "notes": notes}
    return Run(task, kind, encoder, model, config), records


def mean_loss(run: Run, examples: list, device="cpu") -> float:
    """The model's own training loss (``model.loss``) over encoded examples, per counted item."""
    model = run.model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches_of(run.encoder, examples, device=device):
            loss_sum, n = model.loss(batch)
            total, count = total + float(loss_sum), count + int(n)
    return total / max(count, 1)


def train_run(run: Run, records: dict, train: TrainConfig, run_dir, *, resume: bool = False,
              log: Callable[[str], None] = print, callbacks=()) -> dict:
    """Train with early stopping on dev; returns best dev metrics (the model ends on them).
    Each epoch's dev metrics include ``loss`` (the training loss on dev, for learning curves)."""
    from .data import where

    examples = encode_all(run.encoder, records["train"])
    if train.max_length:
        examples, changed = clip_examples(examples, train.max_length, split=run.kind == "tagging")
        if changed:
            log(f"note: {changed} training sequence(s) longer than --max-length {train.max_length} "
                + ("split into pieces" if run.kind == "tagging" else f"cut to their first {train.max_length} steps"))
    dev = records["dev"] or records["train"]
    dev_examples = encode_all(run.encoder, dev)

    def evaluate(model):
        return {**score(run, dev, device=train.device), "loss": mean_loss(run, dev_examples, train.device)}

    config = dict(run.config, train=asdict(train))
    trainer = Trainer(run.model, examples, run.encoder.collate, [_length(e) for e in examples], evaluate, train,
                      run_dir, config, log=log, callbacks=callbacks, where=lambda i: where(records["train"], i))
    return trainer.fit(resume=resume)




WEIGHTS = ("final", "best", "latest")


def load_run(run_dir, *, weights: str = "final") -> Run:
    """A trained run from its directory: preprocessing, model and weights — ``"final"``: those
    the run ended on (``model.safetensors``; a run that has not finished has none, and says how
    to finish it), ``"best"``: the best dev epoch so far, ``"latest"``: the latest checkpoint."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    version = config.get("birnn_version")
    if version is None or version.split(".")[0] != __version__.split(".")[0]:
        raise CheckpointError(f"{run_dir} was written by birnn {version}; this is birnn {__version__}")
    try:
        pre = dict(config["preprocessing"])
        encoder = ENCODERS[pre.pop("class")].from_dict(pre)
        spec = config["model"]
        check_model(lambda: MODELS[spec["class"]](**spec["config"]), f"{run_dir / 'config.json'}", training=False,
                    way_out="was config.json edited? The run's own file names the model its weights fit")
        model = MODELS[spec["class"]](**spec["config"])
    except MemoryNeeded:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{run_dir / 'config.json'}: not a configuration this birnn can build ({e!r})") from None
    if weights == "latest":
        from .train import load_checkpoint

        ckpt = load_checkpoint(run_dir)
        if ckpt is None:
            raise CheckpointError(f"{run_dir} has no checkpoint yet")
        state, source = ckpt["model"], Path(ckpt["path"]) / "model.safetensors"
    else:
        source = run_dir / ("model.safetensors" if weights == "final" else "best.safetensors")
        if not source.exists():
            if weights == "final":
                raise CheckpointError(f"{run_dir} has no model.safetensors: the run has not finished; "
                                      f"`birnn resume {run_dir}` finishes it (or ask for the best or latest weights)")
            raise CheckpointError(f"{run_dir} has no best.safetensors yet (no epoch has ended)")
        state = load_weights(source)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{source}: does not fit the model in config.json ({str(e).splitlines()[0]})") from None
    return Run(config["task"], config["kind"], encoder, model.eval(), config)


def class_scores(run: Run, records: list, device="cpu") -> List[Dict[str, float]]:
    """Classification runs: each record's class probabilities, ``{label: p}`` in label order."""
    if run.kind not in ("text", "series"):
        raise ValueError(f"class scores are for classification runs, this one is {run.kind}")
    examples = encode_all(run.encoder, records)
    out: List = [None] * len(examples)
    model = run.model.eval()
    with torch.no_grad():
        for batch in batches_of(run.encoder, examples, device=device):
            _, probs = model.predict(batch)
            for k, i in enumerate(batch.index.tolist()):
                out[i] = dict(zip(run.encoder.labels.itos, probs[k].tolist()))
    return out


def evaluate_run(run: Run, records: list, device="cpu", predicted: Optional[Tuple[list, list]] = None
                 ) -> Dict[str, float]:
    return score(run, records, device, predicted)


def class_breakdown(run: Run, records: list, device="cpu", predicted: Optional[Tuple[list, list]] = None
                    ) -> Optional[dict]:
    """Classification and tagging: ``{"labels", "per_class": {label: precision, recall, f1,
    support}, "confusion": rows gold, columns predicted}`` over labelled ``records`` (tokens
    for tagging), and for BIO tags ``"entities"``: entity-level precision, recall, F1 and
    support per type and averaged, as seqeval reports them (:func:`birnn.train.metrics.entity_report`);
    None for forecasting. ``predicted``: :func:`predictions` already made."""
    if run.kind == "forecast":
        return None
    examples, preds = predicted or predictions(run, records, device)
    flat_p, flat_g = _class_ids(run, examples, preds)
    vocab = run.encoder.tags if run.kind == "tagging" else run.encoder.labels
    labels = list(range(len(vocab)))
    out = {"labels": list(vocab.itos),
           "per_class": dict(zip(vocab.itos, class_report(flat_p, flat_g, labels).values())),
           "confusion": confusion_matrix(flat_p, flat_g, labels)}
    if run.kind == "tagging" and bio_tags(vocab.itos):
        out["entities"] = entity_report([vocab.decode(p) for p in preds], [vocab.decode(ex["tags"]) for ex in examples])
    return out


def predict_records(run: Run, records: list, device="cpu") -> List:
    """Human-readable predictions: labels, tag sequences, or forecast arrays (original units)."""
    examples = encode_all(run.encoder, records)
    preds = _predict_all(run, examples, device)
    if run.kind == "tagging":
        return [run.encoder.tags.decode(p) for p in preds]
    if run.kind in ("text", "series"):
        return [run.encoder.labels.itos[p] for p in preds]
    return [run.encoder.scaler.inverse(p) for p in preds]


PREDICT_FORMATS = {  # what each kind of run reads for predict, as a user would name it
    "text": (("text", "lines"), "a .csv/.tsv with a text column, or one text per line (.txt)"),
    "series": (("ts",), "a .ts file (UCR/UEA)"),
    "tagging": (("conllu", "wordtag", "columns", "tokens", "lines"),
                "a .conllu file, a .txt of word/TAG tokens, .bio/.conll columns, or one tokenised sentence per line"),
    "forecast": (("series",), "a .csv/.tsv series"),
}


def predict_format(run: Run, path: str, fmt: Optional[str]) -> str:
    """The format of ``path`` for this run, or a ValueError saying what the run reads."""
    from .data import infer_format

    if fmt is None:
        try:
            fmt = infer_format(path, "forecast" if run.kind == "forecast" else None)
        except ValueError:
            fmt = "lines"  # no known extension: one item per line
        if fmt == "wordtag" and run.kind == "text":
            fmt = "lines"  # .txt: one text per line
    allowed, what = PREDICT_FORMATS[run.kind]
    if fmt not in allowed:
        raise ValueError(f"{path}: a {run.task} run ({run.kind}) reads {what}, not {fmt} input (--format to override)")
    return fmt


def read_for_evaluation(run: Run, path, fmt: Optional[str] = None) -> list:
    """The labelled records in ``path`` that ``run`` is scored on (``fmt``: a format of the
    run's task, default from the extension): every label or tag one the model knows (else
    ValueError naming ``file:line``); a forecast series becomes its windows."""
    from .data import SeriesSplits, read_source_file

    source = dict(run.config.get("source", {}), format=fmt)
    records = read_source_file(run.task, path, source, channels=run.encoder.channels if run.kind == "series" else None)
    if len(records) == 0:
        raise ValueError(f"{path}: no records to evaluate")
    if run.kind in ("text", "series"):
        check_known_labels(records, run.encoder.labels.itos, str(path))
    elif run.kind == "tagging":
        check_known_labels(records, run.encoder.tags.itos, str(path), tagging=True)
    if run.task == "forecast":
        enc = run.encoder
        if len(records) < enc.window + enc.horizon:
            raise ValueError(f"{path}: {len(records)} values; scoring a forecast needs at least window + horizon = "
                             f"{enc.window} + {enc.horizon} = {enc.window + enc.horizon} (one window and its "
                             f"targets)")
        records = split_records("forecast", SeriesSplits(records, 0, 0), {"window": enc.window,
                                                                           "horizon": enc.horizon})["test"]
    return records


def read_for_prediction(run: Run, path: str, fmt: Optional[str] = None) -> list:
    """The unlabelled records in ``path`` that ``run`` predicts on (``fmt``: one of the run's
    :data:`PREDICT_FORMATS`, default from the extension), for :func:`predict_records`."""
    from .data import read_columns, read_conllu, read_lines, read_series_csv, read_text_csv, read_ts

    fmt = predict_format(run, path, fmt)
    source = run.config.get("source", {})
    if fmt == "text":
        return [(t, None) for t, _ in read_text_csv(path, text_column=source.get("text_column"), require_labels=False)]
    if fmt == "ts":
        return [(x, None) for x, _ in read_ts(path, channels=run.encoder.channels)]
    if fmt == "conllu":
        return [(w, None) for w, _ in read_conllu(path, require_tags=False)]
    if fmt == "columns":
        return [(w, None) for w, _ in read_columns(path)]
    if fmt == "series":
        series = read_series_csv(path, source.get("columns"))
        W = run.encoder.window
        if len(series) < W:
            raise ValueError(f"{path}: {len(series)} values, the model needs a window of {W}")
        return [(series[-W:], None)]
    lines = read_lines(path)
    if run.kind == "text":
        return [(line, None) for line in lines]
    # one sentence per line: tokens, or word/TAG tokens
    return [([t.rpartition("/")[0] or t if fmt == "wordtag" else t for t in line.split()], None) for line in lines]
