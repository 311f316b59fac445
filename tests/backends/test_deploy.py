"""Leaving eager mode: torch.export and ONNX (onnxruntime) take any T, B and lengths, and
equal eager birnn; what cannot be recorded as one node per layer says so."""

import json
import warnings

import pytest
import torch
from torch.export import Dim

import birnn

GRID = [(mode, bi, layers) for mode in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU") for bi in (False, True)
        for layers in (1, 2)]
SHAPES = [(7, 3), (12, 5), (2, 1)]  # (T, B): the example's, longer and wider, shorter and a single row


def _layer(mode, bi, layers, **kw):
    torch.manual_seed(0)
    if mode.startswith("RNN"):
        return birnn.RNN(5, 6, num_layers=layers, bidirectional=bi, nonlinearity=mode[4:].lower(), **kw).eval()
    return getattr(birnn, mode)(5, 6, num_layers=layers, bidirectional=bi, **kw).eval()


class WithLengths(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths):
        res = self.layer(x, lengths=lengths)
        return (res.output, res.h_n) + ((res.c_n,) if res.c_n is not None else ())


class Full(WithLengths):
    def forward(self, x):
        res = self.layer(x)
        return (res.output, res.h_n) + ((res.c_n,) if res.c_n is not None else ())


def _inputs(T, B, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    return torch.randn(T, B, 5, generator=g), lengths


DYNAMIC = ({0: Dim("T"), 1: Dim("B")}, {0: Dim("B")})


@pytest.mark.parametrize("mode,bi,layers", GRID)
def test_torch_export_takes_any_T_B_and_lengths(mode, bi, layers):
    model = WithLengths(_layer(mode, bi, layers)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no bookkeeping warnings, no step-by-step fallback
        program = torch.export.export(model, _inputs(7, 3, 0), dynamic_shapes=DYNAMIC)
    nodes = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert nodes.count(torch.ops.birnn.recurrent_layer.default) == layers
    for T, B in SHAPES:
        x, lengths = _inputs(T, B, T)
        for got, want in zip(program.module()(x, lengths), model(x, lengths)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    x = torch.randn(6, 4, 5)
    full = Full(model.layer).eval()
    program = torch.export.export(full, (x,), dynamic_shapes=DYNAMIC[:1])
    for got, want in zip(program.module()(torch.randn(11, 2, 5)), full(torch.randn(11, 2, 5))):
        assert got.shape == want.shape


def test_export_of_a_pooled_batch_first_encoder_with_empty_sequences():
    lstm = birnn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True, merge_mode="sum").eval()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, x, lengths):
            res = self.lstm(x, lengths=lengths)
            return res.output, res.pool("final")

    model = Encoder().eval()
    program = torch.export.export(model, (torch.randn(3, 7, 5), torch.tensor([7, 4, 2])),
                                  dynamic_shapes=({0: Dim("B"), 1: Dim("T")}, {0: Dim("B")}))
    x, lengths = torch.randn(4, 9, 5), torch.tensor([9, 0, 3, 1])
    for got, want in zip(program.module()(x, lengths), model(x, lengths)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_export_of_what_has_no_single_node_warns_that_T_is_fixed():
    layer = birnn.LSTM(5, 6, bidirectional=True, zoneout=0.1).eval()
    with pytest.warns(UserWarning, match=r"step by step, so the exported program only takes inputs of T=7 steps: "
                                         r"zoneout has no single-node form"):
        program = torch.export.export(Full(layer).eval(), (torch.randn(7, 3, 5),))
    x = torch.randn(7, 3, 5)
    torch.testing.assert_close(program.module()(x)[0], layer(x).output)


def _onnx_session(model, args, dynamic_shapes, path, **kwargs):
    """The user's own call, ``torch.onnx.export(..., dynamo=True)``, with no extra argument."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), dynamo=True, dynamic_shapes=dynamic_shapes, verbose=False,
                          external_data=False,
                          **kwargs)
    import onnx

    ops = {(n.domain or "ai.onnx", n.op_type) for n in onnx.load(str(path)).graph.node}
    assert all(domain == "ai.onnx" for domain, _ in ops), ops  # standard operators only: runs without birnn
    return ort.InferenceSession(str(path)), {op for _, op in ops}


@pytest.mark.parametrize("mode,bi,layers", GRID)
def test_onnx_runs_in_onnxruntime_with_any_T_B_and_lengths(mode, bi, layers, tmp_path):
    model = WithLengths(_layer(mode, bi, layers)).eval()
    sess, ops = _onnx_session(model, _inputs(7, 3, 0), DYNAMIC, tmp_path / "m.onnx")
    assert {"LSTM": "LSTM", "GRU": "GRU"}.get(mode, "RNN") in ops  # ONNX's own recurrent operator
    for T, B in SHAPES:
        x, lengths = _inputs(T, B, T)
        got = sess.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})
        with torch.no_grad():
            want = model(x, lengths)
        for g, w in zip(got, want):
            torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_onnx_without_lengths_and_with_empty_sequences(mode, tmp_path):
    full = Full(_layer(mode, True, 2, dropout=0.3)).eval()
    sess, _ = _onnx_session(full, (torch.randn(7, 3, 5),), DYNAMIC[:1], tmp_path / "full.onnx")
    x = torch.randn(11, 2, 5)
    with torch.no_grad():
        for g, w in zip(sess.run(None, {"x": x.numpy()}), full(x)):
            torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-5, atol=1e-5)
    model = WithLengths(full.layer).eval()
    sess, _ = _onnx_session(model, _inputs(7, 3, 0), DYNAMIC, tmp_path / "m.onnx")
    x, lengths = torch.randn(9, 4, 5), torch.tensor([9, 0, 3, 1])  # a zero-length row: zeros, h_n = h_0
    with torch.no_grad():
        for g, w in zip(sess.run(None, {"x": x.numpy(), "lengths": lengths.numpy()}), model(x, lengths)):
            torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-5, atol=1e-5)


class SpeechEncoder(torch.nn.Module):
    """A TTS text encoder's shape (Kokoro's, kokoro#87, litert-torch#1062): embedding -> Conv1d ->
    batch-first BiLSTM with lengths -> Linear."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(20, 8)
        self.conv = torch.nn.Conv1d(8, 8, 5, padding=2)
        self.lstm = birnn.LSTM(8, 6, bidirectional=True, batch_first=True)
        self.proj = torch.nn.Linear(12, 4)

    def forward(self, tokens, lengths):  # tokens (B, T), lengths (B,)
        x = self.conv(self.embed(tokens).transpose(1, 2)).relu().transpose(1, 2)  # (B, T, 8)
        return self.proj(self.lstm(x, lengths=lengths).output)  # (B, T, 4), zeros' image at padded steps


def test_a_tts_text_encoder_exports_with_dynamic_T_through_the_plain_call(tmp_path):
    torch.manual_seed(0)
    model = SpeechEncoder().eval()
    example = (torch.randint(0, 20, (3, 9)), torch.tensor([9, 4, 6]))
    sess, ops = _onnx_session(model, example, ({0: Dim("B"), 1: Dim("T")}, {0: Dim("B")}), tmp_path / "tts.onnx",
                              input_names=["tokens", "lengths"])
    assert "LSTM" in ops and "Conv" in ops
    for B, T in [(3, 9), (2, 40), (5, 3)]:
        tokens, lengths = torch.randint(0, 20, (B, T)), torch.randint(1, T + 1, (B,))
        lengths[0] = T
        (got,) = sess.run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), model(tokens, lengths), rtol=1e-5, atol=1e-5)


