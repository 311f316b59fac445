"""The trainer: reproducibility, exact resume after a crash, NaN stop, atomic checkpoints,
configuration checks, metrics, and DDP equal to one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from birnn import tasks
from birnn.data import Splits
from birnn.train import (CheckpointError, TrainConfig, TrainingDiverged, accuracy, load_checkpoint, load_weights,
                         macro_f1, span_f1)
from birnn.train import checkpoint as ckpt_module

HERE = Path(__file__).parent


def series_data(n=48, seed=0):
    g = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        T = int(g.integers(4, 12))
        label = str(i % 3)
        x = g.standard_normal((T, 2)).astype(np.float32) + float(label)
        recs.append((x, label))
    return Splits(recs[:36], recs[36:42], recs[42:])


MODEL = {"layers": ["bigru:6"], "dropout": 0.2, "pooling": "final"}


def make(seed=0, model=MODEL):
    return tasks.build_run("classify", series_data(), model, seed=seed)


def config(**kw):
    base = dict(epochs=3, batch_size=5, lr=0.01, save_every=2, progress=False, patience=100)
    return TrainConfig(**{**base, **kw})


def weights(run):
    return {k: v.clone() for k, v in run.model.state_dict().items()}


def test_seeded_runs_are_identical(tmp_path):
    a, rec = make()
    tasks.train_run(a, rec, config(), tmp_path / "a", log=lambda s: None)
    b, rec = make()
    tasks.train_run(b, rec, config(), tmp_path / "b", log=lambda s: None)
    for (k, v), w in zip(weights(a).items(), weights(b).values()):
        assert torch.equal(v, w), k
    log = [json.loads(l) for l in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3] and "dev_accuracy" in log[0]
    assert (tmp_path / "a" / "log.csv").read_text().startswith("epoch,step,train_loss")


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_mid_epoch_loses_nothing(tmp_path, monkeypatch):
    full, rec = make()
    tasks.train_run(full, rec, config(select="last"), tmp_path / "full", log=lambda s: None)

    crashed, rec = make()
    calls = {"n": 0}
    original = type(crashed.model).loss

    def crashing_loss(self, batch):
        calls["n"] += 1
        if calls["n"] == 12:  # mid-epoch 2 (8 batches per epoch), after the checkpoint of step 10
            raise Crash("killed")
        return original(self, batch)

    monkeypatch.setattr(type(crashed.model), "loss", crashing_loss)
    with pytest.raises(Crash):
        tasks.train_run(crashed, rec, config(select="last"), tmp_path / "run", log=lambda s: None)
    state = load_checkpoint(tmp_path / "run")["state"]
    assert state["step"] == 10 and state["epoch"] == 1 and state["batch"] == 2
    monkeypatch.setattr(type(crashed.model), "loss", original)
    resumed, rec = make(seed=123)  # a different init: everything must come from the checkpoint
    tasks.train_run(resumed, rec, config(select="last"), tmp_path / "run", resume=True, log=lambda s: None)
    for (k, v), w in zip(weights(full).items(), weights(resumed).values()):
        assert torch.equal(v, w), f"{k} differs after resume"


def test_resume_refuses_a_different_configuration(tmp_path):
    a, rec = make()
    tasks.train_run(a, rec, config(epochs=1), tmp_path / "r", log=lambda s: None)
    b, rec = make(model={**MODEL, "layers": ["bilstm:6"]})
    with pytest.raises(CheckpointError, match="the checkpoint's configuration does not match \\(model: saved"):
        tasks.train_run(b, rec, config(epochs=2), tmp_path / "r", resume=True, log=lambda s: None)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    run, rec = make()
    original = type(run.model).loss
    calls = {"n": 0}

    def nan_loss(self, batch):
        calls["n"] += 1
        total, count = original(self, batch)
        return (total * float("nan"), count) if calls["n"] == 7 else (total, count)

    monkeypatch.setattr(type(run.model), "loss", nan_loss)
    with pytest.raises(TrainingDiverged, match="the training loss became nan at epoch 1, step 7"):
        tasks.train_run(run, rec, config(save_every=1), tmp_path / "r", log=lambda s: None)
    ckpt = load_checkpoint(tmp_path / "r")
    assert ckpt["state"]["step"] == 6
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    run, rec = make()
    tasks.train_run(run, rec, config(epochs=1, save_every=0), tmp_path / "r", log=lambda s: None)
    before = load_checkpoint(tmp_path / "r")
    real = ckpt_module.save_file
    calls = {"n": 0}

    def failing(tensors, path, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(tensors, path, **kw)

    monkeypatch.setattr(ckpt_module, "save_file", failing)
    with pytest.raises(ckpt_module.CheckpointError, match=r"optimizer\.safetensors: could not be written \(disk full\)"):
        ckpt_module.save_checkpoint(tmp_path / "r", model=run.model.state_dict(), optimizer={"state": {},
                                    "param_groups": []}, state={"step": 99}, rng={}, step=99)
    after = load_checkpoint(tmp_path / "r")
    assert after["path"] == before["path"] and after["state"] == before["state"]


def test_load_run_refuses_other_versions_and_missing_dirs(tmp_path):
    run, rec = make()
    tasks.train_run(run, rec, config(epochs=1), tmp_path / "r", log=lambda s: None)
    loaded = tasks.load_run(tmp_path / "r")
    assert tasks.predict_records(loaded, [(x, None) for x, _ in rec["test"]]) == \
        tasks.predict_records(run, [(x, None) for x, _ in rec["test"]])
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    cfg["birnn_version"] = "9.0.0"
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="was written by birnn 9.0.0"):
        tasks.load_run(tmp_path / "r")
    with pytest.raises(CheckpointError, match="is not a birnn run directory"):
        tasks.load_run(tmp_path / "nothing")


def test_metrics_by_hand():
    assert accuracy(["a", "b"], ["a", "a"]) == 0.5
    assert macro_f1([0, 1, 1], [0, 1, 0]) == pytest.approx((2 / 3 + 2 / 3) / 2)
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    assert span_f1(gold, gold) == 1.0
    assert span_f1([["B-PER", "O", "O", "B-LOC"]], gold) == pytest.approx(0.5)


def test_time_limit_saves_and_resumes(tmp_path):
    run, rec = make()
    tasks.train_run(run, rec, config(max_minutes=0.0), tmp_path / "r", log=lambda s: None)
    state = load_checkpoint(tmp_path / "r")["state"]
    assert state["step"] == 1 and not state["finished"]
    tasks.train_run(run, rec, config(), tmp_path / "r", resume=True, log=lambda s: None)
    assert load_checkpoint(tmp_path / "r")["state"]["finished"]


@pytest.mark.slow  # torchrun: two training processes
@pytest.mark.parametrize("n_train", [30, 29], ids=["even", "empty-share"])
def test_ddp_equals_one_process(tmp_path, n_train):
    """29 sentences in batches of 7: the last batch has one, so one process gets an empty share
    (it used to crash in collate([]))."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, str(HERE / "ddp_worker.py"), str(tmp_path / "one.safetensors"),
                             str(tmp_path / "one"), str(n_train)], env=env, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-2000:]
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            str(HERE / "ddp_worker.py"), str(tmp_path / "two.safetensors"), str(tmp_path / "two"),
                            str(n_train)], env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    one, two = load_weights(tmp_path / "one.safetensors"), load_weights(tmp_path / "two.safetensors")
    initial = load_weights(tmp_path / "one.safetensors.initial")
    assert any(not torch.equal(one[k], initial[k]) for k in one), "training must have moved the weights"
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6)


