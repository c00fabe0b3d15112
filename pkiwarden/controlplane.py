"""A real local Kubernetes control plane: etcd and kube-apiserver on loopback.

The demo, the end-to-end tests and the benchmarks all start it through this
module, so they exercise the same API server behaviour (admission webhooks over
TLS, RBAC, TokenRequest, Events) that a cluster has. There is no kubelet and no
controller-manager: Pods stay Pending and nothing creates default service
accounts, which is why the ``ServiceAccount`` admission plugin is disabled.

One directory holds one instance: key material, etcd data, logs, pid records
and the kubeconfig. :func:`up` reuses a running directory; :func:`down` stops
exactly the processes recorded there and removes the directory.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pkiwarden import local_processes as procs
from pkiwarden.local_certs import PkiFiles, write_control_plane_pki

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "deploy" / "local" / "build.sh"
BINARY_OVERRIDES: Mapping[str, str] = {
    "kube-apiserver": "PKIWARDEN_KUBE_APISERVER",
    "etcd": "PKIWARDEN_ETCD",
    "kubectl": "PKIWARDEN_KUBECTL",
}
MARKER = ".pkiwarden-local"
STATE_FILE = "controlplane.json"
CONTEXT = "pkiwarden-local"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
ETCD = "etcd"
APISERVER = "kube-apiserver"
CORE_PROCESSES = (ETCD, APISERVER)
READY_TIMEOUT = 90.0
_PROCESS_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached; the message says why."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike its base class, the message carries kubectl's stderr."""

    def __str__(self) -> str:
        return f"{' '.join(map(str, self.cmd))} exited {self.returncode}: {self.stderr}".strip()


def default_dir() -> Path:
    """Where ``pkiwarden local up`` keeps its instance when no --dir is given."""
    cache = os.environ.get("PKIWARDEN_CACHE") or os.environ.get("XDG_CACHE_HOME")
    root = Path(cache) if cache else Path.home() / ".cache"
    if not os.environ.get("PKIWARDEN_CACHE"):
        root = root / "pkiwarden"
    return root / "local" / "default"


# --------------------------------------------------------------------------- binaries


@dataclass(frozen=True)
class BinDir:
    """Paths of the three binaries; each may come from an override or the build cache."""

    kube_apiserver: Path
    etcd: Path
    kubectl: Path

    @property
    def path(self) -> Path:
        """The directory holding kubectl, to put on PATH."""
        return self.kubectl.parent


