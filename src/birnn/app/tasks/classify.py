"""``classify`` (many-to-one): one label per sequence, from text (:class:`TextClassification`)
or from a multichannel series (:class:`SeriesClassification`)."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ...data import SeriesEncoder, TextEncoder
from ...data.encoding import Batch
from ...models import SequenceClassifier
from ...train import accuracy, class_report, confusion_matrix, macro_f1
from ..baselines.series import NearestDTW, NearestEuclidean
from ..baselines.text import TfidfLogistic
from .task import Run, Task, register
from .inputs import arrays_of, sequence_of
from .labels import check_known_labels

__all__ = ["SHORT_TEXT_TOKENS", "UNSEEN_SHARE", "PATCHED_STEPS", "SeriesClassification", "TextClassification",
           "series_patch", "text_input"]

SHORT_TEXT_TOKENS = 3.0  # texts averaging at most this many words read characters
UNSEEN_SHARE = 0.3  # ... and so do texts whose dev words are this often not in the training vocabulary
PATCHED_STEPS = 32  # a series is read in patches so that the RNN takes about this many steps


def text_input(records: dict, min_freq: int = 2) -> Tuple[str, str]:
    """What a text classifier reads when ``input="auto"``: ``("chars" or "words", reason)``.

    Characters where words are too few to learn from: texts of at most
    :data:`SHORT_TEXT_TOKENS` words on average (names, codes, single words), or dev texts whose
    words are mostly unknown to the training vocabulary (at least :data:`UNSEEN_SHARE` of
    them: a word model would see little but ``<unk>``). Words otherwise; ``"both"`` (words plus
    each word's characters) only when asked for.

    >>> text_input({"train": [("Anna", "F"), ("Otto", "M")], "dev": [("Eva", "F")]})[0]
    'chars'
    """
    from collections import Counter

    from ...data.text import tokenize

    counts = Counter(w for t, _ in records["train"] for w in tokenize(t))
    per_text = sum(counts.values()) / max(len(records["train"]), 1)
    dev = [w for t, _ in records.get("dev") or [] for w in tokenize(t)]
    unseen = sum(counts[w] < min_freq for w in dev) / len(dev) if dev else 0.0
    stats = f"texts average {per_text:.1f} words; {unseen:.0%} of dev words are not in the training vocabulary"
    if per_text <= SHORT_TEXT_TOKENS or unseen >= UNSEEN_SHARE:
        return "chars", f"input: characters ({stats}; --input words to change)"
    return "words", f"input: words ({stats}; --input chars or both to change)"


def series_patch(records: dict) -> Tuple[int, str]:
    """How many consecutive steps the RNN reads at once when ``patch="auto"``: ``(k, reason)``
    with ``k = ceil(median training length / PATCHED_STEPS)``. Long series make long
    recurrences that a few dozen examples cannot train (gradients fade over hundreds of steps);
    read in patches, a series of 250 steps is a sequence of 32.

    >>> series_patch({"train": [(np.zeros((251, 1)), "a"), (np.zeros((240, 1)), "b")]})[0]
    8
    """
    lengths = sorted(len(x) for x, _ in records["train"])
    median = lengths[len(lengths) // 2]
    k = max(1, -(-median // PATCHED_STEPS))
    if k == 1:
        return 1, f"input: series of median length {median}, read step by step (--patch to change)"
    return k, (f"input: series of median length {median}, read in patches of {k} steps ({-(-median // k)} RNN steps; "
               f"--patch to change)")


def token_inputs(B, T, Dim, chars: bool):
    """``birnn export``'s example for token models: ids and lengths, and each word's character ids
    where the model reads them (names, example tensors, dynamic shapes)."""
    ids, lengths = torch.full((2, 5), 2, dtype=torch.int64), torch.tensor([5, 3])
    if not chars:
        return ["ids", "lengths"], (ids, lengths), ({0: B, 1: T}, {0: B})
    return (["ids", "lengths", "chars"], (ids, lengths, torch.full((2, 5, 4), 2, dtype=torch.int64)),
            ({0: B, 1: T}, {0: B}, {0: B, 1: T, 2: Dim("W", min=2)}))


class _Classification(Task):
    """What text and series classification share: labels, their metrics and their display."""

    task = "classify"
    model_class = SequenceClassifier
    classifies = True

    def check_splits(self, data) -> None:
        if not hasattr(data, "dev"):
            return
        known = {str(label) for _, label in data.train}
        for what, records in (("dev", data.dev), ("test", data.test)):
            check_known_labels(records, known, what)

    def vocab(self, encoder):
        """The classes' vocabulary (labels; the tags of a tagger)."""
        return encoder.labels

    def check_records(self, run: Run, records: list, what: str) -> None:
        check_known_labels(records, self.vocab(run.encoder).itos, what)

    def labels(self, encoder) -> Optional[List[str]]:
        return list(self.vocab(encoder).itos)

    def collect(self, pred, batch, k: int):
        return int(pred[0][k])

    def class_ids(self, examples: list, preds: list) -> Tuple[list, list]:
        return preds, [ex["label"] for ex in examples]

    def score(self, run: Run, examples: list, preds: list, records: list) -> Dict[str, float]:
        flat_p, flat_g = self.class_ids(examples, preds)
        return {"accuracy": accuracy(flat_p, flat_g), "macro_f1": macro_f1(flat_p, flat_g)}

    def breakdown(self, run: Run, examples: list, preds: list) -> Optional[dict]:
        flat_p, flat_g = self.class_ids(examples, preds)
        vocab = self.vocab(run.encoder)
        labels = list(range(len(vocab)))
        return {"labels": list(vocab.itos),
                "per_class": dict(zip(vocab.itos, class_report(flat_p, flat_g, labels).values())),
                "confusion": confusion_matrix(flat_p, flat_g, labels)}

    def decode(self, run: Run, preds: list) -> list:
        return [run.encoder.labels.itos[p] for p in preds]

    def encode_predictions(self, run: Run, decoded: list) -> list:
        return [self.vocab(run.encoder).stoi[p] for p in decoded]

    def show(self, item: dict) -> str:
        probs = "".join(f"\t{p:.4f}" for p in item["scores"].values()) if "scores" in item else ""
        return f"{item['label']}{probs}" + (f"\t{item['text']}" if "text" in item else "")

    def exported(self, model, x, lengths, chars):
        return torch.softmax(model(Batch(x, lengths, None, chars)), -1)


class TextClassification(_Classification):
    kind = "text"
    model_keys = ("layers", "embedding_dim", "dropout", "embedding_dropout", "pooling", "head", "layer_options",
                  "char_dim", "char_hidden", "ngrams")
    encoder_defaults = {"min_freq": 2, "input": "auto"}
    encoder_name = "TextEncoder"
    baselines = (TfidfLogistic,)
    embedding_key = "embedding_dim"
    formats = ("text", "lines")
    formats_said = "a .csv/.tsv with a text column, or one text per line (.txt)"

    def auto_options(self, records: dict, options: dict) -> List[str]:
        notes = []
        if options.get("input", "auto") == "auto":
            if options.get("embeddings"):
                options["input"] = "words"
                notes.append("input: words (--embeddings gives word vectors; --input both adds characters)")
            else:
                options["input"], note = text_input(records, options.get("min_freq", 2))
                notes.append(note)
        return notes

    def fit_encoder(self, data, options: dict):
        return TextEncoder.fit(data.train, min_freq=options.get("min_freq", 2), input=options.get("input", "words"))

    def make_model(self, encoder, options: dict):
        chars = len(encoder.chars) if encoder.input == "both" else None
        return SequenceClassifier(num_classes=len(encoder.labels), vocab_size=len(encoder.tokens),
                                  char_vocab_size=chars, **self.model_options(options))

    def chosen(self, run: Run) -> dict:
        return {"input": run.encoder.input}  # what "auto" chose, so a rerun reads the same

    def word_vocab(self, encoder):
        return encoder.tokens if encoder.input in ("words", "both") else None

    def word_embedding(self, model):
        return model.embed.embedding

    def infer_format(self, path: str) -> str:
        fmt = super().infer_format(path)
        return "lines" if fmt == "wordtag" else fmt  # .txt: one text per line

    def read_for_prediction(self, run: Run, path: str, fmt: str) -> list:
        from ...data import read_lines, read_text_csv

        if fmt == "text":
            column = run.config.get("source", {}).get("text_column")
            return [(t, None) for t, _ in read_text_csv(path, text_column=column, require_labels=False)]
        return [(line, None) for line in read_lines(path)]

    def records_of(self, run: Run, inputs) -> Tuple[list, bool]:
        if isinstance(inputs, str):
            return [(inputs, None)], True
        items = sequence_of(inputs, "a string or a list of strings")
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise TypeError(f"inputs[{i}] must be a string (a text), got {type(t).__name__}")
        return [(t, None) for t in items], False

    def output(self, record, pred) -> dict:
        return {"text": record[0], "label": pred}

    def export_inputs(self, run: Run, B, T, Dim):
        return token_inputs(B, T, Dim, chars=run.encoder.input == "both")


class SeriesClassification(_Classification):
    kind = "series"
    model_keys = ("layers", "dropout", "pooling", "head", "input_noise", "layer_options", "patch")
    encoder_name = "SeriesEncoder"
    baselines = (NearestDTW, NearestEuclidean)
    formats = ("ts",)
    formats_said = "a .ts file (UCR/UEA)"

    def auto_options(self, records: dict, options: dict) -> List[str]:
        if options.get("patch", "auto") != "auto":
            return []
        options["patch"], note = series_patch(records)
        return [note]

    def fit_encoder(self, data, options: dict):
        return SeriesEncoder.fit(data.train)

    def make_model(self, encoder, options: dict):
        return SequenceClassifier(num_classes=len(encoder.labels), input_size=encoder.channels,
                                  **self.model_options(options))

    def chosen(self, run: Run) -> dict:
        return {"patch": run.model.patch}

    def read_channels(self, run: Run) -> Optional[int]:
        return run.encoder.channels

    def read_for_prediction(self, run: Run, path: str, fmt: str) -> list:
        from ...data import read_ts

        return [(x, None) for x, _ in read_ts(path, channels=run.encoder.channels)]

    def records_of(self, run: Run, inputs) -> Tuple[list, bool]:
        arrays, single = arrays_of(inputs)
        C = run.encoder.channels
        for i, x in enumerate(arrays):
            if x.shape[1] != C:
                raise ValueError(f"inputs[{i}] has {x.shape[1]} channels, the model reads {C} (arrays (T, C))")
        return [(x, None) for x in arrays], single

    def output(self, record, pred) -> dict:
        return {"label": pred}

    def export_inputs(self, run: Run, B, T, Dim):
        # (a model that reads patches of k steps takes them ready: (B, ceil(T/k), k*C))
        return (["x", "lengths"], (torch.zeros(2, 5, run.encoder.channels * run.model.patch), torch.tensor([5, 3])),
                ({0: B, 1: T}, {0: B}))


register(TextClassification())
register(SeriesClassification())
