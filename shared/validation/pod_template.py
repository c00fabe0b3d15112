"""The ``podCertificate`` sources of a Pod or a Pod template, judged at apply time.

Pods are created by controllers from templates, so a mistake found only in
the Pod would surface once per replica, far from the ``kubectl apply`` that
made it; the template is checked as the Pod would be, with the template's
paths. Only sources naming a ``pkiwarden.dev/`` signer are pkiwarden's
business; every other projected source is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from shared.findings import Finding
from shared.pod_certificates import authority_of
from shared.validation.pod_certificate import (
    AskContext,
    PodCertificateAsk,
    judge_pod_certificate,
    source_paths,
)

# Where each kind keeps the Pod spec its Pods get.
POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def pod_spec_of(obj: Mapping[str, Any], kind: str) -> tuple[str, Mapping[str, Any]] | None:
    """The Pod spec of ``obj`` and its path; None for a kind without one or a malformed object."""
    path = POD_SPEC_PATHS.get(kind)
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return (".".join(path), node) if isinstance(node, Mapping) else None


def pkiwarden_sources(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(path inside the Pod spec, source) of each podCertificate source for a pkiwarden signer."""
    volumes = pod_spec.get("volumes")
    for v, volume in enumerate(volumes if isinstance(volumes, Sequence) else ()):
        projected = volume.get("projected") if isinstance(volume, Mapping) else None
        sources = projected.get("sources") if isinstance(projected, Mapping) else None
        for s, source in enumerate(sources if isinstance(sources, Sequence) else ()):
            wanted = source.get("podCertificate") if isinstance(source, Mapping) else None
            if isinstance(wanted, Mapping) and authority_of(str(wanted.get("signerName"))):
                yield f"volumes[{v}].projected.sources[{s}].podCertificate", wanted


def ask_of(
    source: Mapping[str, Any], pod_spec: Mapping[str, Any], namespace: str
) -> PodCertificateAsk:
    """The request the kubelet would make from ``source``."""
    seconds = source.get("maxExpirationSeconds")
    annotations = source.get("userAnnotations")
    return PodCertificateAsk(
        namespace=namespace,
        service_account=str(pod_spec.get("serviceAccountName") or "default"),
        signer=str(source.get("signerName") or ""),
        key_type=str(source.get("keyType") or ""),
        max_expiration_seconds=seconds if isinstance(seconds, int) else None,
        annotations=(
            {str(k): str(v) for k, v in annotations.items()}
            if isinstance(annotations, Mapping)
            else {}
        ),
    )


def validate_pod_certificates(
    obj: Any, kind: str, namespace: str, context: AskContext
) -> list[Finding]:
    """Every finding of every pkiwarden ``podCertificate`` source of ``obj``, in order."""
    found = pod_spec_of(obj, kind) if isinstance(obj, Mapping) else None
    if found is None:
        return []
    spec_path, pod_spec = found
    findings: list[Finding] = []
    for path, source in pkiwarden_sources(pod_spec):
        paths = source_paths(f"{spec_path}.{path}", spec_path)
        judged = judge_pod_certificate(ask_of(source, pod_spec, namespace), paths, context)
        findings += judged.findings
    return sorted(findings, key=lambda f: not f.is_error)
