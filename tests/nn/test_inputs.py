"""Every form variable-length data comes in (left padding, suffix masks, jagged nested tensors,
cu_seqlens rows, numpy lengths, state resets, T=0) and every state people read out (every
step's cell state, every layer's output), each against an independent reference: the same
data right-padded, or each sequence or segment run alone through torch.nn."""

import numpy as np
import pytest
import torch
from torch import nn

import birnn
from birnn.batch import align
from conftest import make_pair

F64 = dict(rtol=1e-9, atol=1e-10)
MODES = ["RNN_TANH", "LSTM", "GRU"]
LENGTHS = [6, 2, 0, 4, 6]


def _data(B=5, T=6, I=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, I, generator=g, dtype=torch.float64), torch.tensor(LENGTHS[:B])


def _alone(ref, x_b, h0=None):
    """A sequence (t, 1, I) run alone through torch.nn (zero length: zeros and h_0)."""
    return ref(x_b) if h0 is None else ref(x_b, h0)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_left_padding_equals_the_right_padded_batch(mode, bidirectional, batch_first):
    _, ours = make_pair(mode, 3, 4, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    x, lengths = _data()
    right = ours(x.transpose(0, 1) if batch_first else x, lengths=lengths)
    x_left = align(x, lengths, to="left")
    inp = x_left.transpose(0, 1) if batch_first else x_left
    for res in (ours(inp, lengths=lengths, padding="left"),
                ours(inp, mask=birnn.mask_from_lengths(lengths, 6, batch_first=batch_first).flip(1 if batch_first
                                                                                                    else 0))):
        out = res.output.transpose(0, 1) if batch_first else res.output
        expected = right.output.transpose(0, 1) if batch_first else right.output
        torch.testing.assert_close(out, align(expected, lengths, to="left"), **F64)  # the caller's (left) layout
        torch.testing.assert_close(res.h_n, right.h_n, **F64)


def test_left_padding_in_the_wrapper_and_the_cell_driver():
    torch.manual_seed(0)
    x, lengths = _data()
    x = x.float()
    x_left = align(x, lengths, to="left")
    for layer in (birnn.Bidirectional(birnn.GRU(3, 4)), birnn.Recurrent(nn.GRUCell(3, 4))):
        right, left = layer(x, lengths=lengths), layer(x_left, lengths=lengths, padding="left")
        torch.testing.assert_close(left.output, align(right.output, lengths, to="left"))
        torch.testing.assert_close(left.h_n, right.h_n)


@pytest.mark.parametrize("mode", MODES)
def test_jagged_nested_input_and_output(mode):
    ref, ours = make_pair(mode, 3, 4, num_layers=2, bidirectional=True)
    x, lengths = _data()
    seqs = [x[:n, b] for b, n in enumerate(lengths.tolist())]
    nested = torch.nested.nested_tensor(seqs, layout=torch.jagged)
    res = ours(nested)
    assert res.output.is_nested and res.output.layout == torch.jagged
    for b, (seq, out) in enumerate(zip(seqs, res.output.unbind())):
        if len(seq) == 0:
            assert out.shape == (0, 8)
            continue
        alone_out, alone_h = _alone(ref, seq.unsqueeze(1))
        torch.testing.assert_close(out, alone_out[:, 0], **F64)
        torch.testing.assert_close(res.h_n[:, b], (alone_h[0] if mode == "LSTM" else alone_h)[:, 0], **F64)


@pytest.mark.parametrize("mode", MODES)
def test_cu_seqlens_rows_equal_each_sequence_alone(mode):
    ref, ours = make_pair(mode, 3, 4, num_layers=2, bidirectional=True)
    x, lengths = _data()
    seqs = [x[:n, b] for b, n in enumerate(lengths.tolist())]
    offsets = torch.tensor([0, *np.cumsum(lengths.tolist())])
    res = ours(torch.cat(seqs), cu_seqlens=offsets)
    assert res.output.shape == (int(lengths.sum()), 8)
    for b, seq in enumerate(seqs):
        if len(seq):
            alone_out, _ = _alone(ref, seq.unsqueeze(1))
            torch.testing.assert_close(res.output[offsets[b]:offsets[b + 1]], alone_out[:, 0], **F64)


def test_flat_and_nested_forms_are_differentiable():
    _, ours = make_pair("GRU", 2, 3, bidirectional=True)
    lengths = [3, 1, 2]
    rows = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    offsets = torch.tensor([0, 3, 4, 6])
    assert torch.autograd.gradcheck(lambda r: ours(r, cu_seqlens=offsets).output, (rows,))

    def nested(r):
        nt = torch.nested.nested_tensor_from_jagged(r, offsets)
        return ours(nt).output.values()

    assert torch.autograd.gradcheck(nested, (rows,))
    assert len(lengths) == 3


def test_malformed_forms_name_the_argument():
    gru = birnn.GRU(3, 4)
    rows = torch.randn(6, 3)
    with pytest.raises(ValueError, match=r"cu_seqlens must not decrease, got 4 then 2"):
        gru(rows, cu_seqlens=torch.tensor([0, 4, 2, 6]))
    with pytest.raises(ValueError, match=r"cu_seqlens must start at 0 and end at the number of rows N=6"):
        gru(rows, cu_seqlens=torch.tensor([0, 3, 5]))
    with pytest.raises(ValueError, match=r"cu_seqlens must be a 1-D integer tensor"):
        gru(rows, cu_seqlens=torch.tensor([0.0, 6.0]))
    with pytest.raises(ValueError, match=r"with cu_seqlens, input must be the sequences' rows"):
        gru(torch.randn(6, 1, 3), cu_seqlens=torch.tensor([0, 6]))
    strided = torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(1, 3)])
    with pytest.raises(TypeError, match=r"a nested input must have layout=torch.jagged"):
        gru(strided)
    with pytest.raises(ValueError, match=r"padding must be 'right' .* or 'left'"):
        gru(torch.randn(4, 2, 3), lengths=[4, 2], padding="middle")
    with pytest.raises(ValueError, match=r"padding='left' needs lengths"):
        gru(torch.randn(4, 2, 3), padding="left")
    with pytest.raises(ValueError, match=r"resets must have shape \(T, B\) = \(4, 2\)"):
        gru(torch.randn(4, 2, 3), resets=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"resets must be a boolean tensor, got dtype torch.int64"):
        gru(torch.randn(4, 2, 3), resets=torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"return_all takes names from \('layers', 'c'\), got \['h'\]"):
        gru(torch.randn(4, 2, 3), return_all=("h",))
    with pytest.raises(ValueError, match=r"return_all='c' needs an LSTM"):
        gru(torch.randn(4, 2, 3), return_all=("c",))


