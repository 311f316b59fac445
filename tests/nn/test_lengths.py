"""Variable lengths: every path equals running each sequence alone, and torch.nn on packed input."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import birnn
from conftest import MODES, PATHS, flat_hidden, make_pair

F64 = torch.float64


def _hx(mode, rows, B, P, H, gen):
    h = torch.randn(rows, B, P, generator=gen, dtype=F64)
    return (h, torch.randn(rows, B, H, generator=gen, dtype=F64)) if mode == "LSTM" else h


def _select(hx, i):
    return tuple(t[:, i:i + 1] for t in hx) if isinstance(hx, tuple) else hx[:, i:i + 1]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidi", [False, True])
@pytest.mark.parametrize("proj", [0, 2])
def test_each_sequence_alone(path, mode, bidi, proj):
    if proj and mode != "LSTM":
        pytest.skip("proj_size is LSTM-only")
    kw = dict(num_layers=2, bidirectional=bidi, proj_size=proj) if proj else dict(num_layers=2, bidirectional=bidi)
    ref, ours = make_pair(mode, 4, 3, path=path, **kw)
    gen = torch.Generator().manual_seed(0)
    T, B = 7, 5
    lengths = torch.tensor([7, 3, 1, 5, 3])
    x = torch.randn(T, B, 4, generator=gen, dtype=F64)
    x[torch.arange(T)[:, None] >= lengths[None]] = 1e3  # garbage padding must not matter
    hx = _hx(mode, 2 * (2 if bidi else 1), B, proj or 3, 3, gen)
    res = ours(x, hx, lengths=lengths)
    assert res.path == (path if path != "torch" else "torch-chunked")
    for b in range(B):
        n = int(lengths[b])
        out, hidden = ref(x[:n, b:b + 1], _select(hx, b))
        torch.testing.assert_close(res.output[:n, b:b + 1], out)
        assert torch.all(res.output[n:, b] == 0)
        for mine, theirs in zip(flat_hidden(res[1]), flat_hidden(hidden)):
            torch.testing.assert_close(mine[:, b:b + 1], theirs)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
def test_gradients_equal_the_reference_path(path, mode):
    ref, ours = make_pair(mode, 4, 3, num_layers=2, bidirectional=True)
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([6, 2, 4, 1])
    x = torch.randn(6, 4, 4, generator=gen, dtype=F64)
    w = torch.randn(6, 4, 6, generator=gen, dtype=F64)

    def grads(p):
        ours.path = p
        ours.zero_grad()
        xx = x.clone().requires_grad_()
        r = ours(xx, lengths=lengths)
        loss = (r.output * w).sum() + sum((t ** 2).sum() for t in flat_hidden(r[1]))
        loss.backward()
        return [xx.grad] + [q.grad.clone() for q in ours.parameters()]

    for a, b in zip(grads(path), grads("reference")):
        torch.testing.assert_close(a, b)
    g = grads(path)[0]
    assert torch.all(g[torch.arange(6)[:, None] >= lengths[None]] == 0), "padded inputs must get zero gradient"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_equals_torch_on_packed_sequences(mode, batch_first):
    ref, ours = make_pair(mode, 4, 3, num_layers=2, bidirectional=True, batch_first=batch_first)
    lengths = torch.tensor([3, 6, 1, 4])
    x = torch.randn((4, 6, 4) if batch_first else (6, 4, 4), dtype=F64)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    r_out, r_hidden = ref(packed)
    padded_ref, _ = pad_packed_sequence(r_out, batch_first=batch_first)
    res = ours(x, lengths=lengths)
    torch.testing.assert_close(res.output, padded_ref)
    for a, b in zip(flat_hidden(res[1]), flat_hidden(r_hidden)):
        torch.testing.assert_close(a, b)
    # a PackedSequence in gives a PackedSequence out, laid out as torch.nn's
    p_out, p_hidden = ours(packed)
    assert isinstance(p_out, torch.nn.utils.rnn.PackedSequence)
    torch.testing.assert_close(p_out.data, r_out.data)
    assert torch.equal(p_out.batch_sizes, r_out.batch_sizes)
    assert torch.equal(p_out.sorted_indices, r_out.sorted_indices)
    for a, b in zip(flat_hidden(p_hidden), flat_hidden(r_hidden)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("path", PATHS)
def test_seed_scenario_gru_lengths_7_5_4_3(path):
    H = 3
    gru = birnn.GRU(5, H, num_layers=2, bidirectional=True, path=path)
    lengths = torch.tensor([7, 5, 4, 3])
    output, h_n = gru(torch.randn(7, 4, 5), lengths=lengths)
    assert output.shape == (7, 4, 2 * H) and h_n.shape == (4, 4, H)
    assert torch.equal(output[-1, 0, :H], h_n[2, 0])  # full sequence: last step = forward final
    for b in range(4):
        assert torch.equal(output[0, b, H:], h_n[3, b])  # backward final state sits at step 0
        assert torch.equal(output[lengths[b] - 1, b, :H], h_n[2, b])  # forward final at the last real step
        assert torch.all(output[lengths[b]:, b] == 0)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
def test_zero_length_sequence(path, mode):
    _, ours = make_pair(mode, 4, 3, num_layers=2, bidirectional=True, path=path)
    gen = torch.Generator().manual_seed(2)
    hx = _hx(mode, 4, 3, 3, 3, gen)
    x = torch.randn(5, 3, 4, dtype=F64, requires_grad=True)
    res = ours(x, hx, lengths=torch.tensor([5, 0, 2]))
    assert torch.all(res.output[:, 1] == 0)
    for state, init in zip(flat_hidden(res[1]), flat_hidden(hx)):
        assert torch.equal(state[:, 1], init[:, 1])
    res.output.sum().backward()
    assert torch.all(x.grad[:, 1] == 0)
    res = ours(x, hx, lengths=torch.tensor([0, 0, 0]))
    assert torch.all(res.output == 0)
    assert torch.equal(flat_hidden(res[1])[0], flat_hidden(hx)[0])


@pytest.mark.parametrize("path", PATHS)
def test_nan_in_padding_does_not_leak(path):
    _, ours = make_pair("LSTM", 4, 3, num_layers=2, bidirectional=True, path=path)
    x = torch.randn(5, 2, 4, dtype=F64)
    x[3:, 1] = float("nan")
    res = ours(x, lengths=torch.tensor([5, 3]))
    assert torch.isfinite(res.output).all() and torch.isfinite(res.h_n).all() and torch.isfinite(res.c_n).all()


@pytest.mark.parametrize("path", PATHS)
def test_nan_in_real_steps_propagates(path):
    _, ours = make_pair("GRU", 4, 3, bidirectional=True, path=path)
    x = torch.randn(5, 2, 4, dtype=F64)
    x[1, 0] = float("nan")
    res = ours(x, lengths=torch.tensor([5, 3]))
    assert torch.isnan(res.output[:, 0]).any() and torch.isfinite(res.output[:, 1]).all()


def test_mask_equals_lengths_in_both_layouts():
    for batch_first in (False, True):
        _, ours = make_pair("GRU", 4, 3, bidirectional=True, batch_first=batch_first)
        lengths = torch.tensor([4, 2, 3])
        x = torch.randn((3, 4, 4) if batch_first else (4, 3, 4), dtype=F64)
        mask = birnn.mask_from_lengths(lengths, 4, batch_first=batch_first)
        a, b = ours(x, lengths=lengths), ours(x, mask=mask)
        assert torch.equal(a.output, b.output) and torch.equal(a.h_n, b.h_n)


def test_lengths_as_list_and_int32():
    _, ours = make_pair("LSTM", 4, 3, bidirectional=True)
    x = torch.randn(4, 3, 4, dtype=F64)
    a = ours(x, lengths=[4, 2, 3])
    b = ours(x, lengths=torch.tensor([4, 2, 3], dtype=torch.int32))
    assert torch.equal(a.output, b.output)
    assert a.lengths.dtype == torch.int64


def test_unsorted_lengths_need_no_sorting():
    _, ours = make_pair("LSTM", 4, 3, bidirectional=True)
    x = torch.randn(6, 4, 4, dtype=F64)
    lengths = torch.tensor([2, 6, 3, 5])
    perm = torch.tensor([1, 3, 2, 0])
    a = ours(x, lengths=lengths)
    b = ours(x[:, perm], lengths=lengths[perm])
    torch.testing.assert_close(a.output[:, perm], b.output)
    torch.testing.assert_close(a.h_n[:, perm], b.h_n)
