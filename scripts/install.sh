#!/usr/bin/env bash
# Sets up a fresh machine: Debian packages, a virtualenv with inferplane and its test tools, and the
# Kubernetes binaries the local control plane runs (demo, e2e suite; built from Go modules once, then
# cached by version).
set -euo pipefail
cd "$(dirname "$0")/.."

# etcd-server: the e2e control plane; wrk + haproxy: bench/router.py's load generator and baseline.
APT_PACKAGES=(etcd-server wrk haproxy)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install: Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "install: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

echo "install: Kubernetes binaries for the demo and the e2e tests (the first build takes several minutes)"
.venv/bin/inferplane cluster build
echo "install: done. Try: .venv/bin/inferplane inject -f examples/deployment.yaml --catalog examples/catalog"
