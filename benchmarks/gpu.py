"""GPU benchmark (issue #6): birnn's fused persistent kernel against cuDNN in the same run. See
harness.py for the cases; the same suite runs as ``birnn bench`` on a CUDA machine.

    PYTHONPATH=src python3 benchmarks/gpu.py --repeats 5
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from harness import gpu_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(gpu_main())
