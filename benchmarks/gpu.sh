#!/usr/bin/env bash
# The benchmark suite on a GPU machine, in one prepared run of under 10 minutes.
#
#   bash benchmarks/gpu.sh [OUT_DIR [STAGE[=SECONDS]...]]   # default: benchmarks/results/gpu, DEFAULT_STAGES
#
# A second run can pick up what the first had no time for, with more time, e.g.
#   bash benchmarks/gpu.sh benchmarks/results/gpu step_cost_curvature step_cost_small clip_noise=200
# The step-cost stages merge into OUT_DIR/step_cost.json, so rows from both runs end up in one table.
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
} 2>&1 | if [ $# -gt 1 ]; then tee -a "$log"; else tee "$log"; fi  # a follow-up run appends

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

run_stage() {  # run_stage NAME [SECONDS]: the named stage, with its default limit unless one is given
  local name=$1 limit=${2:-}
  case $name in
    step_overhead) stage "${limit:-60}" step_overhead ;;
    curvature) stage "${limit:-90}" curvature ;;
    geometry) stage "${limit:-60}" geometry --full ;;
    kronecker) stage "${limit:-100}" kronecker --total-params 4000000 --rounds 5 ;;
    clip_noise) stage "${limit:-90}" clip_noise --params 2000000 ;;
    # Every entry, curvature last (its Kronecker entries compile slowest on 15 M parameters).
    step_cost) stage "${limit:-150}" step_cost --rounds 3 --no-progress --merge ;;
    step_cost_curvature) stage "${limit:-300}" step_cost --rounds 3 --no-progress --merge --families curvature --trees transformer ;;
    step_cost_small) stage "${limit:-240}" step_cost --rounds 3 --no-progress --merge --trees small ;;
    *) echo "unknown stage '$name'; stages: $DEFAULT_STAGES step_cost_curvature step_cost_small" | tee -a "$log"
       failed+=("$name") ;;
  esac
}

DEFAULT_STAGES="step_overhead curvature geometry kronecker clip_noise step_cost"
shift $(( $# > 0 ? 1 : 0 ))
for spec in ${@:-$DEFAULT_STAGES}; do
  if [[ $spec == *=* ]]; then run_stage "${spec%%=*}" "${spec#*=}"; else run_stage "$spec"; fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed or cut off: ${failed[*]}" | tee -a "$log"
  exit 1
fi
