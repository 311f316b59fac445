"""One graph node per layer for graph capture: ``torch.ops.birnn.recurrent_layer`` (PyTorch's
fused op) and, under ``torch.compile``, ``torch.ops.birnn.regularised_layer`` (the reference
loop, for layers with recurrent dropout, zoneout or layer norm; see below).

``torch.export`` (and ``torch.onnx.export(..., dynamo=True)``, which exports through it)
records what a call does; birnn's per-step loop would be unrolled into T copies, freezing the
time axis to the example's length. Under export, a layer whose configuration PyTorch's fused
op runs (no birnn extras) is recorded instead as one opaque node per layer: the exported
program then takes any T, any B and any lengths. In the exported program the node runs
PyTorch's fused op (packed where lengths are given), so it equals eager birnn; in ONNX it
becomes the standard ``LSTM`` / ``GRU`` / ``RNN`` operator with ``sequence_lens``
(:mod:`birnn.onnx_export`).

Symbols: ``T`` time, ``B`` batch, ``I`` input size, ``D`` directions, ``H`` hidden size,
``G`` gates (4 LSTM, 3 GRU, 1 RNN).

Arguments of the op (per layer, directions stacked):

- ``x`` (T, B, I) time-major input, zero at padded steps;
- ``lengths`` (B,) int64 or None (every sequence has T steps);
- ``h0`` (D, B, H), ``c0`` (D, B, H) (LSTM; None otherwise);
- ``w_ih`` (D, G*H, I), ``w_hh`` (D, G*H, H), ``b_ih`` / ``b_hh`` (D, G*H) or None, in
  torch.nn's gate order;
- ``mode``: "LSTM", "GRU", "RNN_TANH" or "RNN_RELU".

- ``keep_graph``: a training step: the node keeps its forward's autograd graph (PyTorch's op
  with autograd on, inside the node) for the backward node, keyed by the 4th output.

Returns ``(output (T, B, D*H), h_n (D, B, H), c_n (D, B, H), key)`` (``c_n`` zeros for
GRU/RNN; ``key`` empty without ``keep_graph``). The backward node reads the kept graph, or
recomputes the forward where none was kept.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..batch import traced
from ..cells import cell_spec
from ..dispatch import CPU_LENGTHS
from .base import Capabilities
from .native import Native, run_chunked, run_packed, run_whole
from .onnx import onnx_layer, writing_onnx
from .packed.layer import packed_lstm_layer
from .packed.layer import runs as packed_runs
from .plan import LayerPlan
from .reference import reference_layer, walk
from .multilayer import Ran, stack
from .weights import Norms, Zoneout, step_weights

__all__ = ["Graph", "graph_layer", "recurrent_layer", "reference_graph_layer", "regularised_layer"]


def _run(x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor], w_ih: Tensor, w_hh: Tensor,
         b_ih: Optional[Tensor], b_hh: Optional[Tensor], mode: str, needs_grad: bool = False
         ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """The layer on PyTorch's fused op, with lengths the way eager birnn runs them on this
    device (on CPU: chunked or packed, by :data:`birnn.dispatch.CPU_LENGTHS`)."""
    D = w_ih.shape[0]
    per_direction = [[w_ih[d], w_hh[d]] + ([b_ih[d], b_hh[d]] if b_ih is not None else []) for d in range(D)]
    common = dict(bias=b_ih is not None, dropout=0.0, training=False)
    if lengths is not None and x.device.type == "cpu" and CPU_LENGTHS[(mode, needs_grad)] == "torch-chunked":
        return run_chunked(mode, cell_spec(mode).gates, x, lengths, h0, c0, [per_direction], **common)
    flat = [w for ws in per_direction for w in ws]
    if lengths is None:
        return run_whole(mode, x, h0, c0, flat, num_layers=1, bidirectional=D == 2, **common)
    return run_packed(mode, x, lengths, h0, c0, flat, num_layers=1, bidirectional=D == 2, **common)


# Forward graphs kept for the backward: key -> (leaves, outputs). An entry lives as long as the
# key tensor the node returned (which autograd saves for the backward), and no longer.
_KEPT: Dict[int, tuple] = {}
_NEXT_KEY = itertools.count()


@contextlib.contextmanager
def _autograd_inside_op():
    """An op's kernel runs below autograd (the dispatcher excludes its keys); a forward that
    keeps its graph, and the recompute in the backward, need it back for the duration."""
    key = torch._C.DispatchKey.AutogradFunctionality
    was = torch._C._dispatch_tls_is_dispatch_key_excluded(key)
    torch._C._dispatch_tls_set_dispatch_key_excluded(key, False)
    try:
        yield
    finally:
        torch._C._dispatch_tls_set_dispatch_key_excluded(key, was)


def _forward_with_graph(run, given: List[Optional[Tensor]]):
    """``run(*leaves) -> (out, h, c)`` with autograd on, on detached leaves made of ``given``
    (floating-point tensors that may need a gradient; None stays None): (leaves, (out, h, c))."""
    with _autograd_inside_op(), torch.enable_grad():
        leaves = [None if t is None else t.detach().requires_grad_() for t in given]
        return leaves, run(*leaves)


def _keep(leaves, outputs) -> Tensor:
    """Keep a forward's graph for the backward node; the key (a tensor) it is kept under lives
    as long as autograd holds it, and the graph no longer."""
    k = next(_NEXT_KEY)
    key = torch.tensor([k], dtype=torch.int64)
    _KEPT[k] = (leaves, outputs)
    weakref.finalize(key, _KEPT.pop, k, None)
    return key


def _fresh(out: Tensor, h: Tensor, c: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """An op's outputs: fresh tensors, never an alias of an input or of a kept graph's outputs."""
    return out.detach().clone(), h.detach().clone(), (c.detach().clone() if c is not None else torch.zeros_like(h))


def _gradients(key: Tensor, run, given: List[Optional[Tensor]], grad_out: Tensor, grad_h: Tensor,
               grad_c: Tensor, like: Tensor) -> List[Tensor]:
    """Gradients of ``given`` (an empty tensor for an absent one, zeros where none flows) through
    the graph kept under ``key``, or (none kept: an inference-mode forward, a second backward)
    through a recompute of ``run``."""
    kept = _KEPT.pop(int(key[0]), None) if key.numel() else None
    leaves, (out, h, c) = kept if kept is not None else _forward_with_graph(run, given)
    with _autograd_inside_op(), torch.enable_grad():
        outs, grads_in = [out, h], [grad_out, grad_h]
        if c is not None:
            outs.append(c)
            grads_in.append(grad_c)
        wrt = [t for t in leaves if t is not None]
        grads = iter(torch.autograd.grad(outs, wrt, grads_in, allow_unused=True))
    result = []
    for t in leaves:
        g = None if t is None else next(grads)
        result.append(like.new_empty(0) if t is None else (torch.zeros_like(t) if g is None else g))
    return result


@torch.library.custom_op("birnn::recurrent_layer", mutates_args=())
def recurrent_layer(x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor], w_ih: Tensor,
                    w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor], mode: str, keep_graph: bool = False
                    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """``keep_graph`` (a training step): the forward keeps its autograd graph for the
    backward, which then needs no second forward; the 4th output is the graph's key (an
    empty tensor otherwise)."""
    if not keep_graph:
        return (*_fresh(*_run(x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, mode)), torch.empty(0, dtype=torch.int64))
    leaves, outputs = _forward_with_graph(_native(lengths, mode), [x, h0, c0, w_ih, w_hh, b_ih, b_hh])
    return (*_fresh(*outputs), _keep(leaves, outputs))


def _native(lengths: Optional[Tensor], mode: str):
    """:func:`_run` on leaves ``(x, h0, c0, w_ih, w_hh, b_ih, b_hh)``, as a training step runs it."""
    def run(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return _run(x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, mode, needs_grad=True)
    return run


@recurrent_layer.register_fake
def _(x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, mode, keep_graph=False):
    D, H = w_hh.shape[0], w_hh.shape[2]
    key = torch.empty(1 if keep_graph else 0, dtype=torch.int64)
    return x.new_empty(x.shape[0], x.shape[1], D * H), h0.new_empty(h0.shape), h0.new_empty(h0.shape), key


@torch.library.custom_op("birnn::recurrent_layer_backward", mutates_args=())
def recurrent_layer_backward(grad_out: Tensor, grad_h: Tensor, grad_c: Tensor, key: Tensor, x: Tensor,
                             lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor], w_ih: Tensor, w_hh: Tensor,
                             b_ih: Optional[Tensor], b_hh: Optional[Tensor], mode: str) -> List[Tensor]:
    """Gradients of (x, h0, c0, w_ih, w_hh, b_ih, b_hh) — an empty tensor for an absent one —
    through the graph the forward kept, or (none kept: an inference-mode forward, a second
    backward) through a recompute of the forward."""
    return _gradients(key, _native(lengths, mode), [x, h0, c0, w_ih, w_hh, b_ih, b_hh], grad_out, grad_h, grad_c, x)


@recurrent_layer_backward.register_fake
def _(grad_out, grad_h, grad_c, key, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, mode):
    return [x.new_empty(0) if t is None else torch.empty_like(t) for t in (x, h0, c0, w_ih, w_hh, b_ih, b_hh)]


def _setup_context(ctx, inputs, output) -> None:
    x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, mode, _ = inputs
    ctx.mode = mode
    ctx.present = [t is not None for t in (lengths, c0, b_ih, b_hh)]
    ctx.save_for_backward(output[3], *[t for t in (x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh) if t is not None])


def _backward(ctx, grad_out, grad_h, grad_c, grad_key):
    saved = iter(ctx.saved_tensors)
    has_lengths, has_c0, has_b_ih, has_b_hh = ctx.present
    key, x = next(saved), next(saved)
    lengths = next(saved) if has_lengths else None
    h0 = next(saved)
    c0 = next(saved) if has_c0 else None
    w_ih, w_hh = next(saved), next(saved)
    b_ih = next(saved) if has_b_ih else None
    b_hh = next(saved) if has_b_hh else None
    D, H = w_hh.shape[0], w_hh.shape[2]
    grad_out = grad_out if grad_out is not None else x.new_zeros(x.shape[0], x.shape[1], D * H)
    grad_h = grad_h if grad_h is not None else torch.zeros_like(h0)
    grad_c = grad_c if grad_c is not None else torch.zeros_like(h0)
    g = torch.ops.birnn.recurrent_layer_backward(grad_out, grad_h, grad_c, key, x, lengths, h0, c0, w_ih, w_hh, b_ih,
                                                 b_hh, ctx.mode)
    gx, gh0, gc0, gw_ih, gw_hh, gb_ih, gb_hh = g
    return (gx, None, gh0, gc0 if has_c0 else None, gw_ih, gw_hh, gb_ih if has_b_ih else None,
            gb_hh if has_b_hh else None, None, None)


recurrent_layer.register_autograd(_backward, setup_context=_setup_context)


def graph_layer(mode: str, inp: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor],
                directions: Sequence[Sequence[Tensor]], *, bias: bool, keep_graph: bool = False
                ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """One layer as one node; ``directions[d]`` = torch.nn's ``[w_ih, w_hh, (b_ih, b_hh)]``;
    ``keep_graph``: a training step (the node keeps its forward's graph for the backward).
    Returns ``(output (T, B, D*H), h_n (D, B, H), c_n (D, B, H) or None)``."""
    stacked = [torch.stack([w[k] for w in directions]) for k in range(4 if bias else 2)]
    if writing_onnx():  # torch.onnx.export: ONNX's own recurrent operator in the graph
        return onnx_layer(mode, inp, lengths, h0, c0, *stacked, *((None, None) if not bias else ()))
    out, h, c, _ = torch.ops.birnn.recurrent_layer(inp, lengths, h0, c0, stacked[0], stacked[1],
                                                   *(stacked[2:] if bias else (None, None)), mode, keep_graph)
    return out, h, (c if c0 is not None else None)


# -- a regularised layer as one node: birnn::regularised_layer -------------------------------------
# Under torch.compile a layer with recurrent dropout, zoneout or layer norm (what PyTorch's fused op
# cannot run) is one node too: its kernel is the packed layer with its hand-written backward
# (birnn.backends.packed.layer) where that runs the cell on that device (an LSTM on CPU, as eager birnn's "packed"
# path), else the reference step loop (birnn.backends.reference), so the
# compiled graph holds one node per layer for any T and B, instead of T unrolled steps (compile
# time would grow with T, and every new T would compile again). Its arguments: as
# birnn::recurrent_layer's, with ``params``, the tensors gradients flow to, those of PARAMS whose
# flag in ``has`` is set (D-stacked, torch.nn's gate order), ``masks`` those of MASKS flagged in
# ``has_mask`` (sampled by the call's plan) and ``rates`` = [zoneout of h, of c] (the eval-mode expectation).
# (Lists of the present tensors and flags, not lists with None inside: the op's backward must
# return a gradient list of its input's structure, and a list holding None is not one.)

PARAMS = ("w_ih", "w_hh", "b_ih", "b_hh", "ln_ih", "ln_hh", "ln_cell_w", "ln_cell_b")
MASKS = ("drop_h", "keep_h", "keep_c")  # (D, B, H), (T, D, B, H), (T, D, B, H)


def _named(names: Sequence[str], flags: Sequence[bool], tensors: Sequence[Tensor]) -> dict:
    return dict(zip([n for n, f in zip(names, flags) if f], tensors))


def _regularised(lengths: Optional[Tensor], has: Sequence[bool], masks: Sequence[Tensor], has_mask: Sequence[bool],
                 mode: str, rates: Sequence[float]):
    """The reference layer on leaves ``(x, h0, c0, *params)``, the masks and rates fixed."""
    m = _named(MASKS, has_mask, masks)

    def run(x, h0, c0, *params):
        p = _named(PARAMS, has, params)
        spec, D = cell_spec(mode), p["w_ih"].shape[0]
        bias = "b_ih" in p
        directions = [[p["w_ih"][d], p["w_hh"][d]] + ([p["b_ih"][d], p["b_hh"][d]] if bias else []) for d in range(D)]
        zoneout = Zoneout(rates[0], rates[1], m.get("keep_h"), m.get("keep_c")) if (rates[0] or rates[1]) else None
        norms = Norms(p["ln_ih"], p["ln_hh"], p.get("ln_cell_w"), p.get("ln_cell_b")) if "ln_ih" in p else None
        w = step_weights(spec, directions, bias=bias, proj=False, drop_h=m.get("drop_h"), zoneout=zoneout, norms=norms)
        if packed_runs(mode, x.device) and x.shape[1] > 0 and not traced():  # the packed layer, as eager birnn
            z = zoneout or Zoneout(0.0, 0.0)
            return packed_lstm_layer(x, lengths, h0, c0, w.w_ih, w.b_in, w.ln_x, w.step, rates, z.keep_h, z.keep_c)
        out, h, c, _ = reference_layer(spec, w, x, lengths, h0, c0, walk(x, lengths, D))
        return out, h, c
    return run


@torch.library.custom_op("birnn::regularised_layer", mutates_args=())
def regularised_layer(x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor], params: List[Tensor],
                      has: List[bool], masks: List[Tensor], has_mask: List[bool], mode: str, rates: List[float],
                      keep_graph: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """One regularised layer, both directions (see above); outputs as birnn::recurrent_layer's."""
    run = _regularised(lengths, has, masks, has_mask, mode, rates)
    given = [x, h0, c0, *params]
    if not keep_graph:
        return (*_fresh(*run(*given)), torch.empty(0, dtype=torch.int64))
    leaves, outputs = _forward_with_graph(run, given)
    return (*_fresh(*outputs), _keep(leaves, outputs))


@regularised_layer.register_fake
def _(x, lengths, h0, c0, params, has, masks, has_mask, mode, rates, keep_graph):
    w_hh = params[1]  # (w_ih and w_hh are always there)
    D, H = w_hh.shape[0], w_hh.shape[2]
    key = torch.empty(1 if keep_graph else 0, dtype=torch.int64)
    return x.new_empty(x.shape[0], x.shape[1], D * H), h0.new_empty(h0.shape), h0.new_empty(h0.shape), key


@torch.library.custom_op("birnn::regularised_layer_backward", mutates_args=())
def regularised_layer_backward(grad_out: Tensor, grad_h: Tensor, grad_c: Tensor, key: Tensor, x: Tensor,
                               lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor], params: List[Tensor],
                               has: List[bool], masks: List[Tensor], has_mask: List[bool], mode: str,
                               rates: List[float]) -> List[Tensor]:
    """Gradients of (x, h0, c0, *params): through the kept graph, or a recompute."""
    return _gradients(key, _regularised(lengths, has, masks, has_mask, mode, rates), [x, h0, c0, *params],
                      grad_out, grad_h, grad_c, x)


