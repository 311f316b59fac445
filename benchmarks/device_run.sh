#!/usr/bin/env bash
# The GPU checks and timings, in stages that each fit one device-tool call (10 minutes); outputs
# under $OUT (the device tool's), else ./device-out:
#   bash benchmarks/device_run.sh session     # one call for a 15-minute lease: every GPU test (8 processes,
#                                             # so Triton compiles in parallel), then the benchmark suite,
#                                             # which rewrites the speed table (each timed out)
#   bash benchmarks/device_run.sh checks      # tests/kernels/test_cuda.py alone
#   bash benchmarks/device_run.sh compile     # the ptxas report for sm_90 (CI runs it too)
#   bash benchmarks/device_run.sh variants    # experiments/gpu_variants.py, LSTM H=512: resident vs stream,
#                                             # fwd and bwd, plain and regularised
#   bash benchmarks/device_run.sh variants-more   # the same for GRU and H=1024
#   bash benchmarks/device_run.sh ablate      # experiments/gpu_ablation.py: GPU_NOTES rows 15, 17, 19, 20 on and off
#   bash benchmarks/device_run.sh bench       # benchmarks/gpu.py (the table + case 5)
#   bash benchmarks/device_run.sh stream      # the same with gpu.py --kernel stream
# Copy the outputs to benchmarks/device/ (named by date and content), the figures to RESULTS.md
# and GPU_NOTES.md, and the speed_table.json it writes to src/birnn/ (the table path="auto" reads).
set -u
out=${OUT:-device-out}
mkdir -p "$out"
export PYTHONPATH=src PYTHONWARNINGS=ignore
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cudnn', torch.backends.cudnn.version())"
} > "$out/machine.txt" 2>&1
case "${1:-session}" in
  session)
    cat "$out/machine.txt"
    timeout 140 python3 -m pytest -q -n 8 -rfE -p no:cacheprovider tests/kernels/test_cuda.py > "$out/test_cuda.txt" 2>&1
    echo "test_cuda rc=$?"; tail -15 "$out/test_cuda.txt"
    export PYTHONUNBUFFERED=1
    timeout 330 python3 benchmarks/gpu.py --repeats 5 --table "$out/speed_table.json" > "$out/gpu.txt" 2>&1
    echo "gpu.py rc=$?"; cat "$out/gpu.txt" ;;
  checks)
    python3 -m pytest -q -n 8 -rfE -p no:cacheprovider tests/kernels/test_cuda.py > "$out/test_cuda.txt" 2>&1
    echo "test_cuda rc=$?"; tail -15 "$out/test_cuda.txt" ;;
  compile)
    python3 tests/kernels/kernel_compile.py > "$out/kernel_compile.txt" 2>&1
    echo "kernel_compile rc=$?"; tail -5 "$out/kernel_compile.txt" ;;
  variants)
    python3 experiments/gpu_variants.py --modes LSTM --hidden 512 > "$out/gpu_variants.txt" 2>&1
    echo "gpu_variants rc=$?"; cat "$out/gpu_variants.txt" ;;
  variants-more)
    { python3 experiments/gpu_variants.py --modes GRU --hidden 512 --batches 1,64
      python3 experiments/gpu_variants.py --modes LSTM --hidden 1024 --batches 1,64; } > "$out/gpu_variants_more.txt" 2>&1
    echo "gpu_variants rc=$?"; cat "$out/gpu_variants_more.txt" ;;
  ablate)
    python3 experiments/gpu_ablation.py --repeats 5 > "$out/gpu_ablation.txt" 2>&1
    echo "gpu_ablation rc=$?"; tail -20 "$out/gpu_ablation.txt" ;;
  bench)
    python3 benchmarks/gpu.py --repeats 5 --table "$out/speed_table.json" > "$out/gpu.txt" 2>&1
    echo "gpu.py rc=$?"; tail -30 "$out/gpu.txt" ;;
  stream)
    python3 benchmarks/gpu.py --repeats 5 --kernel stream > "$out/gpu_stream.txt" 2>&1
    echo "gpu.py (stream) rc=$?"; tail -30 "$out/gpu_stream.txt" ;;
  *) echo "stage must be session, checks, compile, variants, variants-more, ablate, bench or stream, got $1"; exit 2 ;;
esac
