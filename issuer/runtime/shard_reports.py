"""What this replica says on the Leases of the shards it leads: each shard's progress report.

The authority controller runs with shard 0's holder but caches only the
shards its replica leads; a CA rotation must count every shard. So each
replica writes, for each shard it leads, a report of that shard (the text is
the authority controller's) into an annotation of the shard's Lease, which
its elector rewrites at every renewal; shard 0's holder reads every shard's
Lease (:mod:`issuer.runtime.shard_leases`).

A shard is *open* once its caches were filled after it was gained: before
that a report would count a shard half listed, so none is kept or written.
"""

from __future__ import annotations

import threading

PROGRESS_ANNOTATION = "pkiwarden.dev/shard-progress"


class ShardReports:
    """The latest report of each shard this replica leads, as its Lease will carry it."""

    def __init__(self) -> None:
        self._open: frozenset[int] = frozenset()
        self._texts: dict[int, str] = {}
        self._lock = threading.Lock()

    def open(self, shard: int) -> None:
        """The shard's caches are filled: reports of it count from now on."""
        with self._lock:
            self._open = self._open | {shard}

    def close(self, shard: int) -> None:
        """The shard is no longer this replica's: say nothing more about it."""
        with self._lock:
            self._open = self._open - {shard}
            self._texts.pop(shard, None)

    def opened(self) -> frozenset[int]:
        """The shards to report on; read before the caches, so a report never runs ahead."""
        return self._open

    def publish(self, shard: int, text: str) -> None:
        with self._lock:
            if shard in self._open:
                self._texts[shard] = text

    def annotations(self, shard: int) -> dict[str, str]:
        """What the shard's Lease carries besides its spec: nothing until a report exists."""
        with self._lock:
            text = self._texts.get(shard)
        return {} if text is None else {PROGRESS_ANNOTATION: text}
