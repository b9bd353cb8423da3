#!/usr/bin/env python3
"""Checks the rendered chart and kustomization (see check-packaging.sh, which renders them
into OUT): every object valid against the Kubernetes API schemas (strict, oldest and newest
supported version), the Deployment's security settings, the RBAC of each mode exactly as
the controller needs it, the CRDs equal to crds/tagbinder.yaml, and the kustomization in
step with the chart.

    check-packaging.py OUT
"""

import os
import sys

import kubernetes_validate
import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
RELEASE_NAMESPACE = "tagbinder-system"
WATCH_NAMESPACE = "team-web"
CREDENTIALS_NAMESPACE = "cloud-credentials"
# NB: the kustomization passes the pod's namespace, which Kubernetes substitutes.
POD_NAMESPACE_ARG = "$(POD_NAMESPACE)"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Files the chart ships that deploy/ also holds for users without Helm: each pair must agree.
CHART_FILE_COPIES = (
    ("deploy/helm/tagbinder/files/prometheus/alerts.yaml", "deploy/prometheus/alerts.yaml"),
    ("deploy/helm/tagbinder/files/grafana/tagbinder.json", "deploy/grafana/tagbinder.json"),
)


def grants(namespace, group, resource, verbs, name=None):
    """Normalized grants: (namespace or "*" for cluster-wide, group, resource, verb, name)."""
    return {(namespace, group, resource, verb, name) for verb in verbs}


def binding_grants(namespace):
    return (
        grants(namespace, "tagbinder.io", "resourcetagbindings", ("get", "list", "watch", "patch"))
        | grants(namespace, "tagbinder.io", "resourcetagbindings/status", ("patch",))
        | grants(namespace, "events.k8s.io", "events", ("create", "patch"))
    )


PROVIDER_GRANTS = (
    grants("*", "tagbinder.io", "tagproviders", ("get", "list", "watch"))
    | grants("*", "tagbinder.io", "tagpolicies", ("list", "watch"))
    | grants("*", "tagbinder.io", "tagpolicies/status", ("patch",))
)
CLUSTER_MODE = (
    binding_grants("*")
    | PROVIDER_GRANTS
    | grants("*", "tagbinder.io", "tagproviders/status", ("patch",))
    | grants("*", "", "namespaces", ("get", "list", "watch"))
)


def credentials_grants(namespace):
    """Secrets: in the credentials namespace only, in every mode."""
    return grants(namespace, "", "secrets", ("get", "list", "watch"))


def lease_grants(release):
    return grants(release, "coordination.k8s.io", "leases", ("create",)) | grants(
        release, "coordination.k8s.io", "leases", ("get", "patch"), "tagbinder-leader"
    )


def namespaced_mode(watch, release):
    expected = (
        binding_grants(watch)
        | PROVIDER_GRANTS
        | grants("*", "", "namespaces", ("get", "list", "watch"), watch)
    )
    return expected


POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


class Rendering:
    def __init__(self, name, path):
        self.name = name
        with open(path, encoding="utf-8") as handle:
            self.documents = [d for d in yaml.safe_load_all(handle) if isinstance(d, dict)]
        self.problems = []

    def fail(self, message):
        self.problems.append(f"{self.name}: {message}")

    def of_kind(self, kind):
        return [d for d in self.documents if d.get("kind") == kind]

    def one(self, kind):
        found = self.of_kind(kind)
        if len(found) != 1:
            self.fail(f"expected one {kind}, found {len(found)}")
            return {}
        return found[0]


def validate(rendering):
    for document in rendering.documents:
        kind, name = document.get("kind"), (document.get("metadata") or {}).get("name")
        namespace = (document.get("metadata") or {}).get("namespace")
        if kind not in CLUSTER_SCOPED and not namespace:
            rendering.fail(f"{kind} {name} has no metadata.namespace")
        if kind in OPERATOR_KINDS:
            continue  # the Prometheus Operator's kinds: no schema among Kubernetes'
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                rendering.fail(f"{kind} {name} is invalid for Kubernetes {version}: {error.message} at {list(error.path)}")
            except kubernetes_validate.SchemaNotFoundError:
                rendering.fail(f"{kind} {name}: no schema for Kubernetes {version}")


