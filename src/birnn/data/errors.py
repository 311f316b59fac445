"""``DataFormatError``: a malformed input file, reported as ``file:line: what was wrong``."""

from __future__ import annotations

from typing import Optional

__all__ = ["DataFormatError"]


class DataFormatError(ValueError):
    """Raised by every reader for malformed input; nothing half-loaded is returned.

    >>> str(DataFormatError("x.conllu", 12, "expected 10 tab-separated fields, got 3"))
    'x.conllu:12: expected 10 tab-separated fields, got 3'
    """

    def __init__(self, path, line: Optional[int], message: str) -> None:
        self.path, self.line, self.message = str(path), line, message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")
