"""Leaving eager mode (issue #14): compile time against T, compiled against eager training
steps, and onnxruntime on the exported model against birnn eager and torch.nn — each ratio
against the peer measured in the same run (medians of interleaved repeats).

    python benchmarks/deploy.py                  # ~10 minutes on a 2-core CPU
    python benchmarks/deploy.py --quick          # smaller sizes, a smoke run

1. Compile: a bidirectional 2-layer LSTM training step under ``torch.compile(fullgraph=True,
   dynamic=True)`` (inductor), fresh for each T in {32, 128, 512, 2048}: first call (compile +
   run) and the steady step after it; compile time = first - steady. Flat in T is the bar.
   Beside it, the step loop that compile unrolled before (``path="reference"``, aot_eager) at
   the two smallest T.
2. Training step, bidirectional 2-layer LSTM, B=32, T=128, I=128, H=256, lengths uniform in
   [T/4, T]: compiled (inductor) against eager birnn. Bar: not slower.
3. Inference, B=1 and B=32, same sizes and lengths: onnxruntime on the exported model, birnn
   eager, torch.nn (packed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch.export import Dim
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import birnn
from harness import interleaved, machine, markdown_table


def _lengths(B, T, gen):
    lengths = torch.randint(T // 4, T + 1, (B,), generator=gen)
    lengths[0] = T
    return lengths


def _step(fn, layer, x, lengths):
    def run():
        res = fn(x, lengths=lengths)
        (res.output.sum() + res.h_n.sum()).backward()
        layer.zero_grad(set_to_none=True)
    return run


def compile_rows(Ts, B, I, H, repeats):
    gen = torch.Generator().manual_seed(0)
    rows = []
    for T in Ts:
        for label, backend, path in (("graph-op (default), inductor", "inductor", "auto"),
                                     ("step loop (path='reference'), aot_eager", "aot_eager", "reference")):
            if path == "reference" and T > Ts[1]:
                continue
            torch._dynamo.reset()
            torch.manual_seed(0)
            layer = birnn.LSTM(I, H, num_layers=2, bidirectional=True, path=path)
            compiled = torch.compile(layer, backend=backend, fullgraph=True, dynamic=True)
            x, lengths = torch.randn(T, B, I, generator=gen), _lengths(B, T, gen)
            step = _step(compiled, layer, x, lengths)
            t = time.perf_counter()
            step()
            first = time.perf_counter() - t
            steady = interleaved({"s": step}, repeats, warmup=1)["s"] / 1e3
            rows.append([label, T, f"{first:.1f}", f"{steady * 1e3:.0f}", f"{first - steady:.1f}"])
            print(rows[-1], flush=True)
    return rows


def training_rows(B, T, I, H, repeats):
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    layer = birnn.LSTM(I, H, num_layers=2, bidirectional=True)
    ref = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True)
    x, lengths = torch.randn(T, B, I, generator=gen), _lengths(B, T, gen)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, dynamic=True)
    _step(compiled, layer, x, lengths)()  # compile outside the timing

    def nn_step():
        out, (h, _) = ref(pack_padded_sequence(x, lengths, enforce_sorted=False))
        (pad_packed_sequence(out, total_length=T)[0].sum() + h.sum()).backward()
        ref.zero_grad(set_to_none=True)

    ms = interleaved({"eager": _step(layer, layer, x, lengths), "compiled": _step(compiled, layer, x, lengths),
                      "torch.nn": nn_step}, repeats)
    return [["birnn eager", f"{ms['eager']:.0f}", "1.00"],
            ["birnn compiled (inductor, dynamic)", f"{ms['compiled']:.0f}", f"{ms['eager'] / ms['compiled']:.2f}"],
            ["torch.nn eager (packed)", f"{ms['torch.nn']:.0f}", f"{ms['eager'] / ms['torch.nn']:.2f}"]]


class _Encoder(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths):
        res = self.layer(x, lengths=lengths)
        return res.output, res.h_n, res.c_n


def inference_rows(Bs, T, I, H, repeats):
    import onnxruntime

    from birnn.onnx_export import export_onnx

    torch.manual_seed(0)
    layer = birnn.LSTM(I, H, num_layers=2, bidirectional=True).eval()
    ref = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True).eval()
    ref.load_state_dict(layer.state_dict())
    model = _Encoder(layer).eval()
    gen = torch.Generator().manual_seed(2)
    path = Path(tempfile.mkdtemp()) / "lstm.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(model, (torch.randn(T, 4, I), _lengths(4, T, gen)),
                    dynamic_shapes=({0: Dim("T"), 1: Dim("B")}, {0: Dim("B")})).save(str(path))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options)
    rows = []
    for B in Bs:
        x, lengths = torch.randn(T, B, I, generator=gen), _lengths(B, T, gen)
        feed = {"x": x.numpy(), "lengths": lengths.numpy()}
        got = session.run(None, feed)[0]
        with torch.no_grad():
            err = float((torch.from_numpy(got) - layer(x, lengths=lengths).output).abs().max())

            def nn_run():
                out, _ = ref(pack_padded_sequence(x, lengths, enforce_sorted=False))
                pad_packed_sequence(out, total_length=T)

            ms = interleaved({"ort": lambda: session.run(None, feed), "birnn": lambda: layer(x, lengths=lengths),
                              "torch.nn": nn_run}, repeats)
        rows.append([B, f"{ms['ort']:.2f}", f"{ms['birnn']:.2f}", f"{ms['torch.nn']:.2f}",
                     f"{ms['birnn'] / ms['ort']:.2f}", f"{ms['torch.nn'] / ms['ort']:.2f}", f"{err:.1e}"])
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    if args.quick:
        Ts, (B, T, I, H), repeats = (8, 16, 32), (4, 16, 8, 16), 2
    else:
        Ts, (B, T, I, H), repeats = (32, 128, 512, 2048), (32, 128, 128, 256), args.repeats
    print(f"# {machine()}")
    print("\n## compile time against T (training step, bidirectional 2-layer LSTM, B=8, I=32, H=64)\n")
    print(markdown_table(["route", "T", "first call s", "steady step ms", "compile s"],
                         compile_rows(Ts, 8 if not args.quick else 2, 32 if not args.quick else 4,
                                      64 if not args.quick else 8, max(2, repeats // 2))))
    print(f"\n## training step (B={B}, T={T}, I={I}, H={H}, lengths in [T/4, T]; median of {repeats})\n")
    print(markdown_table(["step", "ms", "speed-up vs birnn eager"], training_rows(B, T, I, H, repeats)))
    print(f"\n## inference (T={T}, I={I}, H={H}, lengths in [T/4, T]; median of {repeats})\n")
    print(markdown_table(["B", "onnxruntime ms", "birnn eager ms", "torch.nn ms", "birnn / ort", "torch.nn / ort",
                          "max |ort - birnn|"], inference_rows((1, B), T, I, H, repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
