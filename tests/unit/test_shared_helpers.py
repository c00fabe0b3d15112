"""The small helpers both processes use: one-line text, RFC 3339 time, backoff, a ticker."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.backoff import Backoff
from shared.clock import parse_rfc3339, rfc3339, rfc3339_micro
from shared.text import clip, clip_bytes, one_line
from shared.ticker import Ticker


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a\nb\tc", "a b c"),
        ("del\x7fend", "del end"),
        ("para\u2028graph", "para graph"),
        ("é ü 日本", "é ü 日本"),
    ],
)
def test_one_line_replaces_what_breaks_a_line(text: str, expected: str) -> None:
    assert one_line(text) == expected


def test_clip_by_characters_and_by_bytes() -> None:
    assert clip("abcdef", 6) == "abcdef"
    assert clip("abcdefg", 6) == "abc..."
    assert clip_bytes("é" * 10, 20) == "é" * 10
    cut = clip_bytes("é" * 10, 9)
    assert cut == "ééé..." and len(cut.encode()) == 9
    assert clip_bytes("é" * 10, 8) == "éé..."  # never half a character


def test_rfc3339_is_utc_whole_seconds_and_parses_back() -> None:
    moment = datetime(2030, 1, 2, 4, 4, 5, 678901, tzinfo=timezone(timedelta(hours=1)))
    assert rfc3339(moment) == "2030-01-02T03:04:05Z"
    assert rfc3339_micro(moment) == "2030-01-02T03:04:05.678901Z"
    assert parse_rfc3339("2030-01-02T03:04:05Z") == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_rfc3339("yesterday") is None
    assert parse_rfc3339(None) is None


def test_backoff_doubles_from_two_seconds_to_one_hour() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff.delay(11) == 3600.0
    assert backoff.delay(1000) == 3600.0
    assert backoff.delay(-1) == 2.0


def test_ticker_calls_until_stopped() -> None:
    ticked = threading.Event()
    ticker = Ticker(0.01, ticked.set, name="test-ticker").start()
    assert ticked.wait(5)
    ticker.stop()
