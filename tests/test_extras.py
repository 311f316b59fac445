"""birnn's keyword extras: forget_bias, learned/noisy initial states, observable dispatch."""

import pytest
import torch

import birnn


def test_forget_bias_sets_forget_slice_and_survives_reset():
    lstm = birnn.LSTM(4, 3, num_layers=2, bidirectional=True, forget_bias=1.5)
    for l in range(2):
        for sfx in ("", "_reverse"):
            b_ih, b_hh = getattr(lstm, f"bias_ih_l{l}{sfx}"), getattr(lstm, f"bias_hh_l{l}{sfx}")
            assert torch.all(b_ih[3:6] == 1.5) and torch.all(b_hh[3:6] == 0)
            assert not torch.all(b_ih[:3] == 1.5)  # other gates keep torch's init
    with torch.no_grad():
        lstm.bias_ih_l0.zero_()
    lstm.reset_parameters()
    assert torch.all(lstm.bias_ih_l0[3:6] == 1.5)


def test_learned_initial_state_is_trained_and_broadcast():
    lstm = birnn.LSTM(4, 3, num_layers=2, bidirectional=True, initial_state="learned")
    assert lstm.initial_h.shape == (4, 1, 3) and lstm.initial_c.shape == (4, 1, 3)
    with torch.no_grad():
        lstm.initial_h.fill_(0.3)
    x = torch.randn(5, 2, 4)
    res = lstm(x, lengths=torch.tensor([5, 0]))
    assert torch.allclose(res.h_n[:, 1], torch.full((4, 3), 0.3))  # empty sequence keeps h_0
    res.output.sum().backward()
    assert lstm.initial_h.grad is not None and lstm.initial_h.grad.abs().sum() > 0
    assert lstm.initial_c.grad.abs().sum() > 0
    assert "initial_h" in lstm.state_dict()
    gru = birnn.GRU(4, 3, initial_state="learned")
    assert not hasattr(gru, "initial_c")


def test_initial_state_noise_only_in_training():
    gru = birnn.GRU(4, 3, initial_state_noise=0.5)
    x = torch.randn(5, 2, 4)
    gru.eval()
    assert torch.equal(gru(x).output, gru(x).output)
    gru.train()
    assert not torch.equal(gru(x).output, gru(x).output)
    plain = birnn.GRU(4, 3)
    plain.load_state_dict(gru.state_dict())
    gru.eval()
    assert torch.equal(gru(x).output, plain(x).output)


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


def test_repr_shows_extras_only_when_set():
    assert repr(birnn.LSTM(4, 3)) == repr(torch.nn.LSTM(4, 3))
    assert "merge_mode='sum'" in repr(birnn.LSTM(4, 3, bidirectional=True, merge_mode="sum"))


def test_output_size_and_move_between_dtypes():
    lstm = birnn.LSTM(4, 3, bidirectional=True, proj_size=2, merge_mode="sum")
    assert lstm.output_size == 2
    assert birnn.GRU(4, 3, bidirectional=True).output_size == 6
    lstm = lstm.double()
    assert lstm(torch.randn(3, 2, 4, dtype=torch.float64)).output.dtype == torch.float64


