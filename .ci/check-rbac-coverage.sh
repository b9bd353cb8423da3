#!/usr/bin/env bash
# Checks that the chart's RBAC (and deploy/manifests') allows every Kubernetes API call the
# controller made in the end-to-end tests.
#
#   .ci/check-rbac-coverage.sh [API_CALLS.json] [helm template args...]
#
# API_CALLS.json (default target/api-calls.json): the calls recorded by the emulated API
# server (format: .ci/check-rbac.py). The chart is rendered into the release namespace
# $RELEASE_NAMESPACE (default tagbinder-system, which must be the controller's POD_NAMESPACE
# in the test) with the given helm args (default: --set leaderElection.enabled=true). The
# kustomization is checked too unless the helm args select namespaced mode. Quiet on success.
set -euo pipefail
cd "$(dirname "$0")/.."

CALLS="${1:-target/api-calls.json}"
shift || true
if [ "$#" -eq 0 ]; then
  set -- --set leaderElection.enabled=true
fi
RELEASE_NAMESPACE="${RELEASE_NAMESPACE:-tagbinder-system}"
if [ ! -s "$CALLS" ]; then
  echo "error: $CALLS is missing or empty: the end-to-end controller test writes it" >&2
  exit 1
fi

TOOLS="${TAGBINDER_TOOLS:-$PWD/target/ci-tools}"
bash .ci/install-tools.sh
export PATH="$TOOLS/bin:$PATH" PYTHONPATH="$TOOLS/py"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

helm template tagbinder deploy/helm/tagbinder --namespace "$RELEASE_NAMESPACE" "$@" >"$OUT/chart.yaml"
python3 .ci/check-rbac.py "$OUT/chart.yaml" "$CALLS" --label "the chart (helm template -n $RELEASE_NAMESPACE $*)"
case " $* " in
  *watchNamespace=*) ;;
  *)
    if [ "$RELEASE_NAMESPACE" = tagbinder-system ]; then
      kubectl kustomize deploy/manifests >"$OUT/manifests.yaml"
      python3 .ci/check-rbac.py "$OUT/manifests.yaml" "$CALLS" --label deploy/manifests
    fi
    ;;
esac
