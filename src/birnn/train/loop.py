"""The training loop (:class:`Trainer`; what it is told: :mod:`.settings`). It knows nothing about the model beyond one method,
``model.loss(batch) -> (summed loss, count)``, and calls an ``evaluate(model) -> metrics``
function it is given. It provides AdamW, gradient clipping, a learning-rate schedule, early
stopping on a dev metric, a progress bar, JSON/CSV logs, atomic checkpoints that a killed run
resumes from exactly (batch order, optimizer, RNG), a time limit, and multi-process
data-parallel training (DDP) when ``torch.distributed`` is initialised.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import (CheckpointError, atomic_write_text, check_config, checkpoint_path, load_checkpoint,
                         load_config, load_weights, save_checkpoint, save_weights)
from .progress import Progress
from .settings import TrainConfig, precision

__all__ = ["Trainer", "TrainingDiverged"]

# batches of fewer padded steps are not probed for memory: a few GiB would take over 1 MiB a step
# (the model's own size is checked when it is built: birnn.train.memory.check_model)
PROBE_FROM = 4096
WAY_OUT = ("--max-length N splits (tag) or cuts (classify) longer training sequences; or use a smaller --batch-size "
           "or smaller --layers")


class TrainingDiverged(RuntimeError):
    pass


class _Loss(nn.Module):
    """model.loss as a forward, so DistributedDataParallel's hooks see the call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


@dataclass
class _State:
    epoch: int = 0
    batch: int = 0  # batches of ``epoch`` already done
    step: int = 0
    best: Optional[float] = None
    bad_epochs: int = 0
    plateau_bad: int = 0
    lr_scale: float = 1.0
    finished: bool = False
    history: List[dict] = field(default_factory=list)
    # the current epoch's batch losses so far: a resumed epoch logs the train_loss an
    # uninterrupted one logs (the same floats summed in the same order)
    losses: List[float] = field(default_factory=list)