def _build() -> Path:
    """Run deploy/local/build.sh (a no-op once cached) and return its output directory."""
    if not BUILD_SCRIPT.is_file():
        raise ControlPlaneError(
            f"cannot build the control plane: {BUILD_SCRIPT} is missing (pkiwarden is not"
            " running from a source checkout); set "
            + ", ".join(BINARY_OVERRIDES.values())
            + " to existing binaries instead"
        )
    # stderr stays on the terminal: a cold build takes many minutes and shows progress.
    result = subprocess.run(
        [str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise ControlPlaneError(
            f"building the control plane failed ({BUILD_SCRIPT} exited {result.returncode});"
            " its output above says why. Go and the Go module proxy must be reachable, or set "
            + ", ".join(BINARY_OVERRIDES.values())
        )
    return Path(lines[-1])


def binaries() -> BinDir:
    """The binaries to run: the PKIWARDEN_* overrides, else the cached build (built if needed)."""
    overrides = {name: os.environ.get(var, "") for name, var in BINARY_OVERRIDES.items()}
    built = _build() if not all(overrides.values()) else None
    paths: dict[str, Path] = {}
    for name, value in overrides.items():
        path = Path(value) if value else (built or Path()) / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            source = f"${BINARY_OVERRIDES[name]}" if value else "the build cache"
            raise ControlPlaneError(f"{name} from {source} is not an executable file: {path}")
        paths[name] = path
    return BinDir(paths["kube-apiserver"], paths["etcd"], paths["kubectl"])


# --------------------------------------------------------------------------- the instance


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane and what a client needs to talk to it as admin."""

    dir: Path
    kubeconfig: Path
    server: str
    ca_cert: Path
    admin_cert: Path
    admin_key: Path
    binaries: BinDir

    @property
    def bin_dir(self) -> Path:
        """Directory holding kubectl."""
        return self.binaries.path

    def env(self) -> dict[str, str]:
        """Environment for a child process that should talk to this control plane as admin."""
        return {"KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this control plane, as admin unless ``kubeconfig``."""
        config = kubeconfig or self.kubeconfig
        argv = [str(self.binaries.kubectl), "--kubeconfig", str(config), *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """A ``kubernetes.client.ApiClient``, as admin unless ``kubeconfig`` says otherwise."""
        from kubernetes import config  # noqa: PLC0415 - heavy import, only when asked

        config_file = str(kubeconfig or self.kubeconfig)
        return config.new_client_from_config(config_file=config_file)  # type: ignore[no-untyped-call]

    def start_process(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> int:
        """Start a helper process (webhook, issuer) with KUBECONFIG set; ``down`` stops it."""
        return start_process(self.dir, name, argv, {**self.env(), **(env or {})})


def _state(dir: Path) -> dict[str, str] | None:
    try:
        data: dict[str, str] = json.loads((dir / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def _from_state(dir: Path, state: Mapping[str, str]) -> ControlPlane:
    return ControlPlane(
        dir=dir,
        kubeconfig=Path(state["kubeconfig"]),
        server=state["server"],
        ca_cert=Path(state["ca_cert"]),
        admin_cert=Path(state["admin_cert"]),
        admin_key=Path(state["admin_key"]),
        binaries=BinDir(Path(state["kube_apiserver"]), Path(state["etcd"]), Path(state["kubectl"])),
    )


def running(dir: Path) -> ControlPlane | None:
    """The control plane running in ``dir``, or None if it is not (fully) up."""
    dir = dir.expanduser().resolve()
    state = _state(dir)
    if state is None:
        return None
    for name in CORE_PROCESSES:
        record = procs.read(dir, name)
        if record is None or not procs.is_running(record):
            return None
    plane = _from_state(dir, state)
    return plane if _ready(plane, timeout=2.0) else None


# --------------------------------------------------------------------------- start


def _free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now; all held open together so they differ."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def etcd_argv(etcd: Path, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    """etcd for one throw-away member; fsync off because the data is disposable."""
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        str(etcd),
        "--name=default",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--unsafe-no-fsync",
    ]


def apiserver_argv(
    apiserver: Path, pki: PkiFiles, cert_dir: Path, port: int, etcd_port: int
) -> list[str]:
    """kube-apiserver on loopback with client-certificate and service-account auth, RBAC on."""
    return [
        str(apiserver),
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--cert-dir={cert_dir}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        # The reconciler of the "kubernetes" Service's endpoints refuses a
        # loopback address, and nothing in-cluster could use it anyway.
        "--endpoint-reconciler-type=none",
        # No controller-manager creates the "default" ServiceAccount this plugin
        # insists on; ValidatingAdmissionWebhook stays on (it is a default).
        "--disable-admission-plugins=ServiceAccount",
        "--allow-privileged=true",
        "--profiling=false",
    ]


def kubeconfig_document(
    server: str, ca_pem: bytes, user: str, credentials: Mapping[str, str]
) -> dict[str, Any]:
    """A single-context kubeconfig; material is embedded so the file can be copied alone."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": dict(credentials)}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
    }


def _write_kubeconfig(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False))
    path.chmod(0o600)
    return path


def _b64_file(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _ssl_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def http_ok(url: str, *, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """True if ``url`` answers 200: the readiness probe of every local process."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _ready(plane: ControlPlane, timeout: float) -> bool:
    """True if /readyz answers ok (as admin: before RBAC bootstrap, anonymous is refused)."""
    context = _ssl_context(plane.ca_cert, plane.admin_cert, plane.admin_key)
    return http_ok(f"{plane.server}/readyz", context=context, timeout=timeout)


def _etcd_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1.0) as response:
            return bool(json.loads(response.read()).get("health") == "true")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _failure(dir: Path, name: str, what: str) -> ControlPlaneError:
    log = procs.log_path(dir, name)
    return ControlPlaneError(f"{name} {what}; last lines of {log}:\n{procs.tail(log)}")


def _wait(
    dir: Path, check: Callable[[], bool], watched: Sequence[str], deadline: float, what: str
) -> None:
    """Poll ``check`` until true; fail early, with its log, if a watched process dies."""
    while not check():
        for name in watched:
            record = procs.read(dir, name)
            if record is None or not procs.is_running(record):
                binary = record.argv[0] if record else name
                raise _failure(dir, name, f"({binary}) exited during start-up")
        if time.monotonic() > deadline:
            raise _failure(dir, watched[-1], f"was not {what} within {READY_TIMEOUT:.0f} s")
        time.sleep(0.1)


def _prepare(dir: Path) -> None:
    """Make ``dir`` an empty instance directory, clearing a stale instance of ours."""
    if (dir / MARKER).exists():
        procs.stop_all(dir, last=(APISERVER, ETCD))
        shutil.rmtree(dir)
    elif dir.exists() and any(dir.iterdir()):
        raise ControlPlaneError(
            f"{dir} is not empty and holds no pkiwarden control plane; choose an empty or new --dir"
        )
    dir.mkdir(parents=True, exist_ok=True)
    (dir / MARKER).write_text("created by pkiwarden local up; removed by pkiwarden local down\n")


def _start(dir: Path, bins: BinDir, die_with_caller: bool) -> ControlPlane:
    deadline = time.monotonic() + READY_TIMEOUT
    pki = write_control_plane_pki(dir / "pki", dt.datetime.now(dt.UTC))
    etcd_client, etcd_peer, api_port = _free_ports(3)
    procs.start(
        dir,
        ETCD,
        etcd_argv(bins.etcd, dir / "etcd-data", etcd_client, etcd_peer),
        die_with_parent=die_with_caller,
    )
    _wait(dir, lambda: _etcd_healthy(etcd_client), [ETCD], deadline, "healthy")
    procs.start(
        dir,
        APISERVER,
        apiserver_argv(bins.kube_apiserver, pki, dir / "pki", api_port, etcd_client),
        die_with_parent=die_with_caller,
    )
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = _write_kubeconfig(
        dir / "kubeconfig",
        kubeconfig_document(
            server,
            pki.ca_cert.read_bytes(),
            "pkiwarden-admin",
            {
                "client-certificate-data": _b64_file(pki.admin_cert),
                "client-key-data": _b64_file(pki.admin_key),
            },
        ),
    )
    plane = ControlPlane(
        dir=dir,
        kubeconfig=kubeconfig,
        server=server,
        ca_cert=pki.ca_cert,
        admin_cert=pki.admin_cert,
        admin_key=pki.admin_key,
        binaries=bins,
    )
    _wait(dir, lambda: _ready(plane, timeout=2.0), [ETCD, APISERVER], deadline, "ready")
    state = {
        "server": server,
        "kubeconfig": str(kubeconfig),
        "ca_cert": str(pki.ca_cert),
        "admin_cert": str(pki.admin_cert),
        "admin_key": str(pki.admin_key),
        "kube_apiserver": str(bins.kube_apiserver),
        "etcd": str(bins.etcd),
        "kubectl": str(bins.kubectl),
    }
    (dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    return plane


def up(dir: Path, *, die_with_caller: bool = False) -> ControlPlane:
    """Start a control plane in ``dir``, or return the one already running there.

    The processes outlive the caller (own session), unless ``die_with_caller``
    is set: then the kernel kills them if the caller dies without calling
    :func:`down`, which is what a test session wants.
    """
    dir = dir.expanduser().resolve()
    existing = running(dir)
    if existing is not None:
        return existing
    bins = binaries()
    attempts = 3
    for attempt in range(1, attempts + 1):
        _prepare(dir)
        try:
            return _start(dir, bins, die_with_caller)
        except BaseException as error:  # Ctrl-C included: leave no half-started servers
            # Logs stay in dir for reading; the next up or down clears them.
            procs.stop_all(dir, last=(APISERVER, ETCD))
            # Another program may take a port between our probe and the bind.
            retry = isinstance(error, ControlPlaneError) and "address already in use" in str(error)
            if not retry or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def restart_apiserver(
    plane: ControlPlane, *, die_with_caller: bool = False, flags: Sequence[str] = ()
) -> None:
    """Stop kube-apiserver and start it again with the same flags, as an upgrade would.

    etcd keeps running, so every object survives; clients see their
    connections and watches cut, which is what resilience tests want.
    ``flags`` (``--name=value``) replace or add to the recorded ones, e.g. a
    short ``--event-ttl`` for a test of Events outliving it.
    """
    record = procs.read(plane.dir, APISERVER)
    if record is None:
        raise ControlPlaneError(f"no {APISERVER} recorded in {plane.dir}")
    names = {flag.split("=", 1)[0] for flag in flags}
    argv = [arg for arg in record.argv if arg.split("=", 1)[0] not in names] + list(flags)
    procs.stop(plane.dir, APISERVER)
    procs.start(plane.dir, APISERVER, argv, die_with_parent=die_with_caller)
    deadline = time.monotonic() + READY_TIMEOUT
    _wait(plane.dir, lambda: _ready(plane, timeout=2.0), [ETCD, APISERVER], deadline, "ready")


def down(dir: Path, report: Callable[[str], None] | None = None) -> None:
    """Stop exactly the processes recorded in ``dir`` and remove ``dir``.

    A directory without our marker is never removed, so a mistyped --dir
    cannot delete anything that ``up`` did not create.
    """
    dir = dir.expanduser().resolve()
    say = report or (lambda _line: None)
    if not dir.exists():
        say(f"nothing to stop: {dir} does not exist")
        return
    if not (dir / MARKER).exists():
        raise ControlPlaneError(f"{dir} was not created by pkiwarden local up; leaving it alone")
    for line in procs.stop_all(dir, last=(APISERVER, ETCD)):
        say(line)
    shutil.rmtree(dir)
    say(f"removed {dir}")


# --------------------------------------------------------------------------- helper processes
# The webhook, the issuer, the demo and the benchmarks start their own processes
# next to the control plane through this hook so that ``down`` stops them too.


def start_process(
    dir: Path, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
) -> int:
    """Start ``argv`` in the background, logging to DIR/logs/NAME.log; returns its pid.

    ``down`` stops it (before the API server). ``env`` is added to the current
    environment.
    """
    if not _PROCESS_NAME.match(name) or name in CORE_PROCESSES:
        raise ValueError(
            f"process name {name!r} must be a lower-case DNS label other than "
            + " and ".join(CORE_PROCESSES)
        )
    dir = dir.expanduser().resolve()
    if not (dir / MARKER).exists():
        raise ControlPlaneError(f"{dir} holds no control plane; run up first")
    return procs.start(dir, name, argv, env).pid


def stop_process(dir: Path, name: str) -> str:
    """Stop one helper process started with :func:`start_process`; says what happened."""
    return procs.stop(dir.expanduser().resolve(), name)


def pkiwarden_argv(*args: str) -> list[str]:
    """The argv that runs a ``pkiwarden`` sub-command with this interpreter."""
    return [sys.executable, "-m", "pkiwarden.cli", *args]


# --------------------------------------------------------------------------- identities


def service_account_kubeconfig(
    cp: ControlPlane,
    namespace: str,
    name: str,
    path: Path,
    *,
    expiration_seconds: int = 3600,
) -> Path:
    """Write a kubeconfig that authenticates as ServiceAccount ``namespace/name``.

    The token comes from the TokenRequest API, as a Pod's projected token
    would, so RBAC tests see exactly what a deployed process sees. The
    ServiceAccount must exist.
    """
    from kubernetes import client  # noqa: PLC0415 - heavy import, only when asked

    with cp.api_client() as api:
        token_request = client.CoreV1Api(api).create_namespaced_service_account_token(
            name,
            namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
            ),
        )
    if token_request.status is None or not token_request.status.token:
        raise ControlPlaneError(f"TokenRequest for {namespace}/{name} returned no token")
    token = str(token_request.status.token)
    user = f"system:serviceaccount:{namespace}:{name}"
    return _write_kubeconfig(
        path, kubeconfig_document(cp.server, cp.ca_cert.read_bytes(), user, {"token": token})
    )
