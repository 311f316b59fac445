"""Readers of CSV/TSV tables with a header: texts and labels (``text``), numeric series
(``series``). The delimiter is the extension's (``.tsv``: tab), checked against the header."""

from __future__ import annotations

import csv
import math
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DataFormatError
from .readers import FLOAT32_MAX, Records, decoded_lines

__all__ = ["read_series_csv", "read_text_csv"]


_TEXT_COLUMNS = ("text", "sentence", "review", "document", "content")
_LABEL_COLUMNS = ("label", "category", "class", "sentiment", "target", "y")


def _delimiter(path) -> str:
    name = str(path).lower().replace(".bz2", "").replace(".gz", "")
    return "\t" if name.endswith(".tsv") else ","


_FIELD_LIMIT = 16 * 2 ** 20  # csv's default of 128 KiB is too small for long documents


def _csv_rows(path) -> Iterator[Tuple[int, int, List[str], List[str]]]:
    """(first line, last line, header, row) for each data row; checks every row has the header's
    width; errors name the line (encoding, malformed quotes, fields over 16 MiB)."""
    lines = decoded_lines(path)
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
            if not math.isfinite(v) or abs(v) > FLOAT32_MAX:
                raise DataFormatError(path, line, f"column {header[i]!r}: missing, infinite or out-of-range value "
                                                  f"{row[i]!r} (float32 holds up to about 3.4e38)")
            vals.append(v)
        values.append(vals)
    if not values:
        raise DataFormatError(path, 2, "no data rows after the header")
    return np.asarray(values, dtype=np.float32)

