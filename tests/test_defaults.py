"""Defaults that hold on data nobody tuned for: what a run monitors and which weights it ends
on, when neither the user nor a preset said."""

import json
import random

import pytest

from birnn import cli
from test_reliability import train_args, write_text_data


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
    assert "the dev split has 8 examples, too few to select on: a fixed budget of 3 epochs ending on the last" in out
    assert "ends on the last epoch" in out and "patience 3" in out
    assert cli.main(train_args(train, dev, tmp_path / "chosen", "--select", "best")) == 0  # the user decides
    out = capsys.readouterr().out
    assert "too few to select on" not in out and "ends on the best dev epoch" in out


def test_a_dev_split_large_enough_keeps_selection(tmp_path, capsys):
    train, dev = write_text_data(tmp_path, n_train=24, n_dev=120)
    assert cli.main(train_args(train, dev, tmp_path / "r")) == 0
    out = capsys.readouterr().out
    assert "too few to select on" not in out and "ends on the best dev epoch" in out
