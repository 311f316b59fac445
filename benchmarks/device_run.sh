#!/usr/bin/env bash
# Everything issue #6 needs from a GPU machine, in one call of the device tool (about 10 minutes):
#   bash benchmarks/device_run.sh            # writes under $OUT (the device tool's), else ./device-out
# 1. the kernels compiled for the GPU's own architecture by ptxas (registers, spills);
# 2. tests/test_cuda.py: every path against cuDNN, the kernels at real sizes (poisoned outputs,
#    bit-identical repeats), the fused regularisers against the reference path;
# 3. benchmarks/gpu.py: the table, then case 5 (regularised training).
# Copy the outputs to benchmarks/device/ and the figures to RESULTS.md / GPU_NOTES.md.
set -u
out=${OUT:-device-out}
mkdir -p "$out"
export PYTHONPATH=src PYTHONWARNINGS=ignore
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cudnn', torch.backends.cudnn.version())"
} > "$out/machine.txt" 2>&1
python3 tests/kernel_compile.py > "$out/kernel_compile.txt" 2>&1
echo "kernel_compile rc=$?"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$out/test_cuda.txt" 2>&1
echo "test_cuda rc=$?"; tail -3 "$out/test_cuda.txt"
python3 benchmarks/gpu.py --repeats 5 > "$out/gpu.txt" 2>&1
echo "gpu.py rc=$?"; tail -12 "$out/gpu.txt"
