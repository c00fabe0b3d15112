"""A real local Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler.

The demo, the end-to-end tests and the benchmarks all start it through this
module, so they exercise what a cluster does (admission webhooks reached
through a Service, RBAC, TokenRequest, Events, garbage collection, namespace
deletion, Deployments creating Pods). A node (containerd and a kubelet) is
:mod:`pkiwarden.local.node`'s to start; without one, Pods are scheduled
nowhere and stay Pending. There is no kube-proxy: a Service's ClusterIP (on
loopback, see :mod:`pkiwarden.local.components`) is served by whoever
listens on it.

One directory holds one instance: key material, etcd data, logs, pid records
and the kubeconfigs. :func:`up` reuses a running directory; :func:`down`
stops exactly the processes recorded there, removes the node (see
:mod:`pkiwarden.local.node_teardown`) and the directory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from pkiwarden.local import components, node_config, node_teardown
from pkiwarden.local import processes as procs
from pkiwarden.local.certs import (
    ADMIN_USER,
    CONTROLLER_MANAGER_USER,
    SCHEDULER_USER,
    PkiFiles,
    write_control_plane_pki,
)
from pkiwarden.local.components import client_certificate_credentials, kubeconfig_document
from pkiwarden.local.readiness import (
    LOOPBACK,
    NotReadyError,
    free_ports,
    http_ok,
    wait_until_ready,
)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
BUILD_SCRIPT = REPO_ROOT / "deploy" / "local" / "build.sh"
ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KUBECTL = "kubectl"
BINARY_OVERRIDES: Mapping[str, str] = {
    APISERVER: "PKIWARDEN_KUBE_APISERVER",
    CONTROLLER_MANAGER: "PKIWARDEN_KUBE_CONTROLLER_MANAGER",
    SCHEDULER: "PKIWARDEN_KUBE_SCHEDULER",
    ETCD: "PKIWARDEN_ETCD",
    KUBECTL: "PKIWARDEN_KUBECTL",
}
MARKER = ".pkiwarden-local"
STATE_FILE = "controlplane.json"
# Started in this order; stopped in the reverse, after everything else.
CORE_PROCESSES = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER)
STOP_LAST = tuple(reversed(CORE_PROCESSES))
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
    """Paths of the binaries; each may come from an override or the build cache."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
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
    returncode, built = run_build_script(BUILD_SCRIPT)
    if built is None:
        raise ControlPlaneError(
            f"building the control plane failed ({BUILD_SCRIPT} exited {returncode});"
            " its output above says why. Go and the Go module proxy must be reachable, or set "
            + ", ".join(BINARY_OVERRIDES.values())
        )
    return built


