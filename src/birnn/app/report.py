"""What a run reports: the metrics table (dev and test, the monitored metric first), the JSON
form ``--json`` prints, the per-class table with its confusion matrix, and the run's plots.

>>> print(summary({"dev_accuracy": 0.9, "test_accuracy": 0.85, "dev_loss": 0.3}, lead="loss"))
metric    dev     test
loss      0.3000  -
accuracy  0.9000  0.8500
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

__all__ = ["class_table", "fmt", "json_metrics", "plot_breakdown", "plot_run", "summary", "table"]

def table(rows: List[List[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def summary(metrics: dict, lead: Optional[str] = None) -> str:
    """The metrics table, dev and test, and where the run fitted the practitioner's baseline
    (``metrics["baseline"]``, :mod:`birnn.app.baselines`) its scores in two more columns."""
    names = sorted({k.split("_", 1)[1] for k in metrics if "_" in k and k.split("_", 1)[0] in ("dev", "test")},
                   key=lambda n: (n != lead, n))  # the monitored metric first
    base = metrics.get("baseline") or {}
    scored = "name" in base
    splits = [s for s in ("dev", "test") if any(f"{s}_{n}" in metrics for n in names)] if scored else []
    rows = [["metric", "dev", "test"] + [f"baseline {s}" for s in splits]]
    for n in names:
        rows.append([n, fmt(metrics.get(f"dev_{n}", "-")), fmt(metrics.get(f"test_{n}", "-"))]
                    + [fmt(base.get(f"{s}_{n}", "-")) for s in splits])
    out = table(rows)
    if scored:
        out += f"\nbaseline: {base['name']}, fitted on the same training split in {base['seconds']:.1f} s"
    elif "unavailable" in base:
        out += f"\nbaseline: not fitted ({base['unavailable']})"
    return out


def json_metrics(metrics: dict, lead: Optional[str] = None) -> dict:
    first = [k for k in (f"dev_{lead}", f"test_{lead}") if k in metrics]
    out = {**{k: metrics[k] for k in first}, **metrics}  # the monitored metric leads
    for split in ("dev", "test"):  # short aliases the issue names: test_f1 for macro-F1
        if f"{split}_macro_f1" in out:
            out[f"{split}_f1"] = out[f"{split}_macro_f1"]
    return out


def plot_breakdown(breakdown: dict, directory: Path, split: str) -> List[str]:
    """Classification and tagging: the confusion matrix and F1 per class (per tag), and for BIO
    tags F1 per entity type, as PNGs in ``directory``, named by ``split`` (``test``, ``dev``)."""
    from . import plots

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / f"confusion_{split}.png", directory / f"f1_per_class_{split}.png"]
    plots.confusion(breakdown["labels"], breakdown["confusion"], written[0], title=f"{split} confusion matrix")
    plots.class_f1(breakdown["per_class"], written[1], title=f"{split} F1 per class")
    if breakdown.get("entities"):
        written.append(directory / f"f1_per_entity_type_{split}.png")
        plots.class_f1(breakdown["entities"], written[-1], title=f"{split} F1 per entity type (exact spans)")
    return [str(p) for p in written]


def plot_run(run_dir: Path, history: list, run, records, train, test_start: Optional[int]) -> List[str]:
    """The run's PNGs: learning curves; for a forecaster its test forecasts; for classification
    and tagging the confusion matrix and F1 per class (per entity type for BIO tags) on the
    test split (the dev split without one)."""
    import numpy as np

    from . import plots

    written = [run_dir / "learning_curves.png"]
    plots.learning_curves(history, train.monitor, train.maximize, written[0])
    written = [str(p) for p in written]
    from .tasks import class_breakdown

    split = "test" if records.get("test") else "dev"
    breakdown = class_breakdown(run, records[split], device=train.device) if records.get(split) else None
    if breakdown is not None:  # classification and tagging
        written += plot_breakdown(breakdown, run_dir, split)
    elif run.impl.forecasts and records.get("test"):
        from .tasks import predict_records

        test = records["test"]
        pred = predict_records(run, [(x, None) for x, _ in test])
        window = len(test[0][0])
        first = max(test_start or 0, window)  # where the first test window's targets begin
        names = run.config.get("source", {}).get("columns")
        names = names.split(",") if isinstance(names, str) else names
        written.append(str(run_dir / "forecast.png"))
        plots.forecasts([x for x, _ in test], [y for _, y in test], [np.asarray(p) for p in pred],
                        [first + k for k in range(len(test))], written[-1], channel_names=names)
    return written


def class_table(breakdown: dict) -> str:
    """Per-class precision / recall / F1 / support, then the confusion matrix (gold rows), then
    for BIO tags the entities per type."""
    labels = breakdown["labels"]
    width = max(8, *(len(lab) for lab in labels))
    lines = [f"{'class':<{width}}  precision  recall  f1      support"]
    for lab in labels:
        r = breakdown["per_class"][lab]
        lines.append(f"{lab:<{width}}  {r['precision']:.4f}     {r['recall']:.4f}  {r['f1']:.4f}  {r['support']}")
    lines += ["", "confusion (rows: gold, columns: predicted)", " " * width + "  " + "  ".join(labels)]
    for lab, row in zip(labels, breakdown["confusion"]):
        lines.append(f"{lab:<{width}}  " + "  ".join(f"{n:>{len(other)}}" for n, other in zip(row, labels)))
    entities = breakdown.get("entities")
    if entities:
        w = max(12, *(len(t) for t in entities))
        lines += ["", "entities (exact spans, as seqeval scores them)",
                  f"{'type':<{w}}  precision  recall  f1      support"]
        for typ, r in entities.items():
            lines.append(f"{typ:<{w}}  {r['precision']:.4f}     {r['recall']:.4f}  {r['f1']:.4f}  {r['support']}")
    return "\n".join(lines)
