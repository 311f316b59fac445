"""Kernel variants, timed alone (notes in benchmarks/GPU_NOTES.md): warps per program,
fp32/bf16, B=1 and B=64, H=512 and 1024. (The register-resident variant measured slower and
was removed; its numbers are in GPU_NOTES.md.)"""

import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from birnn.bench import cuda_time  # noqa: E402
from birnn.kernels.recurrent import layer_forward  # noqa: E402

warnings.filterwarnings("ignore")


T, D = 512, 2
for H in (512, 1024):
    for dtype in (torch.float32, torch.bfloat16):
        for B in (1, 64):
            xs = torch.randn(T, D, B, 4 * H, device="cuda", dtype=dtype)
            w = (torch.randn(D, 4 * H, H, device="cuda") / H ** 0.5).to(dtype)
            h0 = torch.zeros(D, B, H, device="cuda")
            c0 = torch.zeros(D, B, H, device="cuda")
            L = torch.full((B,), T)
            for warps in ((4, 8) if B == 1 else (4,)):  # 8 warps on 64-row tiles faulted (GPU_NOTES.md)
                ms = cuda_time(lambda: layer_forward("LSTM", xs, w, None, h0, c0, L, T, num_warps=warps), 5)
                print(f"H={H} {str(dtype)[6:]:9s} B={B:3d} warps={warps:2d}: {ms * 1000 / T:.2f} us/step", flush=True)
