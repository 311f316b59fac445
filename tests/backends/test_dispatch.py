"""Which backend runs a call, and why: observable decisions, the measured speed table, the policy."""

import pytest
import torch

import birnn


def test_dispatch_is_observable():
    lstm = birnn.LSTM(4, 3, bidirectional=True)
    x = torch.randn(5, 2, 4)
    assert lstm(x).path == "torch"
    assert "every sequence is full" in lstm.last_decision.reason
    assert lstm(x, lengths=[5, 3]).path == "torch-chunked"
    assert "variable lengths on CPU, LSTM training" in lstm.last_decision.reason
    gru = birnn.GRU(4, 3)
    with torch.no_grad():
        assert gru(x, lengths=[5, 3]).path == "torch-packed"
    assert gru(x, lengths=[5, 3]).path == "torch-chunked"
    lstm.path = "reference"
    assert lstm(x, lengths=[5, 3]).path == "reference"
    assert lstm.last_decision == birnn.Decision("reference", "requested with path='reference'")


def test_fused_is_chosen_only_where_measured_faster():
    """The recorded table (birnn.speed_table, measured on an H200) decides, nearest row first."""
    from birnn.dispatch import fused_measured_faster

    assert fused_measured_faster("LSTM", torch.float32, 512, 64)  # 7.3x
    assert fused_measured_faster("LSTM", torch.float32, 512, 64, True)  # 4.9x training
    assert fused_measured_faster("GRU", torch.bfloat16, 128, 1)  # GRU bf16 H=512 B=1: 10.6x
    assert fused_measured_faster("LSTM", torch.float32, 1024, 32, False)  # the slower of two rows at distance 2
    assert fused_measured_faster("LSTM", torch.float32, 512, 256, True)  # 1.7x
    assert not fused_measured_faster("GRU", torch.float32, 128, 8)  # 0.62x
    assert not fused_measured_faster("GRU", torch.float32, 256, 8)  # nearer to H=128 than to 1024
    assert not fused_measured_faster("LSTM", torch.float32, 128, 256, True)  # 0.90x
    assert not fused_measured_faster("LSTM", torch.float32, 1024, 256, True)  # 0.61x
    assert not fused_measured_faster("RNN_TANH", torch.float32, 512, 1)  # Elman: not measured
    assert not fused_measured_faster("LSTM", torch.float32, 8192, 1)  # far from every row
    assert not fused_measured_faster("LSTM", torch.float16, 512, 1)  # no float16 rows


def test_auto_reads_the_speed_table_once_and_only_where_it_could_take_the_kernel(monkeypatch):
    """One lookup gives both the choice and the reason; calls that cannot run the kernel (CPU
    without the interpreter, path='torch') do not scan the table at all."""
    import importlib.util

    import birnn.dispatch as dispatch

    lookups = []
    real = dispatch.nearest_measured
    monkeypatch.setattr(dispatch, "nearest_measured", lambda *a, **k: lookups.append(a[1:]) or real(*a, **k))
    x = torch.randn(5, 2, 4)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # (the kernel tests set it for the whole process)
    birnn.LSTM(4, 16)(x)
    birnn.LSTM(4, 16, path="torch")(x)
    assert lookups == []
    assert dispatch.measured_evidence("LSTM", torch.float32, 1024, 8, False) == (
        True, dispatch.measured_note("LSTM", torch.float32, 1024, 8, False))
    assert dispatch.measured_evidence("RNN_TANH", torch.float32, 512, 1) == (False, "nothing measured near this size")
    lookups.clear()
    if importlib.util.find_spec("triton") is not None:  # the interpreter makes the kernel possible on CPU
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        birnn.LSTM(4, 16)(x)
        assert lookups == [("LSTM", "float32", 16, 2, True)]


