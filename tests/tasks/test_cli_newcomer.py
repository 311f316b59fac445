"""The command line as a newcomer meets it: install notes, refused wrong inputs, portable and
resolved run.toml, honest progress, help for every flag, one-line errors, DDP reporting, shared
run folders, labelled plots, and what Keras/Lightning users reach for (scores, automatic
device, gradient accumulation, callbacks)."""

import json
import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from birnn import cli, plots
from helpers import train_args, write_text_data

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


pytestmark = pytest.mark.slow  # most tests train in a subprocess (torchrun among them)

def run_birnn(*args, cwd=None, timeout=240):
    return subprocess.run([sys.executable, "-m", "birnn", *map(str, args)], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("newcomer")
    train, dev = write_text_data(d)
    run = d / "run"
    proc = run_birnn(*train_args(train, dev, run), "--epochs", "3", "--max-minutes", "10", cwd=d)
    assert proc.returncode == 0, proc.stderr
    return d, train, dev, run, proc


# 1. install ----------------------------------------------------------------------------------
def test_triton_is_an_extra_and_the_readme_says_how_to_get_each_torch():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("triton") for d in meta["dependencies"])
    assert any(d.startswith("triton") for d in meta["optional-dependencies"]["test"])
    assert any(d.startswith("triton") for d in meta["optional-dependencies"]["kernels"])
    readme = (ROOT / "README.md").read_text()
    assert "CPU wheel" in readme and "CUDA build" in readme and '".[test]"' in readme


# 2. wrong input kinds are refused --------------------------------------------------------------
def test_predict_refuses_another_task_s_input(trained, tmp_path):
    _, _, _, run, _ = trained
    conllu = tmp_path / "x.conllu"
    conllu.write_text("1\tThe\tthe\tDET\t_\t_\t0\troot\t_\t_\n\n")
    proc = run_birnn("predict", run, conllu)
    assert proc.returncode == 2
    assert "a classify run (text) reads a .csv/.tsv with a text column, or one text per line" in proc.stderr
    assert proc.stderr.count("\n") == 1
    lines = tmp_path / "texts.txt"
    lines.write_text("good fine\nbad awful\n")
    assert run_birnn("predict", run, lines).stdout.count("\n") == 2


