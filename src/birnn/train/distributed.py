"""Multi-process data parallelism: ``torchrun --nproc_per_node 2 -m birnn train ...``.

Under torchrun (``WORLD_SIZE`` > 1 in the environment) :func:`init_from_env` joins the
process group (gloo on CPU, nccl on GPU); the :class:`~birnn.train.loop.Trainer` then wraps
the model in DistributedDataParallel and gives each process its share of every global batch,
normalising the loss by the global count, so a run equals a one-process run on the same
global batch.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["init_from_env", "shutdown"]


def init_from_env() -> bool:
    """Join the process group torchrun describes; False (nothing done) outside torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return dist.is_available() and dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
