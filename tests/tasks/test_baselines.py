"""The practitioner's baseline of every run (birnn.app.baselines): each baseline against a
hand-computed case, the fallback when a package is missing, and a run reporting its baseline
beside the model on the same split — in the header, metrics.json, the summary and evaluate."""

import json

import numpy as np
import pytest

import birnn
from birnn.app import report
from birnn.app.baselines import Baseline, Unavailable, fit_baseline
from birnn.app.baselines.forecast import NaiveForecast, season_of
from birnn.app.baselines.series import NearestDTW, NearestEuclidean
from birnn.app.baselines.tagging import FeatureCRF, MostFrequentTag
from birnn.app.baselines.text import TfidfLogistic
from birnn.data import make_windows

from helpers import sentences, write_conllu, write_text_data


def test_text_baseline_picks_characters_where_words_do_not_repeat():
    pytest.importorskip("sklearn")
    # every name is new: no word recurs, but the last letter gives the class
    rng = np.random.default_rng(0)
    letters = list("bcdfghklmnprstvz")

    def name(label):
        stem = "".join(rng.choice(letters, 4)) + "o"
        return stem + ("a" if label == "F" else "k")

    train = [(name(y), y) for y in ["F", "M"] * 40]
    dev = [(name(y), y) for y in ["F", "M"] * 10]
    fitted = TfidfLogistic().fit(train, dev)
    assert fitted.name.startswith("char 1-4-gram")
    assert fitted.predict(dev) == [y for _, y in dev]


def test_most_frequent_tag_by_hand():
    train = [(["The", "dog", "runs"], ["DET", "NOUN", "VERB"]), (["the", "runs"], ["DET", "NOUN"]),
             (["runs"], ["VERB"])]
    b = MostFrequentTag().fit(train, train)
    # "runs": VERB twice, NOUN once; an unseen word: the most frequent tag overall (DET/NOUN/VERB: 2/2/2 ->
    # the first counted of the most common)
    assert b.predict([(["THE", "runs", "cat"], None)]) == [["DET", "VERB", "DET"]]


def test_feature_crf_learns_a_suffix_rule_and_bio_transitions():
    pytest.importorskip("sklearn_crfsuite")
    rng = np.random.default_rng(1)
    stems = ["berl", "mad", "lond", "par", "vien", "ost", "kiel", "bonn"]

    def sent():
        words, tags = [], []
        for _ in range(6):
            if rng.random() < 0.3:  # a two-word entity: Xstadt Yheim
                words += [rng.choice(stems).title() + "stadt", rng.choice(stems).title() + "heim"]
                tags += ["B-LOC", "I-LOC"]
            else:
                words.append(rng.choice(stems) + "ing")
                tags.append("O")
        return words, tags

    train, test = [sent() for _ in range(80)], [sent() for _ in range(20)]
    crf = FeatureCRF().fit(train, test)
    assert crf.predict(test) == [t for _, t in test]


