"""``tag`` (many-to-many): one tag per token (part of speech, BIO entity spans)."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ...data import TaggingEncoder, bio_tags
from ...data.encoding import Batch
from ...models import SequenceTagger
from ...train import entity_report, span_f1
from ..baselines.tagging import FeatureCRF, MostFrequentTag
from .classify import _Classification, token_inputs
from .inputs import sequence_of
from .labels import check_known_labels
from .task import Run, register

__all__ = ["Tagging", "tagger_crf"]


def tagger_crf(records: dict) -> Tuple[bool, str]:
    """Whether a tagger decodes through a CRF when ``crf="auto"``: ``(crf, reason)``. Yes for
    BIO/IOB tag sets, whose spans need consistent transitions (an ``I-X`` only after ``B-X`` or
    ``I-X``) that independent per-token softmaxes do not learn from small data (Lample et al.
    2016); no for other tag sets (part-of-speech tags), where it costs time and adds little.

    >>> tagger_crf({"train": [(["Ada", "wrote"], ["B-PER", "O"])]})[0]
    True
    """
    tags = {t for _, ts in records["train"] for t in ts}
    if bio_tags(tags):
        return True, "output: a CRF layer (BIO tags: entity spans need consistent B-/I- transitions; --no-crf to change)"
    return False, "output: a softmax per token (the tags are not BIO spans; --crf to change)"


class Tagging(_Classification):
    """Per-token classes: the label machinery of classification over tokens, plus spans."""

    task = "tag"
    kind = "tagging"
    model_class = SequenceTagger
    model_keys = ("layers", "word_dim", "char_dim", "char_hidden", "dropout", "word_dropout", "crf", "layer_options",
                  "chars")
    encoder_defaults = {"min_freq": 1}
    encoder_name = "TaggingEncoder"
    baselines = (FeatureCRF, MostFrequentTag)
    embedding_key = "word_dim"
    formats = ("conllu", "wordtag", "columns", "tokens", "lines")
    formats_said = ("a .conllu file, a .txt of word/TAG tokens, .bio/.conll columns, or one tokenised sentence per "
                    "line")
    unit = "tokens"
    classifies = False

    def auto_options(self, records: dict, options: dict) -> List[str]:
        if options.get("crf", "auto") != "auto":
            return []
        options["crf"], note = tagger_crf(records)
        return [note]

    def fit_encoder(self, data, options: dict):
        tagset = sorted({t for split in (data.dev, data.test) for _, ts in split for t in ts})
        return TaggingEncoder.fit(data.train, min_freq=options.get("min_freq", 1), tagset=tagset)

    def make_model(self, encoder, options: dict):
        opts = self.model_options(options)
        chars = opts.pop("chars", True)
        return SequenceTagger(num_tags=len(encoder.tags), vocab_size=len(encoder.words),
                              char_vocab_size=len(encoder.chars) if chars else None, unk_idx=encoder.words.unk_id,
                              **opts)

    def resolved_options(self, options: dict) -> dict:
        return {**super().resolved_options({}), "chars": True,
                **{k: v for k, v in options.items() if k != "layer_options"}}

    def chosen(self, run: Run) -> dict:
        return {"crf": run.model.crf is not None}  # what "auto" chose

    def word_vocab(self, encoder):
        return encoder.words

    def word_embedding(self, model):
        return model.words

    def split_long(self) -> bool:
        return True

    def dev_size(self, dev: list) -> int:
        return sum(len(words) for words, _ in dev)

    def tags(self, run: Run) -> tuple:
        return tuple(run.encoder.tags.itos)

    def monitorable(self, tags=()) -> tuple:
        return self.metrics + (("span_f1",) if bio_tags(tags) else ())

    def check_splits(self, data) -> None:
        """(Tags unknown to training are part of the tag set: the encoder is fitted with them.)"""

    def check_records(self, run: Run, records: list, what: str) -> None:
        check_known_labels(records, self.vocab(run.encoder).itos, what, tagging=True)

    def collect(self, pred, batch, k: int):
        return pred[k, : int(batch.lengths[k])].tolist()

    def class_ids(self, examples: list, preds: list) -> Tuple[list, list]:
        return [t for p in preds for t in p], [t for ex in examples for t in ex["tags"]]

    def vocab(self, encoder):
        return encoder.tags

    def score(self, run: Run, examples: list, preds: list, records: list) -> Dict[str, float]:
        metrics = super().score(run, examples, preds, records)
        tags = run.encoder.tags
        if bio_tags(tags.itos):
            metrics["span_f1"] = span_f1([tags.decode(p) for p in preds], [tags.decode(ex["tags"]) for ex in examples])
        return metrics

    def breakdown(self, run: Run, examples: list, preds: list) -> Optional[dict]:
        out = super().breakdown(run, examples, preds)
        vocab = run.encoder.tags
        if bio_tags(vocab.itos):
            out["entities"] = entity_report([vocab.decode(p) for p in preds],
                                            [vocab.decode(ex["tags"]) for ex in examples])
        return out

    def decode(self, run: Run, preds: list) -> list:
        return [run.encoder.tags.decode(p) for p in preds]

    def encode_predictions(self, run: Run, decoded: list) -> list:
        return [[run.encoder.tags.stoi[t] for t in tags] for tags in decoded]

    def read_for_prediction(self, run: Run, path: str, fmt: str) -> list:
        from ...data import read_columns, read_conllu, read_lines

        if fmt == "conllu":
            return [(w, None) for w, _ in read_conllu(path, require_tags=False)]
        if fmt == "columns":
            return [(w, None) for w, _ in read_columns(path)]
        # one sentence per line: tokens, or word/TAG tokens
        return [([t.rpartition("/")[0] or t if fmt == "wordtag" else t for t in line.split()], None)
                for line in read_lines(path)]

    def records_of(self, run: Run, inputs) -> Tuple[list, bool]:
        if isinstance(inputs, str):
            return [(inputs.split(), None)], True
        items = sequence_of(inputs, "a string, a list of strings or a list of token lists")
        out = []
        for i, s in enumerate(items):
            if isinstance(s, str):
                out.append((s.split(), None))
            elif isinstance(s, (list, tuple)) and all(isinstance(w, str) for w in s):
                out.append((list(s), None))
            else:
                raise TypeError(f"inputs[{i}] must be a sentence (a string) or a list of tokens, "
                                f"got {type(s).__name__}")
        return out, False

    def output(self, record, pred) -> dict:
        return {"words": record[0], "tags": pred}

    def show(self, item: dict) -> str:
        return "\n".join(f"{w}\t{t}" for w, t in zip(item["words"], item["tags"])) + "\n"

    def export_inputs(self, run: Run, B, T, Dim):
        return token_inputs(B, T, Dim, chars=run.model.chars is not None)

    def exported(self, model, x, lengths, chars):
        return model(Batch(x, lengths, None, chars))  # emissions (a CRF's: decode with preprocessing.json's)

    def export_meta(self, run: Run) -> dict:
        crf = getattr(run.model, "crf", None)
        if crf is None:
            return {}
        # the scores are the CRF's emissions: decode them with these (Viterbi, docs/deploy.md)
        return {"decode": "viterbi", "crf": {k: getattr(crf, k).detach().tolist() for k in ("transitions", "start", "end")}}


register(Tagging())
