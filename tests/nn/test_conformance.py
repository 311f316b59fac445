"""Conformance: suites birnn did not write, run against birnn's layers.

1. PyTorch's own ``module_db`` (torch/testing/_internal/common_modules.py): every RNN/LSTM/GRU
   input, in training and eval mode, float64 — outputs, states and every gradient must equal
   torch.nn's with the same constructor arguments (and, from the same seed, the same initial
   weights); every error input must raise the error class torch.nn raises, naming the argument.
2. The generic module checks of PyTorch's test_modules.py, written here for birnn: factory
   kwargs, repr, pickling, state_dict round trips, non-contiguous inputs, train/eval, empty
   batches, gradcheck and gradgradcheck.
3. The module-level RNN tests of PyTorch's test/test_nn.py, ported (dropout, dropout state,
   changing dropout, argument checks, initial states, variable sequences, weight norm,
   retained graphs, double backward).
4. Keras' Bidirectional semantics with golden numbers computed by hand (Keras' tests use
   ``kernel_initializer="ones"`` the same way): merge modes, states, masks.

The deliberate differences from torch.nn are listed, with their reasons, in docs/conformance.md;
:data:`DIFFERENCES` below checks that each of them is real and no other.
"""

import copy
import io
import math
import pathlib
import re

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, PackedSequence

import birnn

common_modules = pytest.importorskip("torch.testing._internal.common_modules",
                                     reason="PyTorch's module_db needs the expecttest package (a test dependency)")

TWIN = {nn.RNN: birnn.RNN, nn.LSTM: birnn.LSTM, nn.GRU: birnn.GRU}
INFOS = [info for info in common_modules.module_db if info.module_cls in TWIN]
F64 = dict(rtol=1e-10, atol=1e-10)


def _ids(info):
    return info.name


def _clone(v):
    """A fresh leaf copy of every tensor in a nested input (PackedSequence included)."""
    if isinstance(v, PackedSequence):
        return PackedSequence(_clone(v.data), v.batch_sizes, v.sorted_indices, v.unsorted_indices)
    if isinstance(v, torch.Tensor):
        return v.detach().clone().requires_grad_(v.requires_grad)
    if isinstance(v, (tuple, list)):
        return type(v)(_clone(x) for x in v)
    return v


def _tensors(v):
    """The tensors of a nested output or input, in order (a PackedSequence counts by its data)."""
    if isinstance(v, PackedSequence):
        return [v.data]
    if isinstance(v, torch.Tensor):
        return [v]
    if isinstance(v, (tuple, list)):
        return [t for x in v for t in _tensors(x)]
    return []


def _backward(outputs, seed=7):
    g = torch.Generator().manual_seed(seed)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in _tensors(outputs))
    loss.backward()


def _pair(info, args, kwargs, dtype=torch.float64):
    torch.manual_seed(0)
    ref = info.module_cls(*args, **kwargs).to(dtype)
    torch.manual_seed(0)
    ours = TWIN[info.module_cls](*args, **kwargs).to(dtype)
    return ref, ours


# -- 1. module_db ------------------------------------------------------------------------------
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("info", INFOS, ids=_ids)
def test_module_db_inputs_equal_torch_nn(info, training):
    inputs = info.module_inputs_func(info, device="cpu", dtype=torch.float64, requires_grad=True, training=training)
    assert inputs, info.name
    for k, mi in enumerate(inputs):
        args, kwargs = mi.constructor_input.args, mi.constructor_input.kwargs
        ref, ours = _pair(info, args, kwargs)
        where = f"{info.name} case {k} {kwargs}"
        for (name, a), b in zip(ref.state_dict().items(), ours.state_dict().values()):
            assert torch.equal(a, b), f"{where}: initial {name} differs from torch.nn's draw"
        ref.train(training)
        ours.train(training)
        ref_in, our_in = _clone(mi.forward_input.args), _clone(mi.forward_input.args)
        ref_out = ref(*ref_in, **mi.forward_input.kwargs)
        our_out = ours(*our_in, **mi.forward_input.kwargs)
        ref_t, our_t = _tensors(ref_out), _tensors(our_out)
        assert len(ref_t) == len(our_t), where
        for a, b in zip(ref_t, our_t):
            assert a.shape == b.shape, where
            torch.testing.assert_close(b, a, **F64, msg=lambda m: f"{where}: {m}")
        _backward(ref_out)
        _backward(our_out)
        for a, b in zip(_tensors(ref_in), _tensors(our_in)):
            torch.testing.assert_close(b.grad, a.grad, **F64, msg=lambda m: f"{where}, input gradient: {m}")
        for (name, a), b in zip(ref.named_parameters(), ours.parameters()):
            torch.testing.assert_close(b.grad, a.grad, **F64, msg=lambda m: f"{where}, {name}.grad: {m}")


