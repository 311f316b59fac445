"""Input forms against the padded batch with lengths, measured in one run (CPU).

Bidirectional 2-layer LSTM, B=32, T=128, I=128, H=256, lengths uniform in [T/4, T]: the same
data as a padded batch with ``lengths`` (the peer), as a jagged nested tensor, and as
``cu_seqlens`` rows; inference and a training step (forward, backward). Ratios are the form's
time over the padded batch's (1.00x: the same cost; the bar is <= 1.05x, the noise of this
shared machine). Then a call with ``resets`` (one in every fourth row) against the same call
without, inference and training step: the path each takes and the time (issue #38's bar: a
call with resets, run as its segments, within 1.1x of the call without).

    PYTHONPATH=src python benchmarks/inputs.py --repeats 7
"""

import argparse

import torch

import birnn
from harness import interleaved, machine, markdown_table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--time", type=int, default=128)
    p.add_argument("--input", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    B, T, I, H = args.batch, args.time, args.input, args.hidden
    print(f"# input forms, bidirectional 2-layer LSTM, B={B}, T={T}, I={I}, H={H}, lengths in [T/4, T]")
    print(f"# {machine()}")
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(T // 4, T + 1, (B,), generator=g)
    lengths[0] = T
    x = torch.randn(T, B, I, generator=g)
    seqs = [x[:n, b].contiguous() for b, n in enumerate(lengths.tolist())]
    nested = torch.nested.nested_tensor(seqs, layout=torch.jagged)
    rows = torch.cat(seqs)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    lstm = birnn.LSTM(I, H, num_layers=2, bidirectional=True)
    resets = torch.zeros(T, B, dtype=torch.bool)
    resets[T // 2, ::4] = True

    calls = {
        "padded + lengths": lambda: lstm(x, lengths=lengths),
        "jagged nested": lambda: lstm(nested),
        "cu_seqlens rows": lambda: lstm(rows, cu_seqlens=offsets),
    }
    rows_out = []
    for train in (False, True):
        def timed(call):
            def run():
                if train:
                    lstm.zero_grad(set_to_none=True)
                    out = call().output
                    (out.values() if out.is_nested else out).sum().backward()
                else:
                    with torch.no_grad():
                        call()
            return run

        ms = interleaved({k: timed(c) for k, c in calls.items()}, args.repeats)
        peer = ms["padded + lengths"]
        for k, v in ms.items():
            rows_out.append(["training step" if train else "inference", k, v, f"{v / peer:.2f}x"])
    print(markdown_table(["step", "form", "ms", "time / padded"], rows_out))

    # resets (one in every fourth row): run as segments, against the same call without them
    reset_rows = []
    for train in (False, True):
        def step(**kw):
            def run():
                if train:
                    lstm.zero_grad(set_to_none=True)
                    lstm(x, lengths=lengths, **kw).output.sum().backward()
                else:
                    with torch.no_grad():
                        lstm(x, lengths=lengths, **kw)
            return run

        ms = interleaved({"without resets": step(), "with resets": step(resets=resets)}, args.repeats)
        with torch.no_grad():
            paths = {k: lstm(x, lengths=lengths, **kw).path for k, kw in (("without resets", {}),
                                                                             ("with resets", {"resets": resets}))}
        ratio = ms["with resets"] / ms["without resets"]
        for k in ms:
            reset_rows.append(["training step" if train else "inference", k, paths[k], ms[k],
                               f"{ms[k] / ms['without resets']:.2f}x",
                               ("PASS" if ratio <= 1.1 else "FAIL") if k == "with resets" else ""])
    print()
    print(markdown_table(["step", "call", "path", "ms", "time / without", "bar <= 1.1x"], reset_rows))
    print(f"\nwith resets: {lstm.last_decision.reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
