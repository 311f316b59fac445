"""Text to tokens for classification: lowercase words and punctuation marks.

>>> tokenize("It's a three-hour cinema master class!")
['it', "'", 's', 'a', 'three', '-', 'hour', 'cinema', 'master', 'class', '!']
"""

from __future__ import annotations

import re
from typing import List

__all__ = ["tokenize"]

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> List[str]:
    return _TOKEN.findall(text.lower())
