"""The image run as the Deployments run it, serving a local control plane.

``make test-image`` builds the image (``make image``) and runs this module
(``pytest -m image``; a plain ``pytest`` leaves it out). deploy/overlays/dev
is applied as a cluster admin would; then the bootstrap-ca Job's, the
webhook Deployment's and the issuer Deployment's containers run from the
image with the arguments, user, read-only root filesystem, dropped
capabilities, memory limit and emptyDir of their manifests, and no
kubeconfig: each finds its ServiceAccount's token, the cluster CA and its
namespace where a Pod does, and KUBERNETES_SERVICE_HOST/PORT, so the
in-cluster configuration is the one that runs. The README's story
(deploy/examples) is then told through them.

The API server reaches the webhook through the shipped registration
(``clientConfig.service``): the control plane's Service network is on
loopback, so the Service's ClusterIP is an address of this machine, and a
:class:`~tests.e2e.pods.ServiceProxy` carries its port to the container's, as
kube-proxy would. The app2 Pod is the one its Deployment's ReplicaSet creates.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pkiwarden.local import controlplane, install
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.demo import deployment_pod, warning_events
from pkiwarden.local.readiness import http_ok
from tests.e2e import pods
from tests.e2e.helpers import (
    TYPO_DENIAL,
    eventually,
    get,
    metrics_reader_token,
    one_line,
    secret_data,
    wait_ready,
)
from tests.e2e.pods import ApiServer, ServiceProxy, find

pytestmark = pytest.mark.image

DEPLOY = controlplane.REPO_ROOT / "deploy"
OVERLAY = DEPLOY / "overlays" / "dev"
EXAMPLES = DEPLOY / "examples"
NAMESPACE = "pkiwarden-system"
WEBHOOK = "pkiwarden-webhook"
ISSUER = "pkiwarden-issuer"
BOOTSTRAP = "pkiwarden-bootstrap-ca"
REGISTRATION = "pkiwarden"
TENANTS = ("app1", "app2")
# Container names double as Pod names (POD_NAME, the issuer's Lease identity).
CONTAINERS = {WEBHOOK: "pkiwarden-webhook-e2e", ISSUER: "pkiwarden-issuer-e2e"}
READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class Cluster:
    """The control plane with deploy/ applied and the image's containers serving it."""

    plane: ControlPlane
    manifests: list[dict[str, Any]]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    """deploy/overlays/dev as kustomize renders it (kubectl's built-in kustomize)."""
    kubectl = controlplane.binaries().kubectl
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@pytest.fixture(scope="module")
def image(manifests: list[dict[str, Any]]) -> str:
    """The image every workload of deploy/ names; `make image` must have built it."""
    names = {
        pods.only_container(pods.pod_spec(doc))["image"]
        for doc in manifests
        if doc["kind"] in ("Deployment", "Job")
    }
    assert len(names) == 1, f"the manifests name several images: {sorted(names)}"
    name = str(names.pop())
    exists = pods.podman("image", "exists", name)
    if exists.returncode != 0:
        pytest.fail(f"image {name} is not built: run `make image` first", pytrace=False)
    return name


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of its own: the registration and the Lease are cluster singletons."""
    directory = tmp_path_factory.mktemp("image") / "plane"
    try:
        yield controlplane.up(directory, die_with_caller=True)
    finally:
        controlplane.down(directory)


@pytest.fixture(scope="module")
def cluster(
    plane: ControlPlane,
    manifests: list[dict[str, Any]],
    image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """deploy/overlays/dev applied, tenants onboarded, the three containers run."""
    pods.remove_labelled()  # a run killed before its clean-up
    webhook_container = container_of(manifests, WEBHOOK)
    issuer_container = container_of(manifests, ISSUER)
    for container in (webhook_container, issuer_container):
        for port in container.get("ports") or []:
            require_free(int(port["containerPort"]))

    install.install(plane, tenants=TENANTS)
    proxy = service_proxy(plane, webhook_container)
    try:
        accounts = tmp_path_factory.mktemp("serviceaccounts")
        # The bootstrap Job creates a PkiAuthority, which the webhook validates:
        # on a cluster the Job retries until the webhook is up; here it runs once,
        # after the webhook is ready.
        start(plane, find(manifests, "Deployment", WEBHOOK), accounts)
        wait_probe(find(manifests, "Deployment", WEBHOOK), "readinessProbe")
        run_to_completion(plane, find(manifests, "Job", BOOTSTRAP), accounts)
        start(plane, find(manifests, "Deployment", ISSUER), accounts)
        wait_probe(find(manifests, "Deployment", ISSUER), "readinessProbe")
        eventually(
            lambda: ca_bundle(plane), READY_TIMEOUT, "the webhook's caBundle in the registration"
        )
        # Through the webhook: it validates PkiPolicies too.
        plane.kubectl("apply", "-f", str(EXAMPLES / "policy.yaml"))
        yield Cluster(plane, manifests)
    finally:
        try:
            pods.remove_labelled()
        finally:
            proxy.close()
        left = pods.labelled_containers()
        assert left == [], f"containers left behind: {left}"


def container_of(manifests: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    """The one container of a Deployment's pod template."""
    return pods.only_container(pods.pod_spec(find(manifests, "Deployment", deployment)))


