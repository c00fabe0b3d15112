"""The judgement of a Pod certificate ask: a table of asks, policies and the findings they get."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.findings import phrase
from shared.validation.pod_certificate import (
    REQUEST_PATHS,
    AskContext,
    PodCertificateAsk,
    judge_pod_certificate,
    source_paths,
)

NS = "app1"


def policy(name: str = "teams", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"namespaces": [NS], "allowedServiceNames": ["web"], **spec},
    }


def ask(**fields: Any) -> PodCertificateAsk:
    given: dict[str, Any] = {
        "namespace": NS,
        "service_account": "web",
        "signer": "pkiwarden.dev/default",
        "key_type": "ECDSAP256",
        "max_expiration_seconds": 3600,
        "annotations": {},
        **fields,
    }
    return PodCertificateAsk(**given)


def context(*policies: dict[str, Any], **fields: Any) -> AskContext:
    given: dict[str, Any] = {
        "policies": policies or (policy(),),
        "namespace_labels": {},
        "authorities": frozenset({"default", "team-ca"}),
        **fields,
    }
    return AskContext(**given)


def errors(judged_ask: PodCertificateAsk, ctx: AskContext) -> list[str]:
    judged = judge_pod_certificate(judged_ask, REQUEST_PATHS, ctx)
    return [phrase(f) for f in judged.findings if f.is_error]


DNS = 'spec.unverifiedUserAnnotations["pkiwarden.dev/dns-names"]'

CASES: list[tuple[str, PodCertificateAsk, AskContext, list[str]]] = [
    ("identity only", ask(), context(), []),
    (
        "allowed name",
        ask(annotations={"pkiwarden.dev/dns-names": "web.app1.svc, web.app1.svc.cluster.local"}),
        context(),
        [],
    ),
    (
        "name the policy does not allow, with the fix",
        ask(annotations={"pkiwarden.dev/dns-names": "webb.app1.svc"}),
        context(),
        [
            f'{DNS}[0]: "webb.app1.svc" is not allowed by PkiPolicy "teams" (allowed: '
            'web.app1.svc, web.app1.svc.cluster.local); did you mean "web.app1.svc"?'
        ],
    ),
    (
        "names for a ServiceAccount that is not an allowed service",
        ask(service_account="batch", annotations={"pkiwarden.dev/dns-names": "batch.app1.svc"}),
        context(),
        [
            'spec.serviceAccountName: "batch" is not allowed as a service name by PkiPolicy '
            '"teams" (allowed: web); the DNS names of pkiwarden.dev/dns-names are judged for '
            "the Pod's ServiceAccount, so run the Pod as an allowed one or ask for no DNS names"
        ],
    ),
    (
        "namespace no policy selects",
        ask(namespace="other"),
        context(),
        [
            'metadata.namespace: "other" is not selected by any PkiPolicy, so no Pod '
            "certificate can be issued there; ask the platform team to add it to a PkiPolicy"
        ],
    ),
    (
        "unknown pkiwarden annotation key, did you mean",
        ask(annotations={"pkiwarden.dev/dns-name": "web.app1.svc"}),
        context(),
        [
            'spec.unverifiedUserAnnotations: "pkiwarden.dev/dns-name" has a key pkiwarden does '
            'not know (known: pkiwarden.dev/dns-names); did you mean "pkiwarden.dev/dns-names"?'
        ],
    ),
    ("another domain's annotation is left alone", ask(annotations={"x.io/a": "b"}), context(), []),
    (
        "unknown authority",
        ask(signer="pkiwarden.dev/team-cb"),
        context(),
        [
            'spec.signerName: "pkiwarden.dev/team-cb" names no PkiAuthority (signers: '
            'pkiwarden.dev/default, pkiwarden.dev/team-ca); did you mean "pkiwarden.dev/team-ca"?'
        ],
    ),
    (
        "authority the policy does not allow",
        ask(signer="pkiwarden.dev/team-ca"),
        context(),
        [
            'spec.signerName: "pkiwarden.dev/team-ca" names authority "team-ca", which PkiPolicy '
            '"teams" does not allow (allowedAuthorities: default)'
        ],
    ),
    (
        "authority a policy allows",
        ask(signer="pkiwarden.dev/team-ca"),
        context(policy(allowedAuthorities=["team-ca"])),
        [],
    ),
    (
        "key type pkiwarden does not sign",
        ask(key_type="ECDSAP521"),
        context(),
        [
            'spec.stubPKCS10Request: "ECDSAP521" is a key type pkiwarden does not sign (it '
            "signs ECDSAP256, ECDSAP384, ED25519, RSA3072, RSA4096); use keyType ECDSAP256"
        ],
    ),
    (
        "key algorithm the policy does not allow",
        ask(key_type="ED25519"),
        context(policy(allowedKeyAlgorithms=["RSA"])),
        [
            'spec.stubPKCS10Request: "ED25519" is an Ed25519 key, which PkiPolicy "teams" does '
            "not allow (allowedKeyAlgorithms: RSA); use keyType RSA3072"
        ],
    ),
    (
        "RSA smaller than the policy's minimum",
        ask(key_type="RSA3072"),
        context(policy(minRSASize=4096)),
        [
            'spec.stubPKCS10Request: "RSA3072" is smaller than PkiPolicy "teams" allows '
            "(minRSASize 4096); use keyType ECDSAP256"
        ],
    ),
    (
        "lifetime below the API's minimum",
        ask(max_expiration_seconds=600),
        context(),
        [
            "spec.maxExpirationSeconds: 600 is out of range: at least 3600 (1 hour), "
            "at most 7862400 (91 days)"
        ],
    ),
]


@pytest.mark.parametrize(
    ("judged_ask", "ctx", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_findings(judged_ask: PodCertificateAsk, ctx: AskContext, expected: list[str]) -> None:
    assert errors(judged_ask, ctx) == expected


def test_the_lifetime_is_the_shorter_of_the_ask_and_the_policy() -> None:
    judged = judge_pod_certificate(
        ask(max_expiration_seconds=86400), REQUEST_PATHS, context(policy(maxDuration="2h"))
    )
    assert judged.allowed and judged.lifetime == timedelta(hours=2)
    assert [phrase(f) for f in judged.findings] == [
        'spec.maxExpirationSeconds: 86400 is longer than PkiPolicy "teams" allows (maxDuration '
        "2:00:00); certificates are issued for 7200 seconds"
    ]


def test_the_api_default_lifetime_applies_when_the_ask_leaves_it_out() -> None:
    judged = judge_pod_certificate(ask(max_expiration_seconds=None), REQUEST_PATHS, context())
    assert judged.lifetime == timedelta(hours=24)


def test_one_policy_allowing_everything_wins_over_one_that_refuses() -> None:
    judged = judge_pod_certificate(
        ask(annotations={"pkiwarden.dev/dns-names": "web.example.com"}),
        REQUEST_PATHS,
        context(policy("narrow"), policy("wide", allowedDNSNames=["*.example.com"])),
    )
    assert judged.allowed and judged.policy == "wide"


def test_a_volume_sources_findings_carry_its_paths() -> None:
    paths = source_paths(
        "spec.template.spec.volumes[0].projected.sources[1].podCertificate",
        "spec.template.spec",
    )
    judged = judge_pod_certificate(ask(key_type="ECDSAP521"), paths, context())
    assert [f.path for f in judged.findings] == [
        "spec.template.spec.volumes[0].projected.sources[1].podCertificate.keyType"
    ]


def test_unknown_authorities_are_not_reported_when_they_are_not_known() -> None:
    assert errors(ask(signer="pkiwarden.dev/anything"), context(authorities=None)) == [
        'spec.signerName: "pkiwarden.dev/anything" names authority "anything", which PkiPolicy '
        '"teams" does not allow (allowedAuthorities: default)'
    ]
