"""Give memory freed after a burst back to the operating system (both processes).

In the webhook, a burst of reviews opens many connections at once (the API server opens one
per concurrent call), and each holds TLS and HTTP buffers. When they close,
the C allocator keeps the freed memory for reuse instead of returning it: in
a profile after 60 s at 2,000 reviews/s, glibc held 350 MiB of free heap and
the process stayed 60 MiB above its steady size for good. ``malloc_trim``
returns it, and :func:`fix_mmap_threshold` keeps the largest per-connection
block (uvloop's 256 KiB TLS read buffer) out of the heap altogether: glibc
raises its mmap threshold each time such a block is freed, after which they
all come from the heap and leave it fragmented; a fixed threshold keeps them
mmap'd, returned on close. ``malloc_trim`` runs in a thread when the
allocator's free memory has grown by more than ``threshold`` bytes since the
last trim, which is rare in a steady state, so it costs nothing while the
webhook is busy answering. (Trimmed memory still counts as free for the
allocator, hence growth, not level.)

In the issuer, the bursts are a cache's list pages: each is read and decoded
whole (up to a megabyte of text, more decoded) before its objects are
trimmed, and freed after; without a fixed threshold, the later pages came
from the heap and left it fragmented.
"""

from __future__ import annotations

import ctypes
import threading

FREE_BYTES_THRESHOLD = 8 * 1024 * 1024
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value
_M_MMAP_THRESHOLD = -3
CHECK_INTERVAL_SECONDS = 5.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [  # the layout of glibc's struct mallinfo2
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` when glibc's free memory grew; a no-op elsewhere."""

    def __init__(
        self,
        threshold: int = FREE_BYTES_THRESHOLD,
        interval: float = CHECK_INTERVAL_SECONDS,
    ) -> None:
        self.threshold = threshold
        self.interval = interval
        self.trims = 0
        self._libc = _glibc()
        self._free_after_trim = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heap-trimmer", daemon=True)

    def start(self) -> HeapTrimmer:
        if self._libc is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def free_bytes(self) -> int:
        """Bytes the allocator holds free (0 where that cannot be known)."""
        if self._libc is None:
            return 0
        return int(self._libc.mallinfo2().fordblks)

    def check(self) -> bool:
        """Trim if free memory grew past the threshold; True if it did."""
        if self._libc is None:
            return False
        free = self.free_bytes()
        # Less free than after the last trim: some of it is in use again.
        self._free_after_trim = min(self._free_after_trim, free)
        if free - self._free_after_trim <= self.threshold:
            return False
        self._libc.malloc_trim(0)
        self._free_after_trim = self.free_bytes()
        self.trims += 1
        return True

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.check()


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Blocks of ``threshold`` bytes and more always get their own mapping; False if not glibc."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):  # musl, macOS, glibc older than 2.33
        return None
    return libc
