"""How long validating one typical Pki takes against 1, 10 and 100 PkiPolicies.

Prints p50/p99 per call; the 1-policy run is the baseline the others are read
against. No assertions: the figure is for people, and CI machines vary.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from shared.validation.pki import Context, SecretInfo, validate_pki

CALLS = 5000
WARMUP = 200


def policy(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": f"team-{index:03d}"},
        "spec": {
            "namespaces": [f"team-{index:03d}", f"team-{index:03d}-staging"],
            "namespaceSelector": {
                "matchLabels": {"tier": "apps"},
                "matchExpressions": [{"key": "team", "operator": "In", "values": [f"t{index}"]}],
            },
            "allowedServiceNames": [f"svc-{index}", "web", "api"],
            "allowedDNSNames": [
                "{serviceName}.{namespace}.svc",
                "{serviceName}.{namespace}.svc.cluster.local",
                "*.{serviceName}.example.com",
            ],
            "allowedIPRanges": ["10.0.0.0/8"],
            "maxDuration": "4380h",
        },
    }


PKI: dict[str, Any] = {
    "apiVersion": "pkiwarden.dev/v1alpha1",
    "kind": "Pki",
    "metadata": {"name": "web-pki", "namespace": "team-099"},
    "spec": {
        "serviceName": "web",
        "dnsNames": ["web.team-099.svc", "web.team-099.svc.cluster.local", "*.web.example.com"],
        "ipAddresses": ["10.1.2.3"],
        "duration": "2160h",
        "privateKey": {"algorithm": "ECDSA", "size": 256},
    },
}


def measure(policy_count: int) -> tuple[float, float]:
    """(p50, p99) in microseconds for one validate_pki call."""
    policies = [policy(i) for i in range(policy_count)]
    if policy_count < 100:
        policies[-1] = {
            **policies[-1],
            "spec": {**policies[-1]["spec"], "namespaces": ["team-099"]},
        }
    others = [{"metadata": {"name": f"p{i}"}, "spec": {"serviceName": "api"}} for i in range(5)]
    secrets = {
        "web-pki-tls": SecretInfo("web-pki-tls", managed_by_pkiwarden=True, owner_pki="web-pki")
    }
    context = Context(
        policies=policies, namespace_labels={"tier": "apps"}, other_pkis=others, secrets=secrets
    )
    if validate_pki(PKI, "team-099", context):
        raise SystemExit("the typical Pki should be valid; the benchmark is broken")
    for _ in range(WARMUP):
        validate_pki(PKI, "team-099", context)
    samples = []
    for _ in range(CALLS):
        start = time.perf_counter_ns()
        validate_pki(PKI, "team-099", context)
        samples.append((time.perf_counter_ns() - start) / 1000)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


def main() -> None:
    baseline_p50, baseline_p99 = measure(1)
    print(f"validate_pki, {CALLS} calls each")
    print(f"{'policies':>8}  {'p50 us':>8}  {'p99 us':>8}  {'p50 vs 1 policy':>15}")
    for count in (1, 10, 100):
        p50, p99 = (baseline_p50, baseline_p99) if count == 1 else measure(count)
        print(f"{count:>8}  {p50:>8.1f}  {p99:>8.1f}  {p50 / baseline_p50:>14.2f}x")


if __name__ == "__main__":
    main()
