"""Bidirectional(wrapper) and Recurrent(cell): Keras semantics, equal to the built-in layers."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import birnn
from conftest import MODES, flat_hidden, make_pair

F64 = torch.float64


def _wrapped_twin(mode, batch_first=False):
    """A 1-layer bidirectional birnn layer and the same weights in a Bidirectional wrapper."""
    _, bi = make_pair(mode, 4, 3, bidirectional=True, batch_first=batch_first)
    _, fwd = make_pair(mode, 4, 3, batch_first=batch_first)
    _, bwd = make_pair(mode, 4, 3, batch_first=batch_first)
    sd = bi.state_dict()
    fwd.load_state_dict({k: v for k, v in sd.items() if not k.endswith("_reverse")})
    bwd.load_state_dict({k[: -len("_reverse")]: v for k, v in sd.items() if k.endswith("_reverse")})
    return bi, birnn.Bidirectional(fwd, backward_layer=bwd)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_wrapper_equals_bidirectional_layer(mode, batch_first):
    bi, wrapped = _wrapped_twin(mode, batch_first)
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn((3, 6, 4) if batch_first else (6, 3, 4), dtype=F64)
    a, b = bi(x, lengths=lengths), wrapped(x, lengths=lengths)
    torch.testing.assert_close(b.output, a.output)
    for s, t in zip(flat_hidden(b[1]), flat_hidden(a[1])):
        torch.testing.assert_close(s, t)
    torch.testing.assert_close(b.pool("final"), a.pool("final"))


def test_wrapper_merge_modes_and_hx_split():
    bi, wrapped = _wrapped_twin("LSTM")
    x = torch.randn(5, 2, 4, dtype=F64)
    hx = (torch.randn(2, 2, 3, dtype=F64), torch.randn(2, 2, 3, dtype=F64))
    a = bi(x, hx)
    for mode in ("sum", "mul", "ave"):
        wrapped.merge_mode = mode
        f, b = a.output[..., :3], a.output[..., 3:]
        expected = {"sum": f + b, "mul": f * b, "ave": (f + b) / 2}[mode]
        torch.testing.assert_close(wrapped(x, hx).output, expected)
    wrapped.merge_mode = None
    f, b = wrapped(x, hx).output
    torch.testing.assert_close(torch.cat([f, b], -1), a.output)


def test_wrapper_packed_input():
    bi, wrapped = _wrapped_twin("GRU")
    x = torch.randn(5, 3, 4, dtype=F64)
    packed = pack_padded_sequence(x, torch.tensor([2, 5, 3]), enforce_sorted=False)
    out, h = wrapped(packed)
    ref_out, ref_h = bi(packed)
    torch.testing.assert_close(pad_packed_sequence(out)[0], pad_packed_sequence(ref_out)[0])
    torch.testing.assert_close(h, ref_h)


def test_wrapper_default_backward_layer_is_a_fresh_copy():
    fwd = birnn.LSTM(4, 3, num_layers=2)
    wrapped = birnn.Bidirectional(fwd)
    assert wrapped.backward_layer is not fwd
    assert not torch.equal(wrapped.backward_layer.weight_ih_l0, fwd.weight_ih_l0)
    out, (h, c) = wrapped(torch.randn(5, 2, 4), lengths=[5, 3])
    assert out.shape == (5, 2, 6) and h.shape == (4, 2, 3) and c.shape == (4, 2, 3)


@pytest.mark.parametrize("cell_type", ["RNN", "GRU", "LSTM"])
def test_recurrent_driver_with_torch_cells(cell_type):
    cell = getattr(torch.nn, cell_type + "Cell")(4, 3, dtype=F64)
    layer = getattr(birnn, cell_type)(4, 3, dtype=F64)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    rec = birnn.Recurrent(cell)
    lengths = torch.tensor([5, 1, 3])
    x = torch.randn(5, 3, 4, dtype=F64)
    a, b = rec(x, lengths=lengths), layer(x, lengths=lengths)
    torch.testing.assert_close(a.output, b.output)
    for s, t in zip(flat_hidden(a[1]), flat_hidden(b[1])):
        torch.testing.assert_close(s, t)


class MinimalCell(torch.nn.Module):
    """The smallest step cell: an exponential moving average (documented protocol)."""

    input_size = 2

    def forward(self, x_t, state):
        new = 0.5 * state + 0.5 * x_t
        return new, new

    def initial_state(self, batch_size, *, device, dtype):
        return torch.zeros(batch_size, 2, device=device, dtype=dtype)


def test_user_cell_bidirectional_by_hand():
    bi = birnn.Bidirectional(birnn.Recurrent(MinimalCell()), merge_mode="concat")
    x = torch.tensor([[[4.0, 8.0]], [[0.0, 0.0]], [[100.0, 100.0]]])  # (T=3, B=1, 2), length 2
    res = bi(x, lengths=torch.tensor([2]))
    # forward: 2, 1 ; backward over [0, 4]: 0, 2 (reversed back: step0=2, step1=0)
    assert res.output[:, 0].tolist() == [[2, 4, 2, 4], [1, 2, 0, 0], [0, 0, 0, 0]]
    assert res.h_n[:, 0].tolist() == [[1, 2], [2, 4]]
    with pytest.raises(TypeError, match="cell must have an input_size attribute"):
        birnn.Recurrent(torch.nn.Identity())


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cls", [torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU])
def test_wrapper_runs_torch_nn_layers(cls, batch_first):
    """Bidirectional(torch.nn.LSTM(...)) runs, with and without lengths (zero too), equal to the
    wrapper around birnn twins with the same weights, and trains the torch.nn layer's parameters."""
    torch.manual_seed(0)
    inner = cls(3, 4, num_layers=2, batch_first=batch_first, dtype=torch.float64)
    bi = birnn.Bidirectional(inner, merge_mode="ave")
    twin = getattr(birnn, cls.__name__)
    ref = birnn.Bidirectional(twin(3, 4, num_layers=2, batch_first=batch_first, dtype=torch.float64),
                              merge_mode="ave",
                              backward_layer=twin(3, 4, num_layers=2, batch_first=batch_first, dtype=torch.float64))
    ref.forward_layer.load_state_dict(bi.forward_layer.state_dict())
    ref.backward_layer.load_state_dict(bi.backward_layer.state_dict())
    x = torch.randn((3, 5, 3) if batch_first else (5, 3, 3), dtype=torch.float64)
    for lengths in (None, torch.tensor([5, 0, 2])):
        a, b = bi(x, lengths=lengths), ref(x, lengths=lengths)
        torch.testing.assert_close(a.output, b.output)
        torch.testing.assert_close(a.h_n, b.h_n)
        if cls is torch.nn.LSTM:
            torch.testing.assert_close(a.c_n, b.c_n)
    a.output.sum().backward()
    assert all(p.grad is not None for p in inner.parameters())


