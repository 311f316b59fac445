"""The benchmark harness (outside the package): suites that print ratios against the peer
measured in the same run, and the timing helpers the other scripts here share. Run as
``python benchmarks/cpu.py`` / ``benchmarks/gpu.py``, or ``birnn bench`` from a checkout.

CPU suite (issues #2 and #3): bidirectional 2-layer LSTM/GRU/RNN, B=32, T=128, I=128, H=256
(override with flags); equal lengths and random lengths (uniform in [T/4, T] and in [1, T]);
inference and a training step (forward + backward + zero_grad). torch.nn must pack variable
lengths (pack_padded_sequence(enforce_sorted=False) ... pad_packed_sequence, timed as a user
runs it); birnn takes the padded batch and lengths.

Columns: milliseconds (median of interleaved repeats) and speed-ups against torch.nn
(``torch.nn time / birnn time``: above 1 means birnn is faster).

Bars (issue #2): default path >= 0.95x torch.nn on equal lengths; reference path within 2x of
torch.nn (speed-up >= 0.5); LSTM variable-length training step >= 1.5x torch.nn's packed one.

Regularised case (issue #3): a bidirectional 2-layer LSTM with recurrent_dropout=0.25,
zoneout=0.1 and layer_norm=True, training step, against torch.nn's *plain* LSTM training step
in the same run. Bar: within 2.5x (time ratio <= 2.5).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from typing import Callable, Dict, List, Sequence

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from birnn import speed_table
from birnn.backends.fused import KERNELS, KernelConfig, configured, default_kernel, hardware
from birnn.layers import GRU, LSTM, RNN

_LAYERS = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
def interleaved(fns: Dict[str, Callable[[], None]], repeats: int, warmup: int = 1,
                sync: Callable[[], None] = lambda: None) -> Dict[str, float]:
    """Median milliseconds of each function, measured round-robin so drift hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            sync()
            times[k].append((time.perf_counter() - t) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v):
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{datetime.date.today().isoformat()}, {cpu}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def _contenders(ref, ours, x, lengths, train: bool, paths) -> Dict[str, Callable[[], None]]:
    """One inference call or training step (forward, backward, zero_grad) for torch.nn (packing
    variable lengths, as its users must) and for birnn on each of ``paths``."""

    def torch_nn():
        if lengths is None:
            return ref(x)[0]
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        return pad_packed_sequence(ref(packed)[0], total_length=x.shape[0])[0]

    def birnn_on(path):
        def run():
            ours.path = path
            return ours(x, lengths=lengths).output
        return run

    def step(fn, module):
        if train:
            def train_step():
                module.zero_grad(set_to_none=True)
                fn().float().sum().backward()
            return train_step

        def inference():
            with torch.no_grad():
                fn()
        return inference

    return {"torch.nn": step(torch_nn, ref), **{p: step(birnn_on(p), ours) for p in paths}}


def _steps(ref, ours, x, lengths, train):
    """The CPU suite's contenders: torch.nn, birnn's default choice, and the reference path."""
    fns = _contenders(ref, ours, x, lengths, train, ("auto", "reference"))
    return {"torch.nn": fns["torch.nn"], "birnn": fns["auto"], "birnn reference": fns["reference"]}


