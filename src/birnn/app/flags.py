"""``birnn``'s command line: its parser, the flags of every command. ``birnn train``'s source,
model and training flags come from the option tables (:mod:`birnn.run_options`), the layers'
from :class:`birnn.options.LayerOptions`; each flag parses and checks its value by its row's
rule, so a bad value is refused naming the flag. The commands themselves: :mod:`birnn.cli`."""

from __future__ import annotations

import argparse
import textwrap
from typing import List, Optional, Tuple

from .config import DEFAULT_DATASET, RULES, TASKS, UsageError, check_device, check_value, flag
from .config import choices as option_choices
from ..options import LayerOptions
from .baselines import BASELINE_CHOICES
from .export import FORMATS as EXPORT_FORMATS, MAX_STEPS
from .run_options import MODEL, MODEL_OPTIONS, SOURCE_OPTIONS, TRAIN, TRAIN_OPTIONS
from .tasks import WEIGHTS

__all__ = ["Parser", "parser", "split_bench"]


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


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line (``birnn train: error: argument --lr: ...``), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- commands ----------------------------------------------------------------------------------


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
    from ..train import TrainConfig

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


def parser(commands: dict) -> argparse.ArgumentParser:
    """``birnn``'s parser; ``commands``: each command's function by name (:mod:`birnn.cli`)."""
    from .. import __version__

    from ..data import FORMATS
    from ..explain import MODES
    choices = option_choices()
    p = Parser(prog="birnn", description="Bidirectional RNNs that handle padding for you.")
    p.add_argument("--version", action="version", version=f"birnn {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

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
    t.set_defaults(func=commands["train"])

    e = sub.add_parser("evaluate", help="score a trained run on a labelled file")
    e.add_argument("run_dir", help="a run directory written by birnn train")
    e.add_argument("--data", required=True, help="a labelled file in one of the formats the run trained on")
    e.add_argument("--format", choices=FORMATS,
                   help="the file's format (default: from the extension)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON on the last line")
    e.add_argument("--baseline", choices=BASELINE_CHOICES, default="auto",
                   help="auto (the default): also refit the run's baseline on its training split (read again from "
                        "its recorded source) and score it on the same data; none: skip it")
    e.add_argument("--plot", metavar="DIR", help="write the confusion matrix and F1 per class (per entity type for "
                                                 "BIO tags) as PNGs into DIR")
    _running_flags(e, choices)
    e.set_defaults(func=commands["evaluate"])

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
    pr.set_defaults(func=commands["predict"])

    ex = sub.add_parser("export", help="write a trained run's model as ONNX or a torch.export program")
    ex.add_argument("run_dir", help="a run directory written by birnn train")
    ex.add_argument("--format", choices=EXPORT_FORMATS, default="onnx",
                    help="onnx (runs in onnxruntime, without birnn), pt2 (torch.export.load) or pte (ExecuTorch: "
                         "one example at a time, T up to --max-steps); default onnx")
    ex.add_argument("--max-steps", type=int, default=MAX_STEPS,
                    help="[pte] the longest input the program takes (ExecuTorch plans its memory for it)")
    ex.add_argument("--out", help="the model file (default RUN/model.FORMAT); preprocessing.json goes beside it")
    ex.add_argument("--int8", action="store_true",
                    help="onnx with int8 weights (onnxruntime's dynamic quantization: LSTM operators, products "
                         "and embeddings; runs in onnxruntime)")
    _weights_flag(ex)
    ex.set_defaults(func=commands["export"])

    rs = sub.add_parser("resume", help="continue a run that was stopped or killed")
    rs.add_argument("run_dir", help="the run directory of a stopped, killed or time-limited run")
    rs.add_argument("--max-minutes", type=_typed("max_minutes"), help="a new time limit for this session")
    rs.add_argument("--json", action="store_true", help="print the final metrics as JSON on the last line")
    rs.add_argument("--plot", action="store_true", help="write PNG learning curves (and the forecast)")
    rs.add_argument("--threads", type=_typed("threads"), help=_THREADS_HELP)
    rs.set_defaults(func=commands["resume"])

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
    x.set_defaults(func=commands["explain"])

    b = sub.add_parser("bench", help="benchmarks against torch.nn / cuDNN measured in the same run")
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options of the suite (see birnn bench --help)")
    b.set_defaults(func=commands["bench"])

    dl = sub.add_parser("data", help="offline datasets")
    dsub = dl.add_subparsers(dest="data_command", metavar="list", parser_class=Parser, help="list: the datasets")
    ls = dsub.add_parser("list", help="datasets available offline and how to install each")
    ls.set_defaults(func=commands["data_list"])
    return p


_PRECISION_HELP = "fp32 or bf16 (bfloat16 autocast); default: the precision the run trained at"
_THREADS_HELP = ("CPU threads for PyTorch (default: what this process may use, as PyTorch counts them, never more "
                 "than the cores it is allowed to run on); printed in the run header")


def split_bench(argv: List[str]) -> Tuple[List[str], Optional[List[str]]]:
    """``birnn [global options] bench OPTIONS...``: everything after ``bench`` belongs to the
    suite's own parser (argparse would take ``--batch`` for an option of ``birnn`` itself)."""
    for i, token in enumerate(argv):
        if not token.startswith("-"):
            if token != "bench":
                return argv, None
            rest = argv[i + 1:]
            return argv[:i + 1], rest[1:] if rest[:1] == ["--"] else rest
    return argv, None
