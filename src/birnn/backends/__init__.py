"""birnn's backends: every implementation of the layers behind one interface.

Each backend (one module here) has ``paths``, ``capabilities`` (what it declares it runs:
cells, features, dtypes, devices, capture modes; :class:`~birnn.backends.base.Capabilities`),
``supports(plan) -> reason or None`` and ``run(plan, path) -> Ran``, and reads one frozen
:class:`~birnn.backends.plan.LayerPlan` built once per call; multi-layer stacks run in one
loop, :func:`~birnn.backends.multilayer.stack`. What a plan uses that a backend does not declare,
that backend refuses.

=============  ======================  =====================================================
backend        paths                   runs
=============  ======================  =====================================================
Reference      reference               the pure-PyTorch scan, every feature (always)
Native         torch, torch-chunked,   PyTorch's fused op: whole batch, length-sorted
               torch-packed            chunks, or packed sequences
Packed         packed                  the regularised LSTM on CPU: packed by length, a
                                       hand-written backward, oneDNN products, a C++ step
Scan           scan                    linear cells (minGRU, minLSTM): one parallel scan
                                       over T, lengths and resets folded in
Fused          fused                   birnn's persistent Triton kernel
Graph          graph-op                one ``birnn::recurrent_layer`` node per layer while a
                                       graph is captured (compile, export, ONNX)
Quantized      quantized               torch.nn's dynamic quantized module (eval)
=============  ======================  =====================================================

:func:`decide` asks every backend whether it can run the call and lets
:func:`birnn.dispatch.choose` rank those that can (the policy and the measurements live there);
:func:`run` runs the decision.

>>> import torch, birnn
>>> lstm = birnn.LSTM(3, 4, layer_norm=True)
>>> call = birnn.arguments.prepare_call(torch.randn(5, 2, 3), None, None, None, lstm._shape())
>>> p = plan_call(lstm, call)
>>> BACKENDS["torch"].supports(p)
'layer_norm: not expressible in the fused op'
>>> BACKENDS["packed"].supports(p) is None, decide(p).path
(True, 'packed')
>>> BACKENDS["packed"].supports(plan_call(birnn.GRU(3, 4, layer_norm=True), call))
'the packed LSTM layer does not run the GRU cell (it runs LSTM)'
"""

from __future__ import annotations

import warnings
from typing import Dict

import torch

from ..dispatch import Decision, choose, measured_evidence
from .base import Backend
from .fused import Fused
from .graph import Graph
from .native import Native
from .onnx import writing_onnx
from .packed import Packed
from .packed.layer import runs as packed_runs
from .plan import LayerPlan, plan_call
from .quantized import Quantized
from .reference import Reference
from .scan import Scan
from .multilayer import Ran, stack

__all__ = ["BACKENDS", "Backend", "Decision", "LayerPlan", "Ran", "decide", "plan_call", "run", "stack"]

_ALL = (Reference(), Native(), Packed(), Scan(), Fused(), Graph(), Quantized())
BACKENDS: Dict[str, Backend] = {path: backend for backend in _ALL for path in backend.paths}