def test_export_onnx_takes_an_exported_program_too(tmp_path):
    """A ``torch.export`` program holds birnn's node, which the plain call cannot translate;
    ``birnn.onnx_export.export_onnx`` rewrites it as ONNX's operators first."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from birnn.onnx_export import export_onnx

    model = WithLengths(_layer("GRU", True, 2)).eval()
    program = torch.export.export(model, _inputs(7, 3, 0), dynamic_shapes=DYNAMIC)
    export_onnx(program, (), verbose=False).save(str(tmp_path / "p.onnx"))
    sess = ort.InferenceSession(str(tmp_path / "p.onnx"))
    x, lengths = torch.randn(10, 4, 5), torch.tensor([10, 0, 3, 7])
    with torch.no_grad():
        for g, w in zip(sess.run(None, {"x": x.numpy(), "lengths": lengths.numpy()}), model(x, lengths)):
            torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("option,value", [("zoneout", 0.1), ("layer_norm", True)])
def test_onnx_export_refuses_what_onnx_cannot_write_naming_the_option(option, value, tmp_path):
    pytest.importorskip("onnxscript")
    model = WithLengths(birnn.LSTM(5, 6, bidirectional=True, **{option: value})).eval()
    with pytest.raises(Exception, match=rf"torch.onnx.export cannot write this birnn.LSTM layer as ONNX's "
                                        rf"recurrent operator: {option}"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, _inputs(7, 3, 0), str(tmp_path / "z.onnx"), dynamo=True,
                              dynamic_shapes=DYNAMIC, verbose=False)


COMPILE_GRID = [("LSTM", True, 2), ("LSTM", False, 1), ("GRU", True, 2), ("GRU", False, 1), ("RNN_TANH", True, 2),
                ("RNN_RELU", False, 2)]


@pytest.mark.slow  # torch.compile of a grid: minutes of CPU
@pytest.mark.parametrize("mode,bi,layers", COMPILE_GRID)
def test_compile_once_for_every_T_and_B_training_equals_eager(mode, bi, layers):
    """fullgraph, dynamic shapes, aot_eager (which traces the backward as inductor does): one
    graph for every T, B and lengths; outputs, states and every gradient equal eager's."""
    _compiles_once_and_equals_eager(_layer(mode, bi, layers, dropout=0.0).train(), lambda path: path != "graph-op")


