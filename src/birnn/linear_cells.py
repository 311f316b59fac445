"""``birnn.MinGRU``, ``birnn.MinLSTM`` and their step cells: the linear cells (Feng et al. 2024,
"Were RNNs All We Needed?"), whose gates read only the input.

With no ``W_hh``, a step is ``h_t = a_t * h_{t-1} + b_t`` with ``(a_t, b_t)`` from ``x_t``
alone (:data:`birnn.cells.CELLS`' ``coefficients``), so a layer runs a whole sequence as one
scan (``path="scan"``, :mod:`birnn.backends.scan`) with birnn's whole call: lengths, masks,
left padding, ``cu_seqlens``, nested tensors, resets, both directions, merge modes,
``RecurrentOutput``, ``step()``. Shapes as :mod:`birnn.layers` (``P = H``, no ``c_n``).

The step cells (:class:`MinGRUCell`, :class:`MinLSTMCell`) follow the step-cell protocol of
:class:`birnn.Recurrent` (Keras' ``RNN(cell)``), so ``Recurrent(MinGRUCell(8, 16))`` and
``Bidirectional(Recurrent(...))`` run them step by step with lengths.

>>> import torch, birnn
>>> layer = birnn.MinGRU(5, 3, bidirectional=True)
>>> res = layer(torch.randn(7, 2, 5), lengths=torch.tensor([7, 4]))
>>> res.output.shape, res.h_n.shape, res.path                 # (T, B, D*H), (L*D, B, H)
(torch.Size([7, 2, 6]), torch.Size([2, 2, 3]), 'scan')
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cells import cell_spec
from .layers import RecurrentLayer, refuse_projection

__all__ = ["MinGRU", "MinGRUCell", "MinLSTM", "MinLSTMCell"]


class MinGRU(RecurrentLayer, modes=("MINGRU",)):
    """minGRU (Feng et al. 2024): ``z_t = σ(x_t W_z^T + b_z)``, ``h~_t = g(x_t W_h^T + b_h)``,
    ``h_t = (1 - z_t) h_{t-1} + z_t h~_t`` with the paper's positive ``g`` (its log-space form).

    The gates read only the input, so the recurrence is linear and a whole sequence runs as one
    parallel scan (``path="scan"``, :mod:`birnn.backends.scan`), lengths, padding, resets and
    both directions included. Parameters per layer and direction: ``weight_ih_l{k}{sfx}``
    (2H, F) with gate blocks ``[z|h]`` and ``bias_ih_l{k}{sfx}`` (2H,); no ``W_hh``. Arguments
    as :class:`GRU`; the extras that act on ``W_hh`` (``recurrent_dropout``,
    ``weight_dropout``, ``layer_norm``) are refused.

    Equivalent to (one direction, one sequence, ``h`` = h_0)::

        for x_t in x:
            k_z, k_h = (x_t @ weight_ih.T + bias_ih).chunk(2)
            z = torch.sigmoid(k_z)
            h = (1 - z) * h + z * torch.where(k_h >= 0, k_h + 0.5, torch.sigmoid(k_h))
            outputs.append(h)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, **extras) -> None:
        refuse_projection(extras)
        super().__init__("MINGRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype, **extras)


class MinLSTM(RecurrentLayer, modes=("MINLSTM",)):
    """minLSTM (Feng et al. 2024): ``f_t, i_t = σ(x_t W_f^T + b_f), σ(x_t W_i^T + b_i)``,
    normalised ``f'_t = f_t / (f_t + i_t)``, ``i'_t = 1 - f'_t``, ``h~_t = g(x_t W_h^T + b_h)``,
    ``h_t = f'_t h_{t-1} + i'_t h~_t``; no cell state (h_n only), no ``W_hh``.

    Gate blocks ``[f|i|h]`` in ``weight_ih_l{k}{sfx}`` (3H, F) and ``bias_ih_l{k}{sfx}``
    (3H,); ``forget_bias`` sets ``b_f``. Runs as :class:`MinGRU` does (one parallel scan).

    Equivalent to (one direction, one sequence, ``h`` = h_0)::

        for x_t in x:
            k_f, k_i, k_h = (x_t @ weight_ih.T + bias_ih).chunk(3)
            f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
            h = f / (f + i) * h + i / (f + i) * torch.where(k_h >= 0, k_h + 0.5, torch.sigmoid(k_h))
            outputs.append(h)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, **extras) -> None:
        refuse_projection(extras)
        super().__init__("MINLSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype, **extras)



class _LinearCell(nn.Module):
    """One step of a linear cell for :class:`birnn.Recurrent`: ``forward(x_t (B, I), h (B, H))
    -> (h', h')``. Parameters ``weight_ih`` (G*H, I) and ``bias_ih`` (G*H,), the layer's gate
    blocks, drawn as torch.nn's cells draw theirs (uniform in +-1/sqrt(H))."""

    MODE = ""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        spec = cell_spec(self.MODE)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(spec.gates * hidden_size, input_size, device=device, dtype=dtype))
        self.bias_ih = (nn.Parameter(torch.empty(spec.gates * hidden_size, device=device, dtype=dtype)) if bias
                        else None)
        stdv = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)

    def initial_state(self, batch_size: int, *, device, dtype) -> Tensor:
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x_t: Tensor, h: Tensor):
        a, b = cell_spec(self.MODE).coefficients(F.linear(x_t, self.weight_ih, self.bias_ih))
        h = torch.addcmul(b, a, h)
        return h, h

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias_ih is not None else ", bias=False")


class MinGRUCell(_LinearCell):
    """One minGRU step (gate blocks ``[z|h]``), for ``birnn.Recurrent(MinGRUCell(I, H))``."""

    MODE = "MINGRU"


class MinLSTMCell(_LinearCell):
    """One minLSTM step (gate blocks ``[f|i|h]``), for ``birnn.Recurrent(MinLSTMCell(I, H))``."""

    MODE = "MINLSTM"
