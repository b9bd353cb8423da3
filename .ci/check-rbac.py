#!/usr/bin/env python3
"""Checks that rendered RBAC allows every Kubernetes API call the controller made.

    check-rbac.py RENDERED.yaml API_CALLS.json [--service-account NS/NAME]
                  [--show-unused | --fail-on-unused]

RENDERED.yaml: the chart's or the kustomization's output (every document is read; the
Roles, ClusterRoles and their bindings matter). API_CALLS.json: a JSON list of calls seen
at the emulated API server:

    {"group": "tagbinder.io", "resource": "resourcetagbindings", "subresource": "status",
     "verb": "patch", "namespace": "team-web", "name": "web-api-groups"}

group "" is the core group; subresource, namespace and name may be null or absent.
namespace null means a cluster-wide call (a list or watch across namespaces) or a call on a
cluster-scoped resource: only a ClusterRoleBinding grants those. name matters only for
rules with resourceNames; a call without a name is then allowed with a note.

The subject is the only ServiceAccount in RENDERED.yaml, or --service-account. Exit 0 when
every call is allowed (silent unless a note applies), 1 with the denied calls and what is
granted. --show-unused lists the granted verbs that no call used (least privilege: each is
either a call the tests do not exercise or a grant to remove); --fail-on-unused fails on them.
"""

import argparse
import json
import sys

import yaml

VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}


def load_documents(path):
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if isinstance(doc, dict)]


def find_subject(documents, wanted):
    if wanted:
        namespace, _, name = wanted.partition("/")
        if not name:
            sys.exit(f"--service-account must be NAMESPACE/NAME, not {wanted!r}")
        return namespace, name
    accounts = [d for d in documents if d.get("kind") == "ServiceAccount"]
    if len(accounts) != 1:
        names = [account_key(d) for d in accounts]
        sys.exit(
            f"expected exactly one ServiceAccount in the rendered manifests, found {names}; "
            "name one with --service-account NAMESPACE/NAME"
        )
    return account_key(accounts[0])


def account_key(document):
    metadata = document.get("metadata") or {}
    return metadata.get("namespace") or "default", metadata["name"]


def binds_subject(binding, subject):
    namespace, name = subject
    for entry in binding.get("subjects") or []:
        kind = entry.get("kind")
        if kind == "ServiceAccount":
            entry_namespace = entry.get("namespace") or (binding.get("metadata") or {}).get("namespace")
            if entry.get("name") == name and entry_namespace == namespace:
                return True
        elif kind == "Group" and entry.get("name") in (
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ):
            return True
    return False


class Grant:
    """One rule, bound to the subject, in one namespace (None: every namespace)."""

    def __init__(self, rule, scope, origin):
        self.rule = rule
        self.scope = scope
        self.origin = origin
        self.used = set()

    def allows(self, call):
        """None when it does not apply; else a note (possibly empty) about the match."""
        rule = self.rule
        call_namespace = call.get("namespace")
        if self.scope is not None and call_namespace != self.scope:
            return None
        if not matches(rule.get("apiGroups") or [], call.get("group") or ""):
            return None
        if not matches(rule.get("verbs") or [], call["verb"]):
            return None
        if not resource_matches(rule.get("resources") or [], call["resource"], call.get("subresource")):
            return None
        names = rule.get("resourceNames")
        if names:
            if call["verb"] in ("create", "list", "watch", "deletecollection") and not call.get("name"):
                return None
            if call.get("name") is None:
                return f"allowed only for resourceNames {names}; the call has no recorded name"
            if call["name"] not in names:
                return None
        return ""

    def describe(self):
        where = "cluster-wide" if self.scope is None else f"namespace {self.scope}"
        return f"{self.origin} ({where}): {compact(self.rule)}"


def matches(allowed, value):
    return "*" in allowed or value in allowed


def resource_matches(allowed, resource, subresource):
    wanted = f"{resource}/{subresource}" if subresource else resource
    if "*" in allowed or wanted in allowed:
        return True
    if subresource:
        return f"*/{subresource}" in allowed or f"{resource}/*" in allowed
    return False


def compact(rule):
    parts = [f"{key}={rule[key]}" for key in ("apiGroups", "resources", "resourceNames", "verbs") if rule.get(key)]
    return " ".join(parts)


