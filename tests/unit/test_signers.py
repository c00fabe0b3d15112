"""Which authority signs a Pki: its spec.authority, the API's "default" being the issuer's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client import Configuration

from issuer.runtime.caches import SharedCaches
from issuer.runtime.signers import (
    CA_SECRETS_ROLE,
    CAProblem,
    SecretGrant,
    Signers,
    ungranted_secret,
    unreadable_ca_problem,
)
from pkiwarden.release.values import ca_secret_rules
from shared.clock import utc_now
from shared.kube.client import Kube


def signers(own: str) -> Signers:
    caches = SharedCaches(Kube(Configuration()), "pkiwarden-system")  # never started
    return Signers(caches.authorities, caches.ca_secrets, own, "pkiwarden-ca")


@pytest.mark.parametrize(
    ("own", "spec", "expected"),
    [
        ("default", {}, "default"),
        ("default", {"authority": "platform"}, "platform"),
        ("e2e", {}, "e2e"),  # an issuer started with --authority=e2e: Pkis naming none
        ("e2e", {"authority": "default"}, "e2e"),  # "default" is the issuer's own
        ("e2e", {"authority": "platform"}, "platform"),
        ("default", {"authority": ""}, "default"),
    ],
)
def test_the_authority_of_a_pki(own: str, spec: dict[str, str], expected: str) -> None:
    assert signers(own).authority_of({"spec": spec}) == expected


def test_the_issuers_own_authority_signs_with_its_ca_secret_even_without_a_pkiauthority() -> None:
    found = signers("e2e")
    assert found.secret_name("e2e") == "pkiwarden-ca"
    assert found.secret_name("platform") is None  # no such PkiAuthority (cache empty)
    assert found.names() == ["e2e"]


def test_a_pki_naming_an_authority_that_does_not_exist_is_told_so() -> None:
    problem = signers("default").current("platform", utc_now())
    assert isinstance(problem, CAProblem)
    assert problem.message.startswith('PkiAuthority "platform" does not exist')


def test_the_own_ca_secret_missing_with_no_pkiauthority_is_not_called_lost() -> None:
    """Nothing records that the CA ever existed: create it, restore only if it did."""
    problem = signers("default").current("default", utc_now())
    assert isinstance(problem, CAProblem)
    assert problem.message.startswith(
        'CA Secret "pkiwarden-system/pkiwarden-ca" does not exist and there is no PkiAuthority'
        ' "default" to record a CA.'
    )
    assert "restore it from a backup only if it existed before" in problem.message


def test_a_forbidden_ca_secret_names_the_exact_grant_to_add() -> None:
    problem = unreadable_ca_problem("pkiwarden-system", "platform-ca")
    assert problem.startswith(
        'CA Secret "pkiwarden-system/platform-ca" may not be read by the issuer: Role'
        ' "pkiwarden-issuer" in namespace "pkiwarden-system" grants get, list, watch and update'
        ' on Secrets by name, and "platform-ca" is not among its resourceNames.'
    )
    assert "the value issuer.caSecretNames" in problem
    assert "rbac/issuer.yaml" in problem


def test_a_forbidden_next_ca_secret_names_its_own_rule_and_value() -> None:
    told = ungranted_secret("pkiwarden-system", "platform-ca-2", SecretGrant.NEXT_CA)
    assert told.startswith(
        'Secret "pkiwarden-system/platform-ca-2" may not be read by the issuer: Role'
        ' "pkiwarden-issuer" in namespace "pkiwarden-system" grants get on Secrets by name'
    )
    assert "the value issuer.nextCASecretNames" in told


def test_the_role_named_is_the_one_deploy_ships_with_the_ca_secret_rule() -> None:
    shipped = Path(__file__).parents[2] / "deploy" / "rbac" / "issuer.yaml"
    roles = [
        item
        for item in yaml.safe_load_all(shipped.read_text())
        if item and item["kind"] == "Role" and item["metadata"]["name"] == CA_SECRETS_ROLE
    ]
    assert len(roles) == 1
    ca_rule, next_rule = ca_secret_rules(roles[0])
    assert set(roles[0]["rules"][ca_rule]["verbs"]) == {"get", "list", "watch", "update"}
    assert roles[0]["rules"][next_rule]["verbs"] == ["get"]
