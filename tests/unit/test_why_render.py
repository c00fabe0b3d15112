"""``why``'s renderer from gathered facts: verdict, exit status, fix and the chain, as tables."""

from __future__ import annotations

import dataclasses

import pytest

from pkiwarden.why.chain import CHAIN_WHO, ChainFacts
from pkiwarden.why.facts import (
    Authority,
    EventFacts,
    Facts,
    PkiFacts,
    PolicyFacts,
    PolicyRule,
    SecretFacts,
    TrustFacts,
    Unchecked,
)
from pkiwarden.why.render import Exit, headline, render_json, render_text
from pkiwarden.why.secret_uses import How, Use
from pkiwarden.why.targets import Kind, Target

CA = Authority("CN=pkiwarden development CA", "2036-11-27T03:58:58Z")
POD = Target(Kind.POD, "app2-0", "app2")
VOLUME = (Use(How.VOLUME, "tls"),)
APP_TEAMS = PolicyRule(
    name="app-teams",
    service_names=("app1",),
    dns_names=("app2.app2.svc", "app2.app2.svc.cluster.local"),
    ip_ranges=(),
    max_duration="2160h",
    key_algorithms=("ECDSA", "RSA"),
)
NOT_ALLOWED = (
    'spec.serviceName: "app2" in Pki app2-pki is not allowed in namespace "app2"'
    ' (allowed by PkiPolicy "app-teams": app1); did you mean "app1"?'
)
READY = PkiFacts(
    name="app2-pki",
    service_name="app2",
    secret_name="app2-pki-tls",
    dns_names=("app2.app2.svc", "app2.app2.svc.cluster.local"),
    ready=True,
    reason="Issued",
    message="certificate 1f issued into Secret app2-pki-tls, valid until 2027-02-25T03:58:58Z",
    serial="1f",
    not_after="2027-02-25T03:58:58Z",
    renewal_time="2026-12-27T03:58:58Z",
    findings=(),
    policy=PolicyFacts(
        readable=True,
        selecting=(dataclasses.replace(APP_TEAMS, service_names=("app1", "app2")),),
        deciding="app-teams",
    ),
)
SECRET = SecretFacts("app2-pki-tls", VOLUME, exists=True, managed=True, written_by="app2-pki")


