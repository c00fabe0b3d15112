"""The rotation phase machine: trust first, then sign, then forget. Pure.

    Stable ──trigger──► Propagating ──trust everywhere + trustPropagation──► Reissuing
      ▲                                                                       │ nothing pending
      └──────────────── trustPropagation after entering ◄──── Retiring ◄──────┘

Causes: a self-managed CA reaching its renewal time, a ``pkiwarden ca
rotate`` request (an annotation on the PkiAuthority), or ``spec.nextSecretName``
naming a CA other than the active one. An emergency request (``--now``) skips
both waits and drops the previous CA from trust at once.

``next_transition`` says which single move to make now; ``advance`` gives the state
after it. The effect layer writes that state to the CA Secret in one request
together with the certificates the move changes, so a crash before the write
redoes the move and a crash after it resumes from the new phase: nothing is
done twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class Phase(StrEnum):
    STABLE = "Stable"
    PROPAGATING = "Propagating"
    REISSUING = "Reissuing"
    RETIRING = "Retiring"


class RotationCause(StrEnum):
    """Why a rotation started; the reason of the Rotating condition and Events."""

    RENEWAL_DUE = "RenewalDue"
    REQUESTED = "Requested"
    NEXT_SECRET = "NextSecret"
    EMERGENCY = "Emergency"


class Move(StrEnum):
    NONE = "None"
    BEGIN = "Begin"  # a next CA joins the trust set: Stable -> Propagating
    TRUST_SYNCED = "TrustSynced"  # every consumer holds the trust set: the wait starts now
    PROMOTE = "Promote"  # next signs, active becomes previous: Propagating -> Reissuing
    EMERGENCY = "Emergency"  # a new CA signs now; the old one is no longer trusted
    RETIRE = "Retire"  # nothing valid depends on previous: Reissuing -> Retiring
    FORGET = "Forget"  # previous leaves the trust set: -> Stable
    ACKNOWLEDGE = "Acknowledge"  # a request that changes nothing, recorded as handled


@dataclass(frozen=True)
class RotationState:
    """Where a rotation stands; recorded in the CA Secret's annotations."""

    phase: Phase = Phase.STABLE
    phase_start: datetime | None = None
    has_next: bool = False
    has_previous: bool = False
    previous_trusted: bool = True  # False after an emergency
    handled_request: str = ""
    trust_synced_at: datetime | None = None  # every consumer held the current trust set


@dataclass(frozen=True)
class Request:
    """A ``pkiwarden ca rotate`` request: its id (a timestamp) and whether it is ``--now``."""

    id: str
    emergency: bool = False
    at: datetime | None = None  # the id read as a time; None if it is not one


@dataclass(frozen=True)
class Observed:
    """What the caches say now."""

    now: datetime
    trust_propagation: timedelta
    request: Request | None = None
    can_generate: bool = False  # spec.generate is set
    supplied_next: bool = False  # spec.nextSecretName holds a usable CA other than the active
    renewal_due: bool = False  # a self-managed CA at its renewal time
    trust_current: bool = True  # every ConfigMap and issued Secret holds the trust set
    # Next and Previous chain to the active CA's root: trusting or dropping them changes
    # nothing a consumer loads (a new intermediate under the same root).
    trust_unchanged: bool = False
    pending: int = 0  # valid certificates not signed by the active CA
    blocked: int = 0  # of those, the ones whose re-issue failed
    ca_since: datetime | None = None  # when the CA Secret was created (whole seconds)
    # Why some shard's count is not known (``--shards``): pending and trust_current
    # cover the shards that reported, so the rotation waits for the others.
    unknown: str = ""


@dataclass(frozen=True)
class Transition:
    move: Move
    message: str
    cause: RotationCause | None = None
    request: str = ""  # the request this move handles, if any
    recheck_at: datetime | None = None  # when to look again if nothing else changes


def _new_request(state: RotationState, seen: Observed) -> Request | None:
    request = seen.request
    return request if request is not None and request.id != state.handled_request else None


def _predates_ca(request: Request, seen: Observed) -> bool:
    """Asked before the CA Secret existed: about a CA that was deleted, not this one.

    A request made while the CA Secret was missing (or before a backup was
    restored) must not act on the CA that appears later: an emergency would
    replace the CA just restored. Compared in whole seconds, as the API server
    writes ``creationTimestamp``.
    """
    if request.at is None or seen.ca_since is None:
        return False
    return request.at.replace(microsecond=0) < seen.ca_since


def next_transition(state: RotationState, seen: Observed) -> Transition:
    """The one move to make now."""
    request = _new_request(state, seen)
    if request is not None and _predates_ca(request, seen):
        kind = "emergency rotation" if request.emergency else "rotation"
        return Transition(
            Move.ACKNOWLEDGE,
            f"{kind} requested at {request.id}, before the CA Secret was created; not applied"
            " to a CA it was not asked about: run `pkiwarden ca rotate` again to rotate this CA",
            request=request.id,
        )
    if request is not None and request.emergency:
        return _emergency(state, seen, request)
    if state.phase is Phase.STABLE:
        return _stable(seen, request)
    if request is not None:
        return Transition(
            Move.ACKNOWLEDGE,
            f"rotation requested while already {state.phase}; the rotation in progress continues",
            request=request.id,
        )
    if state.phase is Phase.PROPAGATING:
        return _propagating(state, seen)
    if state.phase is Phase.REISSUING:
        return _reissuing(state, seen)
    return _retiring(state, seen)


def _source(seen: Observed) -> str | None:
    if seen.supplied_next:
        return "the CA in spec.nextSecretName"
    if seen.can_generate:
        return "a new CA generated by pkiwarden"
    return None