def check_deployment(rendering, replicas, leader_election, watch_namespace, credentials_namespace):
    deployment = rendering.one("Deployment")
    if not deployment:
        return
    spec = deployment["spec"]
    if spec.get("replicas") != replicas:
        rendering.fail(f"replicas {spec.get('replicas')}, expected {replicas}")
    if spec.get("strategy", {}).get("type") != "Recreate":
        rendering.fail("the update strategy is not Recreate")
    pod = spec["template"]["spec"]
    if pod.get("securityContext") != POD_SECURITY:
        rendering.fail(f"pod securityContext {pod.get('securityContext')}, expected {POD_SECURITY}")
    accounts = rendering.of_kind("ServiceAccount")
    if accounts and pod.get("serviceAccountName") != accounts[0]["metadata"]["name"]:
        rendering.fail("the pod does not run as the rendered ServiceAccount")
    (container,) = pod["containers"]
    if container.get("securityContext") != CONTAINER_SECURITY:
        rendering.fail(f"container securityContext {container.get('securityContext')}, expected {CONTAINER_SECURITY}")
    args = container.get("args", [])
    expected_args = {"run", "--log-format=json", "--metrics-addr=0.0.0.0:8080"}
    if not expected_args <= set(args) or args[0] != "run":
        rendering.fail(f"args {args} lack {sorted(expected_args - set(args))} or do not start with run")
    if ("--leader-election" in args) != leader_election:
        rendering.fail(f"--leader-election {'missing' if leader_election else 'unexpected'} in {args}")
    namespace_args = [a for a in args if a.startswith("--namespace")]
    expected_namespace = [f"--namespace={watch_namespace}"] if watch_namespace else []
    if namespace_args != expected_namespace:
        rendering.fail(f"namespace args {namespace_args}, expected {expected_namespace}")
    credentials_args = [a for a in args if a.startswith("--credentials-namespace")]
    if credentials_args != [f"--credentials-namespace={credentials_namespace}"]:
        rendering.fail(f"credentials namespace args {credentials_args}, expected --credentials-namespace={credentials_namespace}")
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container.get("env", [])}
    if env.get("POD_NAME") != "metadata.name" or env.get("POD_NAMESPACE") != "metadata.namespace":
        rendering.fail("POD_NAME and POD_NAMESPACE do not come from the downward API")
    ports = container.get("ports", [])
    if [(p.get("name"), p.get("containerPort")) for p in ports] != [("metrics", 8080)]:
        rendering.fail(f"ports {ports}, expected one named metrics on 8080")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        if (get.get("path"), get.get("port")) != (path, "metrics"):
            rendering.fail(f"{probe} is not GET {path} on the metrics port")
    if not container.get("resources", {}).get("requests"):
        rendering.fail("the container has no resource requests")
    services = [s for s in rendering.of_kind("Service") if s["spec"].get("selector")]
    selector = spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in selector.items()):
        rendering.fail("the pod template does not match the Deployment's selector")
    for service in services:
        if any(labels.get(k) != v for k, v in service["spec"]["selector"].items()):
            rendering.fail(f"Service {service['metadata']['name']} does not select the pods")


def rbac_grants(rendering):
    """Normalized grants of the rendered ServiceAccount."""
    (account,) = rendering.of_kind("ServiceAccount") or [{"metadata": {"name": "?", "namespace": "?"}}]
    subject = (account["metadata"]["name"], account["metadata"].get("namespace"))
    roles = {}
    for kind in ("Role", "ClusterRole"):
        for role in rendering.of_kind(kind):
            roles[(kind, role["metadata"].get("namespace"), role["metadata"]["name"])] = role
    result = set()
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in rendering.of_kind(kind):
            subjects = {(s.get("name"), s.get("namespace")) for s in binding.get("subjects", []) if s.get("kind") == "ServiceAccount"}
            if subject not in subjects:
                rendering.fail(f"{kind} {binding['metadata']['name']} binds another subject: {subjects}")
                continue
            namespace = binding["metadata"].get("namespace") if kind == "RoleBinding" else None
            reference = binding["roleRef"]
            role_namespace = namespace if reference["kind"] == "Role" else None
            role = roles.get((reference["kind"], role_namespace, reference["name"]))
            if role is None:
                rendering.fail(f"{kind} {binding['metadata']['name']} references a missing {reference['kind']} {reference['name']}")
                continue
            for rule in role.get("rules", []):
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        for verb in rule.get("verbs", []):
                            for name in rule.get("resourceNames") or [None]:
                                result.add((namespace or "*", group, resource, verb, name))
    return result


def check_rbac(rendering, expected):
    got = rbac_grants(rendering)
    for grant in sorted(got - expected, key=str):
        rendering.fail(f"RBAC grants more than the controller needs: {grant}")
    for grant in sorted(expected - got, key=str):
        rendering.fail(f"RBAC lacks what the controller needs: {grant}")


