"""The event correlator, driven by a hand-moved clock: what gets created, patched or skipped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from issuer.runtime.events.correlator import (
    COMBINED_PREFIX,
    MAX_MESSAGE_BYTES,
    Aggregator,
    Correlator,
    Draft,
    EventType,
    ObjectRef,
    Observation,
    SpamFilter,
    Write,
    event_name,
    event_text,
)

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
POD = ObjectRef("v1", "Pod", "app1", "web-0", "uid-web-0")
OTHER_POD = ObjectRef("v1", "Pod", "app1", "web-1", "uid-web-1")
PKI = ObjectRef("pkiwarden.dev/v1alpha1", "Pki", "app1", "app1-pki", "uid-pki")
NOT_ALLOWED = (
    'spec.serviceName: "appp1" in Pki app1-pki is not allowed in namespace "app1" '
    '(allowed by PkiPolicy "app-teams": app1); did you mean "app1"?'
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def warning(
    message: str = NOT_ALLOWED, involved: ObjectRef = POD, reason: str = "NotAllowed"
) -> Draft:
    return Draft(involved, EventType.WARNING, reason, message)


def correlator(clock: Clock, *, burst: int = 25) -> Correlator:
    return Correlator(clock=clock, spam_filter=SpamFilter(burst=burst, refill_seconds=300))


def record(c: Correlator, draft: Draft) -> Write:
    """Correlate and, as the recorder does after a successful write, remember it."""
    action = c.correlate(draft)
    if action.write is not Write.SKIP:
        c.written(action)
    return action.write


# -- de-duplication -----------------------------------------------------------


def test_a_repeated_event_patches_one_object_with_growing_count() -> None:
    clock = Clock()
    c = correlator(clock)
    first = c.correlate(warning())
    c.written(first)
    clock.advance(30)
    second = c.correlate(warning())
    c.written(second)
    clock.advance(60)
    third = c.correlate(warning())

    assert (first.write, second.write, third.write) == (Write.CREATE, Write.PATCH, Write.PATCH)
    assert first.name == second.name == third.name
    assert (first.count, second.count, third.count) == (1, 2, 3)
    assert third.first_timestamp == T0
    assert third.last_timestamp == T0 + timedelta(seconds=90)


def test_an_unwritten_event_is_created_again_not_patched() -> None:
    c = correlator(Clock())
    c.correlate(warning())  # the API refused the write: written() never called
    assert c.correlate(warning()).write is Write.CREATE


@pytest.mark.parametrize(
    ("second", "same_object"),
    [
        (warning(), True),
        (warning(message=NOT_ALLOWED + " "), True),  # whitespace is normalised away
        (warning(message="other message"), False),
        (warning(reason="SecretConflict"), False),
        (warning(involved=OTHER_POD), False),
        (warning(involved=PKI), False),
        (Draft(POD, EventType.NORMAL, "NotAllowed", NOT_ALLOWED), False),
    ],
)
def test_which_drafts_share_an_event_object(second: Draft, same_object: bool) -> None:
    c = correlator(Clock())
    first = c.correlate(warning())
    c.written(first)
    action = c.correlate(second)
    assert (action.write is Write.PATCH) is same_object
    assert (action.name == first.name) is same_object


def test_recreate_after_the_event_expired_starts_a_new_object() -> None:
    clock = Clock()
    c = correlator(clock)
    first = c.correlate(warning())
    c.written(first)
    clock.advance(3700)
    patch = c.correlate(warning())
    assert patch.write is Write.PATCH
    fresh = c.recreate(patch)  # the PATCH answered 404
    c.written(fresh)
    assert fresh.write is Write.CREATE
    assert fresh.name != first.name
    assert fresh.count == 1
    assert fresh.first_timestamp == clock.now
    follow_up = c.correlate(warning())
    assert (follow_up.write, follow_up.name, follow_up.count) == (Write.PATCH, fresh.name, 2)


def test_adopting_an_event_from_an_earlier_run_continues_its_count() -> None:
    c = correlator(Clock())
    action = c.correlate(warning())
    earlier = Observation("web-0.17a", 7, T0 - timedelta(minutes=5), T0 - timedelta(minutes=1))
    adopted = c.adopt(action, earlier)
    assert (adopted.write, adopted.name, adopted.count) == (Write.PATCH, "web-0.17a", 8)
    assert adopted.first_timestamp == earlier.first_timestamp


# -- aggregation ----------------------------------------------------------------


@dataclass(frozen=True)
class AggregationCase:
    name: str
    distinct_messages: int
    seconds_between: float
    expected_objects: int
    expected_combined_count: int  # count on the combined Event at the end (0: none)


AGGREGATION = [
    AggregationCase("nine messages stay separate", 9, 10, 9, 0),
    AggregationCase("the tenth is combined", 10, 10, 10, 1),
    AggregationCase("thirty collapse into ten objects", 30, 10, 10, 21),
    AggregationCase("slower than the window: never combined", 12, 601, 12, 0),
]


@pytest.mark.parametrize("case", AGGREGATION, ids=lambda c: c.name)
def test_many_different_messages_on_one_object_are_combined(case: AggregationCase) -> None:
    clock = Clock()
    c = correlator(clock, burst=1000)
    names: set[str] = set()
    last = None
    for i in range(case.distinct_messages):
        last = c.correlate(warning(message=f"failure number {i}"))
        assert last.write is not Write.SKIP
        c.written(last)
        names.add(last.name)
        clock.advance(case.seconds_between)
    assert last is not None
    assert len(names) == case.expected_objects
    if case.expected_combined_count:
        assert last.key.combined
        assert last.count == case.expected_combined_count
        assert last.message == f"{COMBINED_PREFIX}failure number {case.distinct_messages - 1}"
    else:
        assert not last.key.combined


def test_combining_is_per_reason_and_per_object() -> None:
    clock = Clock()
    c = correlator(clock, burst=1000)
    for i in range(9):
        c.written(c.correlate(warning(message=f"m{i}")))
    assert c.correlate(warning(message="m-new", reason="SecretConflict")).message == "m-new"
    assert c.correlate(warning(message="m-new", involved=OTHER_POD)).message == "m-new"
    assert c.correlate(warning(message="m-new")).message.startswith(COMBINED_PREFIX)


def test_a_quiet_window_starts_aggregation_over() -> None:
    clock = Clock()
    aggregator = Aggregator(max_messages=3, window_seconds=600)
    assert not aggregator.aggregate(warning(message="a"), clock())[1].combined
    assert not aggregator.aggregate(warning(message="b"), clock())[1].combined
    assert aggregator.aggregate(warning(message="c"), clock())[1].combined
    assert aggregator.aggregate(warning(message="a"), clock())[1].combined
    clock.advance(601)
    assert not aggregator.aggregate(warning(message="d"), clock())[1].combined


# -- spam filter ------------------------------------------------------------------


@dataclass(frozen=True)
class SpamCase:
    name: str
    steps: Sequence[tuple[float, int]]  # (seconds to wait first, drafts recorded at once)
    expected_written: int


SPAM = [
    SpamCase("a burst of 30 keeps 25", [(0, 30)], 25),
    SpamCase("one token back every five minutes", [(0, 30), (300, 3)], 26),
    SpamCase("the bucket refills to the burst, no more", [(0, 25), (100 * 300, 40)], 50),
    SpamCase("paced below the rate: all pass", [(0, 20)] + [(300, 1)] * 10, 30),
]


@pytest.mark.parametrize("case", SPAM, ids=lambda c: c.name)
def test_the_spam_filter_limits_each_object(case: SpamCase) -> None:
    clock = Clock()
    c = correlator(clock)
    written = 0
    for wait, count in case.steps:
        clock.advance(wait)
        written += sum(record(c, warning()) is not Write.SKIP for _ in range(count))
    assert written == case.expected_written


def test_a_burst_across_many_objects_loses_no_first_event() -> None:
    c = correlator(Clock())
    pkis = [ObjectRef("pkiwarden.dev/v1alpha1", "Pki", "ns", f"p{i}", f"u{i}") for i in range(200)]
    for _ in range(3):
        for pki in pkis:
            record(c, warning(involved=pki))
    firsts = [c.correlate(warning(involved=pki)) for pki in pkis]
    assert all(action.write is Write.PATCH and action.count == 4 for action in firsts)


def test_a_spammed_object_does_not_silence_another() -> None:
    c = correlator(Clock())
    for _ in range(40):
        record(c, warning(message="loop"))
    assert c.correlate(warning(message="loop")).write is Write.SKIP
    assert c.correlate(warning(involved=OTHER_POD)).write is Write.CREATE


# -- message and name ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("plain", "plain"),
        ("two\nlines", "two lines"),
        ("tab\tand\r\ncrlf", "tab and crlf"),
        ("  padded   runs  ", "padded runs"),
        ("bell\x07char", "bell char"),
    ],
)
def test_messages_are_event_text(message: str, expected: str) -> None:
    assert event_text(message) == expected


@pytest.mark.parametrize("text", ["x" * 5000, "é" * 1000, "名" * 600])
def test_messages_fit_in_1024_bytes(text: str) -> None:
    result = event_text(text)
    assert len(result.encode()) <= MAX_MESSAGE_BYTES
    assert result.endswith("...")
    assert result[:-3] == text[: len(result) - 3]


def test_long_combined_messages_still_fit() -> None:
    c = correlator(Clock(), burst=1000)
    for i in range(12):
        action = c.correlate(warning(message=f"{i} " + "y" * 2000))
        c.written(action)
    assert action.key.combined
    assert len(action.message.encode()) <= MAX_MESSAGE_BYTES


def test_event_names_follow_client_go() -> None:
    assert event_name("web-0", 0x17A2B) == "web-0.17a2b"
    long_name = "a" * 250
    assert len(event_name(long_name, 2**62)) == 253


def test_event_names_are_unique_when_the_clock_stands_still() -> None:
    c = correlator(Clock(), burst=1000)
    names = {c.correlate(warning(message=f"m{i}", involved=POD)).name for i in range(5)}
    assert len(names) == 5
    expected_stem = f"web-0.{int(T0.timestamp() * 1e9):x}"
    assert expected_stem in names
