"""``make bench-podcerts``: 100 Pods with Pod certificates at once, beside 100 Pods with a Pki each.

On a fresh local control plane and node, with the issuer as its own process:

1. Pod certificates: ``--pods`` Pods (100 by default; the kubelet's default
   ``maxPods`` is 110) created at once, each mounting a ``podCertificate``
   volume for ``pkiwarden.dev/default`` and the signer's ClusterTrustBundle;
2. Pki and Secret: as many Pkis and, at the same moment, as many Pods each
   mounting its Pki's Secret (the Pods wait in ContainerCreating until the
   Secret exists), in another namespace.

For each it prints create -> Running p50/p99 (seen on a watch), request ->
signed p50/p99 (a PodCertificateRequest first seen to first seen Issued; a
Pki created to first seen Ready), and the issuer's API writes per request
(every watch event in the namespace whose newest managedFields entry is the
issuer's: status, Secrets, Events). Figures only; it asserts that every Pod
ran. Timing on a shared machine is noisy: compare the two modes of one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from watching import Watch, is_ready
from workload import open_namespace, pki_body

from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane, issuer_process, node
from shared.kube.client import EVENTS, PKIS, PODS, SECRETS, Kube, Resource

PCRS = Resource("certificates.k8s.io/v1", "podcertificaterequests")
SERVICE = "bench"
ISSUER_MANAGER = "pkiwarden"


def _newest_managers(obj: dict[str, Any]) -> set[str]:
    """The managers of the newest managedFields entries (times have whole seconds: ties)."""
    fields = (obj.get("metadata") or {}).get("managedFields") or []
    newest = max((str(f.get("time") or "") for f in fields), default="")
    return {str(f.get("manager") or "") for f in fields if str(f.get("time") or "") == newest}


class Observed:
    """What the watches saw in one namespace: first Running, first signed, the issuer's writes."""

    def __init__(self) -> None:
        self.running: dict[str, float] = {}
        self.asked: dict[str, float] = {}
        self.signed: dict[str, float] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def pod(self, kind: str, obj: dict[str, Any], now: float) -> None:
        name = str(obj["metadata"]["name"])
        if (obj.get("status") or {}).get("phase") == "Running":
            self.running.setdefault(name, now)

    def request(self, kind: str, obj: dict[str, Any], now: float) -> None:
        name = str(obj["metadata"]["name"])
        self.asked.setdefault(name, now)
        conditions = (obj.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Issued" for c in conditions):
            self.signed.setdefault(name, now)

    def pki(self, kind: str, obj: dict[str, Any], now: float) -> None:
        if is_ready(obj):
            self.signed.setdefault(str(obj["metadata"]["name"]), now)

    def write(self, kind: str, obj: dict[str, Any], now: float) -> None:
        if kind in ("ADDED", "MODIFIED") and ISSUER_MANAGER in _newest_managers(obj):
            with self._lock:
                self.writes += 1


def _percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered):.2f} s, p99 {p99:.2f} s"


def pod_body(name: str, volume: dict[str, Any], mount: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": SERVICE,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "app",
                    "image": node.image_name("tlsserver"),
                    "imagePullPolicy": "Never",
                    "args": [f"-cert={mount}/tls.crt", f"-key={mount}/tls.key"],
                    "volumeMounts": [{"name": "tls", "mountPath": mount, "readOnly": True}],
                    "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}},
                }
            ],
            "volumes": [{"name": "tls", **volume}],
        },
    }


POD_CERTIFICATE = {
    "projected": {
        "sources": [
            {
                "podCertificate": {
                    "signerName": "pkiwarden.dev/default",
                    "keyType": "ECDSAP256",
                    "keyPath": "tls.key",
                    "certificateChainPath": "tls.crt",
                }
            },
            {
                "clusterTrustBundle": {
                    "signerName": "pkiwarden.dev/default",
                    "labelSelector": {},
                    "path": "ca.crt",
                }
            },
        ]
    }
}


def run_mode(
    kube: Kube, namespace: str, count: int, *, pod_certificates: bool, timeout: float
) -> dict[str, Any]:
    open_namespace(kube, namespace, [SERVICE])
    kube.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": SERVICE}})
    seen = Observed()
    watches = [Watch(kube, PODS, namespace)]
    watches[0].handlers.append(seen.pod)
    for resource in (SECRETS, EVENTS, PKIS, PCRS):
        watch = Watch(kube, resource, namespace)
        watch.handlers.append(seen.write)
        watches.append(watch)
    watches[-1].handlers.append(seen.request)  # PodCertificateRequests
    watches[-2].handlers.append(seen.pki)  # Pkis
    for watch in watches:
        watch.start()
    created: dict[str, float] = {}

    def create(index: int) -> None:
        name = f"{namespace}-{index}"
        if pod_certificates:
            body = pod_body(name, POD_CERTIFICATE, "/var/run/tls")
        else:
            secret = f"{name}-tls"
            kube.create(PKIS.path(namespace), pki_body(namespace, name, SERVICE, secretName=secret))
            created[f"pki/{name}"] = time.monotonic()
            body = pod_body(name, {"secret": {"secretName": secret}}, "/etc/tls")
        created[name] = time.monotonic()
        kube.create(PODS.path(namespace), body)

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(count)))
    deadline = started + timeout
    while len(seen.running) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # late writes (Events, status) of the last ones
    for watch in watches:
        watch.stop()
    running = [seen.running[n] - created[n] for n in seen.running if n in created]
    if pod_certificates:
        signed = [seen.signed[n] - seen.asked[n] for n in seen.signed]
        requests = len(seen.asked)
    else:
        signed = [seen.signed[n] - created[f"pki/{n}"] for n in seen.signed]
        requests = count
    return {
        "running": len(seen.running),
        "create_to_running": _percentiles(running),
        "request_to_signed": _percentiles(signed),
        "writes_per_request": seen.writes / max(1, requests),
        "all_in": f"{(max(seen.running.values(), default=started) - started):.1f} s",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100, help="Pods per mode (default 100)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pkiwarden-bench-podcerts-") as directory:
        plane = controlplane.up(Path(directory), die_with_caller=True)
        try:
            node.up(plane, die_with_caller=True)
            issuer_process.start(plane, Settings(health_port=0, leader_elect=False))
            kube = Kube.from_environment(str(plane.kubeconfig))
            results = {
                "Pod certificate": run_mode(
                    kube, "bench-podcerts", args.pods, pod_certificates=True, timeout=args.timeout
                ),
                "Pki and Secret": run_mode(
                    kube, "bench-pkis", args.pods, pod_certificates=False, timeout=args.timeout
                ),
            }
        finally:
            controlplane.down(Path(directory), report=lambda line: None)
    print(f"{args.pods} Pods at once on one node, per mode:")
    print(f"{'':18}{'Pod certificate':>34}{'Pki and Secret':>34}")
    for key, label in (
        ("running", "Pods Running"),
        ("all_in", "last Running after"),
        ("create_to_running", "create -> Running"),
        ("request_to_signed", "request -> signed"),
        ("writes_per_request", "issuer writes/req"),
    ):
        a, b = (results[m][key] for m in ("Pod certificate", "Pki and Secret"))
        fmt = (lambda v: f"{v:.2f}") if key == "writes_per_request" else str
        print(f"{label:18}{fmt(a):>34}{fmt(b):>34}")
    ok = all(r["running"] == args.pods for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
