"""Pretrained word vectors in a run (``--embeddings PATH``): read for the run's word vocabulary,
checked against the model's embedding size and the hash a configuration records, the
vocabulary extended by the file's most frequent words (:data:`FILE_WORDS`), and copied into
the model's word embedding, whose rows the run's weights then keep (prediction, export and
:func:`birnn.load` never read the file again). Only tasks that name their word
embedding (:attr:`birnn.app.tasks.task.Task.embedding_key`) take them."""

from __future__ import annotations

from typing import Optional

import torch

from ...data.vectors import Vectors, embedding_matrix, read_vectors
from ...data.vocab import PAD, UNK

__all__ = ["FILE_WORDS", "apply_embeddings", "read_embeddings"]

# the file's most frequent words (its first) that join the vocabulary besides the training
# words, so that words unseen in training but known to the vectors are not <unk> at prediction
FILE_WORDS = 20_000


def read_embeddings(impl, encoder, options: dict) -> Optional[Vectors]:
    """The vectors ``options["embeddings"]`` names, for ``encoder``'s words (None without one);
    sets the embedding size option to the file's dimension and ``embeddings_sha256`` to its
    hash. ValueError where the run cannot take them, naming the option."""
    path = options.get("embeddings")
    if not path:
        if options.get("freeze_embeddings"):
            raise ValueError("--freeze-embeddings keeps pretrained vectors fixed: give them with --embeddings PATH")
        return None
    if not impl.embedding_key:
        raise ValueError(f"--embeddings: word vectors are for word-level text classification and tagging, not "
                         f"{impl.kind} runs")
    vocab = impl.word_vocab(encoder)
    if vocab is None:
        raise ValueError("--embeddings: this run reads characters (--input chars); word vectors need --input words or "
                         "both")
    vectors = read_vectors(path, vocab.itos, first=FILE_WORDS)
    lower = getattr(encoder, "lowercase", True)  # (the encoders' words are lowercase)
    impl.set_word_vocab(encoder, vocab.extended(w.lower() if lower else w for w in vectors.leading))
    key = impl.embedding_key
    given = options.get(key)
    if given is not None and given != vectors.dim:
        raise ValueError(f"--{key.replace('_', '-')} {given}, but {path} holds {vectors.dim}-dimensional vectors "
                         f"(leave --{key.replace('_', '-')} out: the file sets it)")
    recorded = options.get("embeddings_sha256")
    if recorded and recorded != vectors.sha256:
        raise ValueError(f"{path}: its SHA-256 is {vectors.sha256}, the configuration records {recorded} (the file "
                         f"changed since the run that wrote it)")
    options[key] = vectors.dim
    options["embeddings_sha256"] = vectors.sha256
    return vectors


def apply_embeddings(impl, encoder, model, vectors: Vectors, options: dict, seed: int = 0) -> str:
    """Copy the vectors into ``model``'s word embedding (frozen with ``freeze_embeddings``);
    returns the run header's note."""
    vocab = impl.word_vocab(encoder)
    matrix, found = embedding_matrix(vocab.itos, vectors, specials={PAD: "zero", UNK: "mean"}, seed=seed)
    weight = impl.word_embedding(model).weight
    with torch.no_grad():
        weight.copy_(torch.from_numpy(matrix))
    frozen = bool(options.get("freeze_embeddings"))
    if frozen:
        weight.requires_grad_(False)
    words = len(vocab) - sum(w in (PAD, UNK) for w in vocab.itos)
    return (f"embeddings: {found} of {words} vocabulary words (the training words and the file's first "
            f"{FILE_WORDS:,}) have a vector in "
            f"{vectors.path} ({vectors.dim} dimensions, sha256 {vectors.sha256[:12]}); the others start random at "
            f"its scale; " + ("frozen in training" if frozen else "trained with the model (--freeze-embeddings to "
                                                                  "keep them)"))
