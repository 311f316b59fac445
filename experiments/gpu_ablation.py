"""What variants 15, 17, 19 and 20 (benchmarks/GPU_NOTES.md) are worth, on a CUDA machine: the issue's
layer (bidirectional LSTM, I=256, H=512, 2 layers, T=512) at B=64 (inference and a training step)
and B=1 (inference), float32 and bfloat16, timed in one run with

- ``default``: the fused path as it is;
- ``no v15``: its input projections and W_hh gradient back to full-float32 GEMMs (float32
  operands for the bfloat16 weight gradient), the kernel itself unchanged;
- ``no v17``: float32 exchange areas for bfloat16 layers;
- ``no v19``: bfloat16 layers' dx written in float32 (converted after, as before);
- ``no v20``: bfloat16 layers' output y and its gradient in float32 at the kernels' boundary;

and cuDNN (torch.nn) for the ratio. Microseconds per (step x layer), medians of CUDA events.
(Variants 16 and 18, the layouts, have no switch: the processing-order kernels were removed
after the 2026-12-04 run timed them within noise of variant 18's, benchmarks/RESULTS.md.)

    PYTHONPATH=src python3 experiments/gpu_ablation.py [--repeats 5]
    TRITON_INTERPRET=1 PYTHONPATH=src python3 experiments/gpu_ablation.py --smoke   # CPU, toy sizes
"""

import argparse
import contextlib
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))  # the timing harness
import birnn.backends.fused.function as function  # noqa: E402
import birnn.backends.fused.recurrent as recurrent  # noqa: E402
from harness import cuda_time, layers_for, markdown_table, smoke_device  # noqa: E402

L = 2


@contextlib.contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def full_float32_products():
    """Variant 15 off: the products as before it (PyTorch's default matmul precision)."""
    stack = contextlib.ExitStack()
    stack.enter_context(patched(function, "project", lambda flat, w, bias, tf32=None: torch.nn.functional.linear(
        flat, w, bias)))  # PyTorch's default precision
    stack.enter_context(patched(function, "weight_product", lambda a, b, dtype, precision: torch.bmm(a.float(),
                                                                                                   b.float())))
    return stack


CONFIGS = {
    "default": contextlib.nullcontext,
    "no v15": full_float32_products,
    "no v17": lambda: patched(recurrent, "_exchange_dtype", lambda dtype: torch.float32),
    "no v19": lambda: patched(recurrent, "_gradient_dtype", lambda dtype, mode, ln: torch.float32),
    "no v20": lambda: patched(recurrent, "_output_dtype", lambda dtype: torch.float32),
}
BF16_ONLY = ("no v17", "no v19", "no v20")  # (float32 layers: the same kernels)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="on CPU under TRITON_INTERPRET=1: T=6, I=8, H=16, B<=3, to "
                                                        "check the script end to end; the times mean nothing")
    a = p.parse_args(argv)
    dev = smoke_device(p, a.smoke)
    T, I, H, batch = (6, 8, 16, 3) if a.smoke else (512, 256, 512, 64)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        ref, ours = layers_for("LSTM", I, H, L, dtype, dev)
        for B, train in ((1, False), (batch, False), (batch, True)):
            x = torch.randn(T, B, I, device=dev, dtype=dtype)

            def run(module):
                def step():
                    if train:
                        module.zero_grad(set_to_none=True)
                        module(x)[0].float().sum().backward()
                    else:
                        with torch.no_grad():
                            module(x)
                return step

            per = T * L / 1000
            cudnn = cuda_time(run(ref), a.repeats) / per
            for name, config in CONFIGS.items():
                if name in BF16_ONLY and (dtype != torch.bfloat16 or (name == "no v19" and not train)):
                    continue
                with config():
                    us = cuda_time(run(ours), a.repeats) / per
                rows.append([str(dtype)[6:], B, "train" if train else "infer", name, f"{cudnn:.1f}", f"{us:.1f}",
                             f"{cudnn / us:.2f}x"])
                print(" | ".join(map(str, rows[-1])), flush=True)
    print()
    print(markdown_table(["dtype", "B", "step", "fused path", "cuDNN us", "fused us", "speed-up"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