def test_deepcopy_and_pickle_roundtrip(tmp_path):
    import copy
    lstm = birnn.LSTM(4, 3, bidirectional=True, merge_mode="ave", forget_bias=1.0)
    x = torch.randn(3, 2, 4)
    clone = copy.deepcopy(lstm)
    assert torch.equal(clone(x).output, lstm(x).output)
    torch.save(lstm, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    assert torch.equal(loaded(x).output, lstm(x).output) and loaded.merge_mode == "ave"


@pytest.mark.parametrize("mode", ["GRU", "LSTM"])
def test_torch_compile_full_graph_with_lengths(mode):
    layer = getattr(birnn, mode)(4, 3, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 4)
    lengths = torch.tensor([5, 3])
    compiled = torch.compile(layer, backend="eager", fullgraph=True)  # fails on any graph break
    torch.testing.assert_close(compiled(x, lengths=lengths).output, layer(x, lengths=lengths).output)
    torch.testing.assert_close(compiled(x).output, layer(x).output)


def test_torch_compile_lstm_training_step_aot():
    """An LSTM training step with equal lengths under compile (aot_eager traces the backward, as
    inductor does): PyTorch's CPU fused op fails there (pytorch#158007), so the layer is one
    birnn::recurrent_layer node (tests/test_deploy.py); the gradients equal eager's."""
    torch._dynamo.reset()
    lstm = birnn.LSTM(4, 3, bidirectional=True)
    x = torch.randn(5, 2, 4)
    compiled = torch.compile(lstm, backend="aot_eager", fullgraph=True)
    compiled(x).output.sum().backward()
    got = [p.grad.clone() for p in lstm.parameters()]
    lstm.zero_grad()
    lstm(x).output.sum().backward()
    for a, b in zip(got, lstm.parameters()):
        torch.testing.assert_close(a, b.grad)


def test_fused_is_chosen_only_where_measured_faster():
    """The recorded table (birnn.speed_table, measured on an H100) decides, nearest row first."""
    from birnn.dispatch import fused_measured_faster

    assert fused_measured_faster("LSTM", torch.float32, 512, 64)
    assert fused_measured_faster("LSTM", torch.float32, 512, 64, True)  # 1.41x training
    assert fused_measured_faster("GRU", torch.bfloat16, 128, 1)  # GRU bf16 H=512 B=1: 6.7x
    assert fused_measured_faster("LSTM", torch.float32, 1024, 32, False)
    assert not fused_measured_faster("LSTM", torch.float32, 128, 8)  # 0.67x
    assert not fused_measured_faster("LSTM", torch.float32, 256, 8)  # nearer to H=128 than to 1024
    assert not fused_measured_faster("LSTM", torch.float32, 512, 256)  # 0.61x
    assert not fused_measured_faster("LSTM", torch.bfloat16, 512, 256, True)  # 0.91x
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


def test_auto_keeps_regularised_calls_off_the_fused_kernel_until_measured():
    """The kernel runs recurrent dropout/zoneout/layer norm when asked (path="fused"), but "auto"
    moves a call onto it only from the table of measured configurations, which holds plain layers."""
    from birnn.dispatch import choose

    cuda = torch.device("cuda")
    common = dict(device=cuda, mode="LSTM", needs_grad=True, variable_lengths=True, fused_blocker=None,
                  fused_faster=True)
    assert choose("auto", features=[], **common).path == "fused"
    assert choose("auto", features=["layer_norm"], **common).path == "reference"
    assert choose("fused", features=["layer_norm", "zoneout"], **common).path == "fused"


def test_jit_trace_is_never_silently_wrong():
    """A trace with lengths baked the example's lengths into the graph (another batch's padding
    then leaked into its outputs, max error ~0.5): now refused, naming the routes that work. A
    trace without lengths records PyTorch's fused op, right for any T."""

    class WithLengths(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = birnn.GRU(3, 4, bidirectional=True)

        def forward(self, x, lengths):
            return self.gru(x, lengths=lengths).output

    with pytest.raises(RuntimeError, match=r"torch.jit.trace cannot record this call.*torch.export.export"):
        torch.jit.trace(WithLengths(), (torch.randn(6, 3, 3), torch.tensor([6, 6, 6])))
    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = birnn.LSTM(3, 4, bidirectional=True)

        def forward(self, x):
            return self.lstm(x).output

    plain = Plain().eval()
    traced = torch.jit.trace(plain, (torch.randn(6, 3, 3),))
    x = torch.randn(9, 3, 3)
    torch.testing.assert_close(traced(x), plain(x))
    lstm = plain.lstm
    with pytest.raises(RuntimeError, match=r"torch.jit.script cannot compile birnn.LSTM.*torch.export.export"):
        torch.jit.script(lstm)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_per_sample_gradients_with_vmap_and_lengths(mode):
    """Opacus-style per-sample gradients: torch.func.vmap(grad(loss)) over a padded batch with
    lengths equals a loop computing each sample's gradient on its own (it failed on
    int(lengths.max()) / .item() before)."""
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(0)
    layer = getattr(birnn, mode)(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = torch.randn(5, 6, 3, dtype=torch.float64)  # (B, T, I): vmap maps over B
    lengths = torch.tensor([6, 3, 1, 4, 0])
    y = torch.randn(5, 8, dtype=torch.float64)

    def loss(p, xb, lb, yb):
        res = functional_call(layer, p, (xb.unsqueeze(1),), {"lengths": lb.unsqueeze(0)})
        return ((res.pool("final")[0] - yb) ** 2).sum() + res.output.pow(2).sum()

    batched = vmap(grad(loss), in_dims=(None, 0, 0, 0))(params, x, lengths, y)
    for b in range(5):
        n = int(lengths[b])
        alone = grad(loss)(params, x[b, :max(n, 1)], lengths[b], y[b]) if n else grad(loss)(params, x[b], lengths[b],
                                                                                            y[b])
        for k in params:
            torch.testing.assert_close(batched[k][b], alone[k], rtol=1e-9, atol=1e-10)