@regularised_layer_backward.register_fake
def _(grad_out, grad_h, grad_c, key, x, lengths, h0, c0, params, has, masks, has_mask, mode, rates):
    return [x.new_empty(0) if t is None else torch.empty_like(t) for t in (x, h0, c0, *params)]


def _setup_regularised(ctx, inputs, output) -> None:
    x, lengths, h0, c0, params, has, masks, has_mask, mode, rates, _ = inputs
    ctx.static = (list(has), list(has_mask), mode, list(rates))
    ctx.counts = (lengths is not None, c0 is not None, len(params), len(masks))
    ctx.save_for_backward(output[3], x, h0, *[t for t in (lengths, c0) if t is not None], *params, *masks)


def _backward_regularised(ctx, grad_out, grad_h, grad_c, grad_key):
    key, x, h0, *rest = ctx.saved_tensors
    has_lengths, has_c0, n_params, _ = ctx.counts
    lengths = rest.pop(0) if has_lengths else None
    c0 = rest.pop(0) if has_c0 else None
    params, masks = rest[:n_params], rest[n_params:]
    has, has_mask, mode, rates = ctx.static
    w_hh = params[1]
    grad_out = grad_out if grad_out is not None else x.new_zeros(x.shape[0], x.shape[1], w_hh.shape[0] * w_hh.shape[2])
    grad_h = grad_h if grad_h is not None else torch.zeros_like(h0)
    grad_c = grad_c if grad_c is not None else torch.zeros_like(h0)
    gx, gh0, gc0, *gparams = torch.ops.birnn.regularised_layer_backward(
        grad_out, grad_h, grad_c, key, x, lengths, h0, c0, params, has, masks, has_mask, mode, rates)
    return gx, None, gh0, (gc0 if has_c0 else None), gparams, None, [None] * len(masks), None, None, None, None


