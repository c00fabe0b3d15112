"""The webhook on Pods and Pod templates that ask pkiwarden for a Pod certificate."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.unit.reviews import CONTEXT, review_body
from webhook.decision import decide

SOURCE_PATH = "spec.template.spec.volumes[0].projected.sources[0].podCertificate"


def pod_spec(**source: Any) -> dict[str, Any]:
    return {
        "serviceAccountName": "app1",
        "containers": [{"name": "app", "image": "app"}],
        "volumes": [
            {
                "name": "tls",
                "projected": {
                    "sources": [
                        {
                            "podCertificate": {
                                "signerName": "pkiwarden.dev/default",
                                "keyType": "ECDSAP256",
                                "credentialBundlePath": "bundle.pem",
                                **source,
                            }
                        }
                    ]
                },
            }
        ],
    }


def workload(kind: str, group: str, spec: dict[str, Any]) -> dict[str, Any]:
    return review_body(
        kind={"group": group, "version": "v1", "kind": kind},
        resource={"group": group, "version": "v1", "resource": kind.lower() + "s"},
        object={"kind": kind, "metadata": {"name": "app1", "namespace": "app1"}, "spec": spec},
    )


def deployment(**source: Any) -> dict[str, Any]:
    return workload("Deployment", "apps", {"template": {"spec": pod_spec(**source)}})


def test_an_allowed_pod_certificate_is_admitted_silently() -> None:
    answer = decide(
        deployment(userAnnotations={"pkiwarden.dev/dns-names": "app1.app1.svc"}), CONTEXT
    )
    assert answer["response"] == {"uid": "uid-1", "allowed": True}


def test_every_finding_of_a_template_is_denied_at_once_with_its_path() -> None:
    answer = decide(
        deployment(
            keyType="ECDSAP521",
            userAnnotations={
                "pkiwarden.dev/dns-name": "x",
                "pkiwarden.dev/dns-names": "ap1.app1.svc",
            },
        ),
        CONTEXT,
    )
    response = answer["response"]
    assert response["allowed"] is False and response["status"]["code"] == 403
    message = response["status"]["message"]
    assert f'{SOURCE_PATH}.userAnnotations: "pkiwarden.dev/dns-name" has a key' in message
    assert 'did you mean "pkiwarden.dev/dns-names"?' in message
    assert f'{SOURCE_PATH}.keyType: "ECDSAP521" is a key type pkiwarden does not sign' in message
    assert (
        f'{SOURCE_PATH}.userAnnotations["pkiwarden.dev/dns-names"][0]: "ap1.app1.svc" is not '
        'allowed by PkiPolicy "app-teams"'
    ) in message
    assert 'did you mean "app1.app1.svc"?' in message


def test_a_lifetime_beyond_the_policy_is_a_warning() -> None:
    context = CONTEXT.__class__(
        policies=[
            {
                "metadata": {"name": "short"},
                "spec": {
                    "namespaces": ["app1"],
                    "allowedServiceNames": ["app1"],
                    "maxDuration": "2h",
                },
            }
        ],
        namespace_labels={},
    )
    answer = decide(deployment(maxExpirationSeconds=86400), context)
    assert answer["response"]["allowed"] is True
    assert answer["response"]["warnings"] == [
        f'{SOURCE_PATH}.maxExpirationSeconds: 86400 is longer than PkiPolicy "short" allows '
        "(maxDuration 2:00:00); certificates are issued for 7200 seconds"
    ]


@pytest.mark.parametrize(
    ("kind", "group", "spec", "path"),
    [
        ("Pod", "", pod_spec(keyType="RSA2048"), "spec.volumes[0]"),
        ("Job", "batch", {"template": {"spec": pod_spec(keyType="RSA2048")}}, "spec.template.spec"),
        (
            "CronJob",
            "batch",
            {"jobTemplate": {"spec": {"template": {"spec": pod_spec(keyType="RSA2048")}}}},
            "spec.jobTemplate.spec.template.spec.volumes[0]",
        ),
    ],
)
def test_each_kind_is_judged_where_it_keeps_its_pod_spec(
    kind: str, group: str, spec: dict[str, Any], path: str
) -> None:
    answer = decide(workload(kind, group, spec), CONTEXT)
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"]["message"].startswith(path)


def test_another_signers_source_is_not_pkiwardens_business() -> None:
    answer = decide(deployment(signerName="example.com/other", keyType="nonsense"), CONTEXT)
    assert answer["response"]["allowed"] is True


def test_an_unknown_authority_is_denied_with_the_signers_there_are() -> None:
    context = dataclasses.replace(CONTEXT, authorities=frozenset({"default", "platform"}))
    answer = decide(deployment(signerName="pkiwarden.dev/defualt"), context)
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"]["message"] == (
        f'{SOURCE_PATH}.signerName: "pkiwarden.dev/defualt" names no PkiAuthority (signers: '
        'pkiwarden.dev/default, pkiwarden.dev/platform); did you mean "pkiwarden.dev/default"?'
    )
