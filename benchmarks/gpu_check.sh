#!/usr/bin/env bash
# GPU check in one go: the step-time table, time to quality (default and paper presets), a
# profile of the paper step by component and the GPU-sensitive tests, sized for a ~10-minute
# slot on one GPU. Results go to $OUT (default: a new folder under /tmp). Run from the
# repository root with JAX's CUDA build importable.
#   STEPS_S, QUAL_S, TRACE_S, TESTS_S: time limits of the parts (seconds).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-$(mktemp -d /tmp/nstm-gpu-check-XXXX)}
T0=$(date +%s)
say() { echo "[gpu-check] $(($(date +%s) - T0)) s: $*"; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
} 2>&1 | tee "$OUT/env.txt"
say "step-time table"
timeout "${STEPS_S:-230}" python3 benchmarks/performance.py --presets paper,default \
  --shapes 256x256,320x1000,128x128,512x512,1024x1024 --steps 20 --warmup 3 \
  --pipelined-steps 20 --timeout 120 --json-out "$OUT/steps-gpu.json" 2>&1 | tail -16
for preset in default paper; do
  say "time to quality: $preset"
  timeout "${QUAL_S:-125}" python3 benchmarks/performance.py --quality --presets '' \
    --quality-presets "$preset" --phantom cells --timeout 120 \
    --json-out "$OUT/quality-gpu-$preset.json" 2>&1 | tail -6
done
say "profile of the paper step at 1024², by component"
timeout "${TRACE_S:-60}" python3 benchmarks/profile_step.py --preset paper --shape 1024x1024 \
  --trace --repeats 10 --top 15 2>&1 | tail -28 | tee "$OUT/trace-paper-1024.txt"
say "tests on the GPU"
JAX_PLATFORMS=cuda timeout "${TESTS_S:-110}" python3 -m pytest -q -p no:cacheprovider -rf \
  --tb=line tests/test_hashgrid.py tests/test_mlp.py tests/test_engine.py tests/test_dpc_system.py \
  2>&1 | tail -20 | tee "$OUT/tests.txt"
say "done; results in $OUT"