def require_free(port: int) -> None:
    """The containers share the host's network: their ports must be free on it."""
    with socket.socket() as sock:
        # As the servers bind: a connection of an earlier run in TIME_WAIT is no conflict.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            pytest.fail(f"port {port} is in use on this machine; the containers need it")


def service_proxy(plane: ControlPlane, container: dict[str, Any]) -> ServiceProxy:
    """kube-proxy's part: the webhook Service's ClusterIP and port to the container's port.

    The ClusterIP is on loopback (the control plane's Service network), so
    the API server, calling the registration as shipped, reaches this relay.
    """
    service = get(plane, "service", NAMESPACE, WEBHOOK)
    assert service is not None, f"Service {WEBHOOK} was not installed"
    (port,) = service["spec"]["ports"]
    target = pods.container_port(container, port["targetPort"])
    return ServiceProxy((service["spec"]["clusterIP"], int(port["port"])), ("127.0.0.1", target))


def ca_bundle(plane: ControlPlane) -> bytes | None:
    """The caBundle the webhook put in its registration (the same in every webhook), if any."""
    registration = get(plane, "validatingwebhookconfiguration", "", REGISTRATION)
    bundles = {w["clientConfig"].get("caBundle") for w in (registration or {}).get("webhooks", [])}
    if len(bundles) != 1 or None in bundles:
        return None
    return base64.b64decode(bundles.pop())


def service_account_dir(plane: ControlPlane, root: Path, account: str) -> Path:
    """A TokenRequest token for the ServiceAccount, the cluster CA and the namespace."""
    token = plane.kubectl("create", "token", account, "-n", NAMESPACE, "--duration=2h").stdout
    return pods.write_service_account(
        root / account, token.strip(), plane.ca_cert.read_bytes(), NAMESPACE
    )


def api_server(plane: ControlPlane) -> ApiServer:
    """The API server as a Pod finds it; its serving certificate covers 127.0.0.1."""
    address = urlsplit(plane.server)
    assert address.hostname and address.port
    return ApiServer(address.hostname, address.port)


def run_flags(
    plane: ControlPlane, workload: dict[str, Any], accounts: Path, name: str
) -> list[str]:
    spec = pods.pod_spec(workload)
    return pods.run_args(
        spec,
        name=name,
        api_server=api_server(plane),
        service_account_dir=service_account_dir(plane, accounts, spec["serviceAccountName"]),
        field_values={"metadata.name": name, "metadata.namespace": NAMESPACE},
    )


