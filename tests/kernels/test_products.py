"""The fused path's large matmuls (birnn.backends.fused.products): which precision cuDNN's RNNs use,
the TF32 switch around the matmuls, and the projection's autograd (float64 gradcheck). Needs no
Triton and no GPU; tests/kernels/test_cuda.py checks the TF32 products themselves on a GPU."""

import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from birnn.backends.fused.products import Projection, cudnn_rnn_uses_tf32, project, tf32_matmuls, weight_product


@contextlib.contextmanager
def rnn_precision(value):
    rnn = torch.backends.cudnn.rnn
    old = rnn.fp32_precision
    rnn.fp32_precision = value
    try:
        yield
    finally:
        rnn.fp32_precision = old


class MatmulSettings(TorchDispatchMode):
    """Records the CUDA matmul precision in force at every matrix product (backward included)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.bmm, torch.ops.aten.baddbmm, torch.ops.aten.mm, torch.ops.aten.addmm):
            self.seen.append(torch.backends.cuda.matmul.fp32_precision)
        return func(*args, **(kwargs or {}))


needs_new_api = pytest.mark.skipif(not hasattr(torch.backends.cudnn.rnn, "fp32_precision"),
                                   reason="PyTorch < 2.9 has only allow_tf32")


def test_cudnn_rnn_precision_is_followed():
    assert cudnn_rnn_uses_tf32()  # PyTorch's default for cuDNN's RNNs
    with torch.backends.cudnn.flags(allow_tf32=False):
        assert not cudnn_rnn_uses_tf32()
    assert cudnn_rnn_uses_tf32()


@needs_new_api
def test_the_per_operator_setting_is_read_without_raising():
    # once the new API is used, reading the legacy torch.backends.cudnn.allow_tf32 raises
    with rnn_precision("ieee"):
        with pytest.raises(RuntimeError):
            torch.backends.cudnn.allow_tf32
        assert not cudnn_rnn_uses_tf32()
    with rnn_precision("none"):  # inherits: cudnn, then the generic setting (both "none": full float32)
        assert not cudnn_rnn_uses_tf32()
    assert cudnn_rnn_uses_tf32()


@needs_new_api
def test_tf32_switch_is_scoped_and_restored():
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with tf32_matmuls(True):
        assert matmul.fp32_precision == "tf32"
        with tf32_matmuls(False):
            assert matmul.fp32_precision == "tf32"
    assert matmul.fp32_precision == before
    with pytest.raises(ValueError):
        with tf32_matmuls(True):
            raise ValueError("inside")
    assert matmul.fp32_precision == before
    assert matmul.allow_tf32 is False  # the legacy reading still works after the restore


@needs_new_api
def test_projection_runs_forward_and_backward_as_tf32():
    flat = torch.randn(6, 3, requires_grad=True)  # (T*B, F)
    w = torch.randn(8, 3, requires_grad=True)  # (D*G*H, F), as torch.nn stores W_ih
    bias = torch.randn(8, requires_grad=True)
    with MatmulSettings() as mode:
        out = Projection.apply(flat, w, bias)
        out.square().sum().backward()
    assert mode.seen and set(mode.seen) == {"tf32"}, mode.seen
    assert len(mode.seen) == 3  # forward, d flat, d w
    with MatmulSettings() as mode:
        torch.nn.functional.linear(flat, w, bias).sum().backward()
    assert mode.seen and "tf32" not in mode.seen  # the switch ends with the projection
    torch.testing.assert_close(out, torch.nn.functional.linear(flat, w, bias))


@pytest.mark.parametrize("with_bias", [False, True])
def test_projection_gradients(with_bias):
    torch.manual_seed(0)
    flat = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True) if with_bias else None
    assert torch.autograd.gradcheck(lambda f, w, *b: Projection.apply(f, w, b[0] if b else None),
                                    (flat, w) + ((bias,) if with_bias else ()))


def test_project_on_cpu_is_the_plain_product():
    flat, w, bias = torch.randn(5, 3), torch.randn(4, 3), torch.randn(4)
    assert torch.equal(project(flat, w, bias), torch.nn.functional.linear(flat, w, bias))
    assert torch.equal(project(flat, w, None), flat @ w.t())


def test_weight_product_multiplies_bfloat16_operands_for_bfloat16_layers():
    torch.manual_seed(0)
    a, b = torch.randn(2, 4, 64), torch.randn(2, 64, 5)
    got = weight_product(a, b, torch.bfloat16, "tf32")
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, torch.bmm(a.bfloat16(), b.bfloat16()))
    assert torch.equal(weight_product(a, b, torch.float32, "tf32"), torch.bmm(a, b))  # CPU: no TF32
