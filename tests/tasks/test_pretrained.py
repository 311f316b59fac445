"""The Python API of a trained run (birnn.load / fit / TrainedModel): the round trips the CLI
and Python make of the same model, on raw inputs, give the same predictions."""

import json

import numpy as np
import pytest
import torch

import birnn
from birnn import cli
from helpers import sentences, train_args, write_conllu, write_text_data


def _cli_json(capsys, *args):
    assert cli.main([*map(str, args)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_cli_run_loads_in_python_and_predicts_raw_texts_as_birnn_predict(tmp_path, capsys):
    train, dev = write_text_data(tmp_path)
    assert cli.main(train_args(train, dev, tmp_path / "run")) == 0
    capsys.readouterr()
    texts = ["good fine great", "awful poor", "nice", "bad dull dull bad"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    want = _cli_json(capsys, "predict", tmp_path / "run", tmp_path / "texts.txt", "--output", "json", "--scores")

    model = birnn.load(tmp_path / "run")
    assert (model.task, model.kind, model.labels) == ("classify", "text", ["neg", "pos"])
    assert model.predict(texts) == [w["label"] for w in want]
    assert model.predict(texts[0]) == want[0]["label"]  # one item, one prediction
    assert model.predict_proba(texts) == [w["scores"] for w in want]
    # evaluate: the file's metrics, as `birnn evaluate --json` gives them
    ev = _cli_json(capsys, "evaluate", tmp_path / "run", "--data", dev, "--json")
    got = model.evaluate(dev, report=True)
    assert got["test_accuracy"] == ev["test_accuracy"] and got["report"] == ev["report"]
    # records in memory, as the readers make them
    assert model.evaluate([("good nice", "pos"), ("bad", "neg")])["test_accuracy"] in (0.0, 0.5, 1.0)
    with pytest.raises(TypeError, match="inputs\\[1\\] must be a string \\(a text\\), got int"):
        model.predict(["good", 3])
    with pytest.raises(TypeError, match="inputs must be a string or a list of strings, got dict"):
        model.predict({"text": "good"})


def test_fit_saves_and_the_cli_loads_it(tmp_path, capsys):
    """Train from Python (the same run `birnn train` makes), save elsewhere, load from the CLI."""
    write_conllu(tmp_path / "train.conllu", sentences(40))
    write_conllu(tmp_path / "test.conllu", sentences(8, seed=1))
    model = birnn.fit("tag", train=tmp_path / "train.conllu", test=tmp_path / "test.conllu", out=tmp_path / "run",
                      layers=["bilstm:8"], epochs=2, batch_size=8, seed=1, verbose=False)
    assert model.path == tmp_path / "run" and "test_accuracy" in model.metrics
    assert (tmp_path / "run" / "run.toml").exists()  # the run directory birnn train writes
    saved = model.save(tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors"]
    sents = ["the big cat sees a dog .", "every idea runs !"]
    (tmp_path / "in.txt").write_text("\n".join(sents) + "\n")
    want = _cli_json(capsys, "predict", saved, tmp_path / "in.txt", "--output", "json")
    assert model.predict(sents) == [w["tags"] for w in want]
    assert birnn.load(saved).predict([s.split() for s in sents]) == [w["tags"] for w in want]
    assert birnn.load(saved).predict(sents[0]) == want[0]["tags"]
    ev = _cli_json(capsys, "evaluate", saved, "--data", tmp_path / "test.conllu", "--json")
    assert ev["test_accuracy"] == pytest.approx(model.metrics["test_accuracy"])
    with pytest.raises(TypeError, match="fit\\(\\) got unknown option\\(s\\) epoch;"):
        birnn.fit("tag", train=tmp_path / "train.conllu", epoch=2)
    with pytest.raises(Exception, match="lr= must be in"):
        birnn.fit("tag", train=tmp_path / "train.conllu", lr=-1.0)


def test_a_model_trained_from_python_saves_and_loads_like_a_run(tmp_path, capsys):
    """birnn.models + birnn.data trained by hand: from_parts, save, load (Python and CLI)."""
    from birnn.data import SeriesEncoder
    from birnn.models import SequenceClassifier

    g = torch.Generator().manual_seed(0)
    records = [(np.cumsum(torch.randn(int(n), 2, generator=g).numpy(), 0) * (1 if k % 2 else -1), "up" if k % 2 else
                "down") for k, n in enumerate(torch.randint(5, 12, (16,), generator=g))]
    enc = SeriesEncoder.fit(records)
    net = SequenceClassifier(num_classes=2, input_size=2, layers=["bigru:8"])
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    batch = enc.collate([enc.encode(r, i) for i, r in enumerate(records)])
    for _ in range(5):
        opt.zero_grad()
        total, count = net.loss(batch)
        (total / count).backward()
        opt.step()
    model = birnn.TrainedModel.from_parts(net, enc, "classify")
    arrays = [x for x, _ in records[:4]]
    got = model.predict(arrays)
    loaded = birnn.load(model.save(tmp_path / "m"))
    assert loaded.predict(arrays) == got and loaded.predict(arrays[0]) == got[0]
    assert loaded.predict(np.stack([a[:5] for a in arrays])) == model.predict([a[:5] for a in arrays])
    with pytest.raises(ValueError, match="inputs\\[0\\] has 3 channels, the model reads 2"):
        loaded.predict([np.zeros((4, 3))])
    with pytest.raises(ValueError, match="a SeriesEncoder makes series batches, not batches for the tag task"):
        birnn.TrainedModel.from_parts(net, enc, "tag")


def test_a_forecaster_predicts_the_next_values_of_a_raw_series(tmp_path, capsys):
    t = np.arange(400, dtype=np.float32)
    (tmp_path / "wave.csv").write_text("value\n" + "\n".join(f"{v:.5f}" for v in np.sin(0.2 * t)) + "\n")
    model = birnn.fit("forecast", train=tmp_path / "wave.csv", out=tmp_path / "run", window=20, horizon=3,
                      layers=["bigru:8"], epochs=1, verbose=False)
    series = np.sin(0.2 * t[:50])
    (tmp_path / "recent.csv").write_text("value\n" + "\n".join(f"{v:.5f}" for v in series) + "\n")
    want = _cli_json(capsys, "predict", tmp_path / "run", tmp_path / "recent.csv", "--output", "json")
    got = model.predict(np.round(series, 5))
    assert got.shape == (3, 1)
    np.testing.assert_allclose(got, np.asarray(want[0]["forecast"]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="must be a series \\(T >= 20, C = 1\\)"):
        model.predict(series[:10])
    half = birnn.fit("forecast", train=tmp_path / "wave.csv", out=tmp_path / "bf16", window=20, horizon=3,
                     layers=["bigru:8"], epochs=1, precision="bf16", verbose=False)
    assert half.predict(series).dtype == np.float32  # (bfloat16 under autocast, handed out as float32)
