"""Pod certificates on the node: the kubelet asks, pkiwarden signs, two Pods do mutual TLS.

A Deployment's Pods mount a projected volume with a ``podCertificate`` source
for ``pkiwarden.dev/default`` (the kubelet makes the key and the
PodCertificateRequest) and a ``clusterTrustBundle`` source for the same
signer (the issuer publishes the authority's trust set as a
ClusterTrustBundle). Each Pod serves ``deploy/local/images/tlsserver`` with
those files, requires a client certificate from the bundle, and dials the
other Pod with its own certificate every 200 ms, verifying the peer's name.
A Pod that asks for a name no PkiPolicy allows stays ContainerCreating, with
pkiwarden's Warning on it next to the kubelet's.

The module's issuer asks for the earliest refresh the API server allows
(``beginRefreshAt`` 10 minutes after ``notBefore``, backdated 4 minutes), so a
Pod started here is refreshed by the kubelet some 6 to 13 minutes later (its
own jitter is up to 5 minutes, its refresh pass every 1 to 2). The check that
it was is marked ``last``: the rest of the session runs meanwhile, and the
node is parked between node modules instead of removed, so the Pod lives on.
Run alone, the module simply waits those minutes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane, node, webhook_process
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from pkiwarden.local.node import Node
from pkiwarden.local.webhook_process import LocalWebhook
from shared.clock import utc_now
from shared.kube.client import PKI_POLICIES, ApiError, Kube
from tests.e2e.conftest import KEEP_NODE, PARKED_TAINT
from tests.e2e.helpers import (
    create_pod,
    delete_namespace,
    events_on,
    eventually,
    pods_story,
    running_issuer,
    scrape,
    value,
    web_policy,
    why,
)
from tests.e2e.test_node_pods import presented

# First in the session: its Pod with a short lifetime is refreshed by the
# kubelet while the other modules run, and checked by the last test.
pytestmark = pytest.mark.early

NAMESPACE = "podcerts"
SIGNER = "pkiwarden.dev/default"
SERVICE = "mesh"
NAME = f"{SERVICE}.{NAMESPACE}.svc"
COUNT = re.compile(r"handshakes with \S+: (\d+) succeeded, (\d+) failed")
PCRS = "/apis/certificates.k8s.io/v1/namespaces/{}/podcertificaterequests"
BUNDLES = "/apis/certificates.k8s.io/v1/clustertrustbundles"
SHORT_NS = "podcerts-refresh"
SHORT_NAME = f"{SERVICE}.{SHORT_NS}.svc"
BACKDATE = timedelta(minutes=4)  # as far back as the API's 5 minutes allow, with room
FLOOR = timedelta(minutes=10)  # the API's earliest beginRefreshAt after notBefore
# After beginRefreshAt: the kubelet's jitter (up to 5m), its refresh pass (every
# 1-2m), then the signature and the next sync of the volume.
REFRESH_WITHIN = timedelta(minutes=5) + timedelta(minutes=2) + timedelta(minutes=3)
# A Pod starts at the kubelet's next try to mount its volume after the signature.
# The kubelet backs off between tries up to 2m2s, and its PodCertificateRequest
# itself is retried with a backoff of its own when an early try fails (the Node
# authorizer's graph may not hold the Pod's ServiceAccount yet), so a slow first
# signature can cost two minutes of waiting more.
START_WITHIN = 300


@pytest.fixture(scope="module")
def issuer(control_plane: ControlPlane, kube: Kube, local_node: Node) -> Iterator[LocalIssuer]:
    settings = Settings(
        health_port=0, leader_elect=False, workers=2, pod_refresh_fraction=0, pod_backdate=BACKDATE
    )
    with running_issuer(control_plane, settings, "issuer-podcerts") as running:
        yield running


@pytest.fixture(scope="module")
def ns(control_plane: ControlPlane, kube: Kube, issuer: LocalIssuer) -> Iterator[str]:
    control_plane.kubectl("create", "namespace", NAMESPACE)
    control_plane.kubectl("create", "serviceaccount", SERVICE, "-n", NAMESPACE)
    kube.create(PKI_POLICIES.path(), web_policy(NAMESPACE, [SERVICE]))
    try:
        yield NAMESPACE
    finally:
        control_plane.kubectl("delete", "pkipolicy", NAMESPACE, "--ignore-not-found")
        delete_namespace(control_plane, NAMESPACE)


def credentials(dns_names: str, **source: Any) -> dict[str, Any]:
    """The projected volume: the Pod's certificate and the signer's trust bundle."""
    return {
        "name": "pod-tls",
        "projected": {
            "sources": [
                {
                    "podCertificate": {
                        "signerName": SIGNER,
                        "keyType": "ECDSAP256",
                        "keyPath": "tls.key",
                        "certificateChainPath": "tls.crt",
                        "maxExpirationSeconds": 3600,
                        "userAnnotations": {"pkiwarden.dev/dns-names": dns_names},
                        **source,
                    }
                },
                {
                    "clusterTrustBundle": {
                        "signerName": SIGNER,
                        "labelSelector": {},
                        "path": "ca.crt",
                    }
                },
            ]
        },
    }


def mesh_pod_spec(dns_names: str = NAME) -> dict[str, Any]:
    return {
        "serviceAccountName": SERVICE,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {
                "name": "app",
                "image": node.image_name("tlsserver"),
                "imagePullPolicy": "Never",
                "args": [
                    "-cert=/etc/pod/tls.crt",
                    "-key=/etc/pod/tls.key",
                    "-client-ca=/etc/pod/ca.crt",
                    "-ca=/etc/pod/ca.crt",
                    f"-server-name={NAME}",
                    "-every=200ms",
                    "-peer-file=/etc/peer/$(POD_NAME)",
                ],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "volumeMounts": [
                    {"name": "pod-tls", "mountPath": "/etc/pod", "readOnly": True},
                    {"name": "peer", "mountPath": "/etc/peer", "readOnly": True},
                ],
            }
        ],
        "volumes": [
            credentials(dns_names),
            {"name": "peer", "configMap": {"name": "peers", "optional": True}},
        ],
    }


def deployment(name: str = SERVICE, dns_names: str = NAME) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": mesh_pod_spec(dns_names)},
        },
    }


def pod(name: str, spec: dict[str, Any]) -> str:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE}}
    return json.dumps({**body, "spec": spec})


def running_pods(kube: Kube) -> dict[str, str] | None:
    """Pod name -> IP of the Deployment's two Pods once both run."""
    pods = kube.get(
        f"/api/v1/namespaces/{NAMESPACE}/pods", params={"labelSelector": f"app={SERVICE}"}
    )["items"]
    found = {
        p["metadata"]["name"]: p["status"]["podIP"]
        for p in pods
        if p["status"].get("phase") == "Running" and p["status"].get("podIP")
    }
    return found if len(found) == 2 else None


