"""What a training run is told: :class:`TrainConfig` (every training option, checked) and the
choices its options take, and the precision a model runs at (:func:`precision`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

__all__ = ["LOGGERS", "PRECISIONS", "SCHEDULES", "SELECTS", "TrainConfig", "precision"]

SCHEDULES = ("plateau", "cosine", "constant")
LOGGERS = ("json", "tensorboard")  # json: log.jsonl and log.csv (always written); tensorboard: also event files
SELECTS = ("best", "last")  # the weights a run ends on
PRECISIONS = ("fp32", "bf16")  # bf16: the forward passes under torch.autocast (bfloat16 matmuls), float32 weights


def precision(name: str, device) -> "torch.autocast":
    """The context a model runs in at ``precision``: ``"bf16"`` is :class:`torch.autocast` to
    bfloat16 on ``device``'s type (matmuls and RNN ops in bfloat16, weights, optimizer state and
    losses in float32: no loss scaling needed), ``"fp32"`` a context that changes nothing.

    >>> with precision("bf16", "cpu"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    """
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {name!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=name == "bf16")


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    clip_norm: float = 5.0
    schedule: str = "plateau"  # plateau: halve the lr after 2 epochs without dev improvement
    warmup_steps: int = 0
    patience: int = 6  # early stopping: epochs without dev improvement
    monitor: str = "accuracy"
    maximize: bool = True
    seed: int = 0
    save_every: int = 50  # steps between mid-epoch checkpoints (0: epoch ends only)
    max_minutes: Optional[float] = None
    select: str = "best"  # the weights a run ends on: "best" dev epoch, or "last" (fixed budgets)
    progress: bool = True
    device: str = "cpu"
    accumulate: int = 1  # batches whose gradients make one optimizer step
    logger: str = "json"  # "tensorboard": also TensorBoard event files in RUN/tensorboard (birnn.train.tensorboard)
    precision: str = "fp32"  # "bf16": forward passes (training and dev scoring) under bfloat16 autocast
    # CPU threads (None: this process's default). birnn.runs applies it and run.toml records it:
    # another count sums in another order, so the weights differ (birnn resume keeps the count)
    threads: Optional[int] = None
    # training sequences longer than this are split into pieces (tagging) or cut (classification)
    # by the task (birnn.tasks.train_run); None: as they are
    max_length: Optional[int] = None

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}; got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {self.precision!r}")
        if self.logger not in LOGGERS:
            raise ValueError(f"logger must be one of {LOGGERS}; got {self.logger!r}")
        if self.select not in SELECTS:
            raise ValueError(f"select must be {' or '.join(map(repr, SELECTS))}; got {self.select!r}")
        for name in ("epochs", "batch_size", "accumulate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
