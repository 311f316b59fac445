"""MinGRU and MinLSTM: the parallel scan against the step-by-step loop and the paper's equations.

References: the paper's definitions written out here (a hand-computed tiny case), the
sequential step loop (``path="reference"``, birnn's oracle) in float64, float64 gradcheck,
and each input form against its right-padded / segmented equivalent.
"""

import math

import pytest
import torch

import birnn
from birnn.backends.scan import linear, linear_scan

CELLS = [birnn.MinGRU, birnn.MinLSTM]


@pytest.fixture(params=["cpp", "doubling"])
def engine(request, monkeypatch):
    """Each eager scan: birnn's C++ pass (CPU) and the doubling scan (what other devices run)."""
    if request.param == "cpp" and linear.kernel_unavailable() is not None:
        pytest.skip(f"the C++ scan does not run here: {linear.kernel_unavailable()}")
    if request.param == "doubling":
        monkeypatch.setattr(linear, "_TRIED", True)
        monkeypatch.setattr(linear, "_WHY", "turned off by the test")
    return request.param


def _layer(cls, I=3, H=4, **kw):
    torch.manual_seed(0)
    return cls(I, H, dtype=torch.float64, **kw)


def _both_paths(layer, *args, **kw):
    """The layer's result and gradients on the scan and on the step loop (path="reference")."""
    out = {}
    for path in ("scan", "reference"):
        layer.path = path
        res = layer(*args, **kw)
        assert res.path == path
        weights = torch.linspace(-1, 1, res.output.numel(), dtype=torch.float64).view_as(res.output)
        loss = (res.output * weights).sum() + (res.h_n ** 2).sum()
        leaves = [t for t in args if isinstance(t, torch.Tensor) and t.requires_grad] + list(layer.parameters())
        out[path] = (res.output, res.h_n, torch.autograd.grad(loss, leaves))
    layer.path = "auto"
    return out["scan"], out["reference"]


def _close(a, b, tol=1e-10):
    assert (a - b).abs().max().item() <= tol


def test_the_paper_equations_by_hand():
    """One unit, one step after another, from the paper's definitions (not birnn's)."""
    sig = lambda v: 1 / (1 + math.exp(-v))
    g = lambda v: v + 0.5 if v >= 0 else sig(v)
    xs, h0 = [0.3, -1.2, 2.0], 0.25
    gru = birnn.MinGRU(1, 1, dtype=torch.float64)
    lstm = birnn.MinLSTM(1, 1, dtype=torch.float64)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.tensor([[0.7], [-1.5]], dtype=torch.float64))
        gru.bias_ih_l0.copy_(torch.tensor([0.1, 0.2], dtype=torch.float64))
        lstm.weight_ih_l0.copy_(torch.tensor([[0.4], [-0.9], [1.3]], dtype=torch.float64))
        lstm.bias_ih_l0.copy_(torch.tensor([0.5, -0.1, 0.0], dtype=torch.float64))
    h_gru, h_lstm, want_gru, want_lstm = h0, h0, [], []
    for x in xs:
        z = sig(0.7 * x + 0.1)
        h_gru = (1 - z) * h_gru + z * g(-1.5 * x + 0.2)
        want_gru.append(h_gru)
        f, i = sig(0.4 * x + 0.5), sig(-0.9 * x - 0.1)
        h_lstm = f / (f + i) * h_lstm + i / (f + i) * g(1.3 * x)
        want_lstm.append(h_lstm)
    x = torch.tensor(xs, dtype=torch.float64).view(3, 1, 1)
    h = torch.full((1, 1, 1), h0, dtype=torch.float64)
    for layer, want in ((gru, want_gru), (lstm, want_lstm)):
        res = layer(x, h)
        assert res.path == "scan"
        _close(res.output.flatten(), torch.tensor(want, dtype=torch.float64), 1e-14)
        assert res.h_n.item() == res.output[-1].item()


def test_linear_scan_matches_the_recurrence_at_every_length(engine):
    torch.manual_seed(0)
    for T in (1, 2, 3, 5, 8, 13, 64, 100):
        a, b = torch.rand(T, 3, dtype=torch.float64), torch.randn(T, 3, dtype=torch.float64)
        h0 = torch.randn(3, dtype=torch.float64)
        h, want = h0, []
        for t in range(T):
            h = a[t] * h + b[t]
            want.append(h)
        _close(linear_scan(a, b, h0), torch.stack(want), 1e-12)
        if T <= 13:
            assert torch.autograd.gradcheck(linear_scan, tuple(t.requires_grad_() for t in (a, b, h0)))


@pytest.mark.parametrize("cls", CELLS)
def test_scan_equals_the_step_loop_forward_and_backward(cls, engine):
    layer = _layer(cls, num_layers=2, bidirectional=True)
    T, B = 9, 5
    x = torch.randn(T, B, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, B, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 4, 1, 0, 7])
    resets = torch.zeros(T, B, dtype=torch.bool)
    resets[3, 0] = resets[5, 4] = resets[2, 1] = True
    scan, loop = _both_paths(layer, x, h0, lengths=lengths, resets=resets)
    for got, want in zip(scan[:2], loop[:2]):
        _close(got, want)
    for got, want in zip(scan[2], loop[2]):
        _close(got, want)


