"""The issuer, end to end: a real API server, the issuer as its own process, real TLS.

Each test uses its own namespace and a PkiPolicy that selects only it, so the
tests neither see nor disturb each other's objects.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509

from issuer.local import issuer_argv, prepare
from issuer.settings import Settings
from pkiwarden.controlplane import ControlPlane

T = TypeVar("T")
TIMEOUT = 30.0
ISSUER_NS = "pkiwarden-system"
CA_SECRET = "pkiwarden-ca"


# --------------------------------------------------------------------------- the issuer process


@dataclass
class Issuer:
    plane: ControlPlane
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: list[int] = field(default_factory=list)  # log offsets where each run began

    def start(self) -> None:
        self.starts.append(self.log_path.stat().st_size if self.log_path.exists() else 0)
        settings = Settings(health_port=0, workers=2, leader_elect=False)
        argv = issuer_argv(settings)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=log,
                env={**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)},
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def lines(self, since_last_start: bool = True) -> list[dict[str, Any]]:
        with self.log_path.open("rb") as log:
            log.seek(self.starts[-1] if since_last_start else 0)
            text = log.read().decode("utf-8", "replace")
        found = []
        for line in text.splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def assert_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(
                f"issuer exited {self.process.returncode}:\n{self.log_path.read_text()[-4000:]}"
            )


@pytest.fixture(scope="module")
def issuer(
    control_plane: ControlPlane, crds: set[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Issuer]:
    prepare(control_plane, Settings())
    running = Issuer(control_plane, tmp_path_factory.mktemp("issuer") / "issuer.log")
    running.start()
    try:
        yield running
    finally:
        running.kill()


@pytest.fixture
def ns(
    control_plane: ControlPlane, issuer: Issuer, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace with a policy allowing service "web" (and "api") in it."""
    name = "iss-" + request.node.name.removeprefix("test_").replace("_", "-").lower()
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)[:50].strip("-")
    control_plane.kubectl("create", "namespace", name)
    apply(control_plane, policy(name, ["web", "api"]))
    yield name
    control_plane.kubectl("delete", "pkipolicy", name, "--ignore-not-found", "--wait=false")


# --------------------------------------------------------------------------- helpers


