"""Nothing lost, nothing silent: runs interrupted at every file-system event, full disks,
non-finite gradients, concurrent runs, bad numbers and damaged files."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import birnn
from birnn import cli
from birnn.train.checkpoint import CheckpointError, load_checkpoint, load_weights, save_weights
from faults import Killed, faults

HERE = Path(__file__).parent


def write_text_data(d: Path, n_train=24, n_dev=8):
    g = torch.Generator().manual_seed(0)
    words = {"pos": ["good", "fine", "great", "nice"], "neg": ["bad", "poor", "awful", "dull"]}

    def rows(n):
        out = []
        for _ in range(n):
            label = ["pos", "neg"][int(torch.randint(0, 2, (1,), generator=g))]
            k = int(torch.randint(2, 6, (1,), generator=g))
            text = " ".join(words[label][int(i)] for i in torch.randint(0, 4, (k,), generator=g))
            out.append(f"{text},{label}")
        return "text,label\n" + "\n".join(out) + "\n"

    (d / "train.csv").write_text(rows(n_train))
    (d / "dev.csv").write_text(rows(n_dev))
    return d / "train.csv", d / "dev.csv"


def train_args(train, dev, out, *extra):
    return ["train", "classify", "--train", str(train), "--dev", str(dev), "--layers", "bigru:4", "--embedding-dim",
            "4", "--min-freq", "1", "--epochs", "2", "--batch-size", "8", "--save-every", "2", "--seed", "0",
            "--dropout", "0", "--out", str(out), *extra]


def final_weights(run: Path):
    return load_file(str(run / "model.safetensors"))


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: its final weights and the file-system events it makes."""
    d = tmp_path_factory.mktemp("ref")
    train, dev = write_text_data(d)
    with faults(d / "run") as counted:
        assert cli.main(train_args(train, dev, d / "run")) == 0
    return d, train, dev, final_weights(d / "run"), list(counted.events)


def _finish(run: Path, train, dev, capsys) -> str:
    """Resume the interrupted run; where it cannot be resumed it must say why, and training it
    again into the same directory must work."""
    capsys.readouterr()
    rc = cli.main(["resume", str(run)])
    err = capsys.readouterr().err
    if rc == 0:
        return "resumed"
    assert "no config.json" in err or "before training began" in err, err
    assert cli.main(train_args(train, dev, run)) == 0, capsys.readouterr().err
    return "trained again"


def test_a_kill_at_every_file_system_event_resumes_to_the_same_weights(reference, tmp_path, capsys):
    _, train, dev, want, events = reference
    assert len(events) > 30  # the run writes checkpoints mid-epoch, at epoch ends and at the end
    outcomes = {}
    for k in range(1, len(events) + 1):
        run = tmp_path / f"kill{k}"
        with faults(run, kill_at=k):
            with pytest.raises(Killed):
                cli.main(train_args(train, dev, run))
        outcomes[k] = _finish(run, train, dev, capsys)
        assert same(final_weights(run), want), f"killed before event {k} ({events[k - 1]}): other final weights"
        assert load_checkpoint(run)["state"]["finished"]
    assert "resumed" in outcomes.values()


def test_a_full_disk_at_every_write_resumes_to_the_same_weights(reference, tmp_path, capsys):
    _, train, dev, want, _ = reference
    writes_run = tmp_path / "count"
    with faults(writes_run) as counted:
        assert cli.main(train_args(train, dev, writes_run)) == 0
    for k in range(1, counted.writes + 1):
        run = tmp_path / f"full{k}"
        capsys.readouterr()
        with faults(run, enospc_at=k):
            rc = cli.main(train_args(train, dev, run))
        err = capsys.readouterr().err
        assert rc == 2 and "No space left on device" in err and err.count("\n") == 1, err
        _finish(run, train, dev, capsys)
        assert same(final_weights(run), want), f"disk full at write {k}: other final weights"


def test_the_end_of_a_run_is_not_a_window(reference, tmp_path, capsys):
    """Killed between the last checkpoint and model.safetensors (the old end-of-run window):
    resume writes model.safetensors, and evaluate never falls back to other weights."""
    _, train, dev, want, events = reference
    last_model = max(k for k, e in enumerate(events, 1) if e.startswith("os.open") and "model.safetensors" in e)
    run = tmp_path / "end"
    with faults(run, kill_at=last_model):
        with pytest.raises(Killed):
            cli.main(train_args(train, dev, run))
    assert not (run / "model.safetensors").exists()
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--data", str(dev)]) == 2
    assert "has no model.safetensors: the run has not finished; `birnn resume" in capsys.readouterr().err
    assert cli.main(["resume", str(run)]) == 0
    assert same(final_weights(run), want)