def _compiles_once_and_equals_eager(layer, eager_ran, same_masks=False):
    """``layer`` compiled (fullgraph, dynamic, aot_eager) over several T, B and lengths: the first
    call's graphs serve every later one, and outputs, states and every gradient equal eager's
    (``eager_ran(path)``: what eager must have run; ``same_masks``: seed each call alike).
    Returns the compiled layer."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(layer, backend=counter, fullgraph=True, dynamic=True)
    frames = None
    for T, B in [(7, 3), (12, 5), (2, 2), (40, 4)]:  # (sizes 1 and 0 compile apart: PyTorch specialises them)
        x, lengths = _inputs(T, B, T)
        runs = []
        for fn in (compiled, layer):
            if same_masks:
                torch.manual_seed(T)
            res = fn(x, lengths=lengths)
            (res.output.pow(2).sum() + res.h_n.sum() + (res.c_n.sum() if res.c_n is not None else 0)).backward()
            runs.append((res.output, res.h_n, [p.grad.clone() for p in layer.parameters()], layer.last_decision))
            layer.zero_grad()
        (out, h, grads, _), (out_e, h_e, grads_e, eager) = runs
        assert eager_ran(eager.path), eager  # eager ran eager's own choice
        torch.testing.assert_close(out, out_e, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(h, h_e, rtol=1e-5, atol=1e-6)
        for g, g_e in zip(grads, grads_e):
            torch.testing.assert_close(g, g_e, rtol=1e-4, atol=1e-5)
        frames = counter.frame_count if frames is None else frames
        assert counter.frame_count == frames  # the first call's graphs serve every later T and B
    return compiled


def test_the_issue_lstm_training_step_under_inductor():
    """torch.compile(birnn.LSTM(5, 6), fullgraph=True)(x).output.sum().backward() raised
    "expected Tensor() for op aten.mkldnn_rnn_layer" (pytorch#158007); with the default backend
    it now trains, and a new T runs the same compiled graph."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    lstm = birnn.LSTM(5, 6)
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(lstm, backend=counter, fullgraph=True, dynamic=True)
    from birnn.backends import graph as graph_op

    frames = None
    for T in (4, 9):
        x = torch.randn(T, 2, 5)
        res = compiled(x)
        assert len(graph_op._KEPT) == 1  # the forward kept its graph: the backward runs no second forward
        res.output.sum().backward()
        assert not graph_op._KEPT
        frames = frames or counter.frame_count
        got = [p.grad.clone() for p in lstm.parameters()]
        lstm.zero_grad()
        lstm(x).output.sum().backward()
        for g, p in zip(got, lstm.parameters()):
            torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-5)
        lstm.zero_grad()
    assert counter.frame_count == frames


REGULARISED = dict(recurrent_dropout=0.25, zoneout=0.1, layer_norm=True)


@pytest.mark.slow  # torch.compile of a grid: minutes of CPU
@pytest.mark.parametrize("mode,bi,layers", COMPILE_GRID)
def test_regularised_layers_compile_once_for_every_T_and_B(mode, bi, layers):
    """Recurrent dropout + zoneout (h and c) + layer norm under torch.compile: fullgraph, one
    birnn::regularised_layer node per layer (the packed LSTM or the reference loop inside) instead of T unrolled
    steps, so one graph serves every T, B and lengths; outputs, states and every gradient equal
    eager's with the same masks (aot_eager draws them as eager does), in training and eval."""
    extra = dict(REGULARISED, cell_zoneout=0.15) if mode == "LSTM" else REGULARISED
    layer = _layer(mode, bi, layers, **extra).train()
    eager = "packed" if mode == "LSTM" else "reference"
    compiled = _compiles_once_and_equals_eager(layer, lambda path: path == eager, same_masks=True)
    layer.eval()
    x, lengths = _inputs(9, 3, 1)
    torch.testing.assert_close(compiled(x, lengths=lengths).output, layer(x, lengths=lengths).output)  # expectation


