"""A run's progress: a tqdm bar over every step on a terminal, else a line every 30 seconds,
with the time elapsed and left."""

from __future__ import annotations

import time

__all__ = ["Progress"]


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Whole-run progress: a tqdm bar over every step of the run on a terminal; without one, a
    line every 30 seconds. Each epoch's line says where the run is and how long it has left."""

    EVERY = 30.0  # seconds between progress lines without a terminal

    def __init__(self, trainer: "Trainer", total: int, start: float) -> None:
        self.trainer, self.total, self.start = trainer, total, start
        self.first_step = trainer.state.step
        self.last_line = start
        self.bar = None
        if trainer.config.progress and trainer.main:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=trainer.state.step, desc="training", unit="step", leave=True,
                            dynamic_ncols=True)

    def eta(self) -> str:
        done = self.trainer.state.step - self.first_step
        if done <= 0:
            return "?"
        left = (time.time() - self.start) / done * (self.total - self.trainer.state.step)
        return _clock(left)

    def where(self) -> str:
        s = self.trainer.state
        pct = 100 * s.step / max(self.total, 1)
        return f"step {s.step}/{self.total} ({pct:.0f}%), {_clock(time.time() - self.start)} elapsed, {self.eta()} left"

    def step(self, loss: float) -> None:
        s, c = self.trainer.state, self.trainer.config
        if self.bar is not None:
            shown = {"epoch": f"{s.epoch + 1}/{c.epochs}", "loss": f"{loss:.4f}"}
            if s.history:  # the dev metric of the last epoch
                shown[f"dev_{c.monitor}"] = f"{s.history[-1][f'dev_{c.monitor}']:.4f}"
            self.bar.set_postfix(shown)
            self.bar.update(1)
        elif self.trainer.main and time.time() - self.last_line >= self.EVERY:
            self.last_line = time.time()
            self.trainer.log(f"  epoch {s.epoch + 1}/{c.epochs}, {self.where()}, loss {loss:.4f}")

    def epoch(self, row: dict, improved: bool) -> None:
        c = self.trainer.config
        parts = [f"epoch {row['epoch']}/{c.epochs}", f"train_loss {row['train_loss']:.4f}"]
        parts += [f"{k} {v:.4f}" for k, v in row.items() if k.startswith("dev_") and isinstance(v, float)]
        parts += [f"lr {row['lr']:.2e}", f"{row['seconds']:.1f} s", f"({self.where()})"]
        line = "  ".join(parts) + (f"  * new best dev {c.monitor}" if improved else "")
        if self.bar is not None:
            self.bar.write(line)
        else:
            self.trainer.log(line)
        self.last_line = time.time()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
