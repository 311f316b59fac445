"""Merge modes, pooling, views and bridge on tiny cases computed by hand.

The hand-computable layer: a ReLU RNN with I = H = 1, W_ih = W_hh = 1 and no bias, so for
positive inputs the forward direction is a running sum and the backward one a running sum
from the last real step. For x = [1, 2, 3]: forward [1, 3, 6], backward [6, 5, 3].
"""

import pytest
import torch

import birnn
from conftest import PATHS


def summing_rnn(path="auto", **kw):
    rnn = birnn.RNN(1, 1, nonlinearity="relu", bias=False, bidirectional=True, dtype=torch.float64, path=path, **kw)
    with torch.no_grad():
        for p in rnn.parameters():
            p.fill_(1.0)
    return rnn


def col(*values):
    return torch.tensor(values, dtype=torch.float64).view(-1, 1, 1)  # (T, B=1, I=1)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "merge_mode,expected",
    [
        ("concat", [[1, 6], [3, 5], [6, 3]]),
        ("sum", [[7], [8], [9]]),
        ("mul", [[6], [15], [18]]),
        ("ave", [[3.5], [4], [4.5]]),
    ],
)
def test_merge_modes_by_hand(path, merge_mode, expected):
    out = summing_rnn(path, merge_mode=merge_mode)(col(1, 2, 3)).output
    assert out[:, 0].tolist() == expected


def test_merge_mode_none_gives_the_pair():
    (fwd, bwd), h_n = summing_rnn(merge_mode=None)(col(1, 2, 3))
    assert fwd[:, 0, 0].tolist() == [1, 3, 6] and bwd[:, 0, 0].tolist() == [6, 5, 3]
    assert h_n[:, 0, 0].tolist() == [6, 6]


@pytest.mark.parametrize("path", PATHS)
def test_lengths_and_pooling_by_hand(path):
    # batch of two: [1, 2, pad=99] with length 2, and [1, 2, 3] full
    x = torch.tensor([[1.0, 1.0], [2.0, 2.0], [99.0, 3.0]], dtype=torch.float64).unsqueeze(-1)
    res = summing_rnn(path)(x, lengths=torch.tensor([2, 3]))
    assert res.output[:, 0].tolist() == [[1, 3], [3, 2], [0, 0]]
    assert res.output[:, 1].tolist() == [[1, 6], [3, 5], [6, 3]]
    assert res.h_n[:, :, 0].tolist() == [[3, 6], [3, 6]]  # forward at last real step, backward at step 0
    assert res.pool("final").tolist() == [[3, 3], [6, 6]]
    assert res.pool("last").tolist() == [[3, 2], [6, 3]]
    assert res.pool("first").tolist() == [[1, 3], [1, 6]]
    assert res.pool("mean").tolist() == [[2, 2.5], [10 / 3, 14 / 3]]
    assert res.pool("max").tolist() == [[3, 3], [6, 6]]


def test_pooling_follows_merge_mode():
    x = col(1, 2, 3)
    res = summing_rnn(merge_mode="sum")(x)
    assert res.pool("final").tolist() == [[12]]  # 6 + 6
    assert res.pool("max").tolist() == [[9]]  # max over the merged output [7, 8, 9]
    fwd, bwd = summing_rnn(merge_mode=None)(x).pool("mean")
    assert fwd.tolist() == [[10 / 3]] and bwd.tolist() == [[14 / 3]]


def test_pool_of_empty_sequences_is_zero():
    x = torch.ones(3, 2, 1, dtype=torch.float64)
    res = summing_rnn()(x, lengths=torch.tensor([0, 3]))
    for kind in ("final", "last", "first", "mean", "max"):
        assert torch.all(res.pool(kind)[0] == 0), kind
    with pytest.raises(ValueError, match="kind must be one of"):
        res.pool("median")


