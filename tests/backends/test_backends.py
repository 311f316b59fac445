"""The backend interface (birnn.backends): one frozen plan per call, masks drawn once in it, every
backend's ``supports`` naming what is in the way, and every backend equal to the reference on the
same plan."""

import dataclasses

import pytest
import torch

import birnn
from birnn.arguments import prepare_call
from birnn.backends import BACKENDS, decide, plan_call, run
from birnn.dispatch import PATHS


def plan_of(layer, x, lengths=None, **kw):
    return plan_call(layer, prepare_call(x, None, lengths, None, layer._shape(), **kw))


def test_every_path_has_one_backend():
    assert set(BACKENDS) == (set(PATHS) - {"auto"}) | {"graph-op", "quantized"}
    for path, backend in BACKENDS.items():
        assert path in backend.paths and callable(backend.supports) and callable(backend.run)


def test_a_plan_is_frozen_and_holds_its_masks():
    torch.manual_seed(0)
    gru = birnn.GRU(3, 4, num_layers=2, bidirectional=True, recurrent_dropout=0.5, zoneout=0.3).train()
    plan = plan_of(gru, torch.randn(5, 2, 3), torch.tensor([5, 3]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.x = None
    assert len(plan.masks) == 2
    for m in plan.masks:
        assert m.drop_h.shape == (2, 2, 4) and m.keep_h.shape == (5, 2, 2, 4) and m.keep_c is None
    # the masks are the plan's: running it twice draws nothing new
    a, b = BACKENDS["reference"].run(plan), BACKENDS["reference"].run(plan)
    assert torch.equal(a.output, b.output) and torch.equal(a.h_n, b.h_n)
    assert plan.features == ("recurrent_dropout", "zoneout")
    assert plan_of(gru.eval(), torch.randn(5, 2, 3)).masks[0] == birnn.backends.plan.Masks()


def test_supports_names_what_is_in_the_way(monkeypatch):
    x = torch.randn(4, 2, 3)
    ln = plan_of(birnn.LSTM(3, 16, layer_norm=True), x)
    assert BACKENDS["reference"].supports(ln) is None
    assert BACKENDS["torch"].supports(ln) == "layer_norm: not expressible in the fused op"
    assert BACKENDS["graph-op"].supports(ln) == "graph capture does not run eagerly (outside graph capture)"
    with monkeypatch.context() as m:  # a birnn::regularised_layer node, under compile
        m.setattr(torch.compiler, "is_compiling", lambda: True)
        assert BACKENDS["graph-op"].supports(ln) is None
    with monkeypatch.context() as m:  # torch.export records it step by step: ONNX has no operator for it
        m.setattr(torch.compiler, "is_exporting", lambda: True)
        assert BACKENDS["graph-op"].supports(ln) == "layer_norm has no single-node form (ONNX has no operator for it)"
    highway = plan_of(birnn.LSTM(3, 16, num_layers=2, residual="highway"), x)
    assert BACKENDS["graph-op"].supports(highway) == "highway has no single-node form (ONNX has no operator for it)"
    proj = plan_of(birnn.LSTM(3, 16, proj_size=8), x)
    assert BACKENDS["torch"].supports(proj) is None
    assert "proj_size" in BACKENDS["graph-op"].supports(proj)
    assert BACKENDS["packed"].supports(ln) is None
    assert BACKENDS["packed"].supports(plan_of(birnn.GRU(3, 16, zoneout=0.1), x)) == (
        "the packed LSTM layer does not run the GRU cell (it runs LSTM)")
    assert BACKENDS["quantized"].supports(proj).startswith("is not quantized")
    resets = torch.zeros(4, 2, dtype=torch.bool)
    with_resets = plan_of(birnn.GRU(3, 16), x, resets=resets)
    assert BACKENDS["torch"].supports(with_resets) == "resets: not expressible in the fused op"
    import birnn.backends.fused as fused

    monkeypatch.setattr(fused.hardware, "interpreting", lambda: False)
    assert BACKENDS["fused"].supports(plan_of(birnn.GRU(3, 16), x)).startswith("the fused kernel runs on CUDA")
    monkeypatch.setattr(fused.hardware, "interpreting", lambda: True)
    assert BACKENDS["fused"].supports(plan_of(birnn.GRU(3, 12), x)).endswith("got 12")
    assert BACKENDS["fused"].supports(proj) == "the fused kernel does not run proj_size"


@pytest.mark.parametrize("path", ["torch", "torch-chunked", "torch-packed", "graph-op"])
def test_every_native_path_equals_the_reference_on_one_plan(path):
    """Residual connections between layers and per-layer outputs go through the one stack."""
    torch.manual_seed(0)
    lstm = birnn.LSTM(3, 4, num_layers=3, bidirectional=True, residual=True, dtype=torch.float64).eval()
    x, lengths = torch.randn(6, 3, 3, dtype=torch.float64), torch.tensor([6, 2, 4])
    plan = plan_call(lstm, prepare_call(x, None, None if path == "torch" else lengths, None, lstm._shape()),
                     ("layers",))
    ref, got = BACKENDS["reference"].run(plan), BACKENDS[path].run(plan, path)
    for a, b in [(got.output, ref.output), (got.h_n, ref.h_n), (got.c_n, ref.c_n)] + list(zip(got.layers, ref.layers)):
        torch.testing.assert_close(a, b)
    assert len(got.layers) == 3 and not torch.equal(got.layers[-1], got.output)  # before the residual


@pytest.mark.slow
def test_the_fused_kernel_sees_the_plans_masks():
    """One plan with recurrent dropout and zoneout in training: the kernel (under the interpreter)
    and the reference give the same outputs, because both read the masks the plan drew."""
    pytest.importorskip("triton")
    torch.manual_seed(0)
    gru = birnn.GRU(3, 16, bidirectional=True, recurrent_dropout=0.3, zoneout=0.2).train()
    plan = plan_of(gru, torch.randn(4, 2, 3), torch.tensor([4, 2]))
    assert BACKENDS["fused"].supports(plan) is None
    ref, got = BACKENDS["reference"].run(plan), BACKENDS["fused"].run(plan)
    torch.testing.assert_close(got.output, ref.output, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.h_n, ref.h_n, rtol=1e-5, atol=1e-5)


def test_decide_and_run_are_what_the_layer_does():
    torch.manual_seed(0)
    gru = birnn.GRU(3, 4, bidirectional=True).eval()
    x, lengths = torch.randn(5, 2, 3), torch.tensor([5, 3])
    with torch.no_grad():  # GRU inference with lengths on CPU: packed (birnn.dispatch.CPU_LENGTHS)
        plan = plan_of(gru, x, lengths)
        decision = decide(plan)
        assert decision.path == "torch-packed" and "variable lengths on CPU, GRU inference" in decision.reason
        torch.testing.assert_close(run(plan, decision).output, gru(x, lengths=lengths).output)
    assert gru.last_decision == decision
    assert decide(plan_of(gru, x, lengths)).path == "torch-chunked"  # the weights need gradients: a training step


def test_lower_precision_falls_back_where_onednn_refuses_the_primitive(monkeypatch):
    """On a CPU without bf16 instructions oneDNN cannot build the bf16 LSTM primitive at some
    sizes (torch.nn.LSTM fails alike): PyTorch's op reruns on its generic kernel instead."""
    from birnn.backends import native

    real = dict(native._OPS)
    calls = []

    def refusing(op):
        def run(*args):
            calls.append(torch._C._get_mkldnn_enabled())
            if torch._C._get_mkldnn_enabled():
                raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive")
            return op(*args)
        return run

    monkeypatch.setattr(native, "_OPS", {k: refusing(v) for k, v in real.items()})
    lstm = birnn.LSTM(8, 16, bidirectional=True)
    x = torch.randn(6, 3, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = lstm(x, lengths=torch.tensor([6, 4, 2]))
    assert calls[:2] == [True, False] and torch._C._get_mkldnn_enabled()
    monkeypatch.setattr(native, "_OPS", real)
    with torch.backends.mkldnn.flags(enabled=False), torch.autocast("cpu", dtype=torch.bfloat16):
        want = lstm(x, lengths=torch.tensor([6, 4, 2]))
    assert torch.equal(got.output, want.output)
    with pytest.raises(RuntimeError, match="other"):  # any other error is the op's own
        monkeypatch.setattr(native, "_OPS", {k: (lambda *a: (_ for _ in ()).throw(RuntimeError("other")))
                                             for k in real})
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(x)


def test_a_feature_no_backend_declares_is_refused_by_all_but_the_reference(monkeypatch):
    """A feature added to birnn later (here a dummy one) is run by the reference scan until a
    backend declares it: every other backend refuses it, naming it, whatever else the call is
    (the fused kernel as if on its own device, graph capture while capturing), and "auto" takes
    the reference scan; a path asked for by name raises."""
    import birnn.backends.fused as fused

    monkeypatch.setattr(fused.hardware, "interpreting", lambda: True)
    x = torch.randn(4, 2, 3)
    for layer in (birnn.LSTM(3, 16, zoneout=0.1), birnn.GRU(3, 16), birnn.LSTM(3, 16, layer_norm=True).eval()):
        base = plan_of(layer, x)
        plan = dataclasses.replace(base, features=base.features + ("dummy_feature",))
        for path, backend in BACKENDS.items():
            capture = "export" if path == "graph-op" else None
            with monkeypatch.context() as m:
                m.setattr(torch.compiler, "is_exporting", lambda: capture == "export")
                declared = backend.capabilities.refuses(plan)
                why = backend.supports(plan)
            if path == "reference":
                assert declared is None and why is None
                continue
            assert "dummy_feature" in declared, (path, declared)
            assert why is not None, path
            if path != "quantized":  # (which first says the layer is not quantized)
                assert "dummy_feature" in why, (path, why)
            for f in base.features:  # what the backend declares it runs is not in its refusal
                assert (f in declared) != (f in backend.capabilities.uses), (path, f, declared)
        assert decide(plan).path == "reference"
        for path in ("torch", "fused", "packed"):
            with pytest.raises(ValueError, match="dummy_feature"):
                decide(dataclasses.replace(plan, requested=path))


def test_a_new_cell_runs_on_the_reference_scan_and_no_fast_engine_takes_it(monkeypatch):
    """A cell is its step plus one entry in birnn.cells.CELLS: a new one (here torch's tanh step
    under another name, so the answer is known) runs on the reference scan, and every backend
    that does not declare it refuses it by name, so "auto" never sends it to an engine that
    would run another cell's equations."""
    import birnn.cells as cells

    spec = dataclasses.replace(cells.CELLS["RNN_TANH"], mode="NEW_CELL", name="new_cell")
    monkeypatch.setitem(cells.CELLS, "NEW_CELL", spec)
    rnn = birnn.RNN(3, 8, bidirectional=True, dtype=torch.float64)
    x, lengths = torch.randn(5, 2, 3, dtype=torch.float64), torch.tensor([5, 3])
    base = plan_of(rnn, x, lengths)
    plan = dataclasses.replace(base, mode="NEW_CELL")
    for path, backend in BACKENDS.items():
        why = backend.capabilities.refuses(plan)
        if path == "reference":
            assert why is None
        else:
            assert "NEW_CELL" in why, (path, why)
    assert decide(plan).path == "reference" and "NEW_CELL" in decide(plan).reason
    got, want = BACKENDS["reference"].run(plan), BACKENDS["torch-packed"].run(base, "torch-packed")
    torch.testing.assert_close(got.output, want.output)
    torch.testing.assert_close(got.h_n, want.h_n)


def test_a_new_linear_cell_is_its_entry_and_its_class(monkeypatch):
    """A new cell touches its registry entry and its class, nothing else: here a toy linear cell
    (a constant decay, h' = 0.5 h + 0.5 tanh(x W^T + b)), registered at run time. Layer specs,
    explain, the scan (through its generic (a, b) path: no kernel formula for it) and the
    reference loop run it, and agree with the recurrence written out."""
    import birnn.cells as cells
    from birnn.explain import explain
    from birnn.layers import RecurrentLayer
    from birnn.models.stack import RecurrentStack

    def halves(xg):
        return torch.full_like(xg, 0.5), 0.5 * torch.tanh(xg)

    spec = cells.CellSpec("TOY", 1, False, False, cells._linear_step(halves), "h", name="toy", coefficients=halves)
    monkeypatch.setitem(cells.CELLS, "TOY", spec)
    monkeypatch.setitem(cells.CELL_NAMES, "toy", "TOY")

    class Toy(RecurrentLayer, modes=("TOY",)):
        def __init__(self, input_size, hidden_size, **kw):
            super().__init__("TOY", input_size, hidden_size, **kw)

    monkeypatch.setitem(RecurrentLayer.CLASSES, "TOY", Toy)
    torch.manual_seed(0)
    layer = Toy(3, 4, bidirectional=True, dtype=torch.float64)
    assert [n for n, _ in layer.named_parameters()] == ["weight_ih_l0", "bias_ih_l0", "weight_ih_l0_reverse",
                                                        "bias_ih_l0_reverse"]
    x, lengths = torch.randn(6, 2, 3, dtype=torch.float64), torch.tensor([6, 3])
    res = layer(x, lengths=lengths)
    assert res.path == "scan" and "the scan in one pass" in layer.last_decision.reason  # (not the cell kernel)
    h, want = torch.zeros(4, dtype=torch.float64), []
    for t in range(3):  # row 1 forward, written out
        h = 0.5 * h + 0.5 * torch.tanh(x[t, 1] @ layer.weight_ih_l0.T + layer.bias_ih_l0)
        want.append(h)
    torch.testing.assert_close(res.output[:3, 1, :4], torch.stack(want))
    layer.path = "reference"
    torch.testing.assert_close(layer(x, lengths=lengths).output, res.output)
    stack = RecurrentStack(3, ["bitoy:4*2", "gru:2"], dtype=torch.float64)
    assert type(stack.layers[0]) is Toy and stack(x.transpose(0, 1), lengths=lengths).output.shape == (2, 6, 2)
    assert all(c.holds for c in explain(mode="toy", lengths=[7, 5, 0, 3]).checks)


def test_moved_module_paths_are_the_same_modules():
    """birnn.quantized, birnn.cpu_kernel and birnn.kernels (and its submodules) moved into their
    backends' folders: the old paths give the same module objects, never a second copy (whose
    relative imports would fail, and whose custom ops would register twice)."""
    import importlib

    import birnn.backends.fused.function
    import birnn.backends.packed.cpu_kernel
    import birnn.backends.quantized

    assert importlib.import_module("birnn.kernels.function") is birnn.backends.fused.function
    assert importlib.import_module("birnn.cpu_kernel") is birnn.backends.packed.cpu_kernel
    from birnn.quantized import quantize_dynamic

    assert quantize_dynamic is birnn.backends.quantized.quantize_dynamic
    assert birnn.kernels.KernelConfig is birnn.backends.fused.KernelConfig
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("birnn.kernels.no_such_module")
