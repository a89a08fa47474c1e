#!/usr/bin/env python3
"""Checks on rendered chart manifests that must fail when the chart regresses.

usage: test_chart.py RENDERED.yaml [RENDERED.yaml ...]
       test_chart.py --self-test RENDERED.yaml   (each deliberate breakage must be caught)

- RBAC: the only Role is the operator's, bound by a RoleBinding to the operator's
  ServiceAccount; no ClusterRole/ClusterRoleBinding, no RoleBinding to a ClusterRole; no
  wildcard; no resource or verb outside the allow-list below; Lease get/patch only by
  resourceNames, and that name is the one the operator is told (AMP_LEASE_NAME).
- Every container (and init container) is non-root, read-only root fs, no privilege
  escalation, all capabilities dropped (none added), seccomp RuntimeDefault (pod or
  container), resources set; long-running containers have liveness and readiness
  probes (HTTP ones on /healthz and /readyz).
- Only pods whose ServiceAccount is bound to a Role get a token
  (automountServiceAccountToken false everywhere else).
- No credential inline: env values, args and ConfigMaps must not carry DB URLs with a
  password, passwords or tokens; env takes them from secretKeyRef, or names a file
  (`*_FILE` = an absolute path) that a read-only mount of a Secret volume projects.
  Rendered Secrets use data, never stringData.
- The process contract: operator POD_NAME / AMP_NAMESPACE and worker AMP_NODE_ID come
  from the downward API; workers are a StatefulSet; the Admin API and the operator use a
  different (read-only) database URL key than the workers and migrations.
- Helm hooks: a pre-install/pre-upgrade hook pod must not depend on a ServiceAccount,
  Secret or ConfigMap that the same release creates as an ordinary resource (those do
  not exist yet when pre-install hooks run).
- Every role gets its DB URL from a Secret: AMP_DATABASE_URL by secretKeyRef or
  AMP_DATABASE_URL_FILE inside a read-only Secret mount (databaseCredentials.mode).
- NetworkPolicies (networkPolicy.enabled): each selects one component, restricts both
  Ingress and Egress, and every rule names its ports; no ingress rule is open to every
  peer (a rule without `from`).
- DB TLS (databaseTLS): when any pod mounts the db-tls volume, every container that
  gets AMP_DATABASE_URL mounts it read-only at /etc/amp/db-tls, and PGSSLROOTCERT /
  PGSSLCERT / PGSSLKEY point at files inside it that the volume projects.
- CRDs: the rendered CRDs' spec equals crds/*.yaml; every custom resource of a kind we
  ship (AmpWorkerFleet) validates against the openAPIV3Schema in crds/*.yaml.
"""
import copy
import glob
import os
import re
import sys

import jsonschema
import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

