"""The ``birnn`` command: train, evaluate, predict, resume, explain, bench, data list.

It only parses and prints: data readers and datasets (:mod:`birnn.data`), task recipes
(:mod:`birnn.tasks`), a training run (:mod:`birnn.runs`), the run configuration
(:mod:`birnn.config`), what a run reports (:mod:`birnn.report`), the explainer, and the
benchmarks of a checkout (``birnn bench``).
Errors are one line (``birnn: error: ...``, exit 2) unless ``--debug``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

from . import report
from .config import DEFAULT_DATASET, UsageError, resolve
from .flags import parser, split_bench

__all__ = ["main"]


def _train_or_resume(conf: dict, args, run_dir: Path, resume: bool) -> int:
    """Train (or finish) the run, then print its summary, plots and ``--json`` line."""
    from . import runs

    progress = not args.json and sys.stderr.isatty()
    try:
        done = runs.train(conf, run_dir, resume=resume, progress=progress)
    except KeyboardInterrupt:
        if (run_dir / "config.json").exists():
            print(f"birnn: interrupted; `birnn resume {run_dir}` continues from the last checkpoint", file=sys.stderr)
            return 130
        raise
    if done is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    train = done.train
    print()
    print(report.summary(done.metrics, lead=train.monitor))
    if args.plot:
        try:
            plotted = report.plot_run(run_dir, done.history, done.run, done.records, train,
                                      getattr(done.data, "test_start", None))
        except RuntimeError as e:  # no matplotlib
            raise UsageError(str(e)) from None
        for path in plotted:
            print(f"plot: {path}")
    print(f"model saved in {run_dir}  (birnn predict {run_dir} INPUT)")
    if args.json:
        print(json.dumps(report.json_metrics(done.metrics, lead=train.monitor)))
    return 0


def cmd_train(args) -> int:
    from .runs import run_dir_for

    conf = resolve(vars(args))
    return _train_or_resume(conf, args, run_dir_for(conf, args.out), resume=False)


def cmd_resume(args) -> int:
    from ..train import load_config

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
    trained = conf["train"].get("threads")  # the count the run trained with (None: a run from before birnn recorded it)
    if args.threads is not None:
        if trained is not None and args.threads != trained:
            print(f"birnn: note: --threads {args.threads}: this run trained with {trained} threads; another count "
                  "sums in another order, so from here its numbers differ from an uninterrupted run's",
                  file=sys.stderr)
        conf["train"]["threads"] = args.threads
    return _train_or_resume(conf, args, run_dir, resume=True)


def cmd_evaluate(args) -> int:
    from .pretrained import TrainedModel

    model = TrainedModel.load(args.run_dir, weights=args.weights)
    # predicted once, for the metrics and the per-class report
    metrics = model.evaluate(args.data, format=args.format, report=True, precision=args.precision,
                             baseline=args.baseline != "none")
    breakdown = metrics.pop("report", None)
    lead = model.config.get("train", {}).get("monitor")
    print(report.summary(metrics, lead=lead))
    if breakdown is not None:
        print()
        print(report.class_table(breakdown))
    if args.plot:
        if breakdown is None:
            raise UsageError("--plot draws the confusion matrix and F1 per class: for classify and tag runs")
        try:
            for path in report.plot_breakdown(breakdown, Path(args.plot), "evaluate"):
                print(f"plot: {path}")
        except RuntimeError as e:  # no matplotlib
            raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps({**report.json_metrics(metrics, lead=lead), **({"report": breakdown} if breakdown else {})}))
    return 0


def cmd_export(args) -> int:
    from .export import export_run
    from .tasks import load_run

    run = load_run(args.run_dir, weights=args.weights)
    path = Path(args.out) if args.out else Path(args.run_dir) / f"model.{args.format}"
    try:
        written = export_run(run, path, args.format, int8=args.int8, max_steps=args.max_steps)
    except ImportError as e:
        if args.format == "pte":
            raise UsageError(str(e)) from None
        raise UsageError(f"--format onnx needs onnx and onnxscript (--int8 onnxruntime too): "
                         f"pip install \"birnn[onnx]\" ({e})") from None
    except ValueError as e:
        raise UsageError(str(e)) from None
    meta = json.loads((written.parent / "preprocessing.json").read_text())
    int8 = f"; int8: {', '.join(meta['int8']) or 'nothing it could quantize'}" if args.int8 else ""
    print(f"exported {written} and {written.parent / 'preprocessing.json'} (inputs: "
          f"{', '.join(meta['inputs'])}{int8})")
    return 0


def cmd_predict(args) -> int:
    from .pretrained import TrainedModel

    model = TrainedModel.load(args.run_dir, weights=args.weights)
    if args.scores and model.task != "classify":
        raise UsageError(f"--scores gives class probabilities: for classify runs, this is a {model.task} run")
    out = model.predict_file(args.input, format=args.format, scores=args.scores, precision=args.precision)
    if args.output == "json":
        print(json.dumps(out))
        return 0
    for item in out:
        print(model.show(item))
    return 0


def cmd_explain(args) -> int:
    from ..explain import draw, explain

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


def benchmarks_dir() -> Path:
    """The repository's ``benchmarks/`` folder, next to ``src/`` in a checkout (the suites are
    not part of the installed package); FileNotFoundError saying so where there is none."""
    here = Path(__file__).resolve().parents[3] / "benchmarks"  # (src/birnn/app/cli.py)
    if not (here / "harness.py").exists():
        raise FileNotFoundError("birnn bench runs the suites in the repository's benchmarks/ folder, which is not "
                                f"installed with the package (looked in {here}): run it from a clone of the "
                                "repository, or run python benchmarks/cpu.py there")
    return here


def load_harness():
    """``benchmarks/harness.py`` of the checkout, as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("harness", benchmarks_dir() / "harness.py")
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    return harness


def cmd_bench(args) -> int:
    """A thin entry point: ``benchmarks/harness.py``'s ``main`` with the options after ``bench``."""
    return load_harness().main(args.rest)


def cmd_data_list(args) -> int:
    from ..data import dataset_status

    rows = [["dataset", "task", "available", "what", "install"]]
    for spec, ok, detail in dataset_status():
        rows.append([spec.name, spec.task, "yes" if ok else "no", spec.description, detail if not ok else spec.install])
    print(report.table(rows))
    print(f"\nbirnn train --dataset NAME trains on one; with no data arguments: {DEFAULT_DATASET}.")
    return 0


# -- parser ------------------------------------------------------------------------------------


def _parser():
    return parser({"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "export": cmd_export,
                   "resume": cmd_resume, "explain": cmd_explain, "bench": cmd_bench, "data_list": cmd_data_list})


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    head, bench_options = split_bench(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(head)
    if bench_options is not None:
        args.rest = bench_options
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if hasattr(args, "threads") and args.func not in (cmd_train, cmd_resume):  # (a run applies its own count)
        from .runs import apply_threads

        note = apply_threads(args.threads)
        if note:
            print(f"birnn: {note}", file=sys.stderr)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("birnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `birnn predict ... | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except Exception as e:  # one clear line unless --debug
        if args.debug:
            raise
        from ..data import DataFormatError, DatasetUnavailable
        from ..train import CheckpointError, TrainingDiverged

        from ..train.lock import RunLocked

        known = (UsageError, DataFormatError, DatasetUnavailable, CheckpointError, TrainingDiverged, FileNotFoundError,
                 ValueError, RunLocked)
        msg = str(e) if isinstance(e, known) else f"{type(e).__name__}: {e}"
        print(f"birnn: error: {msg}", file=sys.stderr)
        return 2
