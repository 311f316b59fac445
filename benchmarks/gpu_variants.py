"""Kernel variants, timed alone (notes in benchmarks/GPU_NOTES.md): weights resident in
registers or streamed from L2, warps per program, fp32/bf16, B=1 and B=64, H=512 and 1024."""

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
            variants = [(False, 4), (False, 8)] if B == 1 else [(False, 4)]
            if B == 1 and dtype == torch.bfloat16 and H == 512:
                variants += [(True, 8), (True, 16)]
            for resident, warps in variants:
                ms = cuda_time(lambda: layer_forward("LSTM", xs, w, None, h0, c0, L, T, resident=resident,
                                                     num_warps=warps), 5)
                print(f"H={H} {str(dtype)[6:]:9s} B={B:3d} resident={resident!s:5s} warps={warps:2d}: "
                      f"{ms * 1000 / T:.2f} us/step", flush=True)
