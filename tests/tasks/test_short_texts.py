"""Short texts: a classifier that reads characters where words are too few to learn from
(names, codes, single words), chosen from the training data's own statistics."""

import json
import random

import pytest

from birnn import cli, tasks
from birnn.data import Splits, TextEncoder, load_dataset
from birnn.data.datasets import read_first_names
from birnn.models import SequenceClassifier

STEMS = ["mar", "el", "jo", "an", "kat", "ber", "lu", "fran", "ol", "tim", "ros", "ed", "hal", "nik", "vi", "sam"]


def _words(n, seed):
    """Single made-up words whose class is their ending (-a/-ine: F, -o/-us: M): every test word
    is new to the training vocabulary, as with names."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.choice("FM")
        stem = rng.choice(STEMS) + rng.choice(STEMS) + str(rng.randint(0, 999))
        out.append((stem + rng.choice(["a", "ine"] if label == "F" else ["o", "us"]), label))
    return out


def _csv(path, rows):
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    return path


def test_chars_encoder_reads_characters_and_round_trips():
    enc = TextEncoder.fit([("Anna Lena", "F"), ("Otto", "M")], input="chars")
    ex = enc.encode(("Ann", "F"))
    assert enc.tokens is enc.chars and enc.chars.decode(ex["words"]) == ["A", "n", "n"]
    assert enc.encode(("Zuë", None))["words"] == [enc.chars.unk_id] * 3  # unseen characters are <unk>
    batch = enc.collate([enc.encode(r) for r in [("Anna", "F"), ("Otto Lena", "M")]])
    assert batch.inputs.shape == (2, 9) and batch.lengths.tolist() == [4, 9] and batch.chars is None
    back = TextEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert back.input == "chars" and back.encode(("Ann", "F")) == ex


def test_both_encoder_adds_each_words_characters():
    enc = TextEncoder.fit([("a good film", "pos"), ("bad", "neg")], min_freq=1, input="both")
    batch = enc.collate([enc.encode(r) for r in [("good film", "pos"), ("a bad bad film", "neg")]])
    assert batch.inputs.shape == (2, 4) and batch.chars.shape == (2, 4, 4)  # (B, T, W)
    assert enc.chars.decode(batch.chars[0, 1, :4].tolist()) == list("film")
    assert batch.chars[0, 2:].eq(enc.chars.pad_id).all()  # padding words have no characters
    model = SequenceClassifier(num_classes=2, vocab_size=len(enc.words), embedding_dim=4,
                               char_vocab_size=len(enc.chars), char_dim=3, char_hidden=2, layers=["bigru:3"])
    assert model(batch).shape == (2, 2)
    with pytest.raises(ValueError, match="the batch has no chars"):
        model(TextEncoder.fit([("a", "x")], min_freq=1).collate([{"words": [2], "label": 0}]))


def test_old_text_encoders_load_as_words():
    enc = TextEncoder.fit([("a good film", "pos")], min_freq=1)
    d = enc.to_dict()
    del d["input"]  # written before input= existed
    assert TextEncoder.from_dict(d).input == "words"
    with pytest.raises(ValueError, match="input must be one of"):
        TextEncoder.fit([("a", "x")], input="letters")


def test_first_names_reader_keeps_only_unambiguous_names(tmp_path):
    line = "{:<2} {:<26}{}{:<30}$\n"
    path = tmp_path / "nam_dict.txt"
    path.write_text("# comment\n" + "".join(line.format(g, n, mark, "1") for g, n, mark in [
        ("M", "Otto", " "), ("F", "Anna", " "), ("?", "Kim", " "), ("1M", "Jean", " "), ("F", "Anne+Marie", " "),
        ("M", "Andrea", " "), ("F", "Andrea", " "), ("M", "Jurgen", "+"), ("=", "Bob", " ")]))
    assert read_first_names(path) == [("Anna", "F"), ("Anne Marie", "F"), ("Otto", "M")]


def test_auto_input_picks_characters_for_names_and_words_for_reviews():
    pytest.importorskip("gender_guesser", reason="pip install --no-deps gender-guesser")
    names = load_dataset("first-names")
    assert len(names.train) + len(names.dev) + len(names.test) == 35972
    choice, why = tasks.text_input({"train": names.train, "dev": names.dev})
    assert choice == "chars" and "texts average 1.0 words" in why
    reviews = load_dataset("rotten-tomatoes")
    choice, why = tasks.text_input({"train": reviews.train, "dev": reviews.dev})
    assert choice == "words" and "texts average 22.5 words; 6% of dev words" in why


def _train(tmp_path, name, *extra):
    train = _csv(tmp_path / "train.csv", _words(240, 0))
    dev = _csv(tmp_path / "dev.csv", _words(120, 1))
    test = _csv(tmp_path / "test.csv", _words(120, 2))
    return ["train", "classify", "--train", str(train), "--dev", str(dev), "--test", str(test), "--layers", "bigru:16",
            "--embedding-dim", "16", "--epochs", "6", "--lr", "0.01", "--dropout", "0", "--batch-size", "16",
            "--out", str(tmp_path / name), "--json", *extra]


def test_single_words_learn_from_characters_where_words_cannot(tmp_path, capsys):
    assert cli.main(_train(tmp_path, "auto")) == 0
    out = capsys.readouterr().out
    assert "input: characters (texts average 1.0 words; 100% of dev words are not in the training vocabulary" in out
    chars = json.loads(out.strip().splitlines()[-1])
    assert chars["test_accuracy"] >= 0.9
    assert 'input = "chars"' in (tmp_path / "auto" / "run.toml").read_text()  # the choice, not "auto"
    assert cli.main(_train(tmp_path, "words", "--input", "words")) == 0  # what a word model makes of it
    words = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert words["test_accuracy"] < 0.7
    # the trained run predicts raw texts with its own preprocessing
    run = tasks.load_run(tmp_path / "auto")
    assert run.encoder.input == "chars"
    assert tasks.predict_records(run, [("nikrosa", None), ("timberus", None)]) == ["F", "M"]


def test_both_trains_from_the_cli_and_config_choices_are_checked(tmp_path, capsys):
    assert cli.main(_train(tmp_path, "both", "--input", "both", "--char-dim", "8", "--char-hidden", "8",
                           "--epochs", "2")) == 0
    out = capsys.readouterr().out
    assert "input both" in out and "input: " not in out  # asked for, so no automatic choice to explain
    assert tasks.load_run(tmp_path / "both").model.chars is not None
    (tmp_path / "c.toml").write_text('task = "classify"\n[model]\ninput = "letters"\n')
    assert cli.main(["train", "--config", str(tmp_path / "c.toml")]) == 2
    assert "c.toml, line 3: model.input must be one of auto, words, chars, both; got 'letters'" in capsys.readouterr().err


def test_models_api_builds_a_character_classifier():
    records = {"train": _words(40, 0), "dev": _words(10, 1), "test": []}
    run, _ = tasks.build_run("classify", Splits(**records), {"layers": ["bigru:4"], "embedding_dim": 4})
    assert run.encoder.input == "chars" and run.config["notes"][0].startswith("input: characters")
    assert run.model.embed.embedding.num_embeddings == len(run.encoder.chars)
    run, _ = tasks.build_run("classify", Splits(**records), {"layers": ["bigru:4"], "input": "words"})
    assert run.encoder.input == "words" and run.config["notes"] == []
