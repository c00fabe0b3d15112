"""``why pod/X`` with Pod certificates: the Pod's requests, their answers and the fix."""

from __future__ import annotations

from typing import Any

from pkiwarden.why.facts import Facts
from pkiwarden.why.pod_certificates import pod_certificate_facts
from pkiwarden.why.render import Exit, headline, render_text
from pkiwarden.why.targets import Kind, Target

DENIED = (
    'spec.unverifiedUserAnnotations["pkiwarden.dev/dns-names"][0]: "db.app1.svc" in '
    'PodCertificateRequest req-2 is not allowed by PkiPolicy "teams" (allowed: web.app1.svc)'
)


def request(name: str, created: str, pod: str = "web-1", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"signerName": "pkiwarden.dev/default", "podName": pod, "podUID": "uid-1"},
        "status": status,
    }


def issued(name: str, created: str) -> dict[str, Any]:
    condition = {"type": "Issued", "status": "True", "reason": "Issued", "message": "ok"}
    return request(
        name,
        created,
        conditions=[condition],
        notAfter="2030-01-01T13:00:00Z",
        beginRefreshAt="2030-01-01T12:40:00Z",
    )


def denied(name: str, created: str) -> dict[str, Any]:
    condition = {"type": "Denied", "status": "True", "reason": "NotAllowed", "message": DENIED}
    return request(name, created, conditions=[condition])


TARGET = Target(Kind.POD, "web-1", "app1")


def test_a_denied_request_makes_the_pod_not_ready_with_its_message_as_the_fix() -> None:
    requests = [denied("req-2", "2030-01-01T12:00:01Z"), request("other", "x", pod="web-2")]
    facts = Facts(TARGET, pod_certificates=pod_certificate_facts(requests, "web-1", "uid-1"))
    result = headline(facts)
    assert result.exit is Exit.NOT_READY
    assert result.line == (
        "NOT READY: pod/web-1 in namespace app1: PodCertificateRequest req-2 "
        "(pkiwarden.dev/default) was Denied (NotAllowed)"
    )
    assert result.fix == DENIED
    assert "  PodCertificateRequest req-2 (pkiwarden.dev/default): Denied NotAllowed: " in (
        render_text(facts)
    )


def test_the_latest_request_is_the_pods_current_certificate() -> None:
    requests = [issued("req-3", "2030-01-01T12:01:00Z"), denied("req-2", "2030-01-01T12:00:01Z")]
    facts = Facts(TARGET, pod_certificates=pod_certificate_facts(requests, "web-1", "uid-1"))
    result = headline(facts)
    assert result.exit is Exit.READY
    assert result.line.endswith("its Pod certificate from pkiwarden.dev/default is issued")
    text = render_text(facts)
    assert (
        "  PodCertificateRequest req-3 (pkiwarden.dev/default): Issued, expires "
        "2030-01-01T13:00:00Z, refreshed from 2030-01-01T12:40:00Z"
    ) in text


def test_an_unanswered_request_asks_whether_the_issuer_runs() -> None:
    facts = Facts(
        TARGET,
        pod_certificates=pod_certificate_facts(
            [request("req-1", "2030-01-01T12:00:00Z")], "web-1", "uid-1"
        ),
    )
    assert headline(facts).line.endswith("has no answer yet; is the pkiwarden issuer running?")
