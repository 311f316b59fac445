"""Readers for the formats sequence-model users have. Each returns plain Python records and
raises :class:`~birnn.data.errors.DataFormatError` (``file:line: what was wrong``) for
malformed input: nothing half-loaded is ever returned.

=============  ==========================================  ===================================
format         file                                        records
=============  ==========================================  ===================================
``conllu``     CoNLL-U (Universal Dependencies)            (words, tags) per sentence
``wordtag``    one sentence per line of ``word/TAG``       (words, tags) per sentence
               tokens (Brown corpus style)
``columns``    token ... tag per line, blank line between  (words, tags) per sentence
               sentences (two-column CoNLL, BIO/NER)
``text``       CSV/TSV with a header: text and label       (text, label) per row
``series``     CSV/TSV with a header: numeric columns      one (T, C) float array
``ts``         UCR/UEA ``.ts`` time-series archive files   ((T, C) array, label) per case
=============  ==========================================  ===================================

The readers by family: :mod:`.tagged` (CoNLL-U, word/TAG, columns), :mod:`.tables` (CSV/TSV
text and series), :mod:`.ts` (UCR/UEA). This module: the formats, their inference from a
file name, the records a reader returns and reading a file's lines.
"""

from __future__ import annotations

import bz2
import gzip
import os
import stat
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DataFormatError

__all__ = ["FLOAT32_MAX", "FORMATS", "Records", "Tagged", "decoded_lines", "infer_format", "numbered_lines", "read_lines",
           "where"]

Tagged = Tuple[List[str], List[str]]
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the largest value a series may hold (the models read float32)

FORMATS = ("conllu", "wordtag", "columns", "text", "series", "ts")
_EXTENSIONS = {".conllu": "conllu", ".txt": "wordtag", ".pos": "wordtag", ".bio": "columns", ".conll": "columns",
               ".iob": "columns", ".ts": "ts", ".csv": None, ".tsv": None}


def infer_format(path, task: Optional[str] = None) -> str:
    """The format for a file name (``.csv``/``.tsv`` hold ``series`` for forecasting, else ``text``)."""
    name = str(path).lower()
    for packed in (".bz2", ".gz"):
        name = name[: -len(packed)] if name.endswith(packed) else name
    ext = os.path.splitext(name)[1]
    if ext not in _EXTENSIONS:
        raise ValueError(f"cannot infer the format of {path} from its extension {ext or '(none)'}; "
                         f"give one of {', '.join(FORMATS)}")
    fmt = _EXTENSIONS[ext]
    return fmt if fmt is not None else ("series" if task == "forecast" else "text")


class Records(list):
    """Records read from a file, with where each one starts (for messages): ``path`` and
    ``lines[i]``, the line record ``i`` starts at."""

    def __init__(self, items=(), path=None, lines=(), token_lines=None):
        super().__init__(items)
        self.path = None if path is None else str(path)
        self.lines = list(lines)
        self.token_lines = token_lines  # tagged sentences: the line of each token, where tokens have lines

    def subset(self, indices: Sequence[int]) -> "Records":
        """Records ``indices`` (in that order), still saying where each came from."""
        lines = [self.lines[i] for i in indices] if len(self.lines) == len(self) else []
        tokens = ([self.token_lines[i] for i in indices]
                  if self.token_lines is not None and len(self.token_lines) == len(self) else None)
        return Records([self[i] for i in indices], self.path, lines, tokens)

    def where(self, i: int, token: Optional[int] = None) -> str:
        """``file:line`` of record ``i`` (of its ``token``-th token, for tagged sentences), or
        ``record i+1`` when the records have no file."""
        if self.path is not None and token is not None and self.token_lines is not None \
                and i < len(self.token_lines) and token < len(self.token_lines[i]):
            return f"{self.path}:{self.token_lines[i][token]}"
        if self.path is not None and i < len(self.lines):
            return f"{self.path}:{self.lines[i]}"
        return f"record {i + 1}"


def where(records, i: int, token: Optional[int] = None) -> str:
    """``file:line`` of record ``i`` (and its ``token``) of any record list (plain lists:
    ``record i+1``)."""
    return records.where(i, token) if isinstance(records, Records) else f"record {i + 1}"


def _open_binary(path):
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataFormatError(path, None, "is a directory, not a data file")
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device would block or never end
        raise DataFormatError(path, None, "is not a regular file (a pipe or a device?); give a file")
    if path.endswith(".bz2"):
        return bz2.open(path)
    if path.endswith(".gz"):
        return gzip.open(path)
    return open(path, "rb")


def decoded_lines(path) -> Iterator[Tuple[int, str]]:
    """(line number, text with its line ending) of a UTF-8 file (a leading BOM dropped), decoded
    line by line, so an encoding error names its line and the byte within it."""
    with _open_binary(path) as f:
        try:
            for number, raw in enumerate(f, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataFormatError(path, number, f"not UTF-8 text ({e.reason} at byte {e.start + 1} of "
                                                        "the line)") from None
                yield number, (text[1:] if number == 1 and text.startswith("\ufeff") else text)
        except (OSError, EOFError) as e:  # a damaged .bz2/.gz
            raise DataFormatError(path, None, f"cannot be read ({e})") from None


def numbered_lines(path) -> Iterator[Tuple[int, str]]:
    for number, line in decoded_lines(path):
        yield number, line.rstrip("\r\n")


def read_lines(path) -> List[str]:
    """The non-blank lines of a UTF-8 text file, stripped (errors name the file and line)."""
    return [line.strip() for _, line in numbered_lines(path) if line.strip()]
