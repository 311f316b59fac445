"""The regularised LSTM's packed layer with a hand-written backward (birnn.backends.packed.layer) against the
autograd step loop it replaces (birnn.backends.reference's loop, every op recorded), each step's
elementwise part both in the C++ kernel (birnn.backends.packed.cpu_kernel) and in PyTorch ops; float64
gradcheck and gradgradcheck, a hand-computed packing, the oneDNN products against torch.bmm,
the kernel's build and its fallback."""

import pytest
import torch

import birnn
import birnn.backends.packed.layer as bptt
import birnn.backends.packed.cpu_kernel as cpu_kernel
import birnn.backends.packed as packed_backend
from birnn.backends import BACKENDS
from birnn.backends.packed.prepacked import Prepacked

F64 = torch.float64
REGULARISERS = [dict(recurrent_dropout=0.3), dict(zoneout=0.2), dict(cell_zoneout=0.3), dict(layer_norm=True),
                dict(recurrent_dropout=0.3, zoneout=0.2, layer_norm=True)]


@pytest.fixture(params=["kernel", "torch-ops"])
def step(request, monkeypatch):
    """Each step's elementwise part: the C++ kernel, or PyTorch ops (the kernel's fallback)."""
    if request.param == "kernel":
        if cpu_kernel.kernel(torch.zeros(1)) is None:
            pytest.skip(f"the CPU kernel does not run here: {cpu_kernel.unavailable()}")
    else:
        monkeypatch.setattr(bptt, "kernel", lambda t: None)
    return request.param


def _run(layer, x, lengths, *, packed, monkeypatch, seed=0):
    """Outputs and every gradient (input, parameters) of one call, the masks drawn from ``seed``."""
    with monkeypatch.context() as m:
        if not packed:
            m.setattr(BACKENDS["packed"], "supports", lambda plan: "off")
        torch.manual_seed(seed)
        x = x.detach().clone().requires_grad_()
        res = layer(x, lengths=lengths)
        gen = torch.Generator().manual_seed(5)
        loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum()
                   for t in (res.output, res.h_n, res.c_n))
        grads = torch.autograd.grad(loss, [x] + list(layer.parameters()))
    return [res.output, res.h_n, res.c_n, *grads]


