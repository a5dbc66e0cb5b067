#!/usr/bin/env bash
# Check a GPU machine in one command (under 8 minutes on one GPU):
#
#     bash bench/gpu_check.sh [FOLDER]
#
# runs the CUDA tests (tests/test_cuda.py), then bench.throughput eager, compiled, bf16 and as
# CUDA graphs, and bench.eval_speed, all on the GPU, and prints one table (bench/gpu_summary.py),
# also written as JSON to FOLDER/summary.json (default FOLDER: saved/gpu_check/<date_time>).
# Exit status 0 when every part ran and every test passed (skips allowed), 1 otherwise.
# On a machine without a GPU it says so in one line and exits 0, so CI can call it anywhere.
# PYTHON chooses the interpreter (default: .venv/bin/python if there, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
    2>/dev/null; then
  echo "gpu_check: no GPU is visible to torch here (torch.cuda.is_available() is false); nothing to check"
  exit 0
fi

OUT=${1:-saved/gpu_check/$(date +%Y%m%d_%H%M%S)}
mkdir -p "$OUT"
echo "gpu_check: writing to $OUT"
"$PYTHON" - "$OUT/gpu.json" <<'EOF'
import json, sys, torch
json.dump({"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
           "torch": torch.__version__, "cuda": torch.version.cuda}, open(sys.argv[1], "w"))
EOF

# stage NAME SECONDS COMMAND...: run one part with a time limit, its output in NAME.log.
stage() {
  local name=$1 seconds=$2
  shift 2
  echo "gpu_check: $name (at most ${seconds} s)"
  timeout "$seconds" "$@" >"$OUT/$name.log" 2>&1
  echo $? >"$OUT/$name.rc"
}

stage tests 210 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_cuda.py \
  --junitxml="$OUT/tests.xml"
BENCH=(-m bench.throughput --device cuda --steps 100 --warmup 10 --window 20)
stage throughput_eager 40 "$PYTHON" "${BENCH[@]}" --json "$OUT/throughput_eager.json"
stage throughput_compiled 75 "$PYTHON" "${BENCH[@]}" --json "$OUT/throughput_compiled.json" \
  --set trainer.compile=true
stage throughput_bf16 40 "$PYTHON" "${BENCH[@]}" --json "$OUT/throughput_bf16.json" \
  --set trainer.amp=true
stage throughput_cuda_graphs 75 "$PYTHON" "${BENCH[@]}" --json "$OUT/throughput_cuda_graphs.json" \
  --set trainer.compile_mode=reduce-overhead
stage eval_speed 30 "$PYTHON" -m bench.eval_speed --device cuda -k 1000 --images 1000 \
  --json "$OUT/eval_speed.json"

"$PYTHON" -m bench.gpu_summary "$OUT"
