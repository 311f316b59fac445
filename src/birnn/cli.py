"""The ``birnn`` command: train, evaluate, predict, resume, explain, bench, data list.

It only parses and prints: data readers and datasets (:mod:`birnn.data`), task recipes
(:mod:`birnn.tasks`), a training run (:mod:`birnn.runs`), the run configuration
(:mod:`birnn.config`), what a run reports (:mod:`birnn.report`), the explainer, and the
benchmarks of a checkout (``birnn bench``).
Errors are one line (``birnn: error: ...``, exit 2) unless ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import List, Optional, Tuple

from . import report
from .options import LayerOptions
from .run_options import MODEL, MODEL_OPTIONS, SOURCE_OPTIONS, TRAIN, TRAIN_OPTIONS
from .tasks import WEIGHTS
from .config import DEFAULT_DATASET, RULES, TASKS, UsageError, check_device, check_value, flag, resolve
from .config import choices as option_choices

__all__ = ["main"]


def _check_flag_device(value: str) -> str:
    if value == "auto":
        return value
    try:
        return check_device(value, "--device")
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--device ", "", 1)) from None


def _typed(name: str):
    """An argparse type for option ``name``: parse, then check against :data:`RULES`."""
    kind = RULES[name][0]

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


# -- commands ----------------------------------------------------------------------------------
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
    metrics = model.evaluate(args.data, format=args.format, report=True, precision=args.precision)
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
        written = export_run(run, path, args.format)
    except ImportError as e:
        raise UsageError(f"--format onnx needs onnx and onnxscript: pip install \"birnn[onnx]\" ({e})") from None
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"exported {written} and {written.parent / 'preprocessing.json'} (inputs: "
          f"{', '.join(json.loads((written.parent / 'preprocessing.json').read_text())['inputs'])})")
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


def benchmarks_dir() -> Path:
    """The repository's ``benchmarks/`` folder, next to ``src/`` in a checkout (the suites are
    not part of the installed package); FileNotFoundError saying so where there is none."""
    here = Path(__file__).resolve().parents[2] / "benchmarks"
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
    from .data import dataset_status

    rows = [["dataset", "task", "available", "what", "install"]]
    for spec, ok, detail in dataset_status():
        rows.append([spec.name, spec.task, "yes" if ok else "no", spec.description, detail if not ok else spec.install])
    print(report.table(rows))
    print(f"\nbirnn train --dataset NAME trains on one; with no data arguments: {DEFAULT_DATASET}.")
    return 0


# -- parser ------------------------------------------------------------------------------------
def _model_default(name: str) -> str:
    """A model option's default for each task whose model has it, for --help."""
    import inspect

    from .tasks import KINDS

    found = {}
    for task, cls in {t.task: t.model_class for t in KINDS.values()}.items():
        p = inspect.signature(cls).parameters.get(name)
        if p is not None and p.default is not inspect.Parameter.empty:
            v = p.default
            found[task] = " ".join(v) if isinstance(v, (tuple, list)) else str(v)
    if len(set(found.values())) == 1:
        return next(iter(found.values()))
    return ", ".join(f"{task} {v}" for task, v in found.items())


def _add_options(group, options, choices: dict) -> None:
    """Flags for the rows of an option table (:mod:`birnn.run_options`), help and checks from
    the row: ``--lr`` parses and checks a number as ``lr``'s rule says, ``--pooling`` takes
    its owner's choices, a switch its ``--no-`` form."""
    from .train import TrainConfig

    defaults = {MODEL: _model_default, TRAIN: lambda name: str(getattr(TrainConfig, name)),
                "<dataset>": lambda name: DEFAULT_DATASET}
    for o in options:
        if not o.flagged:
            continue
        text = o.help.replace("{default}", defaults[o.default](o.name)) if o.default else o.help
        if o.type is bool:
            if o.negative == "both":
                group.add_argument(o.flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            else:
                group.add_argument("--no-" + o.flag[2:], dest=o.name, action="store_const", const=False, help=text)
        elif o.type is list:
            group.add_argument(o.flag, nargs="+", help=text)
        elif o.choices == "device":
            group.add_argument(o.flag, type=_check_flag_device, help=text)
        elif o.choices is not None:
            group.add_argument(o.flag, choices=choices[o.choices] if isinstance(o.choices, str) else o.choices,
                               help=text)
        elif o.rule is not None:
            group.add_argument(o.flag, type=_typed(o.name), help=text)
        else:
            group.add_argument(o.flag, help=text)


def _weights_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", choices=WEIGHTS, default="final",
                        help="the weights the run ended on (default), its best dev epoch, or its latest checkpoint")