regularised_layer.register_autograd(_backward_regularised, setup_context=_setup_regularised)


def reference_graph_layer(mode: str, inp: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor],
                          directions: Sequence[Sequence[Tensor]], *, bias: bool, norms: Optional[Norms],
                          masks: Sequence[Optional[Tensor]], rates: Sequence[float], keep_graph: bool = False
                          ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """One regularised layer as one ``birnn::regularised_layer`` node; ``directions[d]`` =
    torch.nn's ``[w_ih, w_hh, (b_ih, b_hh)]``, ``norms`` its layer norms (or None), ``masks``
    ``[drop_h, keep_h, keep_c]`` (None where unused), ``rates`` the zoneout rates.
    Returns ``(output (T, B, D*H), h_n (D, B, H), c_n (D, B, H) or None)``."""
    stacked = [torch.stack([w[k] for w in directions]) for k in range(4 if bias else 2)]
    params = stacked + [None] * (4 - len(stacked)) + (list(norms) if norms is not None else [None] * 4)  # PARAMS' order
    out, h, c, _ = torch.ops.birnn.regularised_layer(
        inp, lengths, h0, c0, [t for t in params if t is not None], [t is not None for t in params],
        [t for t in masks if t is not None], [t is not None for t in masks], mode, [float(r) for r in rates],
        keep_graph)
    return out, h, (c if c0 is not None else None)


