"""The fused Triton kernels on CPU under TRITON_INTERPRET=1, against the reference path:
outputs, states and every gradient, for each cell, both directions, lengths (zero too) and
the features the kernel runs (recurrent dropout, zoneout, layer norm, plus the dropouts around it). (GPU sizes and timing: tests/kernels/test_cuda.py, benchmarks/gpu.py.)

The interpreter runs programs one after another, so most tests use one program per barrier
group; test_multi_program_groups_equal_one_program runs the GPU's grid plan with every program
in its own thread (tests/kernels/threaded_grid.py), which exercises the barrier and the exchanges. The
timings need the GPU (tests/kernels/test_cuda.py, benchmarks/). Kernel-level tests give the
kernels the layer's own layout and compare in processing order where the reference needs it
(tests/kernels/orders.py).
"""

import os

import pytest
import torch

pytestmark = pytest.mark.slow  # minutes under the interpreter: -m 'not slow' skips them locally

if torch.cuda.is_available():
    pytest.skip("interpreter tests are for CPU machines; tests/kernels/test_cuda.py covers the GPU", allow_module_level=True)
triton = pytest.importorskip("triton", reason="the fused kernels need Triton (CI installs it)")
from interpreter_rounding import install as round_bfloat16_as_the_gpu  # noqa: E402

round_bfloat16_as_the_gpu()  # Triton's interpreter truncates float32 -> bfloat16; the GPU rounds to nearest even

import birnn  # noqa: E402
from conftest import MODES, flat_hidden, poisoned  # noqa: E402
from orders import natural, processing  # noqa: E402


def pair(mode, **kw):
    torch.manual_seed(0)
    if mode.startswith("RNN"):
        layer = birnn.RNN(4, 16, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)
    else:
        layer = getattr(birnn, mode)(4, 16, **kw)
    return layer


def fused_supports(layer, x):
    """Why the fused backend cannot run ``layer`` on ``x`` (T, B, I), or None."""
    from birnn.arguments import prepare_call
    from birnn.backends import BACKENDS, plan_call

    return BACKENDS["fused"].supports(plan_call(layer, prepare_call(x, None, None, None, layer._shape())))


