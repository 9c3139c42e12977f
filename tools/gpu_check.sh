#!/usr/bin/env bash
# The GPU check of issue 26, in under 8 minutes, from the repository root:
#
#     bash tools/gpu_check.sh [OUT_DIR]        # default: $OUT if set, else docs/benchmarks
#
# With TensorFlow: the parity tests on the GPU, tools/bench_train.py for every option at batch 32
# (side by side with the authors' PyTorch step when torch and their network are here),
# tools/bench_inference.py, and 2-replica MirroredStrategy scaling when there are 2 GPUs.
# Without TensorFlow: says so, and times the authors' PyTorch train step on the GPU at batch 32.
# Writes OUT_DIR/gpu.md: one table of the checks (status, seconds, the headline), then each
# tool's own page. The authors' network is looked for in $LGH_REFERENCE_DIR,
# shared/reference/authors and ../shared/reference/authors (timing only; lgh_tf never imports it).
set -u
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-docs/benchmarks}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || PY=python
PAGE="$OUT_DIR/gpu.md"
LOGS="$OUT_DIR/gpu_logs"
mkdir -p "$LOGS"
START=$(date +%s)
ROWS=()

REF=""
for dir in "${LGH_REFERENCE_DIR:-}" shared/reference/authors ../shared/reference/authors; do
  if [ -n "$dir" ] && [ -f "$dir/nets/Net.py" ]; then REF=$(cd "$dir" && pwd); break; fi
done

# run NAME SECONDS COMMAND...: runs it under a time limit, logs it, adds a row to the table.
run() {
  local name=$1 limit=$2; shift 2
  local begin=$(date +%s) status
  echo "== $name: $*" >&2
  timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
  status=$?
  local took=$(( $(date +%s) - begin ))
  local verdict="ok"
  [ $status -eq 124 ] && verdict="timed out after ${limit} s"
  [ $status -ne 0 ] && [ $status -ne 124 ] && verdict="failed (exit $status)"
  local headline
  headline=$(grep -E "passed|failed|error|x reference|^\| (default|jit|bf16|jit\+bf16|reference|saved_model|function|xla|1|2) " \
             "$LOGS/$name.log" | tail -n 6 | tr '\n' ' ' | sed 's/|/\\|/g' | cut -c1-600)
  ROWS+=("| $name | $verdict | $took | \`$*\` | ${headline:-see $LOGS/$name.log} |")
  tail -n 3 "$LOGS/$name.log" >&2
}

if "$PY" -c "import tensorflow" >/dev/null 2>&1; then
  TF=$("$PY" -c "import tensorflow as tf; print(tf.__version__, len(tf.config.list_physical_devices('GPU')), 'GPU(s)')" 2>/dev/null)
  NOTE="TensorFlow $TF."
  GPUS=$("$PY" -c "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))" 2>/dev/null)
  REFARG=()
  [ -n "$REF" ] && REFARG=(--reference_dir "$REF")
  run parity 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_parity.py tests/test_seeded_parity.py
  run bench_train 200 "$PY" tools/bench_train.py --batch_size 32 --steps 5 --repeats 2 --memory_batch 0 \
      --no_pipeline --cache_dir /tmp/lgh_cache "${REFARG[@]}" --markdown "$OUT_DIR/bench_train_gpu.md"
  run bench_inference 100 "$PY" tools/bench_inference.py --batch_sizes 1,32 --iterations 5 \
      --variants function,xla,saved_model,saved_model_bf16 --cache_dir /tmp/lgh_cache \
      --markdown "$OUT_DIR/bench_inference_gpu.md"
  if [ "${GPUS:-0}" -ge 2 ]; then
    run mirrored 90 "$PY" tools/bench_train.py --strategy=mirrored --replicas 1,2 --batch_size 32 --steps 5 \
        --memory_batch 0 --cache_dir /tmp/lgh_cache --markdown "$OUT_DIR/bench_train_mirrored_gpu.md"
  else
    ROWS+=("| mirrored | skipped | 0 | - | ${GPUS:-0} GPU(s): 2-replica scaling needs 2 |")
  fi
else
  NOTE="**TensorFlow is absent on this machine** (\`$PY -c 'import tensorflow'\` fails): no parity test, no lgh_tf timing; only the authors' PyTorch reference step is timed, so there is no ours/reference ratio from this run."
  echo "TensorFlow is ABSENT here: timing only the authors' PyTorch reference step" >&2
  if [ -n "$REF" ]; then
    run reference_train 240 "$PY" tools/bench_train.py --options none --batch_size 32 --steps 10 --repeats 3 \
        --reference_dir "$REF" --markdown "$OUT_DIR/bench_train_gpu.md"
  else
    ROWS+=("| reference_train | skipped | 0 | - | the authors' network is not here: set LGH_REFERENCE_DIR |")
  fi
fi

{
  echo "# GPU check (tools/gpu_check.sh)"
  echo
  echo "$NOTE Total $(( $(date +%s) - START )) s. Logs: \`$LOGS/\`."
  echo
  echo "## Machine"
  echo
  "$PY" -c "import sys; sys.path.insert(0, 'tools'); import bench_report; print('\n'.join(bench_report.machine_lines()))" 2>/dev/null \
    || echo "- $(uname -a)"
  echo
  echo "## Checks"
  echo
  echo "| check | status | seconds | command | headline |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  for page in "$OUT_DIR"/bench_*_gpu.md; do
    [ -f "$page" ] || continue
    echo
    sed 's/^#/##/' "$page"
  done
} >"$PAGE.tmp" && mv "$PAGE.tmp" "$PAGE"
echo "wrote $PAGE" >&2
