"""Dynamic int8 (or float16) quantization of birnn's LSTM and GRU layers, as torch.nn's.

``torch.ao.quantization.quantize_dynamic`` matches modules by their exact class: with
``{nn.LSTM, nn.GRU}`` in its spec it leaves birnn's layers in float. birnn registers its layers
in torch's default mapping (:func:`register_with_torch`, on import), so torch's own call with
``{birnn.LSTM, birnn.GRU}`` in the spec quantizes them. :func:`quantize_dynamic`
here is the same call with birnn's layers added to the specification and to the mapping: each
birnn LSTM/GRU keeps its call (lengths, masks, merge modes, ``RecurrentOutput``) and runs on
torch.nn's dynamic quantized module (int8 weights, activations quantized per call), so it
loses exactly what torch.nn's quantized layer loses on the same weights. Elman RNNs stay in
float, as torch.nn's (PyTorch has no quantized RNN module); so do layers with extras that the
quantized module cannot run (zoneout, layer norm, highway, residual connections): those are
named in a warning. (PyTorch marks ``torch.ao.quantization`` deprecated in favour of torchao;
torch 2.13 still runs it, and so does this module.)

>>> import torch, birnn
>>> model = torch.nn.Sequential(birnn.LSTM(4, 8, bidirectional=True))
>>> q = quantize_dynamic(model)
>>> q[0].last_decision is None and q[0].quantized is not None
True
>>> q[0](torch.randn(5, 2, 4), lengths=torch.tensor([5, 3])).output.shape
torch.Size([5, 2, 16])
"""

from __future__ import annotations

import copy
import warnings
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .base import Capabilities
from .native import packed_call
from .plan import LayerPlan
from .multilayer import Ran

__all__ = ["Quantized", "quantize_dynamic", "quantize_layer", "quantized_blocker", "register_with_torch",
           "run_quantized"]

QUANTIZABLE = ("LSTM", "GRU")


def quantized_blocker(layer) -> Optional[str]:
    """Why ``layer`` cannot run on torch.nn's dynamic quantized module, or None."""
    if layer.mode not in QUANTIZABLE:
        return f"PyTorch has no dynamic quantized {layer.mode} module (torch.nn's stays in float too)"
    extras = [name for name, on in (("zoneout", layer.zoneout > 0 or layer.cell_zoneout > 0),
                                    ("layer_norm", layer.layer_norm), ("residual", bool(layer.residual)),
                                    ("proj_size", layer.proj_size > 0)) if on]
    return f"the quantized module does not run {', '.join(extras)}" if extras else None


def quantize_layer(layer, dtype: torch.dtype = torch.qint8):
    """A copy of the birnn ``layer`` (in eval mode) that runs on torch.nn's dynamic quantized
    module, built from the same weights: int8 (``torch.qint8``) or ``torch.float16``."""
    from torch.ao.nn.quantized import dynamic as nnqd
    from torch.ao.quantization import default_dynamic_qconfig, float16_dynamic_qconfig

    if dtype not in (torch.qint8, torch.float16):
        raise ValueError(f"dtype must be torch.qint8 or torch.float16 (dynamic quantization), got {dtype}")
    blocker = quantized_blocker(layer)
    if blocker is not None:
        raise ValueError(f"cannot quantize this birnn.{type(layer).__name__}: {blocker}")
    plain = getattr(nn, layer.mode)(layer.input_size, layer.hidden_size, layer.num_layers, bias=layer.bias,
                                    dropout=0.0, bidirectional=layer.bidirectional)
    names = set(plain.state_dict())
    plain.load_state_dict({k: v.detach().float() for k, v in layer.state_dict().items() if k in names})
    plain.qconfig = default_dynamic_qconfig if dtype == torch.qint8 else float16_dynamic_qconfig
    out = copy.deepcopy(layer).eval()
    out.quantized = getattr(nnqd, layer.mode).from_float(plain)
    return out


def run_quantized(module: nn.Module, mode: str, x: Tensor, lengths: Optional[Tensor], h0: Tensor,
                  c0: Optional[Tensor]):
    """torch.nn's dynamic quantized LSTM/GRU on birnn's time-major batch: ``x`` (T, B, I), packed
    where ``lengths`` are given. Returns ``(output (T, B, D*H), h_n, c_n or None)``."""
    def call(inp, h, c):
        out, hx = module(inp, (h, c) if mode == "LSTM" else h)
        return (out, *hx) if mode == "LSTM" else (out, hx, None)

    if lengths is None:
        return call(x, h0, c0)

    def packed(data, batch_sizes, h, c):
        out, h, c = call(PackedSequence(data, batch_sizes), h, c)
        return out.data, h, c

    return packed_call(packed, x, lengths, h0, c0, h0.shape[-1] * (2 if module.bidirectional else 1))