def decide(plan: LayerPlan) -> Decision:
    """Which backend and path run ``plan``, and why. Raises where the path the layer asks for
    cannot run the call (ValueError naming what is in the way)."""
    quantized, graph = BACKENDS["quantized"], BACKENDS["graph-op"]
    if plan.quantized is not None:
        why = quantized.supports(plan)
        if why is not None:
            raise (RuntimeError if plan.training else ValueError)(f"a quantized birnn.{plan.mode} {why}")
        return Decision("quantized", f"dynamic quantized ({plan.quantized._get_name()}, torch.nn's module built by "
                                     "birnn.quantized)")
    capture = plan.capture
    if capture is not None and plan.requested not in ("reference", "fused", "packed", "scan") \
            and BACKENDS["scan"].supports(plan) is not None:  # (the scan is plain ops: it is captured as it is)
        blocker = graph.supports(plan)
        if blocker is None:
            where = "torch.export" if capture == "export" else "torch.compile"
            if plan.features:
                engine = "the packed LSTM layer" if packed_runs(plan.mode, plan.x.device) else "the reference scan"
                return Decision("graph-op", f"{where}: one birnn::regularised_layer node per layer ({engine} with "
                                            f"{', '.join(plan.features)}), for any T, B and lengths")
            return Decision("graph-op", f"{where}: one birnn::recurrent_layer node per layer (PyTorch's fused op; "
                                        "ONNX's LSTM/GRU/RNN operator), for any T, B and lengths")
        if capture == "export" and writing_onnx():
            raise ValueError(f"torch.onnx.export cannot write this birnn.{plan.mode} layer as ONNX's recurrent "
                             f"operator: {blocker}. Export the model without it (birnn.LSTM/GRU/RNN without "
                             "zoneout, layer_norm, highway, proj_size or resets) for a graph that takes any T")
        if capture == "export":
            warnings.warn(f"torch.export records this {plan.mode} call step by step, so the exported program "
                          f"only takes inputs of T={plan.T} steps: {blocker}. Export without it for a program "
                          "that takes any T", stacklevel=4)
    # every backend that could serve the request is asked (the graph and quantized ones above)
    asked = ("fused", "packed", "scan", "torch") if plan.requested == "auto" else (plan.requested, "torch")
    refused = {path: BACKENDS[path].supports(plan) for path in asked if path in BACKENDS}
    # the speed table is consulted only where "auto" could take the kernel (not on every CPU call),
    # once: the same row gives the choice and, when it takes the kernel, the reason
    fused_faster, measured = False, ""
    if plan.requested == "auto" and refused["fused"] is None:
        fused_faster, measured = measured_evidence(plan.mode, plan.x.dtype, plan.hidden_size, plan.B, plan.needs_grad)
    decision = choose(plan.requested, device=plan.x.device, mode=plan.mode, needs_grad=plan.needs_grad,
                      variable_lengths=plan.lengths is not None, features=plan.features + plan.call_extras,
                      refused=refused, fused_faster=fused_faster)
    if decision.path == "fused":  # which kernel, and its grid, are part of the decision
        note = measured + "; " if plan.requested == "auto" else ""
        decision = Decision("fused", f"{decision.reason}; {note}{Fused.describe(plan)}")
    elif decision.path == "scan":  # and which scan
        decision = Decision("scan", f"{decision.reason}: {Scan.describe(plan)}")
    elif decision.path == "packed":  # and which step the packed layer takes
        decision = Decision("packed", f"{decision.reason}: {Packed.describe(plan)}")
    elif decision.path == "reference" and plan.spec.linear and refused.get("scan"):  # why not its scan
        decision = Decision("reference", refused["scan"])
    if plan.B == 0:  # the reference path all the same: outputs stay connected to the parameters (zero gradients)
        decision = Decision("reference", "empty batch (B=0): the reference path, outputs of shape (T, 0, ·) "
                                         "connected to the parameters, as torch.nn's")
    if torch.jit.is_tracing() and (plan.lengths_given or decision.path != "torch"):
        raise RuntimeError(
            "torch.jit.trace cannot record this call: it would bake the lengths and the step loop of the "
            f"example into the graph ({decision.path} path), silently wrong for other lengths or T. Use "
            "torch.export.export or torch.onnx.export(..., dynamo=True) instead, or trace a call without "
            "lengths and birnn extras (PyTorch's fused op, one node for any T)")
    return decision


def run(plan: LayerPlan, decision: Decision) -> Ran:
    """Run ``plan`` on the backend ``decision`` names; the output dropout is applied here."""
    ran = BACKENDS[decision.path].run(plan, decision.path)
    return ran._replace(output=plan.output(ran.output))