class Trainer:
    """Args:
        model: has ``loss(batch) -> (loss_sum, count)``.
        examples: encoded training examples; ``collate(list) -> batch`` (with ``.to(device)``).
        lengths: the length of each example, for length-bucketed batches.
        evaluate: ``evaluate(model) -> {"accuracy": ...}``, called in eval mode after each epoch.
        run_dir: where checkpoints and logs go; ``run_config`` is saved there as config.json.
        callbacks: objects with any of ``on_step_end(trainer, step, loss, lr)`` (after each
            optimizer step: the step's mean loss and its learning rate),
            ``on_epoch_end(trainer, row) -> stop?`` (``row``: the epoch's log row; a true result
            stops training) and ``on_train_end(trainer, reason)``, as Keras' and Lightning's
            callbacks. ``config.logger == "tensorboard"`` adds one that writes TensorBoard events.
        where: ``where(i) -> "file:line"`` of the record that example ``i`` (its ``"index"``)
            came from, for errors that name the data (a sequence too long to train).
    """

    def __init__(self, model: nn.Module, examples: Sequence, collate: Callable, lengths: Sequence[int],
                 evaluate: Callable[[nn.Module], Dict[str, float]], config: TrainConfig, run_dir,
                 run_config: dict, log: Callable[[str], None] = print, callbacks: Sequence = (),
                 where: Optional[Callable[[int], str]] = None) -> None:
        self.model, self.examples, self.collate, self.lengths = model, examples, collate, list(lengths)
        self.evaluate, self.config, self.run_dir, self.run_config = evaluate, config, Path(run_dir), run_config
        self.log = log
        self.where = where or (lambda i: f"training example {i + 1}")
        self.callbacks = list(callbacks)
        self.device = torch.device(config.device)
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        loss = _Loss(model)
        self.loss_module = nn.parallel.DistributedDataParallel(loss) if self.distributed else loss
        self.state = _State()

    # -- bookkeeping -------------------------------------------------------------------------
    @property
    def main(self) -> bool:
        return self.rank == 0

    def _epoch_batches(self, epoch: int) -> List[List[int]]:
        from ..data.encoding import bucket_batches  # data sits below training in the flow

        gen = torch.Generator().manual_seed(self.config.seed * 1000 + epoch)
        return bucket_batches(self.lengths, self.config.batch_size, shuffle=True, generator=gen)

    def _lr(self, total_steps: int) -> float:
        c, s = self.config, self.state
        factor = s.lr_scale
        if c.warmup_steps and s.step < c.warmup_steps:
            factor *= (s.step + 1) / c.warmup_steps
        if c.schedule == "cosine":
            factor *= 0.5 * (1 + math.cos(math.pi * min(1.0, s.step / max(total_steps, 1))))
        return c.lr * factor

    def _save(self) -> None:
        if not self.main:
            return
        save_checkpoint(self.run_dir, model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                        state=asdict(self.state), rng={"torch": torch.get_rng_state()}, step=self.state.step)

    def _write_logs(self) -> None:
        if not self.main:
            return
        hist = self.state.history
        atomic_write_text(self.run_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in hist))
        keys = list(dict.fromkeys(k for r in hist for k in r))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(hist)
        atomic_write_text(self.run_dir / "log.csv", buf.getvalue())

    def _restore(self) -> bool:
        """Load the latest checkpoint; False when the run stopped before writing one."""
        saved = load_config(self.run_dir)
        check_config(saved, self.run_config)
        ckpt = load_checkpoint(self.run_dir)
        if ckpt is None:
            return False
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.state = _State(**ckpt["state"])
        return True

    def _diverged(self, what: str) -> TrainingDiverged:
        """The error for a non-finite loss, gradient or weight; it names a checkpoint only if one exists."""
        s = self.state
        try:
            kept = checkpoint_path(self.run_dir)
        except CheckpointError:
            kept = None
        where = (f"the last good checkpoint is {kept} (nothing non-finite was saved)" if kept is not None
                 else "no checkpoint had been written yet")
        return TrainingDiverged(f"{what} at epoch {s.epoch + 1}, step {s.step + 1}; stopped: {where}. "
                                "Try a lower --lr, or check the data for huge values")

    def _finish_weights(self) -> None:
        """model.safetensors: the weights the run ends on (the best dev epoch, or the last)."""
        if not self.main:
            return
        best = self.run_dir / "best.safetensors"
        state = load_weights(best) if self.config.select == "best" and best.exists() else self.model.state_dict()
        save_weights(self.run_dir / "model.safetensors", state)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict:
        """Train (or continue a saved run with ``resume``); returns the best dev metrics."""
        c = self.config
        self._check_memory()  # (before config.json: a refused run leaves no run directory)
        if resume and self._restore():
            self.log(f"resuming at epoch {self.state.epoch + 1}, batch {self.state.batch}, step {self.state.step}")
        else:
            if resume:
                self.log("the run stopped before its first checkpoint: training it again from the start")
            torch.manual_seed(c.seed)
            if self.main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(self.run_dir / "config.json", json.dumps(self.run_config, indent=1))
        if self.state.finished:
            if not (self.run_dir / "model.safetensors").exists():  # stopped between the two last writes
                self._finish_weights()
            self.log("this run has finished already")
            return self._final_metrics()
        if c.logger == "tensorboard" and self.main:
            from .tensorboard import TensorBoardLogger

            self.callbacks.append(TensorBoardLogger(self.run_dir, self.run_config))
        start = time.time()
        per_epoch = math.ceil(len(self.examples) / c.batch_size)
        total = self.total_steps()
        self._progress = Progress(self, total, start)
        stop_reason = None
        try:
            while self.state.epoch < c.epochs and stop_reason is None:
                stop_reason = self._run_epoch(per_epoch, total, start)
        finally:
            self._progress.close()
        if stop_reason is None:
            stop_reason = "finished all epochs"
        # model.safetensors first, then the checkpoint that says "finished": a stop between the two
        # resumes to a run that writes model.safetensors again (the epoch end's checkpoint is kept)
        self._finish_weights()
        if stop_reason != "time limit":
            self.state.finished = True
            self._save()
        self.log(f"stopped: {stop_reason}" + (f"; `birnn resume {self.run_dir}` continues it"
                                              if stop_reason == "time limit" else ""))
        for cb in self.callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(self, stop_reason)
        if self.distributed:
            dist.barrier()  # rank 0 has written best.safetensors and model.safetensors
        best = self.run_dir / "best.safetensors"
        if c.select == "best" and best.exists():
            self.model.load_state_dict(load_weights(best))
        return self._final_metrics()

    def _final_metrics(self) -> dict:
        """The dev metrics of the epoch whose weights the run ends on: the best one, or the last
        (``select``), whether the run finished now or had finished before a resume."""
        if self.config.select == "best":
            return self._best_metrics()
        return self.state.history[-1] if self.state.history else {}

    def _check_memory(self) -> None:
        """Refuse a training set whose largest batch would not fit in this machine's memory, before
        allocating it: one step of a small probe batch measures what autograd keeps per padded
        step (:mod:`birnn.train.memory`); the largest batch pads ``batch_size`` sequences to the
        longest one. CPU runs only (a GPU says so itself)."""
        from .memory import MemoryNeeded, available, batch_bytes, fits, gib

        if self.device.type != "cpu" or not self.lengths:
            return
        longest = max(range(len(self.lengths)), key=self.lengths.__getitem__)
        worst = min(self.config.batch_size, len(self.lengths)) * self.lengths[longest]
        # the probe: up to 4 examples of at most 64 steps (the longest such), or the 4 shortest
        order = sorted(range(len(self.lengths)), key=self.lengths.__getitem__)
        short = [i for i in order if self.lengths[i] <= 64] or order
        probe = short[-4:] if self.lengths[short[-1]] <= 64 else short[:4]
        steps = len(probe) * max(self.lengths[i] for i in probe)
        if worst <= max(steps, PROBE_FROM):
            return
        from ..data.encoding import repeat_steps

        was = self.model.training
        self.model.train()
        measured = []
        try:
            for times in (1, 4):  # two lengths: the bytes a step adds, without the per-batch part
                batch = self.collate([repeat_steps(self.examples[i], times) for i in probe]).to(self.device)
                with torch.random.fork_rng(devices=[]), precision(self.config.precision, self.device):
                    measured.append(batch_bytes(lambda: self.model.loss(batch)[0], 1, self.model))
        except Exception:  # a model the probe cannot run longer inputs through: train as before, unpriced
            return
        finally:
            self.model.train(was)
        per_step = max(measured[1] - measured[0], 0) / (3 * steps) or measured[1] / (4 * steps)
        need, have = per_step * worst, available()
        if not fits(need, available=have):
            raise MemoryNeeded(
                f"{self._record_of(longest)}: a sequence of {self.lengths[longest]:,} steps; a batch of "
                f"{worst // self.lengths[longest]} padded to it needs about {gib(need)} to train "
                f"({per_step / 1024:.1f} KiB a step), and this machine has {gib(have)} available: {WAY_OUT}")

    def _record_of(self, i: int) -> str:
        """Where example ``i``'s record came from ("file:line"), for errors that name the data."""
        ex = self.examples[i]
        return self.where(ex.get("index", i) if isinstance(ex, dict) else i)

    def _out_of_memory(self, error: RuntimeError, share: List[int]) -> Exception:
        """A failed allocation as a one-line error naming the batch's longest sequence (any other
        RuntimeError as it was)."""
        from .memory import MemoryNeeded

        text = str(error)
        if not isinstance(error, torch.OutOfMemoryError) and "allocate" not in text:
            return error
        longest = max(share, key=self.lengths.__getitem__)
        return MemoryNeeded(f"{self._record_of(longest)}: training ran out of memory on a batch of {len(share)} padded "
                            f"to this sequence's {self.lengths[longest]:,} steps ({text.splitlines()[0][:160]}): "
                            f"{WAY_OUT}")

    def _best_metrics(self) -> dict:
        c = self.config
        rows = [r for r in self.state.history if f"dev_{c.monitor}" in r]
        if not rows:
            return {}
        pick = max if c.maximize else min
        return pick(rows, key=lambda r: r[f"dev_{c.monitor}"])

    def total_steps(self) -> int:
        """Optimizer steps of the whole run (``accumulate`` batches make one step)."""
        c = self.config
        return math.ceil(math.ceil(len(self.examples) / c.batch_size) / c.accumulate) * c.epochs

    def _run_epoch(self, per_epoch: int, total: int, start: float) -> Optional[str]:
        c, s = self.config, self.state
        batches = self._epoch_batches(s.epoch)
        self.model.train()
        losses = s.losses  # (kept in the checkpoint: a resumed epoch continues the same list)
        t0 = time.time()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        step_losses: List[float] = []  # the mean losses of the current step's batches
        for i in range(s.batch, len(batches)):
            idx = batches[i][self.rank::self.world]
            # a process whose share of a short last batch is empty still joins the step (DDP's
            # gradient sync): it runs one example of the batch with weight 0 and count 0
            share = idx if idx else batches[i][:1]
            batch = self.collate([self.examples[j] for j in share]).to(self.device)
            try:
                with precision(c.precision, self.device):
                    loss_sum, count = self.loss_module(batch)
            except RuntimeError as e:  # (torch.OutOfMemoryError is one too)
                raise self._out_of_memory(e, share) from None
            if not idx:
                loss_sum, count = loss_sum * 0.0, 0
            count_t = torch.tensor(float(count), device=self.device)
            value_t = loss_sum.detach().clone()
            if self.distributed:
                dist.all_reduce(count_t)
                dist.all_reduce(value_t)
            # ``accumulate`` batches make one step, each batch's mean loss counting 1/accumulate (Lightning's
            # rule; the epoch's last step may have fewer); checkpoints fall between steps only
            first = i // c.accumulate * c.accumulate
            end = min(first + c.accumulate, len(batches))
            loss = loss_sum * self.world / count_t.clamp(min=1) / (end - first)
            value = float(value_t) / float(count_t.clamp(min=1))  # the global mean loss, as one process logs it
            if not math.isfinite(value):
                raise self._diverged(f"the training loss became {value}")
            try:
                loss.backward()
            except RuntimeError as e:
                raise self._out_of_memory(e, share) from None
            losses.append(value)
            step_losses.append(value)
            if i + 1 < end:  # more batches of this step to come
                continue
            for g in self.optimizer.param_groups:
                g["lr"] = self._lr(total)
            norm = nn.utils.clip_grad_norm_(params, c.clip_norm if c.clip_norm else float("inf"))
            if not math.isfinite(float(norm)):
                raise self._diverged(f"the gradients became non-finite (norm {float(norm)}) with a finite loss")
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if not bool(torch.stack(torch._foreach_norm([p.detach() for p in params])).isfinite().all()):
                raise self._diverged(f"the weights became non-finite after an update with lr {self._lr(total):g}")
            s.step += 1
            s.batch = i + 1
            self._progress.step(sum(losses[-20:]) / len(losses[-20:]))
            for cb in self.callbacks:
                if hasattr(cb, "on_step_end"):
                    cb.on_step_end(self, s.step, sum(step_losses) / len(step_losses), self._lr(total))
            step_losses = []
            if c.save_every and s.step % c.save_every == 0 and s.batch < len(batches):
                self._save()
            if c.max_minutes is not None and time.time() - start > 60 * c.max_minutes:
                self._save()
                return "time limit"
        self.model.eval()
        with torch.no_grad():
            with precision(c.precision, self.device):
                metrics = self.evaluate(self.model)
        row = {"epoch": s.epoch + 1, "step": s.step, "train_loss": sum(losses) / max(len(losses), 1),
               "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(time.time() - t0, 2),
               **{f"dev_{k}": v for k, v in metrics.items()}}
        s.history.append(row)
        s.epoch += 1
        s.batch = 0
        s.losses = []
        value = metrics.get(c.monitor)
        if value is None:
            raise KeyError(f"evaluate() returned {sorted(metrics)}; the monitored metric {c.monitor!r} is missing")
        improved = s.best is None or (value > s.best if c.maximize else value < s.best)
        if improved:
            s.best, s.bad_epochs, s.plateau_bad = value, 0, 0
            if self.main:
                save_weights(self.run_dir / "best.safetensors", self.model.state_dict())
        else:
            s.bad_epochs += 1
            s.plateau_bad += 1
            if c.schedule == "plateau" and s.plateau_bad >= 2:
                s.lr_scale *= 0.5
                s.plateau_bad = 0
        self._progress.epoch(row, improved)
        self._write_logs()
        self._save()
        stop = [cb.on_epoch_end(self, row) for cb in self.callbacks if hasattr(cb, "on_epoch_end")]
        if any(stop):
            return "stopped by a callback"
        if s.bad_epochs >= c.patience:
            return f"early stopping: no dev {c.monitor} improvement in {c.patience} epochs"
        return None