ALLOWED = {
    ("amp.io", "ampworkers"): {"get", "list", "watch", "create", "patch", "delete"},
    ("amp.io", "ampworkers/status"): {"get", "patch"},
    ("amp.io", "ampworkerfleets"): {"get", "list", "watch"},
    ("amp.io", "ampworkerfleets/status"): {"get", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("coordination.k8s.io", "leases"): {"create", "get", "patch"},
    # A fleet's podSelector (read); delete only with fleet.remediation.mode=Restart (below).
    ("", "pods"): {"get", "list", "watch", "delete"},
}
SECRETISH = re.compile(r"(postgres(ql)?://|password|passwd|secret|token)", re.I)
# A URL with user:password@ in it, or a flag that takes a credential.
CRED_ARG = re.compile(r"(://[^/\s:@]+:[^/\s@]+@|--(database-url|auth-token|password)\b)", re.I)
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


class Checker:
    def __init__(self, docs, source_crds):
        self.docs = docs
        self.source_crds = source_crds
        self.failures = []

    def fail(self, doc, msg):
        meta = doc.get("metadata", {})
        self.failures.append(f"{doc.get('kind')}/{meta.get('name')}: {msg}")

    # ---------------------------------------------------------------- RBAC
    def check_rbac(self, doc):
        kind = doc["kind"]
        if kind in ("ClusterRole", "ClusterRoleBinding"):
            self.fail(doc, "cluster-wide RBAC is not needed and not allowed")
            return
        if kind == "RoleBinding":
            ref = doc.get("roleRef", {})
            if ref.get("kind") != "Role":
                self.fail(doc, f"binds a {ref.get('kind')}: only the chart's own Role may be bound")
            for s in doc.get("subjects", []):
                if s.get("kind") != "ServiceAccount" or not s.get("name", "").endswith("-operator"):
                    self.fail(doc, f"subject {s} is not the operator's ServiceAccount")
            return
        if kind != "Role":
            return
        for rule in doc.get("rules", []):
            groups = rule.get("apiGroups", [])
            resources = rule.get("resources", [])
            verbs = rule.get("verbs", [])
            for field, values in (("apiGroups", groups), ("resources", resources), ("verbs", verbs)):
                if any("*" in v for v in values):
                    self.fail(doc, f"wildcard in {field}: {values}")
            if rule.get("nonResourceURLs"):
                self.fail(doc, "nonResourceURLs granted")
            for g in groups:
                for r in resources:
                    allowed = ALLOWED.get((g, r))
                    if allowed is None:
                        self.fail(doc, f"resource {g or 'core'}/{r} is not in the allow-list")
                        continue
                    extra = set(verbs) - allowed
                    if extra:
                        self.fail(doc, f"verbs {sorted(extra)} on {g}/{r} exceed {sorted(allowed)}")
            # delete on Pods only when the rendered fleet restarts hung workers.
            if "pods" in resources and "delete" in verbs and not self.fleet_restarts():
                self.fail(doc, "delete on pods without a fleet whose spec.remediation.mode is Restart")
            # get/patch on leases only for the operator's own Lease.
            if "leases" in resources and {"get", "patch"} & set(verbs):
                names = rule.get("resourceNames") or []
                if not names:
                    self.fail(doc, "get/patch on leases must be limited by resourceNames")
                lease_envs = self.env_values("operator", "AMP_LEASE_NAME")
                for value in lease_envs:
                    if value not in names:
                        self.fail(doc, f"lease resourceNames {names} miss the operator's lease {value!r}")

    def check_pod_access(self):
        """The operator's Pod template names the Pod access its Role grants: the operator
        checks it once at start-up, so a helm upgrade that changes it must roll the
        operator (else remediation stays off, or a revoked delete is tried)."""
        verbs = set()
        for role in (d for d in self.docs if d.get("kind") == "Role"):
            for rule in role.get("rules", []):
                if "" in rule.get("apiGroups", []) and "pods" in rule.get("resources", []):
                    verbs |= set(rule.get("verbs", []))
        granted = "read-delete" if "delete" in verbs else "read" if verbs else "none"
        for d in self.docs:
            if d.get("kind") != "Deployment" or not d["metadata"]["name"].endswith("-operator"):
                continue
            shown = (d["spec"]["template"]["metadata"].get("annotations") or {}).get("amp.io/pod-access")
            if shown != granted:
                self.fail(d, f"pod template annotation amp.io/pod-access is {shown!r}, its Role grants {granted!r}")

    def fleet_restarts(self):
        return any(
            d.get("kind") == "AmpWorkerFleet"
            and ((d.get("spec") or {}).get("remediation") or {}).get("mode") == "Restart"
            for d in self.docs
        )

    # ---------------------------------------------------------------- pods
    @staticmethod
    def pod_spec(doc):
        kind = doc.get("kind")
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            return doc["spec"]["template"]["spec"]
        if kind == "CronJob":
            return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        if kind == "Pod":
            return doc["spec"]
        return None

    def containers(self):
        """(doc, pod spec, container, role) for every container; role = ampd subcommand."""
        for d in self.docs:
            spec = self.pod_spec(d)
            if spec is None:
                continue
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                if (c.get("command") or [""])[0] == "ampctl":
                    yield d, spec, c, "ampctl"
                    continue
                args = c.get("args") or c.get("command") or [""]
                yield d, spec, c, args[0]

    def env_values(self, role, name):
        return [
            e["value"]
            for _, _, c, r in self.containers()
            if r == role
            for e in c.get("env", [])
            if e["name"] == name and "value" in e
        ]

    def check_pod(self, doc):
        spec = self.pod_spec(doc)
        if spec is None:
            return
        psc = spec.get("securityContext", {})
        init_names = {c["name"] for c in spec.get("initContainers", [])}
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            sc = c.get("securityContext", {})
            name = c["name"]
            if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
                self.fail(doc, f"container {name}: runAsNonRoot not set")
            # Unset is allowed (OpenShift's restricted SCC assigns a uid; runAsNonRoot holds).
            if sc.get("runAsUser", psc.get("runAsUser")) == 0:
                self.fail(doc, f"container {name}: runs as uid 0")
            if sc.get("readOnlyRootFilesystem") is not True:
                self.fail(doc, f"container {name}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                self.fail(doc, f"container {name}: allowPrivilegeEscalation is not false")
            caps = sc.get("capabilities", {})
            if caps.get("drop") != ["ALL"] or caps.get("add"):
                self.fail(doc, f"container {name}: capabilities must drop ALL and add none")
            seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {}))
            if seccomp.get("type") != "RuntimeDefault":
                self.fail(doc, f"container {name}: seccompProfile is not RuntimeDefault")
            if sc.get("privileged"):
                self.fail(doc, f"container {name}: privileged")
            for e in c.get("env", []):
                if self.is_file_reference(e):
                    if self.secret_file(spec, c, e["value"]) is None:
                        self.fail(doc, f"container {name}: env {e['name']}={e['value']} is not a file a read-only Secret mount projects")
                    continue
                if "value" in e and SECRETISH.search(f"{e['name']}={e['value']}"):
                    self.fail(doc, f"container {name}: env {e['name']} carries a credential inline; use secretKeyRef")
            for a in (c.get("command") or []) + (c.get("args") or []):
                if CRED_ARG.search(str(a)):
                    self.fail(doc, f"container {name}: argument {a!r} carries a credential; use env from a Secret")
            long_running = (
                doc["kind"] != "Job"
                and name not in init_names
                and "test" not in self.hook_phases(doc)
            )
            if long_running and ("livenessProbe" not in c or "readinessProbe" not in c):
                self.fail(doc, f"container {name}: liveness and readiness probes required")
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                http = c.get(probe, {}).get("httpGet")
                if http and http.get("path") != path:
                    self.fail(doc, f"container {name}: {probe} must GET {path}, not {http.get('path')}")
            if not c.get("resources"):
                self.fail(doc, f"container {name}: resources not set")

    @staticmethod
    def is_file_reference(e):
        return e["name"].endswith("_FILE") and str(e.get("value", "")).startswith("/")

    @staticmethod
    def secret_file(spec, c, path):
        """(Secret name, key) of the file at `path` in container `c`, when a read-only
        mount of a Secret volume (or a projected one's Secret source) puts it there."""
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for m in c.get("volumeMounts", []):
            if not m.get("readOnly"):
                continue
            v = volumes.get(m["name"], {})
            sources = []
            if "secret" in v:
                sources.append((v["secret"]["secretName"], v["secret"].get("items", [])))
            for src in v.get("projected", {}).get("sources", []):
                if "secret" in src:
                    sources.append((src["secret"]["name"], src["secret"].get("items", [])))
            for secret, items in sources:
                for item in items:
                    if os.path.join(m["mountPath"], item["path"]) == path:
                        return (secret, item["key"])
        return None

    @classmethod
    def db_url_source(cls, spec, c):
        """(Secret name, key) the container's DB URL comes from, or None."""
        env = {e["name"]: e for e in c.get("env", [])}
        ref = env.get("AMP_DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef")
        if ref:
            return (ref["name"], ref["key"])
        path = env.get("AMP_DATABASE_URL_FILE", {}).get("value")
        return cls.secret_file(spec, c, path) if path else None

    def check_tokens(self):
        """Only ServiceAccounts bound to a Role may have their token mounted."""
        bound = {
            s["name"]
            for d in self.docs
            if d["kind"] == "RoleBinding"
            for s in d.get("subjects", [])
            if s.get("kind") == "ServiceAccount"
        }
        sa_automount = {
            d["metadata"]["name"]: d.get("automountServiceAccountToken", True)
            for d in self.docs
            if d["kind"] == "ServiceAccount"
        }
        for d in self.docs:
            spec = self.pod_spec(d)
            if spec is None:
                continue
            sa = spec.get("serviceAccountName", "default")
            automount = spec.get("automountServiceAccountToken", sa_automount.get(sa, True))
            if automount and sa not in bound:
                self.fail(d, f"mounts a token for ServiceAccount {sa}, which needs no API access")

    def check_contract(self):
        roles = {}
        for d, spec, c, role in self.containers():
            roles.setdefault(role, []).append((d, spec, c))
            env = {e["name"]: e for e in c.get("env", [])}

            def field(name):
                return env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")

            if role == "operator":
                if field("POD_NAME") != "metadata.name":
                    self.fail(d, "operator POD_NAME must come from the downward API (metadata.name)")
                if field("AMP_NAMESPACE") != "metadata.namespace":
                    self.fail(d, "operator AMP_NAMESPACE must come from the downward API (metadata.namespace)")
            if role == "worker" and c["name"] == "worker":
                if d["kind"] != "StatefulSet":
                    self.fail(d, "workers must be a StatefulSet (stable node ids)")
                if field("AMP_NODE_ID") != "metadata.name":
                    self.fail(d, "worker AMP_NODE_ID must be the pod name (downward API)")
            if role in ("operator", "admin-api", "worker", "migrate"):
                if not self.db_url_source(spec, c):
                    self.fail(d, f"{role}: the DB URL must come from a Secret (AMP_DATABASE_URL by secretKeyRef or AMP_DATABASE_URL_FILE in a Secret mount)")
                if env.get("AMP_LOG_FORMAT", {}).get("value") not in ("json", "text", "auto"):
                    self.fail(d, f"{role}: AMP_LOG_FORMAT not set")

        def db_keys(role):
            return {
                src
                for _, spec, c in roles.get(role, [])
                if (src := self.db_url_source(spec, c))
            }

        writers = db_keys("worker") | db_keys("migrate")
        for reader in ("admin-api", "operator"):
            shared = db_keys(reader) & writers
            if shared:
                for d, _, _ in roles[reader]:
                    self.fail(d, f"{reader} uses the read-write database URL {sorted(shared)}; give it the read-only role's")

    # ---------------------------------------------------------------- hooks
    @staticmethod
    def hook_phases(doc):
        hook = (doc.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook", "")
        return {h.strip() for h in hook.split(",") if h.strip()}

    def check_hooks(self):
        ordinary = {
            (d["kind"], d["metadata"]["name"])
            for d in self.docs
            if not self.hook_phases(d)
        }
        for d in self.docs:
            phases = self.hook_phases(d) & {"pre-install", "pre-upgrade"}
            spec = self.pod_spec(d)
            if not phases or spec is None:
                continue
            needs = []
            if spec.get("serviceAccountName"):
                needs.append(("ServiceAccount", spec["serviceAccountName"]))
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                for e in c.get("env", []):
                    vf = e.get("valueFrom", {})
                    if "secretKeyRef" in vf:
                        needs.append(("Secret", vf["secretKeyRef"]["name"]))
                    if "configMapKeyRef" in vf:
                        needs.append(("ConfigMap", vf["configMapKeyRef"]["name"]))
            for v in spec.get("volumes", []):
                if "secret" in v:
                    needs.append(("Secret", v["secret"]["secretName"]))
                if "configMap" in v:
                    needs.append(("ConfigMap", v["configMap"]["name"]))
                for src in v.get("projected", {}).get("sources", []):
                    if "secret" in src:
                        needs.append(("Secret", src["secret"]["name"]))
                    if "configMap" in src:
                        needs.append(("ConfigMap", src["configMap"]["name"]))
            for need in needs:
                if need in ordinary:
                    self.fail(d, f"{sorted(phases)} hook needs {need[0]}/{need[1]}, which the release creates only after its pre-install hooks")

    # ---------------------------------------------------------------- DB TLS
    def check_db_tls(self):
        def tls_volume(spec):
            return next((v for v in spec.get("volumes", []) if v["name"] == "db-tls"), None)

        if not any(tls_volume(self.pod_spec(d) or {}) for d in self.docs):
            return
        for d, spec, c, _ in self.containers():
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if "AMP_DATABASE_URL" not in env and "AMP_DATABASE_URL_FILE" not in env:
                continue
            volume = tls_volume(spec)
            mount = next((m for m in c.get("volumeMounts", []) if m["name"] == "db-tls"), None)
            if volume is None or mount is None or mount.get("mountPath") != "/etc/amp/db-tls" or not mount.get("readOnly"):
                self.fail(d, f"container {c['name']}: talks to the DB but does not mount db-tls read-only at /etc/amp/db-tls")
                continue
            files = {
                "/etc/amp/db-tls/" + item["path"]
                for src in volume.get("projected", {}).get("sources", [])
                for kind in ("secret", "configMap")
                for item in src.get(kind, {}).get("items", [])
            }
            for name in ("PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"):
                if env.get(name) is not None and env[name] not in files:
                    self.fail(d, f"container {c['name']}: {name}={env[name]} is not a file the db-tls volume projects")

    # ---------------------------------------------------------------- NetworkPolicies
    def check_network_policies(self):
        for d in self.docs:
            if d["kind"] != "NetworkPolicy":
                continue
            spec = d["spec"]
            if not spec.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component"):
                self.fail(d, "must select one component's pods (podSelector on app.kubernetes.io/component)")
            if sorted(spec.get("policyTypes", [])) != ["Egress", "Ingress"]:
                self.fail(d, "must restrict both Ingress and Egress")
            for rule in spec.get("ingress", []):
                if not rule.get("from"):
                    self.fail(d, "an ingress rule without `from` admits every peer")
                if not rule.get("ports"):
                    self.fail(d, "an ingress rule without ports opens every port")
            for rule in spec.get("egress", []):
                if not rule.get("ports"):
                    self.fail(d, "an egress rule without ports opens every port")

    # ---------------------------------------------------------------- CRDs
    def check_crds(self):
        for d in self.docs:
            if d["kind"] == "CustomResourceDefinition":
                src = self.source_crds.get(d["metadata"]["name"])
                if src is None:
                    self.fail(d, "not one of crds/*.yaml")
                elif src["spec"] != d["spec"]:
                    self.fail(d, "rendered spec differs from crds/ (templating changed it)")
            kinds = {c["spec"]["names"]["kind"]: c for c in self.source_crds.values()}
            crd = kinds.get(d["kind"])
            if crd and d.get("apiVersion", "").startswith(crd["spec"]["group"] + "/"):
                version = d["apiVersion"].split("/", 1)[1]
                versions = {v["name"]: v for v in crd["spec"]["versions"]}
                if version not in versions:
                    self.fail(d, f"version {version} is not served by the CRD")
                    continue
                schema = versions[version]["schema"]["openAPIV3Schema"]
                try:
                    jsonschema.validate(d, schema)
                except jsonschema.ValidationError as e:
                    self.fail(d, f"invalid against its CRD: {e.message} at {list(e.absolute_path)}")
            if d["kind"] == "Secret" and d.get("stringData"):
                self.fail(d, "stringData in a rendered Secret (generated secrets use data)")
            if d["kind"] == "ConfigMap":
                for k, v in (d.get("data") or {}).items():
                    if CRED_ARG.search(str(v)) and "://" in str(v):
                        self.fail(d, f"ConfigMap key {k} holds a URL with credentials")

    def run(self):
        for d in self.docs:
            self.check_rbac(d)
            self.check_pod(d)
        self.check_tokens()
        self.check_contract()
        self.check_hooks()
        self.check_db_tls()
        self.check_network_policies()
        self.check_crds()
        self.check_pod_access()
        roles = [d for d in self.docs if d["kind"] == "Role"]
        if len(roles) > 1:
            self.fail(roles[1], "only the operator has a Role")
        return self.failures


def load(paths):
    docs = []
    for path in paths:
        with open(path) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d)
    return docs


