"""LiteRT through litert-torch (issue #35): what converts, and its numbers against eager.

litert-torch pins its own stack (jax, transformers, ai-edge-litert), so it runs in its own
environment, not the test one:

    python3 -m venv /tmp/ltv && /tmp/ltv/bin/pip install torch==2.13.0 -e . litert-torch==0.10.0
    /tmp/ltv/bin/python benchmarks/litert.py

Three routes for a batch-first 2-layer bidirectional LSTM with lengths:
1. the default layer, T dynamic and fixed: birnn's one node per layer (``birnn::recurrent_layer``);
2. the layers as a higher-order scan over T (the ExecuTorch form, ``birnn.backends.scan_form``);
3. ``path="reference"``: the step loop, recorded for the example's T (fixed T; rows shorter
   than T carry their lengths).
Each prints CONVERTED with the largest difference from eager, or the converter's error.
"""

from __future__ import annotations

import traceback
import warnings

import numpy as np
import torch
from torch.export import Dim

import birnn
from birnn.backends.scan_form import to_scan_form


class Encoder(torch.nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.lstm = birnn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True, **kw)

    def forward(self, x, lengths):
        return self.lstm(x, lengths=lengths).output


def _diff(converted, model, x, lengths) -> float:
    got = np.asarray(converted(x, lengths.to(torch.int32)))  # (LiteRT's signature takes int32 lengths)
    with torch.no_grad():
        return float(np.abs(got - model(x, lengths).numpy()).max())


def main() -> int:
    import litert_torch

    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    x, lengths = torch.randn(3, 9, 5), torch.tensor([9, 4, 1])
    other = (torch.randn(3, 9, 5), torch.tensor([9, 2, 6]))
    dynamic = ({1: Dim("T", min=2, max=64)}, None)
    model = Encoder().eval()
    stepwise = Encoder(path="reference").eval()
    stepwise.load_state_dict(model.state_dict())
    routes = {
        "default layer, dynamic T": lambda: litert_torch.convert(model, (x, lengths), dynamic_shapes=dynamic),
        "default layer, T = 9": lambda: litert_torch.convert(model, (x, lengths)),
        "scan form, dynamic T": lambda: litert_torch.convert(
            to_scan_form(torch.export.export(model, (x, lengths), dynamic_shapes=dynamic)).module(), (x, lengths)),
        'path="reference", T = 9': lambda: litert_torch.convert(stepwise, (x, lengths)),
    }
    for name, route in routes.items():
        try:
            converted = route()
            print(f"{name}: CONVERTED; max |LiteRT - eager| {_diff(converted, model, *other):.1e} "
                  f"(lengths {other[1].tolist()})")
        except Exception:  # noqa: BLE001  (the converter's own error is the finding)
            last = [line for line in traceback.format_exc().splitlines() if "Error" in line][-1]
            print(f"{name}: FAILED: {last[:300]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
