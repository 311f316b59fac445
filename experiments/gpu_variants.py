"""The fused kernels alone on a CUDA machine (notes in benchmarks/GPU_NOTES.md): one layer, T=512,
both directions, microseconds per step, W_hh kept on chip ("resident", the default where it
fits) against streamed from L2 each step ("stream"), forward (inference) and backward (BPTT after
a saving forward, the weight-gradient matmul not included), plain and regularised (recurrent
dropout + zoneout + layer norm). The alternatives this script timed before and that lost or tied
on an H200 (the PTX barrier, the backward without prefetch, processing-order inputs) were
removed from the kernels; git keeps them.

    PYTHONPATH=src python3 experiments/gpu_variants.py [--modes LSTM,GRU] [--hidden 512,1024]
                                                      [--batches 1,16,64] [--dtypes float32,bfloat16]
    TRITON_INTERPRET=1 PYTHONPATH=src python3 experiments/gpu_variants.py --smoke   # CPU, toy sizes
"""

import argparse
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))  # the timing harness
from harness import cuda_time, smoke_device  # noqa: E402
from birnn.backends.fused.recurrent import StepExtras, layer_backward, layer_forward  # noqa: E402

warnings.filterwarnings("ignore")
D = 2


def timings(mode, xs, w, b, h0, c0, L, extras, kernel):
    """'name us/step' entries of one kernel, or why it cannot run."""
    T = xs.shape[0]
    try:
        saved = layer_forward(mode, xs, w, b, h0, c0, L, T, extras=extras, kernel=kernel, save=True)
    except ValueError as e:  # resident beyond its limits
        return [f"n/a ({str(e)[:40]})"]
    dout = torch.randn(saved.y.shape, device=xs.device)
    dhn = torch.randn(h0.shape, device=xs.device)
    dcn = dhn if c0 is not None else None
    got = {"fwd": cuda_time(lambda: layer_forward(mode, xs, w, b, h0, c0, L, T, extras=extras, kernel=kernel), 5),
           "bwd": cuda_time(lambda: layer_backward(mode, w, saved, h0, c0, L, T, dout, dhn, dcn, extras=extras,
                                                   kernel=kernel), 5)}
    return [f"{k} {v * 1000 / T:.2f}" for k, v in got.items()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="LSTM,GRU")
    p.add_argument("--hidden", default="512,1024")
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--smoke", action="store_true", help="on CPU under TRITON_INTERPRET=1: H=16, B=2, T=6, to check "
                                                        "the script end to end; the times mean nothing")
    a = p.parse_args(argv)
    dev = smoke_device(p, a.smoke)
    T = 6 if a.smoke else 512
    if a.smoke:
        a.hidden, a.batches = "16", "2"
    for mode in a.modes.split(","):
        G = {"LSTM": 4, "GRU": 3}[mode]
        for H in map(int, a.hidden.split(",")):
            for dtype in (getattr(torch, n) for n in a.dtypes.split(",")):
                for B in map(int, a.batches.split(",")):
                    xs = torch.randn(T, B, D, G * H, device=dev, dtype=dtype)  # the layer's projection
                    w = (torch.randn(D, G * H, H, device=dev) / H ** 0.5).to(dtype)
                    b = torch.zeros(D, G * H, device=dev) if mode == "GRU" else None
                    h0 = torch.zeros(D, B, H, device=dev)
                    c0 = torch.zeros(D, B, H, device=dev) if mode == "LSTM" else None
                    L = torch.full((B,), T)
                    reg = StepExtras(drop=torch.ones(D, B, H, device=dev),
                                     keep_h=torch.zeros(T, D, B, H, device=dev),
                                     ln_h=torch.ones(D, G * H, device=dev),
                                     ln_c=(torch.ones(D, H, device=dev), torch.zeros(D, H, device=dev))
                                     if mode == "LSTM" else None)
                    for name, extras in (("plain", StepExtras()), ("regularised", reg)):
                        for kernel in ("resident", "stream"):
                            row = timings(mode, xs, w, b, h0, c0, L, extras, kernel)
                            print(f"{mode} H={H} {str(dtype)[6:]:8s} B={B:2d} {name:11s} {kernel:8s} us/step: "
                                  + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