def _running_flags(parser: argparse.ArgumentParser, choices: dict) -> None:
    """What a command that runs a trained model takes: which weights, threads, precision."""
    _weights_flag(parser)
    parser.add_argument("--threads", type=_typed("threads"), help=_THREADS_HELP)
    parser.add_argument("--precision", choices=choices["precision"], help=_PRECISION_HELP)


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    from .data import FORMATS
    from .explain import MODES
    choices = option_choices()
    p = _Parser(prog="birnn", description="Bidirectional RNNs that handle padding for you.")
    p.add_argument("--version", action="version", version=f"birnn {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (no data arguments: a default on bundled real data)",
                       description=textwrap.fill(
                           "Train a classifier, tagger or forecaster. Every flag is optional: a --dataset preset, "
                           "then a --config file, then the flags decide, and run.toml records every resolved value. "
                           "Flags marked [tag], [classify] or [forecast] apply to that task only.", 88),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  birnn train\n  birnn train --dataset turkish-upos --plot\n"
                              "  birnn train tag --train train.conllu --dev dev.conllu --layers bilstm:128*2 --crf\n"
                              "  birnn train classify --train reviews.csv --layers bigru:64 --pooling max\n"
                              "  birnn train forecast --train series.csv --window 60 --horizon 20 --plot")
    t.add_argument("task", nargs="?", choices=TASKS,
                   help="what to train; implied by --dataset or --config")
    choices["format"] = FORMATS
    _add_options(t.add_argument_group("data"), SOURCE_OPTIONS, choices)
    m = t.add_argument_group("model")
    _add_options(m, MODEL_OPTIONS, choices)
    for name, kind, default, text in LayerOptions.command_line():  # every recurrent layer's options
        if kind is bool:
            m.add_argument(flag(name), action="store_const", const=True, help=text)
        else:
            m.add_argument(flag(name), type=_typed(name), help=f"{text} (default {default:g})")
    _add_options(t.add_argument_group("training"), TRAIN_OPTIONS, choices)
    t.add_argument("--config", help="a TOML file with [source] [model] [layer] [train] tables (a run's run.toml "
                                    "reruns it); relative paths in it are relative to the file")
    t.add_argument("--out", help="run directory (default runs/TASK-DATA-TIME)")
    t.add_argument("--json", action="store_true", help="print the final metrics as JSON on the last line")
    t.add_argument("--threads", type=_typed("threads"), help=_THREADS_HELP)
    t.add_argument("--plot", action="store_true", help="write PNGs: learning curves; the forecast, or the confusion "
                                                       "matrix and F1 per class (per entity type for BIO tags)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a trained run on a labelled file")
    e.add_argument("run_dir", help="a run directory written by birnn train")
    e.add_argument("--data", required=True, help="a labelled file in one of the formats the run trained on")
    e.add_argument("--format", choices=FORMATS,
                   help="the file's format (default: from the extension)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON on the last line")
    e.add_argument("--plot", metavar="DIR", help="write the confusion matrix and F1 per class (per entity type for "
                                                 "BIO tags) as PNGs into DIR")
    _running_flags(e, choices)
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="predict with a trained run")
    pr.add_argument("run_dir", help="a run directory written by birnn train")
    pr.add_argument("input", help="classify: text lines or a CSV/TSV, or a .ts file; tag: a .conllu, word/TAG, "
                                  "columns or token file; forecast: a CSV series (its last window)")
    pr.add_argument("--format", choices=FORMATS + ("tokens", "lines"),
                    help="the input's format (default: from the extension; lines: one item per line)")
    pr.add_argument("--output", choices=("tsv", "json"), default="tsv",
                    help="tsv: one prediction per line (a blank line between sentences); json: one list")
    pr.add_argument("--scores", action="store_true",
                    help="[classify] also print each class's probability (tsv: after the label, in label order)")
    _running_flags(pr, choices)
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser("export", help="write a trained run's model as ONNX or a torch.export program")
    ex.add_argument("run_dir", help="a run directory written by birnn train")
    ex.add_argument("--format", choices=("onnx", "pt2"), default="onnx",
                    help="onnx (runs in onnxruntime, without birnn) or pt2 (torch.export.load; default onnx)")
    ex.add_argument("--out", help="the model file (default RUN/model.FORMAT); preprocessing.json goes beside it")
    _weights_flag(ex)
    ex.set_defaults(func=cmd_export)

    rs = sub.add_parser("resume", help="continue a run that was stopped or killed")
    rs.add_argument("run_dir", help="the run directory of a stopped, killed or time-limited run")
    rs.add_argument("--max-minutes", type=_typed("max_minutes"), help="a new time limit for this session")
    rs.add_argument("--json", action="store_true", help="print the final metrics as JSON on the last line")
    rs.add_argument("--plot", action="store_true", help="write PNG learning curves (and the forecast)")
    rs.add_argument("--threads", type=_typed("threads"), help=_THREADS_HELP)
    rs.set_defaults(func=cmd_resume)

    x = sub.add_parser("explain", help="what every tensor of a layer means, checked by running it")
    x.add_argument("--mode", default="lstm", choices=MODES, help="the cell (default lstm)")
    x.add_argument("--layers", type=_typed("count"), default=2, help="layers L (default 2)")
    x.add_argument("--bidirectional", action="store_true", help="two directions (D=2)")
    x.add_argument("--batch-first", action="store_true", help="(B, T, I) inputs and outputs")
    x.add_argument("--batch", type=_typed("count"), default=4, help="batch size B (default 4)")
    x.add_argument("--time", type=_typed("count"), default=7, help="time steps T (default 7)")
    x.add_argument("--hidden", type=_typed("count"), default=3, help="hidden size H (default 3)")
    x.add_argument("--input", type=_typed("count"), default=5, help="input size I (default 5)")
    x.add_argument("--lengths", help="real steps of each sequence, comma-separated, in [0, T], e.g. 7,5,4,3 "
                                     "(default: all T)")
    x.add_argument("--png", help="also draw the unrolled network to this PNG")
    x.set_defaults(func=cmd_explain)

    b = sub.add_parser("bench", help="benchmarks against torch.nn / cuDNN measured in the same run")
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options of the suite (see birnn bench --help)")
    b.set_defaults(func=cmd_bench)

    dl = sub.add_parser("data", help="offline datasets")
    dsub = dl.add_subparsers(dest="data_command", metavar="list", parser_class=_Parser, help="list: the datasets")
    ls = dsub.add_parser("list", help="datasets available offline and how to install each")
    ls.set_defaults(func=cmd_data_list)
    return p


_PRECISION_HELP = "fp32 or bf16 (bfloat16 autocast); default: the precision the run trained at"
_THREADS_HELP = ("CPU threads for PyTorch (default: what this process may use, as PyTorch counts them, never more "
                 "than the cores it is allowed to run on); printed in the run header")


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
        from .data import DataFormatError, DatasetUnavailable
        from .train import CheckpointError, TrainingDiverged

        from .train.lock import RunLocked

        known = (UsageError, DataFormatError, DatasetUnavailable, CheckpointError, TrainingDiverged, FileNotFoundError,
                 ValueError, RunLocked)
        msg = str(e) if isinstance(e, known) else f"{type(e).__name__}: {e}"
        print(f"birnn: error: {msg}", file=sys.stderr)
        return 2
