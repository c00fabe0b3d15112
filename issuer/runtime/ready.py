"""The order in which the work queue hands out ready keys: fair across namespaces.

With one FIFO, a namespace that applies 5,000 Pkis at once puts a single Pki
of another namespace behind the whole burst. :class:`FairKeys` keeps one FIFO
per namespace and takes from the namespaces in turn (round-robin), so a quiet
namespace's key waits for at most one key of each busy namespace. Within a
namespace the order stays first come, first served. :class:`FifoKeys` is the
single FIFO of earlier releases, kept for comparison (``--queue-order fifo``).

Both are plain containers: the work queue holds the lock and de-duplicates.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import Protocol


class QueueOrder(StrEnum):
    FAIR = "fair"
    FIFO = "fifo"


class ReadyKeys(Protocol):
    def append(self, key: str) -> None: ...

    def popleft(self) -> str: ...

    def __len__(self) -> int: ...


def namespace_of(key: str) -> str:
    """A queue key is "namespace/name"; a key without "/" is its own group."""
    return key.split("/", 1)[0]


class FifoKeys:
    """First come, first served, whatever the namespace."""

    def __init__(self) -> None:
        self._keys: deque[str] = deque()

    def append(self, key: str) -> None:
        self._keys.append(key)

    def popleft(self) -> str:
        return self._keys.popleft()

    def __len__(self) -> int:
        return len(self._keys)


class FairKeys:
    """One FIFO per namespace, served in turn; O(1) per add and take."""

    def __init__(self) -> None:
        self._by_namespace: dict[str, deque[str]] = {}
        self._turns: deque[str] = deque()  # namespaces with keys, in serving order
        self._count = 0

    def append(self, key: str) -> None:
        namespace = namespace_of(key)
        keys = self._by_namespace.get(namespace)
        if keys is None:
            keys = self._by_namespace[namespace] = deque()
            self._turns.append(namespace)  # a newly busy namespace waits one round at most
        keys.append(key)
        self._count += 1

    def popleft(self) -> str:
        namespace = self._turns.popleft()  # IndexError when empty, as deque's
        keys = self._by_namespace[namespace]
        key = keys.popleft()
        if keys:
            self._turns.append(namespace)
        else:
            del self._by_namespace[namespace]
        self._count -= 1
        return key

    def __len__(self) -> int:
        return self._count


def ready_keys(order: QueueOrder) -> ReadyKeys:
    return FairKeys() if order is QueueOrder.FAIR else FifoKeys()
