"""Standardisation of numeric features, fitted on the training split only.

>>> import numpy as np
>>> s = Standardizer.fit([np.array([[0.0, 10.0], [2.0, 30.0]])])
>>> s.mean.tolist(), s.std.tolist()
([1.0, 20.0], [1.0, 10.0])
>>> s.transform(np.array([[1.0, 40.0]])).tolist(), s.inverse(np.array([[0.0, 2.0]])).tolist()
([[0.0, 2.0]], [[1.0, 40.0]])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["Standardizer"]


class Standardizer:
    """Per-channel ``(x - mean) / std`` over all real time steps of the training series."""

    def __init__(self, mean, std) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, series: Sequence[np.ndarray]) -> "Standardizer":
        stacked = np.concatenate([np.asarray(s, dtype=np.float64).reshape(len(s), -1) for s in series], 0)
        mean = np.nanmean(stacked, 0)
        std = np.nanstd(stacked, 0)
        return cls(mean, np.where(std > 1e-8, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Standardizer":
        return cls(d["mean"], d["std"])
