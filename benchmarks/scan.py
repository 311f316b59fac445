"""The parallel-scan cells against birnn's GRU and LSTM on CPU (issue #34), in one run.

A training step (forward, backward, zero_grad) of a bidirectional 2-layer layer, B=16, I=H=256,
at T = 128, 1,024 and 4,096; medians of interleaved repeats, ratios against birnn's GRU of the
same run. Memory: the bytes autograd keeps for the backward of one training step (distinct
storages saved for backward, measured with ``torch.autograd.graph.saved_tensors_hooks``) at
the longest T. The bar: MinGRU at least 10x faster than birnn's GRU at T = 1,024.

    python benchmarks/scan.py                  # the table (a few minutes on 2 cores)
    python benchmarks/scan.py --T 64 --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse

import torch

import birnn
from harness import interleaved, machine, markdown_table

CLASSES = {"GRU": birnn.GRU, "LSTM": birnn.LSTM, "MinGRU": birnn.MinGRU, "MinLSTM": birnn.MinLSTM}


def _step(layer, x):
    def run():
        layer(x).output.sum().backward()
        layer.zero_grad(set_to_none=True)
    return run


def saved_bytes(layer, x) -> int:
    """Bytes of the distinct storages autograd saves for one training step's backward."""
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x).output.sum()
    out.backward()
    layer.zero_grad(set_to_none=True)
    return sum(storages.values())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", default="128,1024,4096", help="sequence lengths (default 128,1024,4096)")
    p.add_argument("--B", type=int, default=16)
    p.add_argument("--H", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, interleaved (default 3)")
    args = p.parse_args(argv)
    Ts = [int(t) for t in args.T.split(",")]
    B, H = args.B, args.H
    print(f"# parallel-scan cells, CPU training step: bidirectional, 2 layers, B={B}, I=H={H}")
    print(f"# {machine()}\n")
    torch.manual_seed(0)
    layers = {name: cls(H, H, num_layers=2, bidirectional=True) for name, cls in CLASSES.items()}
    rows, verdict = [], True
    for T in Ts:
        x = torch.randn(T, B, H)
        ms = interleaved({name: _step(layer, x) for name, layer in layers.items()}, args.repeats)
        for name in CLASSES:
            rows.append([T, name, layers[name].last_decision.path, ms[name], f"{ms['GRU'] / ms[name]:.2f}x"])
        if T == 1024:
            speedup = ms["GRU"] / ms["MinGRU"]
            verdict = speedup >= 10
            print(f"bar: MinGRU >= 10x birnn's GRU at T=1024: {speedup:.2f}x {'PASS' if verdict else 'FAIL'}")
    print(markdown_table(["T", "layer", "path", "ms / step", "GRU ms / this"], rows))
    T = max(Ts)
    x = torch.randn(T, B, H)
    mem = [[name, f"{saved_bytes(layer, x) / 2 ** 20:.0f}"] for name, layer in layers.items()]
    print(f"\nsaved for backward at T={T} (MiB):\n" + markdown_table(["layer", "MiB"], mem))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
