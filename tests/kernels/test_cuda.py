"""The fused kernels and every path at real sizes on a CUDA machine: against torch.nn/cuDNN, and
the kernels against the reference path, with outputs poisoned before each run and repeated runs
compared bit for bit (no race at the barrier).

Tolerances: float32 paths that do not use TF32 agree to 1e-5 relative; the fused kernel with
TF32 (as cuDNN uses by default) to 2e-2 after a few hundred steps; bfloat16 to 5e-2. Where
float32 rounding alone moves the numbers more than that (ReLU RNNs, whose derivative flips where
a pre-activation is near 0, and layer norm over long sequences), the kernels' error against
float64 must stay within 10x of the float32 reference path's own (:func:`within_float32_noise`).

On a CPU machine with Triton (CI) the same bodies run at toy sizes under Triton's interpreter,
with an H100's grid plan (132 multiprocessors: several programs per barrier group, each in its
own thread, tests/kernels/threaded_grid.py) and a subset of the cases, so that a GPU session never
finds these tests broken; what only a GPU can show (TF32 products, the speed table's choices,
the resident-grid limit) is skipped there.
"""

import pytest
import torch

pytestmark = pytest.mark.slow  # minutes under the interpreter: -m 'not slow' skips them locally

GPU = torch.cuda.is_available()
if not GPU:
    pytest.importorskip("triton", reason="the fused kernels need Triton (CI installs it)")
    from interpreter_rounding import install as round_bfloat16_as_the_gpu

    round_bfloat16_as_the_gpu()

import birnn  # noqa: E402
from birnn.backends.fused.recurrent import layer_backward, layer_forward, plan_grid, plan_resident  # noqa: E402
from conftest import MODES, poisoned  # noqa: E402
from orders import natural, processing  # noqa: E402

DEV = torch.device("cuda" if GPU else "cpu")
SMS = torch.cuda.get_device_properties(DEV).multi_processor_count if GPU else 132  # CPU: an H100's plan
gpu_only = pytest.mark.skipif(not GPU, reason="needs CUDA")


def sized(gpu, cpu):
    """What a test runs: ``gpu`` (real sizes, every case) on a GPU, ``cpu`` under the interpreter."""
    return gpu if GPU else cpu


@pytest.fixture(autouse=True)
def _h100_grid_on_cpu(monkeypatch):
    """Under the interpreter: the kernels plan their grid for 132 multiprocessors, and every
    program of a launch runs in its own thread (the barrier and the exchanges run for real)."""
    if GPU:
        yield
        return
    from threaded_grid import threaded_programs

    from birnn.backends.fused import recurrent as R

    monkeypatch.setattr(R.hardware, "multiprocessors", lambda dev: SMS)
    with threaded_programs():
        yield


def make(mode, I, H, **kw):
    torch.manual_seed(0)
    if mode.startswith("RNN"):
        nl = "tanh" if mode == "RNN_TANH" else "relu"
        return torch.nn.RNN(I, H, nonlinearity=nl, **kw).to(DEV), birnn.RNN(I, H, nonlinearity=nl, **kw).to(DEV)
    return getattr(torch.nn, mode)(I, H, **kw).to(DEV), getattr(birnn, mode)(I, H, **kw).to(DEV)


def rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-6))


def within_float32_noise(got, want64, ref32, floor=1e-4):
    """``got`` (float32) is as close to the float64 answer as float32 rounding lets the reference
    path be: its error at most 10x the reference's own, or ``floor``."""
    bound = max(floor, 10 * rel(ref32.double(), want64))
    return rel(got.double(), want64) <= bound, f"error {rel(got.double(), want64):.2e}, bound {bound:.2e}"


@pytest.mark.parametrize("mode", sized(MODES, ["RNN_TANH"]))
def test_every_path_against_cudnn(mode):
    ref, ours = make(mode, 32, 64, num_layers=2, bidirectional=True)
    ours.load_state_dict(ref.state_dict())
    B, T = 8, sized(40, 8)
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    x = torch.randn(T, B, 32, device=DEV)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.backends.cudnn.flags(allow_tf32=False):
        want, _ = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], total_length=T)
        full = ref(x)[0]
        for path in ("torch", "torch-packed", "torch-chunked", "reference", "fused"):
            ours.path = path
            got = ours(x, lengths=lengths)
            assert got.path == path or (path == "torch" and got.path in ("torch-packed", "torch-chunked")), got.path
            assert rel(got.output, want) < 1e-5, path
            assert rel(ours(x).output, full) < 1e-5, path