def test_final_pool_of_an_empty_sequence_is_h0():
    """pool("final") reads h_n, which for an empty sequence is h_0 (as the docstring and
    docs/semantics.md say); the other kinds have no output step and give zeros."""
    layer = birnn.GRU(2, 3, bidirectional=True)
    h0 = torch.randn(2, 2, 3)
    res = layer(torch.randn(4, 2, 2), h0, lengths=torch.tensor([0, 4]))
    assert torch.equal(res.pool("final")[0], torch.cat([h0[0, 0], h0[1, 0]]))
    for kind in ("last", "first", "mean", "max"):
        assert torch.all(res.pool(kind)[0] == 0), kind
    learned = birnn.GRU(2, 3, initial_state="learned")
    with torch.no_grad():
        learned.initial_h.fill_(0.5)
    assert torch.all(learned(torch.randn(4, 1, 2), lengths=torch.tensor([0])).pool("final") == 0.5)


def test_views_name_what_is_what():
    lstm = birnn.LSTM(4, 3, num_layers=2, bidirectional=True, batch_first=True)
    res = lstm(torch.randn(2, 5, 4))
    output, (h_n, c_n) = res
    assert res.per_direction().shape == (2, 5, 2, 3)  # (B, T, D, H)
    assert torch.equal(res.per_direction()[:, :, 1], output[:, :, 3:])
    assert res.per_layer().shape == (2, 2, 2, 3)  # (L, D, B, H)
    assert torch.equal(res.per_layer()[1, 0], h_n[2]) and torch.equal(res.per_layer("c")[0, 1], c_n[1])
    assert res.mask().shape == (2, 5) and bool(res.mask().all())
    assert res.hidden is res[1] and res.lengths is None
    assert "RecurrentOutput(output=(2, 5, 6)" in repr(res)
    with pytest.raises(ValueError, match="no cell state"):
        birnn.GRU(4, 3)(torch.randn(5, 2, 4)).per_layer("c")


def test_final_pool_is_forward_last_and_backward_first():
    gru = birnn.GRU(4, 3, num_layers=2, bidirectional=True)
    lengths = torch.tensor([5, 2, 4])
    res = gru(torch.randn(5, 3, 4), lengths=lengths)
    final = res.pool("final")
    for b in range(3):
        assert torch.equal(final[b, :3], res.output[lengths[b] - 1, b, :3])
        assert torch.equal(final[b, 3:], res.output[0, b, 3:])


def test_bridge_shapes_and_values():
    h_n = torch.arange(24.0).view(4, 2, 3)  # L=2, D=2, B=2, H=3
    c_n = -h_n
    h, c = birnn.bridge((h_n, c_n), num_layers=2, mode="concat")
    assert h.shape == (2, 2, 6) and torch.equal(h[1, 0], torch.cat([h_n[2, 0], h_n[3, 0]]))
    assert torch.equal(c, -h)
    assert torch.equal(birnn.bridge(h_n, 2, "sum"), h_n[0::2] + h_n[1::2])
    assert torch.equal(birnn.bridge(h_n, 2, "ave"), (h_n[0::2] + h_n[1::2]) / 2)
    assert torch.equal(birnn.bridge(h_n, 2, "forward"), h_n[0::2])
    assert torch.equal(birnn.bridge(h_n, 2, "backward"), h_n[1::2])
    assert torch.equal(birnn.bridge(h_n, 4, "sum"), h_n)  # unidirectional 4-layer: unchanged
    with pytest.raises(ValueError, match="not num_layers=3 times 1 or 2 directions"):
        birnn.bridge(h_n, 3)
    with pytest.raises(ValueError, match="mode must be one of"):
        birnn.bridge(h_n, 2, "max")


def test_bridge_initialises_a_decoder():
    enc = birnn.LSTM(4, 3, num_layers=2, bidirectional=True)
    dec = birnn.LSTM(5, 6, num_layers=2)
    _, state = enc(torch.randn(7, 2, 4))
    out, (h, c) = dec(torch.randn(3, 2, 5), birnn.bridge(state, num_layers=2))
    assert out.shape == (3, 2, 6) and h.shape == (2, 2, 6)