AGGREGATES = {f"rbac.authorization.k8s.io/aggregate-to-{role}" for role in ("admin", "edit", "view")}


def bound_roles(rendering):
    """The (kind, namespace, name) of every role that a binding grants to someone."""
    bound = set()
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in rendering.of_kind(kind):
            reference = binding["roleRef"]
            namespace = binding["metadata"].get("namespace") if reference["kind"] == "Role" else None
            bound.add((reference["kind"], namespace, reference["name"]))
    return bound


def check_user_roles(rendering):
    """The user-facing roles (aggregated into admin, edit and view) are there, and none of
    them, nor any other role the controller is not bound to, may write
    resourcetagbindings/status: status is the ownership record, and the controller prunes what
    it says was applied (issue 20). Wildcards that would cover it count as granting it."""
    bound = bound_roles(rendering)
    aggregated = set()
    for kind in ("Role", "ClusterRole"):
        for role in rendering.of_kind(kind):
            metadata = role["metadata"]
            labels = metadata.get("labels") or {}
            aggregated |= {label for label in AGGREGATES if labels.get(label) == "true"}
            if (kind, metadata.get("namespace"), metadata["name"]) in bound and not AGGREGATES & labels.keys():
                continue
            for rule in role.get("rules", []):
                groups = rule.get("apiGroups", [])
                resources = rule.get("resources", [])
                if not ({"tagbinder.io", "*"} & set(groups)):
                    continue
                covering = {"resourcetagbindings/status", "resourcetagbindings/*", "*/status", "*", "*/*"}
                if covering & set(resources):
                    rendering.fail(f"the user-facing {kind} {metadata['name']} grants resourcetagbindings/status "
                                   f"({resources}, {rule.get('verbs')}): only the controller may write the ownership record")
    for label in sorted(AGGREGATES - aggregated):
        rendering.fail(f"no user-facing role carries {label}")


def strip_release_metadata(crd):
    crd = yaml.safe_load(yaml.safe_dump(crd))
    metadata = crd["metadata"]
    metadata.pop("labels", None)
    metadata.pop("annotations", None)
    return crd


def check_crds(rendering, expected_crds, installed, annotation):
    crds = rendering.of_kind("CustomResourceDefinition")
    if not installed:
        if crds:
            rendering.fail("CRDs rendered although crds.install is false")
        return
    by_name = lambda crd: crd["metadata"]["name"]  # noqa: E731 (kustomize reorders)
    if sorted((strip_release_metadata(c) for c in crds), key=by_name) != sorted(expected_crds, key=by_name):
        rendering.fail("the rendered CRDs differ from crds/tagbinder.yaml (beyond labels and annotations)")
    key, value = annotation
    for crd in crds:
        if crd["metadata"].get("annotations", {}).get(key) != value:
            rendering.fail(f"CRD {crd['metadata']['name']} lacks the annotation {key}: {value}")


def check_copies(problems):
    with open(os.path.join(ROOT, "crds", "tagbinder.yaml"), encoding="utf-8") as handle:
        source = handle.read()
    for copy in ("deploy/helm/tagbinder/files/crds/tagbinder.yaml", "deploy/manifests/crds/tagbinder.yaml"):
        with open(os.path.join(ROOT, copy), encoding="utf-8") as handle:
            if handle.read() != source:
                problems.append(f"{copy} differs from crds/tagbinder.yaml: cp crds/tagbinder.yaml {copy}")
    for chart_file, copy in CHART_FILE_COPIES:
        with open(os.path.join(ROOT, chart_file), encoding="utf-8") as a, open(os.path.join(ROOT, copy), encoding="utf-8") as b:
            if a.read() != b.read():
                problems.append(f"{copy} differs from {chart_file}: cp {chart_file} {copy}")
    return [d for d in yaml.safe_load_all(source) if d]


