"""The interface every backend implements (one module per backend in this package)."""

from __future__ import annotations

from typing import Optional, Protocol, Tuple

from .plan import LayerPlan
from .stack import Ran

__all__ = ["Backend"]


class Backend(Protocol):
    """An implementation of birnn's layers.

    ``paths``: the names it runs under (``layer.path``, ``result.path``). ``supports`` says why it
    cannot run a plan (a sentence naming what is in the way), or None; ``run`` runs a plan it
    supports under one of its paths and returns the stack's output and states, time-major.
    """

    paths: Tuple[str, ...]

    def supports(self, plan: LayerPlan) -> Optional[str]: ...

    def run(self, plan: LayerPlan, path: str) -> Ran: ...