def run_to_completion(plane: ControlPlane, job: dict[str, Any], accounts: Path) -> None:
    """The Job's container, run once in the foreground, as its Pod would be."""
    name = f"{job['metadata']['name']}-e2e"
    result = pods.podman("run", "--rm", *run_flags(plane, job, accounts, name))
    assert result.returncode == 0, f"{name} failed: {result.stdout}{result.stderr}"


def start(plane: ControlPlane, deployment: dict[str, Any], accounts: Path) -> None:
    """One replica of the Deployment's Pod, detached."""
    name = CONTAINERS[deployment["metadata"]["name"]]
    result = pods.podman("run", "--detach", *run_flags(plane, deployment, accounts, name))
    assert result.returncode == 0, f"podman run {name}: {result.stderr}"


def logs(name: str) -> str:
    result = pods.podman("logs", "--tail", "30", name)
    return result.stdout + result.stderr


def probe_url(container: dict[str, Any], probe: str) -> str:
    """The URL a kubelet would GET for the container's probe, on this host's network."""
    get_action = container[probe]["httpGet"]
    port = pods.container_port(container, get_action["port"])
    scheme = get_action.get("scheme", "HTTP").lower()
    return f"{scheme}://127.0.0.1:{port}{get_action['path']}"


def kubelet_context() -> ssl.SSLContext:
    """A kubelet's HTTPS probe does not verify the certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wait_probe(deployment: dict[str, Any], probe: str) -> None:
    container = pods.only_container(pods.pod_spec(deployment))
    url = probe_url(container, probe)
    name = CONTAINERS[deployment["metadata"]["name"]]
    deadline = time.monotonic() + READY_TIMEOUT
    while not http_ok(url, context=kubelet_context()):
        running = pods.podman("inspect", "--format", "{{.State.Running}}", name)
        if running.stdout.strip() != "true" or time.monotonic() > deadline:
            pytest.fail(f"{name}: {url} never answered 200; its log:\n{logs(name)}")
        time.sleep(0.3)


# --------------------------------------------------------------------------- the image alone


LEAN_CHECK = """
import importlib.util, json, shutil
print(json.dumps({
    "modules": [m for m in ("pip", "setuptools", "pytest", "hypothesis", "mypy", "ruff",
                            "httpx", "tests", "Cython") if importlib.util.find_spec(m)],
    "programs": [p for p in ("gcc", "cc", "c++", "make", "pip", "pip3", "hadolint", "go",
                             "kubectl", "kube-apiserver", "etcd") if shutil.which(p)],
}))
"""


def test_the_image_holds_no_compiler_tests_or_development_packages(image: str) -> None:
    result = pods.podman(
        "run", "--rm", *pods.ULIMITS, "--network=none", "--read-only", "--user", "65532:65532",
        "--entrypoint", "python3", image, "-c", LEAN_CHECK,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"modules": [], "programs": []}
    version = pods.podman("run", "--rm", *pods.ULIMITS, "--network=none", image, "--help")
    assert version.returncode == 0 and "webhook" in version.stdout, version.stderr
    # Not root even where a Pod sets no runAsUser.
    user = pods.podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout
    assert user.strip() == "65532:65532"


# --------------------------------------------------------------------------- the translation


def test_the_webhook_pod_spec_becomes_these_podman_flags(manifests: list[dict[str, Any]]) -> None:
    spec = pods.pod_spec(find(manifests, "Deployment", WEBHOOK))
    args = pods.run_args(
        spec,
        name="w",
        api_server=ApiServer("127.0.0.1", 6443),
        service_account_dir=Path("/sa"),
        field_values={},
    )
    flags = " ".join(args)
    for expected in (
        "--user 65532:65532",
        "--read-only --read-only-tmpfs=false",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--memory 256m",
        "--tmpfs /run/pkiwarden/certs:rw,nosuid,nodev,mode=0777,size=1m",
        f"--volume /sa:{pods.SERVICE_ACCOUNT_DIR}:ro",
        "--env KUBERNETES_SERVICE_HOST=127.0.0.1 --env KUBERNETES_SERVICE_PORT=6443",
    ):
        assert expected in flags
    container = pods.only_container(spec)
    assert args[-len(container["args"]) - 1 :] == [container["image"], *container["args"]]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"volumes": [{"name": "certs", "hostPath": {"path": "/"}}]}, "only emptyDir"),
        ({"securityContext": {"runAsNonRoot": True}}, "runAsNonRoot"),
        ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, "seccompProfile"),
        ({"initContainers": [{"name": "x"}]}, "exactly one container"),
    ],
)
def test_what_cannot_be_reproduced_is_refused(
    manifests: list[dict[str, Any]], change: dict[str, Any], complaint: str
) -> None:
    spec = {**pods.pod_spec(find(manifests, "Deployment", WEBHOOK)), **change}
    with pytest.raises(pods.UnsupportedPodSpecError, match=complaint):
        pods.run_args(
            spec,
            name="w",
            api_server=ApiServer("127.0.0.1", 6443),
            service_account_dir=Path("/sa"),
            field_values={},
        )


# --------------------------------------------------------------------------- as deployed


@pytest.mark.parametrize("deployment", [WEBHOOK, ISSUER])
def test_each_container_runs_as_its_deployment_says(cluster: Cluster, deployment: str) -> None:
    """What the kernel says about the process, not only what podman was told."""
    name = CONTAINERS[deployment]
    container = container_of(cluster.manifests, deployment)
    inspected = json.loads(pods.podman("inspect", name).stdout)[0]
    assert inspected["Args"] == container["args"]
    assert inspected["HostConfig"]["ReadonlyRootfs"] is True
    status = pods.podman("exec", name, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split()[0] == "65532" and fields["Gid"].split()[0] == "65532"
    assert fields["CapEff"].strip() == "0" * 16
    assert fields["CapBnd"].strip() == "0" * 16
    assert fields["NoNewPrivs"].strip() == "1"
    # cgroup v2, else v1: the limit the kernel enforces.
    read_limit = "cat /sys/fs/cgroup/memory.max || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    limit = pods.podman("exec", name, "sh", "-c", f"({read_limit}) 2>/dev/null").stdout
    mebibytes = int(container["resources"]["limits"]["memory"].removesuffix("Mi"))
    assert int(limit) == mebibytes * 2**20
    env = pods.podman("exec", name, "env").stdout
    assert "KUBECONFIG" not in env
    assert pods.podman("exec", name, "touch", "/opt/pkiwarden/x").returncode != 0


@pytest.mark.parametrize(
    ("deployment", "probe"),
    [
        (WEBHOOK, "readinessProbe"),
        (WEBHOOK, "livenessProbe"),
        (ISSUER, "readinessProbe"),
        (ISSUER, "livenessProbe"),
    ],
)
def test_probes_answer_as_the_deployments_ask(
    cluster: Cluster, deployment: str, probe: str
) -> None:
    container = container_of(cluster.manifests, deployment)
    url = probe_url(container, probe)
    assert http_ok(url, context=kubelet_context()), url
    if deployment == WEBHOOK:
        assert url.startswith("https://")


def test_the_webhook_serves_a_certificate_for_its_service(cluster: Cluster) -> None:
    """Verified as the API server verifies it: against the caBundle, for the Service's name."""
    bundle = ca_bundle(cluster.plane)
    assert bundle is not None
    context = ssl.create_default_context(cadata=bundle.decode())
    container = container_of(cluster.manifests, WEBHOOK)
    port = pods.container_port(container, "https")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=f"{WEBHOOK}.{NAMESPACE}.svc") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    names = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert f"{WEBHOOK}.{NAMESPACE}.svc" in names.value.get_values_for_type(x509.DNSName)
    # The one the webhook stored in its Secret, as the Deployment's replicas share it.
    stored = secret_data(cluster.plane, NAMESPACE, "pkiwarden-webhook-tls")["tls.crt"]
    served = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    assert stored.startswith(served)


