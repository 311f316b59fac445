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

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "brown.txt")
>>> _ = open(path, "w").write("The/AT jury/NN said/VBD ./.\\n\\n\\t1/2/CD cup/NN\\n")
>>> read_wordtag(path)
[(['The', 'jury', 'said', '.'], ['AT', 'NN', 'VBD', '.']), (['1/2', 'cup'], ['CD', 'NN'])]
"""

from __future__ import annotations

import bz2
import csv
import gzip
import math
import os
import re
import stat
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DataFormatError

__all__ = [
    "FORMATS",
    "Records",
    "bio_tags",
    "where",
    "infer_format",
    "read_columns",
    "read_conllu",
    "read_lines",
    "read_series_csv",
    "read_text_csv",
    "read_ts",
    "read_wordtag",
]

Tagged = Tuple[List[str], List[str]]

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


def _decoded(path) -> Iterator[Tuple[int, str]]:
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


def _lines(path) -> Iterator[Tuple[int, str]]:
    for number, line in _decoded(path):
        yield number, line.rstrip("\r\n")


def read_lines(path) -> List[str]:
    """The non-blank lines of a UTF-8 text file, stripped (errors name the file and line)."""
    return [line.strip() for _, line in _lines(path) if line.strip()]


# -- CoNLL-U ---------------------------------------------------------------------------------
_CONLLU_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
_ID = re.compile(r"^(\d+)(?:-(\d+)|\.(\d+))?$")


def read_conllu(path, tag_column: str = "upos", require_tags: bool = True) -> List[Tagged]:
    """Sentences of a CoNLL-U file: the syntactic words (multiword-token ranges and empty nodes
    are skipped, as the format prescribes) and the ``tag_column`` ("upos" or "xpos").

    Checked on every line: 10 tab-separated fields, a valid ID, word IDs 1, 2, 3, ... in each
    sentence, a non-empty FORM, and (with ``require_tags``) a tag other than ``_``.
    """
    import conllu  # the spec-complete field parser; lines are validated here for line numbers

    if tag_column not in ("upos", "xpos"):
        raise ValueError(f"tag_column must be 'upos' or 'xpos', got {tag_column!r}")
    col = _CONLLU_COLUMNS.index(tag_column)
    sentences = Records(path=path, token_lines=[])
    block: List[str] = []
    word_lines: List[int] = []
    expected = 1
    start = 1

    def finish():
        nonlocal block, expected, word_lines
        if block:
            parsed = conllu.parse("\n".join(block) + "\n\n", fields=_CONLLU_COLUMNS)[0]
            words = [t for t in parsed if isinstance(t["id"], int)]
            if not words:  # a multiword range must be followed by its words (1-2, then 1 and 2)
                raise DataFormatError(path, start, "the sentence starting here has no word lines, only "
                                                   "multiword-token ranges or empty nodes (a range 1-2 must be "
                                                   "followed by its words 1 and 2)")
            sentences.append(([t["form"] for t in words], [t[tag_column] or "_" for t in words]))
            sentences.lines.append(start)
            sentences.token_lines.append(word_lines)
        block, expected, word_lines = [], 1, []

    for number, line in _lines(path):
        if not line.strip():
            finish()
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataFormatError(path, number, f"expected 10 tab-separated fields (ID FORM LEMMA UPOS XPOS FEATS "
                                                f"HEAD DEPREL DEPS MISC), got {len(fields)}")
        m = _ID.match(fields[0])
        if not m:
            raise DataFormatError(path, number, f"invalid ID {fields[0]!r} (expected 1, 2, ..., a range 1-2 or 1.1)")
        if not block:
            start = number
        if m.group(2) is None and m.group(3) is None:  # a word
            if int(m.group(1)) != expected:
                raise DataFormatError(path, number, f"word ID {m.group(1)} out of sequence: expected {expected} "
                                                    f"(sentence starting at line {start})")
            expected += 1
            word_lines.append(number)
            if not fields[1]:
                raise DataFormatError(path, number, "empty FORM")
            if require_tags and fields[col] in ("", "_"):
                raise DataFormatError(path, number, f"no {tag_column.upper()} tag ({fields[col]!r}) for word "
                                                    f"{fields[1]!r}")
        block.append(line)
    finish()
    return sentences


# -- word/TAG --------------------------------------------------------------------------------
def read_wordtag(path) -> List[Tagged]:
    """One sentence per non-blank line of whitespace-separated ``word/TAG`` tokens; the tag is
    what follows the *last* slash (so ``1/2/CD`` is the word ``1/2``)."""
    sentences = Records(path=path)
    for number, line in _lines(path):
        tokens = line.split()
        if not tokens:
            continue
        sentences.lines.append(number)
        words, tags = [], []
        for tok in tokens:
            word, slash, tag = tok.rpartition("/")
            if not slash or not word or not tag:
                raise DataFormatError(path, number, f"token {tok!r} is not word/TAG")
            words.append(word)
            tags.append(tag)
        sentences.append((words, tags))
    return sentences


# -- token ... tag columns (CoNLL, BIO) -----------------------------------------------------
_BIO = re.compile(r"^(O|[BIES]-\S+)$")


def bio_tags(tags) -> bool:
    """Whether a tag set is BIO/IOB2 (or BIOES): every tag ``O`` or ``B-X``/``I-X``/``E-X``/``S-X``,
    and at least one that is not ``O`` (entity spans, scored by span F1)."""
    tags = list(tags)
    return bool(tags) and all(_BIO.match(t) for t in tags) and any(t != "O" for t in tags)


def read_columns(path, scheme: Optional[str] = None) -> List[Tagged]:
    """Whitespace-separated columns, the token first and the tag last (two-column CoNLL/BIO
    files, or CoNLL-2003's four columns); a blank line ends a sentence; ``-DOCSTART-`` lines
    are skipped. ``scheme="bio"`` checks each tag is ``O`` or ``B-X``/``I-X`` (also E-/S-)."""
    sentences = Records(path=path, token_lines=[])
    words: List[str] = []
    tags: List[str] = []
    token_lines: List[int] = []

    def finish():
        sentences.append((words, tags))
        sentences.lines.append(token_lines[0])
        sentences.token_lines.append(token_lines)

    for number, line in _lines(path):
        fields = line.split()
        if not fields:
            if words:
                finish()
            words, tags, token_lines = [], [], []
            continue
        if fields[0] == "-DOCSTART-":
            continue
        if len(fields) < 2:
            raise DataFormatError(path, number, f"expected a token and a tag, got one field {fields[0]!r}")
        if scheme == "bio" and not _BIO.match(fields[-1]):
            raise DataFormatError(path, number, f"tag {fields[-1]!r} is not a BIO tag (O, B-TYPE or I-TYPE)")
        words.append(fields[0])
        tags.append(fields[-1])
        token_lines.append(number)
    if words:
        finish()
    return sentences


# -- CSV / TSV -------------------------------------------------------------------------------
_TEXT_COLUMNS = ("text", "sentence", "review", "document", "content")
_LABEL_COLUMNS = ("label", "category", "class", "sentiment", "target", "y")


def _delimiter(path) -> str:
    name = str(path).lower().replace(".bz2", "").replace(".gz", "")
    return "\t" if name.endswith(".tsv") else ","


_FIELD_LIMIT = 16 * 2 ** 20  # csv's default of 128 KiB is too small for long documents


def _csv_rows(path) -> Iterator[Tuple[int, int, List[str], List[str]]]:
    """(first line, last line, header, row) for each data row; checks every row has the header's
    width; errors name the line (encoding, malformed quotes, fields over 16 MiB)."""
    lines = _decoded(path)
    numbered: List[int] = []
    texts: List[str] = []  # the first line's text, to check the delimiter

    def feed():
        for number, text in lines:
            numbered.append(number)
            if not texts:
                texts.append(text)
            yield text

    delimiter = _delimiter(path)
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    start = 1  # the first line of the row being read
    try:
        try:
            header = next(reader)
        except StopIteration:
            raise DataFormatError(path, 1, "empty file: expected a header row") from None
        _check_delimiter(path, texts[0] if texts else "", delimiter)
        header = [h.strip() for h in header]
        start = len(numbered) + 1
        for row in reader:
            end = len(numbered)
            if row and len(row) != len(header):
                raise DataFormatError(path, start, f"expected {len(header)} fields as in the header, got {len(row)}")
            if row:
                yield start, end, header, row
            start = end + 1
    except csv.Error as e:
        if "end of data" in str(e) or (numbered and numbered[-1] > start and '"' in str(e)):
            raise DataFormatError(path, start, f"a quoted field opened on line {start} is not closed before line "
                                               f"{numbered[-1] if numbered else start} ({e})") from None
        raise DataFormatError(path, len(numbered) or 1, f"malformed {'TSV' if delimiter == chr(9) else 'CSV'} "
                                                        f"({e})") from None


def _check_delimiter(path, first: str, delimiter: str) -> None:
    """A file named .tsv whose header has commas and no tab (or .csv with tabs and no comma) is
    the other format under the wrong name: say so, rather than fail on its first quoted field."""
    other = "," if delimiter == "\t" else "\t"
    if delimiter not in first and other in first:
        names = {",": ("commas", "comma-separated", ".csv"), "\t": ("tabs", "tab-separated", ".tsv")}
        many, kind, suffix = names[other]
        n = first.count(other)
        raise DataFormatError(path, 1, f"the header has {n} {many if n > 1 else many[:-1]} and no "
                                       f"{names[delimiter][0][:-1]}: the file looks {kind}, but its name says "
                                       f"{'.tsv' if delimiter == chr(9) else '.csv'}; rename it to {suffix}")


def _pick(header: Sequence[str], wanted: Optional[str], defaults: Sequence[str], what: str, path) -> int:
    lower = [h.lower() for h in header]
    if wanted is not None:
        if wanted.lower() not in lower:
            raise DataFormatError(path, 1, f"no column {wanted!r} for the {what}; the header has {list(header)}")
        return lower.index(wanted.lower())
    for name in defaults:
        if name in lower:
            return lower.index(name)
    raise DataFormatError(path, 1, f"cannot tell which column holds the {what}: none of {list(defaults)} in the "
                                   f"header {list(header)}; name it explicitly")


def read_text_csv(path, text_column: Optional[str] = None, label_column: Optional[str] = None,
                  keep_labels: Optional[Sequence[str]] = None, require_labels: bool = True) -> List[Tuple[str, str]]:
    """(text, label) rows of a CSV/TSV with a header. Columns default to the first of
    ``text/sentence/review/...`` and ``label/category/class/...``; ``keep_labels`` drops rows
    with other labels (e.g. Rotten Tomatoes' "plot" rows). Returns :class:`Records`."""
    out = Records(path=path)
    ti = li = None
    spanning = []  # (record, first line, last line) of texts quoted over several lines
    for line, end, header, row in _csv_rows(path):
        if ti is None:
            ti = _pick(header, text_column, _TEXT_COLUMNS, "text", path)
            li = _pick(header, label_column, _LABEL_COLUMNS, "label", path) if (require_labels or label_column) else None
        text = row[ti].strip()
        label = row[li].strip() if li is not None else ""
        if keep_labels is not None and label not in keep_labels:
            continue
        if not text:
            raise DataFormatError(path, line, "empty text")
        if require_labels and not label:
            raise DataFormatError(path, line, "empty label")
        out.append((text, label))
        out.lines.append(line)
        if end > line:
            spanning.append((len(out) - 1, line, end))
    if ti is None:
        raise DataFormatError(path, 2, "no data rows after the header")
    _refuse_swallowed_rows(out, spanning, li, path)
    return out


def _refuse_swallowed_rows(records: Records, spanning, label_index: Optional[int], path) -> None:
    """A text quoted over several lines is fine, unless one of its lines is a whole row with a
    known label: then a quote was left open and the rows after it were read as text."""
    if label_index is None or not spanning:
        return
    labels = {label for _, label in records}
    delimiter = _delimiter(path)
    for k, first, last in spanning:
        for line in records[k][0].splitlines():
            fields = next(csv.reader([line], delimiter=delimiter), [])
            if len(fields) > label_index and fields[label_index].strip() in labels and len(fields) >= 2:
                raise DataFormatError(path, first, f"the text quoted over lines {first}-{last} holds a whole row "
                                                   f"({line[:40]!r}...): an unclosed quote?")


def read_series_csv(path, columns: Optional[Sequence[str]] = None) -> np.ndarray:
    """A (T, C) float32 array from numeric columns of a CSV/TSV with a header: ``columns`` by
    name, or by default the last column (e.g. ``SUNACTIVITY`` of ``YEAR,SUNACTIVITY``)."""
    values: List[List[float]] = []
    idx: Optional[List[int]] = None
    for line, _, header, row in _csv_rows(path):
        if idx is None:
            idx = ([_pick(header, c, (), "series", path) for c in columns] if columns else [len(header) - 1])
        vals = []
        for i in idx:
            try:
                v = float(row[i])
            except ValueError:
                raise DataFormatError(path, line, f"column {header[i]!r}: {row[i]!r} is not a number") from None
            if not math.isfinite(v) or abs(v) > _FLOAT32_MAX:
                raise DataFormatError(path, line, f"column {header[i]!r}: missing, infinite or out-of-range value "
                                                  f"{row[i]!r} (float32 holds up to about 3.4e38)")
            vals.append(v)
        values.append(vals)
    if not values:
        raise DataFormatError(path, 2, "no data rows after the header")
    return np.asarray(values, dtype=np.float32)


# -- UCR/UEA .ts -----------------------------------------------------------------------------
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_TIMESTAMPED = re.compile(r"\(([^,()]*),([^()]*)\)")


def _ts_values(text: str, timestamps: bool, path, number: int) -> List[float]:
    if timestamps:
        parts = [v for _, v in _TIMESTAMPED.findall(text)]
    else:
        parts = text.split(",") if text.strip() else []
    out = []
    for p in parts:
        p = p.strip()
        if p == "?" or p.lower() == "nan":  # missing (UEA's variable-length files pad with NaN)
            out.append(float("nan"))
            continue
        try:
            v = float(p)
        except ValueError:
            raise DataFormatError(path, number, f"{p!r} is not a number (or ? for missing)") from None
        if not math.isfinite(v) or abs(v) > _FLOAT32_MAX:
            raise DataFormatError(path, number, f"{p!r} is infinite or beyond float32's range (about 3.4e38); "
                                                "write ? for a missing value")
        out.append(v)
    return out


def read_ts(path, channels: Optional[int] = None) -> List[Tuple[np.ndarray, Optional[str]]]:
    """Cases of a UCR/UEA ``.ts`` file: a (T, C) float32 array (``?`` -> NaN) and the class
    label (a string; None without ``@classLabel true``; the value for ``@targetLabel true``).

    The header (``@problemName``, ``@timeStamps``, ``@missing``, ``@univariate``,
    ``@dimensions``, ``@equalLength``, ``@seriesLength``, ``@classLabel``, ``@targetLabel``)
    must end with ``@data``; each case line holds the dimensions separated by ``:``, then the
    label. Lengths may vary between cases (``@equalLength false``), not between the
    dimensions of one case. With ``channels`` (a trained model's), every case must have that
    many dimensions. Returns :class:`Records`.
    """
    header = {}
    classes: Optional[List[str]] = None
    cases = Records(path=path)
    in_data = False
    for number, raw in _lines(path):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataFormatError(path, number, f"expected a @tag header line or @data, got {line[:40]!r}")
            tag, _, rest = line[1:].partition(" ")
            tag = tag.lower()
            if tag == "data":
                in_data = True
                continue
            rest = rest.strip()
            if tag == "classlabel":
                flag, _, names = rest.partition(" ")
                if flag.lower() not in ("true", "false"):
                    raise DataFormatError(path, number, f"@classLabel must be true or false, got {flag!r}")
                header["classlabel"] = flag.lower() == "true"
                classes = names.split() if header["classlabel"] else None
                if header["classlabel"] and not classes:
                    raise DataFormatError(path, number, "@classLabel true must list the class values")
            elif tag in ("dimensions", "serieslength") and not rest.isdigit():
                raise DataFormatError(path, number, f"@{line[1:].split()[0]} must be a whole number, got {rest!r}")
            elif tag in ("timestamps", "univariate", "equallength", "missing", "targetlabel") \
                    and rest.lower() not in ("true", "false"):
                raise DataFormatError(path, number, f"@{line[1:].split()[0]} must be true or false, got {rest!r}")
            else:
                header[tag] = rest
            continue
        timestamps = header.get("timestamps", "false").lower() == "true"
        labelled = header.get("classlabel", False) or header.get("targetlabel", "false").lower() == "true"
        fields = line.split(":")
        label = None
        if labelled:
            label = fields.pop().strip()
            if classes is not None and label not in classes:
                raise DataFormatError(path, number, f"class {label!r} is not one of @classLabel {classes}")
        dims = [_ts_values(f, timestamps, path, number) for f in fields]
        want = header.get("dimensions")
        if want is not None and (not want.isdigit() or len(dims) != int(want)):
            raise DataFormatError(path, number, f"expected @dimensions {want} dimensions, got {len(dims)}")
        if channels is not None and len(dims) != channels:
            raise DataFormatError(path, number, f"the model reads series of {channels} channel(s); this case has "
                                                f"{len(dims)}")
        lengths = {len(d) for d in dims}
        if len(lengths) != 1 or 0 in lengths:
            raise DataFormatError(path, number, f"the dimensions of a case must be non-empty and equally long, "
                                                f"got lengths {[len(d) for d in dims]}")
        series_length = header.get("serieslength")
        if header.get("equallength", "").lower() == "true" and series_length and len(dims[0]) != int(series_length):
            raise DataFormatError(path, number, f"@seriesLength is {series_length}, got {len(dims[0])} values")
        cases.append((np.asarray(dims, dtype=np.float32).T, label))
        cases.lines.append(number)
    if not in_data:
        raise DataFormatError(path, None, "no @data line")
    if not cases:
        raise DataFormatError(path, None, "no cases after @data")
    return cases
