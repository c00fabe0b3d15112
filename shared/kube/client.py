"""A small JSON client for the Kubernetes API.

The ``kubernetes`` package is used only to load credentials (kubeconfig or the
in-cluster service account, including token rotation); requests go through
urllib3 with plain dicts. That keeps objects in their wire shape (what the
schema and validation read), lets list+watch stream without model
deserialisation, and makes metadata-only lists (``PartialObjectMetadata``) a
header away.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

import urllib3

from shared.kube import connection as connections
from shared.kube.connection import Connection

JSON = dict[str, Any]
PatchType = Literal["merge", "strategic", "json"]

_PATCH_CONTENT_TYPES: dict[PatchType, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}

METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
# The same for one object: a Secret read this way carries no data, so no key crosses the wire.
METADATA_ONLY_OBJECT = (
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
)


class ApiError(Exception):
    """A non-2xx answer from the API server, with its Status fields."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: ``/apis/GROUP/VERSION/[namespaces/NS/]PLURAL``."""

    group_version: str  # "v1" for the core group
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if sub:
            base += f"/{sub}"
        return base


PKIS = Resource("pkiwarden.dev/v1alpha1", "pkis")
PKI_POLICIES = Resource("pkiwarden.dev/v1alpha1", "pkipolicies", namespaced=False)
PKI_AUTHORITIES = Resource("pkiwarden.dev/v1alpha1", "pkiauthorities", namespaced=False)
CONFIG_MAPS = Resource("v1", "configmaps")
CRDS = Resource("apiextensions.k8s.io/v1", "customresourcedefinitions", namespaced=False)
SECRETS = Resource("v1", "secrets")
PODS = Resource("v1", "pods")
EVENTS = Resource("v1", "events")
NAMESPACES = Resource("v1", "namespaces", namespaced=False)
LEASES = Resource("coordination.k8s.io/v1", "leases")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io/v1", "rolebindings")
CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False
)
WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", namespaced=False
)


class Kube:
    """Thread-safe: urllib3's pool manager may be shared by worker threads."""

    def __init__(self, connection: Connection | Any, *, pool_size: int = 16) -> None:
        """``connection``: a :class:`Connection`, or a ``kubernetes`` Configuration."""
        if not isinstance(connection, Connection):
            connection = Connection.of_configuration(connection)
        self._token = connection.token
        self.host: str = connection.host.rstrip("/")
        cert_reqs = ssl.CERT_REQUIRED if connection.verify else ssl.CERT_NONE
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            cert_reqs=cert_reqs,
            ca_certs=connection.ca_file,
            cert_file=connection.cert_file,
            key_file=connection.key_file,
            ssl_minimum_version=ssl.TLSVersion.TLSv1_2,
            retries=False,
        )

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None, *, pool_size: int = 16) -> Kube:
        """Kubeconfig (argument, then $KUBECONFIG, then ~/.kube/config), else in-cluster.

        ``pool_size``: connections kept open for reuse; size it for the threads
        that make requests at once (each open watch holds one connection).
        """
        return cls(connections.from_environment(kubeconfig), pool_size=pool_size)

    @classmethod
    def from_token(cls, host: str, token: str, ca_cert_path: str) -> Kube:
        bearer = f"Bearer {token}"
        return cls(Connection(host=host, ca_file=ca_cert_path, token=lambda: bearer))

    # -- requests ---------------------------------------------------------

    def _headers(self, accept: str, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": "pkiwarden"}
        token = self._token()
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | bool] | None = None,
        body: object = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float = 30.0,
    ) -> JSON:
        url = self._url(path, params)
        data = None if body is None else json.dumps(body).encode()
        response = self._pool.request(
            method,
            url,
            body=data,
            headers=self._headers(accept, content_type if data is not None else None),
            timeout=urllib3.Timeout(connect=5.0, read=timeout),
            preload_content=True,
        )
        payload = _decode(response.data)
        if response.status >= 400:
            raise _api_error(response.status, payload)
        return payload

    def get(self, path: str, **kwargs: Any) -> JSON:
        return self.request("GET", path, **kwargs)

    def create(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> JSON:
        return self.request("POST", path, body=body, **kwargs)

    def replace(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> JSON:
        return self.request("PUT", path, body=body, **kwargs)

    def patch(
        self, path: str, body: object, patch_type: PatchType = "merge", **kwargs: Any
    ) -> JSON:
        return self.request(
            "PATCH", path, body=body, content_type=_PATCH_CONTENT_TYPES[patch_type], **kwargs
        )

    def delete(self, path: str, **kwargs: Any) -> JSON:
        return self.request("DELETE", path, **kwargs)

    def watch(
        self,
        path: str,
        *,
        params: Mapping[str, str | int | bool] | None = None,
        accept: str = "application/json",
        timeout_seconds: int = 300,
        on_response: Callable[[urllib3.BaseHTTPResponse], None] | None = None,
    ) -> Iterator[JSON]:
        """Yield watch events (``{"type": ..., "object": ...}``) until the server ends the watch.

        The server is asked to end the watch after ``timeout_seconds``; the
        client read timeout sits a little beyond it, so a silently dead
        connection is noticed instead of hanging forever. ``on_response`` is
        handed the open response, so another thread can end the watch at once
        (``shutdown()``) instead of waiting for its next event.
        """
        query = dict(params or {})
        query.update(watch="true", allowWatchBookmarks="true", timeoutSeconds=timeout_seconds)
        response = self._pool.request(
            "GET",
            self._url(path, query),
            headers=self._headers(accept, None),
            timeout=urllib3.Timeout(connect=5.0, read=timeout_seconds + 30),
            preload_content=False,
        )
        if on_response is not None:
            on_response(response)
        try:
            if response.status >= 400:
                raise _api_error(response.status, _decode(response.read()))
            buffer = b""
            for chunk in response.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.release_conn()

    def _url(self, path: str, params: Mapping[str, str | int | bool] | None) -> str:
        if not params:
            return self.host + path
        query = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items()}
        return f"{self.host}{path}?{urlencode(query)}"


def _decode(data: bytes) -> JSON:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {"message": data[:512].decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"items": value}


def _api_error(status: int, payload: Mapping[str, Any]) -> ApiError:
    return ApiError(
        status, str(payload.get("reason", "")), str(payload.get("message", "") or payload)
    )
