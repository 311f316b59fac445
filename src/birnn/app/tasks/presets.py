"""Defaults per dataset: model options and training options that reach the quality bars
recorded in benchmarks/RESULTS.md. Command-line flags override any of them."""

from __future__ import annotations

from typing import Dict

__all__ = ["PRESETS"]

PRESETS: Dict[str, dict] = {
    # the dev split has 27 cases, too few to select on: a fixed cosine budget, last weights
    "japanese-vowels": {"model": {"layers": ["bigru:128*2"], "dropout": 0.4, "pooling": "mean", "input_noise": 0.1},
                        "train": {"epochs": 80, "batch_size": 16, "lr": 2e-3, "schedule": "cosine",
                                  "patience": 1000, "select": "last"}},
    "rotten-tomatoes": {"model": {"layers": ["bilstm:128"], "embedding_dim": 128, "dropout": 0.5,
                                  "embedding_dropout": 0.1, "pooling": "max", "min_freq": 2},
                        "train": {"epochs": 12, "batch_size": 32, "lr": 2e-3, "patience": 4}},
    # the model defaults; larger batches and a shorter patience keep it within ~2 minutes on 2 CPUs
    "first-names": {"train": {"epochs": 20, "batch_size": 64, "patience": 4}},
    "turkish-upos": {"model": {"layers": ["bilstm:128*2"], "word_dim": 100, "char_dim": 32, "char_hidden": 64,
                               "dropout": 0.33, "word_dropout": 0.1},
                     "train": {"epochs": 20, "batch_size": 32, "lr": 2e-3, "patience": 4}},
    "sunspots": {"model": {"layers": ["bilstm:32"], "window": 20, "horizon": 1, "dropout": 0.0},
                 "train": {"epochs": 200, "batch_size": 16, "lr": 3e-3, "patience": 30, "schedule": "plateau"}},
    "sine": {"model": {"layers": ["bilstm:32"], "window": 60, "horizon": 20},
             "train": {"epochs": 40, "batch_size": 32, "lr": 3e-3, "patience": 8}},
}
