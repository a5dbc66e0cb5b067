#!/usr/bin/env bash
# Check a GPU machine in one command, within GPU_CHECK_BUDGET seconds (default 540):
#
#     bash bench/gpu_check.sh [FOLDER]
#
# It needs the working tree and Fashion-MNIST in data/FashionMNIST/raw (carried: nothing is
# ever downloaded), and the machine's own Python: PYTHON, else .venv/bin/python if there, else
# python3 (whatever torch it has, 2.4 or newer). It runs the CUDA tests (tests/test_cuda.py),
# then bench.throughput eager, compiled, bf16 and as CUDA graphs, and bench.eval_speed, all on
# the GPU, each part under its own limit (timeout, then a kill; the tests also under
# pytest-timeout's, when installed), cut to what the budget has left. FOLDER (default
# saved/gpu_check/<date_time>) ends with two files, also when a part failed or was killed or
# the script was stopped: summary.json (bench/gpu_summary.py; printed as a table) and
# gpu_check.tar.gz (every part's log and figures).
# Exit status 0 when every part ran and every test passed (skips allowed), 1 otherwise, and 1
# when a GPU is present (nvidia-smi lists one) but torch cannot use it (a CPU-only torch, one
# older than 2.4, none). Without a GPU it says so in one line and exits 0.
# GPU_CHECK_LIMIT_<part>=SECONDS replaces a part's limit; GPU_CHECK_KILL_AFTER (default 15)
# is how long a part that ignores the stop at its limit has before it is killed;
# GPU_CHECK_DEBIAN_DATA where Debian's dataset-fashion-mnist is, if not in the usual place.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONUNBUFFERED=1
DEADLINE=$((SECONDS + ${GPU_CHECK_BUDGET:-540}))
KILL_AFTER=${GPU_CHECK_KILL_AFTER:-15}
RESERVE=20  # seconds kept for the summary and the archive

GPUS=$(nvidia-smi -L 2>/dev/null | grep '^GPU' | tr '\n' ';' | sed 's/;$//')
PROBE=$(mktemp)
"$PYTHON" -m bench.gpu_summary --probe "$PROBE" 2>/dev/null
probe=$?
if [ "$probe" -ne 0 ] && [ "$probe" -ne 4 ] && [ -z "$GPUS" ]; then
  echo "gpu_check: no GPU here (nvidia-smi lists none and torch sees none); nothing to check"
  rm -f "$PROBE"
  exit 0
fi

