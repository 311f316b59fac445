"""Bytes written by the PyTorch ops around the fused kernels — projections, reversals, copies,
conversions; the kernel launches themselves left out — for one inference call and one training
step of a bidirectional 2-layer LSTM on the fused path, counted on CPU under Triton's
interpreter with a dispatch mode. Ops whose output is smaller than T*B*H elements (weight
re-layouts, states) are left out, so the figure is the per-step traffic that grows with T*B.
Printed in units of the layer output's size (T*B*2H floats): what the kernels' surroundings cost
on a GPU scales with it (benchmarks/GPU_NOTES.md, variant 18: this script run on the commit
before it and after it).

    TRITON_INTERPRET=1 PYTHONPATH=src python3 experiments/host_traffic.py [--shape 64,32,64,128]
"""

import argparse
import collections
import os
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))  # the timing harness
import birnn  # noqa: E402

VIEWS = {torch.ops.aten.view, torch.ops.aten._unsafe_view, torch.ops.aten.transpose, torch.ops.aten.permute,
         torch.ops.aten.select, torch.ops.aten.slice, torch.ops.aten.unsqueeze, torch.ops.aten.squeeze,
         torch.ops.aten.expand, torch.ops.aten.t, torch.ops.aten.alias, torch.ops.aten.detach,
         torch.ops.aten.unbind, torch.ops.aten.split, torch.ops.aten.as_strided}
ALLOCATIONS = {"empty", "new_empty", "empty_like", "empty_strided"}


class BytesWritten(TorchDispatchMode):
    """Bytes each op writes (outputs; in-place ops their self, index_put_ its values), per op name,
    for outputs of at least ``least`` elements; ``paused`` while a kernel runs."""

    def __init__(self, least: int):
        super().__init__()
        self.least, self.paused, self.by_op = least, False, collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if self.paused or func.overloadpacket in VIEWS or name in ALLOCATIONS:
            return out
        if name == "index_put_":
            written = [args[2]]
        else:
            written = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, torch.Tensor)]
        big = [t for t in written if t.numel() >= self.least or name.endswith("_")]
        self.by_op[name] += sum(t.numel() * t.element_size() for t in big)
        return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="64,32,64,128", help="T,B,I,H")
    a = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") != "1":
        p.error("the kernels run under Triton's interpreter here: set TRITON_INTERPRET=1")
    import birnn.backends.fused.recurrent as R

    T, B, I, H = (int(v) for v in a.shape.split(","))
    counter = BytesWritten(T * B * H)
    launch = R._launch

    def paused_launch(*args, **kw):  # the kernel's own reads and writes are not counted
        counter.paused = True
        try:
            return launch(*args, **kw)
        finally:
            counter.paused = False

    R._launch = paused_launch
    try:
        report(T, B, I, H, counter)
    finally:
        R._launch = launch
    return 0


def report(T, B, I, H, counter):
    torch.manual_seed(0)
    lstm = birnn.LSTM(I, H, num_layers=2, bidirectional=True, path="fused")
    x = torch.randn(T, B, I)
    unit = T * B * 2 * H * 4
    print(f"# bidirectional 2-layer LSTM, T={T} B={B} I={I} H={H}, fused path; bytes written / output size")
    for train in (False, True):
        for name, lengths in (("equal", None), ("random", torch.randint(T // 4, T + 1, (B,)))):
            if lengths is not None:
                lengths[0] = T
            counter.by_op.clear()
            with counter:
                if train:
                    lstm(x, lengths=lengths).output.sum().backward()
                else:
                    with torch.no_grad():
                        lstm(x, lengths=lengths)
            top = ", ".join(f"{k} {v / unit:.1f}" for k, v in counter.by_op.most_common(6) if v)
            print(f"{'training' if train else 'inference'}, {name} lengths: {sum(counter.by_op.values()) / unit:.1f} "
                  f"({top})")


if __name__ == "__main__":
    raise SystemExit(main())
