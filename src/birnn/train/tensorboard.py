"""TensorBoard logs of a run (``birnn train --logger tensorboard``), beside the JSON/CSV logs:
event files under ``RUN/tensorboard/`` that ``tensorboard --logdir RUN`` shows —

- per optimizer step: ``train/loss`` (the step's mean loss) and ``train/lr``;
- per epoch: ``epoch/train_loss``, every dev metric as ``dev/NAME``, ``epoch/lr``;
- once: the run's configuration as text (``config``: what ``config.json`` holds).

Needs the ``tensorboard`` package (``pip install tensorboard``), which PyTorch's writer uses.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger:
    """A trainer callback (``on_step_end``, ``on_epoch_end``, ``on_train_end``) writing the
    run's scalars and configuration as TensorBoard events in ``run_dir / "tensorboard"``."""

    def __init__(self, run_dir, run_config: dict) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RuntimeError("--logger tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.dir = Path(run_dir) / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.dir))
        text = json.dumps(run_config, indent=1, default=str)
        self.writer.add_text("config", "```\n" + text + "\n```", global_step=0)

    def on_step_end(self, trainer, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def on_epoch_end(self, trainer, row: dict) -> bool:
        step = row["step"]
        self.writer.add_scalar("epoch/train_loss", row["train_loss"], step)
        self.writer.add_scalar("epoch/lr", row["lr"], step)
        for key, value in row.items():
            if key.startswith("dev_") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"dev/{key[4:]}", value, step)
        self.writer.flush()
        return False

    def on_train_end(self, trainer, reason: str) -> None:
        self.writer.close()
