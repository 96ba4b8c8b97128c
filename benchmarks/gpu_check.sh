#!/usr/bin/env bash
# One prepared check of the CUDA path, for a GPU machine (about 5 minutes on one H100):
#   1. the CUDA tests (tests/test_cuda.py, marked `cuda`, skipped without a device);
#   2. a 1-epoch fit of the default diagram on the GPU (fresh cache, small judge);
#   3. the quick speed benchmark on the GPU → benchmarks/results/speed_cuda.json (+ .png).
#
#   bash benchmarks/gpu_check.sh            # DEVICE=cuda by default
#   DEVICE=cpu bash benchmarks/gpu_check.sh # the same commands on CPU (a dry check of the script itself)
#
# Logs go to benchmarks/results/gpu_check_<device>/; the script stops at the first failing step.
set -euo pipefail

DEVICE="${DEVICE:-cuda}"
cd "$(dirname "$0")/.."
TAG="${DEVICE%%:*}"
LOGS="benchmarks/results/gpu_check_${TAG}"
mkdir -p "$LOGS"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

python - <<EOF
import torch
print("torch", torch.__version__, "cuda available:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
if "${DEVICE}".startswith("cuda") and not torch.cuda.is_available():
    raise SystemExit("DEVICE=${DEVICE} but torch sees no CUDA device")
EOF

step() { echo "== $1 ($(date +%T))"; }

step "1/3 CUDA tests"
if [[ "$TAG" == cuda ]]; then
  timeout 120 python -m pytest -m cuda -q tests/test_cuda.py 2>&1 | tee "$LOGS/pytest_cuda.log"
else
  # without CUDA the tests are collected and skipped: this still checks that they import
  timeout 120 python -m pytest -m cuda -q -rs tests/test_cuda.py 2>&1 | tee "$LOGS/pytest_cuda.log"
fi

step "2/3 one-epoch fit on ${DEVICE}"
CAUVADE_CACHE="$WORK/cache" timeout 240 python -m cauvade_pyro.fit device="$DEVICE" progress=false \
  inference.image_epochs=1 inference.attribute_steps=200 dataset.num_train=4000 \
  eval.judge_images=2000 eval.judge_epochs=1 eval.num_samples=200 \
  hydra.run.dir="$WORK/run" 2>&1 | tee "$LOGS/fit.log"
cp "$WORK/run/metrics.json" "$LOGS/fit_metrics.json"
python - "$LOGS/fit_metrics.json" "$DEVICE" <<'EOF'
import json, sys
metrics = json.load(open(sys.argv[1]))
assert metrics["device"].startswith(sys.argv[2].split(":")[0]), f"the fit ran on {metrics['device']}"
print("fit ran on", metrics["device"], "in", metrics["wall_time_s"], "s")
EOF

step "3/3 quick speed benchmark on ${DEVICE}"
# on CPU (a dry check) the JSON stays in the log folder, so the committed speed_cpu.json is not overwritten
if [[ "$TAG" == cuda ]]; then OUT_JSON="benchmarks/results/speed_cuda.json"; else OUT_JSON="$LOGS/speed_${TAG}_dry.json"; fi
timeout 240 python -m benchmarks.speed --quick --device "$DEVICE" --out "$OUT_JSON" 2>&1 | tee "$LOGS/speed.log"

step "done: $OUT_JSON, logs in $LOGS"
