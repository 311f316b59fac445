"""ExecuTorch export of models holding birnn layers: :func:`export_pte`.

``torch.export`` records each birnn layer as one ``birnn::recurrent_layer`` node, which
ExecuTorch has no kernel for. :func:`export_pte` rewrites those nodes as a higher-order
``scan`` over time (:mod:`birnn.backends.scan_form`), which ExecuTorch runs as a loop, then
lowers the program with ``executorch.exir`` and writes the ``.pte``. The program takes any T
up to the bound of its dynamic time dimension (``Dim("T", max=...)``: ExecuTorch plans its
memory for that bound and refuses a longer input); the batch size is fixed at export
(ExecuTorch 1.5 cannot lower a scan whose carried state has a dynamic batch dimension).
Needs ``executorch`` (``pip install "birnn[executorch]"``).

>>> import torch, birnn
>>> from torch.export import Dim
>>> lstm = birnn.LSTM(4, 8, bidirectional=True)
>>> class Encoder(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.lstm = lstm
...     def forward(self, x, lengths):
...         return self.lstm(x, lengths=lengths).output
>>> program = export_pte(Encoder().eval(), (torch.randn(6, 1, 4), torch.tensor([6])),   # doctest: +SKIP
...                      "encoder.pte", dynamic_shapes=({0: Dim("T", min=2, max=256)}, None))
"""

from __future__ import annotations

import torch

from .backends import graph  # noqa: F401  (registers torch.ops.birnn.recurrent_layer)
from .backends.scan_form import to_scan_form

__all__ = ["export_pte"]


def export_pte(model: torch.nn.Module, args: tuple, f=None, *, dynamic_shapes=None):
    """``torch.export.export(model, args, dynamic_shapes=...)``, birnn's layers as scans, lowered
    to ExecuTorch; writes the ``.pte`` to ``f`` (a path) when given and returns the
    ``ExecutorchProgramManager`` (``.buffer`` is the file's bytes). Resets dynamo's caches
    (``torch._dynamo.reset()``: compiled functions compile again on their next call)."""
    try:
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as e:
        raise ImportError(f"ExecuTorch export needs executorch: pip install \"birnn[executorch]\" ({e})") from None
    program = torch.export.export(model, args, dynamic_shapes=dynamic_shapes)
    for node in program.graph.nodes:
        if node.target is torch.ops.birnn.recurrent_layer.default and not isinstance(
                node.args[0].meta["val"].shape[1], int):
            raise ValueError("ExecuTorch cannot lower a birnn layer whose batch dimension is dynamic (its scan "
                             "carries the state): give dynamic_shapes a dynamic T only, and export with the "
                             "batch size the device runs")
    lowered = to_edge_transform_and_lower(to_scan_form(program)).to_executorch()
    if f is not None:
        with open(f, "wb") as out:
            out.write(lowered.buffer)
    return lowered
