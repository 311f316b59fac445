"""bfloat16 autocast (``--precision bf16``) against float32 on the bundled datasets, each trained
with its preset through the ``birnn`` command both ways in the same run: the test metric of
each and its difference, and the wall time.

    python benchmarks/precision.py                        # japanese-vowels, turkish-upos, sunspots
    python benchmarks/precision.py japanese-vowels        # some

The tolerance this records (benchmarks/RESULTS.md): accuracy within 0.01, RMSE within 5%.
"""

from __future__ import annotations

import sys
from pathlib import Path

from quality import RUNS, birnn_train

METRIC = {"japanese-vowels": "test_accuracy", "turkish-upos": "test_accuracy", "rotten-tomatoes": "test_accuracy",
          "first-names": "test_accuracy", "sunspots": "test_rmse_step1", "sine": "test_mae"}


def within(metric: str, fp32: float, bf16: float) -> bool:
    return abs(bf16 - fp32) <= 0.01 if metric.endswith("accuracy") else abs(bf16 - fp32) <= 0.05 * abs(fp32)


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or ["japanese-vowels", "turkish-upos", "sunspots"]
    from harness import machine, markdown_table

    print(f"# {machine()}")
    rows = []
    for name in names:
        metric = METRIC[name]
        got = {}
        for precision in ("fp32", "bf16"):
            m, secs, cmd = birnn_train("--dataset", name, "--precision", precision,
                                       "--out", str(RUNS / f"{name}-{precision}"))
            got[precision] = (m[metric], secs)
        (a, ta), (b, tb) = got["fp32"], got["bf16"]
        rows.append([name, metric, f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}", "yes" if within(metric, a, b) else "NO",
                     f"{ta:.0f}", f"{tb:.0f}"])
        print(rows[-1], flush=True)
    print(markdown_table(["dataset", "metric", "fp32", "bf16", "bf16 - fp32", "within tolerance", "fp32 s",
                          "bf16 s"], rows))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
