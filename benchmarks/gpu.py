"""GPU benchmark (issue #6): birnn's fused persistent kernel against cuDNN (through torch.nn),
measured in the same run. Times are per (time step x layer), both directions, in microseconds;
"speed-up" is cuDNN time / birnn time.

    python benchmarks/gpu.py            # the issue's cases, fp32 and bf16
    python benchmarks/gpu.py --quick    # a few cases, also both kernel variants

Cases (bidirectional LSTM, I=256, H=512, L=2 unless stated): inference B=1 and B=64 (T=512);
a training step B=64 (forward + backward); training with random lengths in [T/4, T] (cuDNN
packs, birnn does not); GRU and other sizes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
import birnn  # noqa: E402
from birnn.bench import machine, markdown_table  # noqa: E402


def cuda_time(fn, repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of ``fn`` by CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def layers_for(mode, I, H, L, dtype):
    torch.manual_seed(0)
    ref = getattr(torch.nn, mode)(I, H, L, bidirectional=True).cuda().to(dtype)
    ours = getattr(birnn, mode)(I, H, L, bidirectional=True, path="fused").cuda().to(dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def case(mode, B, T, I, H, L, dtype, train, lengths_range, repeats, extra_paths=()):
    ref, ours = layers_for(mode, I, H, L, dtype)
    x = torch.randn(T, B, I, device="cuda", dtype=dtype)
    lengths = None
    if lengths_range:
        g = torch.Generator().manual_seed(0)
        lengths = torch.randint(lengths_range[0], lengths_range[1] + 1, (B,), generator=g)
        lengths[0] = T

    def cudnn():
        if lengths is None:
            out = ref(x)[0]
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
            out = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], total_length=T)[0]
        return out

    def mine(path):
        def run():
            ours.path = path
            return ours(x, lengths=lengths).output
        return run

    def step(fn, module):
        if not train:
            def go():
                with torch.no_grad():
                    fn()
            return go

        def go_train():
            module.zero_grad(set_to_none=True)
            fn().float().sum().backward()
        return go_train

    results = {"cuDNN": cuda_time(step(cudnn, ref), repeats)}
    for path in ("fused", *extra_paths):
        results[path] = cuda_time(step(mine(path), ours), repeats)
    per = T * L
    return {k: v * 1000 / per for k, v in results.items()}  # us per (step x layer)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    print(f"# {machine()}, {torch.cuda.get_device_name()}, cuDNN {torch.backends.cudnn.version()}")
    I, H, L, T = 256, 512, 2, 512
    rows = []
    dtypes = [torch.float32] if args.quick else [torch.float32, torch.bfloat16]
    cases = [("LSTM", 1, T, I, H, L, False, None), ("LSTM", 64, T, I, H, L, False, None),
             ("LSTM", 64, T, I, H, L, True, None), ("LSTM", 64, T, I, H, L, True, (T // 4, T))]
    if not args.quick:
        cases += [("GRU", 1, T, I, H, L, False, None), ("GRU", 64, T, I, H, L, True, None),
                  ("LSTM", 8, T, I, 128, L, True, None), ("LSTM", 8, T, I, 1024, L, False, None),
                  ("LSTM", 256, 128, I, H, L, True, None)]
    for dtype in dtypes:
        for mode, B, T_, I_, H_, L_, train, lr in cases:
            try:
                r = case(mode, B, T_, I_, H_, L_, dtype, train, lr, args.repeats)
            except Exception as e:  # report what fails, keep measuring the rest
                rows.append([mode, str(dtype).split(".")[-1], B, T_, H_, "train" if train else "infer",
                             "random" if lr else "equal", "-", f"error: {type(e).__name__}: {str(e)[:80]}", "-"])
                continue
            rows.append([mode, str(dtype).split(".")[-1], B, T_, H_, "train" if train else "infer",
                         "random" if lr else "equal", f"{r['cuDNN']:.1f}", f"{r['fused']:.1f}",
                         f"{r['cuDNN'] / r['fused']:.2f}x"])
            print(rows[-1], flush=True)
    print(markdown_table(["cell", "dtype", "B", "T", "H", "step", "lengths", "cuDNN us/(step*layer)",
                          "birnn fused", "speed-up"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
