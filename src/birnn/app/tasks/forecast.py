"""``forecast``: the next ``horizon`` values of a multichannel series from a window of
``window`` past values, scored against the naive forecast (repeat the last value)."""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import torch

from ...data import ForecastEncoder, SeriesSplits, make_windows
from ...data.encoding import Batch
from ...models import Forecaster
from ..baselines.forecast import NaiveForecast
from .task import Run, Task, register
from .inputs import arrays_of

__all__ = ["Forecasting"]


class Forecasting(Task):
    task = "forecast"
    kind = "forecast"
    model_class = Forecaster
    model_keys = ("layers", "dropout", "pooling", "head", "layer_options")
    encoder_defaults = {"window": 30, "horizon": 1}
    metrics = ("mae", "rmse", "rmse_step1", "loss")
    default_monitor = "mae"
    forecasts = True
    encoder_name = "ForecastEncoder"
    baselines = (NaiveForecast,)
    formats = ("series",)
    formats_said = "a .csv/.tsv series"

    def split_records(self, data, options: dict) -> dict:
        """A series becomes windows whose targets lie in each split's time range (inputs may
        reach back into the previous one)."""
        if not isinstance(data, SeriesSplits):
            raise TypeError(f"forecasting needs a SeriesSplits, got {type(data).__name__}")
        window, horizon = options.get("window", 30), options.get("horizon", 1)
        bounds = {"train": (0, data.dev_start), "dev": (data.dev_start, data.test_start),
                  "test": (data.test_start, len(data.series))}
        return {k: list(zip(*make_windows(data.series, window, horizon, start=a, stop=b)))
                for k, (a, b) in bounds.items()}

    def fit_encoder(self, data, options: dict):
        return ForecastEncoder.fit(data.series[: data.dev_start], window=options.get("window", 30),
                                   horizon=options.get("horizon", 1))

    def make_model(self, encoder, options: dict):
        return Forecaster(channels=encoder.channels, horizon=encoder.horizon, **self.model_options(options))

    def evaluation_records(self, run: Run, records: list, path) -> list:
        enc = run.encoder
        if len(records) < enc.window + enc.horizon:
            raise ValueError(f"{path}: {len(records)} values; scoring a forecast needs at least window + horizon = "
                             f"{enc.window} + {enc.horizon} = {enc.window + enc.horizon} (one window and its "
                             f"targets)")
        return self.split_records(SeriesSplits(records, 0, 0), {"window": enc.window, "horizon": enc.horizon})["test"]

    def collect(self, pred, batch, k: int):
        return pred[k].float().cpu().numpy()  # (bfloat16 under --precision bf16)

    def score(self, run: Run, examples: list, preds: list, records: list) -> Dict[str, float]:
        scaler = run.encoder.scaler
        pred = np.stack([scaler.inverse(p) for p in preds])  # (N, K, C) in original units
        gold = np.stack([y for _, y in records])
        last = np.stack([x[-1:] for x, _ in records]).repeat(gold.shape[1], 1)  # naive: repeat the last value
        err, naive = pred - gold, last - gold
        return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
                "rmse_step1": float(np.sqrt((err[:, 0] ** 2).mean())),
                "naive_mae": float(np.abs(naive).mean()), "naive_rmse": float(np.sqrt((naive ** 2).mean())),
                "naive_rmse_step1": float(np.sqrt((naive[:, 0] ** 2).mean()))}

    def decode(self, run: Run, preds: list) -> list:
        return [run.encoder.scaler.inverse(p) for p in preds]

    def encode_predictions(self, run: Run, decoded: list) -> list:
        return [run.encoder.scaler.transform(np.asarray(p, dtype=np.float32)) for p in decoded]

    def infer_format(self, path: str) -> str:
        from ...data import infer_format

        try:
            return infer_format(path, "forecast")
        except ValueError:
            return "lines"

    def read_for_prediction(self, run: Run, path: str, fmt: str) -> list:
        from ...data import read_series_csv

        series = read_series_csv(path, run.config.get("source", {}).get("columns"))
        W = run.encoder.window
        if len(series) < W:
            raise ValueError(f"{path}: {len(series)} values, the model needs a window of {W}")
        return [(series[-W:], None)]

    def records_of(self, run: Run, inputs) -> Tuple[list, bool]:
        arrays, single = arrays_of(inputs)
        W, C = run.encoder.window, run.encoder.channels
        records = []
        for i, x in enumerate(arrays):
            if x.shape[1] != C or len(x) < W:
                raise ValueError(f"inputs[{i}] must be a series (T >= {W}, C = {C}) for a window of {W} steps, "
                                 f"got shape {tuple(x.shape)}")
            records.append((x[-W:], None))
        return records, single

    def output(self, record, pred) -> dict:
        return {"forecast": [[float(v) for v in row] for row in pred]}

    def show(self, item: dict) -> str:
        return "\n".join(f"t+{k}\t" + "\t".join(f"{v:.6g}" for v in row) for k, row in enumerate(item["forecast"], 1))

    def export_inputs(self, run: Run, B, T, Dim):
        return ["x"], (torch.zeros(2, run.encoder.window, run.encoder.channels),), ({0: B},)

    def exported(self, model, x, lengths, chars):
        return model(Batch(x, torch.full((x.shape[0],), x.shape[1], dtype=torch.int64)))


register(Forecasting())
