"""A run's lifecycle over any :class:`~birnn.app.tasks.task.Task`: build (split, choose, fit the
encoder, build the model), train, load, predict, score, read files for evaluation and
prediction. Nothing here branches on the kind of run: each step asks the run's task."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from ... import __version__
from ...data import bucket_batches
from ...data.encoding import ENCODERS, clip_examples
from ...models import MODELS
from ...train import TrainConfig, Trainer, load_config, load_weights
from ...train.checkpoint import CheckpointError
from ...train.memory import MemoryNeeded, check_model
from .embeddings import apply_embeddings, read_embeddings
from .task import KINDS, Run, Task, task_of

__all__ = ["MIN_STEPS", "SMALL_DEV", "TASKS", "WEIGHTS", "batches_of", "build_run", "check_labels", "class_breakdown",
           "class_scores", "default_monitor", "encode_all", "evaluate_run", "load_run", "mean_loss", "monitorable", "predict_format",
           "predict_records", "predictions", "read_for_evaluation", "read_for_prediction", "resolved_model_options",
           "score", "selection_defaults", "split_records", "task_for", "train_run"]

TASKS = ("classify", "tag", "forecast")
SMALL_DEV = 100  # dev units (examples; tokens for tagging) below which epochs cannot be told apart
MIN_STEPS = 600  # optimizer steps a fixed budget gives at least (a few dozen examples make few steps per epoch)
WEIGHTS = ("final", "best", "latest")


def task_for(task: str, train: list) -> Task:
    """The :class:`Task` of a command-line task and its training records (classify reads text
    or series, as its records hold)."""
    if task == "classify":
        return KINDS["text" if isinstance(train[0][0], str) else "series"]
    return _task_of_name(task)


def _task_of_name(task: str) -> Task:
    """The task of a command-line name where the records do not matter (they do for classify
    only through its encoder, not through splitting)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}")
    return next(t for t in KINDS.values() if t.task == task)


def default_monitor(task: str) -> str:
    """The dev metric a run of ``task`` selects on unless told (accuracy; forecasts: MAE)."""
    return _task_of_name(task).default_monitor


def resolved_model_options(kind: str, options: dict) -> dict:
    """Every model option the kind reads, the given ones and the defaults of the rest."""
    return task_of(kind).resolved_options(options)


