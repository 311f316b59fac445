"""``linear_scan``: ``h_t = a_t * h_{t-1} + b_t`` from ``h_{-1} = h0``, every step at once, three ways.

- Eagerly on CPU (float32, float64): birnn's C++ scan (``csrc/linear_scan.cpp``), one pass over
  time vectorised over the channels, the channels split between threads; its backward is the
  same recurrence run backwards. Nothing is kept per step but ``a`` and ``h``.
- Eagerly elsewhere (CUDA, other dtypes, or where the C++ kernel cannot be built): the
  Hillis-Steele doubling scan in ``ceil(log2 T)`` vectorised levels (each step composes with
  the one ``2^k`` before it), with the same hand-written backward.
- While a graph is captured (torch.compile, torch.export, ONNX, torch.func transforms): the
  doubling scan as plain differentiable ops of a fixed depth, :data:`MAX_DEPTH` levels, so one
  graph serves every T up to ``2**MAX_DEPTH`` (NaN beyond it).

All three work on ``a`` and ``b`` directly: with decays in (0, 1) products only shrink (to 0,
never to infinity), so no logarithm, division or ``logcumsumexp`` is needed.
"""

from __future__ import annotations

import ctypes
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import Tensor

from .. import cpp

__all__ = ["CELL_KERNELS", "MAX_DEPTH", "cell_kernel_runs", "cell_scan", "kernel_unavailable", "linear_scan"]

SOURCE = Path(__file__).parent / "csrc" / "linear_scan.cpp"
# exp and log1p vectorised from glibc's vector math library (declared under __FAST_MATH__); the
# kernel's arguments never overflow, so assuming finite math changes nothing it computes
FAST_MATH = ("-ffast-math", "-lmvec")
MAX_DEPTH = 20  # levels of a captured scan: one graph for every T <= 1,048,576


def _levels(T: int) -> int:
    return max(T - 1, 0).bit_length()  # ceil(log2 T): after it every step has composed with step 0


def _doubling(a: Tensor, b: Tensor, reverse: bool = False) -> Tensor:
    """The inclusive scan of ``h_t = a_t h_{t-1} + b_t`` along dim 0 from ``h_{-1} = 0``
    (``reverse``: ``h_t = a_t h_{t+1} + b_t`` from the end), eagerly, without autograd: two
    buffers per operand, written in turn, one fused multiply-add per element and level."""
    T = a.shape[0]
    levels = _levels(T)
    if levels == 0:
        return b.clone()
    b, nb = b.clone(), torch.empty_like(b)
    a, na = a.clone(), torch.empty_like(a)
    k = 1
    for level in range(levels):
        # step t composes with step t - k (t + k in reverse); the first k steps are done
        here, there = (slice(0, T - k), slice(k, T)) if reverse else (slice(k, T), slice(0, T - k))
        done = slice(T - k, T) if reverse else slice(0, k)
        nb[done] = b[done]
        torch.addcmul(b[here], a[here], b[there], out=nb[here])
        b, nb = nb, b
        if level < levels - 1:
            na[done] = a[done]
            torch.mul(a[here], a[there], out=na[here])
            a, na = na, a
        k *= 2
    return b


def _shifted(x: Tensor, k: int, fill: float) -> Tensor:
    """``x`` moved ``k`` steps later along dim 0, ``fill`` in front; any ``k`` (even >= T)."""
    T = x.shape[0]
    front = x.new_full((k,) + tuple(x.shape[1:]), fill)
    return torch.cat([front, x], 0)[:T]


