#!/usr/bin/env bash
# What issue #6 still needs from a GPU machine, in stages that each fit one device-tool call
# (10 minutes); outputs under $OUT (the device tool's), else ./device-out:
#   bash benchmarks/device_run.sh checks      # tests/test_cuda.py on the timed defaults (stream, atomics)
#   bash benchmarks/device_run.sh checks-new  # tests/test_cuda.py on the resident kernels and the PTX barrier
#   bash benchmarks/device_run.sh compile     # the ptxas report for sm_90 (CI runs it too)
#   bash benchmarks/device_run.sh variants    # experiments/gpu_variants.py, LSTM H=512: stream vs resident,
#                                             # prefetch on/off, atomic vs PTX barrier, fwd and bwd
#   bash benchmarks/device_run.sh variants-more   # the same for GRU and H=1024
#   bash benchmarks/device_run.sh ablate      # experiments/gpu_ablation.py: variants 15, 17, 19, 20 on and off
#   bash benchmarks/device_run.sh bench       # benchmarks/gpu.py (the table + case 5)
#   bash benchmarks/device_run.sh resident    # the same with gpu.py --kernel resident
#     (gpu.py --barrier ptx times the PTX barrier)
# Copy the outputs to benchmarks/device/, the figures to RESULTS.md and GPU_NOTES.md, the
# `bench` stage's speed_table.json to src/birnn/ (the table path="auto" reads), and set
# birnn.kernels.default_kernel from what was measured.
set -u
out=${OUT:-device-out}
mkdir -p "$out"
export PYTHONPATH=src PYTHONWARNINGS=ignore
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cudnn', torch.backends.cudnn.version())"
  env | grep '^BIRNN_' || true
} > "$out/machine.txt" 2>&1
case "${1:-checks}" in
  checks)
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py -k "not resident and not ptx" > "$out/test_cuda.txt" 2>&1
    echo "test_cuda rc=$?"; tail -5 "$out/test_cuda.txt" ;;
  checks-new)
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py -k "resident or ptx" > "$out/test_cuda_new.txt" 2>&1
    echo "test_cuda rc=$?"; tail -5 "$out/test_cuda_new.txt" ;;
  compile)
    python3 tests/kernel_compile.py > "$out/kernel_compile.txt" 2>&1
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
  resident)
    python3 benchmarks/gpu.py --repeats 5 --kernel resident > "$out/gpu_resident.txt" 2>&1
    echo "gpu.py (resident) rc=$?"; tail -30 "$out/gpu_resident.txt" ;;
  *) echo "stage must be checks, checks-new, compile, variants, variants-more, ablate, bench or resident, got $1"; exit 2 ;;
esac