def story(plane: ControlPlane) -> str:
    """The namespace's Pods, its PodCertificateRequests and the kubelet's words on them."""
    requests = plane.kubectl(
        "get", "podcertificaterequests", "-n", NAMESPACE, "-o", "yaml", check=False
    )
    return "\n".join(
        [
            pods_story(plane, NAMESPACE, kubelet_grep="podCertificate"),
            f"--- PodCertificateRequests in {NAMESPACE}",
            requests.stdout + requests.stderr,
        ]
    )


def counts(plane: ControlPlane, pod: str) -> tuple[int, int]:
    """(succeeded, failed) as the Pod last logged them."""
    found = COUNT.findall(plane.kubectl("logs", "-n", NAMESPACE, f"pod/{pod}").stdout)
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


def requests_of(kube: Kube, pod: str) -> list[dict[str, Any]]:
    items = kube.get(PCRS.format(NAMESPACE))["items"]
    return [r for r in items if r["spec"]["podName"] == pod]


def test_two_pods_of_a_deployment_do_mutual_tls_with_pod_certificates(
    control_plane: ControlPlane, kube: Kube, ns: str, issuer: LocalIssuer
) -> None:
    bundles = eventually(
        lambda: [b for b in kube.get(BUNDLES)["items"] if b["spec"].get("signerName") == SIGNER],
        30,
        "the signer's ClusterTrustBundle",
    )
    assert len(bundles) == 1 and bundles[0]["metadata"]["name"].startswith("pkiwarden.dev:default:")
    trust = x509.load_pem_x509_certificates(bundles[0]["spec"]["trustBundle"].encode())

    kube.create(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment())
    pods = eventually(
        lambda: running_pods(kube),
        START_WITHIN,
        "both Pods of the Deployment to run",
        explain=lambda: story(control_plane),
    )
    (first, first_ip), (second, second_ip) = sorted(pods.items())
    control_plane.kubectl(
        "create",
        "configmap",
        "peers",
        "-n",
        ns,
        f"--from-literal={first}={second_ip}:8443",
        f"--from-literal={second}={first_ip}:8443",
    )
    for pod in (first, second):
        eventually(lambda pod=pod: counts(control_plane, pod)[0] >= 10 or None, 90, f"{pod}'s mTLS")
        assert counts(control_plane, pod)[1] == 0

    for pod in (first, second):
        (request,) = requests_of(kube, pod)
        status = request["status"]
        assert [c["type"] for c in status["conditions"]] == ["Issued"]
        leaf = x509.load_pem_x509_certificates(status["certificateChain"].encode())[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
            f"spiffe://cluster.local/ns/{ns}/sa/{SERVICE}"
        ]
        assert san.get_values_for_type(x509.DNSName) == [NAME]
        assert leaf.issuer == trust[0].subject
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert lifetime.total_seconds() == 3600
    samples = scrape(issuer)
    signed = "pkiwarden_pod_certificate_requests_total"
    assert value(samples, signed, signer=SIGNER, answer="Issued", reason="Issued") == 2
    assert value(samples, "pkiwarden_pod_certificate_request_seconds_count", signer=SIGNER) == 2
    assert value(samples, "pkiwarden_pod_certificate_oldest_pending_seconds") == 0


