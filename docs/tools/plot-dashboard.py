#!/usr/bin/env python3
"""Draws the panels of deploy/grafana/tagbinder.json from real Prometheus data, as a PNG for
docs/src/images/dashboard.png (the observability page). The data comes from the end-to-end
scenario with a real Prometheus scraping `tagbinder run`:

    TAGBINDER_DASHBOARD_DATA=/tmp/dashboard-data.json \\
        cargo test --test controller_e2e -- a_real_prometheus
    python3 -m venv /tmp/plot && /tmp/plot/bin/pip install matplotlib==3.9.2
    /tmp/plot/bin/python docs/tools/plot-dashboard.py /tmp/dashboard-data.json docs/src/images/dashboard.png

Each panel's queries are plotted over the recorded minutes, one line per series, labelled by
the panel's legend format.
"""

import json
import math
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

UNITS = {"reqps": "per second", "s": "seconds", "bytes": "MiB", "short": ""}


def legend(fmt, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip() or "value"


def main():
    data_path, out_path = sys.argv[1:3]
    with open(data_path, encoding="utf-8") as handle:
        recorded = json.load(handle)
    with open("deploy/grafana/tagbinder.json", encoding="utf-8") as handle:
        dashboard = json.load(handle)
    panels = dashboard["panels"]
    by_expr = {}
    for panel in panels:
        for target in panel["targets"]:
            by_expr[target["expr"].replace("$job", "tagbinder")] = (panel, target)
    start = min(float(v[0]) for r in recorded for s in r["result"] for v in s["values"])
    columns = 2
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(13, 3.1 * rows), constrained_layout=True)
    axes = {panel["id"]: axes[i // columns][i % columns] for i, panel in enumerate(panels)}
    for entry in recorded:
        panel, target = by_expr[entry["expr"]]
        axis = axes[panel["id"]]
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        for series in entry["result"]:
            xs = [(float(t) - start) / 60 for t, _ in series["values"]]
            ys = [float(v) for _, v in series["values"]]
            if unit == "bytes":
                ys = [y / 2**20 for y in ys]
            axis.plot(xs, ys, label=legend(target["legendFormat"], series["metric"]), linewidth=1.4)
        axis.set_title(panel["title"], fontsize=11, loc="left")
        axis.set_ylabel(UNITS.get(unit, unit), fontsize=9)
        axis.set_xlabel("minutes", fontsize=9)
        axis.grid(alpha=0.3)
    for axis in axes.values():
        if axis.lines:
            axis.legend(fontsize=7, loc="upper left", ncol=2)
    figure.suptitle("tagbinder dashboard: the panels' queries on a real Prometheus scraping tagbinder run", fontsize=12)
    figure.savefig(out_path, dpi=80)


if __name__ == "__main__":
    main()