def _argument_of(regex: str) -> str:
    """The argument a torch.nn error message is about (its first word, or 'dtype')."""
    return "dtype" if "dtype" in regex else regex.split()[0]


@pytest.mark.parametrize("info", INFOS, ids=_ids)
def test_module_db_error_inputs_raise_torch_nn_classes(info):
    errors = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32, requires_grad=False, training=True)
    assert errors, info.name
    construction = common_modules.ModuleErrorEnum.CONSTRUCTION_ERROR
    for ei in errors:
        mi = ei.module_error_input
        args, kwargs = mi.constructor_input.args, mi.constructor_input.kwargs
        with pytest.raises(ei.error_type) as caught:
            layer = TWIN[info.module_cls](*args, **kwargs)
            if ei.error_on != construction:
                layer(*mi.forward_input.args, **mi.forward_input.kwargs)
        message = str(caught.value)
        # torch.nn's own wording, or birnn's, which names the same argument (docs/conformance.md)
        assert re.search(ei.error_regex, message) or _argument_of(ei.error_regex) in message, (ei.error_regex, message)


# -- 2. the generic module checks of test_modules.py --------------------------------------------
def _some_inputs(info, dtype=torch.float64):
    return info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True, training=True)


@pytest.mark.parametrize("info", INFOS, ids=_ids)
def test_factory_kwargs(info):
    mi = _some_inputs(info)[0]
    kwargs = mi.constructor_input.kwargs
    layer = TWIN[info.module_cls](*mi.constructor_input.args, **kwargs, dtype=torch.float64, device="meta")
    assert all(p.dtype == torch.float64 and p.device.type == "meta" for p in layer.parameters())
    assert all(b.device.type == "meta" for b in layer.buffers())


@pytest.mark.parametrize("info", INFOS, ids=_ids)
def test_repr_pickle_state_dict_deepcopy(info):
    for mi in _some_inputs(info)[:4]:
        ref, ours = _pair(info, mi.constructor_input.args, mi.constructor_input.kwargs)
        assert repr(ours) == repr(ref)
        x = _clone(mi.forward_input.args)
        expected = _tensors(ours(*x))
        buf = io.BytesIO()
        torch.save(ours, buf)
        buf.seek(0)
        for other in (torch.load(buf, weights_only=False), copy.deepcopy(ours)):
            for a, b in zip(expected, _tensors(other(*x))):
                assert torch.equal(a, b)
        ref.load_state_dict(ours.state_dict())  # and back: the same names and shapes
        ours.load_state_dict(ref.state_dict())