def real_inputs(mode, T, D, B, H, seed):
    """One layer's kernel inputs on the GPU — xs (T, D, B, G*H) in processing order (the reference
    loop's; :func:`orders.natural` gives the kernels' layout), W_hh, the GRU's b_hh, h0, c0,
    lengths with a full first sequence — and the generator, for more draws."""
    G = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    g = torch.Generator(device=DEV).manual_seed(seed)
    xs = torch.randn(T, D, B, G * H, device=DEV, generator=g)
    w = torch.randn(D, G * H, H, device=DEV, generator=g) / H ** 0.5
    b = torch.randn(D, G * H, device=DEV, generator=g) * 0.1 if mode == "GRU" else None
    h0 = torch.randn(D, B, H, device=DEV, generator=g) * 0.5
    c0 = torch.randn(D, B, H, device=DEV, generator=g) * 0.5 if mode == "LSTM" else None
    lengths = torch.randint(1, T + 1, (B,), device=DEV, generator=g)
    lengths[0] = T
    return g, (xs, w, b, h0, c0, lengths)


@pytest.mark.parametrize("mode", sized(MODES, ["LSTM"]))
@pytest.mark.parametrize("B", sized([1, 64], [3]))
@pytest.mark.parametrize("kernel", ["stream", "resident"])
def test_fused_kernel_at_real_sizes_poisoned_and_repeatable(mode, B, kernel):
    H, T, D = sized(512, 64), sized(100, 6), 2
    g, (xs, w, b, h0, c0, lengths) = real_inputs(mode, T, D, B, H, seed=0)
    plan = plan_grid(H, B, D, SMS) if kernel == "stream" else plan_resident(mode, H, B, D, False, SMS)
    assert plan[3] > 1, "the test must exercise the multi-program barrier"
    xs_n = natural(xs, lengths)
    runs = [poisoned(layer_forward)(mode, xs_n, w, b, h0, c0, lengths, T, precision="ieee", save=True,
                                    kernel=kernel) for _ in range(3)]
    for other in runs[1:]:
        for a, b_ in zip(runs[0], other):
            if a is not None:
                assert torch.equal(a, b_), "repeated runs differ: a race"
    out, hn = processing(runs[0].y, lengths), runs[0].hn
    valid = (torch.arange(T, device=DEV)[:, None] < lengths[None]).view(T, 1, B, 1)
    assert torch.isfinite(out).all() and torch.all(out.masked_select(~valid.expand_as(out)) == 0)
    # the reference loop on the same inputs (float64)
    from birnn.cells import StepWeights, cell_spec
    from birnn.backends.reference import scan

    spec = cell_spec(mode)
    sw = StepWeights(w.double().transpose(1, 2), (b.double().unsqueeze(1) if b is not None else None))
    carry = (h0.double(), c0.double()) if c0 is not None else (h0.double(),)
    ys, carry = scan(spec, xs.double(), carry, sw, valid.view(T, B))
    assert rel(out.double(), ys) < 1e-4 and rel(hn.double(), carry[0]) < 1e-4
    tf32 = processing(layer_forward(mode, xs_n, w, b, h0, c0, lengths, T, precision="tf32", kernel=kernel).y, lengths)
    assert rel(tf32.double(), ys) < 2e-2


