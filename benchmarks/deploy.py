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
4. Regularised (recurrent_dropout=0.25, zoneout=0.1, layer_norm), the training step of 2 at the
   same sizes: compiled (one birnn::regularised_layer node per layer) against eager, against the
   plain eager step (bar: within 1.3x of it), the packed layer's steps as PyTorch ops (without
   its C++ kernel) and the autograd step loop it replaced, and Keras 3 on JAX with recurrent_dropout=0.25
   (and without), the same layers, batch-first (``jax.jit(jax.grad(...))`` of the model's
   stateless call: forward and backward, as birnn's step), where keras and jax are installed.
   Compile time against T for the regularised layer is in 1.

    python benchmarks/deploy.py --only compile regularised     # some sections
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
        for label, backend, path, extras in (
                ("graph-op (default), inductor", "inductor", "auto", {}),
                ("regularised: graph-op node (default), inductor", "inductor", "auto", REGULARISED),
                ("step loop (path='reference'), aot_eager", "aot_eager", "reference", {})):
            if path == "reference" and T > Ts[1]:
                continue
            torch._dynamo.reset()
            torch.manual_seed(0)
            layer = birnn.LSTM(I, H, num_layers=2, bidirectional=True, path=path, **extras)
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


REGULARISED = dict(recurrent_dropout=0.25, zoneout=0.1, layer_norm=True)


def regularised_rows(B, T, I, H, repeats):
    """Section 4: rows and the bar line."""
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    plain = birnn.LSTM(I, H, num_layers=2, bidirectional=True).train()
    reg = birnn.LSTM(I, H, num_layers=2, bidirectional=True, **REGULARISED).train()
    drop = birnn.LSTM(I, H, num_layers=2, bidirectional=True, recurrent_dropout=0.25).train()  # Keras' feature
    x, lengths = torch.randn(T, B, I, generator=gen), _lengths(B, T, gen)
    torch._dynamo.reset()
    compiled = torch.compile(reg, fullgraph=True, dynamic=True)
    compiled_drop = torch.compile(drop, fullgraph=True, dynamic=True)
    _step(compiled, reg, x, lengths)()  # compile outside the timing
    _step(compiled_drop, drop, x, lengths)()
    steps = {"plain eager": _step(plain, plain, x, lengths), "regularised eager": _step(reg, reg, x, lengths),
             "regularised compiled": _step(compiled, reg, x, lengths),
             "regularised eager, steps as PyTorch ops (no C++ kernel)": _without_kernel(_step(reg, reg, x, lengths)),
             "regularised eager, the autograd step loop (before)": _step_loop(_step(reg, reg, x, lengths)),
             "recurrent_dropout=0.25 only, eager": _step(drop, drop, x, lengths),
             "recurrent_dropout=0.25 only, compiled": _step(compiled_drop, drop, x, lengths)}
    keras_steps = _keras_steps(B, T, I, H, x)
    ms = interleaved({**steps, **keras_steps}, repeats)
    base = ms["plain eager"]
    rows = [[k, f"{v:.0f}", f"{v / base:.2f}x"] for k, v in ms.items()]
    ratio = ms["regularised compiled"] / base
    bar = f"{'PASS' if ratio <= 1.3 else 'FAIL'}  compiled regularised step within 1.3x of the plain eager step: {ratio:.2f}x"
    return rows, bar


def _without_kernel(run):
    """``run`` with each packed step's elementwise part as PyTorch ops (the kernel's fallback)."""
    import birnn.backends.packed.layer

    def inner():
        kernel, birnn.backends.packed.layer.kernel = birnn.backends.packed.layer.kernel, lambda t: None
        try:
            run()
        finally:
            birnn.backends.packed.layer.kernel = kernel
    return inner


def _step_loop(run):
    """``run`` on the reference step loop, every op recorded by autograd (what ran before
    birnn.backends.packed.layer)."""
    from birnn.backends import BACKENDS

    def inner():
        packed = BACKENDS["packed"]
        packed.supports = lambda plan: "off"  # (an instance attribute over the method)
        try:
            run()
        finally:
            del packed.supports
    return inner


def _keras_steps(B, T, I, H, x):
    """Keras 3 on JAX, the same 2-layer bidirectional LSTM (batch-first input), a training step's
    forward and backward: ``jax.jit(jax.grad(...))`` of the stateless call, with and without
    recurrent_dropout=0.25; {} where keras or jax is missing."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import jax
        import keras
    except ImportError:
        print("(keras 3 / jax not installed: pip install keras jax, for the Keras rows)")
        return {}
    if keras.backend.backend() != "jax":
        print(f"(keras runs on {keras.backend.backend()}, not jax: set KERAS_BACKEND=jax)")
        return {}
    xj = jax.numpy.asarray(x.transpose(0, 1).numpy())
    out = {}
    for name, rd in (("Keras 3 / JAX, recurrent_dropout=0.25", 0.25), ("Keras 3 / JAX, plain", 0.0)):
        inp = keras.Input((T, I))
        y = keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True, recurrent_dropout=rd))(inp)
        y = keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True, recurrent_dropout=rd))(y)
        model = keras.Model(inp, y)
        state = {"tv": [v.value for v in model.trainable_variables],
                 "ntv": [v.value for v in model.non_trainable_variables]}

        def loss(tv, ntv, data, model=model):
            y, ntv = model.stateless_call(tv, ntv, data, training=True)
            return jax.numpy.sum(y), ntv

        grad = jax.jit(jax.grad(loss, has_aux=True))

        def run(grad=grad, state=state):
            grads, state["ntv"] = grad(state["tv"], state["ntv"], xj)
            jax.block_until_ready(grads)

        run()  # compile outside the timing
        out[name] = run
    return out


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
    p.add_argument("--only", nargs="+", choices=("compile", "training", "inference", "regularised"),
                   help="run these sections only")
    args = p.parse_args(argv)
    only = set(args.only or ("compile", "training", "inference", "regularised"))
    if args.quick:
        Ts, (B, T, I, H), repeats = (8, 16, 32), (4, 16, 8, 16), 2
    else:
        Ts, (B, T, I, H), repeats = (32, 128, 512, 2048), (32, 128, 128, 256), args.repeats
    print(f"# {machine()}")
    if "compile" in only:
        print("\n## compile time against T (training step, bidirectional 2-layer LSTM, B=8, I=32, H=64)\n")
        print(markdown_table(["route", "T", "first call s", "steady step ms", "compile s"],
                             compile_rows(Ts, 8 if not args.quick else 2, 32 if not args.quick else 4,
                                          64 if not args.quick else 8, max(2, repeats // 2))))
    if "training" in only:
        print(f"\n## training step (B={B}, T={T}, I={I}, H={H}, lengths in [T/4, T]; median of {repeats})\n")
        print(markdown_table(["step", "ms", "speed-up vs birnn eager"], training_rows(B, T, I, H, repeats)))
    if "inference" in only:
        print(f"\n## inference (T={T}, I={I}, H={H}, lengths in [T/4, T]; median of {repeats})\n")
        print(markdown_table(["B", "onnxruntime ms", "birnn eager ms", "torch.nn ms", "birnn / ort", "torch.nn / ort",
                              "max |ort - birnn|"], inference_rows((1, B), T, I, H, repeats)))
    if "regularised" in only:
        print(f"\n## regularised training step (recurrent_dropout=0.25, zoneout=0.1, layer_norm; B={B}, T={T}, "
              f"I={I}, H={H}, lengths in [T/4, T]; median of {repeats})\n")
        rows, bar = regularised_rows(B, T, I, H, repeats)
        print(markdown_table(["step", "ms", "time / plain eager"], rows))
        print(bar)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
