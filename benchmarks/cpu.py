"""CPU benchmark: birnn against torch.nn in one run (issues #2, #3). See harness.py for what
is measured and the bars; the same suite runs as ``birnn bench``.

    python benchmarks/cpu.py --modes LSTM,GRU,RNN --repeats 7
"""

from harness import cpu_main

if __name__ == "__main__":
    raise SystemExit(cpu_main())
