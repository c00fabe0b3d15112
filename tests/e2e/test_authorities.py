"""Several PkiAuthorities served by one issuer: each Pki signed by its own, trust per namespace.

Three authorities: ``gen`` (pkiwarden generates and rotates its CA; the
issuer's default), ``platform`` (a supplied intermediate under a root whose
key is held nowhere in the cluster) and ``unused``. Namespace "a" may use
gen and platform, namespace "b" platform only. Each leaf verifies with
``openssl verify`` against its namespace's trust ConfigMap and its own
Secret's ``ca.crt``; rotating one authority re-issues only its Pkis (0 failed
handshakes, the others' Secrets untouched), a new intermediate under the same
root needs no trust change, and a SIGKILL mid-rotation resumes it without
re-issuing anything twice.

The module runs its own issuer in its own namespace, with short rotation
timings, and leaves no Pki, policy or authority behind.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509

from issuer.runtime import issuance
from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane, issuer_process
from pkiwarden.local.controlplane import ControlPlane
from shared.clock import utc_now
from shared.kube.client import CONFIG_MAPS, SECRETS, ApiError, Kube
from tests.e2e.helpers import eventually, kill_9
from tests.e2e.test_ca_rotation import Client, Endpoint, wait_ready
from tests.unit.builders import intermediate_ca, supplied_ca_secret

T = TypeVar("T")
TIMEOUT = 60.0
SYSTEM_NS = "authorities-e2e-system"
NS_A, NS_B = "authorities-a", "authorities-b"
PROCESS = "issuer-authorities"
GEN, PLATFORM, UNUSED = "gen", "platform", "unused"
SETTINGS = Settings(
    namespace=SYSTEM_NS, ca_secret="gen-ca", authority=GEN, health_port=0, leader_elect=False
)
FAST = {"rotation": {"trustPropagation": "2s", "reissueRate": 20}}
# The offline root: its key stays in this test process, never in the cluster.
ROOT, ROOT_KEY = issuance.self_signed_ca("offline root", utc_now(), timedelta(days=3650))


def apply(plane: ControlPlane, obj: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", input=json.dumps(obj))


def authority(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiAuthority",
        "metadata": {"name": name},
        "spec": spec,
    }


def policy(namespace: str, authorities: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": namespace},
        "spec": {
            "namespaces": [namespace],
            "allowedServiceNames": ["web", "api"],
            "allowedAuthorities": authorities,
        },
    }


def pki(namespace: str, name: str, service: str, signer: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"serviceName": service, "dnsNames": [f"{service}.{namespace}.svc"]}
    if signer is not None:
        spec["authority"] = signer
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    return eventually(probe, timeout, what, every=0.1)


def secret(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(SECRETS.path(namespace, name))


def data(obj: dict[str, Any], key: str) -> bytes:
    return base64.b64decode((obj.get("data") or {}).get(key, ""))


def trust_map(kube: Kube, namespace: str) -> dict[str, str]:
    try:
        found = kube.get(CONFIG_MAPS.path(namespace, "pkiwarden-ca.crt"))
    except ApiError as error:
        if error.not_found:
            return {}
        raise
    return dict(found.get("data") or {})


def trust_with(kube: Kube, namespace: str, key: str) -> dict[str, str] | None:
    """The namespace's trust ConfigMap data once it holds ``key``."""
    found = trust_map(kube, namespace)
    return found if found.get(key) else None


def subjects(pem: bytes | str) -> set[str]:
    text = pem.encode() if isinstance(pem, str) else pem
    try:
        found = x509.load_pem_x509_certificates(text)
    except ValueError:
        return set()
    return {c.subject.rfc4514_string() for c in found}


def status(kube: Kube, name: str) -> dict[str, Any]:
    found = kube.get(f"/apis/pkiwarden.dev/v1alpha1/pkiauthorities/{name}")
    return dict(found.get("status") or {})