def source_crds():
    crds = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "crds", "*.yaml"))):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d:
                    crds[d["metadata"]["name"]] = d
    return crds


# ---------------------------------------------------------------- self-test
def find(docs, kind, suffix=""):
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"].endswith(suffix):
            return d
    raise LookupError(f"{kind} *{suffix} not rendered")


def container(docs, kind, suffix):
    return Checker.pod_spec(find(docs, kind, suffix))["containers"][0]


def env(c, name):
    return next(e for e in c["env"] if e["name"] == name)


def m_wildcard_verb(docs):
    find(docs, "Role")["rules"][0]["verbs"] = ["*"]


def m_wildcard_group(docs):
    find(docs, "Role")["rules"][0]["apiGroups"] = ["*"]


def m_extra_resource(docs):
    find(docs, "Role")["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})


def m_extra_verb(docs):
    find(docs, "Role")["rules"][2]["verbs"].append("update")


def m_lease_unrestricted(docs):
    for r in find(docs, "Role")["rules"]:
        r.pop("resourceNames", None)


def m_cluster_role(docs):
    role = copy.deepcopy(find(docs, "Role"))
    role["kind"] = "ClusterRole"
    docs.append(role)


def m_bind_cluster_role(docs):
    find(docs, "RoleBinding")["roleRef"] = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}


