"""The ValidatingWebhookConfiguration, rendered from code like the CRDs.

``deploy/webhook/validatingwebhookconfiguration.yaml`` is this rendering with
an in-cluster Service as the client config (a unit test keeps the two equal);
``pkiwarden local up --with-webhook`` renders it with a URL on 127.0.0.1.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from shared import API_GROUP, API_VERSION
from webhook.settings import CertificateSettings

PKIS_WEBHOOK = "pkis.pkiwarden.dev"
POLICIES_WEBHOOK = "pkipolicies.pkiwarden.dev"
AUTHORITIES_WEBHOOK = "pkiauthorities.pkiwarden.dev"
PODS_WEBHOOK = "pods.podcertificates.pkiwarden.dev"
TEMPLATES_WEBHOOK = "templates.podcertificates.pkiwarden.dev"
CRON_JOBS_WEBHOOK = "cronjobs.podcertificates.pkiwarden.dev"
VALIDATE_PATH = "/validate"
# The API server gives up on us after this long; failurePolicy Fail then
# denies the request. Our answers take microseconds.
TIMEOUT_SECONDS = 5


def service_client_config(settings: CertificateSettings, port: int = 443) -> dict[str, Any]:
    return {
        "service": {
            "namespace": settings.namespace,
            "name": settings.service_name,
            "path": VALIDATE_PATH,
            "port": port,
        }
    }


def url_client_config(host: str, port: int, ca_bundle: bytes | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"url": f"https://{host}:{port}{VALIDATE_PATH}"}
    if ca_bundle:
        config["caBundle"] = base64.b64encode(ca_bundle).decode()
    return config


def _webhook(
    name: str, plural: str, scope: str, client_config: dict[str, Any], system_namespace: str
) -> dict[str, Any]:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "timeoutSeconds": TIMEOUT_SECONDS,
        "clientConfig": copy.deepcopy(client_config),
        "rules": [
            {
                "apiGroups": [API_GROUP],
                "apiVersions": [API_VERSION],
                "operations": ["CREATE", "UPDATE"],
                "resources": [plural],
                "scope": scope,
            }
        ],
        # The webhook's own namespace is never sent to it: while the webhook is
        # down, whatever runs there (including the webhook) can still be changed.
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": [system_namespace],
                }
            ]
        },
    }


def asks_pkiwarden(pod_spec: str) -> str:
    """CEL: the Pod spec at ``pod_spec`` has a podCertificate source for a pkiwarden signer."""
    return (
        f"has({pod_spec}.volumes) && {pod_spec}.volumes.exists(v, has(v.projected)"
        " && has(v.projected.sources) && v.projected.sources.exists(s,"
        " has(s.podCertificate) && s.podCertificate.signerName.startsWith('pkiwarden.dev/')))"
    )


# Pods (and ReplicaSets, Jobs) a controller made were checked as its template; checking
# them again would turn a policy change, or a webhook outage, into failed creations by
# the controller instead of the issuer's Warning on each Pod.
_NOT_OWNED = "!has(object.metadata.ownerReferences) || size(object.metadata.ownerReferences) == 0"


def _pod_certificates_webhook(
    name: str,
    rules: list[tuple[str, str, str]],
    pod_spec: str,
    client_config: dict[str, Any],
    system_namespace: str,
    *,
    only_unowned: bool = False,
) -> dict[str, Any]:
    """A registration for kinds carrying a Pod spec at ``pod_spec``: only those asking pkiwarden.

    ``matchConditions`` are evaluated by the API server, so every other Pod
    and template never reaches the webhook, costs one CEL evaluation, and is
    never held up by a webhook outage.
    """
    hook = _webhook(name, "", "Namespaced", client_config, system_namespace)
    hook["rules"] = [
        {
            "apiGroups": [group],
            "apiVersions": [version],
            "operations": ["CREATE", "UPDATE"],
            "resources": [plural],
            "scope": "Namespaced",
        }
        for group, version, plural in rules
    ]
    conditions = [{"name": "asks-pkiwarden", "expression": asks_pkiwarden(pod_spec)}]
    if only_unowned:
        conditions.insert(0, {"name": "not-owned", "expression": _NOT_OWNED})
    hook["matchConditions"] = conditions
    return hook


def pod_certificate_webhooks(
    client_config: dict[str, Any], system_namespace: str
) -> list[dict[str, Any]]:
    templates = [
        ("apps", "v1", "deployments"),
        ("apps", "v1", "statefulsets"),
        ("apps", "v1", "daemonsets"),
        ("apps", "v1", "replicasets"),
        ("batch", "v1", "jobs"),
    ]
    return [
        _pod_certificates_webhook(
            PODS_WEBHOOK,
            [("", "v1", "pods")],
            "object.spec",
            client_config,
            system_namespace,
            only_unowned=True,
        ),
        _pod_certificates_webhook(
            TEMPLATES_WEBHOOK,
            templates,
            "object.spec.template.spec",
            client_config,
            system_namespace,
            only_unowned=True,
        ),
        _pod_certificates_webhook(
            CRON_JOBS_WEBHOOK,
            [("batch", "v1", "cronjobs")],
            "object.spec.jobTemplate.spec.template.spec",
            client_config,
            system_namespace,
        ),
    ]


def webhook_configuration(
    settings: CertificateSettings, client_config: dict[str, Any]
) -> dict[str, Any]:
    """The whole object, ready for create/replace or ``yaml.safe_dump``."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {
            "name": settings.webhook_configuration,
            "labels": {
                "app.kubernetes.io/name": "pkiwarden",
                "app.kubernetes.io/component": "webhook",
            },
        },
        "webhooks": [
            _webhook(PKIS_WEBHOOK, "pkis", "Namespaced", client_config, settings.namespace),
            _webhook(POLICIES_WEBHOOK, "pkipolicies", "Cluster", client_config, settings.namespace),
            _webhook(
                AUTHORITIES_WEBHOOK, "pkiauthorities", "Cluster", client_config, settings.namespace
            ),
            *pod_certificate_webhooks(client_config, settings.namespace),
        ],
    }


HEADER = (
    "# Generated from webhook/registration.py by `python -m webhook.registration`; do not edit.\n"
)


def deploy_yaml(settings: CertificateSettings | None = None) -> str:
    """The in-cluster registration: the Service fronts the webhook; caBundle is patched in."""
    import yaml  # noqa: PLC0415 - only the rendering needs it

    settings = settings or CertificateSettings()
    document = webhook_configuration(settings, service_client_config(settings))
    return HEADER + yaml.safe_dump(document, sort_keys=False)


if __name__ == "__main__":
    print(deploy_yaml(), end="")