def _regularised(B, T, I, H, L, repeats, gen):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(I, H, L, bidirectional=True)
    reg = LSTM(I, H, L, bidirectional=True, recurrent_dropout=0.25, zoneout=0.1, layer_norm=True).train()
    x = torch.randn(T, B, I, generator=gen)
    lengths = torch.randint(T // 4, T + 1, (B,), generator=gen)

    def step(module, **kw):
        def run():
            module.zero_grad(set_to_none=True)
            module(x, **kw)[0].sum().backward()
        return run

    ms = interleaved({"torch.nn plain": step(ref), "birnn regularised": step(reg),
                      "birnn regularised, random lengths": step(reg, lengths=lengths)}, repeats)
    ratio = ms["birnn regularised"] / ms["torch.nn plain"]
    print()
    print("Regularised bidirectional LSTM training step (recurrent_dropout=0.25, zoneout=0.1, layer_norm):")
    print(markdown_table(["contender", "ms", "time / torch.nn plain"],
                         [[k, v, f"{v / ms['torch.nn plain']:.2f}x"] for k, v in ms.items()]))
    return ("LSTM regularised training within 2.5x of torch.nn plain", ratio <= 2.5, ratio)


_CPU_DOC = """CPU benchmark: birnn against torch.nn, measured in the same run. Bidirectional LSTM and GRU
(B=32, T=128, I=128, H=256, 2 layers unless set below); equal lengths and random lengths (in
[T/4, T] and in [1, T]); inference and a training step. torch.nn packs variable lengths, as its
users must; birnn takes the padded batch and lengths. Times are medians of interleaved repeats in
milliseconds; speed-up is torch.nn's time over birnn's (above 1: birnn is faster). Last, a
regularised LSTM training step (recurrent dropout 0.25, zoneout 0.1, layer norm) against
torch.nn's plain one.

    birnn bench                      # the suite on CPU (on a GPU: birnn's kernel against cuDNN)
    birnn bench --modes LSTM --time 256
"""


def cpu_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="birnn bench", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description=_CPU_DOC)
    p.add_argument("--batch", type=int, default=32, help="batch size B (default 32)")
    p.add_argument("--time", type=int, default=128, help="time steps T (default 128)")
    p.add_argument("--input", type=int, default=128, help="input size I (default 128)")
    p.add_argument("--hidden", type=int, default=256, help="hidden size H (default 256)")
    p.add_argument("--layers", type=int, default=2, help="layers L (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each case, interleaved (default 5)")
    p.add_argument("--modes", default="LSTM,GRU", help="cells to time, comma-separated (default LSTM,GRU)")
    args = p.parse_args(argv)
    B, T, I, H, L = args.batch, args.time, args.input, args.hidden, args.layers
    print(f"# birnn CPU benchmark: bidirectional, B={B}, T={T}, I={I}, H={H}, L={L}")
    print(f"# {machine()}")
    gen = torch.Generator().manual_seed(0)
    rows, bars = [], []
    for mode in args.modes.split(","):
        torch.manual_seed(0)
        ref = getattr(torch.nn, mode)(I, H, L, bidirectional=True)
        ours = _LAYERS[mode](I, H, L, bidirectional=True)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(T, B, I, generator=gen)
        cases = [("equal", None),
                 ("random [T/4,T]", torch.randint(T // 4, T + 1, (B,), generator=gen)),
                 ("random [1,T]", torch.randint(1, T + 1, (B,), generator=gen))]
        for name, lengths in cases:
            for train in (False, True):
                ms = interleaved(_steps(ref, ours, x, lengths, train), args.repeats)
                ours.path = "auto"
                with torch.set_grad_enabled(train):
                    ours(x, lengths=lengths)
                path = ours.last_decision.path
                kind = "training" if train else "inference"
                speed = ms["torch.nn"] / ms["birnn"]
                speed_ref = ms["torch.nn"] / ms["birnn reference"]
                peer = "torch.nn" if lengths is None else "torch.nn packed"
                rows.append([mode, name, kind, peer, ms["torch.nn"], f"{ms['birnn']:.1f} ({path})",
                             f"{speed:.2f}x", f"{ms['birnn reference']:.1f}", f"{speed_ref:.2f}x"])
                if lengths is None:
                    bars.append((f"{mode} {kind} equal: default >= 0.95x torch.nn", speed >= 0.95, speed))
                    bars.append((f"{mode} {kind} equal: reference within 2x", speed_ref >= 0.5, speed_ref))
                elif mode == "LSTM" and train:
                    bars.append((f"{mode} training {name}: >= 1.5x torch.nn packed", speed >= 1.5, speed))
    print(markdown_table(["mode", "lengths", "step", "peer", "peer ms", "birnn ms (path)", "speed-up",
                          "reference ms", "ref speed-up"], rows))
    if "LSTM" in args.modes.split(","):
        bars.append(_regularised(B, T, I, H, L, args.repeats, gen))
    print()
    for text, ok, value in bars:
        print(f"{'PASS' if ok else 'FAIL'}  {text}: {value:.2f}x")
    print("(speed-ups: torch.nn time / birnn time; the regularised line is a time ratio)")
    return 0


_GPU_DOC = """GPU benchmark: birnn's fused persistent kernel against cuDNN (through torch.nn),
measured in the same run. Times are per (time step x layer), both directions, in microseconds;
"speed-up" is cuDNN time / birnn time.

    birnn bench                                   # the issue's cases, fp32 and bf16
    birnn bench --quick                           # the four LSTM cases, fp32
    birnn bench --table src/birnn/speed_table.json  # also rewrite the table path="auto" reads
    TRITON_INTERPRET=1 birnn bench --smoke        # on CPU: every case at toy sizes, to check the
                                                  # suite runs end to end before a GPU session

--kernel stream times the kernels that stream W_hh from L2 each step instead of keeping it on chip
where it fits (birnn.backends.fused.KernelConfig).

Cases (bidirectional LSTM, I=256, H=512, L=2 unless stated): inference B=1 and B=64 (T=512);
a training step B=64 (forward + backward); training with random lengths in [T/4, T] (cuDNN
packs, birnn does not); GRU, H in {128, 1024} and B in {8, 256}; then a training step with recurrent
dropout, zoneout and layer norm fused, against the plain fused kernel (bar: within 1.3x), the
reference path and cuDNN's plain LSTM.
"""


def smoke_device(parser: argparse.ArgumentParser, smoke: bool) -> str:
    """Where a GPU script runs: ``"cuda"``, or ``"cpu"`` for its ``--smoke`` run, which needs the
    kernels under Triton's interpreter (refused, through ``parser``, without TRITON_INTERPRET=1)."""
    if smoke and not hardware.interpreting():
        parser.error("--smoke runs the kernels under Triton's interpreter: set TRITON_INTERPRET=1")
    return "cpu" if smoke else "cuda"


def cuda_time(fn, repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of ``fn`` by CUDA events.

    Without CUDA (the GPU scripts' ``--smoke`` runs on CPU, under the interpreter) ``fn`` runs
    once and its wall-clock time comes back: enough to check a script, no figure to read."""
    if not torch.cuda.is_available():
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
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


def layers_for(mode, I, H, L, dtype, device="cuda"):
    torch.manual_seed(0)
    ref = getattr(torch.nn, mode)(I, H, L, bidirectional=True).to(device, dtype)
    ours = _LAYERS[mode](I, H, L, bidirectional=True, path="fused").to(device, dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def case(mode, B, T, I, H, L, dtype, train, lengths_range, repeats, extra_paths=(), device="cuda"):
    ref, ours = layers_for(mode, I, H, L, dtype, device)
    x = torch.randn(T, B, I, device=device, dtype=dtype)
    lengths = None
    if lengths_range:
        g = torch.Generator().manual_seed(0)
        lengths = torch.randint(lengths_range[0], lengths_range[1] + 1, (B,), generator=g)
        lengths[0] = T

    fns = _contenders(ref, ours, x, lengths, train, ("fused", *extra_paths))
    results = {("cuDNN" if k == "torch.nn" else k): cuda_time(fn, repeats) for k, fn in fns.items()}
    per = T * L
    return {k: v * 1000 / per for k, v in results.items()}  # us per (step x layer)


def gpu_regularised(dtype, repeats: int, B: int = 64, T: int = 512, I: int = 256, H: int = 512, L: int = 2,
                    device: str = "cuda"):
    """Case 5: a training step of a bidirectional LSTM with recurrent_dropout=0.25, zoneout=0.1 and
    layer_norm on the fused kernel, against the same layer without them on the fused kernel (bar:
    within 1.3x), with them on the reference path, and cuDNN's plain LSTM. Returns rows and bars."""
    torch.manual_seed(0)
    extras = dict(recurrent_dropout=0.25, zoneout=0.1, layer_norm=True)
    plain = LSTM(I, H, L, bidirectional=True).to(device, dtype).train()
    reg = LSTM(I, H, L, bidirectional=True, **extras).to(device, dtype).train()
    cudnn = torch.nn.LSTM(I, H, L, bidirectional=True).to(device, dtype).train()
    x = torch.randn(T, B, I, device=device, dtype=dtype)

    def step(module, path=None):
        def run():
            if path is not None:
                module.path = path
            module.zero_grad(set_to_none=True)
            module(x)[0].float().sum().backward()
        return run

    ms = {"cuDNN plain": cuda_time(step(cudnn), repeats), "fused plain": cuda_time(step(plain, "fused"), repeats),
          "fused regularised": cuda_time(step(reg, "fused"), repeats),
          "reference regularised": cuda_time(step(reg, "reference"), max(1, repeats // 2))}
    name = str(dtype).split(".")[-1]
    rows = [[name, k, f"{v * 1000 / (T * L):.1f}", f"{v / ms['fused plain']:.2f}x"] for k, v in ms.items()]
    if device != "cuda":  # a smoke run on CPU: the contenders ran, nothing to compare against a bar
        return rows, []
    ratio = ms["fused regularised"] / ms["fused plain"]
    bars = [(f"{name}: regularised fused within 1.3x of plain fused", ratio <= 1.3, ratio),
            (f"{name}: regularised fused vs regularised reference (speed-up)", True,
             ms["reference regularised"] / ms["fused regularised"])]
    return rows, bars


def _triton_version() -> str:
    try:
        import triton
    except ImportError:
        return "not installed"
    return triton.__version__


def gpu_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="birnn bench", description=_GPU_DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--table", metavar="PATH", help="also write the measured rows as birnn's dispatch table "
                                                  "(src/birnn/speed_table.json), read by path='auto'")
    p.add_argument("--smoke", action="store_true",
                   help="on CPU under TRITON_INTERPRET=1: each distinct case once at toy sizes (T=6, I=8, H=16, "
                        "B<=3), to check the suite end to end before a GPU session; the times mean nothing")
    p.add_argument("--kernel", choices=KERNELS, default=KernelConfig().kernel,
                   help=f"how the kernels read W_hh (default {KernelConfig().kernel})")
    args = p.parse_args(argv)
    with configured(kernel=args.kernel):
        return _gpu_suite(p, args)


def _gpu_suite(p: argparse.ArgumentParser, args) -> int:
    device = smoke_device(p, args.smoke)
    if args.smoke:
        gpu = f"CPU smoke run (interpreter), Triton {_triton_version()}"
    else:
        gpu = f"{torch.cuda.get_device_name()}, Triton {_triton_version()}, cuDNN {torch.backends.cudnn.version()}"
    print(f"# {machine()}, {gpu}")
    I, H, L, T = 256, 512, 2, 512
    rows = []
    dtypes = [torch.float32] if args.quick else [torch.float32, torch.bfloat16]
    cases = [("LSTM", 1, T, I, H, L, False, None), ("LSTM", 64, T, I, H, L, False, None),
             ("LSTM", 64, T, I, H, L, True, None), ("LSTM", 64, T, I, H, L, True, (T // 4, T))]
    if not args.quick:
        cases += [("GRU", 1, T, I, H, L, False, None), ("GRU", 64, T, I, H, L, True, None),
                  ("LSTM", 8, T, I, 128, L, True, None), ("LSTM", 8, T, I, 1024, L, False, None),
                  ("LSTM", 256, 128, I, H, L, True, None),
                  # case 6's grid (GRU too, H in {128, 1024}, B in {8, 256}), no bar: also rows for the
                  # dispatch table (--table)
                  ("GRU", 8, T, I, 128, L, True, None), ("GRU", 8, T, I, 1024, L, False, None),
                  ("LSTM", 8, T, I, 1024, L, True, None), ("LSTM", 256, 128, I, 128, L, True, None),
                  ("GRU", 256, 128, I, 128, L, True, None), ("LSTM", 256, 128, I, 1024, L, True, None),
                  ("GRU", 256, 128, I, 1024, L, True, None)]
    if args.smoke:  # one toy case per cell, step and lengths (batch 1 for inference, 3 for training)
        cases = list(dict.fromkeys((mode, 3 if train else 1, 6, 8, 16, L_, train, (2, 6) if lr else None)
                                   for mode, B, _, _, _, L_, train, lr in cases))
    for dtype in dtypes:
        for mode, B, T_, I_, H_, L_, train, lr in cases:
            try:
                r = case(mode, B, T_, I_, H_, L_, dtype, train, lr, args.repeats, device=device)
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
    if args.table:
        measured = [tuple(r[:7]) + (float(r[7]), float(r[8])) for r in rows if r[7] != "-"]
        speed_table.write(args.table, measured, f"{gpu}, torch {torch.__version__}, {datetime.date.today()}",
                          default_kernel())
        print(f"wrote {len(measured)} rows to {args.table}")
    reg_rows, bars = [], []
    case5 = dict(B=3, T=6, I=8, H=16, device=device) if args.smoke else dict(B=64, T=512)
    for dtype in dtypes:
        try:
            r, b = gpu_regularised(dtype, args.repeats, **case5)
        except Exception as e:  # report, as above
            r, b = [[str(dtype).split(".")[-1], "error", f"{type(e).__name__}: {str(e)[:80]}", "-"]], []
        reg_rows += r
        bars += b
    print()
    print(f"Case 5, training step B={case5['B']}, T={case5['T']}, recurrent_dropout=0.25 + zoneout=0.1 + layer_norm:")
    print(markdown_table(["dtype", "contender", "us/(step*layer)", "time / fused plain"], reg_rows))
    for text, ok, value in bars:
        print(f"{'PASS' if ok else 'FAIL'}  {text}: {value:.2f}x")
    return 0


def main(argv=None) -> int:
    """The suite that fits the machine: the GPU suite on CUDA machines (or its ``--smoke`` run on
    CPU), else the CPU suite."""
    import sys

    smoke = "--smoke" in (sys.argv[1:] if argv is None else argv)
    return gpu_main(argv) if torch.cuda.is_available() or smoke else cpu_main(argv)