def run_build_script(script: Path) -> tuple[int, Path | None]:
    """Run one of deploy/local's build scripts: its exit code and the path it printed last.

    stderr stays on the terminal: a cold build takes minutes and shows its progress.
    """
    result = subprocess.run(
        [str(script)], stdout=subprocess.PIPE, text=True, check=False, stdin=subprocess.DEVNULL
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        return result.returncode, None
    return result.returncode, Path(lines[-1])


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
        paths[name.replace("-", "_")] = path
    return BinDir(**paths)


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
    service_cidr: str
    binaries: BinDir
    # Set when the control plane was made for pkiwarden's Pods: the subnet its
    # node's Pods get, whose bridge address the API server is reached at.
    pod_subnet: str | None = None

    @property
    def for_pods(self) -> bool:
        """Whether Pods on its node can reach the API server (pkiwarden then runs as Pods)."""
        return self.pod_subnet is not None

    @property
    def pod_api_address(self) -> tuple[str, int]:
        """Where a Pod reaches the API server: the node's bridge address and its port."""
        if self.pod_subnet is None:
            raise ControlPlaneError(
                f"the control plane in {self.dir} was started with --no-node: Pods cannot reach it"
            )
        port = int(self.server.rsplit(":", 1)[1])
        return node_config.bridge_ip(self.pod_subnet), port

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


def _save(plane: ControlPlane) -> None:
    state = asdict(plane)
    state["binaries"] = {key: str(value) for key, value in state["binaries"].items()}
    for key in ("dir", "kubeconfig", "ca_cert", "admin_cert", "admin_key"):
        state[key] = str(state[key])
    (plane.dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def _load(dir: Path) -> ControlPlane | None:
    try:
        state: dict[str, Any] = json.loads((dir / STATE_FILE).read_text())
        return ControlPlane(
            dir=dir,
            kubeconfig=Path(state["kubeconfig"]),
            server=state["server"],
            ca_cert=Path(state["ca_cert"]),
            admin_cert=Path(state["admin_cert"]),
            admin_key=Path(state["admin_key"]),
            service_cidr=state["service_cidr"],
            binaries=BinDir(**{key: Path(value) for key, value in state["binaries"].items()}),
            pod_subnet=state.get("pod_subnet"),
        )
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def serving(dir: Path) -> ControlPlane | None:
    """The control plane in ``dir`` if its API server answers, whatever else was stopped.

    A benchmark stops the scheduler and the controller-manager to be the only
    writer; a later run over what it left uses the API server all the same.
    """
    dir = dir.expanduser().resolve()
    plane = _load(dir)
    return plane if plane is not None and _ready(plane, timeout=2.0) else None


def running(dir: Path) -> ControlPlane | None:
    """The control plane running in ``dir``, or None if it is not (fully) up."""
    dir = dir.expanduser().resolve()
    plane = _load(dir)
    if plane is None:
        return None
    for name in CORE_PROCESSES:
        record = procs.read(dir, name)
        if record is None or not procs.is_running(record):
            return None
    return plane if _ready(plane, timeout=2.0) else None


# --------------------------------------------------------------------------- start


def _write_kubeconfig(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False))
    path.chmod(0o600)
    return path


def _client_kubeconfig(
    path: Path, server: str, pki: PkiFiles, *, user: str, cert: Path, key: Path
) -> Path:
    credentials = client_certificate_credentials(cert, key)
    document = kubeconfig_document(server, pki.ca_cert.read_bytes(), user, credentials)
    return _write_kubeconfig(path, document)


def _ssl_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def _self_signed_context() -> ssl.SSLContext:
    """For the health ports of the controller-manager and scheduler, which sign their own."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _ready(plane: ControlPlane, timeout: float) -> bool:
    """True if /readyz answers ok (as admin: before RBAC bootstrap, anonymous is refused)."""
    context = _ssl_context(plane.ca_cert, plane.admin_cert, plane.admin_key)
    return http_ok(f"{plane.server}/readyz", context=context, timeout=timeout)


def _admin_get_ok(plane: ControlPlane, path: str) -> bool:
    context = _ssl_context(plane.ca_cert, plane.admin_cert, plane.admin_key)
    return http_ok(f"{plane.server}{path}", context=context, timeout=2.0)


def _etcd_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/health", timeout=1.0) as response:
            return bool(json.loads(response.read()).get("health") == "true")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _healthz(port: int) -> Callable[[], bool]:
    url = f"https://{LOOPBACK}:{port}/healthz"
    return lambda: http_ok(url, context=_self_signed_context(), timeout=1.0)


def _wait(
    dir: Path, check: Callable[[], bool], watched: Sequence[str], deadline: float, what: str
) -> None:
    """:func:`wait_until_ready` against one deadline shared by every start-up step."""
    remaining = max(deadline - time.monotonic(), 0.0)
    wait_until_ready(dir, check, watched, what=what, timeout=remaining)


def _prepare(dir: Path) -> None:
    """Make ``dir`` an empty instance directory, clearing a stale instance of ours."""
    if (dir / MARKER).exists():
        node_teardown.teardown(dir, report=lambda _line: None)
        procs.stop_all(dir, last=STOP_LAST)
        shutil.rmtree(dir)
    elif dir.exists() and any(dir.iterdir()):
        raise ControlPlaneError(
            f"{dir} is not empty and holds no pkiwarden control plane; choose an empty or new --dir"
        )
    dir.mkdir(parents=True, exist_ok=True)
    (dir / MARKER).write_text("created by pkiwarden local up; removed by pkiwarden local down\n")


def _start(
    dir: Path,
    bins: BinDir,
    die_with_caller: bool,
    pod_subnet: str | None,
    etcd_quota_bytes: int | None = None,
) -> ControlPlane:
    deadline = time.monotonic() + READY_TIMEOUT
    service_cidr = components.service_range()
    pki_dir = dir / "pki"
    pod_ips = [node_config.bridge_ip(pod_subnet)] if pod_subnet else []
    pki = write_control_plane_pki(
        pki_dir, dt.datetime.now(dt.UTC), components.kubernetes_service_ip(service_cidr), pod_ips
    )
    etcd_client, etcd_peer, api_port, manager_port, scheduler_port = free_ports(5)

    def start(name: str, argv: list[str]) -> None:
        procs.start(dir, name, argv, die_with_parent=die_with_caller)

    start(
        ETCD,
        components.etcd_argv(
            bins.etcd,
            dir / "etcd-data",
            etcd_client,
            etcd_peer,
            quota_backend_bytes=etcd_quota_bytes,
        ),
    )
    _wait(dir, lambda: _etcd_healthy(etcd_client), [ETCD], deadline, "healthy")
    start(
        APISERVER,
        components.apiserver_argv(
            bins.kube_apiserver,
            pki,
            pki_dir,
            api_port,
            etcd_client,
            service_cidr=service_cidr,
            for_pods=pod_subnet is not None,
        ),
    )
    server = f"https://{LOOPBACK}:{api_port}"
    kubeconfig = _client_kubeconfig(
        dir / "kubeconfig", server, pki, user=ADMIN_USER, cert=pki.admin_cert, key=pki.admin_key
    )
    plane = ControlPlane(
        dir=dir,
        kubeconfig=kubeconfig,
        server=server,
        ca_cert=pki.ca_cert,
        admin_cert=pki.admin_cert,
        admin_key=pki.admin_key,
        service_cidr=service_cidr,
        binaries=bins,
        pod_subnet=pod_subnet,
    )
    _wait(dir, lambda: _ready(plane, timeout=2.0), [ETCD, APISERVER], deadline, "ready")
    configs = {
        name: _client_kubeconfig(
            pki_dir / f"{name}.kubeconfig", server, pki, user=user, cert=cert, key=key
        )
        for name, user, cert, key in (
            (CONTROLLER_MANAGER, CONTROLLER_MANAGER_USER, pki.controller_manager_cert,
             pki.controller_manager_key),
            (SCHEDULER, SCHEDULER_USER, pki.scheduler_cert, pki.scheduler_key),
        )
    }  # fmt: skip
    start(
        CONTROLLER_MANAGER,
        components.controller_manager_argv(
            bins.kube_controller_manager,
            pki,
            configs[CONTROLLER_MANAGER],
            dir / CONTROLLER_MANAGER,
            manager_port,
            service_cidr=service_cidr,
        ),
    )
    start(
        SCHEDULER,
        components.scheduler_argv(
            bins.kube_scheduler, configs[SCHEDULER], dir / SCHEDULER, scheduler_port
        ),
    )
    _wait(dir, _healthz(manager_port), [*CORE_PROCESSES[:3]], deadline, "healthy")
    _wait(dir, _healthz(scheduler_port), list(CORE_PROCESSES), deadline, "healthy")
    # Healthy is not yet working: the controllers start once their caches
    # synced. The default namespace's ServiceAccount is the first sign, and
    # every Pod needs its namespace's.
    _wait(
        dir,
        lambda: _admin_get_ok(plane, "/api/v1/namespaces/default/serviceaccounts/default"),
        list(CORE_PROCESSES),
        deadline,
        "running its controllers",
    )
    _save(plane)
    return plane


def up(
    dir: Path,
    *,
    die_with_caller: bool = False,
    pod_subnet: str | None = None,
    etcd_quota_bytes: int | None = None,
) -> ControlPlane:
    """Start a control plane in ``dir``, or return the one already running there.

    The processes outlive the caller (own session), unless ``die_with_caller``
    is set: then the kernel kills them if the caller dies without calling
    :func:`down`, which is what a test session wants.

    ``pod_subnet`` (see :func:`pkiwarden.local.node.free_pod_subnet`) makes it
    one for pkiwarden's Pods: reachable from that subnet's bridge, and calling
    webhooks at their Pods' addresses (so not at a process on a ClusterIP).

    ``etcd_quota_bytes`` raises etcd's space limit (default 2 GiB) for a cluster
    seeded to size; a control plane already running in ``dir`` keeps its own.
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
            return _start(dir, bins, die_with_caller, pod_subnet, etcd_quota_bytes)
        except BaseException as error:  # Ctrl-C included: leave no half-started servers
            # Logs stay in dir for reading; the next up or down clears them.
            procs.stop_all(dir, last=STOP_LAST)
            # Another program may take a port between our probe and the bind.
            retry = isinstance(error, NotReadyError) and "address already in use" in str(error)
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

    pkiwarden's own processes go first, then the scheduler, the
    controller-manager, the API server and etcd. A directory without our
    marker is never removed, so a mistyped --dir cannot delete anything that
    ``up`` did not create.
    """
    dir = dir.expanduser().resolve()
    say = report or (lambda _line: None)
    if not dir.exists():
        say(f"nothing to stop: {dir} does not exist")
        return
    if not (dir / MARKER).exists():
        raise ControlPlaneError(f"{dir} was not created by pkiwarden local up; leaving it alone")
    # The node first: its containers are children of neither, and its mounts
    # must be gone before the directory that holds them is removed.
    node_teardown.teardown(dir, report=say)
    for line in procs.stop_all(dir, last=STOP_LAST):
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

    ``down`` stops it (before the control plane's own processes). ``env`` is
    added to the current environment.
    """
    if not _PROCESS_NAME.match(name) or name in CORE_PROCESSES:
        raise ValueError(
            f"process name {name!r} must be a lower-case DNS label other than "
            + ", ".join(CORE_PROCESSES)
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
