"""The work queue: de-duplication, one worker per key, delays, backoff."""

from __future__ import annotations

import threading
import time

from issuer.runtime.queue import WorkQueue
from shared.backoff import Backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_adds_are_deduplicated_until_taken() -> None:
    queue = WorkQueue()
    for key in ("a/1", "a/2", "a/1", "a/1"):
        queue.add(key)
    assert len(queue) == 2
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["a/1", "a/2", None]


def test_a_key_in_progress_is_not_handed_out_twice_but_comes_back_after_done() -> None:
    queue = WorkQueue()
    queue.add("a/1")
    assert queue.get(0) == "a/1"
    queue.add("a/1")  # changed while being processed
    assert queue.get(0) is None  # not to a second worker
    queue.done("a/1")
    assert queue.get(0) == "a/1"
    queue.done("a/1")
    assert queue.get(0) is None


def test_delayed_adds_keep_the_earliest_time() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add_after("renew/1", 3600)
    queue.add_after("renew/1", 5)
    queue.add_after("renew/1", 60)
    assert queue.scheduled() == 1
    assert queue.get(0) is None
    clock.now += 5
    assert queue.get(0) == "renew/1"
    queue.done("renew/1")
    clock.now += 10_000
    assert queue.get(0) is None  # the later times were superseded


def test_an_immediate_add_wins_over_a_pending_delay() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add_after("a/1", 100)
    queue.add("a/1")
    assert queue.get(0) == "a/1"


def test_backoff_doubles_from_two_seconds_to_an_hour_and_forget_resets() -> None:
    assert [Backoff().delay(n) for n in range(5)] == [2, 4, 8, 16, 32]
    assert Backoff().delay(40) == 3600
    queue = WorkQueue(clock=FakeClock())
    assert [queue.add_rate_limited("a/1") for _ in range(3)] == [2, 4, 8]
    queue.forget("a/1")
    assert queue.add_rate_limited("a/1") == 2


def test_workers_never_process_one_key_concurrently() -> None:
    queue = WorkQueue()
    active: set[str] = set()
    overlaps: list[str] = []
    processed: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while (key := queue.get()) is not None:
            with lock:
                if key in active:
                    overlaps.append(key)
                active.add(key)
            time.sleep(0.001)
            with lock:
                active.discard(key)
                processed.append(key)
            queue.done(key)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for round_ in range(200):
        queue.add(f"ns/{round_ % 5}")
    deadline = time.monotonic() + 5
    while (len(queue) or len(processed) < 5) and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.shutdown()
    for thread in threads:
        thread.join(2)
    assert not overlaps
    assert set(processed) == {f"ns/{n}" for n in range(5)}
    assert len(processed) < 200  # de-duplicated


def test_delayed_key_wakes_a_blocked_worker() -> None:
    queue = WorkQueue()
    got: list[str | None] = []
    thread = threading.Thread(target=lambda: got.append(queue.get(timeout=2)))
    thread.start()
    queue.add_after("a/1", 0.05)
    thread.join(3)
    assert got == ["a/1"]


def test_shutdown_releases_workers() -> None:
    queue = WorkQueue()
    got: list[str | None] = []
    thread = threading.Thread(target=lambda: got.append(queue.get()))
    thread.start()
    queue.shutdown()
    thread.join(2)
    assert got == [None]
