"""What the issuer benchmarks create: a namespace, its PkiPolicy allowing a service, Pkis."""

from __future__ import annotations

from typing import Any

from shared.kube.client import NAMESPACES, PKI_POLICIES, Kube


def open_namespace(kube: Kube, namespace: str, services: list[str]) -> None:
    """Create ``namespace`` and a PkiPolicy of the same name allowing ``services`` in it."""
    kube.create(NAMESPACES.path(), {"metadata": {"name": namespace}})
    kube.create(
        PKI_POLICIES.path(),
        {
            "apiVersion": "pkiwarden.dev/v1alpha1",
            "kind": "PkiPolicy",
            "metadata": {"name": namespace},
            "spec": {"namespaces": [namespace], "allowedServiceNames": services},
        },
    )


def pki_body(namespace: str, name: str, service: str, **spec: Any) -> dict[str, Any]:
    """A Pki ``namespace/name`` for ``service``; ``spec`` adds fields (a privateKey)."""
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serviceName": service, **spec},
    }