def apply(plane: ControlPlane, obj: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", input=json.dumps(obj))


def policy(namespace: str, services: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": namespace},
        "spec": {
            "namespaces": [namespace],
            "allowedServiceNames": services,
            "allowedDNSNames": ["{serviceName}.{namespace}.svc", "*.{namespace}.example.test"],
            "allowedKeyAlgorithms": ["ECDSA", "RSA", "Ed25519"],
        },
    }


def pki(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serviceName": "web", "dnsNames": [f"web.{namespace}.svc"], **spec},
    }


def get(plane: ControlPlane, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    result = plane.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def condition(obj: dict[str, Any] | None, kind: str = "Ready") -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def wait_reason(
    plane: ControlPlane, namespace: str, name: str, status: str, reason: str
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(plane, "pki", namespace, name)
        ready = condition(obj)
        return obj if (ready.get("status"), ready.get("reason")) == (status, reason) else None

    return wait_for(f"pki {namespace}/{name} Ready={status} {reason}", probe)


def wait_ready(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    plane.kubectl(
        "wait", "--for=condition=Ready", f"--timeout={TIMEOUT:.0f}s", "-n", namespace, f"pki/{name}"
    )
    obj = get(plane, "pki", namespace, name)
    assert obj is not None
    return obj


def secret_data(plane: ControlPlane, namespace: str, name: str) -> dict[str, bytes]:
    secret = get(plane, "secret", namespace, name)
    assert secret is not None, f"Secret {namespace}/{name} missing"
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def leaf(data: dict[str, bytes]) -> x509.Certificate:
    return x509.load_pem_x509_certificates(data["tls.crt"])[0]


def serial(plane: ControlPlane, namespace: str, name: str) -> str | None:
    secret = get(plane, "secret", namespace, name)
    if secret is None:
        return None
    return f"{leaf({k: base64.b64decode(v) for k, v in secret['data'].items()}).serial_number:X}"


def dns_names(certificate: x509.Certificate) -> list[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(san.get_values_for_type(x509.DNSName))


def write_files(directory: Path, data: dict[str, bytes]) -> dict[str, Path]:
    paths = {}
    for key, value in data.items():
        path = directory / key
        path.write_bytes(value)
        paths[key] = path
    return paths


def handshake(files: dict[str, Path], hostname: str) -> None:
    """A TLS server with the Secret's chain and key; a client trusting only ca.crt."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(str(files["tls.crt"]), str(files["tls.key"]))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(files["ca.crt"]))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_context.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            assert tls.recv(5) == b"hello"
    finally:
        thread.join(5)
        listener.close()


# --------------------------------------------------------------------------- issuance


@pytest.mark.parametrize(
    "key",
    [
        {"algorithm": "ECDSA", "size": 384},
        {"algorithm": "RSA", "size": 2048},
        {"algorithm": "Ed25519"},
    ],
    ids=["ECDSA", "RSA", "Ed25519"],
)
def test_pki_becomes_a_verifiable_tls_secret(
    control_plane: ControlPlane, ns: str, key: dict[str, Any], tmp_path: Path
) -> None:
    apply(control_plane, pki(ns, "web", privateKey=key, ipAddresses=[]))
    obj = wait_ready(control_plane, ns, "web")
    data = secret_data(control_plane, ns, "web-tls")
    assert set(data) == {"tls.crt", "tls.key", "ca.crt"}
    files = write_files(tmp_path, data)
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(files["ca.crt"]), str(files["tls.crt"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    handshake(files, f"web.{ns}.svc")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(files, f"other.{ns}.svc")

    status = obj["status"]
    certificate = leaf(data)
    assert status["serialNumber"] == f"{certificate.serial_number:X}"
    assert status["secretName"] == "web-tls"
    assert status["notAfter"] == f"{certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    for key_name in ("notBefore", "renewalTime", "observedGeneration", "failedIssuanceAttempts"):
        assert key_name in status, key_name
    ready = condition(obj)
    assert (
        ready["reason"] == "Issued" and ready["observedGeneration"] == obj["metadata"]["generation"]
    )
    assert condition(obj, "Issuing")["status"] == "False"

    secret = get(control_plane, "secret", ns, "web-tls")
    assert secret is not None
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["labels"]["pkiwarden.dev/pki"] == "web"
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "Pki",
        obj["metadata"]["uid"],
        True,
    )

    table = control_plane.kubectl("get", "pki", "web", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "SECRET", "SERVICE", "EXPIRES", "AGE"]
    assert table[1].split()[:4] == ["web", "True", "web-tls", "web"]


# --------------------------------------------------------------------------- re-issue


def test_reissued_when_secret_deleted_spec_changed_or_tampered(
    control_plane: ControlPlane, ns: str
) -> None:
    apply(control_plane, pki(ns, "web"))
    wait_ready(control_plane, ns, "web")
    first = serial(control_plane, ns, "web-tls")

    control_plane.kubectl("delete", "secret", "web-tls", "-n", ns)
    second = wait_for(
        "a new Secret", lambda: (s := serial(control_plane, ns, "web-tls")) != first and s
    )
    assert second != first

    apply(control_plane, pki(ns, "web", dnsNames=[f"web.{ns}.svc", f"a.{ns}.example.test"]))
    wait_for(
        "re-issue with the new SANs",
        lambda: (
            dns_names(leaf(secret_data(control_plane, ns, "web-tls")))
            == [f"web.{ns}.svc", f"a.{ns}.example.test"]
        ),
    )
    obj = wait_for(
        "status for generation 2",
        lambda: (
            (o := get(control_plane, "pki", ns, "web"))
            and condition(o).get("observedGeneration") == 2
            and o
        ),
    )
    third = obj["status"]["serialNumber"]

    stranger = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    control_plane.kubectl(
        "patch", "secret", "web-tls", "-n", ns, "--type=merge", "-p",
        json.dumps({"data": {"tls.crt": stranger.decode()}}),
    )  # fmt: skip
    fourth = wait_for(
        "re-issue after tampering",
        lambda: (s := serial_or_none(control_plane, ns, "web-tls")) not in (None, third) and s,
    )
    assert fourth != third
    wait_ready(control_plane, ns, "web")


def serial_or_none(plane: ControlPlane, namespace: str, name: str) -> str | None:
    """The Secret's serial; None while it is missing or holds no readable certificate."""
    try:
        return serial(plane, namespace, name)
    except ValueError:
        return None


def test_restart_reissues_nothing(control_plane: ControlPlane, ns: str, issuer: Issuer) -> None:
    names = [f"web{n}" for n in range(5)]
    for name in names:
        apply(control_plane, pki(ns, name))
    for name in names:
        wait_ready(control_plane, ns, name)
    before = {name: serial(control_plane, ns, f"{name}-tls") for name in names}

    issuer.kill()
    issuer.start()

    def settled() -> bool:
        issuer.assert_alive()
        seen = {
            line.get("pki")
            for line in issuer.lines()
            if line.get("message") == "reconciled" and line.get("namespace") == ns
        }
        return seen >= set(names)

    wait_for("the restarted issuer to reconcile every Pki", settled)
    issued = [
        line
        for line in issuer.lines()
        if line.get("message") == "reconciled" and line.get("action") == "Issue"
    ]
    assert issued == []
    assert {name: serial(control_plane, ns, f"{name}-tls") for name in names} == before


# --------------------------------------------------------------------------- failures


def test_policy_tightened_then_fixed(control_plane: ControlPlane, ns: str) -> None:
    apply(control_plane, pki(ns, "web"))
    wait_ready(control_plane, ns, "web")
    issued = serial(control_plane, ns, "web-tls")

    apply(control_plane, policy(ns, ["api"]))
    obj = wait_reason(control_plane, ns, "web", "False", "NotAllowed")
    message = condition(obj)["message"]
    assert message.startswith(
        f'spec.serviceName: "web" in Pki web is not allowed in namespace "{ns}"'
    )
    assert f'PkiPolicy "{ns}"' in message and "api" in message
    assert obj["status"]["failedIssuanceAttempts"] >= 1
    assert "nextRetryTime" in obj["status"] and "lastFailureTime" in obj["status"]
    control_plane.kubectl("delete", "secret", "web-tls", "-n", ns)
    time.sleep(1.0)
    assert get(control_plane, "secret", ns, "web-tls") is None  # not issued again

    apply(control_plane, policy(ns, ["web"]))
    obj = wait_ready(control_plane, ns, "web")
    assert obj["status"]["serialNumber"] != issued
    assert obj["status"]["failedIssuanceAttempts"] == 0


def test_unmanaged_secret_is_never_touched(control_plane: ControlPlane, ns: str) -> None:
    control_plane.kubectl(
        "create", "secret", "generic", "taken", "-n", ns, "--from-literal=password=hunter2"
    )
    before = get(control_plane, "secret", ns, "taken")
    apply(control_plane, pki(ns, "web", secretName="taken"))
    obj = wait_reason(control_plane, ns, "web", "False", "SecretConflict")
    assert 'spec.secretName: "taken" in Pki ' in condition(obj)["message"]
    assert ' is taken: Secret "taken" was not created by pkiwarden' in condition(obj)["message"]
    time.sleep(2.5)  # at least one retry
    after = get(control_plane, "secret", ns, "taken")
    assert before is not None and after is not None
    assert after["data"] == before["data"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_ca_missing_then_restored(control_plane: ControlPlane, ns: str) -> None:
    ca = get(control_plane, "secret", ISSUER_NS, CA_SECRET)
    assert ca is not None
    saved = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": ca["type"],
        "metadata": {
            "name": CA_SECRET,
            "namespace": ISSUER_NS,
            "labels": ca["metadata"].get("labels", {}),
        },
        "data": ca["data"],
    }
    control_plane.kubectl("delete", "secret", CA_SECRET, "-n", ISSUER_NS)
    try:
        apply(control_plane, pki(ns, "web"))
        obj = wait_reason(control_plane, ns, "web", "False", "CAUnavailable")
        message = condition(obj)["message"]
        assert f'CA Secret "{ISSUER_NS}/{CA_SECRET}" does not exist' in message
        assert condition(obj, "Issuing")["status"] == "True"
    finally:
        if get(control_plane, "secret", ISSUER_NS, CA_SECRET) is None:
            apply(control_plane, saved)
    wait_ready(control_plane, ns, "web")
    assert secret_data(control_plane, ns, "web-tls")["ca.crt"] == base64.b64decode(
        ca["data"]["ca.crt"]
    )
