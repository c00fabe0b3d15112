"""Where the API server is and how to authenticate: a kubeconfig or the Pod's service account.

Read without the ``kubernetes`` package where possible: importing it loads
every generated API model (hundreds of modules), 21 MiB of each process's
memory before it has cached a single object, and pkiwarden's processes only
ever needed its kubeconfig reader. A kubeconfig is read here when its user
authenticates with a client certificate, a bearer token or a token file, and
in a Pod from the mounted service account; anything else (exec plugins,
auth providers, several files in ``$KUBECONFIG`` to merge) is handed to the
``kubernetes`` package, imported only then.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# client-go re-reads a projected service-account token about once a minute;
# the kubelet rotates it well before it expires.
TOKEN_REREAD_SECONDS = 60.0

Token = Callable[[], str | None]


def _no_token() -> str | None:
    return None


@dataclass(frozen=True)
class Connection:
    """What a client needs to reach the API server; ``token()`` is asked per request."""

    host: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    token: Token = field(default=_no_token, compare=False)

    @classmethod
    def of_configuration(cls, configuration: Any) -> Connection:
        """From a ``kubernetes.client.Configuration`` (the fallback, and older callers)."""

        def token() -> str | None:
            value = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
            return str(value) if value else None

        return cls(
            host=str(configuration.host),
            ca_file=configuration.ssl_ca_cert,
            cert_file=configuration.cert_file,
            key_file=configuration.key_file,
            verify=bool(configuration.verify_ssl),
            token=token,
        )


class UnsupportedKubeconfigError(Exception):
    """The kubeconfig needs more than this reader does (exec, auth provider, merging)."""


def from_environment(kubeconfig: str | None = None) -> Connection:
    """Kubeconfig (argument, then $KUBECONFIG, then ~/.kube/config), else in-cluster."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    default = Path("~/.kube/config").expanduser()
    try:
        if path:
            return from_kubeconfig(path)
        if default.exists():
            return from_kubeconfig(str(default))
        return in_cluster()
    except UnsupportedKubeconfigError:
        return _with_kubernetes_package(path)


def from_kubeconfig(path: str, context: str | None = None) -> Connection:
    """The current (or named) context's cluster and user of one kubeconfig file."""
    if os.pathsep in path:
        raise UnsupportedKubeconfigError("several kubeconfig files to merge")
    config_path = Path(path).expanduser()
    document = yaml.safe_load(config_path.read_text()) or {}
    name = context or document.get("current-context")
    chosen = _named(document.get("contexts"), name, "context")
    cluster = _named(document.get("clusters"), chosen.get("cluster"), "cluster")
    user = _named(document.get("users"), chosen.get("user"), "user")
    if user.get("exec") or user.get("auth-provider") or user.get("username"):
        raise UnsupportedKubeconfigError("the user authenticates by a plugin or a password")
    base = config_path.parent
    token = user.get("token")
    token_file = user.get("tokenFile")
    return Connection(
        host=str(cluster.get("server") or "").rstrip("/"),
        ca_file=_file(base, cluster, "certificate-authority"),
        cert_file=_file(base, user, "client-certificate"),
        key_file=_file(base, user, "client-key"),
        verify=not cluster.get("insecure-skip-tls-verify", False),
        token=(
            _fixed(str(token))
            if token
            else _reread(base / str(token_file))
            if token_file
            else _no_token
        ),
    )


def in_cluster(root: Path = SERVICE_ACCOUNT) -> Connection:
    """The Pod's service account, as client-go's rest.InClusterConfig reads it."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise RuntimeError(
            "no kubeconfig ($KUBECONFIG, ~/.kube/config) and not in a Pod"
            " (KUBERNETES_SERVICE_HOST is not set)"
        )
    if ":" in host:
        host = f"[{host}]"
    return Connection(
        host=f"https://{host}:{port}",
        ca_file=str(root / "ca.crt"),
        token=_reread(root / "token"),
    )


def _named(entries: object, name: object, what: str) -> Mapping[str, Any]:
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get(what)
            return value if isinstance(value, Mapping) else {}
    raise ValueError(f"kubeconfig: no {what} named {name!r}")


def _file(base: Path, section: Mapping[str, Any], key: str) -> str | None:
    """``key`` as a path (relative to the kubeconfig), or ``key-data`` written to a private file."""
    data = section.get(f"{key}-data")
    if data:
        return _private_file(base64.b64decode(str(data)))
    value = section.get(key)
    return str(base / Path(str(value)).expanduser()) if value else None


_scratch: list[str] = []
_scratch_lock = threading.Lock()


def _private_file(content: bytes) -> str:
    """A file only this user can read, removed at exit: urllib3 takes keys by path only."""
    with _scratch_lock:
        if not _scratch:
            _scratch.append(tempfile.mkdtemp(prefix="pkiwarden-kubeconfig-"))
            atexit.register(shutil.rmtree, _scratch[0], True)
        handle, path = tempfile.mkstemp(dir=_scratch[0])
    with os.fdopen(handle, "wb") as out:
        out.write(content)
    return path


def _fixed(token: str) -> Token:
    bearer = f"Bearer {token}"
    return lambda: bearer


def _reread(path: Path) -> Token:
    """The token in ``path``, read again at most every minute (projected tokens rotate)."""
    lock = threading.Lock()
    held: list[tuple[float, str | None]] = []

    def token() -> str | None:
        now = time.monotonic()
        with lock:
            if not held or now - held[0][0] >= TOKEN_REREAD_SECONDS:
                try:
                    text = path.read_text().strip()
                except OSError:
                    text = ""
                held[:] = [(now, f"Bearer {text}" if text else None)]
            return held[0][1]

    return token


def _with_kubernetes_package(path: str | None) -> Connection:
    """What this reader cannot do, done by the ``kubernetes`` package (imported only here)."""
    from kubernetes import client as k8s_client  # noqa: PLC0415 - 21 MiB, only when needed
    from kubernetes import config as k8s_config  # noqa: PLC0415

    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=path, client_configuration=configuration
    )
    return Connection.of_configuration(configuration)
