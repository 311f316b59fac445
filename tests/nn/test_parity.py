"""birnn layers against torch.nn: same constructor, same state_dict, same numbers (outputs,
states, gradients of the input and of every parameter), on every path."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import birnn
from conftest import MODES, flat_hidden, make_pair, tol

GRID = [
    (mode, layers, bidi, bf, bias, proj, dtype)
    for mode, layers, bidi, bf, bias, proj, dtype in itertools.product(
        MODES, [1, 2, 3], [False, True], [False, True], [True, False], [0, 2], [torch.float32, torch.float64])
    if proj == 0 or mode == "LSTM"
]


def _loss(result, weights):
    output, hidden = result
    return sum((t * w).sum() for t, w in zip([output, *flat_hidden(hidden)], weights))


def _compare(ref, ours, x, hx, dtype, path):
    ours.path = path
    x_ref = x.clone().requires_grad_()
    x_ours = x.clone().requires_grad_()
    r = ref(x_ref, hx)
    o = ours(x_ours, hx)
    assert o.path == path
    torch.testing.assert_close(o.output, r[0], **tol(dtype))
    for a, b in zip(flat_hidden(o[1]), flat_hidden(r[1])):
        torch.testing.assert_close(a, b, **tol(dtype))
    gen = torch.Generator().manual_seed(7)
    weights = [torch.randn(t.shape, generator=gen, dtype=dtype) for t in [r[0], *flat_hidden(r[1])]]
    _loss(r, weights).backward()
    _loss(o, weights).backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **tol(dtype))
    for (name, p_ref), (_, p_ours) in zip(ref.named_parameters(), ours.named_parameters()):
        torch.testing.assert_close(p_ours.grad, p_ref.grad, **tol(dtype), msg=lambda m: f"{name}: {m}")
    ref.zero_grad()
    ours.zero_grad()


@pytest.mark.parametrize("mode,layers,bidi,bf,bias,proj,dtype", GRID)
def test_parity_grid(mode, layers, bidi, bf, bias, proj, dtype):
    kw = dict(num_layers=layers, bidirectional=bidi, batch_first=bf, bias=bias)
    if proj:
        kw["proj_size"] = proj
    ref, ours = make_pair(mode, 4, 3, dtype=dtype, **kw)
    T, B = 5, 3
    x = torch.randn((B, T, 4) if bf else (T, B, 4), dtype=dtype)
    for path in ("torch", "reference"):
        _compare(ref, ours, x, None, dtype, path)
    # state_dict the other way: birnn -> torch.nn
    fresh = type(ref)(*([4, 3]), **{k: v for k, v in kw.items()}, dtype=dtype,
                      **({"nonlinearity": ref.nonlinearity} if isinstance(ref, torch.nn.RNN) else {}))
    fresh.load_state_dict(ours.state_dict())
    _compare(fresh, ours, x, None, dtype, "torch")


@pytest.mark.parametrize("mode", MODES)
def test_parity_with_initial_state_and_unbatched(mode):
    ref, ours = make_pair(mode, 4, 3, num_layers=2, bidirectional=True)
    x = torch.randn(6, 2, 4, dtype=torch.float64)
    h = torch.randn(4, 2, 3, dtype=torch.float64)
    hx = (h, torch.randn(4, 2, 3, dtype=torch.float64)) if mode == "LSTM" else h
    for path in ("torch", "reference"):
        _compare(ref, ours, x, hx, torch.float64, path)
    # unbatched (T, I) input and (L*D, H) states
    hx1 = tuple(t[:, 0] for t in hx) if mode == "LSTM" else hx[:, 0]
    r, o = ref(x[:, 0], hx1), ours(x[:, 0], hx1)
    torch.testing.assert_close(o.output, r[0])
    for a, b in zip(flat_hidden(o[1]), flat_hidden(r[1])):
        torch.testing.assert_close(a, b)


def test_same_seed_same_weights_as_torch():
    torch.manual_seed(3)
    ref = torch.nn.LSTM(4, 3, 2, bidirectional=True, proj_size=2)
    torch.manual_seed(3)
    ours = birnn.LSTM(4, 3, 2, bidirectional=True, proj_size=2)
    assert list(ref.state_dict()) == list(ours.state_dict())
    for a, b in zip(ref.state_dict().values(), ours.state_dict().values()):
        assert torch.equal(a, b)


def test_equal_lengths_are_bitwise_torch():
    ref, ours = make_pair("LSTM", 4, 3, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    r = ref(x)
    o = ours(x, lengths=torch.tensor([5, 5, 5]))
    assert o.path == "torch"
    assert torch.equal(o.output, r[0]) and torch.equal(o.h_n, r[1][0]) and torch.equal(o.c_n, r[1][1])


def test_dropout_training_matches_torch_semantics():
    # dropout between layers only: with one layer nothing is dropped, eval is deterministic
    ref, ours = make_pair("GRU", 4, 3, num_layers=1, bidirectional=True, dtype=torch.float64)
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    with pytest.warns(UserWarning):
        one = birnn.GRU(4, 3, dropout=0.5, dtype=torch.float64)
    one.load_state_dict(make_pair("GRU", 4, 3, dtype=torch.float64)[0].state_dict())
    one.train()
    torch.testing.assert_close(one(x).output, make_pair("GRU", 4, 3, dtype=torch.float64)[0](x)[0])
    two = birnn.LSTM(4, 3, num_layers=2, dropout=0.5, dtype=torch.float64)
    two.train()
    for path in ("torch", "reference"):
        two.path = path
        a, b = two(x).output, two(x).output
        assert not torch.equal(a, b)  # training: a fresh dropout mask per call
    two.eval()
    for path in ("torch", "reference"):
        two.path = path
        torch.testing.assert_close(two(x).output, two(x).output)


@settings(max_examples=25, deadline=None)
@given(
    mode=st.sampled_from(MODES),
    layers=st.integers(1, 3),
    bidi=st.booleans(),
    bf=st.booleans(),
    hidden=st.integers(1, 5),
    inp=st.integers(1, 5),
    T=st.integers(1, 6),
    B=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_parity_property(mode, layers, bidi, bf, hidden, inp, T, B, seed):
    ref, ours = make_pair(mode, inp, hidden, num_layers=layers, bidirectional=bidi, batch_first=bf, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((B, T, inp) if bf else (T, B, inp), generator=gen, dtype=torch.float64)
    for path in ("torch", "reference"):
        _compare(ref, ours, x, None, torch.float64, path)