def test_numpy_and_list_lengths():
    _, ours = make_pair("LSTM", 3, 4, bidirectional=True)
    x, lengths = _data()
    want = ours(x, lengths=lengths).output
    for given in (lengths.numpy(), lengths.numpy().astype(np.int32), lengths.tolist(), [np.int64(v) for v in LENGTHS]):
        torch.testing.assert_close(ours(x, lengths=given).output, want, **F64)
    with pytest.raises(TypeError, match="lengths must be an integer tensor"):
        ours(x, lengths=np.array(LENGTHS, dtype=float))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_resets_restart_each_segment_in_both_directions(mode, bidirectional):
    """resets mark episode boundaries: every segment must equal the segment run alone through
    torch.nn (from h_0), the backward direction restarting at each segment's last step."""
    ref, ours = make_pair(mode, 3, 4, num_layers=2, bidirectional=bidirectional)
    x, lengths = _data()
    resets = torch.zeros(6, 5, dtype=torch.bool)
    resets[2, 0] = resets[4, 0] = True  # sequence 0: segments [0, 2), [2, 4), [4, 6)
    resets[1, 3] = True  # sequence 3 (4 steps): [0, 1), [1, 4)
    resets[5, 3] = True  # beyond its length: ignored
    res = ours(x, lengths=lengths, resets=resets)
    for b, bounds in ((0, [0, 2, 4, 6]), (3, [0, 1, 4]), (1, [0, 2])):
        for a, z in zip(bounds, bounds[1:]):
            alone, _ = _alone(ref, x[a:z, b:b + 1])
            torch.testing.assert_close(res.output[a:z, b], alone[:, 0], **F64)
    # h_n: the forward state after the last segment, the backward state after the first one
    D = 2 if bidirectional else 1
    _, last_h = _alone(ref, x[4:6, 0:1])
    last_h = last_h[0] if mode == "LSTM" else last_h
    torch.testing.assert_close(res.h_n[D, 0], last_h[D, 0], **F64)  # layer 1, forward
    if bidirectional:
        _, first_h = _alone(ref, x[0:2, 0:1])
        first_h = first_h[0] if mode == "LSTM" else first_h
        torch.testing.assert_close(res.h_n[3, 0], first_h[3, 0], **F64)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_resets_run_as_segments_equal_the_reference_scan(mode, monkeypatch):
    """A row with resets is run as its segments, each a sequence of its own (PyTorch's op on
    them): outputs, every layer's outputs and cell states, h_n, c_n and every gradient equal
    the reference scan that restarts the state in place (float64), from given initial states,
    batch-first and left-padded."""
    from birnn.backends import segments

    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    layer = birnn.RNN(3, 4, **kw) if mode == "RNN_TANH" else getattr(birnn, mode)(3, 4, **kw)
    B, T = 4, 9
    x = torch.randn(B, T, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 5, 7, 1])
    resets = torch.zeros(B, T, dtype=torch.bool)
    resets[0, 3] = resets[0, 6] = resets[1, 2] = resets[2, 4] = resets[2, 8] = True
    hx = torch.randn(4, B, 4, dtype=torch.float64)
    hx = (hx, torch.randn(4, B, 4, dtype=torch.float64)) if mode == "LSTM" else hx
    wanted = ("layers", "c") if mode == "LSTM" else ("layers",)

    def run(padding):
        xs = align(x.transpose(0, 1), lengths, to="left").transpose(0, 1) if padding == "left" else x
        rs = align(resets.T, lengths, to="left").T if padding == "left" else resets
        res = layer(xs, hx, lengths=lengths, resets=rs, padding=padding, return_all=wanted)
        parts = [res.output, res.h_n] + ([res.c_n] if mode == "LSTM" else []) + list(res.layer_outputs) + \
            list(res.cell_states or ())
        grads = torch.autograd.grad(sum(p.pow(2).sum() for p in parts), [x] + list(layer.parameters()))
        return parts, grads, layer.last_decision

    for padding in ("right", "left"):
        got, got_grads, decision = run(padding)
        assert decision.reason.startswith("resets: the rows' 8 segments as sequences of their own")
        with monkeypatch.context() as m:
            m.setattr(segments, "applies", lambda call, stochastic: False)
            want, want_grads, reference = run(padding)
        assert reference.path == "reference"
        for g, w in zip(got + list(got_grads), want + list(want_grads)):
            torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