def authority(kube: Kube) -> dict[str, Any]:
    return kube.get("/apis/pkiwarden.dev/v1alpha1/pkiauthorities/default")


def trust_in_bundle(kube: Kube) -> set[str]:
    """The subjects of the CA certificates in the signer's ClusterTrustBundles."""
    bundles = [b for b in kube.get(BUNDLES)["items"] if b["spec"].get("signerName") == SIGNER]
    return {
        c.subject.rfc4514_string()
        for b in bundles
        for c in x509.load_pem_x509_certificates(b["spec"]["trustBundle"].encode())
    }


def signed_by(kube: Kube, pod: str) -> str:
    (request,) = requests_of(kube, pod)
    leaf = x509.load_pem_x509_certificates(request["status"]["certificateChain"].encode())[0]
    return leaf.issuer.rfc4514_string()


def test_a_ca_rotation_keeps_pod_certificates_trusted_until_their_pods_hold_new_ones(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    pods = running_pods(kube)
    assert pods is not None  # the Deployment of the first test, still doing mTLS
    old_ca = signed_by(kube, next(iter(pods)))
    assert trust_in_bundle(kube) == {old_ca}
    before = {pod: counts(control_plane, pod)[0] for pod in pods}
    patch = {"spec": {"rotation": {"trustPropagation": "5s", "reissueRate": 10}}}
    control_plane.kubectl("patch", "pkica", "default", "--type=merge", "-p", json.dumps(patch))
    try:
        argv = controlplane.pkiwarden_argv("ca", "rotate", "--authority", "default")
        subprocess.run(
            argv, env={**os.environ, **control_plane.env()}, check=True, capture_output=True
        )
        # The next CA joins the bundle first; then, with the Pods' certificates still the
        # old CA's, the rotation waits (Reissuing, counting them): the old CA stays trusted.
        eventually(lambda: len(trust_in_bundle(kube)) == 2 or None, 60, "the next CA in the bundle")

        def in_phase(phase: str) -> dict[str, Any] | None:
            found = authority(kube)
            return found if found["status"].get("phase") == phase else None

        def waiting() -> dict[str, Any] | None:
            found = in_phase("Reissuing")  # the new CA signs; the Pods' certificates are old
            return found if found and found["status"].get("pendingPkis", 0) >= 2 else None

        eventually(waiting, 60, "the rotation to wait for the Pods' certificates")
        time.sleep(6)  # longer than trustPropagation: still waiting, still trusted
        assert waiting() is not None
        assert old_ca in trust_in_bundle(kube)
        for pod in pods:
            assert (
                counts(control_plane, pod)[0] > before[pod] and counts(control_plane, pod)[1] == 0
            )

        # New Pods ask again and get the new CA's certificates; the old requests go
        # with their Pods, and the rotation ends with the old CA out of the bundle.
        control_plane.kubectl("rollout", "restart", f"deployment/{SERVICE}", "-n", ns)

        def restarted() -> dict[str, str] | None:
            found = running_pods(kube)
            return found if found and not set(found) & set(pods) else None

        renewed = eventually(
            restarted,
            START_WITHIN,
            "the restarted Pods to run",
            explain=lambda: story(control_plane),
        )
        assert all(signed_by(kube, pod) != old_ca for pod in renewed)
        (first, first_ip), (second, second_ip) = sorted(renewed.items())
        peers = {"data": {first: f"{second_ip}:8443", second: f"{first_ip}:8443"}}
        control_plane.kubectl("patch", "configmap", "peers", "-n", ns, "-p", json.dumps(peers))
        eventually(lambda: in_phase("Stable"), 60, "the rotation to complete")
        assert old_ca not in trust_in_bundle(kube) and len(trust_in_bundle(kube)) == 1
        for pod in renewed:
            eventually(lambda pod=pod: counts(control_plane, pod)[0] >= 10 or None, 90, pod)
            assert counts(control_plane, pod)[1] == 0
    finally:
        restore = {"spec": {"rotation": None}}
        control_plane.kubectl(
            "patch", "pkica", "default", "--type=merge", "-p", json.dumps(restore)
        )


@dataclass
class ShortLived:
    """The Pod whose refresh the session's last test checks; what it first served."""

    pod: str
    first: x509.Certificate | None = None
    container_id: str | None = None


def short_pod_spec() -> dict[str, Any]:
    """Serves its pod certificate on :8443 (read at every handshake) and dials no one."""
    return {
        "serviceAccountName": SERVICE,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "tolerations": [{"key": PARKED_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [
            {
                "name": "app",
                "image": node.image_name("tlsserver"),
                "imagePullPolicy": "Never",
                "args": ["-cert=/etc/pod/tls.crt", "-key=/etc/pod/tls.key", "-ca=/etc/pod/ca.crt"],
                "volumeMounts": [{"name": "pod-tls", "mountPath": "/etc/pod", "readOnly": True}],
            }
        ],
        "volumes": [credentials(SHORT_NAME)],
    }


@pytest.fixture(scope="session")
def short_lived(
    request: pytest.FixtureRequest, control_plane: ControlPlane, kube: Kube
) -> Iterator[ShortLived]:
    """A Pod with a 1-hour pod certificate, kept (and its node) until the session ends."""
    request.config.stash[KEEP_NODE] = True
    control_plane.kubectl("create", "namespace", SHORT_NS)
    control_plane.kubectl("create", "serviceaccount", SERVICE, "-n", SHORT_NS)
    kube.create(PKI_POLICIES.path(), web_policy(SHORT_NS, [SERVICE]))
    try:
        create_pod(kube, SHORT_NS, "short", short_pod_spec())
        yield ShortLived("short")
    finally:
        request.config.stash[KEEP_NODE] = False
        control_plane.kubectl("delete", "pkipolicy", SHORT_NS, "--ignore-not-found")
        delete_namespace(control_plane, SHORT_NS)
        node.down(control_plane)


def short_pod(kube: Kube, short: ShortLived) -> dict[str, Any]:
    return kube.get(f"/api/v1/namespaces/{SHORT_NS}/pods/{short.pod}")


def container_id(pod: dict[str, Any]) -> str | None:
    statuses = pod["status"].get("containerStatuses") or []
    running = [s for s in statuses if "running" in (s.get("state") or {})]
    return running[0]["containerID"] if running else None


def signer_trust(kube: Kube) -> bytes:
    """The signer's ClusterTrustBundles, as one PEM bundle."""
    bundles = [b for b in kube.get(BUNDLES)["items"] if b["spec"].get("signerName") == SIGNER]
    return "".join(b["spec"]["trustBundle"] for b in bundles).encode()


def served(kube: Kube, short: ShortLived) -> x509.Certificate | None:
    """What the Pod's server presents, verified against the signer's trust and by name."""
    ip = short_pod(kube, short)["status"].get("podIP")
    if not ip:
        return None
    try:
        return presented(ip, SHORT_NAME, signer_trust(kube))
    except OSError:  # not serving yet (ssl.SSLError is an OSError too)
        return None


def served_as_is(kube: Kube, short: ShortLived) -> x509.Certificate | None:
    """What the Pod's server presents, unverified: the caller checks it."""
    ip = short_pod(kube, short)["status"].get("podIP")
    if not ip:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((ip, 8443), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return x509.load_der_x509_certificate(der) if der else None


def default_authority_cas(kube: Kube) -> list[x509.Certificate]:
    """The CA certificates that sign for ``pkiwarden.dev/default`` in this session.

    The signer's ClusterTrustBundle, and the public half of every issuer's CA
    Secret: the session's modules run issuers in namespaces of their own, each
    serving the authority ``default`` with its own CA, and whichever runs when
    the kubelet asks again signs the refresh.
    """
    found = x509.load_pem_x509_certificates(signer_trust(kube)) if signer_trust(kube) else []
    name = Settings().ca_secret
    secrets = kube.get("/api/v1/secrets", params={"fieldSelector": f"metadata.name={name}"})
    for secret in secrets["items"]:
        pem = (secret.get("data") or {}).get("tls.crt")
        if pem:
            found.extend(x509.load_pem_x509_certificates(base64.b64decode(pem)))
    return found


def signed_by_one_of(cert: x509.Certificate, cas: list[x509.Certificate]) -> bool:
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def issued_chain(request: dict[str, Any]) -> x509.Certificate | None:
    chain = (request.get("status") or {}).get("certificateChain")
    return x509.load_pem_x509_certificates(chain.encode())[0] if chain else None


def rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_short_lifetime_is_signed_to_refresh_as_early_as_the_api_allows(
    kube: Kube, issuer: LocalIssuer, short_lived: ShortLived
) -> None:
    def issued() -> dict[str, Any] | None:
        found = [
            r
            for r in kube.get(PCRS.format(SHORT_NS))["items"]
            if r["spec"]["podName"] == short_lived.pod
        ]
        return found[0] if found and issued_chain(found[0]) else None

    request = eventually(issued, 120, "the short-lived Pod's certificate")
    status = request["status"]
    not_before, begin = rfc3339(status["notBefore"]), rfc3339(status["beginRefreshAt"])
    assert begin - not_before == FLOOR
    assert rfc3339(status["notAfter"]) - not_before == timedelta(hours=1)
    asked = rfc3339(request["metadata"]["creationTimestamp"])
    assert asked - BACKDATE - timedelta(seconds=2) <= not_before <= utc_now() - BACKDATE

    first = eventually(lambda: served(kube, short_lived), 90, "the short-lived Pod to serve")
    assert first.serial_number == issued_chain(request).serial_number  # type: ignore[union-attr]
    short_lived.first = first
    short_lived.container_id = container_id(short_pod(kube, short_lived))
    assert short_lived.container_id is not None


def test_a_name_no_policy_allows_leaves_the_pod_creating_with_pkiwardens_warning(
    control_plane: ControlPlane, kube: Kube, ns: str
) -> None:
    pod = create_pod(kube, ns, "stranger", mesh_pod_spec("stranger.podcerts.svc"))

    def denied() -> dict[str, Any] | None:
        found = requests_of(kube, "stranger")
        conditions = (found[0].get("status") or {}).get("conditions") if found else None
        return conditions[0] if conditions else None

    condition = eventually(denied, 60, "the request to be answered")
    assert condition["type"] == "Denied" and condition["reason"] == "NotAllowed"
    assert '"stranger.podcerts.svc"' in condition["message"]
    assert 'PkiPolicy "podcerts"' in condition["message"]
    assert "mesh.podcerts.svc" in condition["message"]  # what is allowed

    (event,) = eventually(lambda: events_on(kube, pod, "NotAllowed"), 30, "pkiwarden's Warning")
    assert event["type"] == "Warning" and event["message"].startswith(
        'spec.unverifiedUserAnnotations["pkiwarden.dev/dns-names"][0]: "stranger.podcerts.svc"'
    )

    def both_told() -> str | None:
        described = control_plane.kubectl("describe", "pod", "-n", ns, "stranger").stdout
        return described if "NotAllowed" in described and "FailedMount" in described else None

    # The kubelet's own FailedMount comes with its next try to mount, which backs off.
    eventually(
        both_told,
        START_WITHIN,
        "the kubelet's FailedMount beside pkiwarden's Warning",
        every=2,
        explain=lambda: story(control_plane),
    )
    phase = kube.get(f"/api/v1/namespaces/{ns}/pods/stranger")["status"]["phase"]
    assert phase == "Pending"

    status, told = why(control_plane, control_plane.kubeconfig, "pod/stranger", "-n", ns)
    assert status == 1, told
    assert told.startswith("NOT READY: pod/stranger in namespace podcerts: PodCertificateRequest ")
    assert "(pkiwarden.dev/default) was Denied (NotAllowed)" in told.splitlines()[0]
    assert f"Fix: {condition['message']}" in told


def test_a_deleted_trust_bundle_is_published_again(kube: Kube, ns: str) -> None:
    (bundle,) = [b for b in kube.get(BUNDLES)["items"] if b["spec"].get("signerName") == SIGNER]
    name = bundle["metadata"]["name"]
    try:
        kube.delete(f"{BUNDLES}/{name}")
    except ApiError as error:
        assert error.not_found
    eventually(
        lambda: [b for b in kube.get(BUNDLES)["items"] if b["metadata"]["name"] == name] or None,
        45,
        "the deleted bundle to be published again",
    )


def test_the_webhook_denies_a_template_at_apply_and_never_sees_other_pods(
    control_plane: ControlPlane, ns: str, webhook: LocalWebhook
) -> None:
    refused = control_plane.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(deployment("stranger", "stranger.podcerts.svc")),
        check=False,
    )
    assert refused.returncode != 0
    assert (
        'admission webhook "templates.podcertificates.pkiwarden.dev" denied the request: '
        "spec.template.spec.volumes[0].projected.sources[0].podCertificate.userAnnotations"
        '["pkiwarden.dev/dns-names"][0]: "stranger.podcerts.svc" is not allowed by PkiPolicy '
        '"podcerts" (allowed: mesh.podcerts.svc, *.podcerts.example.test)'
    ) in refused.stderr
    # With the webhook down, a Pod that asks pkiwarden fails closed; any other Pod is
    # created without the API server ever calling the webhook (matchConditions).
    webhook_process.stop(control_plane)
    asking = control_plane.kubectl(
        "create", "--dry-run=server", "-f", "-", input=pod("asking", mesh_pod_spec()), check=False
    )
    assert asking.returncode != 0 and "failed calling webhook" in asking.stderr
    plain = {"containers": [{"name": "app", "image": node.image_name("tlsserver")}]}
    control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=pod("plain", plain))


@pytest.mark.last
@pytest.mark.timeout(1200)  # run alone, it waits up to ~15 minutes for the refresh
def test_the_kubelet_refreshes_a_short_lifetime_and_the_pod_serves_the_new_certificate(
    kube: Kube, issuer: LocalIssuer, short_lived: ShortLived
) -> None:
    first = short_lived.first
    if first is None:
        pytest.fail("the short-lived Pod never served a first certificate", pytrace=False)
    begin = first.not_valid_before_utc + FLOOR
    # An issuer (re)started now signs a refresh that waited for one; the kubelet then
    # needs a sync or two to write it into the volume.
    wait = max((begin + REFRESH_WITHIN - utc_now()).total_seconds(), 180.0)

    def refreshed() -> x509.Certificate | None:
        now = served_as_is(kube, short_lived)
        return now if now and now.serial_number != first.serial_number else None

    renewed = eventually(refreshed, wait, "the kubelet's refresh to be served", every=5)
    # Signed by pkiwarden for the authority; the requests themselves may be gone by now
    # (the controller-manager deletes them 15 minutes after they were made).
    assert signed_by_one_of(renewed, default_authority_cas(kube))

    def san(cert: x509.Certificate) -> list[str]:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [
            *names.get_values_for_type(x509.UniformResourceIdentifier),
            *names.get_values_for_type(x509.DNSName),
        ]

    identity = [f"spiffe://cluster.local/ns/{SHORT_NS}/sa/{SERVICE}", SHORT_NAME]
    assert san(renewed) == san(first) == identity
    assert renewed.not_valid_before_utc > first.not_valid_before_utc
    pod = short_pod(kube, short_lived)
    assert container_id(pod) == short_lived.container_id  # the same container, never restarted
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
