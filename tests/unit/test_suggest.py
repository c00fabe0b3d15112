import pytest

from shared.suggest import closest, did_you_mean, edit_distance


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("", "", 0),
        ("app1", "app1", 0),
        ("appp1", "app1", 1),
        ("kitten", "sitting", 3),
        ("", "abc", 3),
        ("abc", "", 3),
    ],
)
def test_edit_distance(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance


def test_edit_distance_stops_past_limit() -> None:
    assert edit_distance("a" * 1000, "b", limit=2) == 3
    assert edit_distance("abcdef", "uvwxyz", limit=2) == 3


@pytest.mark.parametrize(
    ("value", "candidates", "expected"),
    [
        ("appp1", ["app1", "app2"], "app1"),
        ("app", ["app1"], "app1"),
        ("ap", ["app1"], None),
        ("rsa", ["ECDSA", "RSA"], "RSA"),
        ("server-auth", ["server auth", "client auth"], "server auth"),
        ("frontend", ["app1", "app2"], None),
        ("x", ["ab"], None),
        ("app1", ["app1"], None),
    ],
)
def test_closest(value: str, candidates: list[str], expected: str | None) -> None:
    assert closest(value, candidates) == expected


def test_did_you_mean_phrases_or_stays_silent() -> None:
    assert did_you_mean("appp1", ["app1"]) == '; did you mean "app1"?'
    assert did_you_mean("zzz", ["app1"]) == ""
    assert did_you_mean(42, ["app1"]) == ""
