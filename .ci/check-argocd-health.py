#!/usr/bin/env python3
"""Runs deploy/argocd/health.lua on the cases of deploy/argocd/health_test.yaml, as Argo CD
does (global `obj`, the script's `return hs`, no os/io), on Lua 5.1 (gopher-lua's dialect)
and Lua 5.4, and checks that deploy/argocd/argocd-cm.yaml carries the script verbatim."""

import os
import sys

import yaml
from lupa import lua51, lua54

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "argocd")
KINDS = ("ResourceTagBinding", "TagProvider")


def to_lua(runtime, value):
    if isinstance(value, dict):
        return runtime.table_from({k: to_lua(runtime, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


def health(module, script, document):
    runtime = module.LuaRuntime(register_eval=False)
    lua_globals = runtime.globals()
    for unsafe in ("os", "io", "require", "dofile", "loadfile", "package", "debug"):
        lua_globals[unsafe] = None
    lua_globals.obj = to_lua(runtime, document)
    result = runtime.execute(script)
    return {"status": result["status"], "message": result["message"]}


def main():
    with open(os.path.join(ROOT, "health.lua"), encoding="utf-8") as handle:
        script = handle.read()
    with open(os.path.join(ROOT, "health_test.yaml"), encoding="utf-8") as handle:
        cases = yaml.safe_load(handle)["tests"]
    failures = []
    for case in cases:
        with open(os.path.join(ROOT, case["inputPath"]), encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
        expected = {"status": case["healthStatus"]["status"], "message": case["healthStatus"].get("message")}
        for module in (lua51, lua54):
            try:
                got = health(module, script, document)
            except Exception as error:  # a Lua error is a failed case, with its message
                got = {"error": str(error)}
            if got != expected:
                failures.append(f"{case['inputPath']} on Lua {module.LUA_VERSION[0]}.{module.LUA_VERSION[1]}: expected {expected}, got {got}")
    with open(os.path.join(ROOT, "argocd-cm.yaml"), encoding="utf-8") as handle:
        data = yaml.safe_load(handle)["data"]
    for kind in KINDS:
        key = f"resource.customizations.health.tagbinder.io_{kind}"
        if data.get(key) != script:
            failures.append(f"argocd-cm.yaml: {key} is missing or differs from health.lua")
    for failure in failures:
        print(f"argocd health: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