def test_nearest_measured_row_rules():
    """Hand-made rows: same dtype and cell family only; distance in doublings of H and B, +0.5
    for the other gated cell or step; ties go to the lower speed-up; nothing beyond 2."""
    from birnn.dispatch import nearest_measured

    rows = [("LSTM", "float32", 64, 512, 512, "infer", "equal", 40.0, 20.0),
            ("LSTM", "float32", 64, 512, 512, "train", "equal", 90.0, 60.0),
            ("LSTM", "float32", 64, 512, 512, "train", "random", 110.0, 60.0),
            ("GRU", "float32", 64, 512, 1024, "train", "equal", 10.0, 20.0),
            ("LSTM", "bfloat16", 64, 512, 512, "infer", "equal", 1.0, 9.0)]
    assert nearest_measured(rows, "LSTM", "float32", 512, 64, False) == rows[0]
    assert nearest_measured(rows, "LSTM", "float32", 512, 64, True) == rows[1]  # tie with rows[2]: the slower
    assert nearest_measured(rows, "LSTM", "float32", 512, 64) == rows[1]  # any step: 1.5x < 1.83x < 2x
    assert nearest_measured(rows, "GRU", "float32", 1024, 64, True) == rows[3]
    assert nearest_measured(rows, "GRU", "float32", 512, 64, True) == rows[1]  # 0.5 (cell) < 1 (H)
    assert nearest_measured(rows, "LSTM", "float32", 512, 512, True) is None  # B x8
    assert nearest_measured(rows, "RNN_TANH", "float32", 512, 64) is None
    assert nearest_measured(rows, "LSTM", "bfloat16", 256, 32, False) == rows[4]  # distance 2: still counts


def test_speed_table_round_trips_through_its_writer(tmp_path):
    """The device writes the table dispatch reads as JSON (``benchmarks/gpu.py --table``): the same
    rows back, and a malformed row is refused naming its row and column."""
    import json

    import birnn.speed_table as table

    path = tmp_path / "t.json"
    table.write(path, table.MEASURED, "a GPU", "resident")
    assert table.load(path) == table.Table("a GPU", "resident", table.MEASURED)
    assert table.load() == table.Table(table.DEVICE, table.KERNEL, table.MEASURED)
    data = json.loads(path.read_text())
    data["rows"][3][8] = -1.0
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="speed table row 3: fused_us must be a time in microseconds > 0"):
        table.load(path)
    with pytest.raises(ValueError, match="speed table row 0: cell must be one of"):
        table.write(path, [("LSTMX",) + table.MEASURED[0][1:]], "a GPU", "stream")


def test_auto_runs_regularised_cuda_calls_on_the_fused_kernel():
    """Plain calls go to the kernel where the table measured it faster than cuDNN; regularised ones
    (recurrent dropout/zoneout/layer norm: cuDNN cannot run them) wherever the kernel supports the
    call, since their other path is the reference loop (18-25x slower on an H200); on CPU, or
    where the kernel cannot run the call, they stay on the reference path."""
    from birnn.dispatch import choose

    cuda = torch.device("cuda")
    common = dict(device=cuda, mode="LSTM", needs_grad=True, variable_lengths=True, refused={"fused": None})
    assert choose("auto", features=[], fused_faster=True, **common).path == "fused"
    assert choose("auto", features=[], fused_faster=False, **common).path == "torch-packed"
    got = choose("auto", features=["layer_norm"], fused_faster=False, **common)
    assert got.path == "fused" and "with layer_norm" in got.reason
    assert choose("auto", features=["layer_norm"], **dict(common, refused={"fused": "no triton"})).path == "reference"
    assert choose("auto", features=["layer_norm"], **dict(common, device=torch.device("cpu"))).path == "reference"
    assert choose("fused", features=["layer_norm", "zoneout"], **common).path == "fused"
    # the packed LSTM where it says it runs the call (on CPU), else the reference scan
    cpu = dict(common, device=torch.device("cpu"))
    assert choose("auto", features=["zoneout"], **dict(cpu, refused={"packed": None})).path == "packed"
    assert choose("auto", features=["zoneout"], **dict(cpu, refused={"packed": "meta"})).path == "reference"
    with pytest.raises(ValueError, match="path='packed' cannot run this call: the packed LSTM layer does not run"):
        choose("packed", features=["highway"], **dict(cpu, refused={"packed": "the packed LSTM layer does not run "
                                                                               "highway"}))
