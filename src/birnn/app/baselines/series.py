"""Series classification's baselines: the nearest training series (1-NN) under dynamic time
warping (aeon's DTW) where the distance matrix is affordable, else under Euclidean distance
(series of other lengths resampled to the training median) — what a practitioner tries first
on time series (Bagnall et al. 2017: 1-NN DTW is the standard benchmark)."""

from __future__ import annotations

import warnings
from typing import List

import numpy as np

from . import Baseline, Unavailable, needs

__all__ = ["DTW_CELLS", "NearestDTW", "NearestEuclidean"]

DTW_CELLS = 3e9  # DTW cost-matrix cells one prediction may fill (a few seconds at aeon's speed)


def _arrays(records: list) -> List[np.ndarray]:
    """Each series as a float64 ``(C, T)`` array, missing values 0 (as the model reads them)."""
    return [np.nan_to_num(np.asarray(x, dtype=np.float64)).T.copy() for x, _ in records]


def _nearest(distances: np.ndarray, labels: np.ndarray) -> list:
    return [str(labels[i]) for i in distances.argmin(1)]


class NearestDTW(Baseline):
    name = "1-NN DTW (aeon)"

    def fit(self, train: list, dev: list) -> "NearestDTW":
        self.distance = needs("aeon.distances", "aeon").dtw_pairwise_distance
        self.train = _arrays(train)
        self.labels = np.array([str(y) for _, y in train])
        self.train_steps = sum(x.shape[1] for x in self.train)
        self.window = None  # the full warping window
        mean = self.train_steps / len(self.train)
        if self._cells(len(dev) * mean, None) > DTW_CELLS:
            self.window = 0.1  # a Sakoe-Chiba band of 10% of the length
            if self._cells(len(dev) * mean, 0.1) > DTW_CELLS:
                raise Unavailable(f"{len(self.train)} x {len(dev)} series of ~{mean:.0f} steps: DTW beyond its "
                                  f"budget of {DTW_CELLS:.0e} cells")
        self.name = "1-NN DTW (" + ("full window" if self.window is None else "10% window") + "; aeon)"
        return self

    def _cells(self, eval_steps: float, window) -> float:
        return self.train_steps * eval_steps * (1.0 if window is None else 2 * window)

    def predict(self, records: list) -> list:
        if not records:
            return []
        xs = _arrays(records)
        out = []
        rows = max(1, int(DTW_CELLS / max(self._cells(np.mean([x.shape[1] for x in xs]), self.window), 1)))
        for start in range(0, len(xs), rows):  # (blocks: the distance matrix of a large split in parts)
            block = xs[start:start + rows]
            with warnings.catch_warnings():  # (numba's notes on aeon's own casts)
                warnings.simplefilter("ignore")
                distances = self.distance(block, self.train, window=self.window)
            out += _nearest(distances, self.labels)
        return out


class NearestEuclidean(Baseline):
    name = "1-NN Euclidean"

    def fit(self, train: list, dev: list) -> "NearestEuclidean":
        xs = _arrays(train)
        self.steps = int(np.median([x.shape[1] for x in xs]))
        self.train = self._flat(xs)
        self.labels = np.array([str(y) for _, y in train])
        equal = len({x.shape[1] for x in xs}) == 1
        self.name = "1-NN Euclidean" + ("" if equal else f" (series resampled to {self.steps} steps)")
        return self

    def _flat(self, xs: List[np.ndarray]) -> np.ndarray:
        """Series resampled (linearly) to the training median length, flattened: ``(N, C*T)``."""
        grid = np.linspace(0.0, 1.0, self.steps)
        out = []
        for x in xs:
            if x.shape[1] == self.steps:
                out.append(x.ravel())
                continue
            src = np.linspace(0.0, 1.0, x.shape[1]) if x.shape[1] > 1 else np.zeros(1)
            out.append(np.stack([np.interp(grid, src, c) for c in x]).ravel())
        return np.stack(out)

    def predict(self, records: list) -> list:
        if not records:
            return []
        q = self._flat(_arrays(records))
        d = (q ** 2).sum(1)[:, None] - 2 * q @ self.train.T + (self.train ** 2).sum(1)[None]
        return _nearest(d, self.labels)
