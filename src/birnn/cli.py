"""The ``birnn`` command: train, evaluate, predict, resume, explain, bench, data list.

It only composes: data readers and datasets (:mod:`birnn.data`), task recipes
(:mod:`birnn.tasks`), the trainer (:mod:`birnn.train`), the explainer and the benchmarks.
Errors are one line (``birnn: error: ...``, exit 2) unless ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import List, Optional, Tuple

__all__ = ["main"]

DEFAULT_DATASET = "japanese-vowels"
_TRAIN_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "clip_norm", "schedule", "patience", "seed",
                 "save_every", "max_minutes", "select", "device")
_MODEL_FIELDS = ("layers", "pooling", "dropout", "embedding_dim", "embedding_dropout", "word_dim", "char_dim",
                 "char_hidden", "chars", "word_dropout", "crf", "window", "horizon", "min_freq", "head",
                 "input_noise")
_LAYER_FIELDS = ("recurrent_dropout", "zoneout", "layer_norm", "weight_dropout")
_SOURCE_FIELDS = ("dataset", "train", "dev", "test", "format", "text_column", "label_column", "tag_column",
                  "columns", "split_seed")


class UsageError(Exception):
    """A user error: printed as one line."""


# What each numeric option accepts: (type, lowest, lowest allowed?, highest or None, highest allowed?).
# The same rules check flags (argparse types) and values from a --config file.
_RULES = {
    **{k: (int, 1, True, None, False) for k in ("epochs", "batch_size", "patience", "window", "horizon",
                                                 "embedding_dim", "word_dim", "char_dim", "char_hidden", "min_freq")},
    **{k: (int, 0, True, None, False) for k in ("save_every", "seed", "split_seed")},
    "count": (int, 1, True, None, False),  # explain's sizes
    **{k: (float, 0, False, None, False) for k in ("lr", "max_minutes")},
    **{k: (float, 0, True, None, False) for k in ("weight_decay", "clip_norm", "input_noise")},
    **{k: (float, 0, True, 1, False) for k in ("dropout", "embedding_dropout", "word_dropout", "recurrent_dropout",
                                               "zoneout", "weight_dropout")},
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_value(name: str, value, where: Optional[str] = None):
    """``value`` of option ``name`` against :data:`_RULES` (and ``device``); returns it, or raises
    UsageError naming the option (``where``: how the user wrote it, e.g. ``train.lr in run.toml``)."""
    where = where or _flag(name)
    if name == "device":
        return _check_device(value, where)
    rule = _RULES.get(name)
    if rule is None:
        return value
    kind, lo, lo_ok, hi, hi_ok = rule
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise UsageError(f"{where} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if not math.isfinite(value) or value < lo or (value == lo and not lo_ok) or (
            hi is not None and (value > hi or (value == hi and not hi_ok))):
        rng = f"{'[' if lo_ok else '('}{lo}, {hi if hi is not None else 'inf'}{']' if hi_ok else ')'}"
        raise UsageError(f"{where} must be in {rng}, got {value!r}")
    return value


def _check_device(value, where: str) -> str:
    import torch

    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        raise UsageError(f"{where} must be a device such as cpu, cuda or cuda:1, got {value!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{where} {value}: this PyTorch ({torch.__version__}) has no usable CUDA device; use cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"{where} must be cpu, cuda or mps, got {value!r}")
    return value


def _check_flag_device(value: str) -> str:
    try:
        return _check_device(value, "--device")
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--device ", "", 1)) from None


def _typed(name: str):
    """An argparse type for option ``name``: parse, then check against :data:`_RULES`."""
    kind = _RULES[name][0]

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        try:
            return check_value(name, value)
        except UsageError as e:
            raise argparse.ArgumentTypeError("must " + str(e).split(" must ", 1)[-1]) from None

    parse.__name__ = kind.__name__
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse, with errors as one line (``birnn train: error: argument --lr: ...``), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- configuration -----------------------------------------------------------------------------
def _load_toml(path) -> dict:
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: invalid TOML: {e}") from None


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def dump_toml(config: dict) -> str:
    """A flat TOML writer for the resolved run configuration (scalars, lists, one level of tables)."""
    top = [f"{k} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict) and v is not None]
    tables = []
    for k, v in config.items():
        if isinstance(v, dict):
            rows = [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items() if vv is not None and not isinstance(vv, dict)]
            tables.append(f"\n[{k}]\n" + "\n".join(rows))
    return "\n".join(top) + "\n" + "\n".join(tables) + "\n"


def resolve(args) -> dict:
    """Merge preset (dataset defaults) < config file < flags into {task, source, model, layer, train}."""
    from .data import DATASETS

    conf = {"source": {}, "model": {}, "layer": {}, "train": {}}
    if args.config:
        loaded = _load_toml(args.config)
        for section in ("source", "model", "layer", "train"):
            values = loaded.get(section, {})
            if not isinstance(values, dict):
                raise UsageError(f"{args.config}: [{section}] must be a table, got {values!r}")
            for key, value in values.items():
                check_value(key, value, where=f"{section}.{key} in {args.config}")
            conf[section].update(values)
        if "task" in loaded:
            conf["task"] = loaded["task"]
    flags = vars(args)
    for section, names in (("source", _SOURCE_FIELDS), ("model", _MODEL_FIELDS), ("layer", _LAYER_FIELDS),
                           ("train", _TRAIN_FIELDS)):
        for name in names:
            if flags.get(name) is not None:
                conf[section][name] = flags[name]
    if flags.get("task"):
        conf["task"] = flags["task"]
    source = conf["source"]
    if not source.get("dataset") and not source.get("train"):
        source["dataset"] = DEFAULT_DATASET
    if source.get("dataset"):
        name = source["dataset"]
        if name not in DATASETS:
            raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)} (see birnn data list)")
        spec = DATASETS[name]
        if conf.get("task", spec.task) != spec.task:
            raise UsageError(f"dataset {name} is for the {spec.task} task, not {conf['task']}")
        conf["task"] = spec.task
        from .tasks import PRESETS

        preset = PRESETS.get(name, {})
        conf["model"] = {**preset.get("model", {}), **conf["model"]}
        conf["train"] = {**preset.get("train", {}), **conf["train"]}
    if not conf.get("task"):
        raise UsageError("give the task: birnn train classify|tag|forecast --train FILE")
    return conf


# -- data --------------------------------------------------------------------------------------
def _read(task: str, path, source: dict, labelled: bool = True, channels: Optional[int] = None):
    from .data import infer_format, read_columns, read_conllu, read_series_csv, read_text_csv, read_ts, read_wordtag

    fmt = source.get("format") or infer_format(path, task)
    allowed = {"tag": ("conllu", "wordtag", "columns"), "classify": ("text", "ts"), "forecast": ("series",)}[task]
    if fmt not in allowed:
        raise UsageError(f"format {fmt!r} does not fit the {task} task; use one of {', '.join(allowed)} (--format)")
    if fmt == "conllu":
        return read_conllu(path, tag_column=source.get("tag_column") or "upos", require_tags=labelled)
    if fmt == "wordtag":
        return read_wordtag(path)
    if fmt == "columns":
        scheme = "bio" if str(path).lower().endswith(".bio") else None
        return read_columns(path, scheme=scheme)
    if fmt == "text":
        return read_text_csv(path, text_column=source.get("text_column"), label_column=source.get("label_column"),
                             require_labels=labelled)
    if fmt == "ts":
        return read_ts(path, channels=channels)
    cols = source.get("columns")
    return read_series_csv(path, columns=cols.split(",") if isinstance(cols, str) else cols)


def load_data(task: str, source: dict):
    from .data import SeriesSplits, Splits, load_dataset
    from .data.datasets import _seeded_split

    if source.get("dataset"):
        return load_dataset(source["dataset"])
    train = _read(task, source["train"], source)
    if task == "forecast":
        T = len(train)
        if T < 10:
            raise UsageError(f"{source['train']}: a series of {T} values is too short to split for forecasting")
        return SeriesSplits(train, int(T * 0.8), int(T * 0.9), {"split": "in time 80/10/10", "file": source["train"]})
    if not train:
        raise UsageError(f"{source['train']}: no records")
    dev = _read(task, source["dev"], source) if source.get("dev") else None
    test = _read(task, source["test"], source) if source.get("test") else []
    info = {"train": source["train"]}
    if dev is None:
        seed = int(source.get("split_seed", 13))
        train, dev, _ = _seeded_split(train, (0.9, 0.1), seed=seed)
        info["split"] = f"dev: a seeded 10% of --train (seed {seed})"
    return Splits(train, dev, test, info)


# -- output ------------------------------------------------------------------------------------
def _table(rows: List[List[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows)


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _summary(metrics: dict) -> str:
    names = sorted({k.split("_", 1)[1] for k in metrics if "_" in k and k.split("_", 1)[0] in ("dev", "test")})
    rows = [["metric", "dev", "test"]]
    for n in names:
        rows.append([n, _fmt(metrics.get(f"dev_{n}", "-")), _fmt(metrics.get(f"test_{n}", "-"))])
    return _table(rows)


def _json_metrics(metrics: dict) -> dict:
    out = dict(metrics)
    for split in ("dev", "test"):  # short aliases the issue names: test_f1 for macro-F1
        if f"{split}_macro_f1" in out:
            out[f"{split}_f1"] = out[f"{split}_macro_f1"]
    return out


def _plot(run_dir: Path, history: list, run, records, monitor: str) -> List[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install matplotlib") from None
    import numpy as np

    written = []
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = [r["epoch"] for r in history]
    ax[0].plot(epochs, [r["train_loss"] for r in history], marker="o")
    ax[0].set(title="training loss", xlabel="epoch")
    ax[1].plot(epochs, [r.get(f"dev_{monitor}") for r in history], marker="o", color="C1")
    ax[1].set(title=f"dev {monitor}", xlabel="epoch")
    fig.tight_layout()
    path = run_dir / "learning_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(str(path))
    if run.kind == "forecast" and records.get("test"):
        from .tasks import predict_records

        test = records["test"]
        pred = predict_records(run, [(x, None) for x, _ in test])
        k = min(len(test) - 1, len(test) // 2)
        x, y = test[k]
        W, K = len(x), len(y)
        fig, ax = plt.subplots(figsize=(9, 3.5))
        ax.plot(range(W), x[:, 0], label="input window", color="C0")
        ax.plot(range(W, W + K), y[:, 0], label="truth", color="black")
        ax.plot(range(W, W + K), np.asarray(pred[k])[:, 0], label="forecast", color="C3", linestyle="--")
        ax.set(title=f"forecast of {K} steps from a {W}-step test window", xlabel="step")
        ax.legend()
        fig.tight_layout()
        path = run_dir / "forecast.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path))
    return written


# -- commands ----------------------------------------------------------------------------------
def _train_config(conf: dict, progress: bool):
    from .train import TrainConfig

    task = conf["task"]
    t = dict(conf["train"])
    t.setdefault("monitor", "mae" if task == "forecast" else "accuracy")
    t.setdefault("maximize", task != "forecast")
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(t) - names)
    if unknown:
        raise UsageError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return TrainConfig(**t, progress=progress) if "progress" not in t else TrainConfig(**t)


def _run_dir(args, conf) -> Path:
    if args.out:
        return Path(args.out)
    src = conf["source"]
    name = src.get("dataset") or Path(src["train"]).stem
    return Path("runs") / f"{conf['task']}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _finish(run, records, best: dict, run_dir: Path, conf: dict, args, trainer_history: list) -> int:
    from .tasks import score

    metrics = {k: v for k, v in best.items() if k.startswith("dev_")}
    if records.get("test"):
        metrics.update({f"test_{k}": v for k, v in score(run, records["test"], device=conf["train"].get(
            "device", "cpu")).items()})
    print()
    print(_summary(metrics))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if args.plot:
        for path in _plot(run_dir, trainer_history, run, records,
                          "mae" if conf["task"] == "forecast" else "accuracy"):
            print(f"plot: {path}")
    print(f"model saved in {run_dir}  (birnn predict {run_dir} INPUT)")
    if args.json:
        print(json.dumps(_json_metrics(metrics)))
    return 0


def _train_or_resume(conf: dict, args, run_dir: Path, resume: bool) -> int:
    import contextlib
    import os

    from .train import init_from_env
    from .train.lock import run_lock

    init_from_env()
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 owns the run directory
    with run_lock(run_dir) if main_rank else contextlib.nullcontext():
        return _train_locked(conf, args, run_dir, resume)


def _train_locked(conf: dict, args, run_dir: Path, resume: bool) -> int:
    from .tasks import build_run, check_labels, train_run
    from .train.checkpoint import load_checkpoint

    data = load_data(conf["task"], conf["source"])
    check_labels(conf["task"], data)
    model_options = dict(conf["model"])
    if conf["layer"]:
        model_options["layer_options"] = dict(conf["layer"])
    train = _train_config(conf, progress=not args.json and sys.stderr.isatty())
    try:
        run, records = build_run(conf["task"], data, model_options, seed=train.seed)
    except TypeError as e:
        raise UsageError(f"bad model option: {e}") from None
    run.config["source"] = conf["source"]
    run.config["resolved"] = conf
    if not resume:
        if (run_dir / "config.json").exists() or (run_dir / "latest.json").exists():
            raise UsageError(f"{run_dir} holds a run already; use birnn resume {run_dir} or another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run.toml").write_text(dump_toml({"task": conf["task"], **{k: conf[k] for k in
                                                                                ("source", "model", "layer", "train")}}))
    sizes = ", ".join(f"{k} {len(v)}" for k, v in records.items())
    n_params = sum(p.numel() for p in run.model.parameters())
    print(f"{conf['task']}: {type(run.model).__name__} ({n_params:,} parameters), layers {conf['model'].get('layers')}; "
          f"data {conf['source'].get('dataset') or conf['source'].get('train')} ({sizes}); run dir {run_dir}")
    best = train_run(run, records, train, run_dir, resume=resume, log=lambda s: print(s, flush=True))
    ckpt = load_checkpoint(run_dir)
    history = ckpt["state"]["history"] if ckpt else []
    return _finish(run, records, best, run_dir, conf, args, history)


def cmd_train(args) -> int:
    conf = resolve(args)
    return _train_or_resume(conf, args, _run_dir(args, conf), resume=False)


def cmd_resume(args) -> int:
    from .train import load_config

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").exists() and (run_dir / "run.toml").exists():
        raise UsageError(f"{run_dir} stopped before training began (no config.json): train it again with "
                         f"birnn train --config {run_dir / 'run.toml'} --out {run_dir}")
    saved = load_config(run_dir)
    conf = saved.get("resolved")
    if conf is None:
        raise UsageError(f"{run_dir} was not written by `birnn train` (no resolved configuration)")
    if args.max_minutes is not None:
        conf["train"]["max_minutes"] = args.max_minutes
    return _train_or_resume(conf, args, run_dir, resume=True)


def cmd_evaluate(args) -> int:
    from .tasks import evaluate_run, load_run

    from .tasks import check_known_labels

    run = load_run(args.run_dir, weights=args.weights)
    source = dict(run.config.get("source", {}), format=args.format)
    records = _read(run.task, args.data, source, channels=run.encoder.channels if run.kind == "series" else None)
    if len(records) == 0:
        raise UsageError(f"{args.data}: no records to evaluate")
    if run.kind in ("text", "series"):
        check_known_labels(records, run.encoder.labels.itos, "--data")
    elif run.kind == "tagging":
        check_known_labels(records, run.encoder.tags.itos, "--data", tagging=True)
    if run.task == "forecast":
        from .tasks import split_records
        from .data import SeriesSplits

        opts = run.encoder
        records = split_records("forecast", SeriesSplits(records, 0, 0), {"window": opts.window,
                                                                           "horizon": opts.horizon})["test"]
    metrics = {f"test_{k}": v for k, v in evaluate_run(run, records).items()}
    print(_summary(metrics))
    if args.json:
        print(json.dumps(_json_metrics(metrics)))
    return 0


def _read_predict_input(run, path: str, fmt: Optional[str]):
    from .data import infer_format, read_conllu, read_series_csv, read_text_csv, read_ts

    if run.kind == "text":
        lower = path.lower()
        if fmt == "text" or lower.endswith((".csv", ".tsv", ".csv.bz2", ".tsv.gz")):
            return [(t, None) for t, _ in read_text_csv(path, text_column=run.config.get("source", {}).get(
                "text_column"), require_labels=False)]
        with open(path, encoding="utf-8") as f:  # one text per line
            return [(line.strip(), None) for line in f if line.strip()]
    if run.kind == "series":
        return [(x, None) for x, _ in read_ts(path, channels=run.encoder.channels)]
    if run.kind == "tagging":
        fmt = fmt or infer_format(path, "tag")
        if fmt == "conllu":
            return [(w, None) for w, _ in read_conllu(path, require_tags=False)]
        with open(path, encoding="utf-8") as f:  # one sentence per line: tokens, or word/TAG tokens
            sents = []
            for line in f:
                toks = line.split()
                if toks:
                    sents.append([t.rpartition("/")[0] or t if fmt == "wordtag" else t for t in toks])
            return [(s, None) for s in sents]
    series = read_series_csv(path, run.config.get("source", {}).get("columns"))
    W = run.encoder.window
    if len(series) < W:
        raise UsageError(f"{path}: {len(series)} values, the model needs a window of {W}")
    return [(series[-W:], None)]


def cmd_predict(args) -> int:
    from .tasks import load_run, predict_records

    run = load_run(args.run_dir, weights=args.weights)
    records = _read_predict_input(run, args.input, args.format)
    preds = predict_records(run, records)
    out = []
    for rec, pred in zip(records, preds):
        if run.kind == "tagging":
            out.append({"words": rec[0], "tags": pred})
        elif run.kind == "text":
            out.append({"text": rec[0], "label": pred})
        elif run.kind == "series":
            out.append({"label": pred})
        else:
            out.append({"forecast": [[float(v) for v in row] for row in pred]})
    if args.output == "json":
        print(json.dumps(out))
        return 0
    for item in out:
        if run.kind == "tagging":
            print("\n".join(f"{w}\t{t}" for w, t in zip(item["words"], item["tags"])) + "\n")
        elif run.kind == "text":
            print(f"{item['label']}\t{item['text']}")
        elif run.kind == "series":
            print(item["label"])
        else:
            for k, row in enumerate(item["forecast"], 1):
                print(f"t+{k}\t" + "\t".join(f"{v:.6g}" for v in row))
    return 0


def cmd_explain(args) -> int:
    from .explain import draw, explain

    lengths = None
    if args.lengths:
        try:
            lengths = [int(v) for v in args.lengths.split(",")]
        except ValueError:
            raise UsageError(f"--lengths must be comma-separated integers, got {args.lengths!r}") from None
    if lengths is not None:  # the same checks as explain(), worded with the flags
        if len(lengths) != args.batch:
            raise UsageError(f"--lengths has {len(lengths)} values but --batch is {args.batch}")
        if max(lengths) > args.time or min(lengths) < 0:
            raise UsageError(f"--lengths must be in [0, --time={args.time}], got {args.lengths}")
    try:
        report = explain(mode=args.mode, layers=args.layers, bidirectional=args.bidirectional,
                         batch_first=args.batch_first, batch=args.batch, time=args.time, hidden=args.hidden,
                         input=args.input, lengths=lengths)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(report.text())
    if args.png:
        draw(report, args.png)
        print(f"\ndiagram: {args.png}")
    return 0 if all(c.holds for c in report.checks) else 1


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args.rest)


def cmd_data_list(args) -> int:
    from .data import dataset_status

    rows = [["dataset", "task", "available", "what", "install"]]
    for spec, ok, detail in dataset_status():
        rows.append([spec.name, spec.task, "yes" if ok else "no", spec.description, detail if not ok else spec.install])
    print(_table(rows))
    print(f"\nbirnn train --dataset NAME trains on one; with no data arguments: {DEFAULT_DATASET}.")
    return 0


# -- parser ------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="birnn", description="Bidirectional RNNs that handle padding for you.")
    p.add_argument("--version", action="version", version=f"birnn {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (no data arguments: a default on bundled real data)")
    t.add_argument("task", nargs="?", choices=("classify", "tag", "forecast"))
    d = t.add_argument_group("data")
    d.add_argument("--train", help="training file (.conllu, .txt word/TAG, .bio, .csv/.tsv, .ts)")
    d.add_argument("--dev")
    d.add_argument("--test")
    d.add_argument("--dataset", help="an offline dataset instead of files (birnn data list)")
    d.add_argument("--format", choices=("conllu", "wordtag", "columns", "text", "series", "ts"))
    d.add_argument("--text-column")
    d.add_argument("--label-column")
    d.add_argument("--tag-column", choices=("upos", "xpos"))
    d.add_argument("--columns", help="series columns (comma-separated names); default the last column")
    d.add_argument("--split-seed", type=_typed("split_seed"))
    m = t.add_argument_group("model")
    m.add_argument("--layers", nargs="+", help="layer specs, e.g. bilstm:128*2 gru:64 bigru:32:sum")
    m.add_argument("--pooling", choices=("final", "mean", "max", "last", "attention"))
    m.add_argument("--dropout", type=_typed("dropout"))
    m.add_argument("--embedding-dim", type=_typed("embedding_dim"))
    m.add_argument("--embedding-dropout", type=_typed("embedding_dropout"))
    m.add_argument("--word-dim", type=_typed("word_dim"))
    m.add_argument("--char-dim", type=_typed("char_dim"))
    m.add_argument("--char-hidden", type=_typed("char_hidden"))
    m.add_argument("--no-chars", dest="chars", action="store_const", const=False)
    m.add_argument("--word-dropout", type=_typed("word_dropout"))
    m.add_argument("--crf", action="store_const", const=True)
    m.add_argument("--window", type=_typed("window"))
    m.add_argument("--horizon", type=_typed("horizon"))
    m.add_argument("--min-freq", type=_typed("min_freq"))
    m.add_argument("--input-noise", type=_typed("input_noise"))
    m.add_argument("--recurrent-dropout", type=_typed("recurrent_dropout"))
    m.add_argument("--zoneout", type=_typed("zoneout"))
    m.add_argument("--layer-norm", action="store_const", const=True)
    m.add_argument("--weight-dropout", type=_typed("weight_dropout"))
    r = t.add_argument_group("training")
    r.add_argument("--epochs", type=_typed("epochs"))
    r.add_argument("--batch-size", type=_typed("batch_size"))
    r.add_argument("--lr", type=_typed("lr"))
    r.add_argument("--weight-decay", type=_typed("weight_decay"))
    r.add_argument("--clip-norm", type=_typed("clip_norm"))
    r.add_argument("--schedule", choices=("plateau", "cosine", "constant"))
    r.add_argument("--patience", type=_typed("patience"))
    r.add_argument("--select", choices=("best", "last"))
    r.add_argument("--save-every", type=_typed("save_every"))
    r.add_argument("--max-minutes", type=_typed("max_minutes"))
    r.add_argument("--device", type=lambda v: _check_flag_device(v))
    r.add_argument("--seed", type=_typed("seed"))
    t.add_argument("--config", help="a TOML file with [source] [model] [layer] [train] tables")
    t.add_argument("--out", help="run directory (default runs/TASK-DATA-TIME)")
    t.add_argument("--json", action="store_true", help="print the final metrics as JSON on the last line")
    t.add_argument("--plot", action="store_true", help="write PNG learning curves (and the forecast)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a trained run on a labelled file")
    e.add_argument("run_dir")
    e.add_argument("--data", required=True)
    e.add_argument("--format", choices=("conllu", "wordtag", "columns", "text", "series", "ts"))
    e.add_argument("--json", action="store_true")
    e.add_argument("--weights", choices=("final", "best", "latest"), default="final",
                   help="the weights the run ended on (default), its best dev epoch, or its latest checkpoint")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="predict with a trained run")
    pr.add_argument("run_dir")
    pr.add_argument("input", help="text lines, a CSV/TSV, a .conllu or token file, a .ts file, or a CSV series")
    pr.add_argument("--format", choices=("conllu", "wordtag", "columns", "text", "series", "ts", "tokens"))
    pr.add_argument("--output", choices=("tsv", "json"), default="tsv")
    pr.add_argument("--weights", choices=("final", "best", "latest"), default="final",
                    help="the weights the run ended on (default), its best dev epoch, or its latest checkpoint")
    pr.set_defaults(func=cmd_predict)

    rs = sub.add_parser("resume", help="continue a run that was stopped or killed")
    rs.add_argument("run_dir")
    rs.add_argument("--max-minutes", type=_typed("max_minutes"))
    rs.add_argument("--json", action="store_true")
    rs.add_argument("--plot", action="store_true")
    rs.set_defaults(func=cmd_resume)

    x = sub.add_parser("explain", help="what every tensor of a layer means, checked by running it")
    x.add_argument("--mode", default="lstm", choices=("lstm", "gru", "rnn"))
    x.add_argument("--layers", type=_typed("count"), default=2)
    x.add_argument("--bidirectional", action="store_true")
    x.add_argument("--batch-first", action="store_true")
    x.add_argument("--batch", type=_typed("count"), default=4)
    x.add_argument("--time", type=_typed("count"), default=7)
    x.add_argument("--hidden", type=_typed("count"), default=3)
    x.add_argument("--input", type=_typed("count"), default=5)
    x.add_argument("--lengths", help="comma-separated, one per sequence, e.g. 7,5,4,3")
    x.add_argument("--png", help="also draw the unrolled network to this PNG")
    x.set_defaults(func=cmd_explain)

    b = sub.add_parser("bench", help="benchmarks against torch.nn / cuDNN measured in the same run")
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options of the suite (see birnn bench --help)")
    b.set_defaults(func=cmd_bench)

    dl = sub.add_parser("data", help="offline datasets")
    dsub = dl.add_subparsers(dest="data_command", metavar="list", parser_class=_Parser)
    ls = dsub.add_parser("list", help="datasets available offline and how to install each")
    ls.set_defaults(func=cmd_data_list)
    return p


def _split_bench(argv: List[str]) -> Tuple[List[str], Optional[List[str]]]:
    """``birnn [global options] bench OPTIONS...``: everything after ``bench`` belongs to the
    suite's own parser (argparse would take ``--batch`` for an option of ``birnn`` itself)."""
    for i, token in enumerate(argv):
        if not token.startswith("-"):
            if token != "bench":
                return argv, None
            rest = argv[i + 1:]
            return argv[:i + 1], rest[1:] if rest[:1] == ["--"] else rest
    return argv, None


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    head, bench_options = _split_bench(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(head)
    if bench_options is not None:
        args.rest = bench_options
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("birnn: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one clear line unless --debug
        if args.debug:
            raise
        from .data import DataFormatError, DatasetUnavailable
        from .train import CheckpointError, TrainingDiverged

        from .train.lock import RunLocked

        known = (UsageError, DataFormatError, DatasetUnavailable, CheckpointError, TrainingDiverged, FileNotFoundError,
                 ValueError, RunLocked)
        msg = str(e) if isinstance(e, known) else f"{type(e).__name__}: {e}"
        print(f"birnn: error: {msg}", file=sys.stderr)
        return 2
