"""The fused kernels' plan, without Triton: which hidden sizes and call sizes they run, how a
call's programs are laid out on the GPU (:func:`plan_grid`), and the typed configuration of
their tuning knobs (:class:`KernelConfig`). The layers' dispatch reads this module, so it must
not import Triton."""


import contextlib
from dataclasses import dataclass, replace
from typing import Iterator, Optional, Tuple

from ...cells import cell_spec

__all__ = ["KERNEL_CELLS", "KERNELS", "KernelConfig", "configured", "current", "default_kernel", "describe_kernel",
           "kernel_plan", "offsets_fit", "plan_grid", "plan_resident", "supported_hidden"]

KERNEL_CELLS = ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")  # the cells the kernels' CELL switch runs (device.py)
KERNELS = ("resident", "stream")


@dataclass(frozen=True)
class KernelConfig:
    """The fused kernels' one tuning knob, recorded in each fused call's decision: how W_hh is
    read. ``"resident"`` (the default) keeps each program's rows of W_hh on chip for the whole
    sequence; where they do not fit (:func:`plan_resident`) the call streams them from L2 each step.
    ``"stream"`` always streams (the device scripts time one against the other). On an H200 the
    resident kernels ran LSTM H=512 steps 2.3-2.9x faster, forward and backward, B=1 and 64,
    float32 and bfloat16 (benchmarks/GPU_NOTES.md).

    >>> KernelConfig(kernel="registers")
    Traceback (most recent call last):
    ValueError: kernel must be one of ('resident', 'stream'), got 'registers'
    """

    kernel: str = "resident"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")


_CURRENT = [KernelConfig()]


def current() -> KernelConfig:
    """The configuration the layers' fused calls run with (the timed defaults unless
    :func:`configured` says otherwise)."""
    return _CURRENT[-1]


@contextlib.contextmanager
def configured(**changes) -> Iterator[KernelConfig]:
    """Run the fused calls inside the block with the knob changed (the device scripts time the
    kernels against each other this way), e.g. ``with configured(kernel="stream"): layer(x)``."""
    _CURRENT.append(replace(current(), **changes))
    try:
        yield _CURRENT[-1]
    finally:
        _CURRENT.pop()


def supported_hidden(H: int) -> bool:
    """Hidden sizes the kernels tile: powers of two from 16, or multiples of 64."""
    return H >= 16 and (H & (H - 1) == 0 or H % 64 == 0)


def offsets_fit(mode: str, T: int, B: int, D: int, H: int) -> Optional[str]:
    """Why the kernels cannot index a call's per-step tensors, or None: they compute offsets in
    32 bits, so the largest, (T, B, D, G*H) (gates, their gradients), must stay below 2**31
    elements.

    >>> offsets_fit("LSTM", 512, 64, 2, 512) is None
    True
    >>> offsets_fit("LSTM", 8192, 64, 2, 1024)
    'the fused kernel indexes per-step tensors with 32-bit offsets: T*B*D*4H = 4294967296 elements is over 2**31 - 1'
    """
    G = cell_spec(mode).gates
    n = T * B * D * G * H
    if n >= 2 ** 31:
        return (f"the fused kernel indexes per-step tensors with 32-bit offsets: T*B*D*{G if G > 1 else ''}H = {n} "
                "elements is over 2**31 - 1")
    return None