def failing(reason: str, message: str, **changes: object) -> PkiFacts:
    """The Pki as the issuer leaves it after a failure; policies not readable unless changed."""
    base = dataclasses.replace(
        READY,
        ready=False,
        reason=reason,
        message=message,
        serial=None,
        not_after=None,
        renewal_time=None,
        last_failure="2026-11-29T04:00:00Z",
        next_retry="2026-11-29T04:00:08Z",
        attempts=3,
        findings=None,
        policy=PolicyFacts(readable=False),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def facts(*pkis: PkiFacts, secrets: tuple[SecretFacts, ...] = (SECRET,), **more: object) -> Facts:
    return Facts(target=POD, secrets=secrets, pkis=pkis, **more)  # type: ignore[arg-type]


CA_MESSAGE = 'Pki app2-pki cannot be issued: the CA Secret "pkiwarden-ca" does not exist'
CONFLICT = (
    'Secret "app2-pki-tls" was not created by pkiwarden, so Pki app2-pki will not overwrite it;'
    " delete it or set spec.secretName"
)
INVALID = 'spec.duration: "30m" in Pki app2-pki is shorter than the minimum, 1h'
REFUSED = 'the API server refused to create Secret "app2-pki-tls": etcdserver: request timed out'
NO_POLICY = (
    'metadata.namespace: "app2" in Pki app2-pki is not selected by any PkiPolicy, so no'
    " certificate can be issued there; ask the platform team to add it to a PkiPolicy"
)


CASES = [
    (
        "Ready",
        facts(READY),
        Exit.READY,
        "READY: pod/app2-0 in namespace app2: every certificate it needs is Ready (Pki app2-pki)",
        None,
        None,
    ),
    (
        "NotAllowed, policies unreadable: the issuer's words",
        facts(failing("NotAllowed", NOT_ALLOWED)),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki is not Ready (NotAllowed)",
        NOT_ALLOWED,
        "you (the Pki's spec) or the platform team (the PkiPolicy)",
    ),
    (
        "NotAllowed, re-checked against the policies",
        facts(
            failing(
                "NotAllowed",
                NOT_ALLOWED,
                findings=(NOT_ALLOWED,),
                findings_reason="NotAllowed",
                policy=PolicyFacts(readable=True, selecting=(APP_TEAMS,), deciding=None),
            )
        ),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki is not Ready (NotAllowed)",
        NOT_ALLOWED,
        "you (the Pki's spec) or the platform team (the PkiPolicy)",
    ),
    (
        "InvalidSpec",
        facts(failing("InvalidSpec", INVALID)),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki is not Ready (InvalidSpec)",
        INVALID,
        "you: correct the Pki's spec",
    ),
    (
        "SecretConflict: the Secret is foreign",
        facts(
            failing("SecretConflict", CONFLICT),
            secrets=(dataclasses.replace(SECRET, managed=False),),
        ),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki is not Ready (SecretConflict)",
        CONFLICT,
        "you: remove or rename that Secret, or set the Pki's spec.secretName",
    ),
    (
        "CAUnavailable",
        facts(failing("CAUnavailable", CA_MESSAGE)),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki is not Ready (CAUnavailable)",
        CA_MESSAGE,
        "the platform team: the CA is theirs; nothing in a namespace fixes it",
    ),
    (
        "IssuanceFailed",
        facts(failing("IssuanceFailed", REFUSED)),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki is not Ready (IssuanceFailed)",
        REFUSED,
        "the issuer retries by itself; if it persists, the platform team",
    ),
    (
        "policy missing: no PkiPolicy selects the namespace",
        facts(
            failing(
                "NotAllowed",
                NO_POLICY,
                findings=(NO_POLICY,),
                findings_reason="NotAllowed",
                policy=PolicyFacts(readable=True),
            )
        ),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki is not Ready (NotAllowed)",
        NO_POLICY,
        "you (the Pki's spec) or the platform team (the PkiPolicy)",
    ),
    (
        "Ready now, but the policy changed: the next issuance would fail",
        facts(dataclasses.replace(READY, findings=(NOT_ALLOWED,), findings_reason="NotAllowed")),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki is Ready, but its next"
        " issuance would fail",
        NOT_ALLOWED,
        "you (the Pki's spec) or the platform team (the PkiPolicy)",
    ),
    (
        "not reported on by the issuer yet",
        facts(dataclasses.replace(READY, ready=None, reason=None, message=None, serial=None)),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki: the issuer has not reported"
        " on it yet (is the issuer running?)",
        None,
        None,
    ),
    (
        "several Secrets: one from a Pki, one plain, one missing",
        facts(
            READY,
            secrets=(
                SECRET,
                SecretFacts("db-password", (Use(How.ENV, "app"),), exists=True, managed=False),
                SecretFacts("api-token", (Use(How.ENV_FROM, "app"),), exists=False),
            ),
        ),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Secret api-token does not exist and no"
        " Pki writes it",
        "create Secret api-token, or a Pki with spec.secretName: api-token",
        None,
    ),
    (
        "the Pkis could not be read: not known to be Ready",
        facts(
            secrets=(SecretFacts("app2-pki-tls", VOLUME, exists=True, managed=True),),
            pkis_readable=False,
        ),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: the Pkis of namespace app2 could not be read,"
        " so whether its certificates are Ready is unknown",
        None,
        None,
    ),
    (
        "a Ready Pki's Secret is missing (deleted since)",
        facts(READY, secrets=(dataclasses.replace(SECRET, exists=False, managed=None),)),
        Exit.NOT_READY,
        "NOT READY: pod/app2-0 in namespace app2: Secret app2-pki-tls (written by Pki app2-pki)"
        " does not exist yet",
        None,
        None,
    ),
    (
        "no Secret from a Pki at all",
        facts(secrets=(SecretFacts("db-password", VOLUME, exists=True, managed=False),)),
        Exit.READY,
        "READY: pod/app2-0 in namespace app2: it uses no Secret written by a Pki",
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "given", "exit", "first_line", "fix", "who"), CASES, ids=[c[0] for c in CASES]
)
def test_verdict(
    case: str, given: Facts, exit: Exit, first_line: str, fix: str | None, who: str | None
) -> None:
    result = headline(given)
    assert (result.exit, result.line, result.fix, result.who) == (exit, first_line, fix, who)
    text = render_text(given)
    assert text.splitlines()[0] == first_line
    assert (f"Fix: {fix}" in text) == (fix is not None)
    document = render_json(given)
    assert (document["exitCode"], document["verdict"], document["fix"]) == (exit, first_line, fix)


def test_the_chain_in_text() -> None:
    given = facts(
        failing(
            "NotAllowed",
            NOT_ALLOWED,
            findings=(NOT_ALLOWED,),
            findings_reason="NotAllowed",
            policy=PolicyFacts(readable=True, selecting=(APP_TEAMS,), deciding=None),
        ),
        events=(
            EventFacts(
                "pod/app2-0", "Warning", "NotAllowed", NOT_ALLOWED, 3, "2026-11-29T04:00:00Z"
            ),
        ),
    )
    assert render_text(given).splitlines()[1:] == [
        "Secrets:",
        "  Secret app2-pki-tls (volume tls): exists; written by Pki app2-pki",
        "Pki:",
        "  Pki app2-pki: not Ready (NotAllowed); service app2, Secret app2-pki-tls",
        "    DNS names app2.app2.svc, app2.app2.svc.cluster.local",
        f"    message: {NOT_ALLOWED}",
        "    last failure 2026-11-29T04:00:00Z, next retry 2026-11-29T04:00:08Z, 3 attempt(s)",
        "    re-checked now: fails the same way",
        "    PkiPolicy app-teams: service names app1",
        "    no selecting PkiPolicy allows service name 'app2'",
        "Events (pkiwarden, newest first):",
        f"  2026-11-29T04:00:00Z Warning NotAllowed on pod/app2-0 (x3): {NOT_ALLOWED}",
        f"Fix: {NOT_ALLOWED}",
        "Who can fix it: you (the Pki's spec) or the platform team (the PkiPolicy)",
    ]


def test_ready_shows_the_certificate_and_the_deciding_policy() -> None:
    lines = render_text(facts(READY)).splitlines()
    assert (
        "    certificate 1f, valid until 2027-02-25T03:58:58Z, renewal at 2026-12-27T03:58:58Z"
        in lines
    )
    assert "    PkiPolicy app-teams (decides): service names app1, app2" in lines
    assert "      max duration 2160h" in lines
    assert not any(line.startswith(("Fix:", "Not checked:")) for line in lines)


def test_what_could_not_be_checked_is_said_with_the_permission() -> None:
    pki = failing("NotAllowed", NOT_ALLOWED)
    needs = "list pkipolicies.pkiwarden.dev (the pkiwarden policy-reader component grants it)"
    given = facts(
        pki,
        secrets=(SecretFacts("app2-pki-tls", VOLUME, written_by="app2-pki"),),
        unchecked=(
            Unchecked("Secret app2-pki-tls", "get secrets in namespace app2"),
            Unchecked("the PkiPolicies", needs),
        ),
    )
    text = render_text(given)
    assert "  Secret app2-pki-tls (volume tls): not readable; written by Pki app2-pki" in text
    assert "policy: PkiPolicies not readable with these permissions" in text
    assert "Not checked:\n  Secret app2-pki-tls: needs get secrets in namespace app2\n" in text
    assert f"  the PkiPolicies: needs {needs}\n" in text
    assert render_json(given)["unchecked"][1] == {"what": "the PkiPolicies", "needs": needs}


def test_json_field_names_are_the_documented_ones() -> None:
    """Scripts and dashboards read these names; the README lists them. Renaming one fails here."""
    given = facts(
        failing("NotAllowed", NOT_ALLOWED, policy=PolicyFacts(True, (APP_TEAMS,), None)),
        events=(EventFacts("pki/app2-pki", "Warning", "NotAllowed", NOT_ALLOWED, 1, None),),
        unchecked=(Unchecked("x", "y"),),
        consumers=("pod/app2-0",),
    )
    document = render_json(given)
    assert list(document) == [
        "target", "exitCode", "ready", "verdict", "fix", "whoCanFix",
        "secrets", "pkis", "consumers", "events", "trust", "unchecked",
    ]  # fmt: skip
    assert list(document["target"]) == ["kind", "name", "namespace"]
    assert list(document["secrets"][0]) == [
        "name", "uses", "exists", "managedByPkiwarden", "writtenBy", "claimedBy", "certificate",
    ]  # fmt: skip
    assert document["secrets"][0]["certificate"] is None  # not checked
    assert document["secrets"][0]["uses"] == [{"how": "volume", "via": "tls"}]
    assert list(document["pkis"][0]) == [
        "name", "serviceName", "secretName", "dnsNames", "ready", "reason", "message",
        "serialNumber", "notAfter", "renewalTime", "lastFailureTime", "nextRetryTime",
        "failedIssuanceAttempts", "upToDate", "findings", "policy", "authority",
    ]  # fmt: skip
    assert list(document["pkis"][0]["policy"]) == ["readable", "deciding", "selecting"]
    assert list(document["pkis"][0]["policy"]["selecting"][0]) == [
        "name", "allowedServiceNames", "allowedDNSNames", "allowedIPRanges", "maxDuration",
        "allowedKeyAlgorithms",
    ]  # fmt: skip
    assert document["trust"] is None  # not looked at
    trusted = render_json(dataclasses.replace(given, trust=TrustFacts(True, (CA,))))["trust"]
    assert list(trusted) == ["configMap", "present", "authorities", "problem"]
    assert trusted["authorities"] == [{"subject": CA.subject, "notAfter": CA.not_after}]
    assert list(document["events"][0]) == [
        "object", "type", "reason", "message", "count", "lastSeen",
    ]  # fmt: skip


def test_a_foreign_secret_is_named_as_such() -> None:
    """A Secret the Pki names but cannot write is taken, not written by it; nothing of it is
    checked as the Pki's certificate, and the verdict names the conflict alone."""
    foreign = dataclasses.replace(SECRET, managed=False, written_by=None, claimed_by="app2-pki")
    given = facts(failing("SecretConflict", CONFLICT), secrets=(foreign,))
    text = render_text(given)
    expected = "  Secret app2-pki-tls (volume tls): exists, not managed by pkiwarden;"
    assert expected + " taken: Pki app2-pki names it in spec.secretName and cannot write it" in text
    assert "written by Pki" not in text
    assert headline(given).line == (
        "NOT READY: pod/app2-0 in namespace app2: Pki app2-pki is not Ready (SecretConflict)"
    )
    document = render_json(given)["secrets"][0]
    assert document["managedByPkiwarden"] is False
    assert (document["writtenBy"], document["claimedBy"]) == (None, "app2-pki")
    assert document["certificate"] is None


def test_a_re_check_that_differs_from_the_status_is_shown() -> None:
    """The policy changed since the last attempt: the status is stale, the re-check is not."""
    stale = failing("NotAllowed", NOT_ALLOWED, findings=(), findings_reason=None)
    text = render_text(facts(stale))
    assert "re-checked now" not in text
    fix = (
        "Fix: none needed any more: Pki app2-pki passes the check now; the issuer retries it"
        " as soon as it sees the change (at the latest at 2026-11-29T04:00:08Z)"
    )
    assert fix in text.splitlines()
    ca = render_text(facts(failing("CAUnavailable", CA_MESSAGE, findings=())))
    assert f"Fix: {CA_MESSAGE}" in ca  # the re-check knows nothing of the CA
    now = failing("NotAllowed", NOT_ALLOWED, findings=(NO_POLICY,), findings_reason="NotAllowed")
    text = render_text(facts(now))
    assert f"    re-checked now: {NO_POLICY}" in text
    assert f"Fix: {NO_POLICY}" in text


@pytest.mark.parametrize(
    ("trust", "lines"),
    [
        (
            TrustFacts(True, (CA,)),
            [
                "Trust bundle: ConfigMap pkiwarden-ca.crt in namespace app2, 1 CA(s):",
                "  CN=pkiwarden development CA, valid until 2036-11-27T03:58:58Z",
            ],
        ),
        (
            TrustFacts(False),
            ["Trust bundle: none published in namespace app2 (pkiwarden-ca.crt)"],
        ),
        (
            TrustFacts(True, problem="ca.crt holds no readable certificate: x"),
            [
                "Trust bundle: ConfigMap pkiwarden-ca.crt in namespace app2:"
                " ca.crt holds no readable certificate: x"
            ],
        ),
        (TrustFacts(None), []),  # unreadable: said under "Not checked" with the permission
    ],
)
def test_trust_bundle(trust: TrustFacts, lines: list[str]) -> None:
    text = render_text(facts(READY, trust=trust)).splitlines()
    shown = [line for line in text if line.startswith(("Trust bundle", "  CN="))]
    assert shown == lines


CHAINS = ChainFacts(
    serial="0A1B",
    not_before="2026-11-29T03:55:00Z",
    not_after="2027-02-27T04:00:00Z",
    issuer="CN=pkiwarden development CA",
    chains=True,
    authority_subject="CN=pkiwarden development CA",
    authority_serial="7F01",
    valid_now=True,
)
FOREIGN = dataclasses.replace(
    CHAINS,
    chains=False,
    authority_subject=None,
    authority_serial=None,
    problem="issued by CN=pkiwarden development CA, which is not a CA in pkiwarden-ca.crt",
)


@pytest.mark.parametrize(
    ("chain", "exit", "lines", "fix"),
    [
        (
            CHAINS,
            Exit.READY,
            [
                "    certificate chains to trust bundle CA CN=pkiwarden development CA"
                " (serial 7F01)",
                "    certificate 0A1B, issued by CN=pkiwarden development CA,"
                " valid 2026-11-29T03:55:00Z to 2027-02-27T04:00:00Z",
            ],
            None,
        ),
        (
            FOREIGN,
            Exit.NOT_READY,
            [
                "    certificate does NOT chain to any CA in pkiwarden-ca.crt: issued by"
                " CN=pkiwarden development CA, which is not a CA in pkiwarden-ca.crt",
                "    certificate 0A1B, issued by CN=pkiwarden development CA,"
                " valid 2026-11-29T03:55:00Z to 2027-02-27T04:00:00Z",
            ],
            "wait for the issuer to re-issue Pki app2-pki",
        ),
        (
            dataclasses.replace(CHAINS, valid_now=False, problem="expired at 2027-02-27T04:00:00Z"),
            Exit.NOT_READY,
            [
                "    certificate chains to trust bundle CA CN=pkiwarden development CA"
                " (serial 7F01)",
                "    certificate 0A1B, issued by CN=pkiwarden development CA,"
                " valid 2026-11-29T03:55:00Z to 2027-02-27T04:00:00Z: NOT valid now,"
                " expired at 2027-02-27T04:00:00Z",
            ],
            "the issuer renews before expiry",
        ),
        (
            dataclasses.replace(
                CHAINS,
                chains=None,
                authority_subject=None,
                authority_serial=None,
                problem="no trust bundle (pkiwarden-ca.crt) is published in this namespace",
            ),
            Exit.READY,
            [
                "    certificate 0A1B, issued by CN=pkiwarden development CA,"
                " valid 2026-11-29T03:55:00Z to 2027-02-27T04:00:00Z",
                "    whether it chains to the trust bundle is not checked: no trust bundle"
                " (pkiwarden-ca.crt) is published in this namespace",
            ],
            None,
        ),
    ],
)
def test_the_certificate_against_the_trust_bundle(
    chain: ChainFacts, exit: Exit, lines: list[str], fix: str | None
) -> None:
    given = facts(READY, secrets=(dataclasses.replace(SECRET, certificate=chain),))
    text = render_text(given).splitlines()
    at = text.index("  Secret app2-pki-tls (volume tls): exists; written by Pki app2-pki")
    assert text[at + 1 : at + 1 + len(lines)] == lines
    assert text[at + 1 + len(lines)] == "Pki:"
    result = headline(given)
    assert result.exit is exit
    if fix is None:
        assert result.fix is None
    else:
        assert result.line.endswith(
            "the certificate in Secret app2-pki-tls "
            + (
                "does not chain to the trust bundle"
                if chain.chains is False
                else "is not valid now (expired at 2027-02-27T04:00:00Z)"
            )
        )
        assert result.fix is not None and fix in result.fix
        assert result.who == CHAIN_WHO
    document = render_json(given)
    assert document["exitCode"] == int(exit)
    certificate = document["secrets"][0]["certificate"]
    assert list(certificate) == [
        "serialNumber", "issuer", "notBefore", "notAfter", "validNow",
        "chainsToTrustBundle", "authority", "problem",
    ]  # fmt: skip
    assert certificate["chainsToTrustBundle"] is chain.chains
    assert certificate["authority"] == (
        {"subject": "CN=pkiwarden development CA", "serialNumber": "7F01"} if chain.chains else None
    )
