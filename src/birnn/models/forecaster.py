"""``Forecaster``: a window of a (multichannel) series -> birnn stack -> the next ``horizon``
values of every channel at once (direct multi-output).

Symbols: ``B`` batch, ``W`` window, ``C`` channels, ``K`` horizon.

>>> from birnn.data import Batch
>>> model = Forecaster(channels=1, horizon=20, layers=["bilstm:16"])
>>> batch = Batch(torch.randn(4, 60, 1), torch.full((4,), 60), torch.randn(4, 20, 1))
>>> model(batch).shape                     # (B, K, C)
torch.Size([4, 20, 1])
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .heads import mlp
from .stack import RecurrentStack

__all__ = ["Forecaster"]


class Forecaster(nn.Module):
    """Args:
        channels: C, the series' channels (inputs and outputs).
        horizon: K, how many future steps to predict.
        layers: stack specs, e.g. ``["bilstm:64"]`` or ``["bigru:32:sum", "lstm:32"]``.
        pooling: how the window is summarised ("final", "last", "mean", "max").
        head: hidden sizes of the MLP mapping the summary to K*C values.
    """

    def __init__(self, *, channels: int, horizon: int, layers: Sequence[str] = ("bilstm:64",), pooling: str = "final",
                 head: Sequence[int] = (), dropout: float = 0.0, layer_options: Optional[dict] = None) -> None:
        super().__init__()
        self.config = dict(channels=channels, horizon=horizon, layers=list(layers), pooling=pooling, head=list(head),
                           dropout=dropout, layer_options=dict(layer_options or {}))
        self.stack = RecurrentStack(channels, list(layers), dropout=dropout, **(layer_options or {}))
        self.pooling, self.channels, self.horizon = pooling, channels, horizon
        self.head = mlp(self.stack.output_size, head, horizon * channels, dropout)

    def forward(self, batch) -> Tensor:
        res = self.stack(batch.inputs, lengths=batch.lengths)
        return self.head(res.pool(self.pooling)).view(-1, self.horizon, self.channels)  # (B, K, C)

    def loss(self, batch) -> Tuple[Tensor, int]:
        """Summed squared error and the number of predicted values."""
        return F.mse_loss(self(batch), batch.targets, reduction="sum"), batch.targets.numel()

    @torch.no_grad()
    def predict(self, batch) -> Tensor:
        return self(batch)