def plan_grid(H: int, B: int, D: int, sms: Optional[int]) -> Tuple[int, int, int, int]:
    """(U units per program, BB batch rows per program, number of batch tiles, programs per group).

    Tensor-core tiles of 16/32/64 batch rows (small batches are padded: measured faster than
    CUDA-core products, benchmarks/GPU_NOTES.md) and 16-unit blocks, widened until the grid fits
    the GPU's ``sms`` multiprocessors: every program must be resident at once for the barrier,
    so a batch that needs more groups than that is refused (ValueError), never run slowly.

    >>> plan_grid(512, 1, 2, 132)    # H100, bidirectional H=512, batch 1: 2 groups of 32 programs
    (16, 16, 1, 32)
    >>> plan_grid(512, 64, 2, 132)[3], plan_grid(512, 256, 2, 132)[3]   # programs per group
    (32, 16)
    >>> plan_grid(512, 8192, 2, 132)
    Traceback (most recent call last):
    ValueError: batch 8192 needs 256 resident programs (256 groups of 1), more than the GPU's 132 multiprocessors
    """
    BB = 16 if B <= 16 else (32 if B <= 32 else 64)
    nbt = -(-B // BB)
    if sms is None:  # interpreter: one program per group
        return H, BB, nbt, 1
    U = 16
    while U < H and H % (2 * U) == 0 and D * nbt * (H // U) > sms:
        U *= 2
    if D * nbt * (H // U) > sms:
        raise ValueError(f"batch {B} needs {D * nbt * (H // U)} resident programs ({D * nbt} groups of {H // U}), "
                         f"more than the GPU's {sms} multiprocessors")
    return U, BB, nbt, H // U


def plan_resident(mode: str, H: int, B: int, D: int, bf16: bool, sms: Optional[int]) -> Tuple[int, int, int, int]:
    """:func:`plan_grid` for the kernels that keep W_hh on chip (forward and backward): each
    program holds a (64, H) tile of W_hh — 16 units x 4 gate slots (LSTM; the GRU's 3 gates
    padded to 4), or 64 units of the Elman RNN — for the whole sequence, in shared memory.
    It fits for H a power of two up to 512, with batch tiles of 16 or 32 rows (64-row tiles spill,
    measured with ptxas); otherwise ValueError.

    >>> plan_resident("LSTM", 512, 1, 2, True, 132)     # 2 directions x 32 programs
    (16, 16, 1, 32)
    >>> plan_resident("LSTM", 512, 64, 2, False, 132)   # 2 batch tiles of 32: 128 programs
    (16, 32, 2, 32)
    >>> plan_resident("RNN_TANH", 512, 8, 2, True, 132)
    (64, 16, 1, 8)
    """
    if H & (H - 1) or not 16 <= H <= 512:
        raise ValueError(f"W_hh stays on chip for hidden sizes that are powers of two from 16 to 512, got {H}")
    BB = 16 if B <= 16 else 32
    nbt = -(-B // BB)
    if sms is None:  # interpreter: one program per group
        return H, BB, nbt, 1
    U = 16 if mode in ("LSTM", "GRU") else min(64, H)
    if D * nbt * (H // U) > sms:
        raise ValueError(f"batch {B} needs {D * nbt * (H // U)} resident programs with W_hh on chip, more than "
                         f"the GPU's {sms} multiprocessors")
    return U, BB, nbt, H // U


def default_kernel() -> str:
    """The kernels (forward and backward) used unless a call names one: :func:`current`'s
    ``kernel`` — ``resident`` (W_hh on chip, the faster on an H200) unless :func:`configured`
    asks for ``stream``."""
    return current().kernel


def kernel_plan(kernel: Optional[str], mode: str, H: int, B: int, D: int, bf16: bool,
                sms: Optional[int]) -> Tuple[bool, Tuple[int, int, int, int]]:
    """(resident?, grid plan) for a forward or backward call (both hold the same (64, H) tile of
    W_hh); a named kernel that cannot run raises, the default falls back from ``resident`` to
    ``stream`` where W_hh does not fit on chip.

    >>> kernel_plan("stream", "LSTM", 512, 1, 2, False, 132)
    (False, (16, 16, 1, 32))
    >>> kernel_plan(None, "LSTM", 512, 64, 2, False, 132)      # the default: resident, 128 programs
    (True, (16, 32, 2, 32))
    >>> kernel_plan(None, "LSTM", 512, 256, 2, False, 132)     # too many batch tiles: streamed
    (False, (32, 64, 4, 16))
    """
    kind = default_kernel() if kernel is None else kernel
    if kind not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kind!r}")
    if kind == "resident":
        try:
            return True, plan_resident(mode, H, B, D, bf16, sms)
        except ValueError:
            if kernel is not None:
                raise
    return False, plan_grid(H, B, D, sms)


def describe_kernel(mode: str, H: int, B: int, D: int, bf16: bool, sms: Optional[int]) -> str:
    """Which fused kernel a call runs and how it is laid out, for ``layer.last_decision``: the
    choice between streaming W_hh and keeping it on chip is part of the dispatch, so it is shown.

    >>> describe_kernel("LSTM", 512, 64, 2, False, 132)
    'resident kernel (W_hh held on chip): 4 groups of 32 programs, 16 units x 32 rows each'
    >>> describe_kernel("LSTM", 1024, 64, 2, False, 132)
    'stream kernel (W_hh read from L2 each step), as W_hh does not fit on chip for this call: 2 groups of 64 programs, 16 units x 64 rows each'
    """
    resident, (U, BB, nbt, group) = kernel_plan(None, mode, H, B, D, bf16, sms)
    how = "resident kernel (W_hh held on chip)" if resident else "stream kernel (W_hh read from L2 each step)"
    if not resident and default_kernel() == "resident":
        how += ", as W_hh does not fit on chip for this call"
    return f"{how}: {D * nbt} groups of {group} programs, {U} units x {BB} rows each"
