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
after a checkpoint directory is complete, a directory ``latest.json`` points at is never
rewritten (a second save of the same step gets a new name), and older checkpoint directories
are removed only after ``latest.json`` has moved. So a kill, a full disk or a crash at any
instant leaves ``latest.json`` naming a complete checkpoint, or no checkpoint at all.

Every safetensors file carries the SHA-256 of its tensors in its header, checked on load: a
flipped byte is an error naming the file, never a silently different model. Every load error
names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

__all__ = ["CheckpointError", "atomic_write_text", "checkpoint_path", "digest", "load_checkpoint", "load_config",
           "load_weights", "save_checkpoint", "save_weights", "check_config"]

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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_umask_allows(path, directory: bool = False) -> None:
    """Temporary files and directories are made private (0600/0700); a run's files get the mode
    an ordinary file would (0666/0777 less the umask), so a run can be shared."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


class _Writing:
    """Turn a failed write (a full disk, no permission, safetensors' own error) into a
    :class:`CheckpointError` naming the file being written, and drop the partial file ``tmp``."""

    def __init__(self, path, tmp=None) -> None:
        self.path, self.tmp = Path(path), tmp

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if error is None or not isinstance(error, Exception):
            return False
        if self.tmp is not None:
            Path(self.tmp).unlink(missing_ok=True)
        if isinstance(error, CheckpointError) or (not isinstance(error, OSError)
                                                  and type(error).__name__ != "SafetensorError"):
            return False
        text = str(error)
        full = getattr(error, "errno", None) == 28 or "os error 28" in text or "No space left" in text
        why = "No space left on device" if full else (getattr(error, "strerror", None) or text)
        raise CheckpointError(f"{self.path}: could not be written ({why})"
                              + ("; free some space and `birnn resume` the run" if full else "")) from None


def atomic_write_text(path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with _Writing(path, tmp), os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    _as_umask_allows(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def digest(tensors: Dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _write_tensors(tensors: Dict[str, torch.Tensor], path, name=None) -> None:
    """safetensors with the tensors' digest in its header (not atomic: callers rename into place;
    ``name``: the file that errors name, where ``path`` is a temporary one)."""
    cpu = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with _Writing(name or path):
        save_file(cpu, str(path), metadata={"sha256": digest(cpu)})


def _read_tensors(path) -> Dict[str, torch.Tensor]:
    """Load a safetensors file and check its digest; errors name the file."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as e:  # safetensors' own errors for a damaged header or truncated data
        raise CheckpointError(f"{path}: cannot be read as safetensors ({e})") from None
    want = meta.get("sha256")
    if want is not None and digest(tensors) != want:
        raise CheckpointError(f"{path}: its tensors do not match the SHA-256 in its header: the file is corrupt")
    return tensors


def save_weights(path, tensors: Dict[str, torch.Tensor]) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    with _Writing(path, tmp):
        _write_tensors(tensors, tmp, name=path)
    _as_umask_allows(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def load_weights(path) -> Dict[str, torch.Tensor]:
    return _read_tensors(path)


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


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


_STEP_DIR = re.compile(r"^step-(\d+)(?:-(\d+))?$")


def _order(p: Path) -> Tuple[int, int]:
    m = _STEP_DIR.match(p.name)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (-1, -1)


def save_checkpoint(run_dir, *, model: Dict[str, torch.Tensor], optimizer: dict, state: dict,
                    rng: Dict[str, torch.Tensor], step: int, keep: int = 1) -> Path:
    """Write a complete checkpoint directory, then point ``latest.json`` at it, then remove
    older ones (see the module doc for why nothing is ever removed before that)."""
    run_dir = Path(run_dir)
    ckpts = run_dir / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    for stale in ckpts.glob(".step-*"):  # directories of interrupted writes (one process owns the run)
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step-{step:07d}"
    serial = 0
    while (ckpts / name).exists():  # this step is saved already (and may be latest): a new name
        serial += 1
        name = f"step-{step:07d}-{serial}"
    tmp = Path(tempfile.mkdtemp(dir=ckpts, prefix=f".{name}."))
    opt_tensors, opt_meta = _optimizer_split(optimizer)
    _write_tensors(model, tmp / "model.safetensors")
    _write_tensors({**opt_tensors, **{f"rng.{k}": v for k, v in rng.items()}}, tmp / "optimizer.safetensors")
    with _Writing(tmp / "state.json"):
        (tmp / "state.json").write_text(json.dumps({"format": FORMAT, "state": state, "optimizer": opt_meta},
                                                   indent=1))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
        _as_umask_allows(f)
    final = ckpts / name
    _as_umask_allows(tmp, directory=True)
    os.replace(tmp, final)
    _fsync_dir(ckpts)
    atomic_write_text(run_dir / "latest.json", json.dumps({"checkpoint": f"checkpoints/{name}"}))
    older = sorted((p for p in ckpts.iterdir() if _order(p) >= (0, 0) and p != final), key=_order)
    for old in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_path(run_dir) -> Optional[Path]:
    """The checkpoint directory ``latest.json`` names (inside ``RUN/checkpoints``), or None."""
    run_dir = Path(run_dir)
    pointer = run_dir / "latest.json"
    if not pointer.exists():
        return None
    target = _read_json(pointer).get("checkpoint")
    if not isinstance(target, str):
        raise CheckpointError(f"{pointer}: has no \"checkpoint\" entry")
    path = (run_dir / target).resolve()
    if path.parent != (run_dir / "checkpoints").resolve() or not _STEP_DIR.match(path.name):
        raise CheckpointError(f"{pointer}: points at {target!r}, which is not a checkpoint of this run "
                              "(checkpoints/step-NNNNNNN)")
    if not path.is_dir():
        raise CheckpointError(f"{pointer}: points at {target!r}, which does not exist")
    return path


def load_checkpoint(run_dir) -> Optional[dict]:
    """The latest complete checkpoint: ``model`` and ``optimizer`` state dicts, ``state``, ``rng``."""
    path = checkpoint_path(run_dir)
    if path is None:
        return None
    meta = _read_json(path / "state.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        meta = meta if isinstance(meta, dict) else {}
        raise CheckpointError(f"{path / 'state.json'}: checkpoint format {meta.get('format')} is not {FORMAT}")
    opt = _read_tensors(path / "optimizer.safetensors")
    rng = {k[4:]: v for k, v in opt.items() if k.startswith("rng.")}
    opt = {k: v for k, v in opt.items() if not k.startswith("rng.")}
    try:
        optimizer = _optimizer_join(opt, meta["optimizer"])
        state = meta["state"]
    except (KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path / 'state.json'}: incomplete checkpoint state ({e!r})") from None
    return {"model": _read_tensors(path / "model.safetensors"), "optimizer": optimizer, "state": state, "rng": rng,
            "path": str(path)}


def load_config(run_dir) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not a birnn run directory (no config.json)")
    config = _read_json(path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return config


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