REGULARISERS = ("recurrent_dropout", "zoneout", "layer_norm")  # what the regularised node runs


def _no_node(names) -> str:
    return f"{', '.join(names)} has no single-node form (ONNX has no operator for it)"


class Graph:
    paths = ("graph-op",)
    capabilities = Capabilities("graph capture", uses=frozenset(REGULARISERS), captures=frozenset({"compile", "export"}),
                                cells=Native.capabilities.cells, says=_no_node)  # (PyTorch's op's, and ONNX's)

    def supports(self, plan: LayerPlan) -> Optional[str]:
        refused = self.capabilities.refuses(plan)
        if refused is None and plan.capture == "export" and plan.features:  # ONNX has no regularised operator
            return _no_node(plan.features)
        return refused

    def run(self, plan: LayerPlan, path: str = "graph-op") -> Ran:
        keep = plan.needs_grad  # a training step: each node keeps its forward's graph for the backward
        if not plan.features:
            return stack(plan, lambda l, inp, h0, c0: (
                *graph_layer(plan.mode, inp, plan.lengths, h0, c0, plan.weights[l], bias=plan.bias, keep_graph=keep),
                None))

        def regularised(l, inp, h0, c0):
            m = plan.masks[l]
            return (*reference_graph_layer(plan.mode, inp, plan.lengths, h0, c0, plan.weights[l], bias=plan.bias,
                                           norms=plan.norms(l), masks=[m.drop_h, m.keep_h, m.keep_c],
                                           rates=plan.zoneout, keep_graph=keep), None)
        return stack(plan, regularised)
