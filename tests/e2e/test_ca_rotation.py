"""The CA as a resource, end to end: trust ConfigMaps, the three rotation triggers, a blocked
rotation, the emergency path, SIGKILL in every phase, and real TLS handshakes across a rotation.

The module runs its own issuer with its own CA Secret and PkiAuthority (short
timings in the authority's spec: trustPropagation 2s), so the rest of the
suite's CA is never rotated.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from prometheus_client.parser import text_string_to_metric_families

from issuer.controllers.authorities.effects.bootstrap_ca import ca_secret_body
from issuer.runtime import issuance
from issuer.runtime.settings import Settings
from pkiwarden.ca.render import rotation_patch
from pkiwarden.local import controlplane
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import issuer_argv
from shared import certificates as certificates_module
from shared.clock import utc_now
from shared.kube.client import CONFIG_MAPS, SECRETS, ApiError, Kube
from tests.e2e.helpers import eventually

T = TypeVar("T")
TIMEOUT = 60.0
SYSTEM_NS = "pkica-e2e-system"
CA_SECRET = "e2e-ca"
AUTHORITY = "e2e"
TRUST_CM = "pkiwarden-ca.crt"


# --------------------------------------------------------------------------- the issuer


@dataclass
class Issuer:
    plane: ControlPlane
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        settings = Settings(
            namespace=SYSTEM_NS,
            ca_secret=CA_SECRET,
            authority=AUTHORITY,
            health_port=0,
            workers=4,
            leader_elect=False,
        )
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

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The current run's /metrics, found through the port it logged."""
        lines = self.log_path.read_text().splitlines()
        ports = [line for line in lines if "health server listening on port" in line]
        if not ports:
            return {}  # just started: not listening yet
        number = json.loads(ports[-1])["message"].rsplit(" ", 1)[-1]
        with urllib.request.urlopen(f"http://127.0.0.1:{number}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def ca(plane: ControlPlane, *args: str) -> str:
    argv = controlplane.pkiwarden_argv("ca", *args, "--authority", AUTHORITY)
    result = subprocess.run(
        argv, env={**os.environ, **plane.env()}, capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.fixture(scope="module")
def issuer(
    control_plane: ControlPlane, kube: Kube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Issuer]:
    bootstrap = controlplane.pkiwarden_argv(
        "issuer",
        "bootstrap-ca",
        f"--namespace={SYSTEM_NS}",
        f"--ca-secret={CA_SECRET}",
        f"--authority={AUTHORITY}",
    )
    subprocess.run(bootstrap, env={**os.environ, **control_plane.env()}, check=True)
    patch_authority(
        control_plane,
        {"spec": {"rotation": {"trustPropagation": "2s", "reissueRate": 20}}},
    )
    running = Issuer(control_plane, tmp_path_factory.mktemp("ca") / "issuer.log")
    running.start()
    try:
        yield running
    finally:
        running.kill()


@pytest.fixture
def ns(
    control_plane: ControlPlane, issuer: Issuer, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A namespace with a policy allowing "web" and "api" there."""
    name = "ca-" + request.node.name.removeprefix("test_").replace("_", "-").lower()[:40]
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name).strip("-")
    control_plane.kubectl("create", "namespace", name)
    apply(control_plane, policy(name, namespaces=[name]))
    yield name
    control_plane.kubectl("delete", "pkis", "--all", "-n", name, "--wait=false", check=False)
    control_plane.kubectl("delete", "pkipolicy", name, "--ignore-not-found", "--wait=false")


# --------------------------------------------------------------------------- helpers


def apply(plane: ControlPlane, obj: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", input=json.dumps(obj))


def patch_authority(plane: ControlPlane, patch: dict[str, Any]) -> None:
    plane.kubectl("patch", "pkica", AUTHORITY, "--type=merge", "-p", json.dumps(patch))


def policy(name: str, **selection: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": name},
        "spec": {**selection, "allowedServiceNames": ["web", "api"]},
    }


def pki(namespace: str, name: str, service: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serviceName": service, "dnsNames": [f"{service}.{namespace}.svc"]},
    }


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    """The shared poll, at a quicker pace: rotation phases can pass in well under a second."""
    return eventually(probe, timeout, what, every=0.1)


def authority(kube: Kube) -> dict[str, Any]:
    return kube.get(f"/apis/pkiwarden.dev/v1alpha1/pkiauthorities/{AUTHORITY}")


def status(kube: Kube) -> dict[str, Any]:
    return dict(authority(kube).get("status") or {})


def wait_stable_after(kube: Kube, request: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        now = status(kube)
        done = now.get("phase") == "Stable" and now.get("lastRotationRequest") == request
        return now if done and len(now.get("trusted") or []) == 1 else None

    return wait_for(f"rotation {request} to complete", probe, timeout)


def rotate(plane: ControlPlane, kube: Kube, *flags: str) -> str:
    ca(plane, "rotate", *flags)
    request = authority(kube)["metadata"]["annotations"]["pkiwarden.dev/rotate"]
    return str(request)


def certificates(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:  # empty, or edited by hand
        return []


def fingerprints(pem: bytes) -> set[bytes]:
    return {c.fingerprint(hashes.SHA256()) for c in certificates(pem)}


def configmap_bundle(kube: Kube, namespace: str) -> bytes | None:
    try:
        found = kube.get(CONFIG_MAPS.path(namespace, TRUST_CM))
    except ApiError as error:
        if error.not_found:
            return None
        raise
    return str((found.get("data") or {}).get("ca.crt", "")).encode()


def secret_data(kube: Kube, namespace: str, name: str) -> dict[str, bytes]:
    try:
        found = kube.get(SECRETS.path(namespace, name))
    except ApiError as error:
        if error.not_found:
            return {}
        raise
    return {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}


def ca_certificate(kube: Kube) -> x509.Certificate:
    return certificates(secret_data(kube, SYSTEM_NS, CA_SECRET)["tls.crt"])[0]


def signer_key_id(leaf_pem: bytes) -> bytes | None:
    leaf = certificates(leaf_pem)[0]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    return aki.key_identifier


def key_id(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def wait_ready(plane: ControlPlane, namespace: str, *names: str) -> None:
    plane.kubectl(
        "wait",
        "--for=condition=Ready",
        f"--timeout={TIMEOUT:.0f}s",
        "-n",
        namespace,
        *(f"pki/{name}" for name in names),
    )


def authority_event_items(plane: ControlPlane, reason: str = "") -> list[dict[str, Any]]:
    """The PkiAuthority's Events (of one reason, if given)."""
    selector = f"involvedObject.kind=PkiAuthority,involvedObject.name={AUTHORITY}"
    if reason:
        selector += f",reason={reason}"
    result = plane.kubectl(
        "get", "events", "-n", "default", "--field-selector", selector, "-o", "json"
    )
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def authority_events(plane: ControlPlane) -> list[str]:
    return [str(e.get("reason")) for e in authority_event_items(plane)]


def assert_all_on(kube: Kube, namespace: str, names: list[str], active: x509.Certificate) -> None:
    """Every Secret is signed by ``active`` and, once the trust set has reached it (the pass
    after the rotation ends), its ca.crt trusts ``active`` alone."""
    for name in names:
        data = secret_data(kube, namespace, f"{name}-tls")
        assert signer_key_id(data["tls.crt"]) == key_id(active), name
    wanted = {active.fingerprint(hashes.SHA256())}
    for name in names:
        wait_for(
            f"{name}-tls ca.crt to hold only the active CA",
            lambda n=name: (
                fingerprints(secret_data(kube, namespace, f"{n}-tls")["ca.crt"]) == wanted
            ),
            timeout=10,
        )


# --------------------------------------------------------------------------- trust distribution


def test_trust_configmap_follows_the_policies(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    active = ca_certificate(kube)
    wanted = {active.fingerprint(hashes.SHA256())}

    def current_in(namespace: str) -> Callable[[], bool]:
        return lambda: fingerprints(configmap_bundle(kube, namespace) or b"") == wanted

    wait_for(f"trust ConfigMap in {ns}", current_in(ns))

    control_plane.kubectl("delete", "configmap", TRUST_CM, "-n", ns)
    wait_for(f"trust ConfigMap in {ns} repaired after deletion", current_in(ns))
    control_plane.kubectl(
        "create", "configmap", "-n", ns, "unrelated", "--from-literal=ca.crt=mine"
    )  # another ConfigMap is no business of ours
    patch = {"data": {"ca.crt": "tampered"}}
    control_plane.kubectl("patch", "configmap", TRUST_CM, "-n", ns, "-p", json.dumps(patch))
    wait_for(f"trust ConfigMap in {ns} repaired after an edit", current_in(ns))

    later = f"{ns}-later"
    control_plane.kubectl("create", "namespace", later)
    apply(control_plane, policy(later, namespaceSelector={"matchLabels": {"e2e-trust": later}}))
    control_plane.kubectl("label", "namespace", later, f"e2e-trust={later}")
    wait_for(f"trust ConfigMap in {later}, selected after it was created", current_in(later))

    control_plane.kubectl("delete", "pkipolicy", ns)
    wait_for(
        f"trust ConfigMap gone from deselected {ns}", lambda: configmap_bundle(kube, ns) is None
    )
    assert configmap_bundle(kube, later) is not None
    unrelated = kube.get(CONFIG_MAPS.path(ns, "unrelated"))
    assert unrelated["data"] == {"ca.crt": "mine"}
    control_plane.kubectl("delete", "pkipolicy", later)


# --------------------------------------------------------------------------- real TLS


class Endpoint:
    """A TLS server that reloads its certificate from a Secret, as a kubelet-mounted volume is."""

    def __init__(self, kube: Kube, namespace: str, secret: str, directory: Path) -> None:
        self.kube, self.namespace, self.secret, self.directory = kube, namespace, secret, directory
        self.context: ssl.SSLContext | None = None
        self.serial = ""
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.reload()
        self.threads = [
            threading.Thread(target=self._serve, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def reload(self) -> None:
        data = secret_data(self.kube, self.namespace, self.secret)
        if not data:
            return
        leaf = certificates(data["tls.crt"])[0]
        if format(leaf.serial_number, "x") == self.serial:
            return
        (self.directory / "tls.crt").write_bytes(data["tls.crt"])
        (self.directory / "tls.key").write_bytes(data["tls.key"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.directory / "tls.crt", self.directory / "tls.key")
        self.context, self.serial = context, format(leaf.serial_number, "x")

    def _poll(self) -> None:
        while not self.stopped.wait(0.2):
            self.reload()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            context = self.context
            assert context is not None
            try:
                connection.settimeout(5)
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                connection.close()

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(5)
        self.listener.close()


@dataclass
class Client:
    """Handshakes continuously, trusting only what the trust ConfigMap says right now."""

    kube: Kube
    namespace: str
    port: int
    hostname: str
    phase: Callable[[], str]
    results: Counter[tuple[str, bool]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    bundle: bytes = b""
    context: ssl.SSLContext | None = None

    def start(self) -> list[threading.Thread]:
        self.reload()
        threads = [
            threading.Thread(target=self._poll, daemon=True),
            threading.Thread(target=self._handshakes, daemon=True),
        ]
        for thread in threads:
            thread.start()
        return threads

    def reload(self) -> None:
        bundle = configmap_bundle(self.kube, self.namespace) or b""
        if bundle and bundle != self.bundle:
            context = ssl.create_default_context(cadata=bundle.decode())
            self.context, self.bundle = context, bundle

    def _poll(self) -> None:
        while not self.stopped.wait(0.2):
            self.reload()

    def _handshakes(self) -> None:
        """25 a second: each a fresh TCP connection and a full handshake, verified."""
        while not self.stopped.is_set():
            started = time.monotonic()
            phase, context = self.phase(), self.context
            assert context is not None
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw,
                    context.wrap_socket(raw, server_hostname=self.hostname) as tls,
                ):
                    ok = tls.recv(2) == b"ok"
            except (ssl.SSLError, OSError) as error:
                ok = False
                self.failures.append(f"{phase}: {error}")
            self.results[(phase, ok)] += 1
            time.sleep(max(0.0, 0.04 - (time.monotonic() - started)))


def test_rotation_on_request_with_no_failed_handshake(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    names = [f"web-{index}" for index in range(4)]
    for name in names:
        apply(control_plane, pki(ns, name))
    wait_ready(control_plane, ns, *names)
    old = ca_certificate(kube)
    wait_for("trust ConfigMap", lambda: configmap_bundle(kube, ns))
    # Two re-issues a second: Reissuing lasts long enough to be seen, and handshaken through.
    patch_authority(control_plane, {"spec": {"rotation": {"reissueRate": 2}}})
    phase = {"now": "Stable"}
    with tempfile.TemporaryDirectory() as directory:
        server = Endpoint(kube, ns, "web-0-tls", Path(directory))
        client = Client(kube, ns, server.port, f"web.{ns}.svc", lambda: phase["now"])
        threads = client.start()
        try:
            request = rotate(control_plane, kube)
            seen = ["Stable"]

            def done() -> bool:
                now = status(kube)
                phase["now"] = str(now.get("phase"))
                if seen[-1] != phase["now"]:
                    seen.append(phase["now"])
                return now.get("lastRotationRequest") == request and phase["now"] == "Stable"

            wait_for("the rotation to complete", done)
            new = ca_certificate(kube)
            old_print = old.fingerprint(hashes.SHA256())
            wait_for(
                "the client to drop the old CA",
                lambda: old_print not in fingerprints(client.bundle),
            )
            time.sleep(0.5)  # a few handshakes on the final trust set
        finally:
            patch_authority(control_plane, {"spec": {"rotation": {"reissueRate": 20}}})
            client.stopped.set()
            for thread in threads:
                thread.join(10)
            server.stop()
    assert seen == ["Stable", "Propagating", "Reissuing", "Retiring", "Stable"]
    assert client.failures == []
    by_phase = {p: n for (p, ok), n in client.results.items() if ok}
    assert set(by_phase) >= {"Propagating", "Reissuing", "Retiring", "Stable"}, by_phase
    total = sum(client.results.values())
    print(f"{total} handshakes, 0 failed, by phase: {by_phase}")
    assert new != old
    assert_all_on(kube, ns, names, new)
    assert fingerprints(configmap_bundle(kube, ns) or b"") == {new.fingerprint(hashes.SHA256())}
    events = authority_events(control_plane)
    for reason in ("RotationStarted", "NewCASigning", "PreviousCARetiring", "RotationComplete"):
        assert reason in events
    reissued = control_plane.kubectl(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.name=web-1", "-o", "json"
    )
    messages = [e["message"] for e in json.loads(reissued.stdout)["items"]]
    assert any("CA rotation" in m for m in messages), messages
    assert "Stable" in ca(control_plane, "status")


def test_metrics_show_the_ca_and_the_rotation(kube: Kube, issuer: Issuer) -> None:
    key = ("pkiwarden_ca_expiration_timestamp_seconds", (("authority", AUTHORITY),))

    def scraped() -> dict[Any, float] | None:
        samples = issuer.metrics()
        return samples if key in samples else None

    samples = wait_for("a pass of the authority controller", scraped)
    expiry = samples[key]
    assert expiry == ca_certificate(kube).not_valid_after_utc.timestamp()
    stable = (("authority", AUTHORITY), ("phase", "Stable"))
    assert samples[("pkiwarden_ca_rotation_phase", stable)] == 1.0
    assert samples[("pkiwarden_ca_pending_reissue", (("authority", AUTHORITY),))] == 0.0


# --------------------------------------------------------------------------- triggers


def _supplied_ca_secret(name: str) -> dict[str, Any]:
    certificate, key = issuance.self_signed_ca(
        "platform-supplied CA", utc_now(), timedelta(days=365)
    )
    return ca_secret_body(SYSTEM_NS, name, certificate, key)


def test_rotation_to_a_supplied_next_ca(control_plane: ControlPlane, kube: Kube, ns: str) -> None:
    apply(control_plane, pki(ns, "web"))
    wait_ready(control_plane, ns, "web")
    body = _supplied_ca_secret("e2e-ca-next")
    kube.create(SECRETS.path(SYSTEM_NS), body)
    supplied = certificates(base64.b64decode(body["data"]["tls.crt"]))[0]
    patch_authority(control_plane, {"spec": {"nextSecretName": "e2e-ca-next"}})
    try:
        wait_for(
            "the supplied CA to become active and alone trusted",
            lambda: (
                ca_certificate(kube) == supplied
                and status(kube).get("phase") == "Stable"
                and len(status(kube).get("trusted") or []) == 1
            ),
        )
    finally:
        patch_authority(control_plane, {"spec": {"nextSecretName": None}})
    wait_for(
        "web re-issued",
        lambda: signer_key_id(secret_data(kube, ns, "web-tls")["tls.crt"]) == key_id(supplied),
    )
    assert_all_on(kube, ns, ["web"], supplied)


def test_self_managed_ca_rotates_at_its_renewal_time(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    """A CA past two thirds of its life (renewBefore capped at a third) rotates by itself."""
    apply(control_plane, pki(ns, "web"))
    wait_ready(control_plane, ns, "web")
    patch_authority(control_plane, {"spec": {"generate": {"commonName": "e2e CA"}}})
    key = issuance.generate_key(issuance.KeySpec(issuance.KeyAlgorithm.ECDSA, 256))
    ageing = certificates_module.self_signed_ca(
        certificates_module.common_name("e2e ageing CA"),
        key,
        utc_now() - timedelta(minutes=50),
        timedelta(hours=1),
    )
    pem = base64.b64encode(issuance.certificate_to_pem(ageing)).decode()
    data = {"tls.crt": pem, "tls.key": base64.b64encode(issuance.key_to_pem(key)).decode()}
    kube.patch(SECRETS.path(SYSTEM_NS, CA_SECRET), {"data": {**data, "ca.crt": pem}}, "merge")
    wait_for("a new active CA", lambda: ca_certificate(kube) not in (ageing,) and _generated(kube))
    wait_for(
        "the rotation to finish",
        lambda: (
            status(kube).get("phase") == "Stable" and len(status(kube).get("trusted") or []) == 1
        ),
    )
    after = ca_certificate(kube)
    assert after.subject.rfc4514_string().startswith("CN=e2e CA 2")
    assert after.not_valid_after_utc - utc_now() > timedelta(days=3000)
    assert_all_on(kube, ns, ["web"], after)


def _generated(kube: Kube) -> bool:
    return ca_certificate(kube).subject.rfc4514_string().startswith("CN=e2e CA 2")


# --------------------------------------------------------------------------- blocked and emergency


def issued_then_stuck(plane: ControlPlane, ns: str) -> None:
    """Pkis web and stuck issued, then the policy narrowed so that stuck cannot be renewed."""
    apply(plane, pki(ns, "web"))
    apply(plane, pki(ns, "stuck", service="api"))
    wait_ready(plane, ns, "web", "stuck")
    narrowed = policy(ns, namespaces=[ns])
    narrowed["spec"]["allowedServiceNames"] = ["web"]
    apply(plane, narrowed)


def test_a_pki_that_cannot_be_reissued_keeps_the_previous_ca_trusted(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    issued_then_stuck(control_plane, ns)
    request = rotate(control_plane, kube)

    def blocked() -> dict[str, Any] | None:
        now = status(kube)
        return (
            now
            if f"{ns}/stuck" in (now.get("blockedPkis") or []) and now.get("pendingPkis") == 1
            else None
        )

    held = wait_for("the rotation to wait on the blocked Pki", blocked)
    assert held["phase"] == "Reissuing"
    assert {t["role"] for t in held["trusted"]} == {"Active", "Previous"}
    assert len(fingerprints(configmap_bundle(kube, ns) or b"")) == 2
    apply(control_plane, policy(ns, namespaces=[ns]))
    wait_stable_after(kube, request)
    assert_all_on(kube, ns, ["web", "stuck"], ca_certificate(kube))


def test_a_blocked_pkis_secret_trusts_the_next_ca_before_it_signs(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    """An app verifying peers with its own Secret's ca.crt keeps its handshakes: the next CA
    reaches the ca.crt of a Pki that cannot be re-issued before that CA signs anyone's leaf."""
    issued_then_stuck(control_plane, ns)
    wait_for(
        "the issuer to find stuck refused",
        lambda: (
            (kube.get(f"/apis/pkiwarden.dev/v1alpha1/namespaces/{ns}/pkis/stuck").get("status"))
            or {}
        ).get("failedIssuanceAttempts"),
    )
    old = key_id(ca_certificate(kube))
    request = rotate(control_plane, kube)
    web_leaf = wait_for(
        "web to be re-issued by the next CA",
        lambda: (
            leaf
            if signer_key_id(leaf := secret_data(kube, ns, "web-tls")["tls.crt"]) != old
            else None
        ),
    )
    signer = certificates(web_leaf)[0]
    stuck_trust = certificates(secret_data(kube, ns, "stuck-tls")["ca.crt"])
    assert any(key_id(ca) == signer_key_id(web_leaf) for ca in stuck_trust), (
        "stuck-tls's ca.crt does not hold the CA that now signs"
    )
    verified = []
    for ca in stuck_trust:
        try:
            signer.verify_directly_issued_by(ca)
            verified.append(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
    assert verified, "web's new leaf does not verify against stuck-tls's ca.crt"
    apply(control_plane, policy(ns, namespaces=[ns]))
    wait_stable_after(kube, request)


def test_emergency_rotation_drops_the_old_ca_at_once(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    apply(control_plane, pki(ns, "web"))
    wait_ready(control_plane, ns, "web")
    old = ca_certificate(kube).fingerprint(hashes.SHA256())
    request = rotate(control_plane, kube, "--now")
    wait_for(
        "the old CA out of the trust ConfigMap",
        lambda: (bundle := configmap_bundle(kube, ns)) and old not in fingerprints(bundle),
    )
    wait_stable_after(kube, request)
    assert_all_on(kube, ns, ["web"], ca_certificate(kube))
    assert "EmergencyRotation" in authority_events(control_plane)


def _event_count(plane: ControlPlane, reason: str) -> int:
    return sum(int(e.get("count") or 1) for e in authority_event_items(plane, reason))


def _ca_unavailable(kube: Kube) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("reason") == "CAUnavailable"
        for c in status(kube).get("conditions") or []
    )


def test_an_emergency_for_a_missing_ca_is_refused_and_never_fires_on_the_restored_one(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    # A CA deleted before its authority ever reported it would be a first CA, made anew.
    wait_for("the CA to be established", lambda: bool(status(kube).get("caEstablishedTime")))
    stored = kube.get(SECRETS.path(SYSTEM_NS, CA_SECRET))
    metadata = stored["metadata"]
    backup = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "labels", "annotations")
            if key in metadata
        },
        "type": stored.get("type"),
        "data": stored["data"],
    }
    restored = ca_certificate(kube).fingerprint(hashes.SHA256())
    emergencies = _event_count(control_plane, "EmergencyRotation")
    ignored = _event_count(control_plane, "RotationRequestIgnored")
    kube.delete(SECRETS.path(SYSTEM_NS, CA_SECRET))
    try:
        wait_for("the PkiAuthority to report its CA missing", lambda: _ca_unavailable(kube))
        asked = authority(kube)["metadata"].get("annotations") or {}
        refused = subprocess.run(
            controlplane.pkiwarden_argv("ca", "rotate", "--now", "--authority", AUTHORITY),
            env={**os.environ, **control_plane.env()},
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode != 0, refused.stdout
        assert "nothing was requested" in refused.stderr
        assert CA_SECRET in refused.stderr
        assert (authority(kube)["metadata"].get("annotations") or {}) == asked, "nothing asked"
        # A request that got in anyway (asked before the issuer noticed the CA gone):
        late = rotation_patch(utc_now(), emergency=True)
        kube.patch(f"/apis/pkiwarden.dev/v1alpha1/pkiauthorities/{AUTHORITY}", late, "merge")
        request = late["metadata"]["annotations"]["pkiwarden.dev/rotate"]
        time.sleep(1.5)  # the restored CA Secret is created in a later second
    finally:
        kube.create(SECRETS.path(SYSTEM_NS), backup)
    wait_for(
        "the stale request to be acknowledged",
        lambda: status(kube).get("lastRotationRequest") == request,
    )
    now = status(kube)
    assert now["phase"] == "Stable"
    assert len(now["trusted"]) == 1
    assert ca_certificate(kube).fingerprint(hashes.SHA256()) == restored
    assert _event_count(control_plane, "EmergencyRotation") == emergencies
    wait_for(
        "the RotationRequestIgnored Warning",
        lambda: _event_count(control_plane, "RotationRequestIgnored") > ignored,
    )


# --------------------------------------------------------------------------- crash and resume


def _in_phase(kube: Kube, phase: str) -> Callable[[], bool]:
    return lambda: status(kube).get("phase") == phase


def test_sigkill_in_every_phase_resumes_and_reissues_each_pki_once(
    control_plane: ControlPlane, kube: Kube, ns: str, issuer: Issuer
) -> None:
    names = [f"web-{index}" for index in range(12)]
    for name in names:
        apply(control_plane, pki(ns, name))
    wait_ready(control_plane, ns, *names)
    serials: dict[str, set[str]] = defaultdict(set)
    stop = threading.Event()

    def record() -> None:
        while not stop.wait(0.1):
            for item in kube.get(SECRETS.path(ns))["items"]:
                crt = (item.get("data") or {}).get("tls.crt")
                if crt:
                    leaf = certificates(base64.b64decode(crt))[0]
                    serials[item["metadata"]["name"]].add(format(leaf.serial_number, "x"))

    watcher = threading.Thread(target=record, daemon=True)
    watcher.start()
    patch_authority(
        control_plane, {"spec": {"rotation": {"trustPropagation": "4s", "reissueRate": 3}}}
    )
    try:
        request = rotate(control_plane, kube)
        for phase in ("Propagating", "Reissuing", "Retiring"):
            wait_for(f"phase {phase}", _in_phase(kube, phase))
            issuer.kill()
            issuer.start()
        wait_stable_after(kube, request, timeout=90)
        time.sleep(0.5)
    finally:
        stop.set()
        watcher.join(5)
        patch_authority(
            control_plane, {"spec": {"rotation": {"trustPropagation": "2s", "reissueRate": 20}}}
        )
    counts = {name: len(serials[f"{name}-tls"]) for name in names}
    assert counts == dict.fromkeys(names, 2)  # the first certificate and exactly one re-issue
    assert_all_on(kube, ns, names, ca_certificate(kube))
