#!/usr/bin/env bash
# The shipped alerts and dashboard, checked by Prometheus's own tools (issue 25, item 4):
# - `promtool check rules` on deploy/prometheus/alerts.yaml (and the chart's copy, which
#   .ci/check-packaging.py compares with it);
# - `promtool test rules` on tests/prometheus/alerts.test.yaml: every alert firing and not;
# - every query of deploy/grafana/tagbinder.json parses in Prometheus (each is checked as a
#   recording rule by `promtool check rules`), and names only metrics that tagbinder exports
#   (those of docs/src/reference/metrics.md, which a unit test holds to /metrics).
# The end-to-end scenario with a real Prometheus is in tests/controller_e2e/prometheus.rs.
# Installs Debian's prometheus package (promtool and the server) when promtool is missing.
# Quiet on success.
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/install-prometheus.sh

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

promtool check rules deploy/prometheus/alerts.yaml >"$OUT/check.out" 2>&1 || { cat "$OUT/check.out" >&2; exit 1; }
promtool test rules tests/prometheus/alerts.test.yaml >"$OUT/test.out" 2>&1 || { cat "$OUT/test.out" >&2; exit 1; }

python3 - deploy/grafana/tagbinder.json docs/src/reference/metrics.md "$OUT/queries.yaml" <<'PY'
import json, re, sys

dashboard_path, reference_path, rules_path = sys.argv[1:]
with open(dashboard_path, encoding="utf-8") as handle:
    dashboard = json.load(handle)
with open(reference_path, encoding="utf-8") as handle:
    exported = set(re.findall(r"^\| `([a-z_:]+)` \|", handle.read(), re.M))
variables = {v["name"]: v.get("query", "") for v in dashboard.get("templating", {}).get("list", [])}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}


def metric_names(expr):
    """Metric names an expression selects: identifiers that are neither functions, keywords,
    label names (in braces or grouping clauses) nor durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        name = match.group(0)
        rest = expr[match.end():].lstrip()
        if name in KEYWORDS or rest.startswith("("):
            continue
        names.add(name)
    return names


def family(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return name[: -len(suffix)]
    return name


problems, rules = [], []
for panel in dashboard["panels"]:
    targets = panel.get("targets") or []
    if not targets:
        problems.append(f"panel {panel.get('title')!r} has no query")
    for target in targets:
        expr = target["expr"]
        for name, value in variables.items():
            expr = expr.replace(f"${name}", value)
        rules.append({"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": expr})
        for name in sorted(metric_names(expr)):
            if family(name) not in exported:
                problems.append(f"panel {panel.get('title')!r} queries {name}, which tagbinder does not export")
with open(rules_path, "w", encoding="utf-8") as handle:
    json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, handle)
for problem in problems:
    print(f"dashboard: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
promtool check rules "$OUT/queries.yaml" >"$OUT/queries.out" 2>&1 || {
  echo "dashboard: a query of deploy/grafana/tagbinder.json does not parse:" >&2
  cat "$OUT/queries.out" >&2
  exit 1
}