def m_root(docs):
    Checker.pod_spec(find(docs, "Deployment", "-admin-api"))["securityContext"]["runAsUser"] = 0


def m_writable_root(docs):
    container(docs, "StatefulSet", "-worker")["securityContext"]["readOnlyRootFilesystem"] = False


def m_escalation(docs):
    container(docs, "Deployment", "-operator")["securityContext"].pop("allowPrivilegeEscalation")


def m_capability(docs):
    container(docs, "Deployment", "-operator")["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def m_seccomp(docs):
    Checker.pod_spec(find(docs, "StatefulSet", "-worker"))["securityContext"].pop("seccompProfile")


def m_inline_url(docs):
    container(docs, "StatefulSet", "-worker")["env"].append(
        {"name": "AMP_DATABASE_URL", "value": "postgres://amp:hunter2@db:5432/amp"}
    )


def m_inline_token(docs):
    container(docs, "Deployment", "-admin-api")["env"].append({"name": "AMP_AUTH_TOKEN", "value": "s3cr3t"})


def m_credential_arg(docs):
    container(docs, "Deployment", "-operator")["args"].append("--database-url=postgres://amp:pw@db/amp")


def m_no_probe(docs):
    container(docs, "Deployment", "-operator").pop("readinessProbe")


def m_wrong_probe(docs):
    container(docs, "StatefulSet", "-worker")["livenessProbe"]["httpGet"]["path"] = "/readyz"


def m_token_mounted(docs):
    Checker.pod_spec(find(docs, "StatefulSet", "-worker"))["automountServiceAccountToken"] = True


def m_pod_name(docs):
    env(container(docs, "Deployment", "-operator"), "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"] = "spec.nodeName"


def m_node_id(docs):
    e = env(container(docs, "StatefulSet", "-worker"), "AMP_NODE_ID")
    e.pop("valueFrom")
    e["value"] = "worker"


def db_credentials(docs, kind, suffix):
    spec = Checker.pod_spec(find(docs, kind, suffix))
    return next(v for v in spec["volumes"] if v["name"] == "db-credentials")


def m_admin_writer(docs):
    admin = db_credentials(docs, "Deployment", "-admin-api")
    worker = db_credentials(docs, "StatefulSet", "-worker")
    admin["secret"] = copy.deepcopy(worker["secret"])


def m_url_file_unmounted(docs):
    c = container(docs, "Deployment", "-operator")
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != "db-credentials"]


