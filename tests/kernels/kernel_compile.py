"""Compile the fused kernels for an H100 (sm_90) with Triton's own compiler and ptxas, without a
GPU: what the interpreter forgives (types of loop-carried values, constexpr branches, shared
memory) fails here. Run as a script (tests/kernels/test_kernels.py does, in a fresh process, since the
interpreter tests set TRITON_INTERPRET=1 before the kernels are defined); prints registers and
spills per variant, exits non-zero on a compile error or shared memory over the H100's 227 KB.

    python tests/kernels/kernel_compile.py [--quick]
"""

import os
import re
import subprocess
import sys
import tempfile

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

H100_SHARED = 232448
PTXAS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")


def kernels():
    """The kernel module, defined for the real compiler (importing this file defines nothing:
    pytest's doctest collection imports it in the process that runs the interpreter tests)."""
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("run this script without TRITON_INTERPRET=1")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src"))
    from birnn.backends.fused import recurrent

    return recurrent


def compile_kernel(fn, consts: dict, bf16: bool, num_warps: int = 4):
    sig = {}
    for name in fn.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif name in ("len_ptr", "bar_ptr"):
            sig[name] = "*i32"
        elif bf16 and (name in ("xg_ptr", "w_ptr", "hx_ptr") or (name == "ex_ptr" and not consts.get("RESIDENT"))
                       or (name == "dx_ptr" and (consts["CELL"] == 3 or not consts["LN"]))  # _gradient_dtype
                       or name in ("y_ptr", "dout_ptr")):  # _output_dtype
            sig[name] = "*bf16"
        elif name.endswith("_ptr"):
            sig[name] = "*fp32"
        else:
            sig[name] = "fp32" if name.startswith("rate_") else "i32"
    return triton.compile(ASTSource(fn, sig, consts), target=GPUTarget("cuda", 90, 32),
                           options=dict(num_warps=num_warps))


def registers(kernel) -> str:
    if not os.path.exists(PTXAS):
        return "ptxas not found"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:
            f.write(kernel.asm["ptx"])
        log = subprocess.run([PTXAS, "-v", "--gpu-name", "sm_90a", path, "-o", os.devnull],
                             capture_output=True, text=True).stderr
    used = re.search(r"Used (\d+) registers", log)
    spills = re.findall(r"(\d+) bytes spill stores", log)
    return f"{used.group(1) if used else '?'} registers, {'+'.join(spills) or '0'} bytes spilled"


def variants(quick: bool):
    """(label, cell, G, features, bf16, resident, batch tile)."""
    cells = ((2, 4, "LSTM"), (3, 3, "GRU"), (0, 1, "RNN_TANH"))
    features = [("plain", dict(DROP=False, ZH=0, ZC=0, LN=False)),
                ("dropout+zoneout+layer_norm", dict(DROP=True, ZH=1, ZC=1, LN=True)),
                ("zoneout eval", dict(DROP=False, ZH=2, ZC=2, LN=False))]
    for cell, G, name in cells:
        for fname, feats in (features[:2] if quick else features):
            feats = dict(feats, ZC=feats["ZC"] if cell == 2 else 0)
            for bf16 in ((False,) if quick else (False, True)):
                yield f"{name} {fname} {'bf16' if bf16 else 'fp32'}", cell, G, feats, bf16, False, 16
                if fname != "zoneout eval":
                    for BB in (16, 32):
                        yield (f"{name} {fname} {'bf16' if bf16 else 'fp32'} resident BB={BB}", cell, G, feats, bf16,
                               True, BB)


def main(argv) -> int:
    R = kernels()
    quick = "--quick" in argv
    failures = 0
    H, BK = 512, 128  # the benchmark's layer
    for label, cell, G, feats, bf16, resident, BB in variants(quick):
        U = (16 if G > 1 else 64) if resident else 16
        GROUP = H // U
        types = dict(OP_DTYPE=tl.bfloat16 if bf16 else tl.float32, DOT_DTYPE=tl.bfloat16 if bf16 else tl.float32,
                     PRECISION="tf32")
        common = dict(H=H, U=U, BB=BB, BK=BK, GROUP=GROUP, NG=GROUP, NBT=1, D=2, CELL=cell, G=G, **feats, **types)
        fold = not (feats["LN"] or resident) and cell != 3
        gp = dict(RESIDENT=resident, GP=4 if G > 1 else 1)
        parts = [("forward", R._recurrent_layer_kernel, dict(common, SAVE=True, FOLD=fold, **gp), 4),
                 ("backward", R._recurrent_layer_backward_kernel, dict(common, **gp),
                  8 if resident and H >= 128 else 4)]  # layer_backward's warps
        for part, fn, consts, warps in parts:
            try:
                k = compile_kernel(fn, consts, bf16, warps)
            except Exception as e:  # report every variant
                print(f"FAIL {label} {part}: {type(e).__name__}: {str(e)[:400]}")
                failures += 1
                continue
            shared = k.metadata.shared
            ok = shared <= H100_SHARED
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {label} {part}: shared {shared} B, {registers(k)}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.pop("TRITON_INTERPRET", None)
    raise SystemExit(main(sys.argv[1:]))