@pytest.mark.parametrize("mode", sized(MODES, ["GRU"]))
@pytest.mark.parametrize("B", sized([1, 64], [3]))
def test_fused_backward_kernels_at_real_sizes_repeatable(mode, B):
    """Both backward kernels at H=512 with multi-program groups — the streaming one (every
    program reads all of dA) and the resident one (every program adds the others' shares of dh) —
    against float64 autograd through the reference loop; the resident one three times, bit for bit."""
    H, T, D = sized(512, 64), sized(60, 5), 2
    g, (xs, w, b, h0, c0, lengths) = real_inputs(mode, T, D, B, H, seed=1)
    assert plan_resident(mode, H, B, D, False, SMS)[3] > 1 and plan_grid(H, B, D, SMS)[3] > 1
    dout = torch.randn(T, D, B, H, device=DEV, generator=g)
    dhn = torch.randn(D, B, H, device=DEV, generator=g)
    dcn = torch.randn(D, B, H, device=DEV, generator=g) if mode == "LSTM" else None
    fwd = layer_forward(mode, natural(xs, lengths), w, b, h0, c0, lengths, T, precision="ieee", save=True,
                        kernel="stream")
    dout_n = natural(dout, lengths)
    runs = {k: [layer_backward(mode, w, fwd, h0, c0, lengths, T, dout_n, dhn, dcn, precision="ieee", kernel=k)
                for _ in range(3 if k == "resident" else 1)] for k in ("stream", "resident")}
    for other in runs["resident"][1:]:
        assert all(a is None or torch.equal(a, b_) for a, b_ in zip(runs["resident"][0], other)), "a race"
    from birnn.cells import StepWeights, cell_spec
    from birnn.backends.reference import scan

    def reference(dtype):  # autograd through the reference step loop
        x_, h_ = xs.to(dtype).requires_grad_(), h0.to(dtype).requires_grad_()
        sw = StepWeights(w.to(dtype).transpose(1, 2), (b.to(dtype).unsqueeze(1) if b is not None else None))
        carry = (h_, c0.to(dtype)) if c0 is not None else (h_,)
        valid = (torch.arange(T, device=DEV)[:, None] < lengths[None])
        ys, carry = scan(cell_spec(mode), x_, carry, sw, valid)
        loss = (ys * dout.to(dtype)).sum() + (carry[0] * dhn.to(dtype)).sum()
        if mode == "LSTM":
            loss = loss + (carry[1] * dcn.to(dtype)).sum()
        return torch.autograd.grad(loss, (x_, h_))

    def relu_reference(dtype):  # BPTT by hand, the ReLU's derivative where the kernel's forward saved h > 0
        pos = fwd.out > 0  # (T, D, B, H) processing order
        valid = (torch.arange(T, device=DEV)[:, None] < lengths[None]).view(T, 1, B, 1)
        dh, dx = dhn.to(dtype), torch.zeros(xs.shape, device=DEV, dtype=dtype)
        for t in reversed(range(T)):
            dh_t = dh + torch.where(valid[t], dout[t].to(dtype), 0.0)
            dx[t] = torch.where(valid[t] & pos[t], dh_t, 0.0)
            dh = torch.where(valid[t], torch.bmm(dx[t], w.to(dtype)), dh_t)  # (D, B, H) @ (D, H, H)
        return dx, dh

    # a ReLU pre-activation within float32 rounding of 0 may come out on the other side in the kernel's
    # forward than in the reference's, which moves that step's dx by O(1) (seen once at B=64, H=512:
    # benchmarks/device/2026-12-04-h200-cuda-tests.txt): the ReLU's reference takes its pattern from the kernel
    dx_ref, dh0_ref = (relu_reference if mode == "RNN_RELU" else reference)(torch.float64)
    dx32, dh032 = (relu_reference if mode == "RNN_RELU" else reference)(torch.float32)
    for kernel, (got, *_) in runs.items():
        ok, why = within_float32_noise(processing(got.dx, lengths), dx_ref, dx32)
        assert ok, f"{kernel} dx: {why}"
        ok, why = within_float32_noise(got.dh0, dh0_ref, dh032)
        assert ok, f"{kernel} dh0: {why}"


@pytest.mark.parametrize("mode", sized(["LSTM", "GRU"], ["LSTM"]))
def test_fused_training_gradients_match_the_reference(mode):
    I = sized(64, 8)
    ref_layer, layer = make(mode, I, sized(128, 32), num_layers=2, bidirectional=True)
    B, T = sized(16, 3), sized(60, 6)
    lengths = torch.randint(min(5, T), T + 1, (B,))
    x = torch.randn(T, B, I, device=DEV)
    grads = {}
    with torch.backends.cudnn.flags(allow_tf32=False):
        for path in ("reference", "fused"):
            layer.path = path
            layer.zero_grad()
            xx = x.clone().requires_grad_()
            res = layer(xx, lengths=lengths)
            (res.output.square().sum() + res.h_n.sum()).backward()
            grads[path] = [xx.grad] + [p.grad.clone() for p in layer.parameters()]
    for a, b in zip(grads["fused"], grads["reference"]):
        assert rel(a, b) < 1e-4


