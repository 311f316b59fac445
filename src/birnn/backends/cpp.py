"""Builds and loads birnn's C++ kernels (the packed LSTM step, the linear scan).

Each kernel is one plain C++ file with a C ABI (no PyTorch headers), built on first use with
the system's C++ compiler (``$CXX`` or ``c++``, about a second) for the machine it runs on (the
vector extensions PyTorch detects on this CPU), cached under ``$BIRNN_CACHE`` (else
``$XDG_CACHE_HOME/birnn`` or ``~/.cache/birnn``) by a hash of the source and the flags, and
loaded with ctypes. ``BIRNN_CPU_KERNEL=0`` turns every kernel off; where a kernel cannot be built
or loaded, its caller runs PyTorch ops instead and says why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import torch

__all__ = ["build", "cache", "disabled", "flags"]


def flags() -> list:
    out = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"]
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        out += ["-mavx2", "-mfma"]
    return out


def cache() -> Path:
    if os.environ.get("BIRNN_CACHE"):
        return Path(os.environ["BIRNN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "birnn"


def disabled() -> bool:
    """``BIRNN_CPU_KERNEL=0``: every C++ kernel is off."""
    return os.environ.get("BIRNN_CPU_KERNEL", "1") == "0"


def build(source: Path, extra: Sequence[str] = ()) -> ctypes.CDLL:
    """``source`` compiled (once per source and flags, with ``extra`` flags) and loaded; OSError
    says why not."""
    compiler = os.environ.get("CXX") or "c++"
    if shutil.which(compiler) is None:
        raise OSError(f"no C++ compiler ({compiler!r} is not on PATH)")
    options = flags() + list(extra)
    text = source.read_bytes()
    digest = hashlib.sha256(text + " ".join([compiler] + options).encode()).hexdigest()[:16]
    target = cache() / f"{source.stem}-{digest}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # built aside, then moved in whole
            built = Path(tmp) / target.name
            done = subprocess.run([compiler, *options, str(source), "-o", str(built)], capture_output=True, text=True)
            if done.returncode != 0:
                raise OSError(f"{compiler} failed: {done.stderr.strip()[-500:]}")
            os.replace(built, target)
    return ctypes.CDLL(str(target))
