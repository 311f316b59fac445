"""Pretrained word vectors (--embeddings): every file format read to the same vectors, malformed
files named by file and line, the lookup order, the rows of the embedding, and runs that keep
the vectors in their weights and never need the file again."""

import gzip
import struct

import numpy as np
import pytest
import torch

import birnn
from birnn.data.vectors import embedding_matrix, read_vectors

from helpers import sentences, write_conllu, write_text_data

WORDS = ["good", "Fine", "GREAT", "nice", "bad", "poor", "the", "cat"]


def vectors(dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return {w: rng.standard_normal(dim).astype(np.float32) for w in WORDS}


def write_text(path, vecs, header=True, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        if header:
            f.write(f"{len(vecs)} {len(next(iter(vecs.values())))}\n")
        for w, v in vecs.items():
            f.write(w + " " + " ".join(repr(float(x)) for x in v) + "\n")


def write_binary(path, vecs, opener=open):
    with opener(path, "wb") as f:
        f.write(f"{len(vecs)} {len(next(iter(vecs.values())))}\n".encode())
        for w, v in vecs.items():
            f.write(w.encode() + b" " + struct.pack(f"<{len(v)}f", *v) + b"\n")


@pytest.mark.parametrize("name, write", [
    ("v.vec", lambda p, v: write_text(p, v)),
    ("glove.txt", lambda p, v: write_text(p, v, header=False)),
    ("v.txt.gz", lambda p, v: write_text(p, v, opener=gzip.open)),
    ("v.bin", write_binary),
    ("v.bin.gz", lambda p, v: write_binary(p, v, opener=gzip.open)),
])
def test_every_format_reads_the_same_vectors(tmp_path, name, write):
    vecs = vectors()
    write(tmp_path / name, vecs)
    got = read_vectors(tmp_path / name)
    assert got.dim == 4 and set(got.rows) == set(WORDS)
    for w, v in vecs.items():
        np.testing.assert_array_equal(got.lookup(w), v)
    only = read_vectors(tmp_path / name, ["good", "great"])  # only the rows a vocabulary may look up
    assert set(only.rows) == {"good", "GREAT"}


def test_lookup_is_exact_then_lowercase_then_any_case(tmp_path):
    vecs = {"Paris": np.ones(2, np.float32), "paris": np.zeros(2, np.float32), "Berlin": np.full(2, 2.0, np.float32),
            "BERLIN": np.full(2, 3.0, np.float32)}
    write_text(tmp_path / "v.txt", vecs)
    v = read_vectors(tmp_path / "v.txt")
    assert v.lookup("Paris").tolist() == [1, 1] and v.lookup("PARIS").tolist() == [0, 0]  # exact, then lowercase
    assert v.lookup("berlin").tolist() == [2, 2]  # the file's first word of that lowercase form
    assert v.lookup("Rome") is None


@pytest.mark.parametrize("body, message", [
    ("a 1 2 3\nb 1 2\n", r"v\.txt:2: expected a word and 3 numbers"),
    ("a 1 2\nb 1 x\n", r"v\.txt:2: the vector of 'b' holds a value that is not a number"),
    ("2 3\na 1 2 3\nb 1 2 3 4\n", r"v\.txt:3: expected a word and 3 numbers"),
    ("a 1 nan\n", r"holds inf or nan"),
    ("", r"no vectors"),
])
def test_a_malformed_text_file_is_named_with_its_line(tmp_path, body, message):
    (tmp_path / "v.txt").write_text(body)
    with pytest.raises(ValueError, match=message):
        read_vectors(tmp_path / "v.txt")


def test_a_truncated_binary_file_and_a_missing_file_are_named(tmp_path):
    write_binary(tmp_path / "v.bin", vectors())
    data = (tmp_path / "v.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"cut\.bin: vector 8 of 8 \('cat'\): the file ends inside its 4 numbers"):
        read_vectors(tmp_path / "cut.bin")
    with pytest.raises(FileNotFoundError, match="nowhere.vec"):
        read_vectors(tmp_path / "nowhere.vec")


def test_the_embedding_rows(tmp_path):
    vecs = vectors(dim=8)
    write_text(tmp_path / "v.txt", vecs)
    itos = ["<pad>", "<unk>", "good", "great", "zebra", "quagga"]
    m, found = embedding_matrix(itos, read_vectors(tmp_path / "v.txt"), specials={"<pad>": "zero", "<unk>": "mean"})
    assert found == 2
    np.testing.assert_array_equal(m[0], 0)
    np.testing.assert_allclose(m[1], (vecs["good"] + vecs["GREAT"]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(m[2], vecs["good"])
    np.testing.assert_array_equal(m[3], vecs["GREAT"])
    assert not np.allclose(m[4], m[5])  # missing words: drawn, each its own


def embedding_of(model):
    return model._run.impl.word_embedding(model._run.model).weight.detach()


def test_a_text_run_keeps_its_vectors_and_never_needs_the_file(tmp_path):
    train, dev = write_text_data(tmp_path, 40, 16)
    vecs = vectors(dim=6)
    write_text(tmp_path / "v.vec", vecs)
    common = dict(train=train, dev=dev, layers=["bigru:4"], epochs=2, baseline="none", verbose=False)
    frozen = birnn.fit("classify", **common, out=tmp_path / "frozen", embeddings=str(tmp_path / "v.vec"),
                       freeze_embeddings=True)
    enc = frozen._run.encoder
    assert enc.input == "words" and frozen._run.model.config["embedding_dim"] == 6
    weight = embedding_of(frozen)
    for w in ("good", "great", "nice", "bad", "poor"):  # (the vocabulary is lowercase)
        np.testing.assert_array_equal(weight[enc.tokens.stoi[w]].numpy(), vecs[w] if w in vecs else vecs[w.upper()])
    toml = (tmp_path / "frozen" / "run.toml").read_text()
    assert f'embeddings = "{tmp_path / "v.vec"}"' in toml and "embeddings_sha256 = " in toml
    trained = birnn.fit("classify", **common, out=tmp_path / "trained", embeddings=str(tmp_path / "v.vec"))
    moved = embedding_of(trained)[trained._run.encoder.tokens.stoi["good"]].numpy()
    assert not np.allclose(moved, vecs["good"])  # trained with the model
    (tmp_path / "v.vec").unlink()  # the run keeps its rows: load and predict without the file
    again = birnn.load(tmp_path / "frozen")
    torch.testing.assert_close(embedding_of(again), weight)
    assert again.predict(["good nice fine"]) == frozen.predict(["good nice fine"])


def test_a_tagger_takes_vectors_and_a_rerun_refuses_a_changed_file(tmp_path):
    write_conllu(tmp_path / "train.conllu", sentences(30))
    vecs = {w: np.full(3, i, np.float32) for i, w in enumerate(["the", "cat", "dog", "sees", "Owl"])}
    write_text(tmp_path / "v.txt", vecs, header=False)
    model = birnn.fit("tag", train=tmp_path / "train.conllu", out=tmp_path / "tag", layers=["bilstm:4"], epochs=1,
                      embeddings=str(tmp_path / "v.txt"), freeze_embeddings=True, baseline="none", verbose=False)
    enc = model._run.encoder
    assert model._run.model.config["word_dim"] == 3
    np.testing.assert_array_equal(embedding_of(model)[enc.words.stoi["dog"]].numpy(), [2, 2, 2])
    # a word the training data lacks but the file knows is in the vocabulary, with its vector
    np.testing.assert_array_equal(embedding_of(model)[enc.words.stoi["owl"]].numpy(), [4, 4, 4])
    assert enc.encode((["an", "owl"], None))["words"] == [enc.words.unk_id, enc.words.stoi["owl"]]
    vecs["cat"] = np.full(3, 9.0, np.float32)
    write_text(tmp_path / "v.txt", vecs, header=False)
    with pytest.raises(ValueError, match=r"v\.txt: its SHA-256 is .*the configuration records"):
        birnn.fit(config=tmp_path / "tag" / "run.toml", out=tmp_path / "rerun", verbose=False)


@pytest.mark.parametrize("extra, message", [
    (dict(input="auto", layers=["bigru:4"], embedding_dim=8), r"--embedding-dim 8, but .*v\.vec holds 6-dimensional vectors"),
    (dict(input="chars"), r"--embeddings: this run reads characters \(--input chars\)"),
    (dict(embeddings=None, freeze_embeddings=True), r"--freeze-embeddings keeps pretrained vectors fixed"),
])
def test_what_a_run_cannot_take_is_named(tmp_path, extra, message):
    train, dev = write_text_data(tmp_path)
    write_text(tmp_path / "v.vec", vectors(dim=6))
    options = {k: v for k, v in {"embeddings": str(tmp_path / "v.vec"), **extra}.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        birnn.fit("classify", train=train, dev=dev, out=tmp_path / "run", epochs=1, verbose=False, **options)