@pytest.mark.parametrize("cls", CELLS)
def test_gradcheck(cls, engine):
    layer = _layer(cls, I=2, H=3, bidirectional=True)
    x = torch.randn(6, 3, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 3, 1])
    resets = torch.zeros(6, 3, dtype=torch.bool)
    resets[2, 0] = True
    assert torch.autograd.gradcheck(lambda x, h0: layer(x, h0, lengths=lengths, resets=resets).output, (x, h0))
    assert layer.last_decision.path == "scan"
    assert ("C++" in layer.last_decision.reason) == (engine == "cpp")


@pytest.mark.parametrize("cls", CELLS)
def test_padding_gets_zero_output_zero_gradient_and_each_row_equals_itself_alone(cls):
    layer = _layer(cls, num_layers=2, bidirectional=True, batch_first=True)
    lengths = torch.tensor([7, 3, 5, 1])
    x = torch.randn(4, 7, 3, dtype=torch.float64, requires_grad=True)
    res = layer(x, lengths=lengths)
    res.output.sum().backward()
    for b, n in enumerate(lengths.tolist()):
        assert res.output[b, n:].eq(0).all()
        assert x.grad[b, n:].eq(0).all()
        alone = layer(x[b:b + 1, :n].detach())
        _close(res.output[b:b + 1, :n], alone.output)
        _close(res.h_n[:, b:b + 1], alone.h_n)


@pytest.mark.parametrize("cls", CELLS)
def test_left_padding_cu_seqlens_and_nested_equal_right_padding(cls):
    layer = _layer(cls, bidirectional=True, batch_first=True)
    lengths = torch.tensor([5, 2, 4])
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    right = layer(x, lengths=lengths)
    left_x = torch.zeros_like(x)
    for b, n in enumerate(lengths.tolist()):
        left_x[b, 5 - n:] = x[b, :n]
    left = layer(left_x, lengths=lengths, padding="left")
    rows = torch.cat([x[b, :n] for b, n in enumerate(lengths.tolist())])
    cu = torch.tensor([0, 5, 7, 11])
    varlen = layer(rows, cu_seqlens=cu)
    nested = layer(torch.nested.nested_tensor([x[b, :n] for b, n in enumerate(lengths.tolist())],
                                              layout=torch.jagged))
    _close(left.h_n, right.h_n)
    _close(varlen.h_n, right.h_n)
    _close(nested.h_n, right.h_n)
    for b, n in enumerate(lengths.tolist()):
        _close(left.output[b, 5 - n:], right.output[b, :n])
        _close(varlen.output[cu[b]:cu[b + 1]], right.output[b, :n])


@pytest.mark.parametrize("cls", CELLS)
def test_a_reset_is_a_new_sequence_in_both_directions(cls):
    layer = _layer(cls, bidirectional=True)
    x = torch.randn(8, 1, 3, dtype=torch.float64)
    resets = torch.zeros(8, 1, dtype=torch.bool)
    resets[3] = resets[6] = True
    whole = layer(x, resets=resets)
    for start, end in ((0, 3), (3, 6), (6, 8)):
        _close(whole.output[start:end], layer(x[start:end]).output)


@pytest.mark.parametrize("cls", CELLS)
def test_step_streams_the_scan(cls):
    layer = _layer(cls, num_layers=2).eval()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    whole = layer(x)
    state, ys = None, []
    for x_t in x:
        y, state = layer.step(x_t, state)
        ys.append(y)
    _close(torch.stack(ys), whole.output)
    _close(state, whole.h_n)


def test_float32_is_stable_at_16384_steps(engine):
    layer = _layer(birnn.MinGRU, I=2, H=8, bidirectional=True)
    x = torch.randn(16384, 2, 2, dtype=torch.float64)
    lengths = torch.tensor([16384, 9000])
    layer.path = "reference"  # the step loop in float64
    want = layer(x, lengths=lengths)
    layer.path = "auto"
    got = layer.float()(x.float(), lengths=lengths)
    assert got.path == "scan"
    assert torch.isfinite(got.output).all()
    assert (got.output.double() - want.output).abs().max().item() < 1e-4
    assert (got.h_n.double() - want.h_n).abs().max().item() < 1e-4


