"""Pretrained word vectors (word2vec, GloVe, fastText) read for a vocabulary: the text formats
(``.txt``, ``.vec``, a ``N D`` header line or none, optionally ``.gz``) and word2vec's binary
format (``.bin``, optionally ``.gz``), the dimension read from the file, only the rows a
vocabulary asks for kept, and a matrix for an ``nn.Embedding`` of that vocabulary.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "v.txt")
>>> _ = open(path, "w").write("Paris 1 2\\nthe 3 4\\n")
>>> vec = read_vectors(path, ["paris", "the", "zzz"])
>>> vec.dim, vec.lookup("paris").tolist(), vec.lookup("zzz")
(2, [1.0, 2.0], None)
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

__all__ = ["Vectors", "embedding_matrix", "file_sha256", "read_vectors"]


@dataclass
class Vectors:
    """Word vectors read from ``path``: ``rows[word]`` is the row of ``matrix`` (N, dim);
    ``folded[lowercase]``: the first word of the file with that lowercase form (files list
    frequent words first)."""

    path: str
    dim: int
    matrix: np.ndarray
    rows: Dict[str, int] = field(default_factory=dict)
    folded: Dict[str, int] = field(default_factory=dict)
    sha256: str = ""
    leading: List[str] = field(default_factory=list)  # the file's first words (read_vectors' ``first``)

    def lookup(self, word: str) -> Optional[np.ndarray]:
        """The vector of ``word``: the exact word, else its lowercase form, else the file's most
        frequent word of that lowercase form; None when the file has none of them."""
        for i in (self.rows.get(word), self.rows.get(word.lower()), self.folded.get(word.lower())):
            if i is not None:
                return self.matrix[i]
        return None


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _is_binary(path: Path) -> bool:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return bool(suffixes) and suffixes[-1] == ".bin"


def _header(line: bytes) -> Optional[Tuple[int, int]]:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _text_rows(path: Path, keep) -> Tuple[int, List[Tuple[str, np.ndarray]]]:
    dim, out, seen = None, [], 0
    with _open(path) as f:
        for lineno, raw in enumerate(f, 1):
            head = _header(raw) if lineno == 1 else None
            if head:
                dim = head[1]
                continue
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.rstrip(" ").split(" ")
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise ValueError(f"{path}:{lineno}: expected a word and its vector's numbers, got {line[:60]!r}")
            if len(parts) != dim + 1:
                raise ValueError(f"{path}:{lineno}: expected a word and {dim} numbers (the dimension of the file's "
                                 f"first vector), got {len(parts) - 1} after {parts[0][:40]!r}")
            seen += 1
            if not keep(parts[0], seen):
                continue
            try:
                out.append((parts[0], np.array(parts[1:], dtype=np.float32)))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: the vector of {parts[0][:40]!r} holds a value that is not a "
                                 f"number") from None
    if dim is None:
        raise ValueError(f"{path}: no vectors in the file")
    return dim, out


def _binary_rows(path: Path, keep) -> Tuple[int, List[Tuple[str, np.ndarray]]]:
    out = []
    with _open(path) as f:
        head = _header(f.readline())
        if head is None:
            raise ValueError(f"{path}:1: a word2vec binary file starts with a line 'COUNT DIMENSION'")
        count, dim = head
        for i in range(1, count + 1):
            word = bytearray()
            while True:
                ch = f.read(1)
                if not ch:
                    raise ValueError(f"{path}: vector {i} of {count}: the file ends inside its word")
                if ch == b" ":
                    break
                if ch != b"\n" or word:  # (a newline may follow the previous vector)
                    word += ch
            data = f.read(4 * dim)
            if len(data) != 4 * dim:
                raise ValueError(f"{path}: vector {i} of {count} ({word.decode('utf-8', 'replace')[:40]!r}): the file "
                                 f"ends inside its {dim} numbers")
            text = word.decode("utf-8", errors="replace")
            if keep(text, i):
                out.append((text, np.frombuffer(data, dtype="<f4").astype(np.float32)))
    return dim, out


def read_vectors(path, wanted: Optional[Iterable[str]] = None, first: int = 0) -> Vectors:
    """The vectors in ``path`` of the words a vocabulary ``wanted`` may look up (exactly or
    lowercased; all of the file's when None), and of the file's ``first`` words (files list
    frequent words first; :attr:`Vectors.leading`). Raises ValueError naming the file and line
    (the vector, in a binary file) of a malformed one, FileNotFoundError naming a missing file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file {path} not found")
    folded = None if wanted is None else {w.lower() for w in wanted}
    leading: List[str] = []

    def keep(word: str, k: int) -> bool:  # (k: the vector's place in the file, from 1)
        if k <= first:
            leading.append(word)
            return True
        return folded is None or word.lower() in folded

    dim, rows = (_binary_rows if _is_binary(path) else _text_rows)(path, keep)
    matrix = np.stack([v for _, v in rows]) if rows else np.zeros((0, dim), np.float32)
    if not np.isfinite(matrix).all():
        bad = rows[int(np.argwhere(~np.isfinite(matrix))[0, 0])][0]
        raise ValueError(f"{path}: the vector of {bad[:40]!r} holds inf or nan")
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    for i, (w, _) in enumerate(rows):
        index.setdefault(w, i)
        low.setdefault(w.lower(), i)
    return Vectors(str(path), dim, matrix, index, low, file_sha256(path), leading)


def embedding_matrix(itos: List[str], vectors: Vectors, *, specials: Dict[str, str], seed: int = 0
                     ) -> Tuple[np.ndarray, int]:
    """The ``(len(itos), dim)`` rows of an embedding for the vocabulary ``itos``, and how many
    came from the file: each word's vector (:meth:`Vectors.lookup`); words without one drawn from
    ``N(0, s^2)`` with ``s`` the spread of the found vectors (so they start on the same scale);
    ``specials``: ``{token: "zero" | "mean"}`` (padding: zeros; the unknown word: the mean of the
    found vectors)."""
    rng = np.random.default_rng(seed)
    found = {i: v for i, w in enumerate(itos) if w not in specials for v in [vectors.lookup(w)] if v is not None}
    hits = np.stack(list(found.values())) if found else np.zeros((0, vectors.dim), np.float32)
    scale = float(hits.std()) if len(hits) > 1 else 0.1
    mean = hits.mean(0) if len(hits) else np.zeros(vectors.dim, np.float32)
    out = rng.normal(0.0, scale, (len(itos), vectors.dim)).astype(np.float32)
    for i, v in found.items():
        out[i] = v
    for i, w in enumerate(itos):
        if w in specials:
            out[i] = 0.0 if specials[w] == "zero" else mean
    return out, len(found)
