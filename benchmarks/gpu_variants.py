"""Kernel variants, timed alone on a CUDA machine (notes in benchmarks/GPU_NOTES.md): one
layer, LSTM and GRU, T=512, both directions; W_hh streamed from L2 each step ("stream", the
recorded default) against kept on chip ("resident": variant 11 forward, variant 12 backward),
fp32/bf16, B in {1, 16, 64}, H in {512, 1024} (resident stops at 512), plain and with the fused
regularisers. Each line gives microseconds per step for the forward (inference), and for the
backward kernel alone (BPTT after a saving forward; the weight-gradient matmul not included),
with the next step's saved activations loaded before the barrier (variant 13) and without.

    PYTHONPATH=src python3 benchmarks/gpu_variants.py
"""

import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from birnn.bench import cuda_time  # noqa: E402
from birnn.kernels.recurrent import StepExtras, layer_backward, layer_forward  # noqa: E402

warnings.filterwarnings("ignore")


def timings(mode, xs, w, b, h0, c0, L, extras, kernel):
    """(forward us/step, backward us/step) of one kernel, or the reason it cannot run."""
    try:
        fwd_ms = cuda_time(lambda: layer_forward(mode, xs, w, b, h0, c0, L, T, extras=extras, kernel=kernel), 5)
        saved = layer_forward(mode, xs, w, b, h0, c0, L, T, extras=extras, kernel=kernel, save=True)
        dout = torch.randn(saved.out.shape, device="cuda")
        dhn = torch.randn(h0.shape, device="cuda")
        dcn = dhn if c0 is not None else None
        bwd = [cuda_time(lambda: layer_backward(mode, w, saved, h0, c0, L, T, dout, dhn, dcn, extras=extras,
                                                kernel=kernel, prefetch=prefetch), 5) for prefetch in (True, False)]
    except ValueError as e:  # resident beyond its limits
        return f"n/a ({str(e)[:40]})"
    return f"{fwd_ms * 1000 / T:6.2f} fwd {bwd[0] * 1000 / T:6.2f} bwd ({bwd[1] * 1000 / T:6.2f} without prefetch)"


T, D = 512, 2
for mode, G in (("LSTM", 4), ("GRU", 3)):
    for H in (512, 1024):
        for dtype in (torch.float32, torch.bfloat16):
            for B in (1, 16, 64):
                if mode == "GRU" and (H != 512 or B == 16):
                    continue
                xs = torch.randn(T, D, B, G * H, device="cuda", dtype=dtype)
                w = (torch.randn(D, G * H, H, device="cuda") / H ** 0.5).to(dtype)
                b = torch.zeros(D, G * H, device="cuda") if mode == "GRU" else None
                h0 = torch.zeros(D, B, H, device="cuda")
                c0 = torch.zeros(D, B, H, device="cuda") if mode == "LSTM" else None
                L = torch.full((B,), T)
                reg = StepExtras(drop=torch.ones(D, B, H, device="cuda"),
                                 keep_h=torch.zeros(T, D, B, H, device="cuda"),
                                 ln_h=torch.ones(D, G * H, device="cuda"),
                                 ln_c=(torch.ones(D, H, device="cuda"), torch.zeros(D, H, device="cuda"))
                                 if mode == "LSTM" else None)
                for name, extras in (("plain", StepExtras()), ("regularised", reg)):
                    row = [f"{kernel} {timings(mode, xs, w, b, h0, c0, L, extras, kernel)}"
                           for kernel in ("stream", "resident")]
                    print(f"{mode} H={H} {str(dtype)[6:]:8s} B={B:2d} {name:11s} us/step: " + " | ".join(row),
                          flush=True)
