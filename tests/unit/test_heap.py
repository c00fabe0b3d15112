"""Heap memory freed after a burst goes back to the operating system."""

from __future__ import annotations

import ctypes
import os

from shared.heap import HeapTrimmer, fix_mmap_threshold


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


def test_large_blocks_are_mapped_and_unmapped_on_their_own() -> None:
    trimmer = HeapTrimmer()
    # Freeing a mapped 1 MiB block makes glibc serve blocks up to 1 MiB from
    # the heap from then on, unless the threshold is fixed.
    big = ctypes.create_string_buffer(1024 * 1024)
    del big
    assert fix_mmap_threshold() is True
    free_before = trimmer.free_bytes()
    blocks = [ctypes.create_string_buffer(256 * 1024) for _ in range(128)]
    kept = blocks[1::2]
    del blocks
    # Had they come from the heap, 16 MiB would now be free in holes of it.
    assert trimmer.free_bytes() - free_before < 1024 * 1024
    assert len(kept) == 64
