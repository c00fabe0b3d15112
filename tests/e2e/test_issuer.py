"""The issuer, end to end: a real API server, the issuer as its own process, real TLS.

Each test uses its own namespace and a PkiPolicy that selects only it, so the
tests neither see nor disturb each other's objects.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from issuer.runtime.settings import Settings
from pkiwarden.local import issuer_process
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from shared.certificates import serial_hex
from shared.clock import parse_rfc3339, utc_now
from tests.e2e.helpers import (
    TIMEOUT,
    apply,
    assert_running,
    condition,
    eventually,
    get,
    json_log,
    kill_9,
    leaf,
    log_size,
    running_issuer,
    secret_data,
    serial,
    wait_ready,
    wait_reason,
)
from tests.e2e.helpers import web_pki as pki
from tests.e2e.helpers import web_policy as policy

ISSUER_NS = "pkiwarden-system"
CA_SECRET = "pkiwarden-ca"


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, crds: set[str]) -> Iterator[LocalIssuer]:
    settings = Settings(health_port=0, workers=2, leader_elect=False)
    with running_issuer(control_plane, settings, "issuer-main") as running:
        yield running


@pytest.fixture
def ns(
    control_plane: ControlPlane, issuer: LocalIssuer, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace with a policy allowing service "web" (and "api") in it."""
    name = "iss-" + request.node.name.removeprefix("test_").replace("_", "-").lower()
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)[:50].strip("-")
    control_plane.kubectl("create", "namespace", name)
    apply(control_plane, policy(name, ["web", "api"]))
    yield name
    control_plane.kubectl("delete", "pkipolicy", name, "--ignore-not-found", "--wait=false")
    # Its Pkis would otherwise outlive the module, and a later module's issuer
    # (one authority serves every namespace) would count them as its own.
    control_plane.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")


# --------------------------------------------------------------------------- helpers


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
    assert status["serialNumber"] == serial_hex(certificate.serial_number)  # as openssl prints it
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
    # Found by its labels, owned by no object: an uninstall and reinstall keeps it.
    assert "ownerReferences" not in secret["metadata"]

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
    second = eventually(
        lambda: (s := serial(control_plane, ns, "web-tls")) != first and s, TIMEOUT, "a new Secret"
    )
    assert second != first

    apply(control_plane, pki(ns, "web", dnsNames=[f"web.{ns}.svc", f"a.{ns}.example.test"]))
    eventually(
        lambda: (
            dns_names(leaf(secret_data(control_plane, ns, "web-tls")))
            == [f"web.{ns}.svc", f"a.{ns}.example.test"]
        ),
        TIMEOUT,
        "re-issue with the new SANs",
    )
    obj = eventually(
        lambda: (
            (o := get(control_plane, "pki", ns, "web"))
            and condition(o).get("observedGeneration") == 2
            and o
        ),
        TIMEOUT,
        "status for generation 2",
    )
    third = obj["status"]["serialNumber"]

    stranger = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    control_plane.kubectl(
        "patch", "secret", "web-tls", "-n", ns, "--type=merge", "-p",
        json.dumps({"data": {"tls.crt": stranger.decode()}}),
    )  # fmt: skip
    fourth = eventually(
        lambda: (s := serial_or_none(control_plane, ns, "web-tls")) not in (None, third) and s,
        TIMEOUT,
        "re-issue after tampering",
    )
    assert fourth != third
    wait_ready(control_plane, ns, "web")


