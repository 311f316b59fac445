"""What a model and a training batch will take in memory, estimated before anything large is
allocated, so that a run too big for the machine is refused with its cause (the option, or the
file and line of the longest record) instead of torch's ``alloc_cpu.cpp`` message after
minutes of swapping.

- :func:`check_model`: the model is built on the ``meta`` device first (shapes, no storage):
  its parameters, their gradients and AdamW's two moments, against the memory available.
- :func:`batch_bytes`: one training step of a small probe batch runs under
  ``saved_tensors_hooks``, which see every tensor autograd keeps for the backward pass; their
  bytes per padded step, times the steps of the largest batch, estimate that batch's need.

>>> fits(10 * 2**20, available=2**30)
True
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import torch
from torch import nn

__all__ = ["MemoryNeeded", "available", "batch_bytes", "check_model", "fits", "gib", "model_bytes"]

SHARE = 1.0  # of the memory available that a run may plan to use (the estimate errs high)
TRAINING_COPIES = 4  # parameters, gradients, AdamW's exp_avg and exp_avg_sq
OVERHEAD = 1.5  # the peak over what autograd saves (measured: 1.2x for a tagger, 0.6x for a classifier)


class MemoryNeeded(ValueError):
    """A model or a batch would need more memory than this machine has available."""


def available() -> int:
    """Bytes this process may still allocate: the kernel's MemAvailable, or less under a cgroup
    limit (containers); the physical memory where neither can be read."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text.isdigit() and int(text) < 2 ** 60:
                used = 0
                for name in ("memory.current", "memory.usage_in_bytes"):
                    try:
                        with open(os.path.join(os.path.dirname(path), name)) as g:
                            used = int(g.read().strip())
                        break
                    except (OSError, ValueError):
                        continue
                limits.append(max(int(text) - used, 0))
        except OSError:
            continue
    if not limits:
        try:
            limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            return 2 ** 62
    return min(limits)


def gib(n: float) -> str:
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MiB"


def fits(need: float, *, available: Optional[int] = None) -> bool:
    """Whether ``need`` bytes fit in :data:`SHARE` of the memory available."""
    have = globals()["available"]() if available is None else available
    return need <= SHARE * have


def model_bytes(build: Callable[[], nn.Module]) -> int:
    """Bytes of the parameters and buffers of ``build()``'s model, built on the meta device (no
    storage is allocated, whatever the sizes)."""
    with torch.device("meta"):
        model = build()
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def check_model(build: Callable[[], nn.Module], what: str, *, training: bool, way_out: str) -> None:
    """Refuse a model that would not fit before building it for real: ``what`` names where its
    size comes from (an option, a file), ``way_out`` what to change."""
    try:
        size = model_bytes(build)
    except Exception:  # (a model that cannot be built on meta is built for real, as before)
        return
    need = size * (TRAINING_COPIES if training else 1)
    have = available()
    if not fits(need, available=have):
        use = "to train (weights, gradients and AdamW's two moments)" if training else "for its weights"
        raise MemoryNeeded(f"{what}: the model would hold {size // 4:,} float32 parameters, {gib(need)} {use}; "
                           f"this machine has {gib(have)} available: {way_out}")


def batch_bytes(step: Callable[[], torch.Tensor], steps: int, model: Optional[nn.Module] = None) -> float:
    """Bytes per padded step of one training step: ``step()`` runs a probe batch's forward and
    returns its loss; ``steps`` is that batch's padded size (B x T). Counts each storage that
    autograd saves once, less ``model``'s parameters (allocated already, whatever the batch)."""
    seen = {}
    weights = set() if model is None else {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor):
        try:
            storage = t.untyped_storage()
            if storage.data_ptr() in weights:
                return t
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        except (RuntimeError, NotImplementedError):  # (tensors without storage: nested, functional)
            seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    del loss
    return OVERHEAD * sum(seen.values()) / max(steps, 1)
