"""The options of a training run — its data source, model and training — as typed tables (the
pattern of :class:`birnn.options.LayerOptions`): one :class:`Option` per option, from which
``birnn train``'s flags and help, a config file's known keys and value rules
(:mod:`birnn.config`) and run.toml's tables are all generated. A new option is one row here
(and its use where it is read: the model's constructor and its task's ``model_keys``, or
:class:`birnn.train.TrainConfig`).

``rule``: the numbers an option accepts, ``(lowest, lowest allowed?, highest or None,
highest allowed?)``; ``choices``: the name of a choice list :func:`birnn.config.choices` owns,
or the values; ``default``: how its help names the default — a literal, ``MODEL`` (each
task's model's own default, read from the model classes) or ``TRAIN`` (the
:class:`~birnn.train.TrainConfig` field's); ``{default}`` in ``help`` is replaced by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

from .baselines import BASELINE_CHOICES

__all__ = ["MODEL", "MODEL_OPTIONS", "Option", "SOURCE_OPTIONS", "TRAIN", "TRAIN_OPTIONS"]

MODEL, TRAIN = "<model>", "<train>"  # defaults read from the model classes / TrainConfig

POSITIVE = (1, True, None, False)  # an integer >= 1 (or a number > 0 with float)
NATURAL = (0, True, None, False)  # >= 0
PROBABILITY = (0, True, 1, False)  # [0, 1)


@dataclass(frozen=True)
class Option:
    name: str
    type: type = str  # int, float, str, bool (a switch), list (one or more words)
    help: str = ""
    rule: Optional[Tuple] = None
    choices: Union[None, str, Tuple] = None
    default: Optional[str] = None
    negative: Optional[str] = None  # bool: "only" (--no-chars sets it False) or "both" (--crf / --no-crf)
    flagged: bool = True  # False: config files and run.toml only (its flag, if any, is the CLI's own)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SOURCE_OPTIONS = (
    Option("train", help="training file: .conllu, .txt (word/TAG), .bio/.conll (columns) for tag; "
                         ".csv/.tsv (text,label) or .ts for classify; .csv/.tsv series for forecast"),
    Option("dev", help="dev file for early stopping and selection (default: a seeded 10%% of --train; "
                       "a forecast series is split in time 80/10/10)"),
    Option("test", help="test file, scored once at the end"),
    Option("dataset", help="an offline dataset and its preset instead of files (default {default} when no "
                           "--train; see birnn data list)", default="<dataset>"),
    Option("format", choices="format", help="the files' format (default: from the extension)"),
    Option("text_column", help="[classify] CSV column of the texts (default: text, sentence, review, ...)"),
    Option("label_column", help="[classify] CSV column of the labels (default: label, category, class, ...)"),
    Option("tag_column", choices=("upos", "xpos"), help="[tag] CoNLL-U column of the tags (default upos)"),
    Option("columns", help="[forecast] series columns, comma-separated names (default: the last column)"),
    Option("split_seed", int, "seed of the dev split without --dev (default 13)", rule=NATURAL),
)

MODEL_OPTIONS = (
    Option("layers", list, "layer specs [bi]CELL:HIDDEN[:MERGE][*LAYERS], e.g. bilstm:128*2 gru:64 bigru:32:sum "
                           "(default: {default})", default=MODEL),
    Option("input", help="[classify text] what the model reads: words, chars (each text's characters) or both "
                         "(words + each word's characters); auto (the default) picks chars for texts of a few words "
                         "or mostly unseen words, else words, and says why in the run header", choices="input"),
    Option("ngrams", int, "[classify text] beside the RNN, the mean embedding of the tokens' n-grams of orders "
                          "1..N, hashed as fastText's (4 over characters and 2 over words read what char and word "
                          "n-gram tf-idf read; default 0: none)", rule=NATURAL),
    Option("pooling", help="[classify, forecast] how a sequence becomes one vector: final = forward state at the "
                           "last real step + backward state at the first (default {default})", choices="pooling",
           default=MODEL),
    Option("dropout", float, "dropout on inputs, between layers and in the head, in [0, 1) (default {default})",
           rule=PROBABILITY, default=MODEL),
    Option("embedding_dim", int, "[classify text] word embedding size (default {default})", rule=POSITIVE,
           default=MODEL),
    Option("embedding_dropout", float, "[classify text] whole-word dropout on the embeddings (default 0)",
           rule=PROBABILITY),
    Option("embeddings", help="[classify text, tag] pretrained word vectors for the word embedding: word2vec, "
                              "GloVe or fastText text files (.txt, .vec) or word2vec binary (.bin), optionally .gz; "
                              "the dimension is read from the file, the run keeps the rows of its vocabulary"),
    Option("freeze_embeddings", bool, "[classify text, tag] keep the word embedding fixed in training (with "
                                      "--embeddings)", negative="both"),
    Option("embeddings_sha256", help="the SHA-256 of the embeddings file (run.toml records it; a rerun refuses a "
                                     "changed file)", flagged=False),
    Option("word_dim", int, "[tag] word embedding size (default {default})", rule=POSITIVE, default=MODEL),
    Option("char_dim", int, "[tag, classify --input both] character embedding size (default {default})",
           rule=POSITIVE, default=MODEL),
    Option("char_hidden", int, "[tag, classify --input both] character BiLSTM size per direction (default "
                               "{default})", rule=POSITIVE, default=MODEL),
    Option("chars", bool, "[tag] no character features (words only)", negative="only"),
    Option("word_dropout", float, "[tag] probability of replacing a word by <unk> in training (default 0)",
           rule=PROBABILITY),
    Option("crf", bool, "[tag] a CRF output layer (Viterbi decoding); default: one for BIO/IOB tag sets (entity "
                        "spans), none otherwise", choices="crf", negative="both"),
    Option("window", int, "[forecast] input steps per example (default 30)", rule=POSITIVE),
    Option("horizon", int, "[forecast] steps predicted at once (default 1)", rule=POSITIVE),
    Option("min_freq", int, "[classify text, tag] words seen fewer times in training become <unk> (default: "
                            "classify 2, tag 1)", rule=POSITIVE),
    Option("head", list, "[classify, forecast] hidden sizes of the MLP head", flagged=False),
    Option("patch", int, "[classify series] time steps the RNN reads at once (a long series becomes a short "
                         "sequence; default 1)", rule=POSITIVE),
    Option("input_noise", float, "[classify series] sd of Gaussian noise added to the inputs in training "
                                 "(default 0)", rule=NATURAL),
)

TRAIN_OPTIONS = (
    Option("epochs", int, "passes over the training data (default {default})", rule=POSITIVE, default=TRAIN),
    Option("batch_size", int, "examples per batch (default {default})", rule=POSITIVE, default=TRAIN),
    Option("max_length", int, "[tag] split, [classify] cut training sequences longer than this many steps "
                              "(default: none; a run whose longest batch would not fit in memory is refused before "
                              "training and says so)", rule=POSITIVE),
    Option("accumulate", int, "batches whose gradients make one optimizer step (default 1)", rule=POSITIVE),
    Option("lr", float, "AdamW learning rate (default {default})", rule=(0, False, None, False), default=TRAIN),
    Option("warmup_steps", int, "optimizer steps of linear learning-rate warm-up (default 0)", rule=NATURAL),
    Option("weight_decay", float, "AdamW weight decay (default {default})", rule=NATURAL, default=TRAIN),
    Option("clip_norm", float, "clip the gradients' global norm to this, 0 for no clipping (default {default})",
           rule=NATURAL, default=TRAIN),
    Option("schedule", help="learning rate: plateau halves it after 2 epochs without dev improvement; cosine "
                            "decays it to 0 over the run (default {default})", choices="schedule", default=TRAIN),
    Option("monitor", help="the dev metric for early stopping and selection, e.g. accuracy, macro_f1, span_f1, "
                           "mae (default: accuracy; mae for forecast)"),
    Option("patience", int, "stop after this many epochs without dev improvement (default {default})",
           rule=POSITIVE, default=TRAIN),
    Option("precision", help="fp32 (default), or bf16: forward passes under bfloat16 autocast (matmuls and RNN ops "
                             "in bfloat16; weights, optimizer and losses in float32)", choices="precision"),
    Option("logger", help="json: log.jsonl and log.csv (default); tensorboard: also TensorBoard event files in "
                          "RUN/tensorboard (scalars per step and epoch, the configuration; pip install tensorboard)",
           choices="logger"),
    Option("select", help="the weights the run ends on: the best dev epoch, or the last (for fixed budgets) "
                          "(default {default})", choices="select", default=TRAIN),
    Option("save_every", int, "optimizer steps (not epochs) between mid-epoch checkpoints, 0 for epoch ends only "
                              "(default {default})", rule=NATURAL, default=TRAIN),
    Option("max_minutes", float, "stop after this many minutes; birnn resume continues (default: no limit)",
           rule=(0, False, None, False)),
    Option("device", help="cpu, cuda, cuda:N, or auto: cuda when this PyTorch has a GPU, else cpu (default auto)",
           choices="device"),
    Option("seed", int, "seed of the weights and batch order (default {default})", rule=NATURAL, default=TRAIN),
    Option("baseline", help="auto (the default): also fit the practitioner's baseline of the task on the same "
                            "split (tf-idf + logistic regression, a feature CRF, 1-NN DTW, the naive forecast; "
                            "pip install 'birnn[baselines]') and report it beside the model; none: skip it",
           choices=BASELINE_CHOICES),
    Option("threads", int, rule=POSITIVE, flagged=False),  # (the CLI's flag: train, evaluate and predict take it)
)
