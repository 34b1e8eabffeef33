#!/usr/bin/env bash
# The benchmark suite on a GPU machine, in one prepared run of under 10 minutes.
#
#   bash benchmarks/gpu.sh [OUT_DIR]       # default: benchmarks/results/gpu
#
# Needs a Python with jax (CUDA), optax, numpy, matplotlib and tqdm; gradtx itself is imported
# from this checkout (PYTHONPATH), so nothing is installed. Set PYTHON to choose the interpreter.
# Every stage has its own time limit, so one slow or failing stage never costs the others their
# figures; each writes its Markdown table (and plot) into OUT_DIR, and the log says which failed.
# Stages, most important first: Adam step overhead, curvature oracles, Newton-Schulz against a
# matmul (the issue sizes), the Kronecker preconditioners, clipping and noise, and the step cost of
# every registry entry (written after each family, so a cut-off run keeps what it measured).
set -u
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/gpu}
py=${PYTHON:-python3}
mkdir -p "$out"
log="$out/gpu.log"
export GRADTX_RESULTS_DIR="$out" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg

{
  date -u '+%Y-%m-%d %H:%M UTC'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$py" -c 'import jax, optax; print("jax", jax.__version__, "optax", optax.__version__, jax.devices())'
} 2>&1 | tee "$log"

failed=()
stage() {  # stage SECONDS MODULE [ARGS...]
  local limit=$1 module=$2
  shift 2
  echo "== benchmarks.$module $* (limit ${limit}s)" | tee -a "$log"
  local start=$SECONDS
  timeout --signal=INT --kill-after=10 "$limit" "$py" -m "benchmarks.$module" "$@" 2>&1 \
    | grep -v -i "warning" | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  echo "== benchmarks.$module: exit $rc after $((SECONDS - start)) s" | tee -a "$log"
  [ "$rc" -eq 0 ] || failed+=("$module")
}

stage 60 step_overhead
stage 90 curvature
stage 60 geometry --full
stage 100 kronecker --total-params 4000000 --rounds 5
stage 90 clip_noise --params 2000000
stage 150 step_cost --rounds 3 --no-progress

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed or cut off: ${failed[*]}" | tee -a "$log"
  exit 1
fi
