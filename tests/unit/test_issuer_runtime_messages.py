"""A value allowed when the Pki was admitted is not a typo: run-time words say what changed.

At apply time a near miss gets ``did you mean``; at run time (a policy changed
after admission) the same finding says which policy, what it allows now and
who can fix it, and never points at another team's name.
"""

from __future__ import annotations

from typing import Any

from issuer.controllers.pkis.decisions.verdict import Step, decide_issuance
from issuer.controllers.pkis.reporting.reasons import Reason
from shared.validation.common import message_for_denial
from shared.validation.pki import Context, validate_pki
from tests.unit.builders import NOW, make_ca, make_pki

CA = make_ca()


def policy(name: str, namespaces: list[str], services: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": name},
        "spec": {"namespaces": namespaces, "allowedServiceNames": services},
    }


# The platform team removed app2 from the policy both teams share.
TIGHTENED = [policy("app-teams", ["app1", "app2"], ["app1"])]


def _app2() -> dict[str, Any]:
    pki = make_pki(name="app2-pki", serviceName="app2")
    pki["metadata"]["namespace"] = "app2"
    return pki


RUN_TIME = Context(policies=TIGHTENED, at_run_time=True)


def test_run_time_says_what_changed_and_who_can_fix_it() -> None:
    pki = _app2()
    findings = validate_pki(pki, "app2", RUN_TIME)
    verdict = decide_issuance(pki, None, CA, findings, NOW)
    assert verdict.step is Step.FAIL and verdict.reason is Reason.NOT_ALLOWED
    assert verdict.message == (
        'spec.serviceName: "app2" in Pki app2-pki is not allowed in namespace "app2"'
        ' (PkiPolicy "app-teams" now allows: app1); ask the platform team to allow it,'
        " or change spec.serviceName"
    )
    assert "did you mean" not in verdict.message


def test_run_time_dns_names_say_what_changed() -> None:
    pki = make_pki(dnsNames=["app1.app1.svc", "legacy.app1.svc"])
    policies = [policy("app-teams", ["app1"], ["app1"])]
    context = Context(policies=policies, at_run_time=True)
    findings = validate_pki(pki, "app1", context)
    (message,) = [f.problem for f in findings if f.path == "spec.dnsNames[1]"]
    assert message.startswith('is not allowed by PkiPolicy "app-teams" (now allows: ')
    assert "did you mean" not in message
    assert message.endswith("ask the platform team to allow it, or change spec.dnsNames")


def test_run_time_never_guesses_even_at_a_likely_typo() -> None:
    """Admitted without the webhook: the words stay the run-time ones, no guess at a name."""
    pki = _app2()
    pki["spec"]["serviceName"] = "app3"
    context = Context(policies=TIGHTENED, at_run_time=True)
    (finding,) = validate_pki(pki, "app2", context)
    assert finding.problem == (
        'is not allowed in namespace "app2" (PkiPolicy "app-teams" now allows: app1);'
        " ask the platform team to allow it, or change spec.serviceName"
    )


def test_apply_time_keeps_the_suggestion() -> None:
    pki = _app2()
    pki["spec"]["serviceName"] = "app3"
    message = message_for_denial(validate_pki(pki, "app2", Context(policies=TIGHTENED)))
    assert 'did you mean "app1"?' in message


def test_apply_time_suggests_only_names_allowed_in_the_pkis_namespace() -> None:
    policies = [
        policy("app-teams", ["app1"], ["app1"]),
        policy("payments", ["payments"], ["apps1"]),  # another team's, closer to the typo
    ]
    pki = make_pki(serviceName="appss1")
    message = message_for_denial(validate_pki(pki, "app1", Context(policies=policies)))
    assert "apps1" not in message
    assert 'PkiPolicy "payments"' not in message
