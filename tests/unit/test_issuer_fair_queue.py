"""Fairness across namespaces: one namespace's burst does not starve another's Pki."""

from __future__ import annotations

import pytest

from issuer.runtime.queue import WorkQueue
from issuer.runtime.ready import FairKeys, FifoKeys, QueueOrder


def drain(queue: WorkQueue) -> list[str]:
    taken = []
    while (key := queue.get(0)) is not None:
        taken.append(key)
        queue.done(key)
    return taken


@pytest.mark.parametrize(
    ("added", "fair", "fifo"),
    [
        # A burst, then a quiet namespace's one Pki: second in line, not last.
        (
            ["burst/1", "burst/2", "burst/3", "burst/4", "quiet/1"],
            ["burst/1", "quiet/1", "burst/2", "burst/3", "burst/4"],
            ["burst/1", "burst/2", "burst/3", "burst/4", "quiet/1"],
        ),
        # Three namespaces take turns; within each, first come first served.
        (
            ["a/1", "a/2", "a/3", "b/1", "b/2", "c/1"],
            ["a/1", "b/1", "c/1", "a/2", "b/2", "a/3"],
            ["a/1", "a/2", "a/3", "b/1", "b/2", "c/1"],
        ),
        # One namespace alone: its own order.
        (["a/3", "a/1", "a/2"], ["a/3", "a/1", "a/2"], ["a/3", "a/1", "a/2"]),
        ([], [], []),
    ],
)
def test_keys_are_handed_out_round_robin_across_namespaces(
    added: list[str], fair: list[str], fifo: list[str]
) -> None:
    for order, expected in ((QueueOrder.FAIR, fair), (QueueOrder.FIFO, fifo)):
        queue = WorkQueue(order=order)
        for key in added:
            queue.add(key)
        assert len(queue) == len(expected)
        assert drain(queue) == expected, order


def test_a_namespace_that_empties_and_comes_back_waits_one_round_at_most() -> None:
    keys = FairKeys()
    for key in ("burst/1", "burst/2", "burst/3", "quiet/1"):
        keys.append(key)
    assert [keys.popleft(), keys.popleft()] == ["burst/1", "quiet/1"]
    keys.append("quiet/2")  # quiet had emptied: it joins behind burst's turn
    assert [keys.popleft() for _ in range(len(keys))] == ["burst/2", "quiet/2", "burst/3"]
    with pytest.raises(IndexError):
        keys.popleft()


def test_a_quiet_key_waits_for_one_key_per_busy_namespace_whatever_the_burst() -> None:
    keys = FairKeys()
    for number in range(5000):
        keys.append(f"burst/{number}")
    keys.append("other-burst/0")
    keys.append("quiet/1")
    taken = [keys.popleft() for _ in range(3)]
    assert taken == ["burst/0", "other-burst/0", "quiet/1"]
    assert len(keys) == 4999


def test_a_key_requeued_while_processing_keeps_fairness() -> None:
    """De-duplication and one-worker-per-key still hold under the fair order."""
    queue = WorkQueue()
    queue.add("burst/1")
    assert queue.get(0) == "burst/1"
    queue.add("burst/1")  # changed while processed: back after done, not to a second worker
    queue.add("burst/2")
    queue.add("quiet/1")
    assert queue.get(0) == "burst/2"
    assert queue.get(0) == "quiet/1"
    assert queue.get(0) is None
    queue.done("burst/1")
    assert queue.get(0) == "burst/1"


def test_fifo_is_first_come_first_served() -> None:
    keys = FifoKeys()
    for key in ("b/1", "a/1", "b/2"):
        keys.append(key)
    assert [keys.popleft() for _ in range(3)] == ["b/1", "a/1", "b/2"]
