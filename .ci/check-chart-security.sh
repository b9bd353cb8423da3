#!/usr/bin/env bash
# What users' own tools say about what they install: checkov and `kubernetes-validate --strict`
# on the Helm chart rendered with its defaults and with every option on, and on the
# kustomization's output. Fails on any checkov finding that the manifests do not skip with a
# reason (`checkov.io/skipN: CHECK=reason` on the object), on a skip without a reason, and on
# any object or warning from kubernetes-validate but the one explained below. Needs no
# cluster; checkov runs offline (--skip-download). Quiet on success.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${TAGBINDER_TOOLS:-$PWD/target/ci-tools}"
bash .ci/install-tools.sh
export PATH="$TOOLS/bin:$PATH" PYTHONPATH="$TOOLS/py"

CHART=deploy/helm/tagbinder
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

helm template tagbinder "$CHART" --namespace tagbinder-system >"$OUT/chart-defaults.yaml"
helm template tagbinder "$CHART" --namespace tagbinder-system \
  --set replicas=2 --set watchNamespace=team-web --set networkPolicy.enabled=true \
  --set metrics.serviceMonitor.enabled=true --set podDisruptionBudget.enabled=true \
  --set metrics.prometheusRule.enabled=true --set metrics.grafanaDashboard.enabled=true \
  --set image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000 \
  >"$OUT/chart-everything.yaml"
kubectl kustomize deploy/manifests >"$OUT/kustomize.yaml"

status=0
for rendered in "$OUT"/*.yaml; do
  name="$(basename "$rendered" .yaml)"
  # NB: checkov exits 1 on failed checks; its JSON report is read either way.
  (cd "$OUT" && "$TOOLS/checkov/bin/checkov" --file "$(basename "$rendered")" --framework kubernetes \
    --skip-download --output json) >"$OUT/$name.checkov.json" 2>"$OUT/$name.checkov.err" || true
  python3 - "$name" "$OUT/$name.checkov.json" "$OUT/$name.checkov.err" <<'PY' || status=1
import json, sys

name, report_path, errors_path = sys.argv[1:]
try:
    with open(report_path, encoding="utf-8") as handle:
        report = json.load(handle)
except (OSError, ValueError) as error:
    sys.stderr.write(f"checkov ({name}) gave no JSON report ({error}):\n")
    sys.stderr.write(open(errors_path, encoding="utf-8").read())
    sys.exit(1)
reports = report if isinstance(report, list) else [report]
problems = []
for part in reports:
    summary = part.get("summary", {})
    if summary.get("parsing_errors"):
        problems.append(f"{summary['parsing_errors']} parsing error(s)")
    if not summary.get("resource_count"):
        problems.append("no resource scanned")
    results = part.get("results", {})
    for check in results.get("failed_checks", []):
        problems.append(f"{check['check_id']} ({check['check_name']}) failed for {check['resource']}")
    for check in results.get("skipped_checks", []):
        reason = ((check.get("check_result") or {}).get("suppress_comment") or "").strip()
        if not reason or reason == "No comment provided":
            problems.append(f"{check['check_id']} is skipped for {check['resource']} without a reason")
for problem in problems:
    print(f"checkov ({name}): {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
  for version in 1.27.0 ""; do
    # NB: a kind without a schema (a custom resource) is a warning, not a failure, in
    # kubernetes-validate. The only ones rendered are the Prometheus Operator's ServiceMonitor
    # and PrometheusRule (monitoring.coreos.com/v1), which Kubernetes' schemas do not include;
    # any other warning
    # fails. The CRDs themselves are CustomResourceDefinitions and are validated.
    if ! python3 -m kubernetes_validate --strict ${version:+--kubernetes-version "$version"} \
      "$rendered" >"$OUT/$name.validate.out" 2>&1; then
      echo "kubernetes-validate --strict ($name${version:+, Kubernetes $version}):" >&2
      cat "$OUT/$name.validate.out" >&2
      status=1
    elif grep -v '^INFO' "$OUT/$name.validate.out" \
      | grep -v "Couldn't find schema for kind ServiceMonitor with api version monitoring.coreos.com/v1" \
      | grep -v "Couldn't find schema for kind PrometheusRule with api version monitoring.coreos.com/v1" \
      | grep -q .; then
      echo "kubernetes-validate --strict ($name${version:+, Kubernetes $version}) warned:" >&2
      grep -v '^INFO' "$OUT/$name.validate.out" >&2
      status=1
    fi
  done
done
exit "$status"
