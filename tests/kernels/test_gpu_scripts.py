"""The GPU benchmark scripts run end to end on CPU (``--smoke``: toy sizes, kernels under
TRITON_INTERPRET=1), so a device session never spends a 10-minute call on a script that
breaks (benchmarks/device_run.sh runs them there at real sizes). Timings here mean nothing;
what is checked is that every case runs, and that the dispatch table the bench stage writes
reads back."""

import importlib.util
import os

import pytest
import torch

pytestmark = pytest.mark.slow  # minutes under the interpreter: -m 'not slow' skips them locally

if torch.cuda.is_available():
    pytest.skip("smoke runs are for CPU machines; on a GPU run the scripts themselves", allow_module_level=True)
pytest.importorskip("triton", reason="the fused kernels need Triton (CI installs it)")

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def script(name):
    """A script of the repository's experiments/ folder, as a module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_smoke_runs_every_case_and_writes_a_readable_table(tmp_path, capsys):
    from birnn.cli import main

    from birnn import speed_table

    table = tmp_path / "speed_table.json"
    assert main(["bench", "--smoke", "--table", str(table)]) == 0  # through the command, as documented
    out = capsys.readouterr().out
    assert "error" not in out, out
    rows = speed_table.load(table).rows
    cases = {(r[0], r[1], r[5], r[6]) for r in rows}  # cell, dtype, step, lengths
    for dtype in ("float32", "bfloat16"):
        assert {("LSTM", dtype, "infer", "equal"), ("LSTM", dtype, "train", "equal"),
                ("LSTM", dtype, "train", "random"), ("GRU", dtype, "train", "equal")} <= cases
    assert all(r[7] > 0 and r[8] > 0 for r in rows)
    assert out.count("| fused regularised |") == 2  # case 5, both dtypes


def test_bench_smoke_needs_the_interpreter(monkeypatch):
    from harness import gpu_main

    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(SystemExit):
        gpu_main(["--smoke"])


def test_variants_smoke_times_every_kernel(capsys):
    script("gpu_variants").main(["--smoke", "--dtypes", "bfloat16"])  # (float32: the bench smoke run; time)
    lines = [line for line in capsys.readouterr().out.splitlines() if "us/step" in line]
    assert len(lines) == 2 * 2 * 2  # cells x (plain, regularised) x (stream, resident)
    assert not [line for line in lines if "n/a" in line]
    assert all(" fwd " in line and " bwd " in line for line in lines)


def test_ablation_smoke_runs_every_switch(capsys):
    assert script("gpu_ablation").main(["--smoke"]) == 0
    out = capsys.readouterr().out
    for switch in ("| default |", "| no v15 |", "| no v17 |", "| no v19 |", "| no v20 |"):
        assert switch in out


def test_host_traffic_counts_the_ops_around_the_kernels(capsys):
    """experiments/host_traffic.py (variant 18's byte counts): four rows; the projections alone are
    8x the output's size (4 gates x 2 directions, two layers, per output's 2H), a training step
    writes more than inference."""
    assert script("host_traffic").main(["--shape", "4,128,8,16"]) == 0  # (T*B*H above every weight's size)
    rows = [line for line in capsys.readouterr().out.splitlines() if "lengths:" in line]
    assert len(rows) == 4
    total = [float(line.split(": ")[1].split(" ")[0]) for line in rows]
    assert 8.0 <= total[0] < total[2] and "addmm 8.0" in rows[0]
