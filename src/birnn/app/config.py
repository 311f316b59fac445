"""The run configuration: every option's name, section and rule, TOML in and out, and the merge
of dataset preset < config file < flags that ``birnn train`` runs on (``run.toml`` is its dump).

The sections: ``source`` (where the data comes from), ``model``, ``layer`` (birnn's
regularisers of every recurrent layer) and ``train``. The command line (:mod:`birnn.cli`)
parses flags with :func:`check_value`'s rules and hands them to :func:`resolve`.

>>> check_value("lr", 0.01)
0.01
>>> check_value("dropout", 1.5)
Traceback (most recent call last):
birnn.app.config.UsageError: --dropout must be in [0, 1), got 1.5
>>> print(dump_toml({"task": "tag", "train": {"epochs": 3, "lr": 0.01}}).strip())
task = "tag"
<BLANKLINE>
[train]
epochs = 3
lr = 0.01
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from ..options import PROBABILITIES, LayerOptions
from .run_options import MODEL_OPTIONS, SOURCE_OPTIONS, TRAIN_OPTIONS
from .tasks import TASKS

__all__ = ["DEFAULT_DATASET", "LAYER_FIELDS", "MODEL_FIELDS", "PATH_FIELDS", "RULES", "SECTIONS", "SOURCE_FIELDS",
           "TASKS", "TRAIN_FIELDS", "UsageError", "check_device", "check_file", "check_value", "choices", "dump_toml",
           "flag", "load_toml", "resolve"]

DEFAULT_DATASET = "japanese-vowels"
# the option tables (birnn.run_options, birnn.options) name every option each table holds
TRAIN_FIELDS = tuple(o.name for o in TRAIN_OPTIONS)
MODEL_FIELDS = tuple(o.name for o in MODEL_OPTIONS)
LAYER_FIELDS = tuple(name for name, *_ in LayerOptions.command_line())
SOURCE_FIELDS = tuple(o.name for o in SOURCE_OPTIONS)
PATH_FIELDS = ("train", "dev", "test", "embeddings")  # stored absolute in run.toml, so a run reruns from any folder
# what each table of a config file may hold (run.toml's [train] also records "maximize")
SECTIONS = {"source": SOURCE_FIELDS, "model": MODEL_FIELDS, "layer": LAYER_FIELDS,
            "train": TRAIN_FIELDS + ("maximize",)}


class UsageError(Exception):
    """A user error: printed as one line."""


# What each numeric option accepts: (type, lowest, lowest allowed?, highest or None, highest allowed?),
# from the option tables. The same rules check flags (argparse types) and values from a --config file.
RULES = {
    **{o.name: (o.type, *o.rule) for o in SOURCE_OPTIONS + MODEL_OPTIONS + TRAIN_OPTIONS if o.rule is not None},
    "count": (int, 1, True, None, False),  # explain's sizes
    **{k: (float, 0, True, 1, False) for k in LAYER_FIELDS if k in PROBABILITIES},
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def choices() -> dict:
    """What each named-choice option accepts, from the module that owns it (flags get them as
    argparse choices; configs are checked here)."""
    from ..data.encoding import TEXT_INPUTS
    from ..models import POOLINGS
    from ..train.settings import LOGGERS, PRECISIONS, SCHEDULES, SELECTS

    return {"input": ("auto",) + TEXT_INPUTS, "pooling": POOLINGS, "schedule": SCHEDULES, "select": SELECTS,
            "crf": ("auto", True, False), "logger": LOGGERS, "precision": PRECISIONS}


def check_value(name: str, value, where: Optional[str] = None):
    """``value`` of option ``name`` against :data:`RULES` and :func:`_choices` (and ``device``);
    returns it, or raises UsageError naming the option (``where``: how the user wrote it, e.g.
    ``train.lr in run.toml``)."""
    where = where or flag(name)
    if name == "device":
        return value if value == "auto" else check_device(value, where)
    allowed = choices().get(name)
    if allowed is not None:
        if value not in allowed:
            raise UsageError(f"{where} must be one of {', '.join(allowed)}; got {value!r}")
        return value
    rule = RULES.get(name)
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


def check_device(value, where: str) -> str:
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


def load_toml(path) -> dict:
    return _read_toml(path)[0]


def _read_toml(path) -> tuple:
    """(the parsed file, {(table, key): line} of its headers and keys); errors name the file."""
    import tomllib

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory; --config takes a TOML file (such as a run's run.toml)") from None
    except OSError as e:  # a symlink loop, no permission...
        raise UsageError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
        return tomllib.loads(text), _locations(text)
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: invalid TOML: {e}") from None


def _locations(text: str) -> dict:
    """{(table, None): line} of each ``[table]`` header and {(table, key): line} of each
    ``key = ...`` (table None at the top level), lines counted from 1."""
    import re

    where, table = {}, None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        m = re.match(r"^\[\s*([^\[\]]+?)\s*\]", line)
        if m:
            table = m.group(1).strip("\"'")
            where.setdefault((table, None), n)
            continue
        m = re.match(r"^([\"']?)([A-Za-z0-9_\-]+)\1\s*=", line)
        if m:
            where.setdefault((table, m.group(2)), n)
    return where


def _near(name: str, known, form: str = "{}") -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {form.format(close[0])}?)" if close else ""


def _owner(key: str) -> Optional[str]:
    return next((section for section, names in SECTIONS.items() if key in names), None)


def check_file(loaded: dict, path, where: dict) -> None:
    """Refuse what a config file holds that no run reads: unknown tables, unknown keys, keys in
    the wrong table, a ``task`` that is none of the tasks; each error names the file and line."""
    def at(table, key=None) -> str:
        line = where.get((table, key))
        return f"{path}, line {line}" if line else str(path)

    tables = ", ".join(f"[{t}]" for t in SECTIONS)
    for key, value in loaded.items():
        if key == "task":
            if value not in TASKS:
                raise UsageError(f"{at(None, key)}: task must be one of {', '.join(TASKS)}; got {value!r}")
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise UsageError(f"{at(None, key)}: {key} must be a table [{key}], got {value!r}")
            for name in value:
                if name in SECTIONS[key]:
                    continue
                home = _owner(name)
                if home is not None:
                    raise UsageError(f"{at(key, name)}: {name} belongs in [{home}], not in [{key}]")
                raise UsageError(f"{at(key, name)}: unknown option {name!r} in [{key}]{_near(name, SECTIONS[key])}; "
                                 f"known: {', '.join(SECTIONS[key])}")
        elif isinstance(value, dict):
            raise UsageError(f"{at(key)}: unknown table [{key}]{_near(key, SECTIONS, '[{}]')}; a config has the key task and "
                             f"the tables {tables}")
        else:
            home = _owner(key)
            if home is not None:
                raise UsageError(f"{at(None, key)}: {key} belongs in the table [{home}], not at the top level "
                                 f"(write it under a [{home}] line)")
            raise UsageError(f"{at(None, key)}: unknown key {key!r}{_near(key, ('task',))}; a config has the key "
                             f"task and the tables {tables}")


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


def _absolute(path, where: str) -> str:
    """``path`` made absolute (run.toml reruns from any folder); a symlink loop is refused here,
    naming the option, rather than deep in a reader."""
    try:
        return str(Path(path).resolve(strict=False))
    except (RuntimeError, OSError) as e:  # RuntimeError: pathlib's "Symlink loop from ..."
        raise UsageError(f"{where} {path}: cannot be resolved ({e})") from None


def resolve(flags: dict) -> dict:
    """Merge preset (dataset defaults) < config file (``flags["config"]``, a TOML path) < flags
    (option name -> value, None where not given) into {task, source, model, layer, train}."""
    from ..data import DATASETS

    conf = {"source": {}, "model": {}, "layer": {}, "train": {}}
    path = flags.get("config")
    if path:
        loaded, where = _read_toml(path)
        check_file(loaded, path, where)
        for section in ("source", "model", "layer", "train"):
            values = dict(loaded.get(section, {}))
            if isinstance(values.get("layers"), str):  # layers = "bilstm:64" is one spec, as the flag reads it
                values["layers"] = values["layers"].split()
            for key, value in values.items():
                line = where.get((section, key))
                place = f"{path}" + (f", line {line}" if line else "") + f": {section}.{key}"
                if key == "layers" and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                    raise UsageError(f"{place} must be a layer spec or a list of them, such as \"bilstm:64\" or "
                                     f"[\"bilstm:64\", \"bigru:32\"]; got {value!r}")
                check_value(key, value, where=place)
            if section in ("source", "model"):  # a config's relative paths are relative to the config file
                base = Path(path).resolve().parent
                values = {k: (str(base / v) if k in PATH_FIELDS and v else v) for k, v in values.items()}
            conf[section].update(values)
        if "task" in loaded:
            conf["task"] = loaded["task"]
    for section, names in (("source", SOURCE_FIELDS), ("model", MODEL_FIELDS), ("layer", LAYER_FIELDS),
                           ("train", TRAIN_FIELDS)):
        for name in names:
            if flags.get(name) is not None:
                conf[section][name] = _absolute(flags[name], flag(name)) if name in PATH_FIELDS else flags[name]
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