def m_password_file_writable(docs):
    c = container(docs, "StatefulSet", "-worker")
    next(m for m in c["volumeMounts"] if m["name"] == "db-credentials")["readOnly"] = False


def m_test_token_unmounted(docs):
    # The helm test pod's token file must come from a read-only Secret mount too.
    container(docs, "Pod", "-test-admin-api").pop("volumeMounts")


def m_policy_open_ingress(docs):
    find(docs, "NetworkPolicy", "-admin-api")["spec"]["ingress"][0].pop("from")


def m_policy_any_port(docs):
    find(docs, "NetworkPolicy", "-operator")["spec"]["egress"][0].pop("ports")


def m_policy_ingress_only(docs):
    find(docs, "NetworkPolicy", "-worker")["spec"]["policyTypes"] = ["Ingress"]


def m_hook_release_sa(docs):
    job = find(docs, "Job", "-migrate")
    Checker.pod_spec(job)["serviceAccountName"] = Checker.pod_spec(find(docs, "StatefulSet", "-worker"))["serviceAccountName"]


def m_fleet_invalid(docs):
    find(docs, "AmpWorkerFleet")["spec"]["progressDeadlineSeconds"] = "ten minutes"


def m_crd_changed(docs):
    crd = find(docs, "CustomResourceDefinition", "ampworkerfleets.amp.io")
    crd["spec"]["names"]["shortNames"] = ["fleet"]