def openssl_verify(directory: Path, trust: bytes, tls_crt: bytes) -> str:
    """``openssl verify -CAfile trust -untrusted chain leaf``: its output, failing loudly."""
    certificates = x509.load_pem_x509_certificates(tls_crt)
    (directory / "trust.pem").write_bytes(trust)
    (directory / "leaf.pem").write_bytes(issuance.certificate_to_pem(certificates[0]))
    (directory / "chain.pem").write_bytes(
        b"".join(issuance.certificate_to_pem(c) for c in certificates[1:])
    )
    argv = ["openssl", "verify", "-CAfile", str(directory / "trust.pem")]
    if len(certificates) > 1:
        argv += ["-untrusted", str(directory / "chain.pem")]
    result = subprocess.run(
        [*argv, str(directory / "leaf.pem")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def versions(kube: Kube, namespace: str, names: list[str]) -> dict[str, str]:
    return {n: secret(kube, namespace, f"{n}-tls")["metadata"]["resourceVersion"] for n in names}


def rotate(plane: ControlPlane, name: str) -> None:
    argv = controlplane.pkiwarden_argv("ca", "rotate", "--authority", name)
    subprocess.run(argv, env={**os.environ, **plane.env()}, check=True, capture_output=True)


def rotation_done(kube: Kube, name: str, request: str | None = None) -> Callable[[], bool]:
    def probe() -> bool:
        now = status(kube, name)
        asked = request is None or now.get("lastRotationRequest") == request
        return asked and now.get("phase") == "Stable" and len(now.get("trusted") or []) == 1

    return probe


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane, kube: Kube) -> Iterator[ControlPlane]:
    """The three authorities, the two namespaces and their policies, and the module's issuer."""
    plane = control_plane
    for namespace in (SYSTEM_NS, NS_A, NS_B):
        plane.kubectl("create", "namespace", namespace, check=False)
    first, first_key = intermediate_ca(ROOT, ROOT_KEY, "platform issuing CA 1", utc_now())
    kube.create(
        SECRETS.path(SYSTEM_NS),
        supplied_ca_secret(SYSTEM_NS, "platform-ca", first, first_key, roots=(ROOT,)),
    )
    apply(plane, authority(PLATFORM, {"secretName": "platform-ca", **FAST}))
    apply(plane, authority(UNUSED, {"secretName": "unused-ca", "generate": {}, **FAST}))
    apply(plane, policy(NS_A, [GEN, PLATFORM]))
    apply(plane, policy(NS_B, [PLATFORM]))
    running = issuer_process.start(plane, SETTINGS, name=PROCESS)
    plane.kubectl("patch", "pkica", GEN, "--type=merge", "-p", json.dumps({"spec": FAST}))
    try:
        yield plane
    finally:
        for namespace in (NS_A, NS_B):
            plane.kubectl("delete", "pkis", "--all", "-n", namespace, "--wait=true", check=False)
        issuer_process.stop(plane, running)
        plane.kubectl("delete", "pkipolicy", NS_A, NS_B, "--ignore-not-found")
        plane.kubectl("delete", "pkica", GEN, PLATFORM, UNUSED, "--ignore-not-found")
        for namespace in (NS_A, NS_B, SYSTEM_NS):
            plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


A_GEN = ["a-gen-0", "a-gen-1", "a-gen-2"]
A_PLATFORM, B_PLATFORM = ["a-platform"], ["b-platform"]


@pytest.fixture(scope="module")
def issued(cluster: ControlPlane, kube: Kube) -> ControlPlane:
    plane = cluster
    for name in A_GEN:
        apply(plane, pki(NS_A, name, "web", GEN))
    apply(plane, pki(NS_A, A_PLATFORM[0], "api", PLATFORM))
    apply(plane, pki(NS_B, B_PLATFORM[0], "web", PLATFORM))
    wait_ready(plane, NS_A, *A_GEN, *A_PLATFORM)
    wait_ready(plane, NS_B, *B_PLATFORM)
    return plane


def test_every_authority_is_served_and_each_leaf_verifies_against_its_trust(
    issued: ControlPlane, kube: Kube, tmp_path: Path
) -> None:
    for name in (GEN, PLATFORM, UNUSED):
        wait_for(f"{name} Ready", lambda n=name: status(kube, n).get("phase") == "Stable")
    assert "CN=offline root" in {t.get("subject") for t in status(kube, PLATFORM)["trusted"]}
    # unused: its CA made by the issuer, in no namespace's trust.
    assert data(secret(kube, SYSTEM_NS, "unused-ca"), "tls.crt")
    gen_root = subjects(data(secret(kube, SYSTEM_NS, "gen-ca"), "tls.crt"))
    a = wait_for("namespace a's trust", lambda: trust_with(kube, NS_A, "gen.crt"))
    b = wait_for("namespace b's trust", lambda: trust_with(kube, NS_B, "platform.crt"))
    assert set(a) == {"ca.crt", "gen.crt", "platform.crt"}
    assert set(b) == {"ca.crt", "platform.crt"}
    assert subjects(a["ca.crt"]) == gen_root | {"CN=offline root"}
    assert subjects(b["ca.crt"]) == subjects(a["platform.crt"]) == {"CN=offline root"}
    for namespace, names, keys in (
        (NS_A, A_GEN, ("ca.crt", "gen.crt")),
        (NS_A, A_PLATFORM, ("ca.crt", "platform.crt")),
        (NS_B, B_PLATFORM, ("ca.crt", "platform.crt")),
    ):
        configmap = a if namespace == NS_A else b
        for name in names:
            issued_secret = secret(kube, namespace, f"{name}-tls")
            tls_crt, ca_crt = data(issued_secret, "tls.crt"), data(issued_secret, "ca.crt")
            for key in keys:
                openssl_verify(tmp_path, configmap[key].encode(), tls_crt)
            openssl_verify(tmp_path, ca_crt, tls_crt)
    # Each Secret trusts its own authority only; the platform leaves carry the chain.
    platform_secret = secret(kube, NS_B, "b-platform-tls")
    assert subjects(data(platform_secret, "ca.crt")) == {"CN=offline root"}
    assert len(x509.load_pem_x509_certificates(data(platform_secret, "tls.crt"))) == 2
    assert subjects(data(secret(kube, NS_A, "a-gen-0-tls"), "ca.crt")) == gen_root


def test_an_authority_the_namespace_may_not_use_is_refused_by_the_issuer(
    issued: ControlPlane, kube: Kube
) -> None:
    apply(issued, pki(NS_B, "b-gen", "api", GEN))  # no webhook here: the issuer re-checks

    def ready_condition() -> dict[str, Any] | None:
        found = kube.get(f"/apis/pkiwarden.dev/v1alpha1/namespaces/{NS_B}/pkis/b-gen")
        conditions = (found.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        return ready if ready and ready.get("status") == "False" else None

    condition = wait_for("b-gen refused", ready_condition)
    assert "spec.authority" in condition["message"], condition
    assert PLATFORM in condition["message"], condition
    issued.kubectl("delete", "pki", "b-gen", "-n", NS_B)


def test_a_new_intermediate_under_the_same_root_needs_no_trust_change(
    issued: ControlPlane, kube: Kube, tmp_path: Path
) -> None:
    gen_before = versions(kube, NS_A, A_GEN)
    trust_before = trust_map(kube, NS_B)
    second, second_key = intermediate_ca(ROOT, ROOT_KEY, "platform issuing CA 2", utc_now())
    kube.create(
        SECRETS.path(SYSTEM_NS),
        supplied_ca_secret(SYSTEM_NS, "platform-ca-2", second, second_key, roots=(ROOT,)),
    )
    patch = {"spec": {"nextSecretName": "platform-ca-2"}}
    issued.kubectl("patch", "pkica", PLATFORM, "--type=merge", "-p", json.dumps(patch))

    def signed_by_second() -> bool:
        for namespace, name in ((NS_A, "a-platform"), (NS_B, "b-platform")):
            leaf = x509.load_pem_x509_certificates(
                data(secret(kube, namespace, f"{name}-tls"), "tls.crt")
            )
            if leaf[1] != second:
                return False
        return True

    wait_for("the platform Pkis re-issued under the second intermediate", signed_by_second)
    wait_for("platform Stable", rotation_done(kube, PLATFORM))
    reasons = issued.kubectl(
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        f"involvedObject.kind=PkiAuthority,involvedObject.name={PLATFORM}",
        "-o",
        "json",
    )
    messages = [str(e.get("message")) for e in json.loads(reasons.stdout)["items"]]
    assert any("no trust change to propagate" in m for m in messages), messages
    assert trust_map(kube, NS_B) == trust_before  # the root, as before: nothing to reload
    assert versions(kube, NS_A, A_GEN) == gen_before  # another authority's: untouched
    for namespace, name in ((NS_A, "a-platform"), (NS_B, "b-platform")):
        issued_secret = secret(kube, namespace, f"{name}-tls")
        openssl_verify(tmp_path, data(issued_secret, "ca.crt"), data(issued_secret, "tls.crt"))


def test_rotating_one_authority_reissues_only_its_pkis_with_no_failed_handshake(
    issued: ControlPlane, kube: Kube
) -> None:
    platform_before = versions(kube, NS_A, A_PLATFORM) | versions(kube, NS_B, B_PLATFORM)
    b_before = trust_map(kube, NS_B)
    gen_serials = {n: data(secret(kube, NS_A, f"{n}-tls"), "tls.crt") for n in A_GEN}
    phase = {"now": "Stable"}
    with tempfile.TemporaryDirectory() as directory:
        server = Endpoint(kube, NS_A, "a-gen-0-tls", Path(directory))
        client = Client(kube, NS_A, server.port, f"web.{NS_A}.svc", lambda: phase["now"])
        threads = client.start()
        try:
            rotate(issued, GEN)

            def settled() -> bool:
                phase["now"] = str(status(kube, GEN).get("phase"))
                return (
                    all(
                        data(secret(kube, NS_A, f"{n}-tls"), "tls.crt") != gen_serials[n]
                        for n in A_GEN
                    )
                    and rotation_done(kube, GEN)()
                )

            wait_for("gen's rotation to complete", settled)
            time.sleep(0.5)  # a few handshakes on the final trust set
        finally:
            client.stopped.set()
            for thread in threads:
                thread.join(10)
            server.stop()
    assert client.failures == []
    assert sum(n for (_, ok), n in client.results.items() if ok) > 0
    after = versions(kube, NS_A, A_PLATFORM) | versions(kube, NS_B, B_PLATFORM)
    assert after == platform_before  # platform's Secrets: not one write
    assert trust_map(kube, NS_B) == b_before  # b may not use gen: its ConfigMap never moved


def test_a_sigkill_mid_rotation_resumes_it_and_reissues_nothing_twice(
    issued: ControlPlane, kube: Kube
) -> None:
    platform_before = versions(kube, NS_A, A_PLATFORM) | versions(kube, NS_B, B_PLATFORM)
    serials: dict[str, set[int]] = defaultdict(set)
    stop = threading.Event()

    def record() -> None:
        while not stop.wait(0.1):
            for name in A_GEN:
                pem = data(secret(kube, NS_A, f"{name}-tls"), "tls.crt")
                serials[name].add(x509.load_pem_x509_certificates(pem)[0].serial_number)

    watcher = threading.Thread(target=record, daemon=True)
    watcher.start()
    slow = {"spec": {"rotation": {"trustPropagation": "4s", "reissueRate": 1}}}
    issued.kubectl("patch", "pkica", GEN, "--type=merge", "-p", json.dumps(slow))
    try:
        rotate(issued, GEN)
        for phase in ("Propagating", "Reissuing"):
            wait_for(f"gen in {phase}", lambda p=phase: status(kube, GEN).get("phase") == p)
            kill_9(issued, PROCESS)
            issuer_process.start(issued, SETTINGS, name=PROCESS, with_prerequisites=False)
        wait_for("gen's rotation to complete", rotation_done(kube, GEN), timeout=90)
        time.sleep(0.5)
    finally:
        stop.set()
        watcher.join(5)
        issued.kubectl("patch", "pkica", GEN, "--type=merge", "-p", json.dumps({"spec": FAST}))
    assert {n: len(serials[n]) for n in A_GEN} == dict.fromkeys(A_GEN, 2)  # one re-issue each
    after = versions(kube, NS_A, A_PLATFORM) | versions(kube, NS_B, B_PLATFORM)
    assert after == platform_before


def test_a_supplied_ca_not_created_yet_is_told_as_a_first_ca_not_a_lost_one(
    issued: ControlPlane, kube: Kube
) -> None:
    """A fresh authority has no backup to restore: the Pki owner is told the CA is to come."""
    later, where = "later", f'CA Secret "{SYSTEM_NS}/later-ca"'
    own_policy = policy(NS_B, [later])
    own_policy["metadata"]["name"] = later
    own_policy["spec"]["allowedServiceNames"] = ["late"]
    apply(issued, authority(later, {"secretName": "later-ca"}))
    apply(issued, own_policy)
    apply(issued, pki(NS_B, "b-later", "late", later))
    try:

        def unavailable(path: str) -> str | None:
            conditions = (kube.get(path).get("status") or {}).get("conditions") or []
            ready = next((c for c in conditions if c.get("type") == "Ready"), {})
            return str(ready["message"]) if ready.get("reason") == "CAUnavailable" else None

        told = wait_for(
            "b-later CAUnavailable",
            lambda: unavailable(f"/apis/pkiwarden.dev/v1alpha1/namespaces/{NS_B}/pkis/b-later"),
        )
        assert f'PkiAuthority "{later}" has no CA yet: {where} has not been created' in told
        assert "backup" not in told, told
        on_authority = wait_for(
            "later CAUnavailable",
            lambda: unavailable(f"/apis/pkiwarden.dev/v1alpha1/pkiauthorities/{later}"),
        )
        assert "has not been created" in on_authority and "backup" not in on_authority
        # The advice works: once supplied, the Pki is issued.
        ca, ca_key = intermediate_ca(ROOT, ROOT_KEY, "later issuing CA", utc_now())
        kube.create(
            SECRETS.path(SYSTEM_NS),
            supplied_ca_secret(SYSTEM_NS, "later-ca", ca, ca_key, roots=(ROOT,)),
        )
        wait_ready(issued, NS_B, "b-later")
    finally:
        issued.kubectl("delete", "pki", "b-later", "-n", NS_B, "--ignore-not-found")
        issued.kubectl("delete", "pkipolicy", later, "--ignore-not-found")
        issued.kubectl("delete", "pkica", later, "--ignore-not-found")
        issued.kubectl("delete", "secret", "later-ca", "-n", SYSTEM_NS, "--ignore-not-found")
