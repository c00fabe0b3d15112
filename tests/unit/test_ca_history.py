"""A missing CA Secret: a fresh install's first CA still to come, or a lost CA to restore."""

from __future__ import annotations

from typing import Any

import pytest

from issuer.runtime.ca_history import CAHistory, absent_ca_message, ca_history

ESTABLISHED_AT = {"caEstablishedTime": "2026-12-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        (None, CAHistory.UNRECORDED),
        ({"spec": {"secretName": "x", "generate": {}}}, CAHistory.GENERATING),
        ({"spec": {"secretName": "x"}}, CAHistory.AWAITED),
        # Ready was never reached: the conditions alone record no CA.
        (
            {"spec": {"secretName": "x"}, "status": {"conditions": [{"type": "Ready"}]}},
            CAHistory.AWAITED,
        ),
        (
            {"spec": {"secretName": "x", "generate": {}}, "status": ESTABLISHED_AT},
            CAHistory.ESTABLISHED,
        ),
        ({"spec": {"secretName": "x"}, "status": ESTABLISHED_AT}, CAHistory.ESTABLISHED),
        ({"spec": {}, "status": {"activeCA": {"serialNumber": "01"}}}, CAHistory.ESTABLISHED),
    ],
    ids=[
        "no PkiAuthority",
        "generated, first CA to come",
        "supplied, not created yet",
        "supplied, never Ready",
        "generated, had a CA",
        "supplied, had a CA",
        "an older status: activeCA only",
    ],
)
def test_the_history_comes_from_the_authoritys_own_record(
    authority: dict[str, Any] | None, expected: CAHistory
) -> None:
    assert ca_history(authority) is expected


MESSAGES: list[tuple[CAHistory, list[str], list[str]]] = [
    (
        CAHistory.GENERATING,
        [
            'PkiAuthority "platform" has no CA yet: the issuer generates its first one',
            "nothing needs doing",
            "kubectl describe pkica platform",
        ],
        ["backup", "must"],
    ),
    (
        CAHistory.AWAITED,
        [
            'PkiAuthority "platform" has no CA yet: CA Secret "pkiwarden-system/platform-ca"'
            " has not been created",
            "must create it (type kubernetes.io/tls with tls.crt and tls.key",
            "or add spec.generate to the PkiAuthority",
        ],
        ["backup"],
    ),
    (
        CAHistory.UNRECORDED,
        [
            'there is no PkiAuthority "platform" to record a CA',
            'create PkiAuthority "platform" (spec.secretName "platform-ca"',
            "restore it from a backup only if it existed before",
        ],
        [],
    ),
    (
        CAHistory.ESTABLISHED,
        [
            'CA Secret "pkiwarden-system/platform-ca" does not exist; a cluster administrator'
            " must restore it from a backup",
            "pkiwarden never replaces a lost CA by itself",
        ],
        ["has no CA yet"],
    ),
]


@pytest.mark.parametrize(
    ("history", "present", "absent"), MESSAGES, ids=[m[0].value for m in MESSAGES]
)
def test_restoring_a_backup_is_advised_only_for_a_ca_that_existed(
    history: CAHistory, present: list[str], absent: list[str]
) -> None:
    message = absent_ca_message(history, "platform", "pkiwarden-system", "platform-ca")
    for words in present:
        assert words in message
    for words in absent:
        assert words not in message
    assert "\n" not in message and len(message) < 1024 - 100  # an Event, with the Pki's prefix
