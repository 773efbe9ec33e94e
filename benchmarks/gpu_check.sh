#!/usr/bin/env bash
# The GPU check: everything issue 29 asks a GPU to show, in one script that installs nothing,
# ends within 6 minutes on one H200 and writes each result to $OUT as it goes (a run cut short
# still leaves what it measured). $OUT gets eight files at most (what a lent machine sends back):
# steps.log (every step's output and exit code), junit.xml, train_speed.json, profile.json,
# eval128.json, samples128.png, reconstructions128.png and run128.tar.gz (the run's config,
# metrics and report). Steps, in order of what matters most:
#   machine       nvidia-smi, torch, the GPU
#   cuda_tests    tests/test_cuda.py: bf16 training with data, prior and updates on the GPU,
#                 one host sync per step, resume, sampling, memory checks
#   train_speed   stagegen's trainer against the plain PyTorch loop doing the same math (trunk, refiners,
#                 adversarial loss and its discriminator, sample path, EMA), bf16, the sharp-celeba128-gpu
#                 model at batch 64, with FLOP/image and the share of the measured bf16 matmul peak
#   profile       torch.profiler over trainer steps: the share of a step the GPU spends in kernels
#   run128        `stagegen train --preset sharp-celeba128-gpu` on CelebA, time-budgeted ($RUN_BUDGET s of training)
#   eval128       realism, sharpness and SWD per stage of that run's pipeline (eval128.json)
#   suite         the fast test suite with CUDA visible, -n auto (junit.xml), in the time left
#
# Prepare, here (beside ../shared):  python benchmarks/gpu_bundle.py --wheels     (.gpu/: CelebA subset, wheels)
# On the GPU machine, from the repository root, install first (this script installs nothing):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/wheels/*.whl
#   python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/site . ./examples/custom_refiner
#   export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
#   OUT=/path/to/results bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
CELEBA=${CELEBA:-.gpu/celeba}
RUN_BUDGET=${RUN_BUDGET:-90}  # seconds of training in run128 (the preset's own budget is 420)
RUN=${RUN:-/tmp/stagegen-gpu-check-run128}  # outside $OUT: a run directory holds more files than come back
TOTAL=${TOTAL:-350}           # seconds the whole check may take
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
STARTED=$SECONDS

log() { echo "[$(date +%H:%M:%S) +$((SECONDS - STARTED))s] $*" | tee -a "$OUT/steps.log"; }

# step NAME LIMIT COMMAND...: the command's output, exit code and time, appended to steps.log
step() {
    local name=$1 limit=$2 begin=$SECONDS rc
    shift 2
    log "$name: start (limit ${limit}s)"
    timeout --kill-after=5 "$limit" "$@" >>"$OUT/steps.log" 2>&1
    rc=$?
    log "$name: exit $rc after $((SECONDS - begin))s$([ $rc -eq 124 ] && echo ' (its time limit)')"
}

step machine 30 bash -c 'nvidia-smi; python -c "import torch, stagegen; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), \"stagegen\", stagegen.__version__)"'
step cuda_tests 90 python -m pytest -q -rf -p no:cacheprovider tests/test_cuda.py
step train_speed 100 python benchmarks/train_speed.py --presets sharp-celeba128-gpu --device cuda --precision bf16 \
    --batch 64 --steps 20 --reps 3 --warmup 5 --json "$OUT/train_speed.json"
step profile 45 python benchmarks/profile_step.py --preset sharp-celeba128-gpu --batch 64 --steps 10 --device cuda \
    --json "$OUT/profile.json"
rm -rf "$RUN"
step run128 $((RUN_BUDGET + 90)) stagegen train --preset sharp-celeba128-gpu --data-root "$CELEBA" \
    --time-budget "${RUN_BUDGET}s" --no-progress --out "$RUN"
cp "$RUN/samples.png" "$OUT/samples128.png" 2>/dev/null
cp "$RUN/reconstructions.png" "$OUT/reconstructions128.png" 2>/dev/null
step eval128 60 bash -c "stagegen eval '$RUN/pipeline.safetensors' --data-root '$CELEBA' --device cuda \
    --metrics realism,sharpness,swd --samples 600 --limit 600 --json > '$OUT/eval128.json'"
tar -czf "$OUT/run128.tar.gz" -C "$RUN" config.json metrics.jsonl report.html 2>>"$OUT/steps.log"
left=$((TOTAL - (SECONDS - STARTED)))
if [ "$left" -ge 45 ]; then
    workers=$(python -c "import xdist" 2>/dev/null && echo "-n auto")
    # shellcheck disable=SC2086  # workers is empty or two words
    step suite "$left" python -m pytest -q -rf -p no:cacheprovider $workers --junitxml="$OUT/junit.xml"
else
    log "suite: skipped, ${left}s left of ${TOTAL}s"
fi
# what came of it, in a few lines (the files hold the rest)
python - "$OUT" <<'EOF' 2>&1 | tee -a "$OUT/steps.log"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None
speed = load("train_speed.json")
for row in (speed or {}).get("rows", []):
    share = row.get("fraction_of_matmul_peak") or 0
    print(f"{row['trainer']}: {row['images_per_second']:.0f} img/s, {row['vs_plain']:.2f}x plain, "
          f"{row['achieved_gflops'] / 1e3:.1f} TFLOP/s = {share:.1%} of bf16 matmul peak")
profile = load("profile.json")
if profile:
    print(f"profile: {profile['ms_per_step']:.1f} ms per step, GPU busy {profile.get('gpu_busy_share', 0):.0%}")
print("eval128:", json.dumps(load("eval128.json"))[:1500])
EOF
log "done"
