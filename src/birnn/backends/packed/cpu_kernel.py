"""The packed LSTM step's elementwise part as a C++ kernel (``birnn/backends/packed/csrc/packed_lstm.cpp``).

:mod:`birnn.backends.packed.layer` runs a regularised LSTM step by step; per step, besides the recurrent
product, the step is some twenty elementwise PyTorch ops forward and forty backward, each a
call through Python and the dispatcher on a (D, n, 4H) block. The kernel does that part in one
pass over the step's rows (forward: the gates, the layer norms, the cell, zoneout, the final
states and the next step's product input; backward: every gradient but the products').

It is plain C++ with a C ABI (no PyTorch headers), built on first use and loaded with ctypes
(:mod:`birnn.backends.cpp`). Where it cannot be built or loaded (no compiler, a read-only
cache), or with ``BIRNN_CPU_KERNEL=0``, the packed layer runs its PyTorch ops instead:
:func:`unavailable` says why.
"""

from __future__ import annotations

import ctypes
import subprocess
import threading
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import Tensor

from .. import cpp

__all__ = ["Kernel", "Workspace", "kernel", "unavailable"]

SOURCE = Path(__file__).parent / "csrc" / "packed_lstm.cpp"
DTYPES = {torch.float32: ("f32", ctypes.c_float), torch.float64: ("f64", ctypes.c_double)}

_INTS = ("D", "N", "B", "H")
_INPUTS = ("xp", "h0", "c0", "drop", "keep_h", "keep_c", "ln_x", "b_x", "ln_h", "ln_cw", "ln_cb")
_OUTPUTS = ("y", "cs", "acts", "tc", "mean_x", "rstd_x", "mean_r", "rstd_r", "cn", "rstd_c", "inputs", "h_n", "c_n",
            "dy", "dh", "dc", "d_xp", "d_r", "acc_x", "acc_b", "acc_h", "acc_cw", "acc_cb", "scratch")


def _struct(scalar) -> type:
    """ctypes' twin of the kernel's ``Layer<T>``."""
    fields = ([(k, ctypes.c_int64) for k in _INTS] + [(k, ctypes.c_void_p) for k in _INPUTS]
              + [("rate_h", scalar), ("rate_c", scalar)] + [(k, ctypes.c_void_p) for k in _OUTPUTS])
    return type(f"Layer_{scalar.__name__}", (ctypes.Structure,), {"_fields_": fields})


class Kernel:
    """The loaded kernel for one dtype: :meth:`layer` fills the struct the calls share;
    ``forward``, ``backward`` and ``add_product`` are the kernel's three entry points."""

    def __init__(self, lib: ctypes.CDLL, dtype: torch.dtype) -> None:
        suffix, scalar = DTYPES[dtype]
        self.struct = _struct(scalar)
        size = getattr(lib, f"birnn_layer_size_{suffix}")
        size.restype = ctypes.c_int64
        if size() != ctypes.sizeof(self.struct):
            raise OSError(f"the kernel's Layer is {size()} bytes, ctypes' {ctypes.sizeof(self.struct)}")
        ptr, i64 = ctypes.c_void_p, ctypes.c_int64
        self.forward = getattr(lib, f"birnn_forward_{suffix}")
        self.backward = getattr(lib, f"birnn_backward_{suffix}")
        self.add_product = getattr(lib, f"birnn_add_product_{suffix}")
        self.forward.argtypes, self.forward.restype = [ptr, i64, i64, i64, i64, ptr, ptr], None
        self.backward.argtypes, self.backward.restype = [ptr, i64, i64, i64, i64, ptr, ptr, ptr, ptr], None
        self.add_product.argtypes, self.add_product.restype = [ptr, i64, ptr, ptr], None

    def layer(self, dims, rates, tensors: Dict[str, Optional[Tensor]]):
        """The struct for one layer call: ``dims`` (D, N, B, H), ``rates`` the zoneout rates,
        ``tensors`` by field name (contiguous, on CPU, of the kernel's dtype; None for absent)."""
        st = self.struct()
        for k, v in zip(_INTS, dims):
            setattr(st, k, int(v))
        st.rate_h, st.rate_c = float(rates[0]), float(rates[1])
        for k, t in tensors.items():
            if t is not None:
                if not t.is_contiguous():
                    raise ValueError(f"the kernel's {k} must be contiguous")
                setattr(st, k, t.data_ptr())
        return st


_LOADED: Dict[torch.dtype, Kernel] = {}
_WHY: Optional[str] = None
_TRIED = False


def _load() -> None:
    global _WHY, _TRIED
    _TRIED = True
    if cpp.disabled():
        _WHY = "BIRNN_CPU_KERNEL=0"
        return
    try:
        lib = cpp.build(SOURCE)
        for dtype in DTYPES:
            _LOADED[dtype] = Kernel(lib, dtype)
    except (OSError, subprocess.SubprocessError, AttributeError) as e:
        _WHY = f"the CPU kernel could not be built or loaded: {e}"
        _LOADED.clear()


def kernel(t: Tensor) -> Optional[Kernel]:
    """The kernel for ``t``'s dtype, on CPU, float32 or float64; None where it cannot run."""
    if t.device.type != "cpu" or t.dtype not in DTYPES:
        return None
    if not _TRIED:
        _load()
    return _LOADED.get(t.dtype)


def unavailable() -> Optional[str]:
    """Why the kernel does not run here (None when it does)."""
    if not _TRIED:
        _load()
    return _WHY


class Workspace:
    """Buffers of one layer call, taken from and handed back to a pool shared by all calls.

    The kernel's buffers are tens of MB; fresh ones cost a page fault every 4 KB at every call
    (about a tenth of a training step, measured). A call takes its buffers here and hands them
    back when it is done with them (:meth:`release`, or when the workspace is collected, which
    for a training step is when its autograd graph is freed: a retained graph keeps them).
    Buffers are pooled by dtype and a size rounded up to 1/8 of a power of two, so batches of
    nearby sizes share them; at most :attr:`KEEP` per size are kept.
    """

    KEEP = 4
    _free: Dict[tuple, list] = {}
    _lock = threading.Lock()

    def __init__(self, like: Tensor) -> None:
        self.like = like
        self.held: list = []

    @staticmethod
    def _bucket(numel: int) -> int:
        step = max(1 << max(numel.bit_length() - 4, 0), 1)  # 1/8 of the power of two at or below numel
        return -(-numel // step) * step

    def take(self, *shape: int) -> Tensor:
        numel = 1
        for s in shape:
            numel *= s
        key = (self.like.dtype, self.like.device, self._bucket(numel))
        with self._lock:
            pool = self._free.get(key)
            flat = pool.pop() if pool else None
        if flat is None:
            flat = self.like.new_empty(key[2])
        self.held.append((key, flat))
        return flat[:numel].view(shape)

    def release(self) -> None:
        with self._lock:
            for key, flat in self.held:
                pool = self._free.setdefault(key, [])
                if len(pool) < self.KEEP:
                    pool.append(flat)
        self.held = []

    def __del__(self) -> None:
        self.release()

    @classmethod
    def clear(cls) -> None:
        """Drop every pooled buffer (their memory goes back to the allocator)."""
        with cls._lock:
            cls._free.clear()
