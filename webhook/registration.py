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
