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
from helpers import train_args, write_text_data

HERE = Path(__file__).parent


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


def _log_rows(run: Path) -> list:
    """log.jsonl's rows without their wall-clock seconds."""
    import json

    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow  # one training a file-system event: ~1 min
def test_a_kill_at_every_file_system_event_resumes_to_the_same_weights(reference, tmp_path, capsys):
    """... and to the same log: an epoch cut by the kill once logged the train_loss of the
    batches after the resume only (#36: 22 of 42 kills)."""
    d, train, dev, want, events = reference
    want_log = _log_rows(d / "run")
    assert len(events) > 30  # the run writes checkpoints mid-epoch, at epoch ends and at the end
    outcomes = {}
    for k in range(1, len(events) + 1):
        run = tmp_path / f"kill{k}"
        with faults(run, kill_at=k):
            with pytest.raises(Killed):
                cli.main(train_args(train, dev, run))
        outcomes[k] = _finish(run, train, dev, capsys)
        assert same(final_weights(run), want), f"killed before event {k} ({events[k - 1]}): other final weights"
        assert _log_rows(run) == want_log, f"killed before event {k} ({events[k - 1]}): another log"
        assert load_checkpoint(run)["state"]["finished"]
    assert "resumed" in outcomes.values()


@pytest.mark.slow  # one training a write
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
    assert "c.toml, line 2: train.epochs must be an integer, got 'ten'" in capsys.readouterr().err


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
    with pytest.raises(ValueError, match=r"hx must have shape \(1, B=2, P=4\)"):
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


