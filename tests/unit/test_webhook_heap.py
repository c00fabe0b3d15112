"""Heap memory freed after a burst goes back to the operating system."""

from __future__ import annotations

import ctypes
import os

from webhook.heap import HeapTrimmer


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_trims_once_when_free_memory_grows_past_the_threshold() -> None:
    trimmer = HeapTrimmer(threshold=16 * 1024 * 1024)
    trimmer.check()
    trims = trimmer.trims
    # Blocks below glibc's mmap threshold, every other one freed: free memory
    # in holes of the heap that glibc keeps, as after connections close.
    blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(1024)]
    kept = blocks[1::2]
    del blocks
    assert trimmer.free_bytes() > trimmer.threshold  # also fails where mallinfo2 is missing
    before = rss_bytes()
    assert trimmer.check() is True
    assert rss_bytes() < before - trimmer.threshold  # the holes left the process
    assert trimmer.check() is False  # nothing new to give back
    assert trimmer.trims == trims + 1
    assert len(kept) == 512