OUT=${1:-saved/gpu_check/$(date +%Y%m%d_%H%M%S)}
if [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then  # finish packs and removes what is in it
  echo "gpu_check: $OUT is not empty; give a new or empty folder"
  rm -f "$PROBE"
  exit 2
fi
mkdir -p "$OUT"
mv "$PROBE" "$OUT/gpu.json"
[ -n "$GPUS" ] && echo "$GPUS" >"$OUT/nvidia_smi.txt"
echo "gpu_check: writing to $OUT"

# finish: the summary (summary.json), then everything else into gpu_check.tar.gz.
finish() {
  "$PYTHON" -m bench.gpu_summary "$OUT"
  local status=$?
  local parts=()
  for path in "$OUT"/*; do
    case "$(basename "$path")" in
      summary.json|gpu_check.tar.gz) ;;
      *) parts+=("$(basename "$path")") ;;
    esac
  done
  if [ ${#parts[@]} -gt 0 ] && tar -czf "$OUT/gpu_check.tar.gz" -C "$OUT" "${parts[@]}"; then
    (cd "$OUT" && rm -rf -- "${parts[@]}")
  fi
  return $status
}

RUNNING="" PART=""  # the part running now: its timeout's process and its name
stopped() {
  echo "gpu_check: stopped; summarising what ran"
  if [ -n "$RUNNING" ]; then
    kill -TERM "$RUNNING" 2>/dev/null  # timeout passes it on, and kills after KILL_AFTER
    wait "$RUNNING"
    echo $? >"$OUT/$PART.rc"
  fi
  finish
  exit 1
}
trap stopped INT TERM HUP

if [ "$probe" -ne 0 ]; then  # a GPU is there, but torch cannot use it
  finish
  exit 1
fi
IDX=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
DEBIAN=${GPU_CHECK_DEBIAN_DATA:-/usr/share/datasets/fashion-mnist}  # what the loader copies from
for file in "${IDX[@]}"; do
  if [ ! -f "data/FashionMNIST/raw/$file" ] && [ ! -f "$DEBIAN/$file.gz" ]; then
    echo "no data/FashionMNIST/raw/$file: carry data/FashionMNIST to this machine" \
      "(it is never downloaded here)" >"$OUT/data.txt"
    finish
    exit 1
  fi
done

# limit PART SECONDS: the part's limit (GPU_CHECK_LIMIT_<part> replaces it), cut to what the
# budget has left after the reserve and a kill; 0 when too little is left to start it.
limit() {
  local override="GPU_CHECK_LIMIT_$1" left=$((DEADLINE - SECONDS - RESERVE - KILL_AFTER))
  local seconds=${!override:-$2}
  if [ "$seconds" -gt "$left" ]; then
    seconds=$left
    [ "$seconds" -lt 5 ] && seconds=0
  fi
  echo "$seconds"
}

# stage PART SECONDS COMMAND...: run one part under its limit, its output in PART.log, its
# exit status in PART.rc (124: stopped at the limit; 137: killed after it), its duration in
# PART.seconds.
stage() {
  local name=$1 seconds=$2 start=$SECONDS
  shift 2
  if [ "$seconds" -eq 0 ]; then
    echo "gpu_check: $name not run (the budget is spent)"
    echo budget >"$OUT/$name.rc"
    return
  fi
  echo "gpu_check: $name (at most ${seconds} s)"
  timeout -k "$KILL_AFTER" "$seconds" "$@" >"$OUT/$name.log" 2>&1 &
  RUNNING=$! PART=$name
  wait "$RUNNING"
  echo $? >"$OUT/$name.rc"
  RUNNING=""
  echo $((SECONDS - start)) >"$OUT/$name.seconds"
}

# The CUDA tests: each under pytest-timeout's limit (below the part's, so that a stuck test
# fails alone and the report is written), the whole run stopped by it before the part's.
TESTS=$(limit tests 270)
PYTEST=(-m pytest -q -p no:cacheprovider -rA tests/test_cuda.py --junitxml="$OUT/tests.xml")
if "$PYTHON" -c "import pytest_timeout" 2>/dev/null; then
  PYTEST+=(--timeout=150)
  SESSION_TIMEOUT="import sys; from importlib.metadata import version as v
sys.exit(tuple(map(int, v('pytest-timeout').split('.')[:2])) < (2, 3))"  # added in 2.3
  if "$PYTHON" -c "$SESSION_TIMEOUT" 2>/dev/null && [ "$TESTS" -gt 60 ]; then
    PYTEST+=(--session-timeout=$((TESTS - 30)))
  fi
fi
stage tests "$TESTS" "$PYTHON" "${PYTEST[@]}"

# Throughput: the compiled and CUDA-graph parts include a cold Inductor/Triton compile of the
# paper-sized model (the second reuses the first's compiled kernels from Inductor's cache).
BENCH=(-m bench.throughput --device cuda --steps 100 --warmup 10 --window 20)
stage throughput_eager "$(limit throughput_eager 45)" "$PYTHON" "${BENCH[@]}" \
  --json "$OUT/throughput_eager.json"
stage throughput_compiled "$(limit throughput_compiled 150)" "$PYTHON" "${BENCH[@]}" \
  --json "$OUT/throughput_compiled.json" --set trainer.compile=true
stage throughput_bf16 "$(limit throughput_bf16 45)" "$PYTHON" "${BENCH[@]}" \
  --json "$OUT/throughput_bf16.json" --set trainer.amp=true
stage throughput_cuda_graphs "$(limit throughput_cuda_graphs 100)" "$PYTHON" "${BENCH[@]}" \
  --json "$OUT/throughput_cuda_graphs.json" --set trainer.compile_mode=reduce-overhead
stage eval_speed "$(limit eval_speed 40)" "$PYTHON" -m bench.eval_speed --device cuda -k 1000 \
  --images 1000 --json "$OUT/eval_speed.json"

trap - INT TERM HUP
finish