def test_the_registration_leads_to_the_container(cluster: Cluster) -> None:
    registration = get(cluster.plane, "validatingwebhookconfiguration", "", REGISTRATION)
    assert registration is not None
    shipped = find(cluster.manifests, "ValidatingWebhookConfiguration", REGISTRATION)
    for webhook, as_shipped in zip(registration["webhooks"], shipped["webhooks"], strict=True):
        client = {k: v for k, v in webhook["clientConfig"].items() if k != "caBundle"}
        assert client == as_shipped["clientConfig"]


# --------------------------------------------------------------------------- the README's story


def test_the_bad_pki_is_denied_by_the_containerised_webhook(cluster: Cluster) -> None:
    result = cluster.plane.kubectl("apply", "-f", str(EXAMPLES / "app1.yaml"), check=False)
    assert result.returncode != 0
    assert TYPO_DENIAL in one_line(result.stderr), result.stderr
    # Counted by the container, so no other webhook answered.
    port = pods.container_port(container_of(cluster.manifests, WEBHOOK), "https")
    token = metrics_reader_token(cluster.plane)
    scrape = urllib.request.Request(
        f"https://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(scrape, context=kubelet_context(), timeout=5) as response:
        metrics = response.read().decode()
    denied = [
        line
        for line in metrics.splitlines()
        if line.startswith("pkiwarden_admission_requests_total{") and 'allowed="false"' in line
    ]
    assert denied and float(denied[0].rsplit(" ", 1)[1]) >= 1, metrics


@pytest.fixture(scope="module")
def app2(cluster: Cluster) -> dict[str, Any]:
    """deploy/examples/app2.yaml applied and its Pki Ready."""
    cluster.plane.kubectl("apply", "-f", str(EXAMPLES / "app2.yaml"))
    return wait_ready(cluster.plane, "app2", "app2-pki")


def test_the_good_pki_is_issued_by_the_containerised_issuer(
    cluster: Cluster, app2: dict[str, Any]
) -> None:
    data = secret_data(cluster.plane, "app2", "app2-pki-tls")
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    ca = x509.load_pem_x509_certificate(
        secret_data(cluster.plane, NAMESPACE, "pkiwarden-ca")["tls.crt"]
    )
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "app2.app2.svc",
        "app2.app2.svc.cluster.local",
    ]
    lease = get(cluster.plane, "lease", NAMESPACE, ISSUER)
    assert lease is not None and lease["spec"]["holderIdentity"] == CONTAINERS[ISSUER]