# -- round three (#36): nothing silent in configs, resumes and thread counts ------------------------
@pytest.mark.parametrize("content,message", [
    ('task = "classify"\n[trian]\nepochs = 1\n', "c.toml, line 2: unknown table [trian] (did you mean [train]?)"),
    ('task = "classify"\nepochs = 1\n', "c.toml, line 2: epochs belongs in the table [train], not at the top level"),
    ('[model]\n\nepochs = 1\n', "c.toml, line 3: epochs belongs in [train], not in [model]"),
    ('[train]\nepoch = 1\n', "c.toml, line 2: unknown option 'epoch' in [train] (did you mean epochs?); known: epochs"),
    ('tsak = "tag"\n', "c.toml, line 1: unknown key 'tsak' (did you mean task?)"),
    ('task = "regress"\n', "c.toml, line 1: task must be one of classify, tag, forecast; got 'regress'"),
    ('[model]\nlayers = 4\n', "c.toml, line 2: model.layers must be a layer spec or a list of them"),
    ('[train]\n# the budget\nepochs = "ten"\n', "c.toml, line 3: train.epochs must be an integer, got 'ten'"),
])
def test_a_config_file_is_read_whole_or_refused_naming_the_line(tmp_path, capsys, content, message):
    """A misspelled table or a misplaced key was ignored: the run trained the preset's epochs."""
    train, dev = write_text_data(tmp_path)
    (tmp_path / "c.toml").write_text(content)
    capsys.readouterr()
    assert cli.main(train_args(train, dev, tmp_path / "run", "--config", str(tmp_path / "c.toml"))) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_layers_as_one_string_and_config_paths_that_are_not_files(tmp_path, capsys):
    train, dev = write_text_data(tmp_path)
    (tmp_path / "c.toml").write_text('[model]\nlayers = "bigru:3"\n')  # was read one character at a time ("got 'b'")
    args = [a for a in train_args(train, dev, tmp_path / "run") if a not in ("--layers", "bigru:4")]
    assert cli.main(args + ["--config", str(tmp_path / "c.toml")]) == 0
    assert 'layers = ["bigru:3"]' in (tmp_path / "run" / "run.toml").read_text()
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    for path, message in ((tmp_path, "is a directory; --config takes a TOML file"),
                          (tmp_path / "loop1", "loop1: cannot read the config file (Too many levels of symbolic links)")):
        capsys.readouterr()
        assert cli.main(["train", "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Error" not in err, err
    assert cli.main(train_args(tmp_path / "loop1", dev, tmp_path / "run2")) == 2  # was pathlib's RuntimeError
    assert "--train " in (err := capsys.readouterr().err) and "loop1: cannot be resolved (Symlink loop" in err, err


def test_resume_refuses_an_edited_run_toml(tmp_path, capsys):
    """birnn resume trained the old settings and left run.toml saying the new ones."""
    train, dev = write_text_data(tmp_path)
    run = tmp_path / "run"
    assert cli.main(train_args(train, dev, run, "--max-minutes", "0.0001")) == 0  # stops at its first step
    toml = (run / "run.toml").read_text()
    (run / "run.toml").write_text(toml.replace('"bigru:4"', '"bigru:16"').replace("lr = ", "lr = 0.5 # was "))
    capsys.readouterr()
    assert cli.main(["resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert ("run.toml was edited after the run began (model.layers is ['bigru:16'] there, the run has ['bigru:4']; "
            "train.lr is 0.5 there") in err, err
    (run / "run.toml").write_text(toml)
    assert cli.main(["resume", str(run), "--max-minutes", "5"]) == 0  # a new budget is what resume may change
    assert "max_minutes = 5" in (run / "run.toml").read_text()


def test_the_thread_count_is_recorded_and_kept_by_resume(tmp_path, capsys):
    """Another thread count gives other weights: the run records its count, resume keeps it
    unless told, and says so when told another."""
    train, dev = write_text_data(tmp_path)
    before = torch.get_num_threads()
    try:
        run = tmp_path / "run"
        capsys.readouterr()
        assert cli.main(train_args(train, dev, run, "--threads", "1", "--max-minutes", "0.0001")) == 0
        out = capsys.readouterr().out
        assert "device: cpu, 1 threads (kept by resume; another count gives other weights)" in out
        assert "threads = 1" in (run / "run.toml").read_text()
        torch.set_num_threads(2)
        assert cli.main(["resume", str(run), "--max-minutes", "0.0002"]) == 0  # no --threads: the run's own count
        assert "device: cpu, 1 threads" in capsys.readouterr().out
        assert cli.main(["resume", str(run), "--threads", "2"]) == 0
        captured = capsys.readouterr()
        assert ("--threads 2: this run trained with 1 threads; another count sums in another order, so from here its "
                "numbers differ from an uninterrupted run's") in captured.err
        assert "threads = 2" in (run / "run.toml").read_text()
    finally:
        torch.set_num_threads(before)


def test_memory_a_run_cannot_have_is_refused_before_it_is_allocated(tmp_path, capsys, monkeypatch):
    """A 200,000-token sentence, a 1 MB text field, --layers bilstm:100000 and a config.json
    edited to bigru:200000 each ended in torch's "alloc_cpu.cpp ... bytes" (or the OOM killer).
    The machine here has 256 MiB available, whatever it really has."""
    from birnn.train import memory

    monkeypatch.setattr(memory, "available", lambda: 256 * 2 ** 20)
    train, dev = write_text_data(tmp_path)
    long_text = " ".join(f"w{i % 97}" for i in range(170_000))
    (tmp_path / "long.csv").write_text(train.read_text() + f'"{long_text}",pos\n')
    capsys.readouterr()
    assert cli.main(train_args(tmp_path / "long.csv", dev, tmp_path / "r1", "--batch-size", "32")) == 2
    err = capsys.readouterr().err
    line = len(train.read_text().splitlines()) + 1
    assert f"long.csv:{line}: a sequence of 170,000 steps; a batch of" in err and "--max-length N" in err, err
    assert "this machine has 256 MiB available" in err and not (tmp_path / "r1").exists()
    assert cli.main(train_args(tmp_path / "long.csv", dev, tmp_path / "r2", "--max-length", "64", "--epochs", "1")) == 0
    assert "1 training sequence(s) longer than --max-length 64 cut to their first 64 steps" in capsys.readouterr().out
    words = "".join("\t".join([str(i), f"w{i % 50}", "w", "NOUN"] + ["_"] * 6) + "\n" for i in range(1, 20_001))
    (tmp_path / "long.conllu").write_text("# a short one\n1\tthe\tthe\tDET" + "\t_" * 6 + "\n\n" + words + "\n")
    assert cli.main(["train", "tag", "--train", str(tmp_path / "long.conllu"), "--dev", str(tmp_path / "long.conllu"),
                     "--layers", "bilstm:4", "--out", str(tmp_path / "t1")]) == 2
    err = capsys.readouterr().err
    assert "long.conllu:4: a sequence of 20,000 steps; a batch of 2 padded to it needs about" in err, err
    assert cli.main(train_args(train, dev, tmp_path / "r3", "--layers", "bilstm:100000")) == 2
    err = capsys.readouterr().err
    assert "--layers bilstm:100000: the model would hold 80,005,200,042 float32 parameters, 1192.2 GiB" in err and "use smaller --layers" in err, err
    config = (tmp_path / "r2" / "config.json").read_text()
    (tmp_path / "r2" / "config.json").write_text(config.replace('"bigru:4"', '"bigru:200000"'))
    assert cli.main(["evaluate", str(tmp_path / "r2"), "--data", str(dev)]) == 2
    err = capsys.readouterr().err
    assert "r2/config.json: the model would hold" in err and "was config.json edited?" in err, err


def test_memory_estimates_are_above_what_a_step_keeps(tmp_path):
    """The probe's bytes per padded step against the bytes autograd really saves for a long batch."""
    from birnn.train.memory import batch_bytes, check_model, MemoryNeeded, OVERHEAD

    model = birnn.LSTM(8, 16, bidirectional=True, num_layers=2)

    def loss(T):
        return lambda: model(torch.randn(T, 4, 8)).output.sum()

    short, long = batch_bytes(loss(16), 4 * 16, model), batch_bytes(loss(1024), 4 * 1024, model)
    assert 0.5 * short <= long <= 1.05 * short  # linear in the steps: a probe's figure holds for long batches
    kept = {}

    def pack(t):
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss(1024)()
    real = sum(v for k, v in kept.items() if k not in {p.untyped_storage().data_ptr() for p in model.parameters()})
    assert long * 4 * 1024 == pytest.approx(OVERHEAD * real, rel=0.05)
    with pytest.raises(MemoryNeeded, match="the model would hold 1,600,000,000 float32 parameters"):
        check_model(lambda: torch.nn.Linear(40_000, 40_000, bias=False), "--layers x", training=True,
                    way_out="smaller")
    check_model(lambda: torch.nn.Linear(40, 40), "--layers x", training=True, way_out="smaller")


def test_errors_of_evaluate_name_the_line_and_the_need(tmp_path, capsys):
    """An unknown tag was "record 1"; a forecast on two rows "need at least one array to stack"."""
    words = {"NOUN": ["cat", "dog"], "VERB": ["runs", "eats"], "DET": ["the", "a"]}
    g = torch.Generator().manual_seed(0)

    def conllu(path, n, bad=False):
        out = []
        for s in range(n):
            out.append(f"# sent_id = {s}")
            for i, tag in enumerate(["DET", "NOUN", "VERB"], 1):
                w = words[tag][int(torch.randint(0, 2, (1,), generator=g))]
                out.append("\t".join([str(i), w, w, "ADJ" if bad and s == 1 and i == 2 else tag] + ["_"] * 6))
            out.append("")
        path.write_text("\n".join(out) + "\n")
        return path

    run = tmp_path / "tag"
    assert cli.main(["train", "tag", "--train", str(conllu(tmp_path / "tr.conllu", 12)), "--dev",
                     str(conllu(tmp_path / "dv.conllu", 4)), "--layers", "bilstm:4", "--epochs", "1", "--out",
                     str(run)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--data", str(conllu(tmp_path / "ev.conllu", 3, bad=True))]) == 2
    assert "ev.conllu:8: tag 'ADJ' of the" in capsys.readouterr().err
    series = tmp_path / "s.csv"
    series.write_text("value\n" + "\n".join(str(float(i % 7)) for i in range(120)) + "\n")
    fc = tmp_path / "fc"
    assert cli.main(["train", "forecast", "--train", str(series), "--window", "8", "--horizon", "2", "--layers",
                     "bilstm:4", "--epochs", "1", "--out", str(fc)]) == 0
    (tmp_path / "two.csv").write_text("value\n1.0\n2.0\n")
    capsys.readouterr()
    assert cli.main(["evaluate", str(fc), "--data", str(tmp_path / "two.csv")]) == 2
    assert ("two.csv: 2 values; scoring a forecast needs at least window + horizon = 8 + 2 = 10"
            in capsys.readouterr().err)


def test_a_full_disk_names_the_file_it_could_not_write(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from birnn.train import checkpoint

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                              "\"No space left on device\" })")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(CheckpointError, match=r"best\.safetensors: could not be written \(No space left on device\); "
                                              r"free some space"):
        save_weights(tmp_path / "best.safetensors", {"w": torch.zeros(2)})
    assert list(tmp_path.iterdir()) == []  # the partial file is gone
