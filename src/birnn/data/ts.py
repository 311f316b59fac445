"""The reader of UCR/UEA ``.ts`` time-series archive files (``ts``): ``((T, C) array, label)``
per case, channels ``:``-separated, missing values ``?``, timestamped values ``(t,v)``."""

from __future__ import annotations

import math
import re
from typing import List, Optional, Tuple

import numpy as np

from .errors import DataFormatError
from .readers import FLOAT32_MAX, Records, numbered_lines

__all__ = ["read_ts"]


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
        if not math.isfinite(v) or abs(v) > FLOAT32_MAX:
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
    for number, raw in numbered_lines(path):
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
