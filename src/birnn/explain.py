"""The shape-and-semantics explainer behind ``birnn explain``: every statement it prints is
checked by running a layer of the given sizes on random data — nothing is hard-coded.

>>> report = explain(mode="gru", layers=2, bidirectional=True, batch=4, time=7, hidden=3, input=5,
...                  lengths=[7, 5, 4, 3])
>>> all(check.holds for check in report.checks)
True
>>> print(report.text().splitlines()[0])
birnn.GRU(5, 3, num_layers=2, bidirectional=True) on lengths [7, 5, 4, 3]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch

from .cells import CELL_NAMES, cell_spec
from .layers import layer_class

__all__ = ["MODES", "Check", "Report", "draw", "explain"]

MODES = tuple(CELL_NAMES)  # the cells explain draws (the command's --mode choices): every cell of birnn.cells


@dataclass
class Check:
    statement: str
    holds: bool


@dataclass
class Report:
    title: str
    shapes: List[tuple] = field(default_factory=list)  # (name, shape, meaning)
    params: List[tuple] = field(default_factory=list)  # (name, shape, meaning)
    checks: List[Check] = field(default_factory=list)
    equivalents: List[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def text(self) -> str:
        lines = [self.title, "", "Tensors:"]
        w = max(len(n) for n, _, _ in self.shapes)
        lines += [f"  {n:<{w}}  {s:<28} {m}" for n, s, m in self.shapes]
        lines += ["", "Parameters (torch.nn names and layouts):"]
        w = max(len(n) for n, _, _ in self.params)
        lines += [f"  {n:<{w}}  {s:<14} {m}" for n, s, m in self.params]
        lines += ["", "Checked on this configuration (ran the layer, compared the tensors):"]
        lines += [f"  [{'ok' if c.holds else 'FAILS'}] {c.statement}" for c in self.checks]
        lines += ["", "Equivalents:"] + [f"  {e}" for e in self.equivalents]
        return "\n".join(lines)


def _shape(*dims) -> str:
    return "(" + ", ".join(dims) + ")"


def explain(mode: str = "lstm", layers: int = 2, bidirectional: bool = True, batch_first: bool = False,
            batch: int = 4, time: int = 7, hidden: int = 3, input: int = 5,
            lengths: Optional[Sequence[int]] = None, seed: int = 0) -> Report:
    """Build the layer, run it, and check what its outputs mean."""
    mode = mode.lower()
    if mode not in CELL_NAMES:
        raise ValueError(f"mode must be one of {sorted(CELL_NAMES)}; got {mode!r}")
    if lengths is not None:
        lengths = [int(v) for v in lengths]
        if len(lengths) != batch:
            raise ValueError(f"lengths has {len(lengths)} values but batch={batch}: give one per sequence")
        if max(lengths) > time or min(lengths) < 0:
            raise ValueError(f"lengths must be in [0, time={time}], got {lengths}")
    torch.manual_seed(seed)
    D, L, H, T, B, I = (2 if bidirectional else 1), layers, hidden, time, batch, input
    spec = cell_spec(CELL_NAMES[mode])  # (birnn.cells: the gate layouts, the parameters)
    layer = layer_class(spec.mode, I, H, num_layers=L, bidirectional=bidirectional, batch_first=batch_first,
                        dtype=torch.float64)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    lens = torch.tensor(lengths) if lengths is not None else None
    res = layer(x, lengths=lens)
    out = res.output.transpose(0, 1) if batch_first else res.output  # (T, B, D*H) for the checks
    h_n = res.h_n
    real = lens if lens is not None else torch.full((B,), T)
    name = type(layer).__name__
    args = f"{I}, {H}, num_layers={L}" + (", bidirectional=True" if bidirectional else "") + \
        (", batch_first=True" if batch_first else "")
    title = f"birnn.{name}({args})" + (f" on lengths {lengths}" if lengths is not None else "")
    rep = Report(title, config=dict(mode=mode, layers=L, D=D, T=T, B=B, H=H, I=I, batch_first=batch_first,
                                    lengths=[int(v) for v in real]))
    seq = ("B", "T") if batch_first else ("T", "B")
    rep.shapes += [
        ("input", _shape(*(f"{s}={v}" for s, v in zip(seq, (B, T) if batch_first else (T, B))), f"I={I}"),
         "padded batch" + (" (batch_first)" if batch_first else "")),
        ("h_0 / h_n", _shape(f"L*D={L * D}", f"B={B}", f"H={H}"), "row 2*l + d: layer l, direction d (0 fwd, 1 bwd)"
         if bidirectional else "row l: layer l"),
    ]
    if spec.has_cell_state:
        rep.shapes.append(("c_0 / c_n", _shape(f"L*D={L * D}", f"B={B}", f"H={H}"), "cell states, same order"))
    rep.shapes += [
        ("output", _shape(*seq, f"D*H={D * H}"), "every step of the LAST layer; [..., :H] forward"
         + (", [..., H:] backward" if bidirectional else "")),
        ("per_direction()", _shape(*seq, f"D={D}", f"H={H}"), "output split by direction"),
        ("per_layer()", _shape(f"L={L}", f"D={D}", f"B={B}", f"H={H}"), "h_n split by layer"),
        ('pool("final")', _shape(f"B={B}", f"D*H={D * H}"), "one vector per sequence for a classifier"),
    ]
    G, layout = spec.gates, spec.layout
    gates = f"{G}H" if G > 1 else "H"
    meaning = {"weight_ih": f"input -> gates {layout}".strip(), "weight_hh": "h_{t-1} -> gates", "bias_ih": "",
               "bias_hh": "b_hn sits inside r * (...)" if spec.hidden_bias_in_step else ""}
    if spec.linear:
        meaning["weight_ih"] += " (no W_hh: the gates read only the input)"
    for l in range(L):
        fan_in = f"I={I}" if l == 0 else f"D*H={D * H}"
        for sfx in ("", "_reverse")[:D]:
            for pattern in spec.weight_names(True, False):
                kind = pattern.split("_l")[0]
                dims = (f"{gates}={G * H}",) + ((fan_in,) if kind == "weight_ih" else (f"H={H}",)
                                                 if kind == "weight_hh" else ())
                rep.params.append((pattern.format(l, sfx), _shape(*dims), meaning[kind]))
    last_f = (L - 1) * D
    checks = rep.checks
    full = [b for b in range(B) if int(real[b]) > 0]  # sequences with at least one real step
    empty = [b for b in range(B) if int(real[b]) == 0]
    fwd_ok = all(torch.equal(out[int(real[b]) - 1, b, :H], h_n[last_f, b]) for b in full)
    steps = ", ".join(f"b={b}: t={int(real[b]) - 1}" for b in full)
    if full:
        checks.append(Check(f"forward h_n[{last_f}, b] == output[lengths[b]-1, b, :H] — the last REAL step "
                            f"({steps})", fwd_ok))
    if empty:
        checks.append(Check(f"an empty sequence (b={', '.join(map(str, empty))}) outputs zeros at every step and its "
                            "h_n rows are h_0 (zeros here): it has read nothing",
                            all(bool(out[:, b].eq(0).all()) and bool(h_n[:, b].eq(0).all()) for b in empty)))
    short = [b for b in full if int(real[b]) < T]
    if short:
        b = min(short, key=lambda k: int(real[k]))
        checks.append(Check(f"output[-1, {b}, :H] is padding (zeros), not the final state: using output[-1] "
                            f"would read padding for sequence {b}",
                            bool(out[-1, b].eq(0).all()) and not torch.equal(out[-1, b, :H], h_n[last_f, b])))
    if bidirectional and full:
        checks.append(Check(f"backward h_n[{last_f + 1}, b] == output[0, b, H:] — the backward direction ends at "
                            f"step 0, having started at lengths[b]-1",
                            all(torch.equal(out[0, b, H:], h_n[last_f + 1, b]) for b in full)))
        b = int(real.argmax())
        t_last = int(real[b]) - 1
        if t_last >= 1:  # with one real step, the backward half at the last step IS the final state
            checks.append(Check(f"output[{t_last}, {b}, H:] (the backward half at the last step) has read ONE token: "
                                f"it differs from the backward final state h_n[{last_f + 1}, {b}]",
                                not torch.equal(out[t_last, b, H:], h_n[last_f + 1, b])))
    padded = [(b, t) for b in range(B) for t in range(int(real[b]), T)]
    if padded:
        checks.append(Check(f"output is exactly 0 at all {len(padded)} padded steps",
                            all(bool(out[t, b].eq(0).all()) for b, t in padded)))
    if L > 1 and full:
        lower = [r for r in range(0, last_f)]
        in_output = any(torch.equal(out[t, b, k * H:(k + 1) * H], h_n[r, b]) for r in lower for b in full
                        for t in range(T) for k in range(D) if h_n[r, b].ne(0).any())  # (relu: zeros are padding's)
        checks.append(Check(f"h_n rows {lower[0]}..{lower[-1]} (layers 0..{L - 2}) appear nowhere in output: only "
                            f"h_n holds the lower layers' final states", not in_output))
    per_layer = res.per_layer()
    checks.append(Check(f"per_layer()[l, d] == h_n[{D} * l + d] for every l, d",
                        all(torch.equal(per_layer[l, d], h_n[D * l + d]) for l in range(L) for d in range(D))))
    final = res.pool("final")
    expect = torch.cat([h_n[last_f], h_n[last_f + 1]], -1) if bidirectional else h_n[last_f]
    checks.append(Check('pool("final") == ' + ("cat(h_n[-2], h_n[-1]): forward at the last real step + backward at "
                                               "step 0" if bidirectional else "h_n[-1]"),
                        torch.equal(final, expect)))
    if not spec.in_torch:  # no torch.nn twin: the sequential step loop is the reference
        layer.path = "reference"
        loop = layer(x, lengths=lens)
        checks.append(Check(f"equal to the step-by-step loop (path='reference') where {res.path!r} ran it",
                            torch.allclose(loop.output, res.output) and torch.allclose(loop.h_n, res.h_n)))
        rep.equivalents.append(f"torch.nn and Keras: none (no {name}); the step-by-step loop is birnn's "
                               f"{name}(..., path='reference')")
        return rep
    ref = getattr(torch.nn, name)(I, H, num_layers=L, bidirectional=bidirectional, batch_first=batch_first,
                                  dtype=torch.float64)
    if mode == "rnn_relu":
        ref = torch.nn.RNN(I, H, num_layers=L, nonlinearity="relu", bidirectional=bidirectional,
                           batch_first=batch_first, dtype=torch.float64)
    ref.load_state_dict(layer.state_dict())
    if lens is None:
        ref_out, _ = ref(x)
        same = torch.allclose(ref_out, res.output)
    elif full:
        keep = torch.tensor(full, dtype=torch.long)  # torch.nn cannot pack empty sequences: compare the others
        b_dim = 0 if batch_first else 1
        packed = torch.nn.utils.rnn.pack_padded_sequence(x.index_select(b_dim, keep), lens[keep],
                                                         batch_first=batch_first, enforce_sorted=False)
        ref_out, _ = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=batch_first, total_length=T)
        same = torch.allclose(ref_out, res.output.index_select(b_dim, keep))
    if lens is None or full:
        checks.append(Check(f"equal to torch.nn.{name} with the same state_dict"
                            + (" on pack_padded_sequence(enforce_sorted=False)" if lens is not None else "")
                            + (" (its non-empty sequences: torch.nn cannot pack empty ones)" if empty else ""), same))
    tnn = f"torch.nn.{name}({args})"
    rep.equivalents.append(f"torch.nn: {tnn}" + ("; lengths need pack_padded_sequence(x, lengths, "
                                                 "enforce_sorted=False) and pad_packed_sequence" if lens is not None else ""))
    keras_cell = {"lstm": "LSTM", "gru": "GRU"}.get(mode, "SimpleRNN")
    inner = f"keras.layers.{keras_cell}({H}, return_sequences=True, return_state=True)"
    rep.equivalents.append("Keras: " + (f"keras.layers.Bidirectional({inner}, merge_mode='concat')" if bidirectional
                                        else inner) + (f" x {L} stacked" if L > 1 else "")
                           + (" with a Masking layer for the padding" if lens is not None else ""))
    return rep


def draw(report: Report, path) -> None:
    """Draw the unrolled network (time x layers x directions) to a PNG: cells feeding ``output``
    and ``h_n`` are marked, padded steps greyed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Rectangle

    c = report.config
    T, L, D = c["T"], c["layers"], c["D"]
    shortest = min((n for n in c["lengths"] if n > 0), default=0)  # the shortest sequence that has a state
    fig, ax = plt.subplots(figsize=(1.1 * T + 3, 1.4 * L * D + 2))
    row_of = {(l, d): l * D + d for l in range(L) for d in range(D)}
    for (l, d), r in row_of.items():
        y = r * 1.3
        ax.text(-0.9, y + 0.3, f"layer {l}\n{'fwd' if d == 0 else 'bwd'}", ha="right", va="center", fontsize=9)
        for t in range(T):
            pad = t >= shortest
            top = l == L - 1
            end = (d == 0 and t == shortest - 1) or (d == 1 and t == 0)
            face = "#dddddd" if pad else ("#9ecae1" if top else "#ffffff")
            ax.add_patch(Rectangle((t, y), 0.7, 0.6, facecolor=face, edgecolor="#d62728" if end else "black",
                                   linewidth=2.5 if end else 1))
            if end:
                ax.text(t + 0.35, y + 0.3, f"h_n[{r}]", ha="center", va="center", fontsize=8, color="#d62728")
            if t < shortest - 1:  # the recurrence runs over real steps only
                a, b = (t + 0.7, t + 1) if d == 0 else (t + 1, t + 0.7)
                ax.add_patch(FancyArrowPatch((a, y + 0.3), (b, y + 0.3), arrowstyle="->", mutation_scale=8))
        if l > 0:  # each direction of layer l reads BOTH directions of layer l-1 at every real step
            for d_below in range(D):
                y_below = ((l - 1) * D + d_below) * 1.3
                dx = 0.12 * (d_below - d) + (0.2 if d_below != d else 0.0)
                for t in range(shortest):
                    ax.add_patch(FancyArrowPatch((t + 0.35 + dx, y_below + 0.6), (t + 0.35 + dx, y),
                                                 arrowstyle="->", mutation_scale=6, linewidth=0.8,
                                                 color="#1f77b4" if d_below == 0 else "#ff7f0e",
                                                 connectionstyle=f"arc3,rad={0.25 if d_below != d else 0.0}"))
    for t in range(T):
        ax.text(t + 0.35, -0.5, f"t={t}", ha="center", fontsize=8)
    ax.set_xlim(-2.5, T + 0.5)
    ax.set_ylim(-1, L * D * 1.3 + 0.5)
    ax.axis("off")
    ax.set_title(f"{report.title}\nblue: cells whose h is in output (last layer); red border: cells whose state is "
                 f"h_n (sequence with {shortest} real steps); grey: its padding"
                 + ("\nbetween layers: blue arrows from the forward, orange from the backward direction: each "
                    "direction of a layer reads both" if L > 1 and D == 2 else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
