"""One training run, from a resolved configuration (:func:`birnn.config.resolve`) to a finished
run directory: build the preprocessing and the model, pick what the run monitors, train, score
the test split, write ``metrics.json``. ``birnn train`` / ``birnn resume`` and :func:`birnn.fit`
both run it; the command line only prints around it.

A run directory holds ``run.toml`` (every resolved setting, so ``birnn train --config`` reruns
it), ``config.json`` and the weights (:mod:`birnn.train.checkpoint`), ``log.jsonl``/``log.csv``
and ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Optional, Tuple

from .config import UsageError, dump_toml

__all__ = ["Finished", "apply_threads", "batches_per_epoch", "check_unchanged", "header", "run_dir_for", "train",
           "train_config"]


@dataclass
class Finished:
    """What a finished run hands back: the run (preprocessing + model on its final weights), its
    split records, the metrics it wrote (``dev_*`` of the epoch it ended on, ``test_*``), the
    epochs' log rows, the training configuration, the data and the run directory."""

    run: object  # birnn.tasks.Run
    records: dict
    metrics: dict
    history: list
    train: object  # birnn.train.TrainConfig
    data: object
    run_dir: Path


def train_config(conf: dict, progress: bool):
    """The :class:`birnn.train.TrainConfig` of a resolved configuration's ``train`` section."""
    import torch

    from ..train import TrainConfig

    from .tasks import default_monitor

    t = {k: v for k, v in conf["train"].items() if k != "baseline"}  # (the run's, not the trainer's)
    t.setdefault("monitor", default_monitor(conf["task"]))
    t.setdefault("maximize", t["monitor"] not in ("mae", "rmse", "loss"))
    if t.get("device", "auto") == "auto":
        t["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(t) - names)
    if unknown:
        raise UsageError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return TrainConfig(**t, progress=progress) if "progress" not in t else TrainConfig(**t)


def run_dir_for(conf: dict, out=None) -> Path:
    """``out``, or ``runs/TASK-NAME-TIME``."""
    if out:
        return Path(out)
    src = conf["source"]
    name = src.get("dataset") or Path(src["train"]).stem
    return Path("runs") / f"{conf['task']}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def batches_per_epoch(records, train) -> Tuple[int, int]:
    """(batches, optimizer steps) in one epoch of the training split."""
    batches = -(-len(records["train"]) // train.batch_size)
    return batches, -(-batches // train.accumulate)


def header(run, records, resolved: dict, train, run_dir: Path) -> str:
    """The run header: what trains on what, and every setting that decides the result."""
    import torch

    n_params = sum(p.numel() for p in run.model.parameters())
    src = resolved["source"]
    sizes = ", ".join(f"{k} {len(v)}" for k, v in records.items())
    model = resolved["model"]
    layer = ", ".join(f"{k} {v}" for k, v in resolved["layer"].items())
    shown = ", ".join(f"{k} {(' '.join(map(str, v)) or 'none') if isinstance(v, list) else v}"
                      for k, v in model.items())
    per_epoch, steps_per_epoch = batches_per_epoch(records, train)
    steps = steps_per_epoch * train.epochs
    t = train
    return "\n".join([
        f"{resolved['task']}: {type(run.model).__name__} ({n_params:,} parameters); {shown}" + (f"; {layer}" if layer
                                                                                               else ""),
        f"data: {src.get('dataset') or src.get('train')} ({sizes})",
        f"training: {t.epochs} epochs x {per_epoch} batches of {t.batch_size}"
        + (f" (steps of {t.accumulate} batches)" if t.accumulate > 1 else "") + f" = {steps} steps; lr {t.lr:g} "
        f"({t.schedule}" + (f", {t.warmup_steps} warm-up steps" if t.warmup_steps else "") + f"), weight decay "
        f"{t.weight_decay:g}, clip {t.clip_norm:g}; monitor dev {t.monitor}, patience {t.patience}, ends on the "
        f"{'best dev epoch' if t.select == 'best' else 'last epoch'}; seed {t.seed}",
        f"device: {t.device}, {torch.get_num_threads()} threads (kept by resume; another count gives other weights)"
        + (", bfloat16 autocast" if t.precision == "bf16" else "") + f"; run dir {run_dir} (settings in run.toml)",
    ])


def apply_threads(requested: Optional[int]) -> Optional[str]:
    """Set PyTorch's CPU thread count: ``requested``, or its default, never more than the cores
    this process may run on. Returns a note when the request was lowered."""
    import torch

    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # (not on Linux)
        available = os.cpu_count() or 1
    wanted = requested if requested is not None else torch.get_num_threads()
    n = min(wanted, available)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    if requested is not None and requested > available:
        return f"--threads {requested}: this process may run on {available} core(s); using {available}"
    return None


# what a resume may change in run.toml's settings: the time budget and (with a note) the threads
RESUMABLE = (("train", "max_minutes"), ("train", "threads"), ("train", "baseline"))


def check_unchanged(path: Path, resolved: dict) -> None:
    """Refuse to resume a run whose run.toml was edited: a run's settings are fixed once it has
    trained (its checkpoints hold what they made), so the edit would be ignored, or half used."""
    import tomllib

    from .config import load_toml

    if not path.exists():
        return
    written = load_toml(path)
    now = tomllib.loads(dump_toml(resolved))
    diffs = []
    for section in sorted(set(written) | set(now)):
        a, b = written.get(section), now.get(section)
        if not isinstance(a, dict) or not isinstance(b, dict):
            if a != b:
                diffs.append(f"{section} is {a!r} there, the run has {b!r}")
            continue
        for key in sorted(set(a) | set(b)):
            if (section, key) not in RESUMABLE and a.get(key) != b.get(key):
                diffs.append(f"{section}.{key} is {a.get(key)!r} there, the run has {b.get(key)!r}")
    if diffs:
        raise UsageError(f"{path} was edited after the run began ({'; '.join(diffs)}); a run's settings are fixed "
                         f"once it trains: put run.toml back to resume it, or train a new run with the edited "
                         f"settings: birnn train --config {path} --out NEW_DIR")


def run_baseline(run, records: dict, monitor: str, log) -> Optional[dict]:
    """Fit the task's baseline on the run's train split (choosing on dev) and score it on dev
    and test: ``{"name", "seconds", "dev_<metric>", "test_<metric>", ...}``; the header line
    gives its dev score, the run's summary both beside the model's."""
    from .baselines import fit_baseline, score_baseline

    dev = records.get("dev") or records["train"]
    fitted, skipped = fit_baseline(run.impl.baselines, records["train"], dev)
    for line in skipped:
        log(f"baseline: passed over {line}")
    if fitted is None:
        log("baseline: none can run here (pip install 'birnn[baselines]')")
        return None
    out = score_baseline(run, fitted, {"dev": dev, "test": records.get("test") or []})
    value = out.get(f"dev_{monitor}")
    said = f"dev {monitor} {value:.4f}" if isinstance(value, float) else "no dev score"
    log(f"baseline: {fitted.name} on the same split: {said} (fitted in {fitted.seconds:.1f} s; the model's bar; "
        f"--baseline none to skip)")
    return out


def refit_baseline(run, records: list) -> dict:
    """The run's baseline fitted again on its training split (its recorded source, split as
    it was) and scored on labelled ``records``, as :func:`run_baseline` reports it:
    ``{"name", "seconds", "test_<metric>", ...}``, or ``{"unavailable": why}``."""
    from ..data import load_source
    from .baselines import fit_baseline, score_baseline
    from .tasks import split_records

    source = run.config.get("source")
    if not source:
        return {"unavailable": "the run records no data source to refit it on"}
    try:
        data = load_source(run.task, source)
        split = split_records(run.task, data, dict(run.config.get("resolved", {}).get("model", {})))
    except (OSError, ValueError) as e:
        return {"unavailable": f"its training data cannot be read again ({e})"}
    fitted, skipped = fit_baseline(run.impl.baselines, split["train"], split.get("dev") or split["train"])
    if fitted is None:
        return {"unavailable": "; ".join(skipped) or "the task has none"}
    return score_baseline(run, fitted, {"test": records})


def _print(line: str) -> None:
    print(line, flush=True)


def train(conf: dict, run_dir, *, resume: bool = False, log: Callable[[str], None] = _print,
          progress: bool = False) -> Optional[Finished]:
    """Train (or, with ``resume``, finish) the run ``conf`` describes in ``run_dir``; ``log``
    receives the header, the notes and a line per epoch. Under torchrun only rank 0 owns the
    directory and reports: the other ranks return None. A failure before training began leaves
    no half-made run directory; an interrupted run keeps its checkpoints for ``birnn resume``."""
    from ..train import init_from_env
    from ..train.lock import run_lock

    run_dir = Path(run_dir)
    init_from_env()
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 owns the run directory
    made = not run_dir.exists()
    try:
        with run_lock(run_dir) if main_rank else contextlib.nullcontext():
            return _train_locked(conf, run_dir, resume, log if main_rank else (lambda s: None), progress and main_rank,
                                 main_rank)
    except Exception:  # (KeyboardInterrupt is not one: an interrupted run keeps what it wrote)
        if made and main_rank and not (run_dir / "config.json").exists():
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _train_locked(conf: dict, run_dir: Path, resume: bool, log, progress: bool, main_rank: bool):
    import json

    import torch

    from ..data import load_source
    from .tasks import (build_run, check_labels, monitorable, resolved_model_options, score, selection_defaults,
                        train_run)
    from ..train.checkpoint import atomic_write_text, load_checkpoint

    data = load_source(conf["task"], conf["source"])
    check_labels(conf["task"], data)
    model_options = dict(conf["model"])
    if conf["layer"]:
        model_options["layer_options"] = dict(conf["layer"])
    train = train_config(conf, progress=progress)
    if train.max_length and conf["task"] == "forecast":
        raise UsageError("--max-length is for classify and tag runs; a forecast reads windows of --window steps")
    note = apply_threads(train.threads)
    if note:
        log(f"note: {note}")
    # recorded (run.toml, config.json): another count sums in another order, so other weights
    conf["train"]["threads"] = torch.get_num_threads()
    train = replace(train, threads=conf["train"]["threads"])
    try:
        run, records = build_run(conf["task"], data, model_options, seed=train.seed)
    except TypeError as e:
        raise UsageError(f"bad model option: {e}") from None
    tags = run.impl.tags(run)
    updates, selection = selection_defaults(run.kind, records, tags, conf["train"], train.epochs,
                                            batches_per_epoch(records, train)[1])
    train = replace(train, **updates)
    if train.monitor not in monitorable(run.kind, tags):
        raise UsageError(f"--monitor {train.monitor}: a {run.kind} run reports {', '.join(monitorable(run.kind, tags))}")
    run.config["source"] = conf["source"]
    run.config["resolved"] = conf
    model_resolved = {**resolved_model_options(run.kind, conf["model"]), **run.impl.chosen(run),
                      **run.config.get("chosen", {})}
    resolved = {"task": conf["task"], "source": conf["source"], "model": model_resolved, "layer": conf["layer"],
                "train": {**{k: v for k, v in asdict(train).items() if k != "progress"},
                          "baseline": conf["train"].get("baseline", "auto")}}
    if resume:
        check_unchanged(run_dir / "run.toml", resolved)
    elif (run_dir / "config.json").exists() or (run_dir / "latest.json").exists():
        raise UsageError(f"{run_dir} holds a run already; use birnn resume {run_dir} or another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "run.toml", dump_toml(resolved))  # (a resume records its budget and threads)
    log(header(run, records, resolved, train, run_dir))
    for line in run.config.get("notes", []) + selection:
        log(line)
    baseline = None
    if conf["train"].get("baseline", "auto") != "none":
        baseline = run_baseline(run, records, train.monitor, log)
    best = train_run(run, records, train, run_dir, resume=resume, log=log)
    ckpt = load_checkpoint(run_dir)
    history = ckpt["state"]["history"] if ckpt else []
    if not main_rank:
        return None
    metrics = {k: v for k, v in best.items() if k.startswith("dev_")}
    if records.get("test"):
        metrics.update({f"test_{k}": v for k, v in score(run, records["test"], device=train.device).items()})
    if baseline is not None:
        metrics["baseline"] = baseline
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return Finished(run, records, metrics, history, train, data, run_dir)