@pytest.mark.parametrize("info", INFOS, ids=_ids)
def test_non_contiguous_inputs(info):
    for mi in _some_inputs(info):
        x, *rest = mi.forward_input.args
        if not isinstance(x, torch.Tensor):
            continue
        _, ours = _pair(info, mi.constructor_input.args, mi.constructor_input.kwargs)
        wide = torch.stack([x.detach(), torch.full_like(x, float("nan"))], -1)  # x is every other element
        strided = wide[..., 0]
        assert not strided.is_contiguous()
        hx = [_clone(h) for h in rest]
        for a, b in zip(_tensors(ours(x.detach(), *hx)), _tensors(ours(strided, *hx))):
            assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_train_and_eval_differ_only_by_dropout(mode):
    ref, ours = getattr(nn, mode)(3, 5, num_layers=2, dropout=0.5), getattr(birnn, mode)(3, 5, num_layers=2,
                                                                                         dropout=0.5)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(6, 4, 3)
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    ours.train()
    torch.manual_seed(0)
    a = ours(x)[0]
    torch.manual_seed(1)
    assert not torch.equal(a, ours(x)[0])


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_zero_batch_like_torch_nn(mode, bidirectional):
    """module_db's zero-batch check and test_nn's zero-batch RNN cases: shapes and gradients."""
    ref = getattr(nn, mode)(3, 4, num_layers=2, bidirectional=bidirectional, dtype=torch.float64)
    ours = getattr(birnn, mode)(3, 4, num_layers=2, bidirectional=bidirectional, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    outs = []
    for layer in (ref, ours):
        x = torch.randn(5, 0, 3, dtype=torch.float64, requires_grad=True)
        out = layer(x)
        _backward(out)
        outs.append((out, x.grad, [p.grad for p in layer.parameters()]))
    (r_out, r_dx, r_dp), (o_out, o_dx, o_dp) = outs
    assert [t.shape for t in _tensors(o_out)] == [t.shape for t in _tensors(r_out)]
    assert o_dx.shape == r_dx.shape
    for a, b in zip(r_dp, o_dp):
        assert b is not None and torch.equal(a, b)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_gradcheck_and_gradgradcheck(mode):
    layer = getattr(birnn, mode)(2, 3, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    for kw in ({}, {"lengths": lengths}):
        def fn(inp):
            res = layer(inp, **kw)
            return (res.output, res.h_n) + ((res.c_n,) if res.c_n is not None else ())

        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


# -- 3. test_nn.py's module-level RNN tests, ported ---------------------------------------------
@pytest.mark.parametrize("p", [0.0, 0.276, 0.731, 1.0])
@pytest.mark.parametrize("train", [True, False])
def test_RNN_dropout(p, train):
    """Ones everywhere: each unit of layer 1 sums the 1000 units of layer 0 (10 each), some dropped."""
    torch.manual_seed(0)
    rnn = birnn.RNN(10, 1000, 2, bias=False, dropout=p, nonlinearity="relu")
    with torch.no_grad():
        for w in rnn.parameters():
            w.fill_(1)
    rnn.train(train)
    x = torch.ones(1, 1, 10)
    out, hy = rnn(x, torch.zeros(2, 1, 1000))
    assert out.shape == (1, 1, 1000) and hy.shape == (2, 1, 1000)
    assert torch.all(out == out[0, 0, 0]) and torch.equal(hy[1], out[0])
    assert torch.all(hy[0] == 10)  # dropout never touches layer 0's state
    if not train or p == 0:
        assert out[0, 0, 0].item() == 10000
    elif p == 1:
        assert out[0, 0, 0].item() == 0
    else:
        kept = out[0, 0, 0].item() * (1 - p) / 10  # units of layer 0 that were kept
        assert abs(kept - round(kept)) < 1e-2 and abs(kept / 1000 - (1 - p)) < 0.1


def test_RNN_dropout_state():
    """Dropout draws a fresh mask per call, survives pickling, and is off in eval mode."""
    for p in (0.0, 0.1234):
        for train in (True, False):
            torch.manual_seed(0)
            rnn = birnn.RNN(100, 100, 2, bias=False, dropout=p, nonlinearity="relu").train(train)
            x, hx = torch.rand(1, 1, 100), torch.rand(2, 1, 100)
            out1, hy1 = rnn(x, hx)
            out2, hy2 = rnn(x, hx)
            buf = io.BytesIO()
            torch.save(rnn, buf)
            buf.seek(0)
            rnn2 = torch.load(buf, weights_only=False)
            rnn2.flatten_parameters()
            out3, hy3 = rnn2(x, hx)
            same = p == 0 or not train
            for a, b in ((out1, out2), (out1, out3), (hy1, hy2), (hy1, hy3)):
                assert torch.equal(a, b) == same


def test_RNN_change_dropout():
    rnn = birnn.RNN(5, 6, 2, dropout=0.0)
    x = torch.randn(3, 2, 5)
    a = rnn(x)[0]
    rnn.dropout = 1.0  # set after construction, as torch.nn allows
    rnn.train()
    assert torch.all(rnn(x)[0] == rnn(x)[0]) and not torch.equal(rnn(x)[0], a)
    rnn.eval()
    torch.testing.assert_close(rnn(x)[0], a)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_rnn_args_check(mode):
    """Wrong input sizes, batch sizes, layer counts and hidden sizes raise RuntimeError, as torch.nn."""
    I, H, L, B, T = 3, 5, 2, 4, 6
    layer = getattr(birnn, mode)(I, H, L)

    def hx(rows, batch, hidden):
        h = torch.randn(rows, batch, hidden)
        return (h, torch.randn(rows, batch, H)) if mode == "LSTM" else h

    bad = [
        (torch.randn(T, B, I + 1), hx(L, B, H)),   # input size
        (torch.randn(T, B, I), hx(L, B + 1, H)),   # batch size of h_0
        (torch.randn(T, B, I), hx(L + 1, B, H)),   # layers of h_0
        (torch.randn(T, B, I), hx(L, B, H + 1)),   # hidden size of h_0
    ]
    for x, h in bad:
        with pytest.raises(RuntimeError):
            getattr(nn, mode)(I, H, L)(x, h)
        with pytest.raises(RuntimeError):
            layer(x, h)


def test_projections_lstm_args_check():
    I, H, P, L, B, T = 3, 5, 2, 2, 4, 6
    for ctor in (nn.LSTM, birnn.LSTM):
        lstm = ctor(I, H, L, proj_size=P)
        x = torch.randn(T, B, I)
        with pytest.raises(RuntimeError):
            lstm(x, (torch.randn(L, B, H), torch.randn(L, B, H)))  # h_0 must have P features
        with pytest.raises(RuntimeError):
            lstm(x, (torch.randn(L, B, P), torch.randn(L, B, P)))  # c_0 must have H features
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        birnn.LSTM(I, H, proj_size=H)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_rnn_initial_hidden_state(mode):
    layer = getattr(birnn, mode)(3, 5, 2, bidirectional=True)
    x = torch.randn(4, 2, 3)
    h = torch.zeros(4, 2, 5)
    hx = (h, h.clone()) if mode == "LSTM" else h
    a, b = layer(x), layer(x, hx)
    for s, t in zip(_tensors(a), _tensors(b)):
        assert torch.equal(s, t)


def test_projections_lstm_initial_hidden_state():
    lstm = birnn.LSTM(3, 5, 2, proj_size=2, bidirectional=True)
    x = torch.randn(4, 2, 3)
    a, b = lstm(x), lstm(x, (torch.zeros(4, 2, 2), torch.zeros(4, 2, 5)))
    for s, t in zip(_tensors(a), _tensors(b)):
        assert torch.equal(s, t)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_variable_sequence(mode, bidirectional):
    """Each sequence of a padded batch equals the sequence run alone (test_nn's packed version
    compares against unpadded runs the same way); with lengths instead of packing."""
    torch.manual_seed(0)
    layer = getattr(birnn, mode)(3, 4, 2, bidirectional=bidirectional, dtype=torch.float64)
    lengths = [6, 5, 5, 2, 1]
    x = torch.randn(6, len(lengths), 3, dtype=torch.float64)
    res = layer(x, lengths=torch.tensor(lengths))
    packed = layer(pack_padded_sequence(x, torch.tensor(lengths)))
    padded, _ = pad_packed_sequence(packed.output, total_length=6)
    torch.testing.assert_close(padded, res.output, **F64)
    for b, n in enumerate(lengths):
        alone = layer(x[:n, b:b + 1])
        torch.testing.assert_close(res.output[:n, b:b + 1], alone.output, **F64)
        torch.testing.assert_close(res.h_n[:, b:b + 1], alone.h_n, **F64)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_rnn_weight_norm(mode):
    ref, ours = getattr(nn, mode)(3, 4, 2), getattr(birnn, mode)(3, 4, 2)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, 3)
    for layer in (ref, ours):
        nn.utils.parametrizations.weight_norm(layer, name="weight_hh_l0")
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    ours(x)[0].sum().backward()
    assert ours.parametrizations.weight_hh_l0.original0.grad is not None


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_rnn_retain_variables(mode):
    layer = getattr(birnn, mode)(3, 4, 2, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    out = layer(x)[0]
    out.sum().backward(retain_graph=True)
    first = x.grad.clone()
    out.sum().backward()
    torch.testing.assert_close(x.grad, 2 * first, **F64)


def test_LSTM_differentiable_backward():
    """Gradients of gradients through the layer (test_nn: the oneDNN LSTM in training)."""
    lstm = birnn.LSTM(2, 3, 2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(lstm(x)[0].pow(2).sum(), x, create_graph=True)
    g.sum().backward()
    assert all(p.grad is not None for p in lstm.parameters())


def test_RNN_nonlinearity():
    assert birnn.RNN(1, 10).nonlinearity == "tanh"
    assert birnn.RNN(1, 10, nonlinearity="relu").nonlinearity == "relu"
    with pytest.raises(ValueError, match="nonlinearity"):
        birnn.RNN(1, 10, nonlinearity="garbage")


def test_RNN_input_size_zero():
    for ctor in (nn.LSTM, birnn.LSTM, nn.GRU, birnn.GRU):
        with pytest.raises(ValueError, match="input_size must be greater than zero"):
            ctor(0, 3)


# -- 4. Keras' Bidirectional semantics, hand-computed golden numbers -----------------------------
def _ones_rnn(**kw):
    """Keras' tests' SimpleRNN(1 unit, kernel/recurrent initializer ones, bias zeros)."""
    rnn = birnn.RNN(1, 1, bias=False, dtype=torch.float64, **kw)
    with torch.no_grad():
        for p in rnn.parameters():
            p.fill_(1.0)
    return rnn


def _golden(xs):
    """h_t = tanh(x_t + h_{t-1}) forward, and the same over the reversed sequence."""
    fwd, h = [], 0.0
    for v in xs:
        h = math.tanh(v + h)
        fwd.append(h)
    bwd, h = [], 0.0
    for v in reversed(xs):
        h = math.tanh(v + h)
        bwd.append(h)
    return fwd, bwd[::-1]


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_keras_bidirectional_merge_modes(merge_mode):
    xs = [0.5, -1.0, 2.0]
    bi = birnn.Bidirectional(_ones_rnn(), merge_mode=merge_mode, backward_layer=_ones_rnn())
    x = torch.tensor(xs, dtype=torch.float64).view(3, 1, 1)
    out, h_n = bi(x)
    fwd, bwd = _golden(xs)
    f, b = torch.tensor(fwd, dtype=torch.float64), torch.tensor(bwd, dtype=torch.float64)
    expected = {"concat": torch.stack([f, b], -1), "sum": (f + b)[:, None], "mul": (f * b)[:, None],
                "ave": ((f + b) / 2)[:, None], None: (f[:, None], b[:, None])}[merge_mode]
    if merge_mode is None:
        torch.testing.assert_close(out[0][:, 0], expected[0], **F64)
        torch.testing.assert_close(out[1][:, 0], expected[1], **F64)
    else:
        torch.testing.assert_close(out[:, 0], expected, **F64)
    # return_state: the forward state after the last step, the backward one after the first
    torch.testing.assert_close(h_n[:, 0, 0], torch.tensor([fwd[-1], bwd[0]], dtype=torch.float64), **F64)


def test_keras_bidirectional_with_mask():
    """A masked (right-padded) sequence: the backward layer starts at the last real step, masked
    steps output 0, and the states are those of the real steps only (Keras' Masking + Bidirectional)."""
    xs = [0.5, -1.0, 2.0]
    bi = birnn.Bidirectional(_ones_rnn(batch_first=True), backward_layer=_ones_rnn(batch_first=True))
    x = torch.tensor(xs + [9.0, 9.0], dtype=torch.float64).view(1, 5, 1)  # two padded steps
    mask = torch.tensor([[True, True, True, False, False]])
    out, h_n = bi(x, mask=mask)
    fwd, bwd = _golden(xs)
    expected = torch.tensor([[f, b] for f, b in zip(fwd, bwd)] + [[0.0, 0.0]] * 2, dtype=torch.float64)
    torch.testing.assert_close(out[0], expected, **F64)
    torch.testing.assert_close(h_n[:, 0, 0], torch.tensor([fwd[-1], bwd[0]], dtype=torch.float64), **F64)


def test_keras_bidirectional_stacked_layers_keep_their_direction():
    """Keras wraps a whole (stacked) layer: each direction stacks on its own."""
    fwd, bwd = _ones_rnn(num_layers=2), _ones_rnn(num_layers=2)
    bi = birnn.Bidirectional(fwd, merge_mode=None, backward_layer=bwd)
    x = torch.randn(4, 3, 1, dtype=torch.float64)
    out_f, out_b = bi(x)[0]
    torch.testing.assert_close(out_f, fwd(x)[0], **F64)
    torch.testing.assert_close(out_b, fwd(x.flip(0))[0].flip(0), **F64)


# -- the documented differences ----------------------------------------------------------------
def _outcome(fn):
    """The exception class a call raises, or "ok"."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the class is what is compared
        return type(e)
    return "ok"


def _packed_with_empty():
    return pack_padded_sequence(torch.randn(5, 2, 3), torch.tensor([5, 0]), enforce_sorted=False)


# docs/conformance.md, one row each: name -> (torch.nn's call, birnn's call, torch.nn's outcome, birnn's)
DIFFERENCES = {
    "hx of an LSTM that is not a pair": (
        lambda: nn.LSTM(3, 4)(torch.randn(5, 2, 3), torch.randn(1, 2, 4)),
        lambda: birnn.LSTM(3, 4)(torch.randn(5, 2, 3), torch.randn(1, 2, 4)), IndexError, TypeError),
    "zero-length sequences": (
        lambda: nn.LSTM(3, 4)(_packed_with_empty()),
        lambda: birnn.LSTM(3, 4)(torch.randn(5, 2, 3), lengths=torch.tensor([5, 0])), RuntimeError, "ok"),
    "a batch with T=0": (
        lambda: nn.GRU(3, 4)(torch.randn(0, 2, 3)), lambda: birnn.GRU(3, 4)(torch.randn(0, 2, 3)), RuntimeError, "ok"),
    "torch.compile(fullgraph=True)": (
        lambda: torch.compile(nn.GRU(3, 4), fullgraph=True, backend="eager")(torch.randn(5, 2, 3)),
        lambda: torch.compile(birnn.GRU(3, 4), fullgraph=True, backend="eager")(torch.randn(5, 2, 3)),
        torch._dynamo.exc.Unsupported, "ok"),
}


@pytest.mark.parametrize("name", sorted(DIFFERENCES))
def test_documented_differences_are_real(name):
    torch_call, birnn_call, torch_outcome, birnn_outcome = DIFFERENCES[name]
    torch._dynamo.reset()
    for call, expected in ((torch_call, torch_outcome), (birnn_call, birnn_outcome)):
        got = _outcome(call)
        assert got == expected if "ok" in (got, expected) else issubclass(got, expected), (name, got, expected)
    doc = (pathlib.Path(__file__).parents[2] / "docs" / "conformance.md").read_text()
    assert f"| {name} |" in doc, f"list {name!r} in docs/conformance.md"


def test_result_is_a_tuple_subclass():
    """A documented difference: the result is a RecurrentOutput, a 2-tuple with named parts."""
    res = birnn.GRU(3, 4)(torch.randn(5, 2, 3))
    assert isinstance(res, tuple) and type(res) is not tuple and len(res) == 2


def test_error_classes_catch_both_ways():
    """Code that catches torch.nn's class and code that catches birnn's both work."""
    gru = birnn.GRU(3, 4)
    for call, torch_cls in ((lambda: gru(torch.randn(5, 2, 7)), RuntimeError),            # input size
                            (lambda: gru(torch.randn(5, 2, 3), torch.randn(2, 2, 4)), RuntimeError),  # h_0
                            (lambda: gru(torch.randn(5, 2, 3, dtype=torch.float64)), ValueError),     # dtype
                            (lambda: birnn.GRU(3, 4, num_layers=1.5), TypeError)):
        with pytest.raises(torch_cls):
            call()
        with pytest.raises(ValueError if torch_cls is not ValueError else TypeError):
            call()