def dtw(a, b):
    """DTW distance written out (squared point distances, full window): the reference."""
    n, m = len(a), len(b)
    d = np.full((n + 1, m + 1), np.inf)
    d[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = ((a[i - 1] - b[j - 1]) ** 2).sum() + min(d[i - 1, j], d[i, j - 1], d[i - 1, j - 1])
    return d[n, m]


def test_nearest_dtw_matches_dtw_written_out_where_euclidean_differs():
    pytest.importorskip("aeon.distances")
    rng = np.random.default_rng(2)
    bump = lambda at, T=24: np.exp(-0.5 * ((np.arange(T) - at) / 1.5) ** 2)[:, None]
    # class "early": a bump early; "late": late; the query is a shifted "early" bump of another length
    train = [(bump(6) + 0.01 * rng.standard_normal((24, 1)), "early"), (bump(18) + 0.01 * rng.standard_normal((24, 1)), "late"),
             (np.zeros((24, 1)), "flat")]
    queries = [(bump(9, 20), None), (bump(15, 30), None), (np.zeros((17, 1)), None)]
    by_hand = [train[int(np.argmin([dtw(q, x) for x, _ in train]))][1] for q, _ in queries]
    assert NearestDTW().fit(train, train).predict(queries) == by_hand


def test_nearest_euclidean_resamples_to_the_training_median():
    train = [(np.array([[0.0], [1.0], [2.0]]), "up"), (np.array([[2.0], [1.0], [0.0]]), "down"),
             (np.array([[0.0], [0.0], [0.0], [0.0]]), "flat")]
    b = NearestEuclidean().fit(train, train)
    assert b.steps == 3 and "resampled to 3 steps" in b.name
    # (0, 0.5, 1, 1.5, 2) resampled to 3 steps is (0, 1, 2): "up" exactly
    assert b.predict([(np.linspace(0, 2, 5)[:, None], None), (np.array([[3.0], [0.0]]), None)]) == ["up", "down"]


def test_naive_forecast_chooses_the_season_on_dev():
    t = np.arange(400)
    seasonal = (np.sin(2 * np.pi * t / 12) + 0.05 * np.random.default_rng(3).standard_normal(400))[:, None]
    train = list(zip(*make_windows(seasonal, 30, 3, stop=300)))
    dev = list(zip(*make_windows(seasonal, 30, 3, start=300)))
    b = NaiveForecast().fit(train, dev)
    assert b.season == 12 and "season 12" in b.name
    x = np.arange(30.0)[:, None]
    # step k ahead: the value 12 steps before it (k <= 12), i.e. x[30 - 12 + k - 1]
    np.testing.assert_array_equal(b.predict([(x, np.zeros((3, 1)))])[0][:, 0], [18.0, 19.0, 20.0])
    walk = np.cumsum(np.random.default_rng(4).standard_normal(400))[:, None]
    b = NaiveForecast().fit(list(zip(*make_windows(walk, 30, 1, stop=300))), list(zip(*make_windows(walk, 30, 1, start=300))))
    assert b.season is None and b.predict([(x, np.zeros((1, 1)))])[0].tolist() == [[29.0]]
    assert season_of(np.ones((50, 1)), 30) is None  # (no variance: no season)


def test_a_baseline_that_cannot_run_passes_to_the_next():
    class Missing(Baseline):
        name = "needs a package"

        def fit(self, train, dev):
            raise Unavailable("needs somepackage")

    train = [(["a"], ["X"])]
    fitted, skipped = fit_baseline((Missing, MostFrequentTag), train, train)
    assert isinstance(fitted.baseline, MostFrequentTag) and skipped == ["needs a package: needs somepackage"]
    assert fit_baseline((Missing,), train, train) == (None, skipped)


def test_a_run_reports_its_baseline_beside_the_model(tmp_path):
    pytest.importorskip("sklearn_crfsuite")
    for name, n, seed in (("train", 40, 0), ("dev", 10, 2), ("test", 10, 1)):
        write_conllu(tmp_path / f"{name}.conllu", sentences(n, seed=seed))
    files = {k: tmp_path / f"{k}.conllu" for k in ("train", "dev", "test")}
    model = birnn.fit("tag", **files, out=tmp_path / "run", layers=["bilstm:4"], epochs=1, batch_size=8,
                      verbose=False)
    base = model.metrics["baseline"]
    assert base["name"].startswith("feature CRF")
    assert {"dev_accuracy", "test_accuracy", "dev_macro_f1", "test_macro_f1"} <= set(base)
    # the same number from the baseline fitted by hand on the same files, scored by hand
    train, dev, test = (birnn.data.read_conllu(files[k]) for k in ("train", "dev", "test"))
    pred = FeatureCRF().fit(train, dev).predict(test)
    pairs = [(p, g) for ps, (_, gs) in zip(pred, test) for p, g in zip(ps, gs)]
    assert base["test_accuracy"] == pytest.approx(sum(p == g for p, g in pairs) / len(pairs))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["baseline"] == base
    shown = report.summary(model.metrics, lead="accuracy")
    assert "baseline test" in shown.splitlines()[0] and f"{base['test_accuracy']:.4f}" in shown
    again = model.evaluate(files["test"], baseline=True)  # refitted from the recorded source
    assert again["baseline"]["test_accuracy"] == pytest.approx(base["test_accuracy"])
    assert "baseline" not in model.evaluate(files["test"])
    off = birnn.fit("tag", train=files["train"], out=tmp_path / "off", layers=["bilstm:4"], epochs=1,
                    baseline="none", verbose=False)
    assert "baseline" not in off.metrics


def test_text_and_series_runs_score_their_baseline_with_the_task_metrics(tmp_path):
    pytest.importorskip("sklearn")
    train, dev = write_text_data(tmp_path, n_train=40, n_dev=20)
    model = birnn.fit("classify", train=train, dev=dev, out=tmp_path / "text", layers=["bigru:4"], epochs=1,
                      verbose=False)
    base = model.metrics["baseline"]
    assert "tf-idf + logistic regression" in base["name"] and base["dev_accuracy"] == 1.0  # (one word decides)
    model = birnn.fit(dataset="sine", out=tmp_path / "sine", layers=["bigru:4"], epochs=1, verbose=False)
    base = model.metrics["baseline"]
    assert base["name"].startswith(("naive", "seasonal naive")) and {"dev_mae", "test_mae", "test_rmse"} <= set(base)
    if base["name"].startswith("naive"):  # the last value: the task's own naive columns
        assert base["test_mae"] == pytest.approx(model.metrics["test_naive_mae"], rel=1e-5)
