"""The CA Secret as the rotation's record, the trust ConfigMap decisions, status and CLI text."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from issuer.controllers.authorities.decisions.authority_status import (
    Standing,
    authority_status,
    missing_ca_problem,
)
from issuer.controllers.authorities.decisions.namespace_trust import namespace_trust
from issuer.controllers.authorities.decisions.phases import (
    Move,
    Phase,
    RotationState,
    Transition,
    advance,
)
from issuer.controllers.authorities.decisions.trust import bundle_certificates
from issuer.controllers.authorities.effects import configmaps
from issuer.controllers.authorities.effects.bootstrap_ca import ca_secret_body
from issuer.controllers.authorities.inputs.spec import authority_spec, renewal_due, rotation_request
from issuer.controllers.authorities.inputs.state import (
    NEXT_CRT,
    Material,
    NewCA,
    material_after,
    read_material,
    read_state,
    render,
)
from issuer.runtime import issuance
from issuer.runtime.ca_history import CAHistory
from pkiwarden.ca.render import render_status, rotation_patch, rotation_refusal, unavailable
from shared.clock import rfc3339

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


def _pair(name: str) -> tuple[Any, Any]:
    return issuance.self_signed_ca(name, NOW, YEAR)


OLD, NEW = _pair("old"), _pair("new")


def _secret() -> dict[str, Any]:
    body = ca_secret_body("pkiwarden-system", "pkiwarden-ca", *OLD)
    body["metadata"]["resourceVersion"] = "7"
    return body


def test_a_bootstrapped_secret_reads_as_stable_with_one_trusted_ca() -> None:
    secret = _secret()
    material = read_material(secret)
    assert material is not None
    assert read_state(secret, material) == RotationState()
    assert material.next is None and material.previous is None


def test_each_move_survives_a_write_and_a_read_back() -> None:
    secret = _secret()
    material = read_material(secret)
    assert material is not None
    state = RotationState()
    for move, fresh in [(Move.BEGIN, NewCA(*NEW)), (Move.TRUST_SYNCED, None), (Move.PROMOTE, None)]:
        step = Transition(move, "m", request="r1" if move is Move.BEGIN else "")
        material = material_after(material, state, move, fresh)
        state = advance(state, step, NOW)
        secret = render(secret, state, material, NOW)
        again = read_material(secret)
        assert again is not None
        assert (again.active, again.next, again.previous) == (
            material.active,
            material.next,
            material.previous,
        )
        assert read_state(secret, again) == state
    assert state.phase is Phase.REISSUING and state.handled_request == "r1"
    assert material.active == NEW[0] and material.previous == OLD[0]
    assert NEXT_CRT not in secret["data"]
    bundle = base64.b64decode(secret["data"]["ca.crt"])
    assert set(bundle_certificates(bundle)) == {OLD[0], NEW[0]}
    assert secret["metadata"]["resourceVersion"] == "7"  # the write is conditional on it


def test_emergency_from_stable_trusts_only_the_new_ca() -> None:
    material = Material(OLD[0], OLD[1])
    state = RotationState()
    after_material = material_after(material, state, Move.EMERGENCY, NewCA(*NEW))
    after = advance(state, Transition(Move.EMERGENCY, "m"), NOW)
    secret = render(_secret(), after, after_material, NOW)
    bundle = base64.b64decode(secret["data"]["ca.crt"])
    assert list(bundle_certificates(bundle)) == [NEW[0]]
    assert after_material.previous == OLD[0]  # still known, to find what it signed


def test_an_unreadable_secret_has_no_material() -> None:
    assert read_material(None) is None
    assert read_material({"data": {"tls.crt": "bm90IHBlbQ==", "tls.key": "eA=="}}) is None


def _cm(namespace: str, bundle: str, ours: bool = True) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "pkiwarden"} if ours else {}
    return {
        "metadata": {
            "name": configmaps.TRUST_CONFIGMAP,
            "namespace": namespace,
            "labels": labels,
            "resourceVersion": "3",
        },
        "data": {"ca.crt": bundle},
    }


@pytest.mark.parametrize(
    ("selected", "existing", "expected"),
    [
        ({"a"}, [], [("create", "a")]),
        ({"a"}, [_cm("a", "B")], []),
        ({"a"}, [_cm("a", "old")], [("update", "a")]),
        (set(), [_cm("a", "B")], [("delete", "a")]),
        (set(), [_cm("a", "B", ours=False)], []),
        ({"a"}, [_cm("a", "old", ours=False)], []),
        ({"a", "b"}, [_cm("c", "B")], [("create", "a"), ("create", "b"), ("delete", "c")]),
    ],
    ids=["missing", "current", "drifted", "deselected", "foreign", "foreign-selected", "mixed"],
)
def test_trust_changes(
    selected: set[str], existing: list[dict[str, Any]], expected: list[tuple[str, str]]
) -> None:
    changes = configmaps.trust_changes({ns: {"ca.crt": "B"} for ns in selected}, existing)
    assert [(c.verb.value, c.namespace) for c in changes] == expected


def test_selected_namespaces_by_name_and_label_and_not_terminating() -> None:
    policies = [
        {
            "metadata": {"name": "p"},
            "spec": {"namespaces": ["a", "gone"], "allowedServiceNames": ["x"]},
        },
        {
            "metadata": {"name": "q"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"team": "t"}},
                "allowedServiceNames": ["x"],
            },
        },
    ]
    namespaces = [
        {"metadata": {"name": "a"}},
        {"metadata": {"name": "b", "labels": {"team": "t"}}},
        {"metadata": {"name": "c"}},
        {"metadata": {"name": "gone", "deletionTimestamp": "2026-01-01T00:00:00Z"}},
    ]
    assert set(namespace_trust(policies, namespaces, {}, str)) == {"a", "b"}


def test_spec_defaults_and_the_rotation_request() -> None:
    spec = authority_spec(None, "pkiwarden-ca")
    assert (spec.secret_name, spec.generate, spec.trust_propagation, spec.reissue_rate) == (
        "pkiwarden-ca",
        None,
        timedelta(hours=1),
        10,
    )
    given = {"spec": {"secretName": "ca", "generate": {"duration": "3h"}}}
    generated = authority_spec(given, "x").generate
    assert generated is not None and generated.renew_before == timedelta(hours=1)
    patch = rotation_patch(NOW, emergency=True)
    request = rotation_request(patch)
    assert request is not None and request.emergency and request.id.startswith("2026-01-01T12")
    assert rotation_request({"metadata": {}}) is None


def test_status_and_the_cli_show_the_same_columns() -> None:
    material = Material(NEW[0], NEW[1], previous=OLD[0])
    state = RotationState(Phase.REISSUING, NOW, has_previous=True)
    standing = Standing(
        state, material.trusted(state, NOW), "", "3 Pkis still to re-issue", 3, ["a/x"], 2
    )
    status = authority_status({}, standing, NOW)
    assert status["phase"] == "Reissuing" and status["pendingPkis"] == 3
    assert [t["role"] for t in status["trusted"]] == ["Active", "Previous"]
    rotating = next(c for c in status["conditions"] if c["type"] == "Rotating")
    assert (rotating["status"], rotating["message"]) == ("True", "3 Pkis still to re-issue")
    later = authority_status(status, standing, NOW + timedelta(minutes=5))
    assert later == status  # nothing changed: nothing to write
    authority = {"metadata": {"name": "default", "creationTimestamp": "2026-01-01T11:00:00Z"}}
    text = render_status({**authority, "status": status}, NOW)
    first, values = text.splitlines()[:2]
    assert first.split() == ["NAME", "READY", "PHASE", "ACTIVE", "CA", "EXPIRES", "PENDING", "AGE"]
    assert values.split() == ["default", "True", "Reissuing", status["activeNotAfter"], "3", "1h"]
    assert "Previous" in text and "a/x" in text


@pytest.mark.parametrize(
    ("generates", "says"),
    [
        (True, "spec.generate makes only the next CA, at a rotation, never a lost one"),
        (False, "no certificate is issued or renewed until it is back. Restore it"),
    ],
)
def test_a_missing_ca_says_what_happens_next_and_the_cli_exits_non_zero(
    generates: bool, says: str
) -> None:
    problem = missing_ca_problem(
        "pkiwarden-system",
        "pkiwarden-ca",
        "default",
        generates=generates,
        history=CAHistory.ESTABLISHED,
        exists=False,
    )
    assert problem.startswith('CA Secret "pkiwarden-system/pkiwarden-ca" is missing')
    assert says in problem
    assert "Restore it from a backup (issued certificates keep verifying)" in problem
    assert "or create it with a new CA" in problem
    assert ("spec.generate" in problem) is generates
    standing = Standing(RotationState(), (), problem, "", 0, [], 1)
    status = authority_status({}, standing, NOW)
    assert "activeCA" not in status and "activeNotAfter" not in status and status["trusted"] == []
    authority = {"metadata": {"name": "default", "creationTimestamp": "2026-01-01T11:00:00Z"}}
    text = render_status({**authority, "status": status}, NOW)
    assert text.splitlines()[0] == f"NOT READY: PkiAuthority default cannot sign: {problem}"
    assert text.count(problem) == 1
    assert unavailable({**authority, "status": status}) == problem
    ready = authority_status({}, Standing(RotationState(), (), "", "", 0, [], 1), NOW)
    assert unavailable({**authority, "status": ready}) is None


@pytest.mark.parametrize(
    ("history", "exists", "says"),
    [
        (CAHistory.AWAITED, False, "has not been created. A cluster administrator must create"),
        (CAHistory.AWAITED, True, "must put the CA in it"),
        (CAHistory.GENERATING, True, "or delete it so that pkiwarden generates one"),
    ],
)
def test_an_authority_that_never_had_a_ca_is_not_told_to_restore_one(
    history: CAHistory, exists: bool, says: str
) -> None:
    problem = missing_ca_problem(
        "pkiwarden-system",
        "platform-ca",
        "platform",
        generates=history is CAHistory.GENERATING,
        history=history,
        exists=exists,
    )
    assert 'CA Secret "pkiwarden-system/platform-ca"' in problem
    assert 'PkiAuthority "platform" has no CA yet' in problem
    assert says in problem
    assert "backup" not in problem


def test_renewal_is_due_at_renew_before_but_never_in_the_first_two_thirds_of_life() -> None:
    generate = authority_spec({"spec": {"generate": {"renewBefore": "5000h"}}}, "x").generate
    short = OLD[0]  # a year long: a third of it is shorter than 5000h
    life = short.not_valid_after_utc - short.not_valid_before_utc
    assert not renewal_due(generate, short, short.not_valid_before_utc + life / 2)
    assert renewal_due(generate, short, short.not_valid_before_utc + life * 2 / 3)
    assert not renewal_due(None, short, short.not_valid_after_utc)


@pytest.mark.parametrize(
    ("conditions", "refused"),
    [
        ([], False),
        ([{"type": "Ready", "status": "True", "reason": "CAReady"}], False),
        (
            [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "CAUnavailable",
                    "message": 'CA Secret "pkiwarden-system/pkiwarden-ca" is missing',
                }
            ],
            True,
        ),
    ],
)
def test_a_rotation_of_a_missing_ca_is_refused_with_the_way_out(
    conditions: list[dict[str, str]], refused: bool
) -> None:
    refusal = rotation_refusal({"status": {"conditions": conditions}})
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.startswith('CA Secret "pkiwarden-system/pkiwarden-ca" is missing')
        assert "nothing was requested" in refusal
        assert "restore the CA Secret" in refusal


def test_only_an_authority_that_never_had_a_ca_gets_one_made() -> None:
    """A CA Secret deleted later is reported, not replaced by a new CA."""
    from issuer.runtime.ca_history import had_a_ca  # noqa: PLC0415

    assert not had_a_ca({"spec": {"generate": {}}})
    assert not had_a_ca({"status": {"trusted": []}})
    assert had_a_ca({"status": {"activeCA": {"serialNumber": "01"}}})
    assert had_a_ca({"status": {"trusted": [{"role": "Active"}]}})


def test_a_lost_ca_is_never_taken_for_a_first_one() -> None:
    """The missing-CA status drops activeCA and trusted; caEstablishedTime stays."""
    from issuer.runtime.ca_history import had_a_ca  # noqa: PLC0415

    state = RotationState()
    signing = Standing(state, Material(OLD[0], OLD[1]).trusted(state, NOW), "", "", 0, [], 1)
    established = authority_status({}, signing, NOW)
    assert established["caEstablishedTime"] == rfc3339(NOW)
    lost = Standing(RotationState(), (), "CA Secret is missing", "", 0, [], 1)
    later = authority_status(established, lost, NOW + timedelta(hours=1))
    assert "activeCA" not in later and later["trusted"] == []
    assert later["caEstablishedTime"] == rfc3339(NOW)
    assert had_a_ca({"status": later})
    assert "caEstablishedTime" not in authority_status({}, lost, NOW)
