"""Keeping the webhook's certificates in their Secret, on disk and in the caBundle.

The Secret (in the webhook's own namespace) is the source of truth, so every
replica serves from the same material and a restart reuses it. Order matters
when something changes: the caBundle is patched *before* the new material is
stored and served, so the API server already trusts a new CA when the first
certificate it signed is presented.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from shared.kube.client import CONFIG_MAPS, SECRETS, WEBHOOK_CONFIGURATIONS, ApiError, Kube
from webhook.certs import ServingIdentity, WebhookCertificates, plan
from webhook.settings import CertificateSettings

log = logging.getLogger("pkiwarden.webhook.certs")

LOCAL_IP = "127.0.0.1"
_KEYS = {
    "ca_cert": "ca.crt",
    "ca_key": "ca.key",
    "tls_cert": "tls.crt",
    "tls_key": "tls.key",
    "ca_bundle": "ca-bundle.crt",
}
_ATTEMPTS = 5


def identity(settings: CertificateSettings) -> ServingIdentity:
    return ServingIdentity(
        dns_names=tuple(settings.dns_names),
        ip_addresses=(LOCAL_IP,) if settings.local else (),
    )


def ensure_certificates(
    kube: Kube,
    settings: CertificateSettings,
    now: dt.datetime,
    *,
    force_rotate: bool = False,
    patch_configuration: bool = True,
) -> WebhookCertificates:
    """Create, rotate or reuse the material in the Secret; keep the caBundle current.

    ``patch_configuration=False`` is for a caller that writes the whole
    registration itself, with the returned caBundle in it.

    Several replicas may race: writes carry the Secret's resourceVersion, and
    the loser of a conflict reads the winner's material and uses that.
    """
    for _attempt in range(_ATTEMPTS):
        secret = _read_secret(kube, settings)
        stored = _from_secret(secret)
        fresh = plan(
            stored,
            identity(settings),
            now,
            ca_lifetime=settings.ca_lifetime,
            serving_lifetime=settings.serving_lifetime,
            force_serving=force_rotate,
        )
        if fresh is None and stored is not None:
            if patch_configuration:
                patch_ca_bundle(kube, settings.webhook_configuration, stored.ca_bundle)
            publish_ca(kube, settings, stored.ca_bundle)
            return stored
        assert fresh is not None
        if patch_configuration:
            patch_ca_bundle(kube, settings.webhook_configuration, fresh.ca_bundle)
        publish_ca(kube, settings, fresh.ca_bundle)
        try:
            _write_secret(kube, settings, secret, fresh)
        except ApiError as error:
            if error.conflict:
                force_rotate = False  # someone else just stored material; look again
                continue
            raise
        log.info(
            "webhook serving certificate %s in Secret %s/%s",
            "created" if stored is None else "rotated",
            settings.namespace,
            settings.secret_name,
        )
        return fresh
    raise RuntimeError(
        f"Secret {settings.namespace}/{settings.secret_name} kept changing under us;"
        f" gave up after {_ATTEMPTS} attempts"
    )


def patch_ca_bundle(kube: Kube, configuration: str, ca_bundle: bytes) -> bool:
    """Set ``caBundle`` on every webhook of the configuration; False if it is not registered."""
    encoded = base64.b64encode(ca_bundle).decode()
    for _attempt in range(_ATTEMPTS):
        try:
            current = kube.get(WEBHOOK_CONFIGURATIONS.path(name=configuration))
        except ApiError as error:
            if error.not_found:
                log.warning(
                    "ValidatingWebhookConfiguration %s is not registered; caBundle not set",
                    configuration,
                )
                return False
            raise
        # A JSON patch guarded by the resourceVersion: the RBAC grants patch
        # (not update) on this one object, and a concurrent edit means retry.
        version = (current.get("metadata") or {}).get("resourceVersion")
        operations: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": version}
        ]
        for index, webhook in enumerate(current.get("webhooks") or []):
            client_config = webhook.get("clientConfig") or {}
            if client_config.get("caBundle") != encoded:
                path = f"/webhooks/{index}/clientConfig/caBundle"
                operations.append({"op": "add", "path": path, "value": encoded})
        if len(operations) == 1:
            return True
        try:
            kube.patch(
                WEBHOOK_CONFIGURATIONS.path(name=configuration), operations, patch_type="json"
            )
        except ApiError as error:
            if error.conflict or error.status == 422:  # the test failed: changed meanwhile
                continue
            raise
        log.info("caBundle of ValidatingWebhookConfiguration %s updated", configuration)
        return True
    raise RuntimeError(f"ValidatingWebhookConfiguration {configuration} kept changing under us")


def publish_ca(kube: Kube, settings: CertificateSettings, ca_bundle: bytes) -> None:
    """Keep the ConfigMap of CA certificates equal to the caBundle; scrapers trust it.

    Written with the caBundle, before new material is served, so a scraper
    trusts a new CA as early as the API server does. It carries no key. A
    refusal (RBAC of an older release) is logged as an error, not fatal:
    admission matters more than scraping.
    """
    try:
        _publish_ca(kube, settings, ca_bundle)
    except ApiError as error:
        log.error(
            "CA certificates not published in ConfigMap %s/%s: %s",
            settings.namespace,
            settings.ca_config_map,
            error,
        )


def _publish_ca(kube: Kube, settings: CertificateSettings, ca_bundle: bytes) -> None:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": settings.ca_config_map,
            "namespace": settings.namespace,
            "labels": {
                MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                "app.kubernetes.io/component": "webhook",
            },
        },
        "data": {"ca.crt": ca_bundle.decode()},
    }
    path = CONFIG_MAPS.path(settings.namespace, settings.ca_config_map)
    for _attempt in range(_ATTEMPTS):
        try:
            current = kube.get(path)
        except ApiError as error:
            if not error.not_found:
                raise
            try:
                kube.create(CONFIG_MAPS.path(settings.namespace), body)
            except ApiError as create_error:
                if create_error.conflict:
                    continue  # a peer created it first: compare with theirs
                raise
            return
        if (current.get("data") or {}).get("ca.crt") == body["data"]["ca.crt"]:
            return
        body["metadata"]["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
        try:
            kube.replace(path, body)
        except ApiError as error:
            if error.conflict:
                continue
            raise
        log.info(
            "CA certificates published in ConfigMap %s/%s",
            settings.namespace,
            settings.ca_config_map,
        )
        return
    raise RuntimeError(f"ConfigMap {settings.ca_config_map} kept changing under us")


def write_files(material: WebhookCertificates, cert_file: Path, key_file: Path) -> bool:
    """Write the serving pair for the TLS server; False if the files already hold it.

    Each file is replaced atomically (a reader never sees half a file); the
    key goes first, and the reloader retries while the two do not match yet.
    """
    try:
        if cert_file.read_bytes() == material.tls_cert and key_file.read_bytes() == (
            material.tls_key
        ):
            return False
    except OSError:
        pass
    _atomic_write(key_file, material.tls_key, 0o600)
    _atomic_write(cert_file, material.tls_cert, 0o644)
    return True


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, mode)
        os.write(handle, data)
        os.fsync(handle)
    finally:
        os.close(handle)
    os.replace(temporary, path)


def _read_secret(kube: Kube, settings: CertificateSettings) -> dict[str, Any] | None:
    try:
        return kube.get(SECRETS.path(settings.namespace, settings.secret_name))
    except ApiError as error:
        if error.not_found:
            return None
        raise


def _from_secret(secret: Mapping[str, Any] | None) -> WebhookCertificates | None:
    if secret is None:
        return None
    data = secret.get("data") or {}
    try:
        values = {field: base64.b64decode(data[key]) for field, key in _KEYS.items()}
    except (KeyError, ValueError, TypeError):
        return None
    return WebhookCertificates(**values)


def _write_secret(
    kube: Kube,
    settings: CertificateSettings,
    existing: Mapping[str, Any] | None,
    material: WebhookCertificates,
) -> None:
    metadata: dict[str, Any] = {
        "name": settings.secret_name,
        "namespace": settings.namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, "app.kubernetes.io/component": "webhook"},
    }
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "kubernetes.io/tls",
        "data": {
            key: base64.b64encode(getattr(material, field)).decode() for field, key in _KEYS.items()
        },
    }
    if existing is None:
        # AlreadyExists is a 409 too: another replica created it first.
        kube.create(SECRETS.path(settings.namespace), body)
        return
    metadata["resourceVersion"] = (existing.get("metadata") or {}).get("resourceVersion")
    kube.replace(SECRETS.path(settings.namespace, settings.secret_name), body)