def test_rotation_policy_never_keeps_the_key_across_a_re_issue(
    control_plane: ControlPlane, ns: str
) -> None:
    """The issuer caches no private key (only its Secrets' facts): keeping one reads it."""
    never = {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Never"}
    apply(control_plane, pki(ns, "web", privateKey=never))
    wait_ready(control_plane, ns, "web")
    first = serial(control_plane, ns, "web-tls")
    key = secret_data(control_plane, ns, "web-tls")["tls.key"]

    apply(control_plane, pki(ns, "web", privateKey=never, duration="1000h"))  # SpecChanged
    second = eventually(
        lambda: (s := serial(control_plane, ns, "web-tls")) != first and s, TIMEOUT, "a re-issue"
    )
    assert second != first
    assert secret_data(control_plane, ns, "web-tls")["tls.key"] == key


def serial_or_none(plane: ControlPlane, namespace: str, name: str) -> str | None:
    """The Secret's serial; None while it is missing or holds no readable certificate."""
    try:
        return serial(plane, namespace, name)
    except ValueError:
        return None


def test_restart_reissues_nothing(
    control_plane: ControlPlane, ns: str, issuer: LocalIssuer
) -> None:
    names = [f"web{n}" for n in range(5)]
    for name in names:
        apply(control_plane, pki(ns, name))
    for name in names:
        wait_ready(control_plane, ns, name)
    before = {name: serial(control_plane, ns, f"{name}-tls") for name in names}

    kill_9(control_plane, issuer.name)
    restarted_at = log_size(control_plane, issuer.name)
    issuer_process.start(control_plane, replace(issuer.settings, health_port=0), name=issuer.name)

    def settled() -> bool:
        assert_running(control_plane, issuer.name)
        seen = {
            line.get("pki")
            for line in json_log(control_plane, issuer.name, restarted_at)
            if line.get("message") == "reconciled" and line.get("namespace") == ns
        }
        return seen >= set(names)

    eventually(settled, TIMEOUT, "the restarted issuer to reconcile every Pki")
    issued = [
        line
        for line in json_log(control_plane, issuer.name, restarted_at)
        if line.get("message") == "reconciled" and line.get("action") == "Issue"
    ]
    assert issued == []
    assert {name: serial(control_plane, ns, f"{name}-tls") for name in names} == before


def test_secret_name_change_moves_the_certificate_and_deletes_the_old_secret(
    control_plane: ControlPlane, ns: str
) -> None:
    apply(control_plane, pki(ns, "web"))
    wait_ready(control_plane, ns, "web")
    apply(control_plane, pki(ns, "web", secretName="web-moved-tls"))
    moved = eventually(
        lambda: (
            (obj := get(control_plane, "pki", ns, "web"))
            and obj["status"].get("secretName") == "web-moved-tls"
            and obj
        ),
        TIMEOUT,
        "status to name the new Secret",
    )
    assert moved["status"]["serialNumber"] == serial(control_plane, ns, "web-moved-tls")
    eventually(
        lambda: get(control_plane, "secret", ns, "web-tls") is None,
        TIMEOUT,
        "the old Secret deleted",
    )
    message = condition(moved)["message"]
    assert 'spec.secretName changed from "web-tls" to "web-moved-tls"' in message
    assert "does not exist" not in message


def test_a_deleted_pki_takes_its_secret_with_it_and_a_recreated_one_gets_its_own(
    control_plane: ControlPlane, ns: str
) -> None:
    """No ownerReference any more: the issuer, not the garbage collector, deletes it."""
    apply(control_plane, pki(ns, "web"))
    wait_ready(control_plane, ns, "web")
    leftover = get(control_plane, "secret", ns, "web-tls")
    assert leftover is not None
    control_plane.kubectl("delete", "pki", "web", "-n", ns, "--wait=true")
    eventually(
        lambda: get(control_plane, "secret", ns, "web-tls") is None,
        TIMEOUT,
        "the issuer to delete the deleted Pki's Secret",
    )
    apply(control_plane, pki(ns, "web"))
    secret = eventually(
        lambda: get(control_plane, "secret", ns, "web-tls"), TIMEOUT, "a Secret for the new Pki"
    )
    obj = wait_ready(control_plane, ns, "web")
    assert secret["metadata"]["uid"] != leftover["metadata"]["uid"]
    assert secret["metadata"]["labels"]["pkiwarden.dev/pki"] == "web"
    blamed = control_plane.kubectl(
        "get", "events", "-n", ns, "-o", "name",
        f"--field-selector=involvedObject.uid={obj['metadata']['uid']},reason=SecretConflict",
    )  # fmt: skip
    assert blamed.stdout.strip() == "", "a recreated Pki must not blame itself"


# --------------------------------------------------------------------------- failures

FACTS = ("secretName", "serialNumber", "notBefore", "notAfter", "renewalTime")


def test_policy_tightened_then_fixed(control_plane: ControlPlane, ns: str) -> None:
    apply(control_plane, pki(ns, "web"))
    wait_ready(control_plane, ns, "web")
    issued = serial(control_plane, ns, "web-tls")

    facts = {k: v for k, v in wait_ready(control_plane, ns, "web")["status"].items() if k in FACTS}
    apply(control_plane, policy(ns, ["api"]))
    # The certificate in place stays valid: Ready, with the failure said and renewal blocked.
    obj = wait_reason(control_plane, ns, "web", "True", "NotAllowed")
    message = condition(obj)["message"]
    assert message.startswith(f"certificate {issued} in Secret web-tls is valid until")
    assert "; renewal is blocked: " in message
    assert f'spec.serviceName: "web" in Pki web is not allowed in namespace "{ns}"' in message
    assert f'PkiPolicy "{ns}" now allows: api' in message
    assert {k: v for k, v in obj["status"].items() if k in FACTS} == facts
    assert obj["status"]["failedIssuanceAttempts"] >= 1
    assert "nextRetryTime" in obj["status"] and "lastFailureTime" in obj["status"]

    control_plane.kubectl("delete", "secret", "web-tls", "-n", ns)
    obj = wait_reason(control_plane, ns, "web", "False", "NotAllowed")
    assert condition(obj)["message"].startswith(
        f'spec.serviceName: "web" in Pki web is not allowed in namespace "{ns}"'
    )
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


def test_a_conflict_retries_when_the_secret_goes_and_unrelated_changes_are_no_attempts(
    control_plane: ControlPlane, ns: str
) -> None:
    control_plane.kubectl(
        "create", "secret", "generic", "legacy", "-n", ns, "--from-literal=password=hunter2"
    )
    apply(control_plane, pki(ns, "web", secretName="legacy"))
    wait_reason(control_plane, ns, "web", "False", "SecretConflict")

    def backed_off() -> dict[str, Any] | None:
        obj = get(control_plane, "pki", ns, "web")
        return obj if (obj or {}).get("status", {}).get("failedIssuanceAttempts", 0) >= 5 else None

    status = eventually(backed_off, 60, "five attempts (the next retry 32 s away)")["status"]
    recorded = {k: status[k] for k in ("failedIssuanceAttempts", "nextRetryTime")}
    retry_at = parse_rfc3339(status["nextRetryTime"])
    assert retry_at is not None
    # Eight edits of a policy that has nothing to do with this Pki wake every Pki:
    # the same failure again is not an attempt, and the backoff does not grow.
    unrelated = policy(f"unrelated-{ns}", ["other"])
    unrelated["spec"]["namespaces"] = [f"elsewhere-{ns}"]
    apply(control_plane, unrelated)
    try:
        for number in range(8):
            unrelated["spec"]["allowedServiceNames"] = [f"other{number}"]
            apply(control_plane, unrelated)
            time.sleep(0.3)
        time.sleep(1.0)
        status = (get(control_plane, "pki", ns, "web") or {})["status"]
        assert {k: status[k] for k in recorded} == recorded
    finally:
        control_plane.kubectl("delete", "pkipolicy", f"unrelated-{ns}", "--ignore-not-found")
    # The cause goes: retried at once, long before the scheduled retry.
    control_plane.kubectl("delete", "secret", "legacy", "-n", ns)
    obj = eventually(
        lambda: (
            (o := get(control_plane, "pki", ns, "web"))
            and condition(o).get("status") == "True"
            and o
        ),
        TIMEOUT,
        "web to be issued once the foreign Secret is gone",
        every=0.1,
    )
    assert utc_now() < retry_at, "issued only at the scheduled retry, not when the cause went"
    assert obj["status"]["failedIssuanceAttempts"] == 0
    assert leaf(secret_data(control_plane, ns, "legacy")).subject is not None


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
