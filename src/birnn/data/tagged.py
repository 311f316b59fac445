"""Readers of tagged sentences: CoNLL-U (``conllu``), ``word/TAG`` tokens (``wordtag``) and
token-per-line columns (``columns``, two-column CoNLL, BIO/NER); each sentence is
``(words, tags)``.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "brown.txt")
>>> _ = open(path, "w").write("The/AT jury/NN said/VBD ./.\\n\\n\\t1/2/CD cup/NN\\n")
>>> read_wordtag(path)
[(['The', 'jury', 'said', '.'], ['AT', 'NN', 'VBD', '.']), (['1/2', 'cup'], ['CD', 'NN'])]
"""

from __future__ import annotations

import re
from typing import List, Optional

from .errors import DataFormatError
from .readers import Records, Tagged, numbered_lines

__all__ = ["bio_tags", "read_columns", "read_conllu", "read_wordtag"]


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

    for number, line in numbered_lines(path):
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
    for number, line in numbered_lines(path):
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

    for number, line in numbered_lines(path):
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
