"""The n-gram bag beside a text classifier's RNN (birnn.models.ngrams): its hashing and mean
against a loop written out, padding that changes nothing, and a run that takes it (--ngrams N)."""

import pytest
import torch

import birnn
from birnn.models import SequenceClassifier
from birnn.models.ngrams import NgramBag

from helpers import write_text_data


def reference(bag, tokens, length):
    """The bag of one sequence, written out: every n-gram inside it, hashed as documented
    (h = t0 mod R; h = (h * 1000003 + t_j) mod R; row = (h + 7919 k) mod R), rows averaged."""
    R, rows = bag.buckets, []
    for k in range(1, bag.n + 1):
        for t in range(length - k + 1):
            h = tokens[t] % R
            for j in range(1, k):
                h = (h * 1_000_003 + tokens[t + j]) % R
            rows.append((h + 7919 * k) % R)
    if not rows:
        return torch.zeros(bag.embed.embedding_dim, dtype=torch.float64)
    return bag.embed.weight.double()[rows].mean(0)


def test_the_bag_equals_the_loop_written_out_and_ignores_padding():
    torch.manual_seed(0)
    bag = NgramBag(4, buckets=211, dim=5).double()
    tokens = torch.randint(0, 50, (4, 9))
    lengths = torch.tensor([9, 5, 1, 0])
    tokens[1, 5:] = 0
    tokens[2, 1:] = 3  # (whatever lies past the end)
    got = bag(tokens, lengths)
    for b in range(4):
        torch.testing.assert_close(got[b], reference(bag, tokens[b].tolist(), int(lengths[b])))
        alone = bag(tokens[b:b + 1, : max(int(lengths[b]), 1)], lengths[b:b + 1])
        torch.testing.assert_close(alone[0], got[b])  # a padded row equals the row run alone
    assert got[3].abs().sum() == 0  # an empty sequence: zeros


def test_a_classifier_with_the_bag_learns_through_it_and_checks_its_arguments():
    model = SequenceClassifier(num_classes=2, vocab_size=30, embedding_dim=4, layers=["bigru:3"], ngrams=2,
                               ngram_buckets=64, ngram_dim=5)
    assert model.head[0].in_features == 6 + 5  # the RNN's summary (2 x 3) and the bag (5)
    batch = birnn.data.Batch(torch.tensor([[4, 5, 6], [7, 8, 0]]), torch.tensor([3, 2]), torch.tensor([0, 1]))
    total, _ = model.loss(batch)
    total.backward()
    used = model.ngrams.embed.weight.grad.abs().sum(1) > 0
    rows = {int(r) for k in (1, 2) for r in model.ngrams.ids(batch.inputs, k)[0, : 4 - k]}
    rows |= {int(r) for k in (1, 2) for r in model.ngrams.ids(batch.inputs, k)[1, : 3 - k]}
    assert set(used.nonzero().flatten().tolist()) == rows  # only the n-grams inside the sequences
    with pytest.raises(ValueError, match="ngrams applies to token ids"):
        SequenceClassifier(num_classes=2, input_size=3, ngrams=2)
    with pytest.raises(ValueError, match="ngrams must be an int >= 0"):
        SequenceClassifier(num_classes=2, vocab_size=10, ngrams=-1)


def test_a_run_takes_the_bag_when_asked_and_records_it(tmp_path):
    train, dev = write_text_data(tmp_path)
    common = dict(train=train, dev=dev, layers=["bigru:4"], epochs=1, baseline="none", verbose=False)
    chars = birnn.fit("classify", **common, input="chars", ngrams=4, out=tmp_path / "c")
    plain = birnn.fit("classify", **common, out=tmp_path / "n")
    assert chars._run.model.ngrams.n == 4 and plain._run.model.ngrams is None  # (off unless asked: RESULTS.md)
    assert "ngrams = 4" in (tmp_path / "c" / "run.toml").read_text()
    assert "ngrams = 0" in (tmp_path / "n" / "run.toml").read_text()
    again = birnn.load(tmp_path / "c")
    assert again.predict(["good fine", "bad"]) == chars.predict(["good fine", "bad"])