def test_resets_in_a_stochastic_training_call_keep_the_reference_scan():
    layer = birnn.GRU(3, 4, bidirectional=True, recurrent_dropout=0.3).train()
    resets = torch.zeros(6, 2, dtype=torch.bool)
    resets[2, 0] = True
    layer(torch.randn(6, 2, 3), resets=resets)
    assert layer.last_decision.path == "reference" and "segments" not in layer.last_decision.reason
    layer.eval()(torch.randn(6, 2, 3), resets=resets)
    assert "segments" in layer.last_decision.reason


def test_resets_with_cu_seqlens_and_gradcheck():
    ref, ours = make_pair("LSTM", 2, 3, bidirectional=True)
    rows = torch.randn(7, 2, dtype=torch.float64, requires_grad=True)
    offsets = torch.tensor([0, 4, 7])
    resets = torch.zeros(7, dtype=torch.bool)
    resets[2] = True  # row 2 starts a new segment inside sequence 0
    res = ours(rows, cu_seqlens=offsets, resets=resets)
    for a, z in ((0, 2), (2, 4), (4, 7)):
        torch.testing.assert_close(res.output[a:z], ref(rows[a:z].detach().unsqueeze(1))[0][:, 0], **F64)
    assert torch.autograd.gradcheck(lambda r: ours(r, cu_seqlens=offsets, resets=resets).output, (rows,))
    assert "resets" in ours.last_decision.reason