@gpu_only
def test_fused_matmuls_use_tf32_exactly_where_cudnn_rnns_do():
    """The input projection (forward and backward) is cuBLAS's TF32 product by default, and the
    full float32 one when cuDNN's RNNs are told not to use TF32 (birnn.backends.fused.products)."""
    from birnn.backends.fused.products import project

    g = torch.Generator(device=DEV).manual_seed(0)
    linear = torch.nn.functional.linear
    flat = torch.randn(4096, 256, device=DEV, generator=g, requires_grad=True)  # (T*B, F)
    w = torch.randn(4096, 256, device=DEV, generator=g, requires_grad=True)  # (D*G*H, F)
    bias = torch.randn(4096, device=DEV, generator=g)
    dy = torch.randn(4096, 4096, device=DEV, generator=g)

    def products(fn):
        out = fn(flat, w, bias)
        return [out.detach()] + list(torch.autograd.grad(out, (flat, w), dy))

    ieee = products(linear)
    matmul = torch.backends.cuda.matmul
    old = matmul.fp32_precision
    matmul.fp32_precision = "tf32"
    try:
        tf32 = products(linear)
    finally:
        matmul.fp32_precision = old
    fused = products(project)
    # TF32 rounds operands to 10 mantissa bits: ~1e-3 from float32, which agrees to ~1e-7
    assert all(rel(a, b) < 1e-6 for a, b in zip(fused, tf32))
    assert all(1e-5 < rel(a, b) < 1e-2 for a, b in zip(fused, ieee))
    with torch.backends.cudnn.flags(allow_tf32=False):
        assert all(rel(a, b) < 1e-6 for a, b in zip(products(project), ieee))


def test_bf16_against_cudnn():
    I = sized(64, 16)
    ref, ours = make("LSTM", I, sized(128, 32), num_layers=2, bidirectional=True)
    ours.load_state_dict(ref.state_dict())
    ref, ours = ref.bfloat16(), ours.bfloat16()
    x = torch.randn(sized(50, 8), 8, I, device=DEV, dtype=torch.bfloat16)
    ours.path = "fused"
    assert rel(ours(x).output.float(), ref(x)[0].float()) < 5e-2


@pytest.mark.parametrize("mode", sized(["LSTM", "GRU"], ["GRU"]))
@pytest.mark.parametrize("kernel", ["stream", "resident"])
def test_bf16_dx_written_as_bf16_gives_the_same_bits(mode, kernel, monkeypatch):
    """Variant 19 at real sizes: a bf16 training step whose backward kernel writes dx as bf16
    gives the same bits as one writing it in float32 and rounding after (both round to nearest
    even on the GPU), with lengths."""
    from birnn.backends.fused import recurrent as R

    monkeypatch.setattr(birnn.backends.fused.grid, "_CURRENT", [birnn.backends.fused.KernelConfig(kernel=kernel)])
    torch.manual_seed(0)
    I, H, T, B = sized(128, 16), sized(256, 32), sized(40, 6), sized(16, 3)
    layer = getattr(birnn, mode)(I, H, num_layers=2, bidirectional=True, path="fused").to(DEV).bfloat16()
    x = torch.randn(T, B, I, device=DEV, dtype=torch.bfloat16)
    lengths = torch.randint(T // 4, T + 1, (B,), device=DEV)
    lengths[0] = T
    dy = torch.randn(T, B, 2 * H, device=DEV)

    def step():
        layer.zero_grad()
        xx = x.clone().requires_grad_()
        out = layer(xx, lengths=lengths).output
        (out.float() * dy).sum().backward()
        return [out, xx.grad] + [p.grad.clone() for p in layer.parameters()]

    half = step()
    with monkeypatch.context() as m:
        m.setattr(R, "_gradient_dtype", lambda dtype, mode, ln: torch.float32)
        full = step()
    assert all(torch.equal(a, b) for a, b in zip(half, full))


@gpu_only
def test_auto_picks_the_fused_kernel_where_it_was_measured_faster():
    lstm = birnn.LSTM(64, 512, bidirectional=True).to(DEV)
    x = torch.randn(20, 8, 64, device=DEV)
    assert lstm(x).path == "fused" and "measured faster" in lstm.last_decision.reason
    assert "nearest measured: LSTM float32 B=8 H=1024 infer" in lstm.last_decision.reason
    assert "resident kernel" in lstm.last_decision.reason
    small = birnn.GRU(64, 128, bidirectional=True).to(DEV)
    assert small(x).path == "torch"  # a float32 GRU at hidden 128, batch 8: cuDNN measured faster


def regularised_layer(mode, H, **kw):
    torch.manual_seed(0)
    if mode.startswith("RNN"):
        layer = birnn.RNN(64, H, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)
    else:
        layer = getattr(birnn, mode)(64, H, **kw)
    with torch.no_grad():  # norm gains and biases away from 1 and 0
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    return layer.to(DEV)


@pytest.mark.parametrize("mode", sized(MODES, ["LSTM"]))
@pytest.mark.parametrize("B,H", sized([(16, 128), (64, 512)], [(3, 32)]))
@pytest.mark.parametrize("kernel", sized(["stream", "resident"], ["resident"]))
def test_fused_regularisers_match_the_reference_and_repeat_bit_for_bit(mode, B, H, kernel, monkeypatch):
    """Recurrent dropout + zoneout + layer norm inside the kernels (streaming, or W_hh resident in
    both passes) with multi-program groups (the norms' row sums cross the barrier): outputs, states
    and every gradient against the reference loop in float64 with the same masks, as close as the
    float32 reference loop (without TF32) is, and three runs give the same bits."""
    import copy

    from birnn.backends import plan as P

    monkeypatch.setattr(birnn.backends.fused.grid, "_CURRENT", [birnn.backends.fused.KernelConfig(kernel=kernel)])
    # the masks drawn in float32 whatever the layer's dtype, so the float64 reference gets the same ones
    draw_v, draw_z = P.variational_mask, P.zoneout_masks
    monkeypatch.setattr(P, "variational_mask", lambda b, f, p, like: draw_v(b, f, p, like=like.float()).to(like.dtype))
    monkeypatch.setattr(P, "zoneout_masks", lambda shape, p, like: draw_z(shape, p, like=like.float()).to(like.dtype))
    kw = dict(num_layers=2, bidirectional=True, recurrent_dropout=0.25, zoneout=0.1, layer_norm=True)
    if mode == "LSTM":
        kw["cell_zoneout"] = 0.15
    layer = regularised_layer(mode, H, **kw)
    assert plan_grid(H, B, 2, SMS)[3] > 1
    T = sized(80, 4)
    lengths = torch.randint(min(5, T), T + 1, (B,))
    lengths[0] = T
    x = torch.randn(T, B, 64, device=DEV)

    def run(path, module=layer):
        module.path = path
        module.zero_grad()
        xx = x.detach().to(next(module.parameters()).dtype).clone().requires_grad_()
        torch.manual_seed(5)  # the same masks on every path
        res = module(xx, lengths=lengths)
        assert res.path == path
        (res.output.square().sum() + res.h_n.sum()).backward()
        return [res.output.detach(), res.h_n.detach(), xx.grad] + [p.grad.clone() for p in module.parameters()]

    with torch.backends.cudnn.flags(allow_tf32=False):
        ref64 = run("reference", copy.deepcopy(layer).double())
        ref = run("reference")
        runs = [run("fused") for _ in range(3)]
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other)), "repeated runs differ: a race"
    names = ["output", "h_n", "input"] + [n for n, _ in layer.named_parameters()]
    for name, a, want, b in zip(names, runs[0], ref64, ref):
        ok, why = within_float32_noise(a, want, b)
        assert ok, f"{name}: {why}"