def run(layer, path, x, lengths, hx, seed=1):
    layer.path = path
    layer.zero_grad()
    xx = x.clone().requires_grad_()
    torch.manual_seed(seed)
    res = layer(xx, hx, lengths=lengths)
    g = torch.Generator().manual_seed(2)
    loss = (res.output * torch.randn(res.output.shape, generator=g)).sum()
    loss = loss + sum((t * torch.randn(t.shape, generator=g)).sum() for t in flat_hidden(res[1]))
    loss.backward()
    return res, [xx.grad] + [p.grad.clone() for p in layer.parameters()]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fused_layer_equals_reference(mode, bidirectional):
    layer = pair(mode, num_layers=2, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    lengths = torch.tensor([6, 3, 0, 5])
    x = torch.randn(6, 4, 4)
    h0 = torch.randn(2 * D, 4, 16)
    hx = (h0, torch.randn(2 * D, 4, 16)) if mode == "LSTM" else h0
    ref, ref_grads = run(layer, "reference", x, lengths, hx)
    fused, fused_grads = run(layer, "fused", x, lengths, hx)
    assert fused.path == "fused"
    torch.testing.assert_close(fused.output, ref.output, rtol=1e-5, atol=1e-5)
    for a, b in zip(flat_hidden(fused[1]), flat_hidden(ref[1])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(fused_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert torch.all(fused.output[:, 2] == 0)


def test_fused_with_training_features_the_kernel_runs():
    layer = pair("LSTM", num_layers=2, bidirectional=True, dropout=0.3, weight_dropout=0.2, input_dropout=0.1,
                 inter_layer_dropout=0.2, output_dropout=0.1, residual=True).train()
    x, lengths = torch.randn(5, 3, 4), torch.tensor([5, 2, 4])
    ref, ref_grads = run(layer, "reference", x, lengths, None, seed=7)
    fused, fused_grads = run(layer, "fused", x, lengths, None, seed=7)  # the same masks
    torch.testing.assert_close(fused.output, ref.output, rtol=1e-5, atol=1e-5)
    for a, b in zip(fused_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_fused_path_runs_its_large_matmuls_through_products(layer_norm, monkeypatch):
    """Every layer's input projection and W_hh gradient go through birnn.backends.fused.products (TF32
    on a GPU where cuDNN's RNNs use it), at one precision read once per call; the reference
    path keeps its own."""
    import birnn.backends.fused as backend
    import birnn.backends.fused.function as function
    import birnn.backends.fused.products as products

    calls = []

    def recorded(name, fn):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(function, "project", recorded("project", function.project))
    monkeypatch.setattr(function, "weight_product", recorded("weight", function.weight_product))
    for module in (backend, products):
        monkeypatch.setattr(module, "cudnn_rnn_uses_tf32", recorded("precision", module.cudnn_rnn_uses_tf32))
    layer = pair("GRU", num_layers=2, bidirectional=True, layer_norm=layer_norm)
    x, lengths = torch.randn(5, 3, 4), torch.tensor([5, 2, 4])
    ref, ref_grads = run(layer, "reference", x, lengths, None)
    assert calls == []
    fused, fused_grads = run(layer, "fused", x, lengths, None)
    assert calls == ["precision", "project", "project", "weight", "weight"]
    torch.testing.assert_close(fused.output, ref.output, rtol=1e-5, atol=1e-5)
    for a, b in zip(fused_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


REGULARISERS = {
    "recurrent_dropout": dict(recurrent_dropout=0.3),
    "zoneout": dict(zoneout=0.3, cell_zoneout=0.2),
    "layer_norm": dict(layer_norm=True),
    "all": dict(recurrent_dropout=0.25, zoneout=0.1, cell_zoneout=0.15, layer_norm=True),
}


def regularised(mode, features):
    kw = dict(REGULARISERS[features])
    if mode != "LSTM":
        kw.pop("cell_zoneout", None)
    layer = pair(mode, num_layers=2, bidirectional=True, **kw)
    with torch.no_grad():  # norm gains and biases away from 1 and 0, so their gradients are tested
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    return layer


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("features,training", [("recurrent_dropout", True), ("zoneout", True), ("zoneout", False),
                                               ("layer_norm", True), ("all", True), ("all", False)])
def test_fused_regularisers_equal_the_reference(mode, features, training):
    """Recurrent dropout, zoneout (masks in training, the expectation in eval) and layer norm run
    inside the kernel: with the same masks (same seed) it equals the reference loop — outputs,
    states and every gradient, norm gains and biases included — with lengths (zero too)."""
    layer = regularised(mode, features).train(training)
    lengths = torch.tensor([6, 3, 0, 5])
    x = torch.randn(6, 4, 4)
    ref, ref_grads = run(layer, "reference", x, lengths, None, seed=3)
    fused, fused_grads = run(layer, "fused", x, lengths, None, seed=3)
    assert fused.path == "fused" and ref.path == "reference"
    torch.testing.assert_close(fused.output, ref.output, rtol=2e-5, atol=1e-5)
    for a, b in zip(flat_hidden(fused[1]), flat_hidden(ref[1])):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=1e-5)
    names = ["input"] + [n for n, _ in layer.named_parameters()]
    assert any(n.startswith("ln_hh") for n in names) == ("layer_norm" in REGULARISERS[features])
    for name, a, b in zip(names, fused_grads, ref_grads):
        # relative to the tensor's largest entry: the norms' gradients reach ~10^2 and float32
        # rounding in either path is ~1e-6 of that (both paths measured against float64)
        err = float((a - b).abs().max() / b.abs().max().clamp(min=1e-3))
        assert err < 2e-5, f"{name}: relative error {err:.1e}"
    assert torch.all(fused.output[:, 2] == 0)
    if training and features != "layer_norm":  # the masks matter: another draw gives other numbers
        other, _ = run(layer, "fused", x, lengths, None, seed=4)
        assert not torch.allclose(other.output, fused.output)


def test_calls_beyond_32_bit_offsets_are_refused_not_miscomputed():
    """The kernels index per-step tensors with 32-bit offsets: a call whose (T, B, D, G*H) gates
    reach 2**31 elements is not theirs — "auto" sees why (the blocker), path="fused" says so, and
    the kernel API refuses before allocating anything."""
    from birnn.backends.fused.recurrent import layer_forward

    lstm = birnn.LSTM(1, 1024)
    x = torch.zeros(32768, 16, 1)  # T*B*4H = 2**31
    assert "32-bit offsets" in fused_supports(lstm, x)
    assert fused_supports(lstm, x[:32767]) is None
    lstm.path = "fused"
    with pytest.raises(ValueError, match="32-bit offsets"):
        lstm(x)
    xs = torch.empty(32768, 16, 1, 4096, device="meta")
    w = torch.empty(1, 4096, 1024, device="meta")
    with pytest.raises(ValueError, match="T\\*B\\*D\\*4H = 2147483648 elements"):
        layer_forward("LSTM", xs, w, None, w.new_empty(1, 16, 1024), w.new_empty(1, 16, 1024),
                      torch.full((16,), 32768), 32768)


def test_interpreter_rounds_to_bfloat16_as_the_gpu():
    """A kernel's float32 -> bfloat16 conversions (``.to`` and stores into bfloat16 tensors) give
    PyTorch's bits under the interpreter too: round to nearest, ties to even (Triton 3.6's
    interpreter alone truncates; tests/kernels/interpreter_rounding.py)."""
    import triton.language as tl

    @triton.jit
    def convert(x_ptr, y_ptr, z_ptr, N: tl.constexpr):
        i = tl.arange(0, N)
        x = tl.load(x_ptr + i)
        tl.store(y_ptr + i, x.to(tl.bfloat16))
        tl.store(z_ptr + i, x)  # the store converts

    g = torch.Generator().manual_seed(0)
    ulp = 2.0 ** -8  # bfloat16's unit in the last place at 1
    x = torch.cat([torch.randn(240, generator=g),
                   torch.tensor([1 + ulp / 2, 1 + 3 * ulp / 2, -(1 + ulp / 2), 1 + ulp / 2 + 2 ** -20, 3.4e38,
                                 -0.0, 1e-40, float("inf"), -2.5, 7.0, 1 + ulp / 4, 1 + 3 * ulp / 4,
                                 1 + ulp, 2.0 ** -130, -1e-39, 65504.0])])
    y, z = torch.empty(256, dtype=torch.bfloat16), torch.empty(256, dtype=torch.bfloat16)
    convert[(1,)](x, y, z, N=256)
    want = x.bfloat16()
    assert torch.equal(y.view(torch.int16), want.view(torch.int16))
    assert torch.equal(z.view(torch.int16), want.view(torch.int16))
    truncated = (x.view(torch.int32) & -65536).view(torch.float32)
    assert (truncated != want.float()).sum() > 100  # what the interpreter alone gives differs here


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
@pytest.mark.parametrize("kw,training", [({}, True), (dict(zoneout=0.1, layer_norm=True), False)])
def test_fused_bfloat16_is_as_close_to_float64_as_the_reference(mode, kw, training):
    """bfloat16 layers: the kernel (bf16 products, float32 state; the interpreter emulates the
    products exactly in float32) against a float64 copy, on average no further off than the bf16
    reference path (which rounds every op to bf16); errors relative to each tensor's largest entry."""
    import copy

    torch.manual_seed(0)
    cls = birnn.RNN if mode == "RNN_TANH" else getattr(birnn, mode)
    layer = cls(4, 16, num_layers=2, bidirectional=True, **kw).bfloat16().train(training)
    x, lengths = torch.randn(6, 3, 4).bfloat16(), torch.tensor([6, 2, 4])

    def results(module, path, inp):
        res, grads = run(module, path, inp, lengths, None)
        return [t.detach().double() for t in [res.output] + flat_hidden(res[1]) + grads]

    want = results(copy.deepcopy(layer).double(), "reference", x.double())

    def errors(got):
        return torch.tensor([float((a - b).abs().max() / b.abs().max().clamp(min=1e-3)) for a, b in zip(got, want)])

    fused, ref = errors(results(layer, "fused", x)), errors(results(layer, "reference", x))
    # per tensor the two bf16 paths trade places (~1-5% with the norms); on average the kernel,
    # which keeps its state in float32, is the closer one; no tensor is grossly off
    assert fused.mean() <= ref.mean() and fused.max() < 0.08, (fused, ref)


def kernel_inputs(mode, T=5, D=2, B=3, H=16):
    """One layer's kernel inputs: xs (T, B, D, G*H) (the layer's layout), W_hh, the GRU's b_hh,
    h0, c0, lengths [T, 2, 0]."""
    from birnn.backends.fused.recurrent import CELL_CODES, _GATES

    G = _GATES[CELL_CODES[mode]]
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(T, B, D, G * H, generator=g)
    w = torch.randn(D, G * H, H, generator=g) / H ** 0.5
    b = torch.randn(D, G * H, generator=g) * 0.1 if mode == "GRU" else None
    h0 = torch.randn(D, B, H, generator=g)
    c0 = torch.randn(D, B, H, generator=g) if mode == "LSTM" else None
    return xs, w, b, h0, c0, torch.tensor([T, 2, 0][:B])


@pytest.mark.parametrize("mode", MODES)
def test_zoneout_masks_of_ones_freeze_the_state_exactly(mode):
    """keep = 1 everywhere: every real step emits h_0 bit for bit, and h_n = h_0 (c_n = c_0)."""
    from birnn.backends.fused.recurrent import StepExtras, layer_forward

    xs, w, b, h0, c0, lengths = kernel_inputs(mode)
    T, B, D, _ = xs.shape
    ones = torch.ones(T, D, B, h0.shape[-1])
    fwd = poisoned(layer_forward)(mode, xs, w, b, h0, c0, lengths, T, save=True,
                                  extras=StepExtras(keep_h=ones, keep_c=ones if mode == "LSTM" else None))
    valid = (torch.arange(T)[:, None] < lengths[None]).view(T, B, 1, 1)
    y = fwd.y.view(T, B, D, -1)
    assert torch.equal(y, torch.where(valid, h0.transpose(0, 1).expand_as(y), 0.0))
    assert torch.equal(fwd.hn, h0)
    if mode == "LSTM":
        assert torch.equal(fwd.cn, c0)


@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM"])
def test_recurrent_dropout_mask_of_zeros_cuts_the_recurrence(mode):
    """drop = 0: W_hh sees zeros, so each step is the cell on its input alone (by hand)."""
    from birnn.backends.fused.recurrent import StepExtras, layer_forward

    xs, w, b, h0, c0, lengths = kernel_inputs(mode)
    full = torch.full((3,), 5)
    fwd = layer_forward(mode, xs, w, b, h0, c0, full, 5, extras=StepExtras(drop=torch.zeros_like(h0)))
    xs = processing(xs, full)  # the backward direction's steps in the order it takes them
    if mode == "RNN_TANH":
        want = torch.tanh(xs)
    else:  # [i|f|o|g], c_t = f c_{t-1} + i g with the same input-only gates
        i, f, o = torch.sigmoid(xs[..., :48]).chunk(3, -1)
        g = torch.tanh(xs[..., 48:])
        c, hs = c0, []
        for t in range(5):
            c = f[t] * c + i[t] * g[t]
            hs.append(o[t] * torch.tanh(c))
        want = torch.stack(hs)
    torch.testing.assert_close(processing(fwd.y, full), want, rtol=1e-6, atol=1e-6)


def test_fused_refuses_what_it_cannot_run():
    layer = pair("LSTM", proj_size=8, path="fused")
    with pytest.raises(ValueError, match="path='fused' cannot run this call: the fused kernel does not run proj_size"):
        layer(torch.randn(3, 2, 4))
    highway = pair("LSTM", num_layers=2, residual="highway", path="fused")
    with pytest.raises(ValueError, match="the fused kernel does not run highway"):
        highway(torch.randn(3, 2, 4))
    odd = birnn.GRU(4, 12, path="fused")
    with pytest.raises(ValueError, match="hidden_size a power of two >= 16 or a multiple of 64, got 12"):
        odd(torch.randn(3, 2, 4))
    assert birnn.GRU(4, 16)(torch.randn(3, 2, 4)).path == "torch"  # auto never picks it on CPU


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_tensor_core_tiles_for_larger_batches(mode):
    """18 sequences take a 32-row tensor-core tile (the padding rows masked)."""
    layer = pair(mode, bidirectional=True)
    lengths = torch.randint(0, 5, (18,))
    x = torch.randn(4, 18, 4)
    ref, ref_grads = run(layer, "reference", x, lengths, None)
    fused, fused_grads = run(layer, "fused", x, lengths, None)
    torch.testing.assert_close(fused.output, ref.output, rtol=1e-5, atol=1e-5)
    for a, b in zip(fused_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_kernels_compile_for_the_gpu_without_one():
    """Triton's real compiler (not the interpreter) builds every cell x feature x dtype variant for
    sm_90, streaming and resident kernels, within the H100's shared memory
    (tests/kernels/kernel_compile.py, in a fresh process)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = os.path.join(os.path.dirname(__file__), "kernel_compile.py")
    done = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0 and "FAIL" not in done.stdout, done.stdout + done.stderr[-3000:]
    # fwd+bwd, 3 cells x 2 dtypes: streaming with three feature sets, resident with two at 16- and 32-row tiles
    assert done.stdout.count("ok ") == 36 + 48


@pytest.mark.parametrize("mode", MODES)
def test_streaming_kernels_equal_the_reference(mode):
    """The kernels that stream W_hh from L2 each step (``configured(kernel="stream")``, what calls
    run where the resident tile does not fit; forward and backward) pass the same checks as the
    default: plain layers with lengths, the regularisers, bfloat16."""
    from birnn.backends.fused import configured

    with configured(kernel="stream"):
        test_fused_layer_equals_reference(mode, True)
        test_fused_regularisers_equal_the_reference(mode, "all", True)
        if mode != "RNN_RELU":
            test_fused_bfloat16_is_as_close_to_float64_as_the_reference(mode, {}, True)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_RELU"])
def test_resident_and_streaming_kernels_agree(mode):
    """Kernel level, 18 sequences (a 32-row batch tile, padding rows masked), H=32: the two ways
    of reading W_hh give the same outputs, states and saved activations."""
    from birnn.backends.fused.recurrent import layer_forward

    xs, w, b, h0, c0, _ = kernel_inputs(mode, T=6, B=18, H=32)
    lengths = torch.randint(0, 7, (18,), generator=torch.Generator().manual_seed(1))
    got = {k: poisoned(layer_forward)(mode, xs, w, b, h0, c0, lengths, 6, save=True, kernel=k)
           for k in ("stream", "resident")}
    for a, b_ in zip(got["stream"], got["resident"]):
        if a is not None:
            torch.testing.assert_close(a, b_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("features", [False, True])
def test_resident_and_streaming_backward_kernels_agree(mode, features):
    """Kernel level, 18 sequences (a 32-row batch tile, padding rows masked), H=32, with and
    without recurrent dropout + zoneout masks + layer norm: the backward that sums every
    program's share of dh from W_hh held on chip equals the one that streams W_hh's columns —
    every gradient it returns, the dropout mask's place in dh included."""
    from birnn.backends.fused.recurrent import layer_backward, layer_forward

    T, B, H = 6, 18, 32
    (xs, w, b, h0, c0, lengths), extras, (dout, dhn, dcn) = _kernel_case(mode, T, B, H, features)
    fwd = layer_forward(mode, xs, w, b, h0, c0, lengths, T, save=True, extras=extras)
    got = {k: layer_backward(mode, w, fwd, h0, c0, lengths, T, dout, dhn, dcn, extras=extras, kernel=k)
           for k in ("stream", "resident")}
    for name, a, b_ in zip(got["stream"]._fields, got["stream"], got["resident"]):
        if a is not None:
            torch.testing.assert_close(b_, a, rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")
    assert got["resident"].dh0.abs().max() > 0


def test_resident_kernel_limits():
    """W_hh stays on chip for H a power of two up to 512 and grids the GPU runs at once: asking for
    it elsewhere is refused; the default (``kernel="resident"``) falls back to streaming, and
    ``configured(kernel="stream")`` always streams. (Planned for an H100's 132 multiprocessors; the
    interpreter itself runs power-of-two H only.)"""
    from birnn.backends.fused import KernelConfig, configured, current, describe_kernel, kernel_plan

    with pytest.raises(ValueError, match="powers of two from 16 to 512, got 192"):
        kernel_plan("resident", "GRU", 192, 2, 2, False, 132)
    with pytest.raises(ValueError, match="batch 128 needs 256 resident programs"):
        kernel_plan("resident", "LSTM", 512, 128, 2, True, 132)
    assert current() == KernelConfig() and current().kernel == "resident"
    assert kernel_plan(None, "LSTM", 512, 64, 2, False, 132) == (True, (16, 32, 2, 32))
    assert kernel_plan(None, "GRU", 192, 2, 2, False, 132) == (False, (16, 16, 1, 12))
    assert kernel_plan(None, "LSTM", 1024, 1, 2, False, 132)[0] is False
    # the fallback is part of the observable decision
    assert describe_kernel("LSTM", 512, 64, 2, False, 132).startswith("resident kernel (W_hh held on chip): 4 groups")
    assert "stream kernel (W_hh read from L2 each step), as W_hh does not fit on chip" in describe_kernel(
        "LSTM", 1024, 1, 2, False, 132)
    layer = birnn.GRU(4, 16, bidirectional=True, path="fused")
    assert layer(torch.randn(3, 2, 4)).path == "fused"
    assert layer.last_decision.reason == ("requested with path='fused'; resident kernel (W_hh held on chip): "
                                          "2 groups of 1 programs, 16 units x 16 rows each")
    with configured(kernel="stream"):
        assert kernel_plan(None, "LSTM", 512, 64, 2, False, 132) == (False, (16, 64, 1, 32))
        assert layer(torch.randn(3, 2, 4)).path == "fused"
        assert "stream kernel (W_hh read from L2 each step): 2 groups" in layer.last_decision.reason
    assert current() == KernelConfig()
    with pytest.raises(ValueError, match=r"kernel must be one of \('resident', 'stream'\), got 'fast'"):
        configured(kernel="fast").__enter__()
    assert current() == KernelConfig()


def _kernel_case(mode, T, B, H, features, seed=5):
    from birnn.backends.fused.recurrent import StepExtras

    xs, w, b, h0, c0, _ = kernel_inputs(mode, T=T, B=B, H=H)
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, T + 1, (B,), generator=g)
    lengths[0] = T
    extras = StepExtras()
    if features:
        state = (T, 2, B, H)
        extras = StepExtras(drop=(torch.rand(state[1:], generator=g) > 0.3) / 0.7,
                            keep_h=(torch.rand(state, generator=g) < 0.2).float(),
                            keep_c=(torch.rand(state, generator=g) < 0.2).float() if mode == "LSTM" else None,
                            ln_h=1 + 0.3 * torch.randn(2, xs.shape[-1], generator=g),
                            ln_c=(1 + 0.3 * torch.randn(2, H, generator=g), 0.3 * torch.randn(2, H, generator=g))
                            if mode == "LSTM" else None)
    grads = (torch.randn(T, B, 2 * H, generator=g), torch.randn(2, B, H, generator=g),
             torch.randn(2, B, H, generator=g) if mode == "LSTM" else None)
    return (xs, w, b, h0, c0, lengths), extras, grads


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel", ["resident", "stream"])
def test_saved_tensors_are_direction_major_and_everything_is_written(mode, kernel):
    """What the kernels save for the backward pass is (D, T, ...) storage handed out as (T, D, ...)
    views (each direction's steps one block: the weight gradient's matrices need no copy); ``y``,
    the norm's x̂ and the gradients dx/dy/draw are in the layer's (T, B, D, ·) layout; and the
    kernels write every element of what they return (all poisoned with NaN first)."""
    from birnn.backends.fused.recurrent import layer_backward, layer_forward

    T, B, H = 5, 3, 16
    (xs, w, b, h0, c0, lengths), extras, (dout, dhn, dcn) = _kernel_case(mode, T, B, H, True)
    fwd = poisoned(layer_forward)(mode, xs, w, b, h0, c0, lengths, T, save=True, extras=extras, kernel=kernel)
    for name, a in fwd._asdict().items():
        if a is None:
            continue
        assert torch.isfinite(a).all() or name == "rstd", name  # (rstd: the cell norm's slot is the LSTM's)
        if name == "y":
            assert a.shape == (T, B, 2 * H)
        elif name == "xhat":
            assert a.shape == (T, B, 2, xs.shape[-1]) and a.is_contiguous()
        elif a.dim() == 4:
            assert a.shape[:3] == (T, 2, B) and a.transpose(0, 1).is_contiguous(), name
    grads = poisoned(layer_backward)(mode, w, fwd, h0, c0, lengths, T, dout, dhn, dcn, extras=extras, kernel=kernel)
    for name, a in grads._asdict().items():
        if a is not None:
            assert torch.isfinite(a).all(), name
            if name in ("dx", "dy", "draw"):
                assert a.shape == xs.shape and a.is_contiguous(), name
    assert grads.dx.abs().max() > 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel,features", [("resident", False), ("resident", True), ("stream", True)])
def test_the_layer_layout_at_the_boundary_against_the_step_loop(mode, kernel, features):
    """The kernels read xs and dout and write y and dx in the layer's (T, B, D, ·) layout, each row
    in its own time order (the backward direction's steps read and written reversed within each
    row): against float64 autograd through the reference step loop run in processing order
    (:func:`birnn.backends.reference.scan` on each row reversed by PyTorch), with a zero-length row,
    the regularisers' masks, and ``steps`` (4) below T (5): the last step is every row's padding,
    zero and written (NaN-poisoned first)."""
    from birnn.cells import StepWeights, cell_spec
    from birnn.backends.fused.recurrent import layer_backward, layer_forward
    from birnn.backends.reference import scan
    from birnn.backends.weights import Zoneout

    T, B, H, steps = 5, 3, 16, 4
    (xs, w, b, h0, c0, _), extras, (dout, dhn, dcn) = _kernel_case(mode, T, B, H, features)
    lengths = torch.tensor([4, 2, 0])
    valid = torch.arange(T)[:, None] < lengths[None]  # (T, B)
    xs = torch.where(valid[:, :, None, None], xs, 0.0)
    kw = dict(extras=extras, kernel=kernel)
    fwd = poisoned(layer_forward)(mode, xs, w, b, h0, c0, lengths, steps, save=True, **kw)
    grads = poisoned(layer_backward)(mode, w, fwd, h0, c0, lengths, steps, dout, dhn, dcn, **kw)
    assert torch.equal(fwd.y[steps:], torch.zeros_like(fwd.y[steps:]))
    assert torch.equal(grads.dx[steps:], torch.zeros_like(grads.dx[steps:]))
    # the reference: the step loop in float64, in processing order
    x64 = processing(xs, lengths).double().requires_grad_()
    h64 = h0.double().requires_grad_()
    spec = cell_spec(mode)
    step = {}
    if extras.drop is not None:
        step["drop_h"] = extras.drop.double()
    if extras.ln_h is not None:
        step["ln_h"] = extras.ln_h.double().unsqueeze(1)
        if mode == "LSTM":
            step["ln_c"] = tuple(t.double().unsqueeze(1) for t in extras.ln_c)
    sw = StepWeights(w.double().transpose(1, 2), (b.double().unsqueeze(1) if b is not None else None), **step)
    zone = None if extras.keep_h is None else Zoneout(0.2, 0.2, extras.keep_h.double(),
                                                      None if extras.keep_c is None else extras.keep_c.double())
    carry = (h64, c0.double()) if c0 is not None else (h64,)
    ys, carry = scan(spec, x64, carry, sw, valid, zoneout=zone)
    torch.testing.assert_close(processing(fwd.y, lengths).double(), ys, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fwd.hn.double(), carry[0], rtol=1e-5, atol=1e-5)
    loss = (ys * processing(dout, lengths).double()).sum() + (carry[0] * dhn.double()).sum()
    if mode == "LSTM":
        torch.testing.assert_close(fwd.cn.double(), carry[1], rtol=1e-5, atol=1e-5)
        loss = loss + (carry[1] * dcn.double()).sum()
    dx_ref, dh0_ref = torch.autograd.grad(loss, (x64, h64))
    torch.testing.assert_close(processing(grads.dx, lengths).double(), dx_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads.dh0.double(), dh0_ref, rtol=1e-5, atol=1e-5)
    assert grads.dx.abs().max() > 0


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_RELU"])
@pytest.mark.parametrize("features", [False, True])
def test_bfloat16_layers_exchange_bfloat16_with_the_same_bits(mode, features, monkeypatch):
    """A bfloat16 layer's programs exchange h (forward) and dA (streaming backward) as bfloat16,
    since the product rounds its operands to bfloat16 anyway: every output and gradient is the
    same bits as with float32 exchange areas (variant 17); h0 and the dropout scale (1/0.7) are
    not exact in bfloat16, so the h0 rounded by PyTorch into the exchange area must round as the
    kernel does (tests/kernels/interpreter_rounding.py: to nearest even, as on the GPU)."""
    from birnn.backends.fused import recurrent as R

    T, B, H = 5, 3, 16
    (xs, w, b, h0, c0, lengths), extras, (dout, dhn, dcn) = _kernel_case(mode, T, B, H, features)
    xs, w = xs.bfloat16(), w.bfloat16()

    def both(kernel):
        fwd = R.layer_forward(mode, xs, w, b, h0, c0, lengths, T, save=True, kernel=kernel, extras=extras)
        return fwd, R.layer_backward(mode, w, fwd, h0, c0, lengths, T, dout, dhn, dcn, kernel=kernel, extras=extras)

    assert R._exchange_dtype(torch.bfloat16) == torch.bfloat16
    for kernel in ("stream", "resident"):
        half = both(kernel)
        with monkeypatch.context() as m:
            m.setattr(R, "_exchange_dtype", lambda dtype: torch.float32)
            full = both(kernel)
        for part_h, part_f in zip(half, full):
            for name, a, b_ in zip(part_h._fields, part_h, part_f):
                assert a is None or torch.equal(a, b_), f"{kernel} {name}"
    assert half[1].dx.abs().max() > 0


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("kernel,kw", [("stream", {}), ("stream", dict(recurrent_dropout=0.3, zoneout=0.1)),
                                       ("resident", dict(layer_norm=True))])
def test_bfloat16_layers_write_dx_as_bfloat16_with_the_same_bits(mode, kernel, kw, monkeypatch):
    """A bfloat16 layer's backward kernel writes dx as bfloat16 (variant 19): every reader rounds
    it to bfloat16 anyway (the projection's backward, dW_hh's operand), so a training step's
    outputs and gradients are the same bits as with dx written in float32 and rounded after
    (rounding to nearest even in both places: tests/kernels/interpreter_rounding.py)."""
    from birnn.backends.fused import recurrent as R

    monkeypatch.setattr(birnn.backends.fused.grid, "_CURRENT", [birnn.backends.fused.KernelConfig(kernel=kernel)])
    layer = pair(mode, num_layers=2, bidirectional=True, **kw).bfloat16()
    x, lengths = torch.randn(5, 3, 4).bfloat16(), torch.tensor([5, 2, 4])
    half, half_grads = run(layer, "fused", x, lengths, None, seed=3)
    with monkeypatch.context() as m:
        m.setattr(R, "_gradient_dtype", lambda dtype, mode, ln: torch.float32)
        full, full_grads = run(layer, "fused", x, lengths, None, seed=3)
    assert torch.equal(half.output, full.output)
    for a, b in zip(half_grads, full_grads):
        assert torch.equal(a, b)
    assert R._gradient_dtype(torch.bfloat16, mode, "layer_norm" in kw) == (
        torch.float32 if "layer_norm" in kw and mode != "GRU" else torch.bfloat16)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
@pytest.mark.parametrize("kernel,kw", [("stream", {}), ("resident", dict(zoneout=0.1, layer_norm=True))])
def test_bfloat16_layers_output_bfloat16_with_the_same_bits(mode, kernel, kw, monkeypatch):
    """A bfloat16 layer's kernel writes its output y as bfloat16 and reads y's gradient as
    bfloat16 (variant 20): the output and every gradient are the same bits as with float32 y and
    dout converted by PyTorch (the kernel rounds to nearest even, as PyTorch does; the states that
    dW_hh multiplies are rounded to bfloat16 there anyway). With recurrent dropout the states are
    scaled after that rounding instead of before, so dW_hh may differ in its last bit."""
    from birnn.backends.fused import recurrent as R

    monkeypatch.setattr(birnn.backends.fused.grid, "_CURRENT", [birnn.backends.fused.KernelConfig(kernel=kernel)])
    layer = pair(mode, num_layers=2, bidirectional=True, **kw).bfloat16()
    x, lengths = torch.randn(5, 3, 4).bfloat16(), torch.tensor([5, 2, 4])
    half, half_grads = run(layer, "fused", x, lengths, None, seed=3)
    with monkeypatch.context() as m:
        m.setattr(R, "_output_dtype", lambda dtype: torch.float32)
        full, full_grads = run(layer, "fused", x, lengths, None, seed=3)
    assert torch.equal(half.output, full.output)
    for a, b in zip(half_grads, full_grads):
        assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
@pytest.mark.parametrize("kernel,features,T,B", [("stream", False, 4, 3), ("stream", True, 4, 3),
                                                 ("resident", False, 4, 3), ("resident", True, 4, 3),
                                                 ("resident", True, 3, 34)])  # two 32-row tiles
def test_multi_program_groups_equal_one_program(mode, kernel, features, T, B, monkeypatch):
    """The kernels with the GPU's grid plan — several programs per barrier group, each in its own
    thread (tests/kernels/threaded_grid.py), and two batch tiles at B=34 for the resident kernel — give the
    numbers of one program per group: forward outputs and saved tensors, and every gradient of the
    backward pass. This runs what no other CPU test reaches: the barrier, the exchange areas and
    their parity, the norms' moments merged across programs, the resident backward's shares of dh.
    (Removing the barrier's wait makes these differ by ~1.)"""
    from birnn.backends.fused import recurrent as R
    from threaded_grid import threaded_programs

    H = 128 if (mode.startswith("RNN") and kernel == "resident") else 64  # Elman tiles hold 64 units
    (xs, w, b, h0, c0, lengths), extras, (dout, dhn, dcn) = _kernel_case(mode, T, B, H, features)

    def both():
        fwd = poisoned(R.layer_forward)(mode, xs, w, b, h0, c0, lengths, T, save=True, kernel=kernel, extras=extras)
        return fwd, R.layer_backward(mode, w, fwd, h0, c0, lengths, T, dout, dhn, dcn, kernel=kernel, extras=extras)

    one = both()
    monkeypatch.setattr(R.hardware, "multiprocessors", lambda dev: 132)  # an H100's grid plan
    resident, (U, BB, nbt, group) = R.kernel_plan(kernel, mode, H, B, 2, False, 132)
    assert group >= 2 and resident == (kernel == "resident") and (nbt == 2) == (kernel == "resident" and B > 32)
    with threaded_programs():
        many = both()
    for part_one, part_many in zip(one, many):
        for name, a, b_ in zip(part_one._fields, part_one, part_many):
            if a is not None:  # (NaN: the poison, where neither writes — the cell norm's slot of rstd without one)
                torch.testing.assert_close(b_, a, rtol=1e-5, atol=1e-5, equal_nan=True, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_hidden_size_not_a_power_of_two_on_the_gpu_grid(mode, monkeypatch):
    """H=192 (a multiple of 64) runs only on the GPU's plan — 16-unit blocks, 12 programs per
    group, the norms' partial moments gathered in 16 masked slots: here every program in a thread,
    with all regularisers, against the reference path with the same masks (outputs, states and
    every gradient, norm gains included)."""
    from birnn.backends.fused import recurrent as R
    from threaded_grid import threaded_programs

    torch.manual_seed(0)
    layer = getattr(birnn, mode)(4, 192, bidirectional=True, recurrent_dropout=0.25, zoneout=0.1, layer_norm=True)
    lengths = torch.tensor([4, 2, 3])
    x = torch.randn(4, 3, 4)
    ref, ref_grads = run(layer, "reference", x, lengths, None, seed=3)
    monkeypatch.setattr(R.hardware, "multiprocessors", lambda dev: 132)
    assert R.kernel_plan(None, mode, 192, 3, 2, False, 132) == (False, (16, 16, 1, 12))
    with threaded_programs():
        fused, fused_grads = run(layer, "fused", x, lengths, None, seed=3)
    assert fused.path == "fused"
    torch.testing.assert_close(fused.output, ref.output, rtol=2e-5, atol=1e-5)
    names = ["input"] + [n for n, _ in layer.named_parameters()]
    for name, a, b in zip(names, fused_grads, ref_grads):
        err = float((a - b).abs().max() / b.abs().max().clamp(min=1e-3))
        assert err < 2e-5, f"{name}: relative error {err:.1e}"