def test_tensorboard_logs_read_by_tensorboard(tmp_path):
    """--logger tensorboard: event files tensorboard's own reader opens, with the loss and learning
    rate per optimizer step, the dev metrics per epoch and the configuration as text."""
    pytest.importorskip("tensorboard", reason="tensorboard is a test dependency")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from birnn import cli
    from test_reliability import train_args, write_text_data

    train, dev = write_text_data(tmp_path)
    assert cli.main(train_args(train, dev, tmp_path / "run", "--logger", "tensorboard")) == 0
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "epoch/train_loss", "epoch/lr", "dev/accuracy", "dev/loss"} <= set(tags["scalars"])
    steps = [e.step for e in events.Scalars("train/loss")]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, log[-1]["step"] + 1))  # every optimizer step
    assert [e.value for e in events.Scalars("dev/accuracy")] == pytest.approx([r["dev_accuracy"] for r in log])
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"logger": "tensorboard"' in config and '"task": "classify"' in config


def test_bf16_training_and_prediction(tmp_path, capsys):
    """--precision bf16: the forward passes run under bfloat16 autocast (the header says so), the
    weights stay float32, run.toml records it and predict/evaluate use it unless told otherwise;
    the scores stay near float32's."""
    import tomllib

    from birnn import cli
    from birnn.train import precision
    from test_reliability import train_args, write_text_data

    train, dev = write_text_data(tmp_path, n_train=48, n_dev=16)
    assert cli.main(train_args(train, dev, tmp_path / "bf16", "--precision", "bf16")) == 0
    out = capsys.readouterr().out
    assert "bfloat16 autocast" in out
    assert tomllib.loads((tmp_path / "bf16" / "run.toml").read_text())["train"]["precision"] == "bf16"
    model = tasks.load_run(tmp_path / "bf16")
    assert all(p.dtype == torch.float32 for p in model.model.parameters())
    records = [("good fine nice", None), ("bad poor", None)]
    with precision("bf16", "cpu"):
        half = tasks.class_scores(model, records)
    full = tasks.class_scores(model, records)
    assert all(abs(half[k][c] - full[k][c]) < 0.02 for k in range(2) for c in full[k])
    assert half != full  # bfloat16 did run
    import birnn

    assert birnn.load(tmp_path / "bf16").predict_proba([r[0] for r in records]) == half  # the run's precision
    assert birnn.load(tmp_path / "bf16").predict_proba([r[0] for r in records], precision="fp32") == full
    with pytest.raises(ValueError, match="precision must be one of \\('fp32', 'bf16'\\); got 'fp16'"):
        precision("fp16", "cpu")


