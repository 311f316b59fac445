"""Checkpoints: tensors in safetensors, everything else in JSON — never pickle — written so a
crash at any instant leaves the last complete checkpoint readable.

A run directory holds::

    config.json                 what was trained: model class and config, preprocessing, task
    checkpoints/step-000120/    model.safetensors, optimizer.safetensors, state.json
    latest.json                 {"checkpoint": "checkpoints/step-000120"}  (replaced atomically)
    best.safetensors            the weights with the best dev metric so far
    model.safetensors           the weights the finished run ends on (best or last epoch)
    log.jsonl, log.csv          one row per epoch

Every file is written to a temporary name and renamed into place; ``latest.json`` moves only
after a checkpoint directory is complete, and older checkpoint directories are removed after.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from safetensors.torch import load_file, save_file

__all__ = ["CheckpointError", "atomic_write_text", "load_checkpoint", "load_config", "load_weights",
           "save_checkpoint", "save_weights", "check_config"]

FORMAT = 1


class CheckpointError(RuntimeError):
    pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_weights(path, tensors: Dict[str, torch.Tensor]) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def load_weights(path) -> Dict[str, torch.Tensor]:
    return load_file(str(path))


def _optimizer_split(state: dict) -> Tuple[Dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, entries in state["state"].items():
        meta["state"][str(pid)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value
                meta["state"][str(pid)][key] = "tensor"
            else:
                meta["state"][str(pid)][key] = value
    return tensors, meta


def _optimizer_join(tensors: Dict[str, torch.Tensor], meta: dict) -> dict:
    state = {}
    for pid, entries in meta["state"].items():
        state[int(pid)] = {k: (tensors[f"state.{pid}.{k}"] if v == "tensor" else v) for k, v in entries.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir, *, model: Dict[str, torch.Tensor], optimizer: dict, state: dict,
                    rng: Dict[str, torch.Tensor], step: int, keep: int = 1) -> Path:
    """Write a complete checkpoint directory, then point ``latest.json`` at it."""
    run_dir = Path(run_dir)
    ckpts = run_dir / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    tmp = Path(tempfile.mkdtemp(dir=ckpts, prefix=f".{name}."))
    opt_tensors, opt_meta = _optimizer_split(optimizer)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.items()}, str(tmp / "model.safetensors"))
    save_file({**{k: v.contiguous().cpu() for k, v in opt_tensors.items()},
               **{f"rng.{k}": v.contiguous().cpu() for k, v in rng.items()}}, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"format": FORMAT, "state": state, "optimizer": opt_meta}, indent=1))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final = ckpts / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(ckpts)
    atomic_write_text(run_dir / "latest.json", json.dumps({"checkpoint": f"checkpoints/{name}"}))
    existing = sorted(p for p in ckpts.iterdir() if p.name.startswith("step-") and p != final)
    for old in existing[: max(0, len(existing) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in ckpts.glob(".step-*"):  # directories of interrupted writes
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(run_dir) -> Optional[dict]:
    """The latest complete checkpoint: ``model`` and ``optimizer`` state dicts, ``state``, ``rng``."""
    run_dir = Path(run_dir)
    pointer = run_dir / "latest.json"
    if not pointer.exists():
        return None
    path = run_dir / json.loads(pointer.read_text())["checkpoint"]
    meta = json.loads((path / "state.json").read_text())
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')} is not {FORMAT}")
    opt = load_file(str(path / "optimizer.safetensors"))
    rng = {k[4:]: v for k, v in opt.items() if k.startswith("rng.")}
    opt = {k: v for k, v in opt.items() if not k.startswith("rng.")}
    return {"model": load_file(str(path / "model.safetensors")), "optimizer": _optimizer_join(opt, meta["optimizer"]),
            "state": meta["state"], "rng": rng, "path": str(path)}


def load_config(run_dir) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not a birnn run directory (no config.json)")
    return json.loads(path.read_text())


def check_config(saved: dict, current: dict, keys=("task", "model", "preprocessing")) -> None:
    """Refuse to continue when what was trained differs from what is asked now."""
    diffs = []
    for key in keys:
        if saved.get(key) != current.get(key):
            diffs.append(key)
    if diffs:
        detail = "; ".join(f"{k}: saved {_short(saved.get(k))}, now {_short(current.get(k))}" for k in diffs)
        raise CheckpointError(f"the checkpoint's configuration does not match ({detail})")


def _short(v) -> str:
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= 120 else s[:117] + "..."