def test_fused_regularised_buffers_are_fully_written():
    """Outputs and every saved buffer poisoned with NaN first: the kernel writes all of them."""
    from birnn.backends.fused.recurrent import StepExtras

    H, T, D, B = sized(512, 64), sized(50, 6), 2, sized(8, 3)
    g = torch.Generator(device=DEV).manual_seed(0)
    xs = torch.randn(T, B, D, 4 * H, device=DEV, generator=g)
    w = torch.randn(D, 4 * H, H, device=DEV, generator=g) / H ** 0.5
    h0, c0 = (torch.randn(D, B, H, device=DEV, generator=g) for _ in range(2))
    keep = (torch.rand(T, D, B, H, device=DEV, generator=g) < 0.1).float()
    extras = StepExtras(drop=(torch.rand(D, B, H, device=DEV, generator=g) > 0.25).float() / 0.75, keep_h=keep,
                        keep_c=keep.flip(0), ln_h=torch.rand(D, 4 * H, device=DEV, generator=g) + 0.5,
                        ln_c=(torch.rand(D, H, device=DEV, generator=g) + 0.5, torch.randn(D, H, device=DEV, generator=g)))
    lengths = torch.randint(1, T + 1, (B,), device=DEV)
    fwd = poisoned(layer_forward)("LSTM", xs, w, None, h0, c0, lengths, T, save=True, extras=extras)
    saved = fwd._asdict()
    assert saved.pop("out") is None  # (an LSTM's backward reads c, not the outputs)
    for name, t in saved.items():
        assert t is not None and torch.isfinite(t).all(), name


@gpu_only
def test_a_batch_too_large_for_a_resident_grid_is_refused_up_front():
    B = 2 * 64 * SMS  # more batch tiles than multiprocessors, even at one program per group
    layer = birnn.LSTM(8, 64, bidirectional=True, path="fused").to(DEV)
    with pytest.raises(ValueError, match=r"path='fused' cannot run this call: batch \d+ needs \d+ resident programs"):
        layer(torch.randn(2, B, 8, device=DEV))
    layer.path = "auto"
    assert layer(torch.randn(2, B, 8, device=DEV)).path == "torch"