def monitorable(kind: str, tags=()) -> tuple:
    """The dev metrics a run of this kind reports (what --monitor may name)."""
    return task_of(kind).monitorable(tags)


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
    impl = task_of(kind)
    updates, notes = {}, []
    if "monitor" not in given and "span_f1" in impl.monitorable(tags):
        updates.update(monitor="span_f1", maximize=True)
        notes.append("selection: BIO tags, so the dev metric is entity span F1 (--monitor to change)")
    dev = records.get("dev") or []
    size = impl.dev_size(dev)
    if dev and size < SMALL_DEV and "select" not in given and "patience" not in given:
        if "epochs" not in given:
            epochs = max(epochs, -(-MIN_STEPS // max(steps_per_epoch, 1)))
        updates.update(select="last", patience=epochs, epochs=epochs)
        schedule = ""
        if "schedule" not in given:
            updates["schedule"] = "cosine"
            schedule = ", a cosine learning-rate schedule"
        notes.append(f"selection: the dev split has {size} {impl.unit}, too few to select on: a fixed budget of "
                     f"{epochs} epochs ({epochs * steps_per_epoch} steps){schedule}, ending on the last weights "
                     f"(--select best or --patience to change)")
    return updates, notes


def split_records(task: str, data, options: dict) -> dict:
    """``{"train", "dev", "test"}`` records (a forecast series: its windows)."""
    return _task_of_name(task).split_records(data, options)


def encode_all(encoder, records) -> list:
    return [encoder.encode(r, i) for i, r in enumerate(records)]


def length(example: dict) -> int:
    """Steps of an encoded example (what batches are bucketed by): its words, or its steps."""
    return len(example["words"]) if "words" in example else len(example["x"])


def batches_of(encoder, examples: list, batch_size: int = 64, device="cpu"):
    """Batches of encoded ``examples`` in length buckets, in a fixed order (for prediction)."""
    for idx in bucket_batches([length(e) for e in examples], batch_size, shuffle=False):
        yield encoder.collate([examples[i] for i in idx]).to(device)


def check_labels(task: str, data) -> None:
    """Classification: dev and test labels must occur in the training split (found before
    training, not after it)."""
    if hasattr(data, "dev") and data.train:  # (no training data: build_run says so)
        task_for(task, data.train).check_splits(data)


# -- building, training, loading ---------------------------------------------------------------
def build_run(task: str, data, model_options: Optional[dict] = None, seed: int = 0) -> Tuple[Run, dict]:
    """Fit preprocessing on the training split and build a fresh model; returns the run and
    the split records (``{"train": ..., "dev": ..., "test": ...}``)."""
    options = dict(model_options or {})
    records = split_records(task, data, options)  # (refuses an unknown task)
    if not records["train"]:
        raise ValueError("the training split is empty")
    impl = task_for(task, records["train"])
    notes = impl.auto_options(records, options)
    encoder = impl.fit_encoder(data, options)
    vectors = read_embeddings(impl, encoder, options)
    torch.manual_seed(seed)
    layers = " ".join(map(str, options.get("layers") or ())) or "the default layers"
    check_model(lambda: impl.make_model(encoder, options), f"--layers {layers}", training=True,
                way_out="use smaller --layers (hidden sizes, fewer layers) or a smaller vocabulary (--min-freq)")
    model = impl.make_model(encoder, options)
    chosen = {}
    if vectors is not None:
        notes.append(apply_embeddings(impl, encoder, model, vectors, options, seed))
        chosen = {impl.embedding_key: vectors.dim, "embeddings_sha256": vectors.sha256}
    config = {"birnn_version": __version__, "task": task, "kind": impl.kind,
              "model": {"class": type(model).__name__, "config": model.config},
              "preprocessing": {"class": type(encoder).__name__, **encoder.to_dict()},
              "data": dict(getattr(data, "info", {})), "notes": notes, "chosen": chosen}
    return Run(task, impl.kind, encoder, model, config), records


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
    from ...data import where

    impl = run.impl
    examples = encode_all(run.encoder, records["train"])
    if train.max_length:
        examples, changed = clip_examples(examples, train.max_length, split=impl.split_long())
        if changed:
            log(f"note: {changed} training sequence(s) longer than --max-length {train.max_length} "
                + ("split into pieces" if impl.split_long() else f"cut to their first {train.max_length} steps"))
    dev = records["dev"] or records["train"]
    dev_examples = encode_all(run.encoder, dev)

    def evaluate(model):
        return {**score(run, dev, device=train.device), "loss": mean_loss(run, dev_examples, train.device)}

    config = dict(run.config, train=asdict(train))
    trainer = Trainer(run.model, examples, run.encoder.collate, [length(e) for e in examples], evaluate, train,
                      run_dir, config, log=log, callbacks=callbacks, where=lambda i: where(records["train"], i))
    return trainer.fit(resume=resume)


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
        task_of(config["kind"])
        check_model(lambda: MODELS[spec["class"]](**spec["config"]), f"{run_dir / 'config.json'}", training=False,
                    way_out="was config.json edited? The run's own file names the model its weights fit")
        model = MODELS[spec["class"]](**spec["config"])
    except MemoryNeeded:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{run_dir / 'config.json'}: not a configuration this birnn can build ({e!r})") from None
    if weights == "latest":
        from ...train import load_checkpoint

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


# -- predicting and scoring --------------------------------------------------------------------
def _predict_all(run: Run, examples: list, device="cpu") -> list:
    """Predictions for every example, in the examples' order."""
    model, impl = run.model.eval(), run.impl
    out: List = [None] * len(examples)
    with torch.no_grad():
        for batch in batches_of(run.encoder, examples, device=device):
            pred = model.predict(batch)
            for k, i in enumerate(batch.index.tolist()):
                out[i] = impl.collect(pred, batch, k)
    return out


def predictions(run: Run, records: list, device="cpu") -> Tuple[list, list]:
    """``(encoded examples, predictions)`` of ``run`` on ``records``: what :func:`score` and
    :func:`class_breakdown` read (pass it to both to predict once)."""
    examples = encode_all(run.encoder, records)
    return examples, _predict_all(run, examples, device)


def score(run: Run, records: list, device="cpu", predicted: Optional[Tuple[list, list]] = None) -> Dict[str, float]:
    """Metrics of ``run`` on labelled records (accuracy / macro-F1 / span-F1 / MAE / RMSE);
    ``predicted``: :func:`predictions` already made on them."""
    examples, preds = predicted or predictions(run, records, device)
    return run.impl.score(run, examples, preds, records)


def evaluate_run(run: Run, records: list, device="cpu", predicted: Optional[Tuple[list, list]] = None
                 ) -> Dict[str, float]:
    return score(run, records, device, predicted)


def class_scores(run: Run, records: list, device="cpu") -> List[Dict[str, float]]:
    """Classification runs: each record's class probabilities, ``{label: p}`` in label order."""
    if not run.impl.classifies:
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


def class_breakdown(run: Run, records: list, device="cpu", predicted: Optional[Tuple[list, list]] = None
                    ) -> Optional[dict]:
    """Classification and tagging: ``{"labels", "per_class": {label: precision, recall, f1,
    support}, "confusion": rows gold, columns predicted}`` over labelled ``records`` (tokens
    for tagging), and for BIO tags ``"entities"``: entity-level precision, recall, F1 and
    support per type and averaged, as seqeval reports them (:func:`birnn.train.metrics.entity_report`);
    None for forecasting. ``predicted``: :func:`predictions` already made."""
    if type(run.impl).breakdown is Task.breakdown:  # (forecasting: no classes)
        return None
    examples, preds = predicted or predictions(run, records, device)
    return run.impl.breakdown(run, examples, preds)


def predict_records(run: Run, records: list, device="cpu") -> List:
    """Human-readable predictions: labels, tag sequences, or forecast arrays (original units)."""
    examples = encode_all(run.encoder, records)
    return run.impl.decode(run, _predict_all(run, examples, device))


# -- files -------------------------------------------------------------------------------------
def predict_format(run: Run, path: str, fmt: Optional[str]) -> str:
    """The format of ``path`` for this run, or a ValueError saying what the run reads."""
    impl = run.impl
    fmt = impl.infer_format(path) if fmt is None else fmt
    if fmt not in impl.formats:
        raise ValueError(f"{path}: a {run.task} run ({run.kind}) reads {impl.formats_said}, not {fmt} input "
                         "(--format to override)")
    return fmt


def read_for_evaluation(run: Run, path, fmt: Optional[str] = None) -> list:
    """The labelled records in ``path`` that ``run`` is scored on (``fmt``: a format of the
    run's task, default from the extension): every label or tag one the model knows (else
    ValueError naming ``file:line``); a forecast series becomes its windows."""
    from ...data import read_source_file

    impl = run.impl
    source = dict(run.config.get("source", {}), format=fmt)
    records = read_source_file(run.task, path, source, channels=impl.read_channels(run))
    if len(records) == 0:
        raise ValueError(f"{path}: no records to evaluate")
    impl.check_records(run, records, str(path))
    return impl.evaluation_records(run, records, path)


def read_for_prediction(run: Run, path: str, fmt: Optional[str] = None) -> list:
    """The unlabelled records in ``path`` that ``run`` predicts on (``fmt``: one of the run's
    formats, default from the extension), for :func:`predict_records`."""
    return run.impl.read_for_prediction(run, path, predict_format(run, path, fmt))
