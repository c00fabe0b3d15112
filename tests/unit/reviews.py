"""AdmissionReviews as the API server sends them, and a fixed policy context."""

from __future__ import annotations

from typing import Any

from shared.validation.pki import Context

POLICY: dict[str, Any] = {
    "apiVersion": "pkiwarden.dev/v1alpha1",
    "kind": "PkiPolicy",
    "metadata": {"name": "app-teams"},
    "spec": {"namespaces": ["app1"], "allowedServiceNames": ["app1"]},
}
CONTEXT = Context(policies=[POLICY], namespace_labels={}, other_pkis=[], secrets={})


def review_body(spec: Any = None, **request: Any) -> dict[str, Any]:
    """A CREATE of Pki app1/app1-pki for service app1; ``spec`` and ``request`` fields override."""
    body: dict[str, Any] = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "uid-1",
            "kind": {"group": "pkiwarden.dev", "version": "v1alpha1", "kind": "Pki"},
            "resource": {"group": "pkiwarden.dev", "version": "v1alpha1", "resource": "pkis"},
            "operation": "CREATE",
            "name": "app1-pki",
            "namespace": "app1",
            "object": {
                "apiVersion": "pkiwarden.dev/v1alpha1",
                "kind": "Pki",
                "metadata": {"name": "app1-pki", "namespace": "app1"},
                "spec": {"serviceName": "app1"} if spec is None else spec,
            },
            "oldObject": None,
            "dryRun": False,
        },
    }
    body["request"].update(request)
    return body
