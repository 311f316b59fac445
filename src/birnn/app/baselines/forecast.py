"""Forecasting's baseline: the naive forecasts — the last value repeated, or the value one
season earlier (seasonal naive, the season the training series' autocorrelation peaks at
within the window) — whichever has the lower dev MAE (Hyndman & Athanasopoulos, *Forecasting:
Principles and Practice*, 5.2)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import Baseline

__all__ = ["NaiveForecast", "season_of"]


def season_of(series: np.ndarray, longest: int) -> Optional[int]:
    """The lag in ``2..longest`` where the series' mean autocorrelation over channels peaks, if
    it is a peak (above both neighbours) and above 0.3, else None.

    >>> season_of(np.sin(np.arange(200) * 2 * np.pi / 12)[:, None], 30)
    12
    """
    x = np.nan_to_num(np.asarray(series, dtype=np.float64))
    x = x - x.mean(0)
    var = (x ** 2).sum(0)
    if len(x) < 4 or not (var > 0).any():
        return None
    acf = [float(np.mean([(x[k:, c] * x[:-k, c]).sum() / var[c] for c in range(x.shape[1]) if var[c] > 0]))
           for k in range(1, min(longest, len(x) - 1) + 2)]  # acf[k - 1] is lag k
    best = None
    for k in range(2, min(longest, len(acf) - 1) + 1):
        if acf[k - 1] > acf[k - 2] and acf[k - 1] >= acf[k] and acf[k - 1] > 0.3:
            if best is None or acf[k - 1] > acf[best - 1]:
                best = k
    return best


class NaiveForecast(Baseline):
    name = "naive forecast (last value)"

    def fit(self, train: list, dev: list) -> "NaiveForecast":
        window = len(train[0][0])
        # the training series again, from its windows: the first window, then each window's last value
        series = np.concatenate([train[0][0]] + [x[-1:] for x, _ in train[1:]])
        self.season = None
        m = season_of(series, window)
        if m is not None:
            gold = np.stack([y for _, y in dev])
            last = np.abs(np.stack(self._predict(dev, None)) - gold).mean()
            seasonal = np.abs(np.stack(self._predict(dev, m)) - gold).mean()
            if seasonal < last:
                self.season = m
        self.name = ("naive forecast (last value)" if self.season is None
                     else f"seasonal naive forecast (season {self.season}, chosen on dev MAE)")
        return self

    @staticmethod
    def _predict(records: list, season: Optional[int]) -> list:
        out = []
        for x, y in records:
            horizon = len(y) if y is not None else 1
            if season is None:
                out.append(np.repeat(x[-1:], horizon, 0))
            else:  # step k ahead: the value a whole number of seasons before it, within the window
                out.append(np.stack([x[len(x) - season * (-(-k // season)) + k - 1] for k in range(1, horizon + 1)]))
        return out

    def predict(self, records: list) -> list:
        return self._predict(records, self.season)
