"""The first sync gives up on a stall, not on a long list (100,000 Pkis take minutes)."""

from __future__ import annotations

import threading
import time

from issuer.run import _wait_synced, stalled
from shared.kube.cache import WatchCache


def test_a_wait_is_stalled_only_after_the_timeout_without_a_page() -> None:
    assert not stalled(started=100.0, last_page=0.0, now=159.0, timeout=60.0)
    assert stalled(started=100.0, last_page=0.0, now=161.0, timeout=60.0)
    # Pages kept coming: ten minutes into the lists is not a stall.
    assert not stalled(started=100.0, last_page=699.0, now=700.0, timeout=60.0)
    assert stalled(started=100.0, last_page=600.0, now=700.0, timeout=60.0)


def test_lists_that_keep_paging_past_the_timeout_are_waited_for() -> None:
    done = threading.Event()
    stop = threading.Event()

    def pages() -> None:
        for _ in range(30):  # 0.3 s of pages, three times the timeout
            WatchCache.last_list_page = time.monotonic()
            time.sleep(0.01)
        done.set()

    threading.Thread(target=pages, daemon=True).start()
    assert _wait_synced(done.is_set, 0.1, stop)


def test_lists_that_bring_no_page_give_up() -> None:
    stop = threading.Event()
    assert not _wait_synced(lambda: False, 0.1, stop)