def test_select_last_keeps_its_metrics_when_a_finished_run_is_resumed(tmp_path):
    """A run killed after its "finished" checkpoint resumed as finished and returned (and wrote
    into metrics.json) the *best* epoch's dev metrics, whatever ``select`` said (#36)."""
    run, rec = make()
    # the dev loss, as if higher were better: the "best" epoch is the first, the last is not it
    conf = config(select="last", monitor="loss", maximize=True)
    first = tasks.train_run(run, rec, conf, tmp_path / "r", log=lambda s: None)
    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert first == log[-1] and max(log, key=lambda r: r["dev_loss"]) != log[-1]
    again, rec = make()
    lines = []
    assert tasks.train_run(again, rec, conf, tmp_path / "r", resume=True, log=lines.append) == first
    assert "this run has finished already" in lines


def test_the_memory_probe_prices_every_batch_and_never_stops_a_run_it_cannot_probe(tmp_path, monkeypatch):
    """With the probe on for any batch, a training set too big for the memory available is
    refused before training (naming the longest record); where the probe itself cannot run, the
    run trains as before."""
    from birnn.data import encoding
    from birnn.train import loop, memory

    monkeypatch.setattr(loop, "PROBE_FROM", 0)
    run, rec = make()
    monkeypatch.setattr(memory, "available", lambda: 2 ** 10)  # (after the model, which is priced when built)
    with pytest.raises(memory.MemoryNeeded, match=r"record \d+: a sequence of \d+ steps; a batch of 5 padded to it "
                                                  r"needs about .* this machine has 0 MiB available: --max-length N"):
        tasks.train_run(run, rec, config(epochs=1), tmp_path / "small", log=lambda s: None)
    assert not (tmp_path / "small" / "config.json").exists()

    def broken(example, times):
        raise ValueError("this model reads windows of one length")

    monkeypatch.undo()
    monkeypatch.setattr(loop, "PROBE_FROM", 0)
    monkeypatch.setattr(encoding, "repeat_steps", broken)
    run, rec = make()
    monkeypatch.setattr(memory, "available", lambda: 2 ** 10)  # (would refuse, if the probe could run)
    assert tasks.train_run(run, rec, config(epochs=1), tmp_path / "unprobed", log=lambda s: None)
