"""The interface every backend implements, and what a backend declares it runs.

Each backend (one module in this package) declares its :class:`Capabilities` in one place:
the cells, the features and call arguments beyond torch.nn's, the dtypes, the devices and
the capture modes it runs. Anything a plan uses that a backend does not declare, that backend
refuses (:meth:`Capabilities.refuses`), so a feature added to birnn later is run by the
reference scan until another backend declares it: it is never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, FrozenSet, Optional, Protocol, Sequence, Tuple

import torch

from .plan import LayerPlan
from .multilayer import Ran

__all__ = ["ANY", "Backend", "Capabilities", "EAGER"]

ANY: FrozenSet = frozenset({"*"})  # a capability field that allows everything (the reference scan's)
EAGER = None  # the capture mode of a call that runs rather than is captured (plan.capture)


def _unrun(what: str) -> Callable[[Sequence[str]], str]:
    return lambda names: f"{what} does not run {', '.join(names)}"


@dataclass(frozen=True)
class Capabilities:
    """What one backend runs. ``uses``: the names of :attr:`LayerPlan.uses` (birnn's features
    such as ``zoneout``, call arguments such as ``resets``, and ``proj_size``); ``cells``:
    torch.nn mode strings (:data:`birnn.cells.CELLS`); ``devices``: device types; ``captures``:
    :attr:`LayerPlan.capture` values (None: run eagerly, "compile", "export"); ``dtypes``:
    ``torch.dtype`` s. :data:`ANY` allows every value; ``says`` words the refusal of uses."""

    name: str
    uses: FrozenSet[str] = frozenset()
    cells: FrozenSet[str] = ANY
    devices: FrozenSet[str] = ANY
    captures: FrozenSet[Optional[str]] = ANY
    dtypes: FrozenSet = ANY
    says: Optional[Callable[[Sequence[str]], str]] = None

    def refuses(self, plan: LayerPlan) -> Optional[str]:
        """Why the plan asks for something not declared here (a sentence), or None."""
        unrun = [u for u in plan.uses if not _allows(self.uses, u)]
        if unrun:
            return (self.says or _unrun(self.name))(unrun)
        if not _allows(self.cells, plan.mode):
            return f"{self.name} does not run the {plan.mode} cell (it runs {', '.join(sorted(self.cells))})"
        device = plan.x.device.type
        if not _allows(self.devices, device):
            return f"{self.name} runs on {' or '.join(sorted(self.devices))}, the input is on {device}"
        if not _allows(self.captures, plan.capture):
            mode = {None: "eagerly (outside graph capture)", "compile": "under torch.compile", "export": "under torch.export"}
            return f"{self.name} does not run {mode[plan.capture]}"
        if not _allows(self.dtypes, plan.x.dtype):
            names = ", ".join(sorted(str(d).split(".")[-1] for d in self.dtypes))
            return f"{self.name} runs {names}, not {plan.x.dtype}"
        return None


def _allows(allowed: FrozenSet, value) -> bool:
    return "*" in allowed or value in allowed  # (not ``is ANY``: dynamo copies frozensets it traces)


class Backend(Protocol):
    """An implementation of birnn's layers.

    ``paths``: the names it runs under (``layer.path``, ``result.path``). ``capabilities``: what
    it declares it runs. ``supports`` says why it cannot run a plan (a sentence naming what is in
    the way), or None: the capabilities' refusal first, then what only the call can tell (sizes,
    tracing). ``run`` runs a plan it supports under one of its paths and returns the stack's
    output and states, time-major.
    """

    paths: Tuple[str, ...]
    capabilities: Capabilities

    def supports(self, plan: LayerPlan) -> Optional[str]: ...

    def run(self, plan: LayerPlan, path: str) -> Ran: ...