def test_training_saves_no_tensor_per_level():
    """Autograd keeps O(T·B·D·H) a few times over (the gates, ``a`` and ``h``), not once per
    level of the scan (ceil(log2 1024) = 10 levels here)."""
    layer = birnn.MinGRU(4, 8, bidirectional=True)
    x = torch.randn(1024, 2, 4, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        layer(x, lengths=torch.tensor([1024, 700])).output.sum().backward()
    assert sum(saved) < 12 * 1024 * 2 * 2 * 8


def test_what_the_scan_refuses_goes_to_the_loop_and_what_makes_no_sense_raises():
    zoned = birnn.MinGRU(3, 4, zoneout=0.1).eval()
    zoned(torch.randn(5, 2, 3))
    assert zoned.last_decision.path == "reference"
    assert zoned.last_decision.reason == "the parallel scan does not run zoneout (the reference loop does)"
    for name, value in (("recurrent_dropout", 0.2), ("weight_dropout", 0.2), ("layer_norm", True)):
        with pytest.raises(ValueError, match=f"{name} acts on h_{{t-1}} W_hh, which the MINGRU cell does not"):
            birnn.MinGRU(3, 4, **{name: value})
    with pytest.raises(ValueError, match="proj_size"):
        birnn.MinLSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="path='scan' cannot run this call: the parallel scan does not run "
                                         "the LSTM cell"):
        birnn.LSTM(3, 4, path="scan")(torch.randn(5, 2, 3))
    assert "weight_hh_l0" not in dict(birnn.MinLSTM(3, 4).named_parameters())
    assert birnn.MinLSTM(3, 4, forget_bias=1.0).bias_ih_l0[:4].eq(1).all()


def test_layer_specs_mix_scan_cells_with_lstm_and_gru():
    from birnn.models.stack import RecurrentStack

    stack = RecurrentStack(3, ["bimingru:8*2", "biminlstm:6:sum", "gru:4"])
    assert [type(layer).__name__ for layer in stack.layers] == ["MinGRU", "MinLSTM", "GRU"]
    res = stack(torch.randn(2, 7, 3), lengths=torch.tensor([7, 4]))
    assert res.output.shape == (2, 7, 4) and res.output[1, 4:].eq(0).all()


def test_bidirectional_wrapper_and_merge_modes():
    layer = _layer(birnn.MinGRU, bidirectional=True, merge_mode="ave")
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 4])
    res = layer(x, lengths=lengths)
    fwd, bwd = res.per_direction().unbind(2)
    _close(res.output, (fwd + bwd) / 2)
    wrapped = birnn.Bidirectional(_layer(birnn.MinLSTM), merge_mode="concat")
    out = wrapped(x, lengths=lengths)
    assert out.output.shape == (6, 2, 8) and out.output[4:, 1].eq(0).all()


def test_the_captured_scan_is_exact_to_its_depth_and_nan_beyond(monkeypatch):
    """What a compiled or exported graph holds: a fixed number of levels, exact up to 2**levels
    steps, NaN past them (never a silently truncated scan)."""
    monkeypatch.setattr(linear, "MAX_DEPTH", 3)
    torch.manual_seed(0)
    for T in (1, 5, 8, 9):
        a, b = torch.rand(T, 2, dtype=torch.float64), torch.randn(T, 2, dtype=torch.float64)
        h0 = torch.randn(2, dtype=torch.float64)
        got = linear._captured(a, b, h0)
        if T <= 8:
            _close(got, linear_scan(a, b, h0), 1e-12)
        else:
            assert got.isnan().all()


def test_per_sample_gradients_with_vmap_and_lengths():
    from torch.func import functional_call, grad, vmap

    layer = _layer(birnn.MinGRU, bidirectional=True)
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x, lengths = torch.randn(6, 3, 3, dtype=torch.float64), torch.tensor([6, 2, 4])

    def loss(p, x_b, n):
        return functional_call(layer, p, (x_b.unsqueeze(1),), {"lengths": n.unsqueeze(0)}).pool("final").pow(2).sum()

    per_sample = vmap(grad(loss), in_dims=(None, 1, 0))(params, x, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = torch.func.grad(loss)(params, x[:n, b], torch.tensor(n))
        for name in params:
            _close(per_sample[name][b], alone[name])


@pytest.mark.parametrize("cls,cell", [(birnn.MinGRU, birnn.MinGRUCell), (birnn.MinLSTM, birnn.MinLSTMCell)])
def test_step_cells_in_recurrent_equal_the_layer(cls, cell):
    """Keras' RNN(cell): the step cell run by birnn.Recurrent, with lengths, equals the layer."""
    layer = _layer(cls)
    step = cell(3, 4, dtype=torch.float64)
    with torch.no_grad():
        step.weight_ih.copy_(layer.weight_ih_l0)
        step.bias_ih.copy_(layer.bias_ih_l0)
    x, lengths = torch.randn(6, 3, 3, dtype=torch.float64), torch.tensor([6, 2, 4])
    want = layer(x, lengths=lengths)
    got = birnn.Recurrent(step)(x, lengths=lengths)
    _close(got.output, want.output)
    _close(got.h_n, want.h_n)
    both = birnn.Bidirectional(birnn.Recurrent(step), merge_mode="sum")(x, lengths=lengths)
    assert both.output.shape == (6, 3, 4) and both.output[2:, 1].eq(0).all()