def grants_of(documents, subject):
    roles = {}
    for document in documents:
        kind = document.get("kind")
        metadata = document.get("metadata") or {}
        if kind == "ClusterRole":
            roles[("ClusterRole", None, metadata["name"])] = document
        elif kind == "Role":
            roles[("Role", metadata.get("namespace") or "default", metadata["name"])] = document
    grants, problems = [], []
    for binding in documents:
        kind = binding.get("kind")
        if kind not in ("RoleBinding", "ClusterRoleBinding") or not binds_subject(binding, subject):
            continue
        metadata = binding.get("metadata") or {}
        reference = binding.get("roleRef") or {}
        binding_namespace = (metadata.get("namespace") or "default") if kind == "RoleBinding" else None
        role_namespace = binding_namespace if reference.get("kind") == "Role" else None
        role = roles.get((reference.get("kind"), role_namespace, reference.get("name")))
        origin = f"{kind} {metadata['name']} -> {reference.get('kind')} {reference.get('name')}"
        if role is None:
            problems.append(f"{origin}: the role is not in the rendered manifests")
            continue
        if kind == "ClusterRoleBinding" and reference.get("kind") != "ClusterRole":
            problems.append(f"{origin}: a ClusterRoleBinding must reference a ClusterRole")
            continue
        for rule in role.get("rules") or []:
            grants.append(Grant(rule, binding_namespace, origin))
    return grants, problems


def load_calls(path):
    with open(path, encoding="utf-8") as handle:
        calls = json.load(handle)
    if not isinstance(calls, list):
        sys.exit(f"{path}: expected a JSON list of calls")
    unique = {}
    for index, call in enumerate(calls):
        missing = [key for key in ("resource", "verb") if not call.get(key)]
        if missing or "group" not in call:
            sys.exit(f"{path}: call #{index} lacks {missing or ['group']}: {call}")
        if call["verb"] not in VERBS:
            sys.exit(f"{path}: call #{index} has an unknown verb {call['verb']!r}")
        key = tuple(call.get(k) for k in ("group", "resource", "subresource", "verb", "namespace", "name"))
        unique.setdefault(key, call)
    return list(unique.values())


def describe_call(call):
    group = call.get("group") or "core"
    resource = call["resource"] + (f"/{call['subresource']}" if call.get("subresource") else "")
    where = f"namespace {call['namespace']}" if call.get("namespace") else "cluster-wide"
    name = f" {call['name']}" if call.get("name") else ""
    return f"{call['verb']} {group} {resource}{name} ({where})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rendered")
    parser.add_argument("api_calls")
    parser.add_argument("--service-account", help="NAMESPACE/NAME of the controller's ServiceAccount")
    parser.add_argument("--label", help="how to name the rendered manifests in messages (default: the path)")
    parser.add_argument("--show-unused", action="store_true", help="list granted verbs that no call used")
    parser.add_argument("--fail-on-unused", action="store_true", help="fail when a granted verb is never used")
    args = parser.parse_args()

    documents = load_documents(args.rendered)
    subject = find_subject(documents, args.service_account)
    grants, problems = grants_of(documents, subject)
    calls = load_calls(args.api_calls)

    denied, notes = [], []
    for call in calls:
        allowed = False
        for grant in grants:
            note = grant.allows(call)
            if note is None:
                continue
            allowed = True
            grant.used.add(call["verb"])
            if note:
                notes.append(f"{describe_call(call)}: {note}")
            break
        if not allowed:
            denied.append(call)

    unused = []
    for grant in grants:
        for verb in grant.rule.get("verbs") or []:
            if verb not in grant.used and verb != "*":
                unused.append(f"{verb} from {grant.describe()}")

    subject_text = f"ServiceAccount {subject[0]}/{subject[1]}"
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if denied:
        print(f"RBAC of {args.label or args.rendered} denies {len(denied)} of {len(calls)} distinct calls of {subject_text}:", file=sys.stderr)
        for call in denied:
            print(f"  - {describe_call(call)}", file=sys.stderr)
        print(f"granted to {subject_text}:", file=sys.stderr)
        for grant in grants:
            print(f"  + {grant.describe()}", file=sys.stderr)
    if unused and (args.show_unused or args.fail_on_unused):
        label = "error" if args.fail_on_unused else "warning"
        print(f"{label}: granted but never called ({len(unused)}):", file=sys.stderr)
        for entry in unused:
            print(f"  ? {entry}", file=sys.stderr)
    if denied or problems or (unused and args.fail_on_unused):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
