"""Raw Python inputs of :meth:`birnn.TrainedModel.predict` (strings, token lists, arrays), as
the tasks check and read them."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

__all__ = ["arrays_of", "sequence_of"]


def sequence_of(inputs, what: str) -> list:
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    raise TypeError(f"inputs must be {what}, got {type(inputs).__name__}")


def arrays_of(inputs) -> Tuple[List[np.ndarray], bool]:
    """Series inputs as float32 (T, C) arrays: one (T,) or (T, C) array, an (N, T, C) array, or
    a list of them; and whether one series was given."""
    def one(x, where: str) -> np.ndarray:
        a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or not len(a):
            raise ValueError(f"{where} must be a series, (T,) or (T, C) with T >= 1, got shape {a.shape}")
        return a

    if isinstance(inputs, (list, tuple)):
        return [one(x, f"inputs[{i}]") for i, x in enumerate(inputs)], False
    a = np.asarray(inputs.detach().cpu() if hasattr(inputs, "detach") else inputs, dtype=np.float32)
    if a.ndim == 3:
        return [one(x, f"inputs[{i}]") for i, x in enumerate(a)], False
    return [one(a, "inputs")], True