def check_observability(rendering):
    """The PrometheusRule carries the rules of files/prometheus/alerts.yaml, each with its
    runbook and the runbook_url built from runbookBaseUrl; the dashboard's ConfigMap carries
    files/grafana/tagbinder.json with the sidecar's label."""
    with open(os.path.join(ROOT, CHART_FILE_COPIES[0][0]), encoding="utf-8") as handle:
        shipped = yaml.safe_load(handle)
    rule = rendering.one("PrometheusRule")
    groups = rule.get("spec", {}).get("groups", [])
    alerts = [r for g in groups for r in g.get("rules", [])]
    expected = [r["alert"] for g in shipped["groups"] for r in g["rules"]]
    if [a.get("alert") for a in alerts] != expected:
        rendering.fail(f"PrometheusRule alerts {[a.get('alert') for a in alerts]}, expected {expected}")
    for alert in alerts:
        annotations = alert.get("annotations", {})
        anchor = alert["alert"].lower()
        if annotations.get("runbook") != f"docs/src/operations/alerts.md#{anchor}":
            rendering.fail(f"{alert['alert']}: runbook {annotations.get('runbook')}")
        if annotations.get("runbook_url") != f"https://docs.example/operations/alerts.html#{anchor}":
            rendering.fail(f"{alert['alert']}: runbook_url {annotations.get('runbook_url')}")
    dashboards = [c for c in rendering.of_kind("ConfigMap") if "tagbinder.json" in c.get("data", {})]
    if len(dashboards) != 1:
        rendering.fail(f"{len(dashboards)} dashboard ConfigMap(s), expected 1")
        return
    with open(os.path.join(ROOT, CHART_FILE_COPIES[1][0]), encoding="utf-8") as handle:
        if dashboards[0]["data"]["tagbinder.json"] != handle.read().rstrip("\n"):
            rendering.fail("the dashboard ConfigMap differs from files/grafana/tagbinder.json")
    if dashboards[0]["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
        rendering.fail("the dashboard ConfigMap lacks the sidecar's label grafana_dashboard: \"1\"")


def check_artifacthub(problems, expected_crds):
    """Chart.yaml's Artifact Hub annotations parse; the CRDs they list are the chart's, each
    example is of a listed kind and version, the image is appVersion's, every change has a
    known kind."""
    with open(os.path.join(ROOT, "deploy/helm/tagbinder/Chart.yaml"), encoding="utf-8") as handle:
        chart = yaml.safe_load(handle)
    annotations = chart.get("annotations") or {}
    parsed = {}
    for key in ("crds", "crdsExamples", "images", "links", "changes"):
        value = annotations.get(f"artifacthub.io/{key}")
        if value is None:
            problems.append(f"Chart.yaml lacks the annotation artifacthub.io/{key}")
            return
        parsed[key] = yaml.safe_load(value)
    if annotations.get("artifacthub.io/operator") != "true":
        problems.append("Chart.yaml: artifacthub.io/operator is not \"true\"")
    crds = {(c["spec"]["names"]["kind"], c["metadata"]["name"], v["name"]) for c in expected_crds for v in c["spec"]["versions"]}
    listed = {(c.get("kind"), c.get("name"), c.get("version")) for c in parsed["crds"]}
    if listed != crds:
        problems.append(f"Chart.yaml: artifacthub.io/crds lists {sorted(listed)}, the CRDs are {sorted(crds)}")
    kinds = {(f"tagbinder.io/{version}", kind) for kind, _, version in crds}
    examples = {(e.get("apiVersion"), e.get("kind")) for e in parsed["crdsExamples"]}
    if examples != kinds:
        problems.append(f"Chart.yaml: artifacthub.io/crdsExamples are of {sorted(examples)}, expected one of each of {sorted(kinds)}")
    images = [i.get("image") for i in parsed["images"]]
    with open(os.path.join(ROOT, "deploy/helm/tagbinder/values.yaml"), encoding="utf-8") as handle:
        repository = yaml.safe_load(handle)["image"]["repository"]
    expected_image = f"{repository}:{chart['appVersion']}"
    if images != [expected_image]:
        problems.append(f"Chart.yaml: artifacthub.io/images {images}, expected {expected_image} (the chart's default image)")
    for change in parsed["changes"]:
        if change.get("kind") not in {"added", "changed", "deprecated", "removed", "fixed", "security"} or not change.get("description"):
            problems.append(f"Chart.yaml: artifacthub.io/changes entry {change}")
    for link in parsed["links"]:
        if not str(link.get("url", "")).startswith("https://") or not link.get("name"):
            problems.append(f"Chart.yaml: artifacthub.io/links entry {link}")


def check_gitops(problems):
    """deploy/flux and deploy/argocd parse; the ConfigMap is valid; the operator's Flux
    Kustomization points at a folder of this repository."""
    for folder in ("deploy/flux", "deploy/argocd"):
        for file in sorted(os.listdir(os.path.join(ROOT, folder))):
            if not file.endswith(".yaml"):
                continue
            with open(os.path.join(ROOT, folder, file), encoding="utf-8") as handle:
                for document in yaml.safe_load_all(handle):
                    if document is None or "tests" in document:
                        continue
                    if not all(document.get(k) for k in ("apiVersion", "kind", "metadata")):
                        problems.append(f"{folder}/{file}: a document lacks apiVersion, kind or metadata")
                    elif document["kind"] == "ConfigMap":
                        try:
                            kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)
                        except kubernetes_validate.ValidationError as error:
                            problems.append(f"{folder}/{file}: {error.message}")
                    elif document["kind"] == "Kustomization" and document["spec"]["sourceRef"]["name"] == "tagbinder":
                        if not os.path.isfile(os.path.join(ROOT, document["spec"]["path"], "kustomization.yaml")):
                            problems.append(f"{folder}/{file}: no kustomization.yaml at {document['spec']['path']}")


def strings(node):
    """Every string of a YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def check_release(problems, chart_rendering, manifests):
    """The release pipeline (.github/workflows/release.yml) and what installs its output agree:
    the registry is named once, in the workflow's env; the chart's default image.repository,
    the kustomization's image and the rendered Deployments are that image at the chart's
    appVersion, which is Cargo.toml's version and the chart's version; the workflow builds
    both architectures, and the Dockerfile builds per TARGETARCH (no hard-coded target)."""
    def fail(message):
        problems.append(f"release: {message}")

    workflow_path = os.path.join(ROOT, ".github/workflows/release.yml")
    with open(workflow_path, encoding="utf-8") as f:
        workflow = yaml.safe_load(f)
    env = workflow.get("env", {})
    registry, image, charts = env.get("REGISTRY"), env.get("IMAGE"), env.get("CHART_REPOSITORY")
    if not (registry and image and charts):
        fail(f"{workflow_path}: env must name REGISTRY, IMAGE and CHART_REPOSITORY")
        return
    if not image.startswith(registry + "/") or not charts.startswith(f"oci://{registry}/"):
        fail(f"IMAGE {image} and CHART_REPOSITORY {charts} must be in REGISTRY {registry}")
    for text in strings(workflow.get("jobs", {})):
        if registry in text:
            fail(f"the registry {registry} is named again in a job ({text!r}); use env.REGISTRY, env.IMAGE or env.CHART_REPOSITORY")

    with open(os.path.join(ROOT, "deploy/helm/tagbinder/Chart.yaml"), encoding="utf-8") as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(ROOT, "deploy/helm/tagbinder/values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    with open(os.path.join(ROOT, "deploy/manifests/kustomization.yaml"), encoding="utf-8") as f:
        kustomization = yaml.safe_load(f)
    with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
        cargo_version = next(
            line.split('"')[1] for line in f if line.startswith("version = ")
        )
    version = str(chart.get("appVersion"))
    if not (version == str(chart.get("version")) == cargo_version):
        fail(f"Cargo.toml version {cargo_version}, Chart.yaml version {chart.get('version')} and appVersion {version} must be one version (the release tag)")
    if values["image"]["repository"] != image:
        fail(f"the chart's image.repository {values['image']['repository']} is not the workflow's IMAGE {image}")
    (entry,) = [i for i in kustomization.get("images", []) if i.get("name") == "tagbinder"] or [{}]
    if entry.get("newName") != image or str(entry.get("newTag")) != version:
        fail(f"the kustomization's image {entry.get('newName')}:{entry.get('newTag')} is not {image}:{version}")
    for rendering in (chart_rendering, manifests):
        deployment = rendering.one("Deployment")
        if deployment:
            rendered = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            if rendered != f"{image}:{version}":
                fail(f"{rendering.name} runs {rendered}, not the released {image}:{version}")

    jobs = workflow.get("jobs", {})
    targets = {
        item.get("target")
        for item in jobs.get("binaries", {}).get("strategy", {}).get("matrix", {}).get("include", [])
    }
    if targets != {"x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"}:
        fail(f"the binaries job builds {sorted(t for t in targets if t)}, not both musl targets")
    platforms = [
        step.get("with", {}).get("platforms", "")
        for step in jobs.get("image", {}).get("steps", [])
        if str(step.get("uses", "")).startswith("docker/build-push-action@")
    ]
    if not platforms or set(platforms[0].split(",")) != {"linux/amd64", "linux/arm64"}:
        fail(f"the image job builds {platforms}, not linux/amd64,linux/arm64")
    if not any("helm push" in text for text in strings(jobs.get("chart", {}))):
        fail("the chart job does not push the chart")
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        dockerfile = f.read()
    if "ARG TARGETARCH" not in dockerfile or "-linux-gnu" in dockerfile:
        fail("the Dockerfile must build per TARGETARCH, with no hard-coded target")
    for target in ("x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"):
        if target not in dockerfile:
            fail(f"the Dockerfile does not build {target}")


def count(rendering, kind, expected):
    found = len(rendering.of_kind(kind))
    if found != expected:
        rendering.fail(f"{found} {kind}(s), expected {expected}")


def main():
    out = sys.argv[1]
    problems = []
    expected_crds = check_copies(problems)
    check_artifacthub(problems, expected_crds)
    check_gitops(problems)

    scenarios = {
        # name: (replicas, leader election, watch namespace, release namespace, CRDs, extras)
        "default": (1, False, None, RELEASE_NAMESPACE, True, set()),
        "leader-election": (1, True, None, RELEASE_NAMESPACE, True, set()),
        "replicas-2": (2, True, None, RELEASE_NAMESPACE, True, set()),
        "namespaced": (1, False, WATCH_NAMESPACE, RELEASE_NAMESPACE, True, set()),
        "namespaced-in-place": (1, False, WATCH_NAMESPACE, WATCH_NAMESPACE, True, set()),
        "everything": (2, True, WATCH_NAMESPACE, RELEASE_NAMESPACE, False, {"ServiceMonitor", "PrometheusRule", "PodDisruptionBudget"}),
        "credentials-namespace": (1, False, None, RELEASE_NAMESPACE, True, set()),
    }
    for name, (replicas, leader, watch, release, crds, extras) in scenarios.items():
        rendering = Rendering(f"helm template ({name})", os.path.join(out, f"{name}.yaml"))
        validate(rendering)
        credentials = CREDENTIALS_NAMESPACE if name == "credentials-namespace" else release
        check_deployment(rendering, replicas, leader, watch, credentials)
        expected = namespaced_mode(watch, release) if watch else set(CLUSTER_MODE)
        expected |= credentials_grants(credentials)
        if leader:
            expected |= lease_grants(release)
        check_rbac(rendering, expected)
        check_user_roles(rendering)
        check_crds(rendering, expected_crds, crds, ("helm.sh/resource-policy", "keep"))
        count(rendering, "ServiceAccount", 1)
        for kind in ("ServiceMonitor", "PrometheusRule", "PodDisruptionBudget"):
            count(rendering, kind, 1 if kind in extras else 0)
        if "PrometheusRule" in extras:
            check_observability(rendering)
        elif rendering.of_kind("ConfigMap"):
            rendering.fail("a ConfigMap is rendered although metrics.grafanaDashboard.enabled is false")
        if "PodDisruptionBudget" in extras:
            budget = rendering.one("PodDisruptionBudget")
            if budget.get("spec", {}).get("selector", {}).get("matchLabels") != rendering.one("Deployment")["spec"]["selector"]["matchLabels"]:
                rendering.fail("the PodDisruptionBudget does not select the Deployment's pods")
        problems += rendering.problems

    manifests = Rendering("kubectl kustomize deploy/manifests", os.path.join(out, "manifests.yaml"))
    validate(manifests)
    check_deployment(manifests, 1, True, None, POD_NAMESPACE_ARG)
    check_rbac(manifests, CLUSTER_MODE | lease_grants(RELEASE_NAMESPACE) | credentials_grants(RELEASE_NAMESPACE))
    check_user_roles(manifests)
    check_crds(manifests, expected_crds, True, ("kustomize.toolkit.fluxcd.io/prune", "disabled"))
    count(manifests, "Namespace", 1)
    count(manifests, "Service", 1)
    chart = Rendering("chart", os.path.join(out, "leader-election.yaml"))
    chart_container = chart.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    manifest_container = manifests.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    manifest_container["args"] = [
        a.replace(POD_NAMESPACE_ARG, RELEASE_NAMESPACE) if a.startswith("--credentials-namespace=") else a
        for a in manifest_container.get("args", [])
    ]
    for field in ("args", "env", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext"):
        if chart_container.get(field) != manifest_container.get(field):
            manifests.fail(f"container {field} differs from the chart's (leaderElection.enabled=true): "
                           f"{manifest_container.get(field)} != {chart_container.get(field)}")
    problems += manifests.problems + chart.problems
    check_release(problems, Rendering("helm template (default)", os.path.join(out, "default.yaml")), manifests)

    for problem in problems:
        print(f"packaging: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