def m_string_data(docs):
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "stringData": {"password": "pw"}})


def m_tls_mount_missing(docs):
    container(docs, "Job", "-migrate").pop("volumeMounts")


def m_tls_wrong_path(docs):
    env(container(docs, "Deployment", "-operator"), "PGSSLROOTCERT")["value"] = "/etc/ssl/ca.crt"


def m_hook_release_ca(docs):
    # The migrate hook's CA Secret made an ordinary release resource: not there yet.
    job = find(docs, "Job", "-migrate")
    tls = next(v for v in Checker.pod_spec(job)["volumes"] if v["name"] == "db-tls")
    tls["projected"]["sources"][0]["secret"]["name"] = "amp-db-ca"
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "amp-db-ca"}, "data": {}})


def m_pod_delete_without_restart(docs):
    # delete on Pods granted while no fleet restarts hung workers.
    find(docs, "Role")["rules"].append({"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]})


def m_pod_access_not_rolled(docs):
    # The Role's Pod access changed, the operator's Pod template still shows the old one.
    deployment = next(d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"].endswith("-operator"))
    deployment["spec"]["template"]["metadata"]["annotations"]["amp.io/pod-access"] = "none-before-upgrade"


MUTATIONS = [
    m_wildcard_verb, m_wildcard_group, m_extra_resource, m_extra_verb, m_lease_unrestricted,
    m_cluster_role, m_bind_cluster_role, m_root, m_writable_root, m_escalation, m_capability,
    m_seccomp, m_inline_url, m_inline_token, m_credential_arg, m_no_probe, m_wrong_probe,
    m_token_mounted, m_pod_name, m_node_id, m_admin_writer, m_hook_release_sa,
    m_fleet_invalid, m_crd_changed, m_string_data, m_tls_mount_missing, m_tls_wrong_path,
    m_hook_release_ca, m_url_file_unmounted, m_password_file_writable, m_test_token_unmounted,
    m_policy_open_ingress,
    m_policy_any_port, m_policy_ingress_only,
    m_pod_delete_without_restart, m_pod_access_not_rolled,
]


def self_test(paths):
    docs = load(paths)
    crds = source_crds()
    base = Checker(copy.deepcopy(docs), crds).run()
    if base:
        print("self-test needs a clean render; it has problems:\n  " + "\n  ".join(base))
        return 1
    missed = 0
    for mutate in MUTATIONS:
        broken = copy.deepcopy(docs)
        try:
            mutate(broken)
        except LookupError as e:
            print(f"skip {mutate.__name__[2:]}: {e}")
            continue
        found = Checker(broken, crds).run()
        if found:
            print(f"ok   {mutate.__name__[2:]}: {found[0]}")
        else:
            print(f"MISS {mutate.__name__[2:]}: the breakage was not detected")
            missed += 1
    print(f"self-test: {len(MUTATIONS)} breakages, {missed} missed")
    return 1 if missed else 0


def main(argv):
    if argv and argv[0] == "--self-test":
        return self_test(argv[1:])
    docs = load(argv)
    failures = Checker(docs, source_crds()).run()
    for f in failures:
        print(f"FAIL {f}")
    print(f"checked {len(docs)} manifests from {', '.join(argv)}: {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
