"""A Deployment's Pod run with podman, the way a kubelet would run it.

There is no kubelet here, so the end-to-end tests of the image translate the
pod template of a manifest in ``deploy/`` into ``podman run`` flags: its
container's image and arguments, its security context (user, read-only root
filesystem, capabilities, privilege escalation), its memory limit, its
emptyDir volumes and environment, and the ServiceAccount token, cluster CA
and namespace mounted where client libraries look for them. A field this
translation does not know fails loudly instead of being dropped, so a
manifest change cannot make the tests run something the Deployment would not.

:class:`ServiceProxy` stands in for kube-proxy: it carries a Service's
ClusterIP and port to the port the container listens on.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# crun refuses this kind of machine's hybrid cgroup layout, and raising a
# limit above the current one is not permitted: runc, cgroupfs, modest ulimits.
PODMAN = ("podman", "--runtime", "runc", "--cgroup-manager=cgroupfs")
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Every container the tests start carries it, so leftovers can be found.
LABEL = "dev.pkiwarden.e2e=image"
_MEMORY_UNITS = {"Mi": "m", "Gi": "g"}


class UnsupportedPodSpecError(ValueError):
    """The manifest asks for something this translation cannot reproduce."""


@dataclass(frozen=True)
class ApiServer:
    """Where an in-cluster client finds the API server: KUBERNETES_SERVICE_HOST and _PORT."""

    host: str
    port: int


def documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a manifest file."""
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def find(docs: Sequence[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one document of ``kind`` named ``name``."""
    for document in docs:
        if document.get("kind") == kind and document["metadata"]["name"] == name:
            return dict(document)
    raise LookupError(f"no {kind} {name} in the manifests")


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment or Job."""
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def only_container(spec: Mapping[str, Any]) -> dict[str, Any]:
    containers = spec.get("containers") or []
    if len(containers) != 1 or spec.get("initContainers"):
        raise UnsupportedPodSpecError("only pods with exactly one container are translated")
    container: dict[str, Any] = containers[0]
    return container


def container_port(container: Mapping[str, Any], port: int | str) -> int:
    """A port number, or the number of a named container port (``port: https`` in a probe)."""
    if isinstance(port, int):
        return port
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise LookupError(f"container {container.get('name')} declares no port named {port!r}")


def run_args(
    spec: Mapping[str, Any],
    *,
    name: str,
    api_server: ApiServer,
    service_account_dir: Path,
    field_values: Mapping[str, str],
) -> list[str]:
    """``podman run`` flags, image and arguments for the pod spec's one container.

    ``field_values`` answers ``valueFrom.fieldRef`` (``metadata.name``, ...).
    The container shares the host's network, as a Pod reaches the API server.
    """
    container = only_container(spec)
    security = {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
    args = ["--name", name, "--label", LABEL, "--network", "host", *ULIMITS]
    args += _security_flags(security)
    args += _memory_flags(container.get("resources") or {})
    args += _volume_flags(spec, container)
    args += _env_flags(container, field_values)
    if spec.get("automountServiceAccountToken", True):
        args += [
            "--volume",
            f"{service_account_dir}:{SERVICE_ACCOUNT_DIR}:ro",
            "--env",
            f"KUBERNETES_SERVICE_HOST={api_server.host}",
            "--env",
            f"KUBERNETES_SERVICE_PORT={api_server.port}",
        ]
    if container.get("command"):
        raise UnsupportedPodSpecError(
            "a command replacing the image's entry point is not translated"
        )
    return [*args, container["image"], *(str(arg) for arg in container.get("args") or [])]


def _security_flags(security: Mapping[str, Any]) -> list[str]:
    user = security.get("runAsUser")
    if security.get("runAsNonRoot") and (user is None or int(user) == 0):
        raise UnsupportedPodSpecError("runAsNonRoot needs a numeric runAsUser other than 0 here")
    flags: list[str] = []
    if user is not None:
        group = security.get("runAsGroup", user)
        flags += ["--user", f"{user}:{group}"]
    if security.get("readOnlyRootFilesystem"):
        # A Pod gets no writable /tmp or /run either; podman would add them.
        flags += ["--read-only", "--read-only-tmpfs=false"]
    capabilities = security.get("capabilities") or {}
    flags += [f"--cap-drop={cap}" for cap in capabilities.get("drop") or []]
    flags += [f"--cap-add={cap}" for cap in capabilities.get("add") or []]
    if security.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt=no-new-privileges"]
    seccomp = (security.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp != "RuntimeDefault":  # podman's default profile is the runtime default
        raise UnsupportedPodSpecError(f"seccompProfile {seccomp} is not translated")
    if security.get("privileged"):
        raise UnsupportedPodSpecError("privileged containers are not translated")
    return flags


def _memory_flags(resources: Mapping[str, Any]) -> list[str]:
    limit = (resources.get("limits") or {}).get("memory")
    if limit is None:
        return []
    for suffix, unit in _MEMORY_UNITS.items():
        if str(limit).endswith(suffix):
            return ["--memory", f"{str(limit).removesuffix(suffix)}{unit}"]
    raise UnsupportedPodSpecError(f"memory limit {limit!r} is not in Mi or Gi")


def _volume_flags(spec: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    volumes = {volume["name"]: volume for volume in spec.get("volumes") or []}
    flags: list[str] = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        if set(volume) != {"name", "emptyDir"}:
            raise UnsupportedPodSpecError(f"volume {mount['name']}: only emptyDir is translated")
        size = (volume["emptyDir"] or {}).get("sizeLimit")
        options = ["rw", "nosuid", "nodev", "mode=0777"]  # a kubelet's emptyDir is 0777
        if size is not None:
            options.append("size=" + _memory_flags({"limits": {"memory": size}})[1])
        flags += ["--tmpfs", f"{mount['mountPath']}:{','.join(options)}"]
    return flags


def _env_flags(container: Mapping[str, Any], field_values: Mapping[str, str]) -> list[str]:
    flags: list[str] = []
    for variable in container.get("env") or []:
        if "value" in variable:
            value = str(variable["value"])
        else:
            field = ((variable.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
            if field not in field_values:
                raise UnsupportedPodSpecError(
                    f"env {variable['name']}: only fieldRef of {field_values}"
                )
            value = field_values[field]
        flags += ["--env", f"{variable['name']}={value}"]
    return flags


def write_service_account(directory: Path, token: str, ca_pem: bytes, namespace: str) -> Path:
    """The three files a Pod finds in its service-account directory, readable by any user."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    for name, data in (("token", token.encode()), ("ca.crt", ca_pem), ("namespace", namespace)):
        path = directory / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        path.chmod(0o644)
    return directory


def podman(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run podman with this machine's runtime flags; the caller checks the result."""
    return subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def labelled_containers() -> list[str]:
    """Names of the containers (running or not) that carry :data:`LABEL`."""
    listed = podman("ps", "--all", "--filter", f"label={LABEL}", "--format", "{{.Names}}")
    if listed.returncode != 0:
        raise RuntimeError(f"podman ps failed: {listed.stderr}")
    return listed.stdout.split()


def remove_labelled() -> None:
    """Remove every container that carries :data:`LABEL`, running or not."""
    names = labelled_containers()
    if names:
        podman("rm", "--force", "--time", "5", *names)


class ServiceProxy:
    """Accepts on a Service's ClusterIP and port and relays to the container's port.

    This is kube-proxy's job on a cluster (an iptables rule); here a thread per
    connection copies bytes both ways, TLS included, untouched.
    """

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(listen)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="service-proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()  # as a Service with no ready endpoint: the connection fails
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((client, upstream))
        back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
        back.start()
        _copy(client, upstream)
        back.join()
        with self._lock:
            self._open.difference_update((client, upstream))
        client.close()
        upstream.close()

    def close(self) -> None:
        """Stop accepting and cut the connections still open."""
        self._server.close()
        self._thread.join(timeout=5)
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _copy(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then pass the end on (a half-close, as TCP has)."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
