"""Reading a task's data from a *source*: a bundled dataset or files in a named format.

A source is the mapping the CLI and ``run.toml`` carry (keys ``dataset``, ``train``, ``dev``,
``test``, ``format``, ``text_column``, ``label_column``, ``tag_column``, ``columns``,
``split_seed``). This module is the one place that turns it into records.
"""

from __future__ import annotations

from typing import Mapping, Optional

from .datasets import SeriesSplits, Splits, load_dataset, seeded_split
from .readers import infer_format
from .tables import read_series_csv, read_text_csv
from .tagged import read_columns, read_conllu, read_wordtag
from .ts import read_ts

__all__ = ["TASK_FORMATS", "load_source", "read_source_file"]

# which file formats each task reads
TASK_FORMATS = {"tag": ("conllu", "wordtag", "columns"), "classify": ("text", "ts"), "forecast": ("series",)}


def read_source_file(task: str, path, source: Optional[Mapping] = None, labelled: bool = True,
                     channels: Optional[int] = None):
    """The records of one file for ``task``, in ``source["format"]`` or the format its name implies.

    ``labelled=False`` reads files without labels/tags (for prediction); ``channels`` is the
    channel count a ``.ts`` file must have.
    """
    source = source or {}
    if task not in TASK_FORMATS:
        raise ValueError(f"task must be one of {', '.join(TASK_FORMATS)}, got {task!r}")
    fmt = source.get("format") or infer_format(path, task)
    allowed = TASK_FORMATS[task]
    if fmt not in allowed:
        raise ValueError(f"format {fmt!r} does not fit the {task} task; use one of {', '.join(allowed)} (--format)")
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


def load_source(task: str, source: Mapping):
    """The splits a source names: its dataset, or its train/dev/test files.

    Without a dev file, dev is a seeded 10% of train (``split_seed``, default 13); a forecast
    series is split in time 80/10/10.
    """
    if source.get("dataset"):
        return load_dataset(source["dataset"])
    train = read_source_file(task, source["train"], source)
    if task == "forecast":
        T = len(train)
        if T < 10:
            raise ValueError(f"{source['train']}: a series of {T} values is too short to split for forecasting")
        return SeriesSplits(train, int(T * 0.8), int(T * 0.9), {"split": "in time 80/10/10", "file": source["train"]})
    if not train:
        raise ValueError(f"{source['train']}: no records")
    dev = read_source_file(task, source["dev"], source) if source.get("dev") else None
    test = read_source_file(task, source["test"], source) if source.get("test") else []
    info = {"train": source["train"]}
    if dev is None:
        seed = int(source.get("split_seed", 13))
        train, dev, _ = seeded_split(train, (0.9, 0.1), seed=seed)
        info["split"] = f"dev: a seeded 10% of --train (seed {seed})"
    return Splits(train, dev, test, info)
