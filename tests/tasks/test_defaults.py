"""Defaults that hold on data nobody tuned for: what a run monitors and which weights it ends
on, when neither the user nor a preset said."""

import json
import random

import pytest

from birnn import cli
from helpers import train_args, write_text_data


def _bio(path, n=40, seed=0):
    rng = random.Random(seed)
    words = {"cat": "B-ANIMAL", "dog": "B-ANIMAL", "big": "O", "the": "O", "runs": "O", "sees": "O", "a": "O"}
    with open(path, "w") as f:
        for _ in range(n):
            for _ in range(rng.randint(3, 7)):
                w = rng.choice(list(words))
                f.write(f"{w} {words[w]}\n")
            f.write("\n")
    return path


def _tag(tmp_path, *extra):
    return ["train", "tag", "--train", str(_bio(tmp_path / "train.bio")), "--dev", str(_bio(tmp_path / "dev.bio", 30, 1)),
            "--layers", "bilstm:8", "--word-dim", "8", "--no-chars", "--epochs", "2", "--json", *extra]


def test_bio_tags_are_selected_by_span_f1_and_lead_the_report(tmp_path, capsys):
    assert cli.main(_tag(tmp_path, "--out", str(tmp_path / "r"))) == 0
    out = capsys.readouterr().out
    assert "monitor dev span_f1" in out and "the dev metric is entity span F1" in out
    table = out.split("\nmetric ")[1].splitlines()
    assert table[1].startswith("span_f1")  # the summary leads with it
    assert next(iter(json.loads(out.strip().splitlines()[-1]))) == "dev_span_f1"
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["monitor"] == "span_f1"
    assert cli.main(_tag(tmp_path, "--out", str(tmp_path / "r2"), "--monitor", "accuracy")) == 0
    assert "monitor dev accuracy" in capsys.readouterr().out


def test_a_dev_split_too_small_to_select_on_gets_a_fixed_budget(tmp_path, capsys):
    train, dev = write_text_data(tmp_path, n_train=24, n_dev=8)
    args = train_args(train, dev, tmp_path / "small")
    args[args.index("--epochs") + 1] = "3"
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert ("the dev split has 8 examples, too few to select on: a fixed budget of 3 epochs (9 steps), a cosine "
            "learning-rate schedule, ending on the last weights") in out  # --epochs given: not raised
    assert "ends on the last epoch" in out and "patience 3" in out and "(cosine)" in out
    assert cli.main(train_args(train, dev, tmp_path / "chosen", "--select", "best")) == 0  # the user decides
    out = capsys.readouterr().out
    assert "too few to select on" not in out and "ends on the best dev epoch" in out


def test_a_dev_split_large_enough_keeps_selection(tmp_path, capsys):
    train, dev = write_text_data(tmp_path, n_train=24, n_dev=120)
    assert cli.main(train_args(train, dev, tmp_path / "r")) == 0
    out = capsys.readouterr().out
    assert "too few to select on" not in out and "ends on the best dev epoch" in out


def test_a_small_dev_split_gets_a_data_sized_budget_and_a_schedule_that_does_not_read_it(tmp_path, capsys):
    """Without --epochs, a few dozen examples (few steps per epoch) train for MIN_STEPS steps;
    the plateau schedule, which halved the rate whenever 5 dev cases did not move, gives way to
    cosine (a given --schedule stays)."""
    from birnn import tasks

    train, dev = write_text_data(tmp_path, n_train=24, n_dev=8)
    updates, notes = tasks.selection_defaults("text", {"train": [0] * 24, "dev": [0] * 8}, (), {}, 30, 3)
    assert updates == {"select": "last", "patience": 200, "epochs": 200, "schedule": "cosine"}
    assert "a fixed budget of 200 epochs (600 steps), a cosine learning-rate schedule" in notes[0]
    updates, _ = tasks.selection_defaults("text", {"train": [0] * 24, "dev": [0] * 8}, (), {"schedule": "plateau",
                                                                                          "epochs": 5}, 5, 3)
    assert updates == {"select": "last", "patience": 5, "epochs": 5}


def test_long_series_are_read_in_patches(tmp_path, capsys):
    """A series of T steps is read k = ceil(median T / 32) steps at a time: (B, T, C) becomes
    (B, ceil(T/k), k*C) with lengths ceil(len/k); the header says so and run.toml keeps k."""
    import numpy as np
    import torch

    from birnn import tasks
    from birnn.data import Batch
    from birnn.models import SequenceClassifier

    assert tasks.series_patch({"train": [(np.zeros((24, 1)), "a")]})[0] == 1
    k, why = tasks.series_patch({"train": [(np.zeros((1460, 1)), "a")] * 3})
    assert k == 46 and why == ("input: series of median length 1460, read in patches of 46 steps (32 RNN steps; "
                               "--patch to change)")
    model = SequenceClassifier(num_classes=2, input_size=2, layers=["gru:3"], patch=4, dropout=0.0).eval()
    x = torch.randn(2, 10, 2)
    x[1, 5:] = 0
    patched = torch.cat([x, x.new_zeros(2, 2, 2)], 1).reshape(2, 3, 8)  # by hand: 3 patches of 4 steps
    ref = SequenceClassifier(num_classes=2, input_size=8, layers=["gru:3"], dropout=0.0).eval()
    ref.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(Batch(x, torch.tensor([10, 5]))), ref(Batch(patched, torch.tensor([3, 2]))))
    with pytest.raises(ValueError, match="patch must be an int >= 1"):
        SequenceClassifier(num_classes=2, input_size=2, patch=0)


def test_bio_tags_decode_through_a_crf_by_default(tmp_path, capsys):
    """BIO/IOB tag sets get a CRF output layer unless told otherwise (their spans need consistent
    B-/I- transitions); the header says why and run.toml records the choice; --no-crf turns it
    off, and a tag set that is not BIO (part of speech) gets a softmax per token."""
    import tomllib

    assert cli.main(_tag(tmp_path, "--out", str(tmp_path / "crf"))) == 0
    out = capsys.readouterr().out
    assert "output: a CRF layer (BIO tags: entity spans need consistent B-/I- transitions; --no-crf to change)" in out
    assert tomllib.loads((tmp_path / "crf" / "run.toml").read_text())["model"]["crf"] is True
    assert json.loads((tmp_path / "crf" / "config.json").read_text())["model"]["config"]["crf"] is True
    assert cli.main(_tag(tmp_path, "--out", str(tmp_path / "soft"), "--no-crf")) == 0
    assert "output: a CRF layer" not in capsys.readouterr().out
    assert tomllib.loads((tmp_path / "soft" / "run.toml").read_text())["model"]["crf"] is False
    pos = tmp_path / "pos.conll"
    pos.write_text("the DET\ncat NOUN\nruns VERB\n\na DET\ndog NOUN\n\n" * 10)
    assert cli.main(["train", "tag", "--train", str(pos), "--format", "columns", "--layers", "bilstm:4", "--word-dim",
                     "4", "--no-chars", "--epochs", "1", "--out", str(tmp_path / "pos")]) == 0
    assert "output: a softmax per token (the tags are not BIO spans; --crf to change)" in capsys.readouterr().out
