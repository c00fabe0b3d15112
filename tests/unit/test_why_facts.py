"""From API objects to ``why``'s facts: the fix is the product's own sentence, Events merged."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pkiwarden.why.facts import (
    TrustFacts,
    event_facts,
    pki_facts,
    secret_info,
    trust_facts,
    was_issued,
    writer_of,
    writers,
)
from shared.certificates import common_name, self_signed_ca
from shared.validation.pki import SecretInfo


def pki(name: str = "app2-pki", service: str = "app2", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": "app2", "generation": 1, "uid": "u-" + name},
        "spec": {"serviceName": service, **spec},
    }


def policy(services: list[str], namespaces: tuple[str, ...] = ("app1", "app2")) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": "app-teams"},
        "spec": {
            "namespaces": list(namespaces),
            "allowedServiceNames": services,
            "maxDuration": "2160h",
            "allowedKeyAlgorithms": ["ECDSA", "RSA"],
        },
    }


def test_a_pki_never_issued_is_re_checked_as_at_apply_time() -> None:
    facts = pki_facts(pki(), policies=[policy(["app1"])], namespace_labels={})
    assert facts.findings == (
        'spec.serviceName: "app2" in Pki app2-pki is not allowed in namespace "app2"'
        ' (allowed by PkiPolicy "app-teams": app1); did you mean "app1"?',
    )


def test_a_pki_once_issued_is_told_what_changed_as_the_readme_s_event_does() -> None:
    issued = {**pki(), "status": {"serialNumber": "0DF32C18C4D7ABC2AE158F697AC3C724"}}
    facts = pki_facts(issued, policies=[policy(["app1"])], namespace_labels={}, issued_before=True)
    assert facts.findings == (
        'spec.serviceName: "app2" in Pki app2-pki is not allowed in namespace "app2"'
        ' (PkiPolicy "app-teams" now allows: app1); ask the platform team to allow it,'
        " or change spec.serviceName",
    )
    assert facts.findings_reason == "NotAllowed"
    assert facts.policy.readable and facts.policy.deciding is None
    assert [rule.name for rule in facts.policy.selecting] == ["app-teams"]


def test_the_typo_gets_its_suggestion() -> None:
    facts = pki_facts(
        {**pki("app1-pki", "appp1"), "metadata": {"name": "app1-pki", "namespace": "app1"}},
        policies=[policy(["app1", "app2"])],
        namespace_labels={},
    )
    assert facts.findings is not None
    assert facts.findings[0].endswith(
        '(allowed by PkiPolicy "app-teams": app1, app2); did you mean "app1"?'
    )


def test_no_policy_selecting_the_namespace() -> None:
    facts = pki_facts(
        pki(), policies=[policy(["app2"], namespaces=("other",))], namespace_labels={}
    )
    assert facts.findings == (
        'metadata.namespace: "app2" in Pki app2-pki is not selected by any PkiPolicy, so no'
        " certificate can be issued there; ask the platform team to add it to a PkiPolicy",
    )
    assert facts.policy.readable and facts.policy.selecting == ()


def test_allowed_shows_the_deciding_policy_s_lists_for_this_pki() -> None:
    facts = pki_facts(pki(), policies=[policy(["app1", "app2"])], namespace_labels={})
    assert facts.findings == ()
    assert facts.policy.deciding == "app-teams"
    rule = facts.policy.selecting[0]
    assert rule.dns_names == ("app2.app2.svc", "app2.app2.svc.cluster.local")
    assert (rule.max_duration, rule.key_algorithms, rule.ip_ranges) == (
        "2160h",
        ("ECDSA", "RSA"),
        (),
    )
    assert facts.dns_names == ("app2.app2.svc", "app2.app2.svc.cluster.local")
    assert facts.secret_name == "app2-pki-tls"


def test_a_foreign_secret_blocks_issuance() -> None:
    foreign = SecretInfo("app2-pki-tls", managed_by_pkiwarden=False, owner_pki=None)
    facts = pki_facts(
        pki(),
        policies=[policy(["app2"])],
        namespace_labels={},
        secrets={"app2-pki-tls": foreign},
    )
    assert facts.findings == (
        'spec.secretName: "app2-pki-tls" in Pki app2-pki exists and is not managed by'
        " pkiwarden; issuance fails until it is removed or renamed",
    )
    assert facts.findings_reason == "SecretConflict"


def test_without_policies_status_is_all_there_is() -> None:
    failed = {
        **pki(),
        "status": {
            "observedGeneration": 1,
            "failedIssuanceAttempts": 4,
            "lastFailureTime": "2026-11-29T04:00:00Z",
            "nextRetryTime": "2026-11-29T04:00:32Z",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "NotAllowed", "message": "m"},
                {"type": "Issuing", "status": "True", "reason": "SecretMissing", "message": "x"},
            ],
        },
    }
    facts = pki_facts(failed, policies=None, namespace_labels=None)
    assert (facts.ready, facts.reason, facts.message, facts.attempts) == (
        False,
        "NotAllowed",
        "m",
        4,
    )
    assert (facts.last_failure, facts.next_retry) == (
        "2026-11-29T04:00:00Z",
        "2026-11-29T04:00:32Z",
    )
    assert facts.findings is None and not facts.policy.readable
    assert facts.up_to_date


def test_a_status_from_an_older_generation_is_flagged() -> None:
    older = {**pki(), "status": {"observedGeneration": 0, "conditions": []}}
    facts = pki_facts(older, policies=None, namespace_labels=None)
    assert facts.ready is None and not facts.up_to_date


def test_writers_and_secret_info() -> None:
    pkis = [pki("b", secretName="shared"), pki("a", secretName="shared"), pki("c")]
    assert writers(pkis) == {"shared": "a", "c-tls": "c"}
    labelled = {
        "metadata": {
            "name": "c-tls",
            "labels": {"app.kubernetes.io/managed-by": "pkiwarden", "pkiwarden.dev/pki": "c"},
        }
    }
    assert secret_info(labelled) == SecretInfo("c-tls", managed_by_pkiwarden=True, owner_pki="c")
    assert secret_info({"metadata": {"name": "x"}}) == SecretInfo("x", False, None)


@pytest.mark.parametrize(
    ("info", "claimant", "writer"),
    [
        (None, "c", "c"),  # absent: the Pki will write it
        (SecretInfo("c-tls", managed_by_pkiwarden=True, owner_pki="c"), "c", "c"),
        (SecretInfo("legacy", managed_by_pkiwarden=False, owner_pki=None), "c", None),
        (SecretInfo("legacy", managed_by_pkiwarden=False, owner_pki="c"), "c", None),
        (SecretInfo("b-tls", managed_by_pkiwarden=True, owner_pki="b"), "c", None),
        (SecretInfo("x", managed_by_pkiwarden=True, owner_pki="x"), None, None),
        (None, None, None),
    ],
    ids=[
        "absent",
        "pkiwarden's for that Pki",
        "someone else's",
        "labelled for the Pki but not pkiwarden's",
        "pkiwarden's for another Pki",
        "no Pki names it",
        "no Pki, no Secret",
    ],
)
def test_only_a_secret_with_pkiwardens_labels_for_the_pki_is_written_by_it(
    info: SecretInfo | None, claimant: str | None, writer: str | None
) -> None:
    assert writer_of(info, claimant) == writer


def event(
    obj: str, message: str, count: int, last: str, component: str = "pkiwarden-issuer"
) -> dict[str, Any]:
    kind, name = obj.split("/")
    return {
        "involvedObject": {"kind": kind.capitalize(), "name": name},
        "type": "Warning",
        "reason": "NotAllowed",
        "message": message,
        "count": count,
        "lastTimestamp": last,
        "source": {"component": component},
    }


def test_events_are_pkiwarden_s_merged_and_newest_first() -> None:
    events = [
        event("pod/app2-0", "m1", 2, "2026-11-29T04:00:00Z"),
        event("pod/app2-0", "m1", 3, "2026-11-29T04:01:00Z"),  # a second object, same words
        event("pki/app2-pki", "m1", 1, "2026-11-29T03:59:00Z"),
        event("pod/app2-0", "Back-off pulling image", 9, "2026-11-29T05:00:00Z", "kubelet"),
    ]
    merged = event_facts(events)
    assert [(e.object, e.count, e.last_seen) for e in merged] == [
        ("pod/app2-0", 5, "2026-11-29T04:01:00Z"),
        ("pki/app2-pki", 1, "2026-11-29T03:59:00Z"),
    ]
    many = [event("pod/p", f"m{i}", 1, f"2026-11-29T04:0{i}:00Z") for i in range(8)]
    assert [e.message for e in event_facts(many)] == ["m7", "m6", "m5", "m4", "m3"]


def test_trust_bundle_from_the_config_map() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    ca = self_signed_ca(common_name("pkiwarden CA"), key, now, dt.timedelta(days=3650))
    pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    trust = trust_facts({"data": {"ca.crt": pem + pem}})
    assert trust.present and trust.problem is None
    assert [(a.subject, a.not_after) for a in trust.authorities] == [
        ("CN=pkiwarden CA", "2036-11-26T00:00:00Z")  # 3650 days on
    ] * 2
    assert trust_facts(None) == TrustFacts(present=False)
    broken = trust_facts({"data": {"ca.crt": "not pem"}})
    assert broken.present and broken.authorities == ()
    assert broken.problem is not None and broken.problem.startswith("ca.crt holds no readable")


def test_a_pki_was_issued_if_its_status_or_an_issued_event_says_so() -> None:
    issued_event = {"reason": "Issued", "source": {"component": "pkiwarden-issuer"}}
    failed_event = {**issued_event, "reason": "NotAllowed"}
    with_serial = {**pki(), "status": {"serialNumber": "0D"}}
    assert was_issued(with_serial, [])
    assert was_issued(pki(), [failed_event, issued_event])
    assert not was_issued(pki(), [failed_event])