# 3. run.toml: portable, every value resolved ------------------------------------------------------
def test_run_toml_is_resolved_and_reruns_from_another_folder(trained, tmp_path):
    d, train, dev, run, proc = trained
    conf = tomllib.loads((run / "run.toml").read_text())
    assert conf["source"]["train"] == str(train.resolve()) and Path(conf["source"]["dev"]).is_absolute()
    for key in ("lr", "batch_size", "epochs", "seed", "weight_decay", "clip_norm", "schedule", "patience", "device"):
        assert key in conf["train"], key
    assert conf["train"]["device"] == "cpu"  # "auto" resolved
    for key in ("layers", "dropout", "embedding_dim", "pooling", "min_freq"):
        assert key in conf["model"], key
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = run_birnn("train", "--config", run / "run.toml", "--out", tmp_path / "again", "--json", cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    first = json.loads((run / "metrics.json").read_text())
    assert json.loads(again.stdout.strip().splitlines()[-1])["dev_accuracy"] == first["dev_accuracy"]


def test_a_config_s_relative_paths_are_relative_to_the_config(tmp_path):
    train, dev = write_text_data(tmp_path)
    (tmp_path / "c.toml").write_text('task = "classify"\n[source]\ntrain = "train.csv"\ndev = "dev.csv"\n'
                                     '[model]\nlayers = ["bigru:4"]\nembedding_dim = 4\n[train]\nepochs = 1\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_birnn("train", "--config", tmp_path / "c.toml", "--out", tmp_path / "r", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr


# 4. progress -------------------------------------------------------------------------------------
def test_the_header_and_epoch_lines_say_where_the_run_is(trained):
    *_, proc = trained
    out = proc.stdout
    header = out.split("\nepoch ")[0]
    for text in ("3 epochs", "lr 0.002", "device: cpu", "threads", "layers bigru:4", "dropout 0", "seed 0",
                 "monitor dev accuracy", "steps"):
        assert text in header, (text, header)
    assert "None" not in header
    assert "epoch 1/3" in out and "epoch 3/3" in out and "step 9/9 (100%)" in out and "left)" in out
    assert "* new best dev accuracy" in out
    assert "seconds=" not in out and re.search(r"  lr \d\.\d\de-\d\d  ", out)  # (cosine here: a small dev split)


def test_a_time_limit_says_how_to_resume(tmp_path):
    train, dev = write_text_data(tmp_path)
    run = tmp_path / "r"
    proc = run_birnn(*train_args(train, dev, run), "--max-minutes", "0.00001")
    assert proc.returncode == 0, proc.stderr
    assert f"stopped: time limit; `birnn resume {run}` continues it" in proc.stdout


# 5. help -------------------------------------------------------------------------------------------
def test_every_flag_has_help_and_bench_help_is_clean():
    parser = cli._parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subs.items():
        for action in sub._actions:
            if action.dest not in ("help", "rest") and action.option_strings + [action.dest]:
                assert action.help, f"birnn {name} {action.option_strings or action.dest} has no help"
    train_help = subs["train"].format_help()
    assert "[tag]" in train_help and "optimizer steps (not epochs)" in train_help and "--warmup-steps" in train_help
    assert "--monitor" in train_help and "default 32" in train_help
    bench = run_birnn("bench", "--help").stdout
    assert "issue" not in bench and "``" not in bench and "--batch BATCH" in bench


# 6. errors -------------------------------------------------------------------------------------------
def test_errors_are_one_line_early_and_leave_nothing_behind(tmp_path):
    train, dev = write_text_data(tmp_path)
    proc = run_birnn(*train_args(train, dev, tmp_path / "r"), "--lr", "-1")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "argument --lr" in proc.stderr
    assert not (tmp_path / "r").exists()
    for device, text in (("cuda", "has no usable CUDA device"), ("gpu", "must be a device such as cpu, cuda")):
        proc = run_birnn(*train_args(train, dev, tmp_path / "r"), "--device", device)
        assert proc.returncode == 2 and text in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    bad_dev = tmp_path / "bad.csv"
    bad_dev.write_text("text,label\ngood,maybe\n")
    proc = run_birnn(*train_args(train, bad_dev, tmp_path / "half"))
    assert proc.returncode == 2 and not (tmp_path / "half").exists()  # no half-made run folder


def test_predict_into_a_closed_pipe_is_quiet(trained, tmp_path):
    _, _, _, run, _ = trained
    many = tmp_path / "many.txt"
    many.write_text("good fine\n" * 20000)
    proc = subprocess.run(f"{sys.executable} -m birnn predict {run} {many} | head -1", shell=True, capture_output=True,
                          text=True, env=ENV, timeout=240)
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


# 7. DDP: one report, the global loss ---------------------------------------------------------------
def test_torchrun_reports_once_with_the_global_loss(tmp_path):
    train, dev = write_text_data(tmp_path, n_train=32)
    one = run_birnn(*train_args(train, dev, tmp_path / "one"), "--epochs", "1", "--batch-size", "16")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "birnn", *train_args(train, dev, tmp_path / "two"), "--epochs", "1", "--batch-size",
                          "16"], capture_output=True, text=True, env=ENV, timeout=300)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("metric ") == 1 and two.stdout.count("epoch 1/1") == 1

    def loss(out):
        return float(out.split("train_loss ")[1].split()[0])

    assert loss(two.stdout) == pytest.approx(loss(one.stdout), rel=1e-4)


# 8. run folders follow the umask ---------------------------------------------------------------------
def test_run_files_follow_the_umask(trained):
    _, _, _, run, _ = trained
    files = [run / n for n in ("config.json", "run.toml", "model.safetensors", "best.safetensors", "latest.json",
                               "log.jsonl", "metrics.json")]
    ckpt = next((run / "checkpoints").iterdir())
    files += list(ckpt.iterdir())
    mask = os.umask(0)
    os.umask(mask)
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask, f
    assert stat.S_IMODE(ckpt.stat().st_mode) == 0o777 & ~mask


# 9. plots: titles, labelled axes, legends ---------------------------------------------------------------
def _labelled(fig):
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), ax
        assert ax.get_legend() is not None and ax.get_legend().get_texts(), ax


def test_plots_are_labelled(tmp_path):
    import numpy as np

    history = [{"epoch": e, "train_loss": 1.0 / e, "dev_loss": 1.2 / e, "dev_accuracy": 0.5 + 0.1 * e}
               for e in (1, 2, 3)]
    fig = plots.learning_curves(history, "accuracy", True, tmp_path / "lc.png")
    _labelled(fig)
    assert fig.axes[0].get_yscale() == "log" and "best: epoch 3" in fig.axes[1].get_legend().get_texts()[-1].get_text()
    assert len(fig.axes[0].get_lines()) == 2  # train and dev, the same metric
    x = [np.random.rand(10, 2) for _ in range(5)]
    y = [np.random.rand(4, 2) for _ in range(5)]
    fig = plots.forecasts(x, y, y, [100 + k for k in range(5)], tmp_path / "fc.png", channel_names=["a", "b"])
    _labelled(fig)
    assert len(fig.axes) == 6 and fig.axes[0].get_lines()[1].get_xdata()[0] == 100  # the series' own index
    assert (tmp_path / "lc.png").stat().st_size > 10000 and (tmp_path / "fc.png").stat().st_size > 10000


