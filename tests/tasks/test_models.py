"""Task models: CRF against brute-force enumeration, pooling and padding, stacks, learning."""

import itertools

import pytest
import torch

from birnn.data import Batch
from birnn.models import CRF, Forecaster, LayerSpec, RecurrentStack, SequenceClassifier, SequenceTagger


def brute_force(crf, emissions, length):
    """All N^T paths of one sequence: (log Z, best path, score of every path)."""
    N = crf.num_tags
    scores = {}
    for path in itertools.product(range(N), repeat=length):
        s = crf.start[path[0]] + crf.end[path[-1]] + sum(emissions[t, path[t]] for t in range(length))
        s = s + sum(crf.transitions[path[t - 1], path[t]] for t in range(1, length))
        scores[path] = s
    values = torch.stack(list(scores.values()))
    return torch.logsumexp(values, 0), max(scores, key=lambda p: scores[p]), scores


def test_crf_against_brute_force_with_lengths():
    torch.manual_seed(0)
    crf = CRF(3).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(3, 4, 3, dtype=torch.float64)
    lengths = torch.tensor([4, 2, 1])
    tags = torch.randint(0, 3, (3, 4))
    log_z = crf.log_partition(emissions, lengths)
    paths = crf.decode(emissions, lengths)
    ll = crf.log_likelihood(emissions, tags, lengths)
    for b in range(3):
        n = int(lengths[b])
        z, best, scores = brute_force(crf, emissions[b], n)
        torch.testing.assert_close(log_z[b], z)
        assert paths[b, :n].tolist() == list(best) and torch.all(paths[b, n:] == -100)
        torch.testing.assert_close(ll[b], scores[tuple(tags[b, :n].tolist())] - z)
    # the likelihood gradient equals the brute-force one
    ll.sum().backward()
    grad = crf.transitions.grad.clone()
    crf.zero_grad()
    total = sum(brute_force(crf, emissions[b], int(lengths[b]))[2][tuple(tags[b, :int(lengths[b])].tolist())]
                - brute_force(crf, emissions[b], int(lengths[b]))[0] for b in range(3))
    total.backward()
    torch.testing.assert_close(grad, crf.transitions.grad)


def test_crf_refuses_empty_sequences_and_bad_shapes():
    crf = CRF(3)
    with pytest.raises(ValueError, match="at least one step"):
        crf.log_partition(torch.randn(2, 3, 3), torch.tensor([3, 0]))
    with pytest.raises(ValueError, match=r"emissions must be \(B, T, N=3\)"):
        crf.decode(torch.randn(2, 3, 4), torch.tensor([3, 1]))


def _text_batch(B=4, T=9, V=20):
    lengths = torch.tensor([9, 3, 5, 1])
    tokens = torch.randint(2, V, (B, T))
    tokens[torch.arange(T)[None] >= lengths[:, None]] = 0
    return Batch(tokens, lengths, torch.tensor([0, 2, 1, 0]))


@pytest.mark.parametrize("pooling", ["final", "mean", "max", "last", "attention"])
def test_classifier_pooling_ignores_padding(pooling):
    torch.manual_seed(0)
    model = SequenceClassifier(num_classes=3, vocab_size=20, embedding_dim=8, layers=["bigru:6", "lstm:5"],
                               pooling=pooling).eval()
    batch = _text_batch()
    other = Batch(batch.inputs.clone(), batch.lengths, batch.targets)
    other.inputs[1, 3:] = 7  # different padding tokens
    torch.testing.assert_close(model(batch), model(other))
    assert model(batch).shape == (4, 3)


def test_classifier_feature_input_and_arguments():
    model = SequenceClassifier(num_classes=2, input_size=3, layers=["bilstm:4"], input_noise=0.1)
    out = model(Batch(torch.randn(2, 5, 3), torch.tensor([5, 2])))
    assert out.shape == (2, 2)
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        SequenceClassifier(num_classes=2)
    with pytest.raises(ValueError, match="pooling must be one of"):
        SequenceClassifier(num_classes=2, input_size=3, pooling="median")


def test_stack_specs_mix_directions_and_merge_modes():
    stack = RecurrentStack(5, ["bilstm:8:sum", "gru:4", "birnn_relu:3*2"])
    assert [str(s) for s in stack.specs] == ["bilstm:8:sum", "gru:4", "birnn_relu:3*2"]
    assert [l.output_size for l in stack.layers] == [8, 4, 6] and stack.output_size == 6
    res = stack(torch.randn(3, 7, 5), lengths=torch.tensor([7, 2, 4]))
    assert res.output.shape == (3, 7, 6) and torch.all(res.output[1, 2:] == 0)
    assert stack.layers[0].forget_bias == 1.0
    with pytest.raises(ValueError, match="layer spec must look like"):
        LayerSpec.parse("bilstm128")


def test_tagger_chars_and_crf_and_padding():
    torch.manual_seed(0)
    model = SequenceTagger(num_tags=4, vocab_size=30, char_vocab_size=10, word_dim=6, char_dim=4, char_hidden=3,
                           layers=["bilstm:5"], crf=True).eval()
    chars = torch.randint(2, 10, (2, 5, 4))
    chars[1, 3:] = 0  # padding words have no characters
    batch = Batch(torch.randint(2, 30, (2, 5)), torch.tensor([5, 3]), torch.randint(0, 4, (2, 5)), chars)
    feats = model.chars(chars)
    assert feats.shape == (2, 5, 6) and torch.all(feats[1, 3:] == 0)
    pred = model.predict(batch)
    assert torch.all(pred[1, 3:] == -100) and torch.all(pred[0] >= 0)
    total, count = model.loss(batch)
    assert count == 2 and total.item() > 0


def test_forecaster_shapes():
    model = Forecaster(channels=2, horizon=3, layers=["bigru:4:ave"], head=[8])
    out = model(Batch(torch.randn(5, 10, 2), torch.full((5,), 10)))
    assert out.shape == (5, 3, 2)


def test_tagger_learns_a_contextual_rule():
    """Tag = whether the previous word is even: needs context, learnable in seconds."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    words = torch.randint(2, 12, (64, 8), generator=g)
    tags = torch.zeros_like(words)
    tags[:, 1:] = (words[:, :-1] % 2 == 0).long()
    lengths = torch.randint(3, 9, (64,), generator=g)
    tags[torch.arange(8)[None] >= lengths[:, None]] = -100
    batch = Batch(words, lengths, tags)
    model = SequenceTagger(num_tags=2, vocab_size=12, word_dim=8, layers=["bilstm:16"], dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        total, count = model.loss(batch)
        opt.zero_grad()
        (total / count).backward()
        opt.step()
    pred = model.eval().predict(batch)
    valid = tags != -100
    assert (pred[valid] == tags[valid]).float().mean() > 0.95
