"""The checked-in webhook registration is the rendering from code, and says what we mean."""

from __future__ import annotations

from pathlib import Path

import yaml

from webhook.registration import deploy_yaml, url_client_config, webhook_configuration
from webhook.settings import CertificateSettings

DEPLOYED = Path(__file__).resolve().parents[2] / "deploy" / "webhook"
MANIFEST = DEPLOYED / "validatingwebhookconfiguration.yaml"


def test_checked_in_manifest_is_the_rendering() -> None:
    assert MANIFEST.read_text() == deploy_yaml(), "run: python -m webhook.registration > " + str(
        MANIFEST.relative_to(DEPLOYED.parents[1])
    )


def test_every_webhook_fails_closed_and_skips_the_system_namespace() -> None:
    document = yaml.safe_load(MANIFEST.read_text())
    assert document["kind"] == "ValidatingWebhookConfiguration"
    by_name = {webhook["name"]: webhook for webhook in document["webhooks"]}
    assert set(by_name) == {
        "pkis.pkiwarden.dev",
        "pkipolicies.pkiwarden.dev",
        "pkiauthorities.pkiwarden.dev",
        "pods.podcertificates.pkiwarden.dev",
        "templates.podcertificates.pkiwarden.dev",
        "cronjobs.podcertificates.pkiwarden.dev",
    }
    for webhook in by_name.values():
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["sideEffects"] == "None"
        assert webhook["failurePolicy"] == "Fail"
        assert webhook["matchPolicy"] == "Equivalent"
        assert webhook["timeoutSeconds"] == 5
        assert webhook["namespaceSelector"] == {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": ["pkiwarden-system"],
                }
            ]
        }
        assert webhook["clientConfig"]["service"]["path"] == "/validate"
        assert webhook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert by_name["pkis.pkiwarden.dev"]["rules"][0]["resources"] == ["pkis"]
    assert by_name["pkipolicies.pkiwarden.dev"]["rules"][0]["resources"] == ["pkipolicies"]
    assert by_name["pkiauthorities.pkiwarden.dev"]["rules"][0]["resources"] == ["pkiauthorities"]


def test_local_registration_uses_a_loopback_url_with_the_ca_bundle() -> None:
    document = webhook_configuration(
        CertificateSettings(local=True), url_client_config("127.0.0.1", 9443, b"PEM")
    )
    for webhook in document["webhooks"]:
        assert webhook["clientConfig"] == {
            "url": "https://127.0.0.1:9443/validate",
            "caBundle": "UEVN",
        }


def test_only_pods_and_templates_asking_a_pkiwarden_signer_are_sent() -> None:
    """The API server filters with matchConditions: other Pods never reach the webhook."""
    document = yaml.safe_load(MANIFEST.read_text())
    by_name = {webhook["name"]: webhook for webhook in document["webhooks"]}
    pods = by_name["pods.podcertificates.pkiwarden.dev"]
    assert [r["resources"] for r in pods["rules"]] == [["pods"]]
    assert [c["name"] for c in pods["matchConditions"]] == ["not-owned", "asks-pkiwarden"]
    templates = by_name["templates.podcertificates.pkiwarden.dev"]
    assert {r["resources"][0] for r in templates["rules"]} == {
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "jobs",
    }
    assert [c["name"] for c in templates["matchConditions"]] == ["not-owned", "asks-pkiwarden"]
    expression = templates["matchConditions"][1]["expression"]
    assert "object.spec.template.spec.volumes.exists(" in expression
    assert "startsWith('pkiwarden.dev/')" in expression
    cron = by_name["cronjobs.podcertificates.pkiwarden.dev"]
    assert "object.spec.jobTemplate.spec.template.spec" in cron["matchConditions"][0]["expression"]