def quantize_dynamic(model: nn.Module, dtype: torch.dtype = torch.qint8, inplace: bool = False) -> nn.Module:
    """``torch.ao.quantization.quantize_dynamic`` over torch's default module set (Linear, LSTM,
    GRU, ...) plus birnn's LSTM and GRU layers; birnn layers it cannot quantize stay in float
    with a warning naming why."""
    from torch.ao.quantization import quantize_dynamic as torch_quantize
    from torch.ao.quantization.quantization_mappings import get_default_dynamic_quant_module_mappings

    mapping = dict(get_default_dynamic_quant_module_mappings())
    for name, module in model.named_modules():
        if not _is_birnn_layer(module):
            continue
        if quantized_blocker(module) is not None:
            warnings.warn(f"{name or 'the model'} (birnn.{type(module).__name__}) stays in float: "
                          f"{quantized_blocker(module)}", stacklevel=2)
        mapping[type(module)] = _Mapped(dtype)
    with warnings.catch_warnings():  # torch marks torch.ao.quantization deprecated (for torchao); it still runs
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch_quantize(model, set(mapping), dtype=dtype, mapping=mapping, inplace=inplace)


def _is_birnn_layer(module: nn.Module) -> bool:
    return isinstance(module, nn.RNNBase) and hasattr(module, "quantized")  # birnn.layers.RecurrentLayer


class _Mapped:
    """torch's convert calls ``mapping[type].from_float(module)``: this one carries the dtype
    and leaves a layer it cannot quantize as it is."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def from_float(self, module):
        return module if quantized_blocker(module) is not None else quantize_layer(module, self.dtype)


class _TorchFromFloat:
    """What torch's own ``convert`` calls for a birnn layer named in a ``quantize_dynamic`` spec:
    ``from_float(layer)``, with the dtype read from the qconfig torch put on the layer. A layer
    the quantized module cannot run stays in float with a warning naming why (never silently)."""

    @staticmethod
    def from_float(module, use_precomputed_fake_quant: bool = False):
        qconfig = getattr(module, "qconfig", None)
        dtype = qconfig.weight().dtype if qconfig is not None else torch.qint8
        blocker = quantized_blocker(module)
        if blocker is not None:
            warnings.warn(f"birnn.{type(module).__name__} stays in float: {blocker}", stacklevel=3)
            return module
        if dtype not in (torch.qint8, torch.float16):
            raise ValueError(f"birnn.{type(module).__name__} quantizes dynamically to torch.qint8 or torch.float16, "
                             f"not {dtype}; use birnn.quantized.quantize_dynamic(model, dtype=torch.qint8)")
        return quantize_layer(module, dtype)


def register_with_torch(*classes) -> None:
    """Add birnn's layer ``classes`` to torch's default dynamic quantization mapping, so that
    ``torch.ao.quantization.quantize_dynamic(model, {birnn.LSTM, birnn.GRU})`` quantizes them
    (torch matches modules by their exact class: without this it returned them in float, silently).
    ``birnn`` calls it on import."""
    from torch.ao.quantization.quantization_mappings import DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS

    for cls in classes:
        DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS.setdefault(cls, _TorchFromFloat)


class Quantized:
    paths = ("quantized",)
    capabilities = Capabilities("the quantized module", cells=frozenset(QUANTIZABLE),
                                says=lambda names: f"does not run {', '.join(names)}")

    def supports(self, plan: LayerPlan) -> Optional[str]:
        if plan.quantized is None:
            return "is not quantized (birnn.quantized.quantize_dynamic)"
        refused = self.capabilities.refuses(plan)
        if refused is not None:
            return refused
        if plan.training:  # (its dropout between layers and its noise would be skipped, its int8 weights not train)
            return "runs in eval mode only: call .eval() (train the float layer, then quantize it)"
        if plan.want_layers:  # torch.nn's quantized module runs every layer in one call
            return "returns no per-layer outputs (return_all='layers'): use the float layer for them"
        return None

    def run(self, plan: LayerPlan, path: str = "quantized") -> Ran:
        return Ran(*run_quantized(plan.quantized, plan.mode, plan.x, plan.lengths, plan.h0, plan.c0))
