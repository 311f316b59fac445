"""Data and arguments the task tests share (small, seeded, written to a test's folder)."""

import random
from pathlib import Path

import torch


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
            "--dropout", "0", "--baseline", "none", "--out", str(out), *extra]  # (the baseline: test_baselines.py)


LEXICON = {"DET": ["the", "a", "every"], "NOUN": ["cat", "dog", "house", "idea"], "VERB": ["sees", "likes", "runs"],
           "ADJ": ["big", "green", "old"], "PUNCT": [".", "!"]}


def sentences(n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pattern = rng.choice([["DET", "NOUN", "VERB", "PUNCT"], ["DET", "ADJ", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]])
        out.append([(rng.choice(LEXICON[t]), t) for t in pattern])
    return out


def write_conllu(path, sents):
    with open(path, "w") as f:
        for k, s in enumerate(sents):
            f.write(f"# sent_id = {k}\n")
            for i, (w, t) in enumerate(s, 1):
                f.write("\t".join([str(i), w, w, t, "_", "_", "0", "dep", "_", "_"]) + "\n")
            f.write("\n")