# -- one process per run directory ---------------------------------------------------------------
HOLDER = """
import sys, time
from birnn.train.lock import run_lock
with run_lock(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_run_directory_is_owned_by_one_process(tmp_path, capsys):
    train, dev = write_text_data(tmp_path)
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        capsys.readouterr()
        assert cli.main(train_args(train, dev, run)) == 2
        err = capsys.readouterr().err
        assert f"is in use by process {holder.pid}" in err, err
        assert not (run / "config.json").exists() and not (run / "run.toml").exists()
    finally:
        holder.kill()
        holder.wait()
    # the owner died (kill -9): its lock is taken over
    assert cli.main(train_args(train, dev, run)) == 0
    assert cli.main(train_args(train, dev, run)) == 2
    assert "holds a run already" in capsys.readouterr().err


# -- non-finite numbers never reach a checkpoint ----------------------------------------------------
@pytest.mark.parametrize("lr", ["inf", "1e30", "1e6"])
def test_non_finite_updates_never_reach_a_checkpoint(tmp_path, capsys, lr):
    train, dev = write_text_data(tmp_path)
    run = tmp_path / "run"
    if lr == "inf":  # --lr refuses inf: a config file can still hold the largest float
        (tmp_path / "c.toml").write_text("[train]\nlr = 1.7e308\n")
        args = train_args(train, dev, run, "--clip-norm", "0", "--config", str(tmp_path / "c.toml"))
    else:
        args = train_args(train, dev, run, "--clip-norm", "0", "--lr", lr)
    rc = cli.main(args)
    err = capsys.readouterr().err
    ckpt = load_checkpoint(run) if (run / "latest.json").exists() else None
    if rc == 0:  # a huge lr that stayed finite: nothing to refuse
        assert all(torch.isfinite(v).all() for v in load_weights(run / "model.safetensors").values())
        return
    assert "became non-finite" in err or "loss became" in err, err
    if ckpt is None:
        assert "no checkpoint had been written yet" in err
    else:
        assert str(Path(ckpt["path"])) in err
        assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
        assert all(torch.isfinite(v).all() for s in ckpt["optimizer"]["state"].values() for v in s.values()
                   if isinstance(v, torch.Tensor))


def test_inf_in_a_ts_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "x.ts"
    path.write_text("@problemName x\n@univariate true\n@classLabel true a b\n@data\n1,2,3:a\n1,inf,3:b\n")
    with pytest.raises(birnn.data.DataFormatError, match=r"x.ts:6: 'inf' is infinite"):
        birnn.data.read_ts(path)
    path.write_text("@problemName x\n@univariate true\n@classLabel true a b\n@data\n1,2,3:a\n1,1e39,3:b\n")
    with pytest.raises(birnn.data.DataFormatError, match=r"x.ts:6: '1e39' is infinite or beyond float32"):
        birnn.data.read_ts(path)
    (tmp_path / "s.csv").write_text("v\n1\n1e39\n")
    with pytest.raises(birnn.data.DataFormatError, match=r"s.csv:3: column 'v'"):
        birnn.data.read_series_csv(tmp_path / "s.csv")


# -- checkpoints and weights: integrity, and errors that name the file ---------------------------
def test_flipped_bytes_and_damaged_files_name_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, {"a": torch.arange(100.0)})
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # a byte of the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"w.safetensors: its tensors do not match the SHA-256"):
        load_weights(path)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match=r"w.safetensors: cannot be read as safetensors"):
        load_weights(path)


def test_damaged_run_files_name_the_file(tmp_path, capsys):
    train, dev = write_text_data(tmp_path)
    run = tmp_path / "run"
    assert cli.main(train_args(train, dev, run)) == 0
    ckpt = Path(load_checkpoint(run)["path"])
    (run / "latest.json").write_text('{"checkpoint": "../../elsewhere"}')
    with pytest.raises(CheckpointError, match=r"latest.json: points at '../../elsewhere', which is not a checkpoint"):
        load_checkpoint(run)
    (run / "latest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"latest.json: not valid JSON"):
        load_checkpoint(run)
    (run / "latest.json").write_text(f'{{"checkpoint": "checkpoints/{ckpt.name}"}}')
    (ckpt / "state.json").write_text("[]")
    with pytest.raises(CheckpointError, match=r"state.json: checkpoint format None"):
        load_checkpoint(run)
    (run / "config.json").write_text("{")
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--data", str(dev)]) == 2
    err = capsys.readouterr().err
    assert "config.json: not valid JSON" in err and err.count("\n") == 1


# -- bad files and option values: one line naming the file:line or the option, exit 2 -------------
BAD_OPTIONS = [("--clip-norm", "-5"), ("--window", "0"), ("--horizon", "0"), ("--horizon", "-1"),
               ("--device", "bogus"), ("--lr", "-1"), ("--dropout", "1.5"), ("--epochs", "ten")]


@pytest.mark.parametrize("flag,value", BAD_OPTIONS)
def test_impossible_option_values_name_the_option(tmp_path, capsys, flag, value):
    train, dev = write_text_data(tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main(train_args(train, dev, tmp_path / "run", flag, value))
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}:" in err and err.count("\n") == 1, err


def test_config_values_of_the_wrong_type_name_the_key(tmp_path, capsys):
    train, dev = write_text_data(tmp_path)
    (tmp_path / "c.toml").write_text('[train]\nepochs = "ten"\n')
    assert cli.main(train_args(train, dev, tmp_path / "run", "--config", str(tmp_path / "c.toml"))) == 2
    assert "train.epochs in" in capsys.readouterr().err


def test_bad_inputs_name_file_and_line(tmp_path, capsys):
    train, dev = write_text_data(tmp_path)
    cases = {
        "latin1.csv": (b"text,label\nfine,pos\ncaf\xe9,neg\n", "latin1.csv:3: not UTF-8 text"),
        "quote.csv": (b'text,label\n"unclosed,pos\nsecond,neg\nthird",pos\nfourth,neg\n',
                      "quote.csv:2: the text quoted over lines 2-4 holds a whole row"),
        "unknown.csv": (b"text,label\ngood,maybe\n", "unknown.csv:2: label 'maybe' of the dev data is not one"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        args = train_args(train, tmp_path / name, tmp_path / f"run-{name}")
        capsys.readouterr()
        assert cli.main(args) == 2, name
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (tmp_path / f"run-{name}" / "config.json").exists()  # found before any training
    big = tmp_path / "big.csv"
    big.write_text("text,label\n" + "x" * 200_000 + ",pos\nfine,neg\n")  # a field over csv's 128 KiB default
    assert len(birnn.data.read_text_csv(big)) == 2
    capsys.readouterr()
    (tmp_path / "folder.csv").mkdir()
    assert cli.main(train_args(tmp_path / "folder.csv", dev, tmp_path / "run-dir")) == 2  # a directory as --train
    assert "is a directory" in capsys.readouterr().err
    os.mkfifo(tmp_path / "fifo.csv")
    start = time.time()
    assert cli.main(train_args(tmp_path / "fifo.csv", dev, tmp_path / "run-fifo")) == 2
    assert "not a regular file" in capsys.readouterr().err and time.time() - start < 30


def test_a_ts_model_refuses_another_channel_count(tmp_path, capsys):
    def ts(path, channels, n=12):
        g = torch.Generator().manual_seed(len(str(path)))
        lines = ["@problemName x", "@univariate false", f"@dimensions {channels}", "@classLabel true a b", "@data"]
        for i in range(n):
            dims = [",".join(f"{float(v):.3f}" for v in torch.randn(6, generator=g) + i % 2) for _ in range(channels)]
            lines.append(":".join(dims) + f":{'ab'[i % 2]}")
        path.write_text("\n".join(lines) + "\n")
        return path

    run = tmp_path / "run"
    args = ["train", "classify", "--train", str(ts(tmp_path / "tr.ts", 2)), "--dev", str(ts(tmp_path / "dv.ts", 2)),
            "--layers", "bigru:4", "--epochs", "1", "--out", str(run)]
    assert cli.main(args) == 0
    for c in (1, 3):
        other = ts(tmp_path / f"c{c}.ts", c)
        for command in (["evaluate", str(run), "--data", str(other)], ["predict", str(run), str(other)]):
            capsys.readouterr()
            assert cli.main(command) == 2
            err = capsys.readouterr().err
            assert f"c{c}.ts:6: the model reads series of 2 channel(s); this case has {c}" in err, err


def test_evaluate_on_an_empty_file_is_an_error(tmp_path, capsys):
    train, dev = write_text_data(tmp_path)
    run = tmp_path / "run"
    assert cli.main(train_args(train, dev, run)) == 0
    (tmp_path / "empty.csv").write_text("text,label\n")
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--data", str(tmp_path / "empty.csv")]) == 2
    assert "no data rows after the header" in capsys.readouterr().err


# -- layers: states that do not fit are refused ----------------------------------------------------
def test_recurrent_bridge_and_bidirectional_check_states():
    rec = birnn.Recurrent(torch.nn.GRUCell(3, 4))
    x = torch.randn(5, 2, 3)
    with pytest.raises(ValueError, match=r"hx must have shape \(1, B=2, P\)"):
        rec(x, torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match=r"h_n \(2, 2, 4\) and c_n \(2, 3, 4\) must agree"):
        birnn.bridge((torch.zeros(2, 2, 4), torch.zeros(2, 3, 4)), num_layers=1)
    bi = birnn.Bidirectional(birnn.GRU(3, 4))
    with pytest.raises(ValueError, match=r"hx must have shape \(2\*L, B=2"):
        bi(x, torch.zeros(3, 2, 4))


def test_a_huge_token_does_not_allocate_its_length(tmp_path):
    from birnn.data import TaggingEncoder

    enc = TaggingEncoder.fit([(["a", "b"], ["X", "Y"])])
    ex = enc.encode((["a" * 1_000_000], ["X"]))
    assert len(ex["chars"][0]) == 64
