"""An in-memory cache of one resource, fed by list+watch (a small informer).

Both processes read their context (policies, Pkis, Secret metadata, namespace
labels) from these caches instead of asking the API server per request: the
webhook answers in microseconds and the issuer's reconcile does no reads of
its own inputs.

The loop is the one client-go's reflector runs: list (paged) to get a
resourceVersion, watch from it with bookmarks, resume from the last seen
version when a watch ends, and re-list when the server says the version is
too old (410 Gone).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

import urllib3

from shared.kube.client import JSON, ApiError, Kube, Resource
from shared.kube.packing import Packer

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace or "", name)
Stored = object  # an object as the store holds it: the decoded dict, or packed (``packing``)
ChangeHandler = Callable[[str, JSON], None]  # ("ADDED" | "MODIFIED" | "DELETED", object)

_LIST_METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_WATCH_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


def object_key(obj: Mapping[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


# Objects per page of a cache's initial list. A page is decoded whole before
# its objects are trimmed, and the heap it grew to stays with the process: a
# page of 500 Pods peaked at 17 MiB while decoding, three times what 5,000
# trimmed Pods keep. With pages of 100 the issuer's restart over 10,000 Pkis
# (Pods, Pkis and Secrets listed at once) peaked at 199 MiB instead of 217.
PAGE_SIZE = 100


class WatchCache:
    """Holds the current objects of one resource; calls ``on_change`` for each change.

    ``on_change`` runs on the cache's own thread and must not block for long
    (the issuer only enqueues a key there).

    ``keep_metadata``: keep only these metadata fields (with name, namespace
    and resourceVersion) and of the rest of the object only ``keep_fields``;
    for objects of which a process reads little, held by the thousand.

    ``admit``: keep only the objects of the namespaces it admits (a sharded
    issuer's share of the cluster); the others are decoded and dropped. When
    it admits more, :meth:`relist` brings their objects in; an object whose
    namespace it stops admitting leaves the store without a DELETED (it was
    not deleted, it is another replica's now).

    ``packing``: keep each object packed (``shared.kube.packing``), a tenth of
    its decoded size; :meth:`get` and :meth:`list` decode the ones they
    return, each a fresh object. For kinds held by the thousand and read a
    few at a time.
    """

    # When any cache of this process last received a list page: a first sync at
    # 100,000 Pkis takes minutes, and what tells it from a sync that cannot happen
    # (no CRD, no permission) is whether pages still arrive, not how long it took.
    last_list_page: ClassVar[float] = 0.0

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        metadata_only: bool = False,
        keep_metadata: Collection[str] | None = None,
        keep_fields: Collection[str] = (),
        reduce: Callable[[JSON], JSON | None] | None = None,
        admit: Callable[[str], bool] | None = None,
        packing: Packer | None = None,
        on_change: ChangeHandler | None = None,
        watch_timeout_seconds: int = 300,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._kube = kube
        self._resource = resource
        self._path = resource.path(namespace)
        self._selectors: dict[str, str | int | bool] = {}
        if label_selector:
            self._selectors["labelSelector"] = label_selector
        if field_selector:
            self._selectors["fieldSelector"] = field_selector
        self._metadata_only = metadata_only
        # Of objects that are not pkiwarden's, only what is read is worth keeping:
        # 50,000 Secrets' full metadata held by each process cost tens of megabytes.
        self._keep_metadata = (
            None if keep_metadata is None else frozenset(keep_metadata) | _IDENTITY
        )
        self._keep_fields = frozenset(keep_fields)
        # What is left of each object after the trimming above, when the caller
        # needs less still (of a Pod, the Secrets its spec reads); None: nothing
        # worth keeping (a Pod that reads no Secret), and the object is not kept.
        self._reduce = reduce
        self._admit = admit
        self._packing = packing
        self._handlers: list[ChangeHandler] = [on_change] if on_change is not None else []
        self._watch_timeout = watch_timeout_seconds
        self._page_size = page_size
        # namespace -> name -> object: a namespace's objects without a scan of all of them.
        self._items: dict[str, dict[str, Stored]] = {}
        self._count = 0
        self._lists = 0  # lists done, for relist() to wait on
        self._last_page = 0.0  # when this cache last received a list page
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._nudged = threading.Event()  # cut a retry's wait short (access just granted)
        self._relisting = threading.Event()  # list again now: ``admit`` admits more
        self._response: urllib3.BaseHTTPResponse | None = None  # the open watch, to cut
        self.synced = threading.Event()
        # Set while the API server refuses us (401/403), so readers need not wait.
        self.denied = threading.Event()
        self.name = resource.plural + (f" in {namespace}" if namespace else "")
        self._thread = threading.Thread(target=self._run, name=f"cache-{self.name}", daemon=True)

    # -- reading ----------------------------------------------------------

    def get(self, namespace: str, name: str) -> JSON | None:
        with self._lock:
            stored = self._items.get(namespace, {}).get(name)
        return None if stored is None else self._loaded(stored)

    def keys(self, namespace: str | None = None) -> list[Key]:
        """Where each object is, without decoding any (what waking them all needs)."""
        with self._lock:
            if namespace is None:
                return [(ns, name) for ns, objects in self._items.items() for name in objects]
            return [(namespace, name) for name in self._items.get(namespace, {})]

    def list(self, namespace: str | None = None) -> list[JSON]:
        with self._lock:
            if namespace is None:
                stored = [obj for objects in self._items.values() for obj in objects.values()]
            else:
                stored = list(self._items.get(namespace, {}).values())
        return [self._loaded(obj) for obj in stored]

    def __len__(self) -> int:
        with self._lock:
            return self._count

    # -- lifecycle --------------------------------------------------------

    def add_listener(self, handler: ChangeHandler) -> None:
        """Call ``handler`` too for every change; add it before ``start`` to see every object."""
        self._handlers.append(handler)

    def start(self) -> WatchCache:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._nudged.set()

    def retry_now(self) -> None:
        """Try the list again at once instead of after the backoff, e.g. when access was granted."""
        self._nudged.set()

    def relist(self, timeout: float = 0.0) -> bool:
        """List again at once (``admit`` admits more namespaces): the open watch is cut short.

        With a ``timeout``, wait until that list is done; False if it brought no
        page for that long (a long list that keeps paging is waited for).
        """
        with self._lock:
            lists = self._lists
        self._relisting.set()
        response = self._response
        if response is not None:
            response.shutdown()
        started = time.monotonic()
        while time.monotonic() - max(started, self._last_page) < timeout:
            if self._stopped.is_set():
                break
            with self._lock:
                if self._lists > lists and not self._relisting.is_set():
                    return True
            time.sleep(0.02)
        return timeout <= 0.0

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self.synced.wait(timeout)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                version = self._list()
                self.denied.clear()
                self.synced.set()
                backoff = 0.5
                self._watch_from(version)
            except ApiError as error:
                if error.status in (401, 403):
                    self.denied.set()
                if self._stopped.is_set():
                    return
                if self._relisting.is_set():
                    continue
                if not error.gone:
                    log.warning("cache %s: %s; retrying in %.1fs", self.name, error, backoff)
                    backoff = self._pause(backoff)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                if self._stopped.is_set():
                    return  # stopped while its connection was cut: nothing to report
                if self._relisting.is_set():
                    continue  # cut by relist(): list again at once
                log.warning("cache %s: %s; retrying in %.1fs", self.name, error, backoff)
                backoff = self._pause(backoff)

    def _pause(self, backoff: float) -> float:
        """Wait ``backoff`` (or until nudged or stopped); the next backoff to use."""
        if self._nudged.wait(backoff):
            self._nudged.clear()
            return 0.5  # told the cause may be gone: start the backoff over
        return min(backoff * 2, 30.0)

    def _list(self) -> str:
        """Paged list; replaces the store and reports what changed since the last list."""
        self._relisting.clear()
        fresh: dict[str, dict[str, Stored]] = {}
        count = 0
        params: dict[str, str | int | bool] = dict(self._selectors, limit=self._page_size)
        while True:
            page = self._kube.get(
                self._path,
                params=params,
                accept=_LIST_METADATA if self._metadata_only else "application/json",
            )
            self._last_page = WatchCache.last_list_page = time.monotonic()
            for item in page.get("items") or []:
                namespace, name = object_key(item)
                if self._admit is not None and not self._admit(namespace):
                    continue
                trimmed = self._trim(item)
                if trimmed is None:
                    continue
                objects = fresh.setdefault(namespace, {})
                count += name not in objects
                objects[name] = self._stored(trimmed)
            metadata = page.get("metadata") or {}
            if not metadata.get("continue"):
                version = str(metadata.get("resourceVersion", ""))
                break
            params["continue"] = metadata["continue"]
        with self._lock:
            previous, self._items, self._count = self._items, fresh, count
            self._lists += 1
        for namespace, objects in fresh.items():
            before = previous.get(namespace, {})
            for name, stored in objects.items():
                old = before.get(name)
                if old is None:
                    self._notify("ADDED", self._loaded(stored))
                elif self._changed(old, stored):
                    self._notify("MODIFIED", self._loaded(stored))
        for namespace, objects in previous.items():
            if self._admit is not None and not self._admit(namespace):
                continue  # not deleted: another replica's share now
            now = fresh.get(namespace, {})
            for name, stored in objects.items():
                if name not in now:
                    self._notify("DELETED", self._loaded(stored))
        return version

    def _stored(self, obj: JSON) -> Stored:
        packed = self._packing.pack(obj) if self._packing is not None else None
        return obj if packed is None else packed

    def _loaded(self, stored: Stored) -> JSON:
        if isinstance(stored, dict):
            return stored
        assert self._packing is not None
        return self._packing.unpack(stored)

    def _changed(self, old: Stored, new: Stored) -> bool:
        return _version(self._loaded(old)) != _version(self._loaded(new))

    def _watch_from(self, version: str) -> None:
        """Watch until stopped; returns only by raising (410 means: list again)."""
        while not self._stopped.is_set() and not self._relisting.is_set():
            params = dict(self._selectors, resourceVersion=version)
            for event in self._kube.watch(
                self._path,
                params=params,
                accept=_WATCH_METADATA if self._metadata_only else "application/json",
                timeout_seconds=self._watch_timeout,
                on_response=self._watching,
            ):
                if self._stopped.is_set() or self._relisting.is_set():
                    return
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise ApiError(code, str(obj.get("reason", "")), str(obj.get("message", "")))
                version = _version(obj) or version
                if kind == "BOOKMARK":
                    continue
                trimmed = None
                if self._admit is None or self._admit(object_key(obj)[0]):
                    trimmed = self._trim(obj)
                if trimmed is None:  # not admitted, or not worth keeping: gone without a word
                    self._drop(obj)
                    continue
                self._apply(str(kind), trimmed)

    def _watching(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        if self._relisting.is_set():  # relist() came before the watch opened
            response.shutdown()

    def _drop(self, obj: JSON) -> None:
        """Forget an object no longer admitted or worth keeping, telling no one (not deleted)."""
        namespace, name = object_key(obj)
        with self._lock:
            objects = self._items.get(namespace)
            if objects is not None and objects.pop(name, None) is not None:
                self._count -= 1
                if not objects:
                    del self._items[namespace]

    def _apply(self, kind: str, obj: JSON) -> None:
        namespace, name = object_key(obj)
        stored = obj if kind == "DELETED" else self._stored(obj)  # packed outside the lock
        with self._lock:
            objects = self._items.get(namespace)
            if kind == "DELETED":
                if objects is not None and objects.pop(name, None) is not None:
                    self._count -= 1
                    if not objects:
                        del self._items[namespace]
            else:
                if objects is None:
                    objects = self._items[namespace] = {}
                self._count += name not in objects
                objects[name] = stored
        self._notify(kind, obj)

    def _notify(self, kind: str, obj: JSON) -> None:
        for handler in self._handlers:
            try:
                handler(kind, obj)
            except Exception:  # a handler bug must not kill the cache
                log.exception("cache %s: change handler failed", self.name)

    def _trim(self, obj: JSON) -> JSON | None:
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            if self._keep_metadata is None:
                metadata.pop("managedFields", None)
            else:
                kept: JSON = {key: value for key, value in obj.items() if key in self._keep_fields}
                kept["metadata"] = {k: v for k, v in metadata.items() if k in self._keep_metadata}
                obj = kept
        if self._reduce is not None:
            reduced = self._reduce(obj)
            if reduced is None:
                return None
            obj = reduced
        if self._packing is not None:
            return obj  # kept as text: nothing of it is shared with other objects
        interned: JSON = _interned(obj)
        return interned


# Values that repeat across objects (a namespace's name, label values): shared too.
# Under "status": a condition's type, status and reason, a constant message, the
# timestamps of Pkis issued in the same second; 0.6 to 0.8 KB of a Pki's 3.2 KB.
_SHARED_VALUES = frozenset({"namespace", "labels", "apiVersion", "kind", "status"})
_LABEL_VALUE_MAX = 63  # the longest label value Kubernetes allows
# Long values that repeat: the CA bundle every pkiwarden Secret carries (1 KB or more
# each, identical in all of them; a new value only when the CA changes).
_SHARED_LONG_VALUES = frozenset({"ca.crt"})


def _interned(value: Any, *, share: bool = False) -> Any:
    """``value`` with every mapping key interned: one string per distinct key, not per object.

    Each watch event is decoded on its own, so every cached object carried its
    own copy of each key ("metadata", "creationTimestamp", label names): about
    a third of a Pki's or a Secret's memory (1.4 to 1.6 KB of 5 to 6 KB each).
    Short values under ``_SHARED_VALUES`` are shared as well; unique ones
    (uids, timestamps, certificates) are left alone, as interning them would
    only add to the interpreter's table.
    """
    if isinstance(value, dict):
        return {
            sys.intern(key): (
                sys.intern(item)
                if key in _SHARED_LONG_VALUES and isinstance(item, str)
                else _interned(item, share=share or key in _SHARED_VALUES)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_interned(item, share=share) for item in value]
    if share and isinstance(value, str) and len(value) <= _LABEL_VALUE_MAX:
        return sys.intern(value)
    return value


# What a trimmed object always keeps: where it is and which version it is.
_IDENTITY = frozenset({"namespace", "name", "resourceVersion"})


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def wait_all_synced(caches: list[WatchCache], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    return all(cache.wait_synced(max(0.0, deadline - time.monotonic())) for cache in caches)
