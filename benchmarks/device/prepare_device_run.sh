#!/usr/bin/env bash
# Run HERE (a machine with PyPI), in the repository root, before a device session. Writes two folders that
# git ignores (never committed) and the device tool carries with the working tree (limit 64 MiB in all):
# - .whl/: the Python 3.12 wheels the GPU machine lacks (its image has torch, accelerate, safetensors,
#   tokenizers, huggingface_hub, pandas, pyarrow, scikit-image, ... but not these, or older ones), ~30 MB;
# - .device_shared/fixtures/: a copy of ../shared/fixtures (the golden mPLUG-Owl2 fixture, ~2 MB), which
#   does not travel by itself; the tests find it through CDBENCH_SHARED.
#   bash benchmarks/device/prepare_device_run.sh
# then: run(command="bash benchmarks/device/run_device_checks.sh", carry=[".whl", ".device_shared"], timeout_s=590)
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in /.whl/ /.device_shared/; do grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
if [ -d ../shared/fixtures ]; then
  rm -rf .device_shared && mkdir -p .device_shared && cp -r ../shared/fixtures .device_shared/fixtures
fi
mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# the versions this project is tested with (pip list of the CPU venv); py3-none-any where possible
PACKAGES=(transformers==5.24.0 peft==0.21.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
          kornia-rs==0.2.0 isal==1.9.1 jsonschema==4.26.0 jsonschema-specifications referencing rpds-py
          colour-science==0.4.7 hjson==3.1.0)
for pkg in "${PACKAGES[@]}"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl "$pkg"
done
# DeepSpeed ships an sdist only: build its (pure-Python) wheel here; its ops compile there with nvcc if needed
python3 -m pip wheel -q --no-deps -w .whl deepspeed==0.19.8
du -sh .whl .device_shared 2>/dev/null || true
