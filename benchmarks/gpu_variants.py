"""Kernel variants, timed alone on a CUDA machine (notes in benchmarks/GPU_NOTES.md): one
layer's forward, LSTM and GRU, T=512, both directions; W_hh streamed from L2 each step
("stream", the recorded default) against kept on chip ("resident", variant 11), fp32/bf16,
B in {1, 16, 64}, H in {512, 1024} (resident stops at 512), plus the fused regularisers.

    PYTHONPATH=src python3 benchmarks/gpu_variants.py
"""

import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from birnn.bench import cuda_time  # noqa: E402
from birnn.kernels.recurrent import StepExtras, layer_forward  # noqa: E402

warnings.filterwarnings("ignore")

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
                row = []
                for kernel in ("stream", "resident"):
                    for name, extras in (("plain", StepExtras()), ("regularised", reg)):
                        try:
                            ms = cuda_time(lambda: layer_forward(mode, xs, w, b, h0, c0, L, T, extras=extras,
                                                                 kernel=kernel), 5)
                            row.append(f"{kernel} {name} {ms * 1000 / T:6.2f}")
                        except ValueError as e:  # resident beyond its limits
                            row.append(f"{kernel} {name}   n/a ({str(e)[:40]})")
                print(f"{mode} H={H} {str(dtype)[6:]:8s} B={B:2d} us/step: " + " | ".join(row), flush=True)