def test_confusion_and_f1_plots_are_labelled(tmp_path):
    labels = ["O", "B-PER", "I-PER"]
    fig = plots.confusion(labels, [[50, 2, 0], [3, 7, 0], [1, 0, 4]], tmp_path / "cm.png")
    ax = fig.axes[0]
    assert ax.get_title().startswith("confusion matrix") and ax.get_xlabel() == "predicted class"
    assert ax.get_ylabel() == "gold class" and fig.legends and fig.legends[0].get_texts()
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert "share of the gold class" in fig.axes[1].get_ylabel()  # the colour bar says what colour means
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2", "3", "4", "50", "7"]  # counts in the cells
    report = {"PER": {"precision": 0.8, "recall": 0.5, "f1": 0.615, "support": 10},
              "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2},
              "micro avg": {"precision": 0.7, "recall": 0.4, "f1": 0.5, "support": 12}}
    fig = plots.class_f1(report, tmp_path / "f1.png")
    _labelled(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["PER (10)", "LOC (2)"]  # averages left out
    assert [round(p.get_width(), 3) for p in ax.patches] == [0.615, 0.0]
    assert (tmp_path / "cm.png").stat().st_size > 10000 and (tmp_path / "f1.png").stat().st_size > 10000


def test_explain_draws_both_directions_feeding_the_next_layer(tmp_path):
    from matplotlib.patches import FancyArrowPatch

    import matplotlib.pyplot as plt

    from birnn.explain import draw, explain

    shown = []
    real_close = plt.close
    plt.close = lambda fig=None: shown.append(fig)
    try:
        draw(explain(mode="gru", layers=2, bidirectional=True, lengths=[7, 5, 4, 3]), tmp_path / "e.png")
    finally:
        plt.close = real_close
    colours = {tuple(p.get_edgecolor()) for p in shown[0].axes[0].patches
               if isinstance(p, FancyArrowPatch) and p.get_linewidth() == 0.8}
    assert len(colours) == 2  # arrows from the forward and from the backward direction of layer 0


# 10. what Keras / Lightning users reach for ------------------------------------------------------------
def test_predict_scores(trained, tmp_path):
    _, _, _, run, _ = trained
    texts = tmp_path / "t.txt"
    texts.write_text("good fine\nbad awful\n")
    out = json.loads(run_birnn("predict", run, texts, "--scores", "--output", "json").stdout)
    assert set(out[0]["scores"]) == {"neg", "pos"} and abs(sum(out[0]["scores"].values()) - 1) < 1e-5
    assert max(out[0]["scores"], key=out[0]["scores"].get) == out[0]["label"]


def test_gradient_accumulation_and_callbacks(tmp_path, capsys):
    train, dev = write_text_data(tmp_path)
    assert cli.main(train_args(train, dev, tmp_path / "acc", "--accumulate", "2", "--epochs", "1")) == 0
    out = capsys.readouterr().out
    assert "step 2/2 (100%)" in out  # 3 batches of 8, two per step: 2 steps

    from birnn import tasks
    from birnn.data import read_text_csv, Splits
    from birnn.train import TrainConfig

    class StopAfterOne:
        ended = None

        def on_epoch_end(self, trainer, row):
            return row["epoch"] >= 1

        def on_train_end(self, trainer, reason):
            StopAfterOne.ended = reason

    run, records = tasks.build_run("classify", Splits(read_text_csv(train), read_text_csv(dev), []),
                                   {"layers": ["bigru:4"], "embedding_dim": 4, "min_freq": 1})
    tasks.train_run(run, records, TrainConfig(epochs=5, batch_size=8, progress=False), tmp_path / "cb",
                    log=lambda s: None, callbacks=[StopAfterOne()])
    assert StopAfterOne.ended == "stopped by a callback"
    assert len((tmp_path / "cb" / "log.jsonl").read_text().splitlines()) == 1


def test_threads_are_set_printed_and_never_more_than_the_machine_has(tmp_path, monkeypatch):
    import os

    from birnn import runs

    train, dev = write_text_data(tmp_path)
    proc = run_birnn(*train_args(train, dev, tmp_path / "one"), "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert "device: cpu, 1 threads" in proc.stdout
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
        assert runs.apply_threads(64) == "--threads 64: this process may run on 2 core(s); using 2"
        assert torch.get_num_threads() == 2
        assert runs.apply_threads(1) is None and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    proc = run_birnn("train", "--threads", "0")
    assert proc.returncode == 2 and "argument --threads: must be in [1, inf), got 0" in proc.stderr
