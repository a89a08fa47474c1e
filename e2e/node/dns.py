"""Cluster DNS for the one-node cluster (no CoreDNS image can be had here).

Answers `<svc>.<ns>.svc.cluster.local` (A: the ClusterIP, or the ready endpoints of a
headless Service) and `<hostname>.<svc>.<ns>.svc.cluster.local` (StatefulSet pods behind
a headless Service) from the API server; forwards every other name to the host's
resolver. Runs behind the Service kube-system/kube-dns (10.96.0.10), whose EndpointSlice
points at this host. Started and stopped by e2e/node/up.sh / down.sh.
"""

import argparse
import json
import ssl
import time
import urllib.error
import urllib.request

from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSServer

SUFFIX = "svc.cluster.local."
TTL = 5


class ClusterResolver(BaseResolver):
    def __init__(self, api, kubeconfig_dir, upstream):
        self.api = api
        self.upstream = upstream
        ctx = ssl.create_default_context(cafile=f"{kubeconfig_dir}/pki/ca.crt")
        ctx.load_cert_chain(f"{kubeconfig_dir}/pki/admin.crt", f"{kubeconfig_dir}/pki/admin.key")
        self.ctx = ctx
        self.cache = {}

    def get(self, path):
        hit = self.cache.get(path)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        try:
            with urllib.request.urlopen(self.api + path, context=self.ctx, timeout=3) as r:
                value = json.load(r)
        except urllib.error.HTTPError as e:
            value = None if e.code == 404 else {}
        except OSError:
            value = {}
        self.cache[path] = (time.monotonic() + 1, value)
        return value

    def endpoints(self, ns, svc):
        """(ip, hostname) of the ready endpoints of a Service."""
        slices = self.get(
            f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
            f"?labelSelector=kubernetes.io%2Fservice-name%3D{svc}"
        ) or {}
        out = []
        for s in slices.get("items", []):
            for ep in s.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue
                for ip in ep.get("addresses", []):
                    out.append((ip, ep.get("hostname")))
        return out

    def cluster_answer(self, labels):
        """A records for a cluster name, None for NXDOMAIN."""
        if len(labels) == 2:
            svc, ns = labels
            obj = self.get(f"/api/v1/namespaces/{ns}/services/{svc}")
            if not obj:
                return None
            ip = obj.get("spec", {}).get("clusterIP")
            if ip and ip != "None":
                return [ip]
            return [addr for addr, _ in self.endpoints(ns, svc)]
        if len(labels) == 3:
            host, svc, ns = labels
            ips = [addr for addr, name in self.endpoints(ns, svc) if name == host]
            return ips or None
        return None

    def resolve(self, request, handler):
        qname = str(request.q.qname).lower()
        reply = request.reply()
        if not qname.endswith(SUFFIX) and qname != SUFFIX:
            try:
                return type(request).parse(request.send(self.upstream, 53, timeout=3))
            except Exception:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
        labels = [label for label in qname[: -len(SUFFIX)].split(".") if label]
        ips = self.cluster_answer(labels)
        if ips is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype in (QTYPE.A, QTYPE.ANY):
            for ip in ips:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
        return reply


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--api", required=True)
    p.add_argument("--kubeconfig-dir", required=True)
    p.add_argument("--upstream", required=True)
    a = p.parse_args()
    resolver = ClusterResolver(a.api, a.kubeconfig_dir, a.upstream)
    servers = [
        DNSServer(resolver, address=a.listen, port=53),
        DNSServer(resolver, address=a.listen, port=53, tcp=True),
    ]
    for s in servers:
        s.start_thread()
    print(f"dns: serving {SUFFIX} on {a.listen}:53, upstream {a.upstream}", flush=True)
    while all(s.isAlive() for s in servers):
        time.sleep(1)


if __name__ == "__main__":
    main()
