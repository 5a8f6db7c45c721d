#!/usr/bin/env bash
# Run ON THE GPU MACHINE (device tool), in the repository root: every GPU acceptance check of the open
# issues in one call, each step bounded so the whole run ends inside BUDGET seconds (default 540).
#   bash benchmarks/device/prepare_device_run.sh          # here first: wheels + fixtures to carry
#   run(command="bash benchmarks/device/run_device_checks.sh", carry=[".whl", ".device_shared"], timeout_s=590)
# Results come back under $OUT (at most 8 files): device_checks.log (everything printed),
# bench_mllm_gpu.json, bench_finetune_gpu.json, bench_cdnet_gpu.json, pytest_gpu.xml. Copy the JSON
# files into benchmarks/results/ (named after the GPU) and commit them.
# Dry run on a CPU machine (plumbing only, tiny models): DRY=1 OUT=/tmp/out bash benchmarks/device/run_device_checks.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:?set OUT to the folder results go to}
BUDGET=${BUDGET:-540}
DRY=${DRY:-0}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
LOG="$OUT/device_checks.log"
mkdir -p "$OUT"
exec > >(tee -a "$LOG") 2>&1

if [ -d .whl ] && [ "$DRY" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
PY=${PY:-python3}
if [ ! -d ../shared ] && [ -d .device_shared ]; then export CDBENCH_SHARED=$PWD/.device_shared; fi

# step NAME MAX_SECONDS COMMAND...: runs COMMAND with a timeout of min(MAX, what is left - 10 s)
step() {
  local name=$1 max=$2; shift 2
  local left=$((BUDGET - SECONDS - 10))
  local t=$(( max < left ? max : left ))
  if [ "$t" -lt 20 ]; then echo "== $name: skipped, $left s left of the budget"; return; fi
  echo "== $name (at ${SECONDS}s, up to ${t}s): $*"
  timeout --kill-after=5 "$t" "$@"
  echo "== $name: exit $? after $SECONDS s in all"
}

echo "== machine"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
$PY - <<'PY'
import importlib, sys
print("python", sys.version.split()[0])
for m in ("torch", "transformers", "peft", "accelerate", "datasets", "cdbench"):
    try:
        mod = importlib.import_module(m)
        print(m, getattr(mod, "__version__", "?"), getattr(mod, "__file__", ""))
    except Exception as e:  # report and go on: a missing package fails its own step below
        print(m, "MISSING", type(e).__name__, e)
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY

if [ "$DRY" = 1 ]; then
  MLLM=(--tiny); FT=(--tiny); CDNET=(--device cpu --size 128 --repeats 1 --e2e-pairs 2)
else
  MLLM=(--device cuda --repeats 2 --batches 16,32,64 --gen-batches 64 --new-tokens 128)
  FT=(--device cuda --steps 4 --warmup 1 --batch-sizes 32)
  CDNET=(--device cuda --repeats 3)
fi
# 1. the GPU tests (issues 3, 5, 6, 8: bf16 / flash / SDPA paths, the recipe on CUDA)
step pytest-gpu 150 $PY -m pytest -q -p no:cacheprovider -m gpu --junitxml "$OUT/pytest_gpu.xml" \
  tests/test_mplug_owl2.py tests/test_mllm_mplug.py tests/test_finetune.py tests/test_cdnet_model.py \
  tests/test_colour_spaces.py tests/test_mllm_sampling.py tests/test_finetune_distributed.py
# 2. issue 6: scoring pairs/s end to end (target >= 120 on one H100), generation tokens/s (>= 1,000)
step bench-mllm 240 $PY benchmarks/bench_mllm.py "${MLLM[@]}" --out "$OUT/bench_mllm_gpu.json"
# 3. issue 8: LoRA training samples/s, peak memory, MFU at the recipe's settings
step bench-finetune 120 $PY benchmarks/bench_finetune.py "${FT[@]}" --out "$OUT/bench_finetune_gpu.json"
# 4. issue 5: CD-Net throughput on the GPU (if time is left)
step bench-cdnet 60 $PY benchmarks/bench_cdnet.py "${CDNET[@]}" --out "$OUT/bench_cdnet_gpu.json"
echo "== done in $SECONDS s; results in $OUT:"; ls -la "$OUT"