def test_return_all_layers_and_cell_states():
    """Every layer's output against torch.nn layers run one after another; every step's cell
    state against torch.nn's LSTMCell stepped by hand."""
    ref, ours = make_pair("LSTM", 3, 4, num_layers=2, bidirectional=False)
    x, lengths = _data()
    res = ours(x, lengths=lengths, return_all=("layers", "c"))
    assert len(res.layer_outputs) == 2 and len(res.cell_states) == 2
    torch.testing.assert_close(res.layer_outputs[-1], res.output, **F64)
    cells = [nn.LSTMCell(3 if l == 0 else 4, 4, dtype=torch.float64) for l in range(2)]
    for l, cell in enumerate(cells):
        cell.load_state_dict({k.replace(f"_l{l}", ""): v for k, v in ref.state_dict().items() if k.endswith(f"_l{l}")})
    for b, n in enumerate(lengths.tolist()):
        inp = x[:n, b]
        for l, cell in enumerate(cells):
            h = c = torch.zeros(4, dtype=torch.float64)
            hs, cs = [], []
            for t in range(n):
                h, c = cell(inp[t], (h, c))
                hs.append(h)
                cs.append(c)
            if n:
                torch.testing.assert_close(res.layer_outputs[l][:n, b], torch.stack(hs), **F64)
                torch.testing.assert_close(res.cell_states[l][:n, b], torch.stack(cs), **F64)
            assert torch.all(res.cell_states[l][n:, b] == 0) and torch.all(res.layer_outputs[l][n:, b] == 0)
            inp = torch.stack(hs) if n else inp
    plain = ours(x, lengths=lengths)
    assert plain.layer_outputs is None and plain.cell_states is None  # nothing extra unless asked
    gru = birnn.GRU(3, 4, num_layers=2, bidirectional=True)
    both = gru(x.float(), lengths=lengths, return_all="layers")
    assert both.path == gru(x.float(), lengths=lengths).path  # layers do not leave the fast path
    assert both.layer_outputs[0].shape == (6, 5, 8)


@pytest.mark.parametrize("mode", MODES)
def test_a_whole_batch_with_no_step(mode):
    _, ours = make_pair(mode, 3, 4, num_layers=2, bidirectional=True, batch_first=True)
    h0 = torch.randn(4, 2, 4, dtype=torch.float64, requires_grad=True)
    hx = (h0, torch.randn(4, 2, 4, dtype=torch.float64)) if mode == "LSTM" else h0
    res = ours(torch.randn(2, 0, 3, dtype=torch.float64), hx, lengths=torch.zeros(2, dtype=torch.long))
    assert res.output.shape == (2, 0, 8) and torch.equal(res.h_n, h0)
    res.h_n.sum().backward()
    assert torch.equal(h0.grad, torch.ones_like(h0))
    assert res.pool("final").shape == (2, 8) and res.pool("mean").abs().sum() == 0


def test_the_input_forms_benchmark_runs(capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("inputs_bench", Path(__file__).parents[2] / "benchmarks" / "inputs.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--batch", "3", "--time", "8", "--input", "4", "--hidden", "8", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| inference | jagged nested |" in out
    with_resets = [line for line in out.splitlines() if line.startswith("| inference | with resets |")]
    assert with_resets and "| reference |" not in with_resets[0]  # run as segments, by a fast path


def test_left_padding_under_compile():
    """padding='left' with a mask under torch.compile(fullgraph=True): no value-dependent branch
    (the side is taken from padding=, not read off the mask)."""
    torch._dynamo.reset()
    gru = birnn.GRU(3, 4, bidirectional=True)
    x, lengths = _data()
    x_left = align(x.float(), lengths, to="left")
    suffix = birnn.mask_from_lengths(lengths, 6).flip(0)
    compiled = torch.compile(gru, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x_left, mask=suffix, padding="left").output,
                               gru(x_left, mask=suffix).output)


def test_left_padding_and_return_all_are_differentiable():
    _, ours = make_pair("LSTM", 2, 3, num_layers=2, bidirectional=True)
    lengths = torch.tensor([4, 2, 0])
    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)

    def left(inp):
        return ours(inp, lengths=lengths, padding="left").output

    def everything(inp):
        res = ours(inp, lengths=lengths, return_all=("layers", "c"))
        return (*res.layer_outputs, *res.cell_states)

    assert torch.autograd.gradcheck(left, (x,))
    assert torch.autograd.gradcheck(everything, (x,))
