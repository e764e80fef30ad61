#!/usr/bin/env bash
# Install Debian's prometheus and prometheus-pushgateway (for `pytest -m prometheus`) if missing.
# Idempotent: does nothing when both binaries are on PATH. Only installs; never starts services
# (the tests start their own instances on loopback ports).
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-prometheus: prometheus and prometheus-pushgateway already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "install-prometheus: need root (or sudo) to apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-prometheus: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v prometheus >/dev/null && command -v prometheus-pushgateway >/dev/null
echo "install-prometheus: $(prometheus --version 2>&1 | head -1)"