@pytest.mark.parametrize("bidirectional,num_layers", [(False, 1), (True, 2)])
@pytest.mark.parametrize("kw", REGULARISERS, ids=lambda kw: "+".join(kw))
@pytest.mark.parametrize("lengths", [None, [3, 7, 0, 5, 7]], ids=["full", "lengths"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_packed_layer_equals_the_autograd_loop(bidirectional, num_layers, kw, lengths, training, step,
                                                  monkeypatch):
    torch.manual_seed(1)
    layer = birnn.LSTM(3, 4, num_layers=num_layers, bidirectional=bidirectional, dtype=F64, **kw).train(training)
    x = torch.randn(7, 5, 3, dtype=F64)
    lengths = None if lengths is None else torch.tensor(lengths)
    calls = []
    real = bptt.packed_lstm_layer
    with monkeypatch.context() as m:
        m.setattr(packed_backend, "packed_lstm_layer", lambda *a, **k: calls.append(1) or real(*a, **k))
        got = _run(layer, x, lengths, packed=True, monkeypatch=monkeypatch)
    regularised = training or set(kw) != {"recurrent_dropout"}  # (recurrent dropout is off in eval)
    assert len(calls) == (num_layers if regularised else 0), "a regularised LSTM runs packed"
    want = _run(layer, x, lengths, packed=False, monkeypatch=monkeypatch)
    for g, w in zip(got, want):  # (float64: sums in another order, ~1e-12)
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


def test_float32_is_as_close_to_float64_as_the_loop(step, monkeypatch):
    """float32, the oneDNN products (and the kernel's exp/tanh): against the float64 loop, as
    close as the float32 autograd loop is (its rounding, not this path's, sets the bar)."""
    torch.manual_seed(2)
    layer = birnn.LSTM(8, 16, num_layers=2, bidirectional=True, recurrent_dropout=0.25, zoneout=0.1,
                       layer_norm=True).train()
    x, lengths = torch.randn(12, 6, 8), torch.tensor([12, 3, 9, 12, 1, 6])
    got = _run(layer, x, lengths, packed=True, monkeypatch=monkeypatch)
    loop32 = _run(layer, x, lengths, packed=False, monkeypatch=monkeypatch)
    truth = _run(layer.double(), x.double(), lengths, packed=False, monkeypatch=monkeypatch)
    for g, l32, t in zip(got, loop32, truth):
        bar = (l32.double() - t).abs().max().item()
        assert (g.double() - t).abs().max().item() <= 3 * bar + 1e-6


@pytest.mark.parametrize("kw", [dict(recurrent_dropout=0.3, zoneout=0.2, layer_norm=True), dict(zoneout=0.2)],
                         ids=["all", "zoneout"])
def test_gradcheck(kw, step):
    layer = birnn.LSTM(2, 3, bidirectional=True, dtype=F64, **kw).train()
    x = torch.randn(5, 3, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(2, 3, 3, dtype=F64, requires_grad=True)
    lengths = torch.tensor([5, 2, 4])

    def fn(inp, h):
        torch.manual_seed(0)  # the same masks at every evaluation
        res = layer(inp, (h, torch.zeros_like(h)), lengths=lengths)
        return res.output, res.h_n, res.c_n

    assert torch.autograd.gradcheck(fn, (x, h0))


def test_gradgradcheck(step):
    layer = birnn.LSTM(2, 2, bidirectional=True, dtype=F64, recurrent_dropout=0.3, zoneout=0.2,
                       layer_norm=True).train()
    x = torch.randn(3, 2, 2, dtype=F64, requires_grad=True)

    def fn(inp):
        torch.manual_seed(0)
        res = layer(inp, lengths=torch.tensor([3, 1]))
        return res.output, res.c_n

    assert torch.autograd.gradgradcheck(fn, (x,))


def test_double_backward_equals_the_loops(step, monkeypatch):
    torch.manual_seed(3)
    layer = birnn.LSTM(2, 3, bidirectional=True, dtype=F64, recurrent_dropout=0.2, zoneout=0.1,
                       layer_norm=True).train()
    x0, lengths = torch.randn(6, 3, 2, dtype=F64), torch.tensor([6, 1, 4])
    results = []
    for packed in (True, False):
        with monkeypatch.context() as m:
            if not packed:
                m.setattr(BACKENDS["packed"], "supports", lambda plan: "off")
            torch.manual_seed(0)
            x = x0.clone().requires_grad_()
            (g,) = torch.autograd.grad(layer(x, lengths=lengths).output.pow(2).sum(), x, create_graph=True)
            results.append(torch.autograd.grad(g.pow(2).sum(), [x] + list(layer.parameters())))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_packing_by_hand():
    # lengths [2, 3, 0]: sorted rows 1 (3 steps), 0 (2), 2 (0); steps run 2, 2, 1 sequences
    pk = bptt.packing(torch.tensor([2, 3, 0]), T=3, B=3, D=2, device="cpu")
    assert pk.perm.tolist() == [1, 0, 2]
    assert pk.sizes == [2, 2, 1]
    # forward: (t, b) -> t*B + b in packed order (t=0: b=1, b=0; t=1: b=1, b=0; t=2: b=1)
    assert pk.index[0].tolist() == [1, 0, 4, 3, 7]
    # backward: row 1 reads steps 2, 1, 0; row 0 reads 1, 0
    assert pk.index[1].tolist() == [7, 3, 4, 0, 1]


def test_every_sequence_empty_keeps_the_initial_state(step):
    layer = birnn.LSTM(2, 3, bidirectional=True, zoneout=0.1, dtype=F64).train()
    h0 = torch.randn(2, 2, 3, dtype=F64)
    res = layer(torch.randn(4, 2, 2, dtype=F64), (h0, h0), lengths=torch.tensor([0, 0]))
    assert torch.equal(res.output, torch.zeros(4, 2, 6, dtype=F64))
    assert torch.equal(res.h_n, h0) and torch.equal(res.c_n, h0)


@pytest.mark.parametrize("dtype,grad", [(torch.float32, False), (torch.float64, False), (torch.float32, True)])
def test_prepacked_products_equal_bmm(dtype, grad):
    w = torch.randn(2, 16, 24, dtype=dtype)
    with torch.no_grad():  # (as in the layer's forward and backward)
        p = Prepacked(w, rows=8)
    for n in (8, 5, 1, 0):
        x = torch.randn(2, n, 16, dtype=dtype)
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(p(x), torch.bmm(x, w), rtol=1e-5, atol=1e-5)
    # oneDNN packs float32 and bfloat16 only, and never while autograd records
    assert (p.packed is not None) == (dtype == torch.float32 and torch.backends.mkldnn.is_available())
    with torch.enable_grad():
        x = torch.randn(2, 3, 16, dtype=dtype, requires_grad=True)
        assert p(x).grad_fn is not None


def test_not_packed_where_the_loop_must_run(monkeypatch):
    """Projection, cell states, resets and tracing keep the step loop (packing needs the lengths'
    values; the others are not in the packed layer)."""
    calls = []
    monkeypatch.setattr(packed_backend, "packed_lstm_layer", lambda *a, **k: calls.append(1))
    x = torch.randn(4, 2, 3)
    birnn.LSTM(3, 4, proj_size=2, zoneout=0.1)(x)
    birnn.LSTM(3, 4, zoneout=0.1)(x, return_all="c")
    birnn.LSTM(3, 4, zoneout=0.1)(x, resets=torch.zeros(4, 2, dtype=torch.bool))
    birnn.GRU(3, 4, zoneout=0.1)(x)
    evaluated = birnn.LSTM(3, 4, zoneout=0.1).eval()
    torch.func.vmap(lambda v: evaluated(v.unsqueeze(1)).output)(x.transpose(0, 1))
    assert calls == []


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_plain_layers_never_pack(cell, monkeypatch):
    calls = []
    monkeypatch.setattr(packed_backend, "packed_lstm_layer", lambda *a, **k: calls.append(1))
    getattr(birnn, cell)(3, 4, path="reference")(torch.randn(4, 2, 3), lengths=torch.tensor([4, 2]))
    assert calls == []


def test_retained_graph_keeps_its_buffers(step):
    """A second backward through a retained graph reads the same buffers (they go back to the
    pool only when the graph is freed), and the next call's buffers come from the pool."""
    torch.manual_seed(4)
    layer = birnn.LSTM(3, 8, bidirectional=True, zoneout=0.1, layer_norm=True).train()
    x = torch.randn(6, 4, 3, requires_grad=True)
    out = layer(x, lengths=torch.tensor([6, 2, 5, 3])).output.pow(2).sum()
    (first,) = torch.autograd.grad(out, x, retain_graph=True)
    layer(torch.randn(6, 4, 3), lengths=torch.tensor([6, 6, 6, 6])).output.sum().backward()  # another call between
    (second,) = torch.autograd.grad(out, x)
    torch.testing.assert_close(second, first, rtol=0, atol=0)


def test_workspace_reuses_buffers_of_nearby_sizes():
    like = torch.zeros(1)
    cpu_kernel.Workspace.clear()
    ws = cpu_kernel.Workspace(like)
    a = ws.take(1000, 3)
    ws.release()
    ws2 = cpu_kernel.Workspace(like)
    b = ws2.take(990, 3)  # the same bucket: the same memory
    assert b.data_ptr() == a.data_ptr() and b.shape == (990, 3)
    c = ws2.take(1000, 3)  # taken while b is held: a new buffer
    assert c.data_ptr() != b.data_ptr()
    del ws2  # collected: handed back
    assert len(cpu_kernel.Workspace._free[(torch.float32, like.device, cpu_kernel.Workspace._bucket(3000))]) == 2
    cpu_kernel.Workspace.clear()


def test_kernel_builds_and_says_why_not(monkeypatch, tmp_path):
    """A missing compiler or BIRNN_CPU_KERNEL=0: no kernel, a reason, and the layer still runs
    (PyTorch ops); a fresh cache: the kernel is built there."""
    for env, why in ((dict(CXX="no-such-compiler-birnn"), "no C++ compiler"), (dict(BIRNN_CPU_KERNEL="0"), "=0")):
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            m.setenv("BIRNN_CACHE", str(tmp_path / "none"))
            m.setattr(cpu_kernel, "_TRIED", False)
            m.setattr(cpu_kernel, "_LOADED", {})
            assert cpu_kernel.kernel(torch.zeros(1)) is None
            assert why in cpu_kernel.unavailable()
            res = birnn.LSTM(3, 4, zoneout=0.1).train()(torch.randn(5, 2, 3), lengths=torch.tensor([5, 2]))
            res.output.sum().backward()
    if cpu_kernel.kernel(torch.zeros(1)) is None:
        pytest.skip(f"the CPU kernel does not run here: {cpu_kernel.unavailable()}")
    with monkeypatch.context() as m:
        m.setenv("BIRNN_CACHE", str(tmp_path / "fresh"))
        m.setattr(cpu_kernel, "_TRIED", False)
        m.setattr(cpu_kernel, "_LOADED", {})
        assert cpu_kernel.kernel(torch.zeros(1, dtype=F64)) is not None
        assert [p.suffix for p in (tmp_path / "fresh").iterdir()] == [".so"]
        assert cpu_kernel.kernel(torch.zeros(1, dtype=torch.bfloat16)) is None  # float32 and float64 only


def test_only_cpu_layers_pack():
    """The packed layer is CPU's: on another device (CUDA, here the meta device) the packed
    backend refuses and "auto" takes the step loop, as the GPU has tested it; its decision
    names the engine that ran."""
    from birnn.arguments import prepare_call
    from birnn.backends import decide, plan_call

    for device in ("cpu", "meta"):
        layer = birnn.LSTM(3, 4, zoneout=0.1, device=device)
        plan = plan_call(layer, prepare_call(torch.randn(4, 2, 3, device=device), None, None, None, layer._shape()))
        why = BACKENDS["packed"].supports(plan)
        if device == "cpu":
            assert why is None and decide(plan).path == "packed"
            assert "the packed LSTM layer" in decide(plan).reason
        else:
            assert why == "the packed LSTM layer runs on cpu, the input is on meta"
            assert decide(plan).path == "reference"
