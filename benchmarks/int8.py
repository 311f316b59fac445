"""int8 ONNX (issue #35): a trained run's test metric in onnxruntime, float against int8.

For each run directory given (default: the quality runs of benchmarks/quality.py that are
there), ``birnn export RUN --format onnx`` and ``--int8`` (onnxruntime's dynamic
quantization), then each file scores the run's own test split (its recorded source, split as
it was) in onnxruntime: accuracy for classifiers (argmax of the probabilities), token accuracy
for taggers without a CRF. Bar: int8 within 0.01 of float. Also the files' sizes and the
int8 operators.

    python benchmarks/int8.py                      # rotten-tomatoes, japanese-vowels, turkish-upos
    python benchmarks/int8.py benchmarks/runs/first-names
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from birnn import tasks
from birnn.data import load_source
from birnn.export import export_run
from harness import machine, markdown_table

RUNS = Path(__file__).parent / "runs"
DEFAULT = ["rotten-tomatoes", "japanese-vowels", "turkish-upos"]


def test_records(run) -> list:
    data = load_source(run.task, run.config["source"])
    return tasks.split_records(run.task, data, dict(run.config.get("resolved", {}).get("model", {})))["test"]


def ort_accuracy(run, path: Path, records: list) -> float:
    """The exported file's accuracy on ``records`` (per record, or per token for a tagger)."""
    import onnxruntime

    meta = json.loads((path.parent / "preprocessing.json").read_text())
    if meta.get("decode") == "viterbi":
        raise SystemExit(f"{run.task}: a CRF tagger's decoding is not scored here")
    session = onnxruntime.InferenceSession(str(path))
    right = total = 0
    for batch in tasks.batches_of(run.encoder, tasks.encode_all(run.encoder, records)):
        x, lengths = (run.model.patched(batch.inputs, batch.lengths) if run.kind == "series"
                      else (batch.inputs, batch.lengths))
        feeds = {"ids": x, "x": x, "lengths": lengths, "chars": batch.chars}
        (scores,) = session.run(None, {n: feeds[n].numpy() for n in meta["inputs"]})
        guess = torch.from_numpy(np.argmax(scores, -1))
        if run.kind == "tagging":
            real = batch.targets >= 0
            right += int(((guess == batch.targets) & real).sum())
            total += int(real.sum())
        else:
            right += int((guess == batch.targets).sum())
            total += len(batch)
    return right / total


def row(run_dir: Path, work: Path) -> list:
    run = tasks.load_run(run_dir)
    records = test_records(run)
    out = {}
    for int8 in (False, True):
        t0 = time.perf_counter()
        path = export_run(run, work / run_dir.name / ("int8" if int8 else "float") / "model.onnx", "onnx", int8=int8)
        secs = time.perf_counter() - t0
        ops = json.loads((path.parent / "preprocessing.json").read_text()).get("int8", [])
        out[int8] = (ort_accuracy(run, path, records), os.path.getsize(path) / 1e6, secs, ops)
    (fa, fs, _, _), (qa, qs, qsecs, ops) = out[False], out[True]
    return [run_dir.name, run.config["resolved"]["model"]["layers"], len(records), f"{fa:.4f}", f"{qa:.4f}",
            f"{qa - fa:+.4f}", "PASS" if abs(qa - fa) <= 0.01 else "FAIL", f"{fs:.1f} -> {qs:.1f}",
            ", ".join(ops), f"{qsecs:.0f}"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", help="run directories (default: benchmarks/runs/{%s})" % ",".join(DEFAULT))
    args = p.parse_args(argv)
    dirs = [Path(r) for r in args.runs] or [RUNS / name for name in DEFAULT if (RUNS / name).exists()]
    if not dirs:
        raise SystemExit("no runs: train them first (python benchmarks/quality.py rotten-tomatoes ...)")
    print(f"# int8 ONNX against float ONNX, onnxruntime, the run's test split\n\n{machine()}\n")
    with tempfile.TemporaryDirectory() as work:
        rows = [row(d, Path(work)) for d in dirs]
    print(markdown_table(["run", "layers", "test records", "float", "int8", "int8 - float", "bar |d| <= 0.01",
                          "MB float -> int8", "int8 operators", "int8 export s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