def _captured(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """The same scan as differentiable ops of a fixed depth (no branch on T): what a graph holds.
    ``h0`` is folded into the first step by a mask (a slice of T-1 steps would specialise on T)."""
    first = (torch.arange(a.shape[0], device=a.device) == 0).view((-1,) + (1,) * (a.dim() - 1))
    b = torch.where(first, torch.addcmul(b, a, h0), b)
    k = 1
    for level in range(MAX_DEPTH):
        b = torch.addcmul(b, a, _shifted(b, k, 0.0))
        if level < MAX_DEPTH - 1:
            a = a * _shifted(a, k, 1.0)
        k *= 2
    # past 2**MAX_DEPTH steps the graph would be wrong: NaN then, loudly (a check on T would make
    # every export name a maximum for T)
    fits = torch.full((), a.shape[0], device=a.device) <= 2 ** MAX_DEPTH
    return torch.where(fits, b, float("nan"))


_LIB: Optional[ctypes.CDLL] = None
_WHY: Optional[str] = None
_TRIED = False
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_POOL: Optional[ThreadPoolExecutor] = None


def _load() -> None:
    global _LIB, _WHY, _TRIED
    _TRIED = True
    if cpp.disabled():
        _WHY = "BIRNN_CPU_KERNEL=0"
        return
    try:
        lib = cpp.build(SOURCE, FAST_MATH)
        ptr, i64 = ctypes.c_void_p, ctypes.c_int64
        for suffix in _SUFFIX.values():
            getattr(lib, f"birnn_scan_forward_{suffix}").argtypes = [ptr] * 4 + [i64] * 4
            getattr(lib, f"birnn_scan_backward_{suffix}").argtypes = [ptr] * 7 + [i64] * 4
        _cell_entries(lib)
        _LIB = lib
    except (OSError, subprocess.SubprocessError, AttributeError) as e:
        _WHY = f"the C++ scan could not be built or loaded: {e}"


def kernel_unavailable() -> Optional[str]:
    """Why the C++ scan does not run here (None when it does, on CPU tensors of float32/64)."""
    if not _TRIED:
        _load()
    return _WHY


def _kernel_runs(t: Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in _SUFFIX and kernel_unavailable() is None


def _split(entry: str, t: Tensor, *tensors: Tensor) -> None:
    """Call the kernel's ``entry`` on ``tensors`` (each (T, ...) contiguous), the channels split
    between PyTorch's intra-op threads (ctypes lets go of the GIL during a call)."""
    global _POOL
    steps, n = t.shape[0], t[0].numel() if t.shape[0] else 0
    fn = getattr(_LIB, f"birnn_scan_{entry}_{_SUFFIX[t.dtype]}")
    ptrs = [x.data_ptr() for x in tensors]
    parts = max(1, min(torch.get_num_threads(), n // 4096))
    if parts == 1:
        fn(*ptrs, steps, n, 0, n)
        return
    if _POOL is None or _POOL._max_workers < parts:
        _POOL = ThreadPoolExecutor(parts, thread_name_prefix="birnn-scan")
    edges = [n * k // parts // 16 * 16 for k in range(parts)] + [n]  # (whole cache lines per thread)
    list(_POOL.map(lambda k: fn(*ptrs, steps, n, edges[k], edges[k + 1]), range(parts)))


def _forward(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    if _kernel_runs(a):
        h = torch.empty_like(b)
        _split("forward", a, a, b, h0, h)
        return h
    b = b.clone()
    b[0].addcmul_(a[0], h0)  # the first step reads h0 (a[0] then multiplies nothing the scan reads)
    return _doubling(a, b)


class _Scan(torch.autograd.Function):
    """The eager scan with its backward: saves ``a`` and ``h``, nothing per level."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h = _forward(a, b, h0)
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        a, h0, h = ctx.saved_tensors
        g = g.contiguous()
        if _kernel_runs(a):
            da, db, dh0 = torch.empty_like(a), torch.empty_like(a), torch.empty_like(h0)
            _split("backward", a, a, h0, h, g, da, db, dh0)
            return da, db, dh0
        following = torch.cat([a[1:], torch.zeros_like(a[:1])], 0)  # a_{t+1}, 0 after the last step
        delta = _doubling(following, g, reverse=True)  # δ_t = g_t + a_{t+1} δ_{t+1}
        before = torch.cat([h0.unsqueeze(0), h[:-1]], 0)  # h_{t-1}, h0 before the first step
        return delta * before, delta, a[0] * delta[0]


def linear_scan(a: Tensor, b: Tensor, h0: Optional[Tensor] = None) -> Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` for every ``t`` along dim 0 from ``h_{-1} = h0`` (zeros when
    None): ``a``, ``b`` (T, ...), ``h0`` (...) -> ``h`` (T, ...).

    >>> a, b = torch.tensor([0.5, 0.5, 0.0, 0.5]), torch.tensor([1.0, 2.0, 3.0, 4.0])
    >>> linear_scan(a, b, torch.tensor(2.0)).tolist()        # 0.5*2+1, 0.5*2+2, 0*3+3, 0.5*3+4
    [2.0, 3.0, 3.0, 5.5]
    """
    h0 = torch.zeros_like(b[0]) if h0 is None else h0.expand_as(b[0])
    if torch.compiler.is_compiling() or torch._C._functorch.is_functorch_wrapped_tensor(a):
        return _captured(a, b, h0)
    a, b, h0 = a.contiguous(), b.contiguous(), h0.contiguous()
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad or h0.requires_grad):
        return _Scan.apply(a, b, h0)
    return _forward(a, b, h0)


# the cells the C++ kernel computes whole (gates, coefficients and scan in one pass): its CELL switch
CELL_KERNELS = {"MINGRU": 0, "MINLSTM": 1}


def _cell_entries(lib: ctypes.CDLL) -> None:
    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
    for suffix in _SUFFIX.values():
        getattr(lib, f"birnn_cell_forward_{suffix}").argtypes = [i64] + [ptr] * 6 + [i64] * 2
        getattr(lib, f"birnn_cell_backward_{suffix}").argtypes = [i64] + [ptr] * 11 + [i64] * 2


def _rows(fn, R: int, per_row: int, *args) -> None:
    """``fn(*args, r0, r1)`` over the rows [0, R), split between PyTorch's intra-op threads."""
    global _POOL
    parts = max(1, min(torch.get_num_threads(), R, R * per_row // 4096))
    if parts == 1:
        fn(*args, 0, R)
        return
    if _POOL is None or _POOL._max_workers < parts:
        _POOL = ThreadPoolExecutor(parts, thread_name_prefix="birnn-scan")
    edges = [R * k // parts for k in range(parts + 1)]
    list(_POOL.map(lambda k: fn(*args, edges[k], edges[k + 1]), range(parts)))


def _ptr(t: Optional[Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


class _Cell(torch.autograd.Function):
    """A linear cell whole in the C++ kernel: ``xs`` (T, D, B, G*H) gates (a view with a
    contiguous last dim), ``h0`` (D, B, H), ``valid`` (T, B) and ``resets`` (T, D, B) as bytes or
    None -> ``h`` (T, D, B, H), the state after every step (padded steps keep it). Saves the
    gates and ``h``; the backward recomputes the coefficients."""

    @staticmethod
    def forward(ctx, xs: Tensor, h0: Tensor, valid: Optional[Tensor], resets: Optional[Tensor], cell: int) -> Tensor:
        T, D, B, GH = xs.shape
        H = h0.shape[-1]
        geo = torch.tensor([T, D * B, B, H, GH // H, xs.stride(0), xs.stride(2), xs.stride(1)], dtype=torch.int64)
        h = xs.new_empty(T, D, B, H)
        fn = getattr(_LIB, f"birnn_cell_forward_{_SUFFIX[xs.dtype]}")
        _rows(fn, D * B, T * H, cell, xs.data_ptr(), h0.data_ptr(), _ptr(valid), _ptr(resets), h.data_ptr(),
              geo.data_ptr())
        ctx.save_for_backward(xs, h0, h, valid, resets, geo)
        ctx.cell = cell
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        xs, h0, h, valid, resets, geo = ctx.saved_tensors
        g = g.contiguous()
        dxs = torch.empty_strided(xs.shape, xs.stride(), dtype=xs.dtype)
        dh0, delta, a_next = torch.empty_like(h0), torch.empty_like(h0), torch.empty_like(h0)
        fn = getattr(_LIB, f"birnn_cell_backward_{_SUFFIX[xs.dtype]}")
        T, D, B = xs.shape[:3]
        _rows(fn, D * B, T * h0.shape[-1], ctx.cell, xs.data_ptr(), h0.data_ptr(), _ptr(valid), _ptr(resets),
              h.data_ptr(), g.data_ptr(), dxs.data_ptr(), dh0.data_ptr(), delta.data_ptr(), a_next.data_ptr(),
              geo.data_ptr())
        return dxs, dh0, None, None, None


def cell_kernel_runs(mode: str, xs: Tensor) -> bool:
    """Whether the C++ kernel runs cell ``mode`` whole on ``xs`` (eagerly, on CPU, float32/64)."""
    if torch.compiler.is_compiling() or torch._C._functorch.is_functorch_wrapped_tensor(xs):
        return False  # (first: under capture nothing may build or load the kernel)
    return mode in CELL_KERNELS and xs.stride(-1) == 1 and _kernel_runs(xs)


def cell_scan(mode: str, xs: Tensor, h0: Tensor, valid: Optional[Tensor], resets: Optional[Tensor]) -> Tensor:
    """Cell ``mode`` over the gates ``xs`` (T, D, B, G*H) from ``h0`` (D, B, H) in the C++ kernel:
    ``h`` (T, D, B, H), padded steps (``valid`` (T, B) False) keeping the state, steps marked in
    ``resets`` (T, D, B) starting from ``h0`` again (see :func:`cell_kernel_runs`)."""
    flag = (lambda m: None if m is None else m.to(torch.uint8).contiguous())
    return _Cell.apply(xs, h0.contiguous(), flag(valid), flag(resets), CELL_KERNELS[mode])