def test_a_regularised_training_step_under_inductor():
    """The default backend (inductor, with PyTorch's eager random numbers so the masks match):
    the regularised LSTM trains as one node per layer, says so, and equals eager."""
    import torch._inductor.config as inductor_config
    from birnn.backends import graph as graph_op

    torch._dynamo.reset()
    lstm = birnn.LSTM(5, 6, num_layers=2, bidirectional=True, **REGULARISED).train()
    compiled = torch.compile(lstm, fullgraph=True, dynamic=True)
    x, lengths = _inputs(11, 3, 0)
    with inductor_config.patch(fallback_random=True):
        torch.manual_seed(2)
        res = compiled(x, lengths=lengths)
        assert "birnn::regularised_layer node per layer (the packed LSTM layer with recurrent_dropout, zoneout, " \
               "layer_norm)" in lstm.last_decision.reason
        assert len(graph_op._KEPT) == 2  # each layer's forward kept its graph for the backward
        res.output.sum().backward()
    assert not graph_op._KEPT
    got = [p.grad.clone() for p in lstm.parameters()]
    lstm.zero_grad()
    torch.manual_seed(2)
    lstm(x, lengths=lengths).output.sum().backward()
    for g, p in zip(got, lstm.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # float64 gradcheck through a compile node
@pytest.mark.parametrize("keep_graph", [True, False])
def test_regularised_node_gradients_pass_gradcheck(keep_graph):
    """birnn::regularised_layer's backward (the kept graph, or a recompute) against float64
    finite differences: layer norm gains included, fixed dropout and zoneout masks, lengths with
    a zero-length row, both directions."""
    from birnn.backends.graph import reference_graph_layer
    from birnn.backends.weights import Norms

    torch.manual_seed(0)
    for mode, G in (("LSTM", 4), ("GRU", 3)):
        D, H, I, T, B = 2, 3, 2, 5, 3
        lengths = torch.tensor([5, 2, 0])
        valid = (torch.arange(T)[:, None] < lengths[None]).unsqueeze(-1)
        drop = (torch.rand(D, B, H) > 0.3).double() / 0.7
        keep_h = (torch.rand(T, D, B, H) < 0.2).double()
        keep_c = (torch.rand(T, D, B, H) < 0.2).double() if mode == "LSTM" else None

        def f(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, ln_cw, ln_cb):
            directions = [[w_ih[d], w_hh[d], b_ih[d], b_hh[d]] for d in range(D)]
            norms = Norms(ln_ih, ln_hh, *((ln_cw, ln_cb) if mode == "LSTM" else (None, None)))
            return reference_graph_layer(mode, x * valid, lengths, h0, c0 if mode == "LSTM" else None, directions,
                                         bias=True, norms=norms, masks=[drop, keep_h, keep_c], rates=(0.2, 0.2),
                                         keep_graph=keep_graph)[:2]

        def t(*shape):
            return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

        args = (t(T, B, I), t(D, B, H), t(D, B, H), t(D, G * H, I), t(D, G * H, H), t(D, G * H), t(D, G * H),
                t(D, G * H), t(D, G * H), t(D, H), t(D, H))
        assert torch.autograd.gradcheck(f, args)


@pytest.mark.slow  # float64 gradcheck through a compile node
@pytest.mark.parametrize("keep_graph", [True, False])
def test_graph_op_gradients_pass_gradcheck(keep_graph):
    """The node's backward — through the graph its forward kept (a training step), or through a
    recompute of the forward — against float64 finite differences, with lengths, a zero-length
    row and both directions."""
    torch.manual_seed(0)
    for mode, G in (("LSTM", 4), ("GRU", 3), ("RNN_TANH", 1)):
        D, H, I, T, B = 2, 3, 2, 5, 3
        lengths = torch.tensor([5, 2, 0])
        valid = (torch.arange(T)[:, None] < lengths[None]).unsqueeze(-1)

        def f(x, h0, c0, *w):
            out, h, c, _ = torch.ops.birnn.recurrent_layer(x * valid, lengths, h0, c0 if mode == "LSTM" else None, *w,
                                                           mode, keep_graph)
            return out, h, c

        def t(*shape):
            return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

        args = (t(T, B, I), t(D, B, H), t(D, B, H), t(D, G * H, I), t(D, G * H, H), t(D, G * H), t(D, G * H))
        assert torch.autograd.gradcheck(f, args)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_quantize_dynamic_int8_as_torch_nn(mode):
    """torch's quantize_dynamic with torch.nn's classes in its spec leaves birnn layers in float
    (it matches exact classes); birnn.quantized.quantize_dynamic runs them on torch.nn's dynamic
    quantized module: the same numbers as torch.nn's quantized layer on the same weights, so the
    same loss of accuracy."""
    from torch.ao.quantization import quantize_dynamic as torch_quantize

    from birnn.quantized import quantize_dynamic

    torch.manual_seed(0)
    layer = getattr(birnn, mode)(5, 16, num_layers=2, bidirectional=True).eval()
    model = torch.nn.Sequential(layer, torch.nn.Identity())
    plain = getattr(torch.nn, mode)(5, 16, num_layers=2, bidirectional=True).eval()
    plain.load_state_dict(layer.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert torch_quantize(model, {torch.nn.LSTM, torch.nn.GRU})[0].quantized is None  # left in float
        q_plain = torch_quantize(torch.nn.Sequential(plain), {torch.nn.LSTM, torch.nn.GRU})[0]
    q = quantize_dynamic(model)[0]
    assert layer.quantized is None  # the float model is untouched
    x, lengths = torch.randn(9, 4, 5), torch.tensor([9, 4, 0, 6])
    with torch.no_grad():
        res = q(x, lengths=lengths)
        assert res.path == "quantized" and "dynamic quantized" in q.last_decision.reason
        packed = torch.nn.utils.rnn.pack_padded_sequence(x[:, [0, 1, 3]], lengths[[0, 1, 3]], enforce_sorted=False)
        out_nn, _ = torch.nn.utils.rnn.pad_packed_sequence(q_plain(packed)[0], total_length=9)
        torch.testing.assert_close(res.output[:, [0, 1, 3]], out_nn, rtol=0, atol=1e-6)
        assert res.output[:, 2].abs().max() == 0  # the empty row: zeros, h_n = h_0
        loss_q = (res.output - layer(x, lengths=lengths).output).abs().max()
        out_float, _ = torch.nn.utils.rnn.pad_packed_sequence(plain(packed)[0], total_length=9)
        loss_nn = (out_nn - out_float).abs().max()
    assert 0 < loss_q <= loss_nn + 1e-6  # int8 costs something, and no more than torch.nn's


def test_quantize_dynamic_leaves_what_it_cannot_run_in_float_and_says_so():
    from birnn.quantized import quantize_dynamic, quantize_layer

    model = torch.nn.Sequential(birnn.RNN(5, 6), birnn.LSTM(6, 6, layer_norm=True), torch.nn.Linear(6, 2))
    with pytest.warns(UserWarning) as record:
        q = quantize_dynamic(model)
    messages = " ".join(str(w.message) for w in record)
    assert "0 (birnn.RNN) stays in float: PyTorch has no dynamic quantized RNN_TANH module" in messages
    assert "1 (birnn.LSTM) stays in float: the quantized module does not run layer_norm" in messages
    assert q[0].quantized is None and q[1].quantized is None
    assert type(q[2]).__module__.startswith("torch.ao.nn.quantized.dynamic")  # torch's own mapping still applies
    with pytest.raises(ValueError, match="dtype must be torch.qint8 or torch.float16"):
        quantize_layer(birnn.GRU(3, 4), dtype=torch.int8)


def _export_case(kind):
    import numpy as np

    from birnn import tasks
    from birnn.data import SeriesSplits, Splits

    g = torch.Generator().manual_seed(0)
    if kind == "series":  # long enough to be read in patches
        recs = [(torch.randn(int(torch.randint(60, 90, (1,), generator=g)), 2, generator=g).numpy(), str(i % 3))
                for i in range(12)]
        return tasks.build_run("classify", Splits(recs, recs, recs), {"layers": ["bigru:6"]})
    if kind == "forecast":
        series = np.sin(np.arange(300) * 0.1).astype(np.float32)[:, None]
        return tasks.build_run("forecast", SeriesSplits(series, 240, 270), {"layers": ["bilstm:6"], "window": 20,
                                                                            "horizon": 3})
    if kind == "tagging":
        recs = [(["the", "cat", "sat"], ["O", "B-A", "O"]), (["a", "dog"], ["O", "B-A"])]
        return tasks.build_run("tag", Splits(recs, recs, recs), {"layers": ["bilstm:6"], "word_dim": 4,
                                                                 "char_dim": 3, "char_hidden": 3})
    texts = [("a good film", "pos"), ("a bad film", "neg"), ("good", "pos"), ("dull and bad", "neg")]
    return tasks.build_run("classify", Splits(texts, texts, texts), {"layers": ["bilstm:6"], "embedding_dim": 4,
                                                                     "min_freq": 1, "input": kind})


@pytest.mark.parametrize("kind", ["words", "chars", "both", "series", "tagging", "forecast"])
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_exported_runs_score_as_the_run_does(kind, fmt, tmp_path):
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
    from birnn import tasks
    from birnn.export import export_run

    run, records = _export_case(kind)
    path = export_run(run, tmp_path / f"model.{fmt}", fmt)
    meta = json.loads((tmp_path / "preprocessing.json").read_text())
    batch = next(tasks.batches_of(run.encoder, tasks.encode_all(run.encoder, records["test"])))
    x, lengths = (run.model.patched(batch.inputs, batch.lengths) if run.kind == "series"
                  else (batch.inputs, batch.lengths))
    assert meta["patch"] == (run.model.patch if run.kind == "series" else 1) and (kind != "series" or meta["patch"] > 1)
    feeds = {"ids": x, "x": x, "lengths": lengths, "chars": batch.chars}
    inputs = [feeds[name] for name in meta["inputs"]]
    with torch.no_grad():
        out = run.model(batch)
        want = torch.softmax(out, -1) if run.kind in ("text", "series") else out
    if fmt == "onnx":
        got = ort.InferenceSession(str(path)).run(None, {n: t.numpy() for n, t in zip(meta["inputs"], inputs)})[0]
        got = torch.from_numpy(got)
    else:
        got = torch.export.load(str(path)).module()(*inputs)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert meta["preprocessing"]["class"] == type(run.encoder).__name__


def test_birnn_export_from_the_cli(tmp_path, capsys):
    from birnn import cli

    texts = "text,label\n" + "".join(f"{w} film,{lab}\n" for w, lab in [("good", "pos"), ("bad", "neg")] * 10)
    (tmp_path / "t.csv").write_text(texts)
    assert cli.main(["train", "classify", "--train", str(tmp_path / "t.csv"), "--layers", "bigru:4",
                     "--embedding-dim", "4", "--epochs", "1", "--min-freq", "1", "--input", "words",
                     "--out", str(tmp_path / "run")]) == 0
    assert cli.main(["export", str(tmp_path / "run"), "--format", "pt2"]) == 0
    out = capsys.readouterr().out
    assert f"exported {tmp_path / 'run' / 'model.pt2'}" in out and "(inputs: ids, lengths)" in out
    assert (tmp_path / "run" / "preprocessing.json").exists()


def test_int8_onnx_export_of_a_trained_run_scores_as_the_float_one(tmp_path, capsys):
    """``birnn export --int8``: onnxruntime's dynamic quantization (its LSTM operator with int8
    weights); the test split's accuracy in onnxruntime within 0.01 of the float file's."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxruntime.quantization")
    import numpy as np
    import onnx

    from birnn import cli, tasks
    from birnn.data import load_source

    g = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    rows = []
    for _ in range(600):  # the label: which marker word comes first
        text = list(g.choice(words, g.integers(4, 14)))
        a, b = sorted(g.choice(len(text), 2, replace=False))
        first = g.integers(2)
        text[a], text[b] = ("yes", "no") if first else ("no", "yes")
        rows.append(f"{' '.join(text)},{'Y' if first else 'N'}\n")
    (tmp_path / "t.csv").write_text("text,label\n" + "".join(rows[:400]))
    (tmp_path / "test.csv").write_text("text,label\n" + "".join(rows[400:]))
    assert cli.main(["train", "classify", "--train", str(tmp_path / "t.csv"), "--test", str(tmp_path / "test.csv"),
                     "--layers", "bilstm:16",
                     "--embedding-dim", "8", "--epochs", "6", "--input", "words", "--baseline", "none",
                     "--out", str(tmp_path / "run")]) == 0
    accuracy = {}
    for int8 in (False, True):
        out = tmp_path / ("int8" if int8 else "float") / "model.onnx"
        assert cli.main(["export", str(tmp_path / "run"), "--out", str(out)] + (["--int8"] if int8 else [])) == 0
        if int8:
            assert "int8: " in capsys.readouterr().out
            assert "DynamicQuantizeLSTM" in {n.op_type for n in onnx.load(str(out)).graph.node}
        run = tasks.load_run(tmp_path / "run")
        test = tasks.split_records(run.task, load_source(run.task, run.config["source"]),
                                   dict(run.config["resolved"]["model"]))["test"]
        session, right = ort.InferenceSession(str(out)), 0
        for batch in tasks.batches_of(run.encoder, tasks.encode_all(run.encoder, test)):
            (probs,) = session.run(None, {"ids": batch.inputs.numpy(), "lengths": batch.lengths.numpy()})
            right += int((torch.from_numpy(probs.argmax(-1)) == batch.targets).sum())
        accuracy[int8] = right / len(test)
    assert accuracy[False] > 0.75, accuracy  # (a trained model, not chance: 0.5)
    assert abs(accuracy[True] - accuracy[False]) <= 0.01, accuracy
    assert cli.main(["export", str(tmp_path / "run"), "--format", "pt2", "--int8"]) != 0
    assert "int8 is an ONNX export" in capsys.readouterr().err


def test_a_quantized_layer_refuses_what_it_cannot_run():
    from birnn.quantized import quantize_layer

    q = quantize_layer(birnn.LSTM(5, 6, num_layers=2, bidirectional=True, dropout=0.3))
    x = torch.randn(4, 2, 5)
    with pytest.raises(ValueError, match=r"returns no per-layer outputs \(return_all='layers'\)"):
        q(x, return_all="layers")
    with pytest.raises(RuntimeError, match=r"runs in eval mode only: call \.eval\(\)"):
        q.train()(x)


@pytest.mark.parametrize("dtype", [torch.qint8, torch.float16])
def test_torchs_own_quantize_dynamic_quantizes_birnn_layers_in_its_spec(dtype):
    """torch.ao.quantization.quantize_dynamic(model, {birnn.LSTM}) returned birnn's layers in float,
    silently (it matches exact classes): birnn registers them in torch's default mapping, so the
    plain call gives what birnn.quantized.quantize_dynamic gives; what cannot be quantized warns."""
    from torch.ao.quantization import quantize_dynamic as torch_quantize

    from birnn.quantized import quantize_dynamic

    torch.manual_seed(0)
    model = torch.nn.Sequential(birnn.LSTM(5, 8, bidirectional=True), birnn.GRU(16, 4)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        q = torch_quantize(model, {birnn.LSTM, birnn.GRU}, dtype=dtype)
        with pytest.warns(UserWarning, match="birnn.RNN stays in float: PyTorch has no dynamic quantized RNN_TANH"):
            torch_quantize(torch.nn.Sequential(birnn.RNN(5, 8)), {birnn.RNN}, dtype=dtype)
    assert model[0].quantized is None and all(layer.quantized is not None for layer in q)
    ours = quantize_dynamic(model, dtype=dtype)
    x, lengths = torch.randn(7, 3, 5), torch.tensor([7, 2, 5])
    with torch.no_grad():
        got = q[1](q[0](x, lengths=lengths).output, lengths=lengths)
        want = ours[1](ours[0](x, lengths=lengths).output, lengths=lengths)
    assert got.path == "quantized" and torch.equal(got.output, want.output)


SCAN_GRID = [("MinGRU", True, 1), ("MinLSTM", False, 1)]  # (the captured scan is 20 levels a layer: export takes time)


@pytest.mark.parametrize("name,bi,layers", SCAN_GRID)
def test_scan_cells_export_with_the_users_own_onnx_call_and_run_in_onnxruntime(name, bi, layers, tmp_path,
                                                                                 monkeypatch):
    """The linear cells are plain tensor ops: ``torch.onnx.export(..., dynamo=True)`` with no
    extra argument gives a graph of standard operators for any T, B and lengths. (A captured
    scan of 9 levels here, T <= 512, for the suite's time; the depth's limit has its own test.)"""
    from birnn.backends.scan import linear

    monkeypatch.setattr(linear, "MAX_DEPTH", 9)
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    torch.manual_seed(0)
    model = WithLengths(getattr(birnn, name)(5, 6, num_layers=layers, bidirectional=bi)).eval()
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, _inputs(7, 3, 0), str(path), dynamo=True, dynamic_shapes=DYNAMIC,
                          input_names=["x", "lengths"], verbose=False)
    assert all(n.domain in ("", "ai.onnx") for n in onnx.load(str(path)).graph.node)
    sess = ort.InferenceSession(str(path))
    for T, B in SHAPES + [(300, 2)]:
        x, lengths = _inputs(T, B, T)
        lengths[-1] = 0 if B > 1 else lengths[-1]  # an empty row: zeros, h_n = h_0
        got = sess.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})
        with torch.no_grad():
            want = model(x, lengths)
        assert model.layer.last_decision.path == "scan"
        for g, w in zip(got, want):
            torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # torch.compile: half a minute of CPU
def test_scan_cells_compile_once_for_every_T_and_B_training_equals_eager(monkeypatch):
    """(MinLSTM differs from MinGRU only in its coefficients, which the eager tests cover; a
    captured scan of 6 levels, T <= 64, for the suite's time.)"""
    from birnn.backends.scan import linear

    monkeypatch.setattr(linear, "MAX_DEPTH", 6)
    torch.manual_seed(0)
    layer = birnn.MinGRU(5, 6, bidirectional=True).train()
    _compiles_once_and_equals_eager(layer, lambda path: path == "scan")


class WithStates(torch.nn.Module):
    """A layer with non-zero initial states (buffers), as an encoder fed a previous state."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        rows = layer.num_layers * layer.num_directions
        self.register_buffer("h0", torch.randn(rows, 1, layer.hidden_size))
        self.register_buffer("c0", torch.randn(rows, 1, layer.hidden_size))

    def forward(self, x, lengths):
        B = x.shape[1]
        h0 = self.h0.expand(-1, B, -1).contiguous()
        hx = (h0, self.c0.expand(-1, B, -1).contiguous()) if self.layer.mode == "LSTM" else h0
        res = self.layer(x, hx, lengths=lengths)
        return (res.output, res.h_n) + ((res.c_n,) if res.c_n is not None else ())


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_onnx_reads_the_same_in_openvino_and_onnxruntime(mode, tmp_path):
    """OpenVINO runs ONNX's recurrent operators through every step whatever ``sequence_lens``
    says; the exported form (each direction forward over its own order, padding masked, h_n
    gathered, the LSTM's cell state frozen on padding) gives eager's numbers in both runtimes,
    non-zero initial states and empty rows included."""
    ov = pytest.importorskip("openvino")
    torch.manual_seed(0)
    model = WithStates(_layer(mode, True, 2)).eval()
    sess, _ = _onnx_session(model, _inputs(7, 3, 0), DYNAMIC, tmp_path / "m.onnx")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(tmp_path / "m.onnx")), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})  # (bf16 by default where the CPU has AMX)
    for T, B in SHAPES + [(11, 4)]:
        x, lengths = _inputs(T, B, T)
        if B == 4:
            lengths = torch.tensor([11, 3, 0, 1])
        with torch.no_grad():
            want = model(x, lengths)
        for got in (sess.run(None, {"x": x.numpy(), "lengths": lengths.numpy()}),
                    [compiled([x.numpy(), lengths.numpy()])[k] for k in range(len(want))]):
            for g, w in zip(got, want):
                torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-4, atol=1e-4)


# -- ExecuTorch ------------------------------------------------------------------------------------
def _pte_method(model, args, dynamic_shapes, path):
    pytest.importorskip("executorch")
    from executorch.runtime import Runtime

    from birnn.pte_export import export_pte

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_pte(model, args, str(path), dynamic_shapes=dynamic_shapes)
    return Runtime.get().load_program(str(path)).load_method("forward")


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])  # (the RNN's step is the GRU's path: one state)
def test_executorch_runs_birnn_layers_at_any_T_up_to_its_bound(mode, tmp_path):
    """The layers become a higher-order scan over T, which ExecuTorch's runtime runs as a loop:
    eager's numbers at every T up to the bound, lengths and an empty row included."""
    model = WithStates(_layer(mode, True, 2)).eval()
    method = _pte_method(model, _inputs(7, 3, 0), ({0: Dim("T", min=2, max=40)}, None), tmp_path / "m.pte")
    for T in (7, 19, 40, 2):
        x, lengths = _inputs(T, 3, T)
        lengths[2] = 0
        with torch.no_grad():
            want = model(x, lengths)
        got = method.execute([x, lengths])
        assert len(got) == len(want)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception):  # above the bound the runtime refuses the input
        method.execute(list(_inputs(41, 3, 0)))


def test_executorch_export_refuses_a_dynamic_batch_naming_it(tmp_path):
    pytest.importorskip("executorch")
    from birnn.pte_export import export_pte

    with pytest.raises(ValueError, match="batch dimension is dynamic"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_pte(WithLengths(_layer("GRU", True, 1)).eval(), _inputs(7, 3, 0),
                       dynamic_shapes=({0: Dim("T", max=40), 1: Dim("B", max=8)}, {0: Dim("B", max=8)}))


@pytest.mark.parametrize("kind", ["words", "series"])
def test_birnn_export_pte_scores_as_the_run_does(kind, tmp_path):
    pytest.importorskip("executorch")
    from executorch.runtime import Runtime

    from birnn import tasks
    from birnn.export import export_run

    run, records = _export_case(kind)
    path = export_run(run, tmp_path / "model.pte", "pte", max_steps=200)
    meta = json.loads((tmp_path / "preprocessing.json").read_text())
    assert meta["format"] == "pte" and meta["batch"] == 1 and meta["max_steps"] == 200
    method = Runtime.get().load_program(str(path)).load_method("forward")
    for example in tasks.encode_all(run.encoder, records["test"])[:3]:
        batch = run.encoder.collate([example])
        x, lengths = (run.model.patched(batch.inputs, batch.lengths) if run.kind == "series"
                      else (batch.inputs, batch.lengths))
        feeds = {"ids": x, "x": x, "lengths": lengths}
        with torch.no_grad():
            out = run.model(batch)
            want = torch.softmax(out, -1) if run.kind in ("text", "series") else out
        (got,) = method.execute([feeds[name] for name in meta["inputs"]])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
