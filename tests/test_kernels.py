"""The fused Triton kernels on CPU under TRITON_INTERPRET=1, against the reference path:
outputs, states and every gradient, for each cell, both directions, lengths (zero too) and
the features the kernel runs. (GPU sizes and timing: tests/test_cuda.py, benchmarks/gpu.py.)

The interpreter runs programs one after another, so it checks the kernels with one program
per barrier group; the multi-program barrier is exercised on the GPU.
"""

import os

import pytest
import torch

if torch.cuda.is_available():
    pytest.skip("interpreter tests are for CPU machines; tests/test_cuda.py covers the GPU", allow_module_level=True)
os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are defined
triton = pytest.importorskip("triton", reason="the fused kernels need Triton (CI installs it)")

import birnn  # noqa: E402
from conftest import MODES, flat_hidden  # noqa: E402


def pair(mode, **kw):
    torch.manual_seed(0)
    if mode.startswith("RNN"):
        layer = birnn.RNN(4, 16, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)
    else:
        layer = getattr(birnn, mode)(4, 16, **kw)
    return layer


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


def test_fused_refuses_what_it_cannot_run():
    layer = pair("LSTM", layer_norm=True, path="fused")
    with pytest.raises(ValueError, match="path='fused' cannot run this call: the fused kernel does not run layer_norm"):
        layer(torch.randn(3, 2, 4))
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