def test_the_policy_change_reaches_kubectl_describe_pod(
    cluster: Cluster, app2: dict[str, Any]
) -> None:
    plane = cluster.plane
    pod = eventually(
        lambda: deployment_pod(plane, "app2", "app2"),
        READY_TIMEOUT,
        "the Deployment's ReplicaSet to create app2's Pod",
    )
    tightened = '[{"op":"replace","path":"/spec/allowedServiceNames","value":["app1"]}]'
    try:
        plane.kubectl("patch", "pkipolicy", "app-teams", "--type=json", "-p", tightened)
        plane.kubectl("delete", "secret", "app2-pki-tls", "-n", "app2")
        eventually(
            lambda: warning_events(plane, "app2", "Pod", "NotAllowed"),
            READY_TIMEOUT,
            "a Warning on the app2 Pod",
        )
        described = one_line(plane.kubectl("describe", "pod", pod, "-n", "app2").stdout)
        assert "Warning NotAllowed" in described
        assert "pkiwarden-issuer" in described
        assert 'spec.serviceName: "app2" in Pki app2-pki is not allowed' in described
    finally:
        plane.kubectl("apply", "-f", str(EXAMPLES / "policy.yaml"))


def test_the_containers_survived_the_story(cluster: Cluster) -> None:
    """Nothing crashed on the read-only root filesystem or under the memory limit."""
    for name in CONTAINERS.values():
        state = json.loads(pods.podman("inspect", name).stdout)[0]["State"]
        assert state["Running"] is True, logs(name)
        assert state["OOMKilled"] is False
