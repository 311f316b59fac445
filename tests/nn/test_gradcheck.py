"""float64 gradcheck of every path, each cell, bidirectional, two layers, with lengths."""

import pytest
import torch
from torch.autograd import gradcheck

from conftest import MODES, PATHS, flat_hidden, make_pair


@pytest.mark.slow  # float64 gradcheck over every path: ~1 min of CPU
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_with_lengths(path, mode):
    kw = dict(num_layers=2, bidirectional=True)
    P = 3
    if mode == "LSTM":
        kw["proj_size"] = P = 2
    _, layer = make_pair(mode, 3, 3, path=path, **kw)
    names = [n for n, _ in layer.named_parameters()]
    lengths = torch.tensor([4, 2, 3])
    x = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 3, P, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)

    def f(x, h0, c0, *params):
        hx = (h0, c0) if mode == "LSTM" else h0
        # the layer runs with its parameters replaced by the tensors gradcheck perturbs
        res = torch.func.functional_call(layer, dict(zip(names, params)), (x, hx), {"lengths": lengths})
        assert res.path == (path if path != "torch" else "torch-chunked")
        return (res.output, *flat_hidden(res[1]))

    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert gradcheck(f, (x, h0, c0, *params), eps=1e-6, atol=1e-6)