@pytest.mark.parametrize("batch_first", [False, True])
def test_wrapper_takes_every_input_form_the_layers_take(batch_first):
    """The wrapper reads its input through the layers' own entrance (prepare_call): left padding,
    an unbatched (T, I) sequence, rows with cu_seqlens and a jagged nested tensor give what the
    padded batch gives, in the caller's form; malformed calls fail with the layers' messages."""
    bi, wrapped = _wrapped_twin("LSTM", batch_first)
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn((3, 6, 4) if batch_first else (6, 3, 4), dtype=F64)
    want = bi(x, lengths=lengths)
    got = wrapped(x, lengths=lengths)
    torch.testing.assert_close(got.output, want.output)
    t = 1 if batch_first else 0
    steps = x.transpose(0, 1) if batch_first else x  # (T, B, I)
    # left padding: the real steps last, and the output on the same side
    left = birnn.batch.align(steps, lengths, to="left")
    left_out = wrapped(left.transpose(0, 1) if batch_first else left, lengths=lengths, padding="left")
    out = left_out.output.transpose(0, 1) if batch_first else left_out.output
    assert torch.all(out[: 6 - 2, 1] == 0)  # row 1's padding comes first
    back = birnn.batch.align(out, lengths, to="right")
    torch.testing.assert_close(back, want.time_major)
    torch.testing.assert_close(left_out.h_n, want.h_n)
    # one unbatched sequence: (T, I) in, (T, 2H) out, h_n (2L, H)
    one = wrapped(steps[:, 0])
    full = bi(x)
    torch.testing.assert_close(one.output, full.time_major[:, 0])
    torch.testing.assert_close(one.h_n, full.h_n[:, 0])
    # cu_seqlens and jagged nested: the sequences' rows one after another
    rows = torch.cat([steps[:n, b] for b, n in enumerate(lengths.tolist())])
    offsets = torch.tensor([0, 6, 8, 12])
    flat = wrapped(rows, cu_seqlens=offsets)
    torch.testing.assert_close(flat.output, torch.cat([want.time_major[:n, b] for b, n in enumerate(lengths.tolist())]))
    nested = wrapped(torch.nested.nested_tensor_from_jagged(rows, offsets))
    torch.testing.assert_close(nested.output.values(), flat.output)
    assert want.output.shape[t] == 6
    with pytest.raises(ValueError, match="input must have input_size=4 features"):
        wrapped(torch.randn(6, 3, 5, dtype=F64))
    with pytest.raises(ValueError, match="give either lengths or mask, not both"):
        wrapped(x, lengths=lengths, mask=torch.ones(x.shape[:2], dtype=torch.bool))
    with pytest.raises(ValueError, match=r"hx must have shape \(2\*L, ·\)"):
        wrapped(steps[:, 0], torch.zeros(2, 3, 3, dtype=F64))
