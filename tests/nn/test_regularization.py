"""Regularisers and cell variants (issue #3): semantics by hand, statistics, independent
implementations, gradcheck, and lengths."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import birnn
from conftest import MODES, flat_hidden, make_pair

F64 = torch.float64


def identity_rnn(width=6, **kw):
    """ReLU RNN with W_ih = I, W_hh = 0, no bias: output_t = relu(what the layer reads at t)."""
    rnn = birnn.RNN(width, width, nonlinearity="relu", bias=False, dtype=F64, **kw)
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            if name.startswith("weight_ih"):
                p.copy_(torch.eye(width))
            elif name.startswith("weight_hh"):
                p.zero_()
    return rnn


def binomial_tolerance(p, n):
    return 5 * math.sqrt(p * (1 - p) / n)


# -- variational dropout --------------------------------------------------------------------
@pytest.mark.parametrize("which", ["input_dropout", "output_dropout", "inter_layer_dropout"])
def test_variational_masks_are_locked_per_sequence(which):
    p, B, T, W = 0.3, 400, 5, 6
    rnn = identity_rnn(W, num_layers=2, **{which: p}).train()
    x = torch.ones(T, B, W, dtype=F64)
    out = rnn(x).output  # 1 where kept (times 1/(1-p) per dropout applied), 0 where dropped
    kept = out != 0
    assert torch.equal(kept, kept[:1].expand_as(kept)), "the same units must be dropped at every step"
    assert not torch.equal(kept[0, 0], kept[0, 1]) or not torch.equal(kept[0, 1], kept[0, 2])
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / (1 - p)))  # expectation kept
    frac = kept[0].double().mean().item()
    assert abs(frac - (1 - p)) < binomial_tolerance(p, B * W)
    rnn.eval()
    assert torch.equal(rnn(x).output, x)


def test_per_step_dropout_when_not_variational():
    rnn = identity_rnn(6, input_dropout=0.5, variational=False).train()
    kept = rnn(torch.ones(50, 40, 6, dtype=F64)).output != 0
    assert not torch.equal(kept, kept[:1].expand_as(kept))


def test_variational_dropout_module():
    drop = birnn.VariationalDropout(0.25, batch_first=True).train()
    out = drop(torch.ones(300, 7, 4))
    kept = out != 0
    assert torch.equal(kept, kept[:, :1].expand_as(kept))
    assert abs(kept[:, 0].double().mean().item() - 0.75) < binomial_tolerance(0.25, 1200)
    assert torch.equal(drop.eval()(out), out)


def test_embedding_dropout_drops_whole_words():
    emb = birnn.EmbeddingDropout(torch.nn.Embedding(50, 8), p=0.5).train()
    tokens = torch.arange(50).repeat(3, 1)  # every word three times
    out = emb(tokens)
    zero = (out == 0).all(-1)
    assert torch.equal(zero[0], zero[1]) and torch.equal(zero[1], zero[2]), "a word is dropped everywhere or nowhere"
    assert 0 < zero[0].sum() < 50
    torch.testing.assert_close(out[~zero], (emb.embedding(tokens) * 2)[~zero])
    assert torch.equal(emb.eval()(tokens), emb.embedding(tokens))


# -- recurrent dropout ----------------------------------------------------------------------
def test_recurrent_dropout_mask_is_fixed_per_sequence_direction_and_layer():
    p, W, B, T = 0.4, 8, 300, 6
    rnn = birnn.RNN(W, W, nonlinearity="relu", bias=False, bidirectional=True, dtype=F64, recurrent_dropout=p)
    with torch.no_grad():
        for name, q in rnn.named_parameters():
            q.copy_(torch.eye(W))  # h_t = relu(x_t + m * h_{t-1}): dropped units stay at 1
    rnn.train()
    res = rnn(torch.ones(T, B, W, dtype=F64))
    assert res.path == "reference"
    fwd, bwd = res.per_direction().unbind(2)  # (T, B, W)
    for seq, first in ((fwd, 0), (bwd, T - 1)):
        dropped = seq == 1
        later = [t for t in range(T) if t != first]
        assert all(torch.equal(dropped[later[0]], dropped[t]) for t in later), "same units at every step"
        frac = dropped[later[0]].double().mean().item()
        assert abs(frac - p) < binomial_tolerance(p, B * W)
    assert not torch.equal(fwd[2] == 1, bwd[2] == 1), "directions draw separate masks"
    rnn.eval()
    assert rnn(torch.ones(T, B, W, dtype=F64)).path == "torch"  # off in eval: the fused op runs


# -- weight dropout -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_weight_dropout_equals_torch_with_the_dropped_weights(mode):
    ref, ours = make_pair(mode, 4, 3, num_layers=2, bidirectional=True)
    ours.weight_dropout = 0.5
    ours.train()
    x = torch.randn(5, 2, 4, dtype=F64)
    torch.manual_seed(11)
    res = ours(x)
    assert res.path == "torch", "DropConnect keeps PyTorch's fused op"
    torch.manual_seed(11)
    with torch.no_grad():
        for name, w in ref.named_parameters():
            if name.startswith("weight_hh"):
                w.copy_(F.dropout(w, 0.5, True))
    out, hidden = ref(x)
    torch.testing.assert_close(res.output, out)
    ours.eval()
    assert torch.equal(ours(x).output, make_pair(mode, 4, 3, num_layers=2, bidirectional=True)[0](x)[0])


# -- zoneout --------------------------------------------------------------------------------
def summing_rnn(**kw):
    rnn = birnn.RNN(1, 1, nonlinearity="relu", bias=False, dtype=F64, **kw)
    with torch.no_grad():
        for p in rnn.parameters():
            p.fill_(1.0)
    return rnn


def test_zoneout_eval_is_the_expectation_by_hand():
    rnn = summing_rnn(zoneout=0.5).eval()
    out = rnn(torch.tensor([1.0, 2.0], dtype=F64).view(2, 1, 1)).output
    # h1 = .5*0 + .5*relu(1 + 0) = .5 ; h2 = .5*.5 + .5*relu(2 + .5) = 1.5
    assert out.flatten().tolist() == [0.5, 1.5]


@pytest.mark.parametrize("mode", MODES)
def test_zoneout_zero_is_the_plain_layer_and_one_freezes_the_state(mode):
    ref, plain = make_pair(mode, 4, 3, num_layers=2, bidirectional=True)
    _, zoned = make_pair(mode, 4, 3, num_layers=2, bidirectional=True, zoneout=0.0)
    x = torch.randn(5, 3, 4, dtype=F64)
    torch.testing.assert_close(zoned.train()(x).output, ref(x)[0])
    h0 = torch.randn(4, 3, 3, dtype=F64)
    hx = (h0, torch.randn(4, 3, 3, dtype=F64)) if mode == "LSTM" else h0
    extra = {"cell_zoneout": 1.0 - 1e-12} if mode == "LSTM" else {}
    _, frozen = make_pair(mode, 4, 3, num_layers=2, bidirectional=True)
    frozen.zoneout = 1.0 - 1e-12  # p -> 1 (the constructor refuses p = 1)
    for k, v in extra.items():
        setattr(frozen, k, v)
    res = frozen.train()(x, hx)
    for state, init in zip(flat_hidden(res[1]), flat_hidden(hx)):
        assert torch.equal(state, init)  # exactly: a zoned-out unit keeps its bits
    assert torch.equal(res.per_direction()[:, :, 0], h0[2].expand(5, 3, 3))


def test_zoneout_masks_are_bernoulli_p_per_step():
    rnn = summing_rnn(zoneout=0.3).train()
    x = torch.ones(400, 200, 1, dtype=F64)
    out = rnn(x).output[:, :, 0]
    kept = out[1:] == out[:-1]  # with x=1 every update changes h; equal means zoned out
    assert abs(kept.double().mean().item() - 0.3) < binomial_tolerance(0.3, kept.numel())


# -- layer norm: an independent implementation ----------------------------------------------
def ln(v, g, b=None):
    mu = v.mean(-1, keepdim=True)
    var = ((v - mu) ** 2).mean(-1, keepdim=True)
    out = (v - mu) / torch.sqrt(var + 1e-5) * g
    return out if b is None else out + b


def layer_norm_lstm_by_hand(layer, x, l=0, sfx=""):
    """haste's LayerNormLSTM, one direction, written out step by step in torch.nn's gate order."""
    W, R = getattr(layer, f"weight_ih_l{l}{sfx}"), getattr(layer, f"weight_hh_l{l}{sfx}")
    b = getattr(layer, f"bias_ih_l{l}{sfx}") + getattr(layer, f"bias_hh_l{l}{sfx}")
    gx, gh = getattr(layer, f"ln_ih_l{l}{sfx}"), getattr(layer, f"ln_hh_l{l}{sfx}")
    gc, bc = getattr(layer, f"ln_cell_weight_l{l}{sfx}"), getattr(layer, f"ln_cell_bias_l{l}{sfx}")
    H = R.shape[1]
    h = x.new_zeros(x.shape[1], H)
    c = x.new_zeros(x.shape[1], H)
    outs = []
    for x_t in x:
        v = ln(x_t @ W.T, gx) + ln(h @ R.T, gh) + b
        i, f, g, o = v[:, :H].sigmoid(), v[:, H:2 * H].sigmoid(), v[:, 2 * H:3 * H].tanh(), v[:, 3 * H:].sigmoid()
        c = f * c + i * g
        h = o * torch.tanh(ln(c, gc, bc))
        outs.append(h)
    return torch.stack(outs), h, c


def layer_norm_gru_by_hand(layer, x):
    W, R = layer.weight_ih_l0, layer.weight_hh_l0
    b_i, b_h = layer.bias_ih_l0, layer.bias_hh_l0
    H = R.shape[1]
    h = x.new_zeros(x.shape[1], H)
    outs = []
    for x_t in x:
        xi = ln(x_t @ W.T, layer.ln_ih_l0) + b_i
        hh = ln(h @ R.T, layer.ln_hh_l0) + b_h
        r = (xi[:, :H] + hh[:, :H]).sigmoid()
        z = (xi[:, H:2 * H] + hh[:, H:2 * H]).sigmoid()
        n = (xi[:, 2 * H:] + r * hh[:, 2 * H:]).tanh()
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs), h


def _randomise(layer):
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("ln_"):
                p.copy_(torch.rand_like(p) + 0.5 if "bias" not in name else torch.randn_like(p))


def test_layer_norm_lstm_against_a_hand_written_one():
    lstm = birnn.LSTM(4, 3, bidirectional=True, layer_norm=True, dtype=F64)
    _randomise(lstm)
    x = torch.randn(6, 2, 4, dtype=F64)
    out_f, h_f, c_f = layer_norm_lstm_by_hand(lstm, x)
    out_b, h_b, c_b = layer_norm_lstm_by_hand(lstm, x.flip(0), sfx="_reverse")
    for path, ran in (("auto", "packed"), ("reference", "reference")):  # both engines against the hand-written one
        lstm.path = path
        res = lstm(x)
        assert res.path == ran
        torch.testing.assert_close(res.output, torch.cat([out_f, out_b.flip(0)], -1))
        torch.testing.assert_close(res.h_n, torch.stack([h_f, h_b]))
        torch.testing.assert_close(res.c_n, torch.stack([c_f, c_b]))


def test_layer_norm_gru_against_a_hand_written_one():
    gru = birnn.GRU(4, 3, layer_norm=True, dtype=F64)
    _randomise(gru)
    x = torch.randn(6, 2, 4, dtype=F64)
    out, h = layer_norm_gru_by_hand(gru, x)
    res = gru(x)
    torch.testing.assert_close(res.output, out)
    torch.testing.assert_close(res.h_n[0], h)


def test_layer_norm_rnn():
    rnn = birnn.RNN(4, 3, layer_norm=True, dtype=F64)
    _randomise(rnn)
    x = torch.randn(5, 2, 4, dtype=F64)
    h = x.new_zeros(2, 3)
    for x_t in x:
        h = torch.tanh(ln(x_t @ rnn.weight_ih_l0.T, rnn.ln_ih_l0) + ln(h @ rnn.weight_hh_l0.T, rnn.ln_hh_l0)
                       + rnn.bias_ih_l0 + rnn.bias_hh_l0)
    torch.testing.assert_close(rnn(x).h_n[0], h)


# -- residual and highway -------------------------------------------------------------------
def test_residual_adds_each_stacked_layers_input():
    lstm = birnn.LSTM(4, 3, num_layers=3, bidirectional=True, residual=True, dtype=F64)
    layers = [birnn.LSTM(4 if l == 0 else 6, 3, bidirectional=True, dtype=F64) for l in range(3)]
    for l, single in enumerate(layers):
        single.load_state_dict({k.replace(f"_l{l}", "_l0"): v for k, v in lstm.state_dict().items() if f"_l{l}" in k})
    x = torch.randn(5, 2, 4, dtype=F64)
    lengths = torch.tensor([5, 3])
    h = layers[0](x, lengths=lengths).output
    for single in layers[1:]:
        h = single(h, lengths=lengths).output + h
    for path in ("torch", "reference"):
        lstm.path = path
        torch.testing.assert_close(lstm(x, lengths=lengths).output, h)


def test_highway_against_allennlp_augmented_lstm_formula():
    lstm = birnn.LSTM(4, 3, residual="highway", dtype=F64)
    x = torch.randn(6, 2, 4, dtype=F64)
    W, R = lstm.weight_ih_l0, lstm.weight_hh_l0
    b = lstm.bias_ih_l0 + lstm.bias_hh_l0
    Wh, Rh, bh = lstm.weight_hw_ih_l0, lstm.weight_hw_hh_l0, lstm.bias_hw_l0
    H = 3
    h, c = x.new_zeros(2, H), x.new_zeros(2, H)
    outs = []
    for x_t in x:
        v = x_t @ W.T + h @ R.T + b
        i, f, g, o = v[:, :H].sigmoid(), v[:, H:2 * H].sigmoid(), v[:, 2 * H:3 * H].tanh(), v[:, 3 * H:].sigmoid()
        c = f * c + i * g
        cell_out = o * torch.tanh(c)
        proj = x_t @ Wh.T
        gate = (proj[:, :H] + h @ Rh.T + bh).sigmoid()
        h = gate * cell_out + (1 - gate) * proj[:, H:]
        outs.append(h)
    res = lstm(x)
    torch.testing.assert_close(res.output, torch.stack(outs))
    torch.testing.assert_close(res.c_n[0], c)


# -- init schemes ---------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["orthogonal", "xavier"])
def test_init_schemes(scheme):
    lstm = birnn.LSTM(5, 4, num_layers=2, bidirectional=True, init=scheme, forget_bias=1.0)
    for l in range(2):
        w_hh = lstm.__getattr__(f"weight_hh_l{l}")
        for block in w_hh.chunk(4, 0):
            if scheme == "orthogonal":
                torch.testing.assert_close(block @ block.T, torch.eye(4), atol=1e-5, rtol=0)
            else:
                assert block.abs().max() <= math.sqrt(6 / (4 + 4)) + 1e-6
        assert torch.all(lstm.__getattr__(f"bias_ih_l{l}")[4:8] == 1.0)
        assert torch.all(lstm.__getattr__(f"bias_ih_l{l}")[:4] == 0)
    torch.manual_seed(0)
    a = birnn.GRU(5, 4, init=scheme)
    torch.manual_seed(0)
    b = birnn.GRU(5, 4, init=scheme)
    assert torch.equal(a.weight_hh_l0, b.weight_hh_l0)


# -- determinism, lengths, gradients --------------------------------------------------------
FEATURES = [
    dict(recurrent_dropout=0.3),
    dict(zoneout=0.2),
    dict(zoneout=0.2, cell_zoneout=0.3),
    dict(layer_norm=True),
    dict(residual="highway"),
    dict(residual=True),
    dict(input_dropout=0.2, inter_layer_dropout=0.2, output_dropout=0.2),
    dict(weight_dropout=0.3),
]


def _layer(mode, feature, **kw):
    if "cell_zoneout" in feature and mode != "LSTM":
        pytest.skip("cell_zoneout is LSTM-only")
    _, layer = make_pair(mode, 3, 3, num_layers=2, bidirectional=True, **kw)
    params = {k: v for k, v in feature.items()}
    fresh = type(layer)(3, 3, num_layers=2, bidirectional=True, dtype=F64,
                        **({"nonlinearity": layer.nonlinearity} if isinstance(layer, birnn.RNN) else {}), **params, **kw)
    _randomise(fresh)
    return fresh


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: ",".join(f))
@pytest.mark.parametrize("mode", MODES)
def test_eval_is_deterministic_and_padding_changes_nothing(mode, feature):
    layer = _layer(mode, feature).eval()
    lengths = torch.tensor([5, 2, 4])
    x = torch.randn(5, 3, 3, dtype=F64)
    noisy = x.clone()
    noisy[torch.arange(5)[:, None] >= lengths[None]] = 7.0
    a, b = layer(x, lengths=lengths), layer(noisy, lengths=lengths)
    assert torch.equal(a.output, b.output) and torch.equal(a.h_n, b.h_n)
    for i in range(3):  # each sequence alone
        n = int(lengths[i])
        alone = layer(x[:n, i:i + 1])
        torch.testing.assert_close(a.output[:n, i:i + 1], alone.output)
        torch.testing.assert_close(a.h_n[:, i:i + 1], alone.h_n)
        assert torch.all(a.output[n:, i] == 0)


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: ",".join(f))
@pytest.mark.parametrize("mode", MODES)
def test_training_padding_never_changes_states_or_outputs(mode, feature):
    layer = _layer(mode, feature).train()
    lengths = torch.tensor([5, 2, 4])
    x = torch.randn(5, 3, 3, dtype=F64)
    noisy = x.clone()
    noisy[torch.arange(5)[:, None] >= lengths[None]] = -3.0
    torch.manual_seed(5)
    a = layer(x, lengths=lengths)
    torch.manual_seed(5)
    b = layer(noisy, lengths=lengths)
    assert torch.equal(a.output, b.output) and torch.equal(a.h_n, b.h_n)
    for i in range(3):
        assert torch.all(a.output[lengths[i]:, i] == 0)
    if feature.get("residual") is True or "output_dropout" in feature:
        return  # output is no longer the last layer's states
    H = 3
    assert torch.equal(a.h_n[2], a.output[lengths - 1, torch.arange(3), :H])  # forward final = last real step
    assert torch.equal(a.h_n[3], a.output[0, :, H:])  # backward final = step 0


@pytest.mark.slow  # float64 gradcheck of every feature: ~4 min of CPU
@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: ",".join(f))
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_gradcheck_features_with_lengths(mode, feature):
    layer = _layer(mode, feature).train()
    names = [n for n, _ in layer.named_parameters()]
    lengths = torch.tensor([4, 2, 3])
    x = torch.randn(4, 3, 3, dtype=F64, requires_grad=True)

    def f(x, *params):
        torch.manual_seed(3)  # the same masks for every evaluation
        res = torch.func.functional_call(layer, dict(zip(names, params)), (x,), {"lengths": lengths})
        return (res.output, *flat_hidden(res[1]))

    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert gradcheck(f, (x, *params), eps=1e-6, atol=1e-6)


# -- step() ---------------------------------------------------------------------------------
@pytest.mark.parametrize("feature", [{}, dict(layer_norm=True), dict(zoneout=0.3), dict(residual="highway"),
                                     dict(residual=True)], ids=lambda f: ",".join(f) or "plain")
@pytest.mark.parametrize("mode", MODES)
def test_step_equals_the_sequence_call(mode, feature):
    kw = dict(num_layers=2, dtype=F64, **feature)
    layer = (birnn.RNN(3, 4, **kw) if mode.startswith("RNN") else getattr(birnn, mode)(3, 4, **kw)).eval()
    x = torch.randn(6, 2, 3, dtype=F64)
    full = layer(x)
    state, ys = None, []
    for x_t in x:
        y, state = layer.step(x_t, state)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys), full.output)
    for a, b in zip(flat_hidden(state), flat_hidden(full[1])):
        torch.testing.assert_close(a, b)
    y, _ = layer.step(x[0, 0])  # unbatched
    torch.testing.assert_close(y, full.output[0, 0])


def test_step_refusals():
    with pytest.raises(ValueError, match="step\\(\\) needs a unidirectional layer"):
        birnn.GRU(3, 4, bidirectional=True).step(torch.randn(2, 3))
    with pytest.raises(RuntimeError, match="call .eval\\(\\) first"):
        birnn.GRU(3, 4, zoneout=0.1).train().step(torch.randn(2, 3))


# -- dispatch and bad input -----------------------------------------------------------------
def test_features_choose_the_fastest_path_that_can_run_them():
    x = torch.randn(5, 2, 3)
    cases = [(dict(weight_dropout=0.3), "torch"), (dict(input_dropout=0.3, output_dropout=0.2), "torch"),
             (dict(num_layers=2, inter_layer_dropout=0.3, residual=True), "torch"),
             (dict(recurrent_dropout=0.3), "packed"), (dict(layer_norm=True), "packed"),
             (dict(zoneout=0.1), "packed"), (dict(residual="highway"), "reference")]
    for kw, path in cases:
        layer = birnn.LSTM(3, 4, bidirectional=True, **kw).train()
        assert layer(x).path == path, kw
        gru = birnn.GRU(3, 4, bidirectional=True, **kw).train()  # the packed layer is the LSTM's
        assert gru(x).path == ("reference" if path == "packed" else path), kw
    layer = birnn.LSTM(3, 4, layer_norm=True, path="torch")
    with pytest.raises(ValueError, match="path='torch' cannot run layer_norm"):
        layer(x)


def test_bad_regulariser_arguments():
    for name in ("input_dropout", "output_dropout", "recurrent_dropout", "weight_dropout", "zoneout"):
        for p in (-0.1, 1.0, "0.5"):
            with pytest.raises(ValueError, match=f"{name} must be a number in \\[0, 1\\), got"):
                birnn.LSTM(3, 4, num_layers=2, **{name: p})
    with pytest.raises(ValueError, match="cell_zoneout applies to the LSTM cell state; mode 'GRU' has none"):
        birnn.GRU(3, 4, cell_zoneout=0.1)
    with pytest.raises(ValueError, match="residual=True .* needs num_layers >= 2, got 1"):
        birnn.LSTM(3, 4, residual=True)
    with pytest.raises(ValueError, match="residual must be False, True or 'highway'; got 'dense'"):
        birnn.LSTM(3, 4, residual="dense")
    with pytest.raises(ValueError, match="residual='highway' needs proj_size=0, got proj_size=2"):
        birnn.LSTM(3, 4, residual="highway", proj_size=2)
    with pytest.raises(ValueError, match="inter_layer_dropout needs num_layers >= 2, got 1"):
        birnn.LSTM(3, 4, inter_layer_dropout=0.2)
    with pytest.raises(ValueError, match="init must be one of"):
        birnn.LSTM(3, 4, init="kaiming")
    with pytest.raises(TypeError, match="unexpected keyword argument\\(s\\) zonout"):
        birnn.LSTM(3, 4, zonout=0.1)
    with pytest.raises(ValueError, match="p must be a number in \\[0, 1\\), got 1"):
        birnn.VariationalDropout(1)


def test_zoneout_with_a_packed_sequence():
    """PackedSequence input is unpacked at the entrance, so every feature runs with it."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    gru = birnn.GRU(3, 4, bidirectional=True, zoneout=0.2, dtype=F64)
    x = torch.randn(5, 3, 3, dtype=F64)
    lengths = torch.tensor([5, 2, 4])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    for mode in (gru.train(), gru.eval()):
        torch.manual_seed(0)
        out, h = mode(packed)
        torch.manual_seed(0)
        ref = mode(x, lengths=lengths)
        assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
        torch.testing.assert_close(pad_packed_sequence(out)[0], ref.output)
        torch.testing.assert_close(h, ref.h_n)
