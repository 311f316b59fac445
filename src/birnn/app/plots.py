"""The run's figures: learning curves, forecasts, the confusion matrix and per-class (per-tag,
per-entity-type) F1 (``birnn train --plot``, ``birnn evaluate --plot``). Each function
builds a matplotlib Figure (every axes titled, labelled with units, with a legend), writes it
to ``path`` as PNG and returns it, so tests can read what it shows.

Symbols: ``W`` window, ``K`` horizon, ``C`` channels.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

__all__ = ["class_f1", "confusion", "forecasts", "learning_curves"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install matplotlib") from None
    return plt


def learning_curves(history: Sequence[dict], monitor: str, maximize: bool, path):
    """Left: training and dev loss per epoch (log scale: the same metric, both splits). Right: the
    monitored dev metric, the selected (best) epoch marked."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(11, 4))
    loss_ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train")
    if all("dev_loss" in r for r in history):
        loss_ax.plot(epochs, [r["dev_loss"] for r in history], marker="o", label="dev")
    if all(r["train_loss"] > 0 for r in history) and all(r.get("dev_loss", 1) > 0 for r in history):
        loss_ax.set_yscale("log")
    loss_ax.set(title="loss per epoch", xlabel="epoch", ylabel="loss per example or token (log scale)")
    values = [r.get(f"dev_{monitor}") for r in history]
    metric_ax.plot(epochs, values, marker="o", color="C1", label=f"dev {monitor}")
    known = [(v, e) for v, e in zip(values, epochs) if v is not None]
    if known:
        best_value, best_epoch = (max if maximize else min)(known)
        metric_ax.scatter([best_epoch], [best_value], s=120, facecolors="none", edgecolors="C3", linewidths=2,
                          zorder=3, label=f"best: epoch {best_epoch}, {best_value:.4f}")
    metric_ax.set(title=f"dev {monitor} per epoch ({'higher' if maximize else 'lower'} is better)", xlabel="epoch",
                  ylabel=f"{monitor}" + (" (fraction)" if monitor in ("accuracy", "macro_f1", "span_f1") else ""))
    for ax in (loss_ax, metric_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def forecasts(windows: Sequence[np.ndarray], truths: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
              starts: Sequence[int], path, channel_names: Optional[List[str]] = None, most: int = 3):
    """Up to ``most`` test windows (columns) x channels (rows, up to ``most``): the input window
    (W, C), the truth and the forecast (K, C), on the series' own time index (``starts[k]`` is
    where window k's forecast begins)."""
    plt = _pyplot()
    picks = np.linspace(0, len(windows) - 1, min(most, len(windows))).round().astype(int)
    C = min(windows[0].shape[1], most)
    names = channel_names or [f"channel {c}" for c in range(windows[0].shape[1])]
    fig, axes = plt.subplots(C, len(picks), figsize=(4.2 * len(picks), 3 * C), squeeze=False)
    for col, k in enumerate(picks):
        x, y, p, t0 = windows[k], truths[k], predictions[k], starts[k]
        W, K = len(x), len(y)
        for c in range(C):
            ax = axes[c, col]
            ax.plot(range(t0 - W, t0), x[:, c], color="C0", label="input window")
            ax.plot(range(t0, t0 + K), y[:, c], color="black", label="truth")
            ax.plot(range(t0, t0 + K), p[:, c], color="C3", linestyle="--", label="forecast")
            ax.set(title=f"{names[c]}: forecast from step {t0}", xlabel="time index (steps of the series)",
                   ylabel=f"{names[c]} (series units)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]], path, title: str = "confusion matrix"):
    """Rows: gold class, columns: predicted, each cell the share of its gold row (colour, 0-1) and
    its count (text); for tagging the classes are tags and the counts tokens."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    n = len(labels)
    size = min(3 + 0.45 * n, 16)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("share of the gold class (row)")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set(title=f"{title} (cell: count; colour: share of its row)", xlabel="predicted class",
           ylabel="gold class")
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=plt.get_cmap("Blues")(0.9), label="diagonal: predicted right"),
                        Patch(color=plt.get_cmap("Blues")(0.3), label="off the diagonal: confused")],
               loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def class_f1(report: dict, path, title: str = "F1 per class"):
    """Horizontal bars: F1 of each class (``report``: ``{name: {"f1", "precision", "recall",
    "support"}}``, averages ignored), with precision and recall as markers; the support in the
    labels."""
    plt = _pyplot()
    names = [k for k in report if not k.endswith(" avg")]
    rows = [report[k] for k in names]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.35 * len(names)))
    ax.barh(y, [r["f1"] for r in rows], color="C0", alpha=0.8, label="F1")
    ax.scatter([r["precision"] for r in rows], y, marker="|", s=200, color="C3", label="precision", zorder=3)
    ax.scatter([r["recall"] for r in rows], y, marker="x", color="black", label="recall", zorder=3)
    ax.set_yticks(y, [f"{n} ({int(r['support'])})" for n, r in zip(names, rows)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set(title=title, xlabel="score (fraction, 0-1)", ylabel="class (gold support)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig
