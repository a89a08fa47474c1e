#!/usr/bin/env python3
"""Checks on rendered chart manifests that must fail when the chart regresses.

usage: test_chart.py RENDERED.yaml [RENDERED.yaml ...]

- RBAC: the only Role is the operator's; no ClusterRole/ClusterRoleBinding; no wildcard;
  no resource or verb outside the allow-list below.
- Every container (and init container) is non-root, read-only root fs, no privilege
  escalation, all capabilities dropped, seccomp RuntimeDefault (pod or container).
- No credential inline: env values that look like DB URLs or passwords must come from
  secretKeyRef; only the chart's own generated Secret may hold them.
- The AmpWorkerFleet and the CRDs: the fleet validates against the CRD's schema.
"""
import re
import sys

import jsonschema
import yaml

ALLOWED = {
    ("amp.io", "ampworkers"): {"get", "list", "watch", "create", "delete"},
    ("amp.io", "ampworkers/status"): {"get", "patch"},
    ("amp.io", "ampworkerfleets"): {"get", "list", "watch"},
    ("amp.io", "ampworkerfleets/status"): {"get", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("coordination.k8s.io", "leases"): {"create", "get", "patch"},
}
SECRETISH = re.compile(r"(postgres(ql)?://|password|passwd|secret|token)", re.I)

failures = []


def fail(doc, msg):
    meta = doc.get("metadata", {})
    failures.append(f"{doc.get('kind')}/{meta.get('name')}: {msg}")


def check_rbac(doc):
    kind = doc["kind"]
    if kind in ("ClusterRole", "ClusterRoleBinding"):
        fail(doc, "cluster-wide RBAC is not needed and not allowed")
        return
    if kind != "Role":
        return
    for rule in doc.get("rules", []):
        groups, resources, verbs = rule.get("apiGroups", []), rule.get("resources", []), rule.get("verbs", [])
        for field, values in (("apiGroups", groups), ("resources", resources), ("verbs", verbs)):
            if any("*" in v for v in values):
                fail(doc, f"wildcard in {field}: {values}")
        if rule.get("nonResourceURLs"):
            fail(doc, "nonResourceURLs granted")
        for g in groups:
            for r in resources:
                allowed = ALLOWED.get((g, r))
                if allowed is None:
                    fail(doc, f"resource {g}/{r} is not in the allow-list")
                    continue
                extra = set(verbs) - allowed
                if extra:
                    fail(doc, f"verbs {sorted(extra)} on {g}/{r} exceed {sorted(allowed)}")
        # get/patch on leases only for the operator's own Lease.
        if "leases" in resources and {"get", "patch"} & set(verbs) and not rule.get("resourceNames"):
            fail(doc, "get/patch on leases must be limited by resourceNames")


def pod_spec(doc):
    kind = doc["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return doc["spec"]
    return None


def check_pod(doc):
    spec = pod_spec(doc)
    if spec is None:
        return
    psc = spec.get("securityContext", {})
    init_names = {c["name"] for c in spec.get("initContainers", [])}
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        sc = c.get("securityContext", {})
        name = c["name"]
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            fail(doc, f"container {name}: runAsNonRoot not set")
        if (sc.get("runAsUser", psc.get("runAsUser")) or 0) == 0:
            fail(doc, f"container {name}: runs as uid 0 or unset")
        if sc.get("readOnlyRootFilesystem") is not True:
            fail(doc, f"container {name}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(doc, f"container {name}: allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
            fail(doc, f"container {name}: capabilities must drop ALL and add none")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {}))
        if seccomp.get("type") != "RuntimeDefault":
            fail(doc, f"container {name}: seccompProfile is not RuntimeDefault")
        if sc.get("privileged"):
            fail(doc, f"container {name}: privileged")
        for e in c.get("env", []):
            if "value" in e and SECRETISH.search(f"{e['name']}={e['value']}"):
                fail(doc, f"container {name}: env {e['name']} carries a credential inline; use secretKeyRef")
        if "livenessProbe" not in c or "readinessProbe" not in c:
            if doc["kind"] != "Job" and name not in init_names:
                fail(doc, f"container {name}: liveness and readiness probes required")
        if "resources" not in c:
            fail(doc, f"container {name}: resources not set")


def main(paths):
    docs = []
    for path in paths:
        with open(path) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d)
    crds = {d["spec"]["names"]["kind"]: d for d in docs if d["kind"] == "CustomResourceDefinition"}
    for d in docs:
        check_rbac(d)
        check_pod(d)
        if d["kind"] == "Secret" and d.get("stringData"):
            fail(d, "stringData in a rendered Secret (generated secrets use data)")
        if d["kind"] in crds:
            schema = crds[d["kind"]]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            try:
                jsonschema.validate(d, schema)
            except jsonschema.ValidationError as e:
                fail(d, f"invalid against its CRD: {e.message}")
    roles = [d for d in docs if d["kind"] == "Role"]
    if docs and len(roles) > 1:
        fail(roles[1], "only the operator has a Role")
    for f in failures:
        print(f"FAIL {f}")
    print(f"checked {len(docs)} manifests from {', '.join(paths)}: {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
