#!/usr/bin/env bash
# Checks deploy/: the Helm chart (lint, renders with default and non-default values, values
# schema refusals), the kustomization, the CRD copies, the Argo CD health check, and the RBAC
# coverage checker on hand-made API calls. Needs no cluster. Quiet on success.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${TAGBINDER_TOOLS:-$PWD/target/ci-tools}"
bash .ci/install-tools.sh
export PATH="$TOOLS/bin:$PATH" PYTHONPATH="$TOOLS/py"

CHART=deploy/helm/tagbinder
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

lint="$(helm lint --strict "$CHART" 2>&1)" || { echo "$lint" >&2; exit 1; }

render() { # NAME NAMESPACE [helm args...]
  local name="$1" namespace="$2"
  shift 2
  if ! helm template tagbinder "$CHART" --namespace "$namespace" "$@" >"$OUT/$name.yaml" 2>"$OUT/$name.err"; then
    echo "packaging: helm template ($name) failed:" >&2
    cat "$OUT/$name.err" >&2
    exit 1
  fi
}
render default tagbinder-system
render leader-election tagbinder-system --set leaderElection.enabled=true
render replicas-2 tagbinder-system --set replicas=2
render namespaced tagbinder-system --set watchNamespace=team-web
render credentials-namespace tagbinder-system --set credentialsNamespace=cloud-credentials
render namespaced-in-place team-web --set watchNamespace=team-web
render everything tagbinder-system --set replicas=2 --set watchNamespace=team-web \
  --set metrics.serviceMonitor.enabled=true --set podDisruptionBudget.enabled=true \
  --set metrics.prometheusRule.enabled=true --set metrics.grafanaDashboard.enabled=true \
  --set metrics.prometheusRule.runbookBaseUrl=https://docs.example/operations/alerts.html \
  --set crds.install=false --set networkPolicy.enabled=true \
  --set image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000

refuse() { # REASON EXPECTED [helm args...]: values the chart must refuse, with EXPECTED
  # (a fixed string) in helm's message, so that an unrelated failure (a template error, a
  # missing file) does not pass for the refusal.
  local reason="$1" expected="$2"
  shift 2
  if helm template tagbinder "$CHART" "$@" >/dev/null 2>"$OUT/refused.err"; then
    echo "packaging: helm template accepted $reason ($*)" >&2
    exit 1
  fi
  if ! grep -qF -- "$expected" "$OUT/refused.err"; then
    echo "packaging: helm template refused $reason ($*), but not with \"$expected\":" >&2
    cat "$OUT/refused.err" >&2
    exit 1
  fi
}
refuse "an unknown top-level value" "additional properties 'replica' not allowed" --set replica=2
refuse "an unknown nested value" "at '/metrics/serviceMonitor': additional properties 'enable' not allowed" \
  --set metrics.serviceMonitor.enable=true
refuse "an invalid watchNamespace" "'Team_Web' does not match pattern" --set watchNamespace=Team_Web
refuse "an invalid credentialsNamespace" "'Cloud_Creds' does not match pattern" --set credentialsNamespace=Cloud_Creds
refuse "an unknown logFormat" "at '/logFormat': value must be one of 'json', 'text'" --set logFormat=yaml
refuse "a ServiceMonitor without the metrics Service" \
  "metrics.serviceMonitor.enabled needs metrics.service.enabled" \
  --set metrics.serviceMonitor.enabled=true --set metrics.service.enabled=false
refuse "a runbook base URL that is not a URL" "at '/metrics/prometheusRule/runbookBaseUrl'" \
  --set metrics.prometheusRule.runbookBaseUrl=docs/alerts
refuse "an image digest that is not sha256" "at '/image/digest'" --set image.digest=latest
refuse "a NetworkPolicy egress port out of range" "at '/networkPolicy/egressPorts/0'" \
  --set networkPolicy.enabled=true --set 'networkPolicy.egressPorts={70000}'

kubectl kustomize deploy/manifests >"$OUT/manifests.yaml"

python3 .ci/check-packaging.py "$OUT"

# The RBAC coverage checker on the calls the controller makes (DESIGN: tagbinder run), by
# mode; and the calls namespaced mode must refuse are each refused.
python3 .ci/check-rbac.py "$OUT/leader-election.yaml" .ci/rbac-fixtures/cluster-mode.json --fail-on-unused
python3 .ci/check-rbac.py "$OUT/manifests.yaml" .ci/rbac-fixtures/cluster-mode.json --fail-on-unused
helm template tagbinder "$CHART" --namespace tagbinder-system \
  --set watchNamespace=team-web --set leaderElection.enabled=true >"$OUT/namespaced-le.yaml"
python3 .ci/check-rbac.py "$OUT/namespaced-le.yaml" .ci/rbac-fixtures/namespaced-mode.json --fail-on-unused
refused="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' .ci/rbac-fixtures/namespaced-mode-refused.json)"
if python3 .ci/check-rbac.py "$OUT/namespaced-le.yaml" .ci/rbac-fixtures/namespaced-mode-refused.json 2>"$OUT/refused.err" \
  || ! grep -q "denies $refused of $refused distinct calls" "$OUT/refused.err"; then
  echo "packaging: namespaced RBAC allows a call it must refuse:" >&2
  cat "$OUT/refused.err" >&2
  exit 1
fi

bash .ci/check-argocd-health.sh
