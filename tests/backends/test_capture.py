"""Graph capture and transforms on the layers: torch.compile, torch.jit, torch.func (the rest of the routes out of eager: test_deploy.py)."""

import pytest
import torch

import birnn


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
    birnn::recurrent_layer node (tests/backends/test_deploy.py); the gradients equal eager's."""
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