def _stable(seen: Observed, request: Request | None) -> Transition:
    source = _source(seen)
    if request is not None:
        if source is None:
            return Transition(
                Move.ACKNOWLEDGE,
                "rotation requested, but there is no next CA: set spec.nextSecretName to a"
                " Secret holding one, or spec.generate to let pkiwarden make it",
                request=request.id,
            )
        return Transition(
            Move.BEGIN,
            f"rotation requested: {source} joins the trust set",
            RotationCause.REQUESTED,
            request.id,
        )
    if seen.supplied_next:
        return Transition(
            Move.BEGIN,
            "spec.nextSecretName names a new CA: it joins the trust set",
            RotationCause.NEXT_SECRET,
        )
    if seen.renewal_due and seen.can_generate:
        return Transition(
            Move.BEGIN,
            "the CA reached its renewal time: a new CA joins the trust set",
            RotationCause.RENEWAL_DUE,
        )
    return Transition(Move.NONE, "")


def _emergency(state: RotationState, seen: Observed, request: Request) -> Transition:
    if state.phase is Phase.RETIRING:
        return Transition(
            Move.FORGET,
            "emergency: the previous CA leaves the trust set now, without waiting",
            RotationCause.EMERGENCY,
            request.id,
        )
    if state.phase is Phase.REISSUING:
        return Transition(
            Move.EMERGENCY,
            "emergency: the previous CA leaves the trust set now; certificates it signed fail"
            " verification until re-issued",
            RotationCause.EMERGENCY,
            request.id,
        )
    if state.phase is Phase.STABLE and _source(seen) is None:
        return Transition(
            Move.ACKNOWLEDGE,
            "emergency rotation requested, but there is no next CA: set spec.nextSecretName"
            " or spec.generate",
            request=request.id,
        )
    return Transition(
        Move.EMERGENCY,
        "emergency: a new CA signs now and the old one leaves the trust set at once;"
        " certificates it signed fail verification until re-issued",
        RotationCause.EMERGENCY,
        request.id,
    )


def _propagating(state: RotationState, seen: Observed) -> Transition:
    if seen.trust_unchanged and seen.trust_current:
        return Transition(
            Move.PROMOTE,
            "the next CA chains to a root already trusted: no trust change to propagate;"
            " the next CA signs now and every Pki is re-issued",
        )
    if not seen.trust_current:
        return Transition(
            Move.NONE,
            "waiting for the trust set to reach every namespace and Secret"
            + (f" ({seen.unknown})" if seen.unknown else ""),
        )
    if state.trust_synced_at is None:
        return Transition(
            Move.TRUST_SYNCED,
            "the trust set reached every namespace and Secret",
            recheck_at=seen.now + seen.trust_propagation,
        )
    due = state.trust_synced_at + seen.trust_propagation
    if seen.now < due:
        return Transition(
            Move.NONE, "giving the trust set time to reach every consumer", recheck_at=due
        )
    return Transition(Move.PROMOTE, "the next CA signs now; every Pki is re-issued")


def _unknown_shards(seen: Observed) -> Transition:
    known = f"; {seen.pending} Pkis still to re-issue in the rest" if seen.pending else ""
    return Transition(Move.NONE, f"waiting: {seen.unknown}{known}")


def _reissuing(state: RotationState, seen: Observed) -> Transition:
    if seen.unknown:
        return _unknown_shards(seen)
    if seen.pending:
        blocked = f", {seen.blocked} blocked" if seen.blocked else ""
        return Transition(Move.NONE, f"{seen.pending} Pkis still to re-issue{blocked}")
    if not state.previous_trusted:
        return Transition(Move.FORGET, "every Pki is re-issued")
    return Transition(
        Move.RETIRE,
        "every Pki is re-issued; the previous CA leaves the trust set after trustPropagation",
        recheck_at=seen.now + seen.trust_propagation,
    )


def _retiring(state: RotationState, seen: Observed) -> Transition:
    if seen.unknown:
        return _unknown_shards(seen)
    if seen.pending:
        return Transition(Move.NONE, f"{seen.pending} Pkis still depend on the previous CA")
    if seen.trust_unchanged:
        return Transition(
            Move.FORGET,
            "the previous CA chains to a root still trusted: nothing leaves the trust set;"
            " rotation complete",
        )
    due = (state.phase_start or seen.now) + seen.trust_propagation
    if seen.now < due:
        return Transition(
            Move.NONE, "waiting before the previous CA leaves the trust set", recheck_at=due
        )
    return Transition(Move.FORGET, "the previous CA left the trust set; rotation complete")


def advance(state: RotationState, step: Transition, now: datetime) -> RotationState:
    """The state after ``step``; a step that handles a request records it."""
    handled = step.request or state.handled_request
    state = replace(state, handled_request=handled)
    move = step.move
    if move is Move.BEGIN:
        return replace(
            state, phase=Phase.PROPAGATING, phase_start=now, has_next=True, trust_synced_at=None
        )
    if move is Move.TRUST_SYNCED:
        return replace(state, trust_synced_at=now)
    if move is Move.PROMOTE:
        return replace(
            state, phase=Phase.REISSUING, phase_start=now, has_next=False, has_previous=True
        )
    if move is Move.EMERGENCY:
        start = now if state.phase is not Phase.REISSUING else state.phase_start
        return replace(
            state,
            phase=Phase.REISSUING,
            phase_start=start,
            has_next=False,
            has_previous=True,
            previous_trusted=False,
            trust_synced_at=None,
        )
    if move is Move.RETIRE:
        return replace(state, phase=Phase.RETIRING, phase_start=now)
    if move is Move.FORGET:
        return replace(
            state,
            phase=Phase.STABLE,
            phase_start=now,
            has_next=False,
            has_previous=False,
            previous_trusted=True,
            trust_synced_at=None,
        )
    return state
