#!/usr/bin/env bash
# Runs the Argo CD health check's cases (deploy/argocd) on Lua 5.1 and 5.4. Quiet on success.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${TAGBINDER_TOOLS:-$PWD/target/ci-tools}"
bash .ci/install-tools.sh
PYTHONPATH="$TOOLS/py" python3 .ci/check-argocd-health.py
