#!/usr/bin/env bash
# One prepared check of the CUDA path, for a GPU machine (about 5 minutes on one H100/H200):
#   1. the CUDA tests (tests/test_cuda.py, marked `cuda`, skipped without a device): the loss, do(), the
#      training step with no host-device sync at all, bf16 autocast against fp32;
#   2. a 1-epoch fit of the default diagram on the GPU (fresh cache, small judge), in fp32 and with the
#      networks under bf16 autocast (inference.precision=bf16);
#   3. the quick speed benchmark on the GPU → benchmarks/results/speed_cuda.json (+ .png), and the quick
#      latent-response family (inference.sweep=shared) → benchmarks/results/latent_family_cuda_quick.json (+ .png).
#
#   bash benchmarks/gpu_check.sh              # DEVICE=cuda by default
#   DEVICE=cpu bash benchmarks/gpu_check.sh   # the same commands on CPU (a dry check of the script itself)
#   KEEP_GOING=1 bash benchmarks/gpu_check.sh # run every step even after a failure (one remote try)
#
# Logs go to benchmarks/results/gpu_check_<device>/ (summary.txt: one line per step with its status and
# seconds). Without KEEP_GOING the script stops at the first failing step; the exit status is 1 if any failed.
set -uo pipefail

DEVICE="${DEVICE:-cuda}"
PYTHON="${PYTHON:-python3}"  # GPU images often have python3 only
KEEP_GOING="${KEEP_GOING:-0}"
cd "$(dirname "$0")/.."
TAG="${DEVICE%%:*}"
LOGS="benchmarks/results/gpu_check_${TAG}"
mkdir -p "$LOGS"
: > "$LOGS/summary.txt"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
FAILED=0

# run_step NAME COMMAND...: time one step, record its status, stop unless KEEP_GOING=1
run_step() {
  local name="$1"; shift
  echo "== $name ($(date +%T))"
  local start=$SECONDS
  "$@"
  local status=$?
  echo "$name: $([[ $status == 0 ]] && echo ok || echo "FAILED (exit $status)") in $((SECONDS - start)) s" \
    | tee -a "$LOGS/summary.txt"
  if [[ $status != 0 ]]; then
    FAILED=1
    [[ "$KEEP_GOING" == 1 ]] || exit 1
  fi
}

device_info() {
  "$PYTHON" - <<EOF
import torch
print("torch", torch.__version__, "cuda available:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
if "${DEVICE}".startswith("cuda") and not torch.cuda.is_available():
    raise SystemExit("DEVICE=${DEVICE} but torch sees no CUDA device")
EOF
}

cuda_tests() {
  # without CUDA the tests are collected and skipped: this still checks that they import
  timeout 180 "$PYTHON" -m pytest -m cuda -q -rs tests/test_cuda.py 2>&1 | tee "$LOGS/pytest_cuda.log"
}

one_epoch_fit() {  # one_epoch_fit PRECISION
  local precision="$1"
  CAUVADE_CACHE="$WORK/cache" timeout 240 "$PYTHON" -m cauvade_pyro.fit device="$DEVICE" progress=false \
    inference.image_epochs=1 inference.attribute_steps=200 inference.precision="$precision" \
    dataset.num_train=4000 eval.judge_images=2000 eval.judge_epochs=1 eval.num_samples=200 \
    hydra.run.dir="$WORK/run_$precision" 2>&1 | tee "$LOGS/fit_$precision.log" || return 1
  cp "$WORK/run_$precision/metrics.json" "$LOGS/fit_metrics_$precision.json" || return 1
  "$PYTHON" - "$LOGS/fit_metrics_$precision.json" "$DEVICE" <<'EOF'
import json, sys
metrics = json.load(open(sys.argv[1]))
assert metrics["device"].startswith(sys.argv[2].split(":")[0]), f"the fit ran on {metrics['device']}"
print("fit ran on", metrics["device"], "in", metrics["wall_time_s"], "s; W1 mean", metrics.get("w1_mean"))
EOF
}

# on CPU (a dry check) the JSON stays in the log folder, so the committed speed_cpu.json is not overwritten
if [[ "$TAG" == cuda ]]; then OUT_JSON="benchmarks/results/speed_cuda.json"; else OUT_JSON="$LOGS/speed_${TAG}_dry.json"; fi
speed() {
  timeout 300 "$PYTHON" -m benchmarks.speed --quick --device "$DEVICE" --out "$OUT_JSON" 2>&1 | tee "$LOGS/speed.log"
}

run_step "0/3 device" device_info
run_step "1/3 CUDA tests" cuda_tests
run_step "2/3 one-epoch fit on ${DEVICE} (fp32)" one_epoch_fit fp32
run_step "2/3 one-epoch fit on ${DEVICE} (bf16 networks)" one_epoch_fit bf16
latent_family() {
  if [[ "$TAG" == cuda ]]; then LF_JSON="benchmarks/results/latent_family_cuda_quick.json"; else LF_JSON="$LOGS/latent_family_${TAG}_dry.json"; fi
  timeout 300 "$PYTHON" -m benchmarks.latent_family --quick --device "$DEVICE" --out "$LF_JSON" 2>&1 | tee "$LOGS/latent_family.log"
}

run_step "3/3 quick speed benchmark on ${DEVICE}" speed
run_step "3/3 quick latent-response family on ${DEVICE}" latent_family
echo "== done: $OUT_JSON, logs in $LOGS"
cat "$LOGS/summary.txt"
exit $FAILED
