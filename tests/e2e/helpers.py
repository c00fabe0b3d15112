"""Helpers for the end-to-end tests: polling, object bodies, reading what the API server holds.

Fixtures live in ``conftest.py``; every test module takes its helpers from
here and never from another test module. Processes are started through
:mod:`pkiwarden.local` (``webhook_process``, ``issuer_process``), the same
code the demo and ``pkiwarden local up`` use.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from issuer.runtime.events.recorder import COMPONENT
from issuer.runtime.settings import Settings
from pkiwarden.local import issuer_process
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import LocalIssuer
from pkiwarden.local.node_teardown import KUBELET
from pkiwarden.why.plugin import with_plugin
from shared.certificates import serial_hex
from shared.kube.client import EVENTS, PKI_POLICIES, PKIS, PODS, ApiError, Kube

T = TypeVar("T")
TIMEOUT = 30.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --------------------------------------------------------------------------- waiting


def eventually(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    every: float = 0.2,
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``.

    ``explain`` adds what the cluster said to the failure (Pod states, Events,
    component logs), so a timeout on a machine nobody can log into still names
    its cause.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            told = f"\n{explain()}" if explain is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{told}", pytrace=False)
        time.sleep(every)


# --------------------------------------------------------------------------- namespaces


def delete_namespace(plane: ControlPlane, name: str) -> None:
    """Delete a test namespace, its Pkis first, without waiting for it to go.

    Pkis left in a Terminating namespace would keep the next module's issuer
    busy re-checking them until the namespace is gone.
    """
    plane.kubectl("delete", "pkis", "--all", "-n", name, "--wait=false", check=False)
    plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def create_namespace(plane: ControlPlane, name: str) -> str:
    """Create a namespace and wait for its ``default`` ServiceAccount, which Pods need."""
    plane.kubectl("create", "namespace", name)
    eventually(
        lambda: (
            plane.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode
            == 0
        ),
        10,
        f"the controller-manager to create ServiceAccount {name}/default",
    )
    return name


@contextmanager
def policed_namespace(
    plane: ControlPlane, kube: Kube, name: str, services: list[str], policy: str | None = None
) -> Iterator[str]:
    """A namespace whose PkiPolicy (``e2e-<name>`` unless named) allows ``services``.

    Both are deleted afterwards, the policy first, so no issuer keeps judging
    Pkis of a namespace on its way out against it.
    """
    policy = policy or f"e2e-{name}"
    plane.kubectl("create", "namespace", name)
    kube.create(PKI_POLICIES.path(), policy_body(policy, name, services))
    try:
        yield name
    finally:
        plane.kubectl("delete", "pkipolicy", policy, "--ignore-not-found")
        delete_namespace(plane, name)


# --------------------------------------------------------------------------- object bodies


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "registry.invalid/app:1", **fields}


def volume(secret: str) -> dict[str, Any]:
    """Pod spec fields mounting ``secret`` as a volume."""
    return {"volumes": [{"name": "tls", "secret": {"secretName": secret}}]}


def policy_body(name: str, namespace: str, services: list[str]) -> dict[str, Any]:
    """A PkiPolicy ``name`` allowing ``services`` in ``namespace`` with the default DNS names."""
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "PkiPolicy",
        "metadata": {"name": name},
        "spec": {"namespaces": [namespace], "allowedServiceNames": services},
    }


def web_policy(namespace: str, services: list[str]) -> dict[str, Any]:
    """A PkiPolicy named after ``namespace`` that also allows ``*.<namespace>.example.test``."""
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


def web_pki(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    """A Pki for service "web" with its one in-cluster DNS name, ``spec`` overriding."""
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serviceName": "web", "dnsNames": [f"web.{namespace}.svc"], **spec},
    }


# --------------------------------------------------------------------------- processes


@contextmanager
def running_issuer(plane: ControlPlane, settings: Settings, name: str) -> Iterator[LocalIssuer]:
    """An issuer process named ``name``, ready on entry and stopped on exit."""
    running = issuer_process.start(plane, settings, name=name)
    try:
        yield running
    finally:
        issuer_process.stop(plane, running)


def why(plane: ControlPlane, kubeconfig: Path, *args: str) -> tuple[int, str]:
    """``kubectl pkiwarden why ARGS`` as ``kubeconfig``'s user runs it: (exit status, output).

    The pinned kubectl first on PATH, the plugin installed with pkiwarden after it.
    """
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PATH": f"{plane.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        ["kubectl", "pkiwarden", "why", *args],
        env=with_plugin(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def live_processes() -> Iterator[tuple[int, list[str], bytes]]:
    """(pid, /proc/PID/stat fields from the state on, raw cmdline) of every readable process.

    The command name in ``stat`` may hold spaces and parentheses, so the fields
    are split after its last ``)``; a process that exits mid-scan is passed over.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        yield int(entry.name), fields, cmdline


# --------------------------------------------------------------------------- through the client


def create_pod(kube: Kube, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Create a Pod, as a controller would: again while its namespace has no ServiceAccount yet.

    The ServiceAccount admission plugin refuses Pods until the controller-manager
    has created the namespace's ``default`` ServiceAccount, a moment after the
    namespace itself.
    """
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container()], **spec},
    }

    def attempt() -> dict[str, Any] | None:
        try:
            return kube.create(PODS.path(namespace), body)
        except ApiError as error:
            if 'serviceaccount "default" not found' in str(error):
                return None
            raise

    return eventually(attempt, 60, f"the ServiceAccount default in {namespace}")


def pods_story(plane: ControlPlane, namespace: str, kubelet_grep: str = "") -> str:
    """Why Pods of ``namespace`` are not running: their description and the kubelet's words.

    ``kubelet_grep`` picks the kubelet log lines worth showing (the last 40 that
    contain it); the whole log stays in the instance directory.
    """
    described = plane.kubectl("describe", "pods", "-n", namespace, check=False)
    told = [f"--- kubectl describe pods -n {namespace}", described.stdout + described.stderr]
    if kubelet_grep:
        log = procs.log_path(plane.dir, KUBELET)
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        picked = [line for line in lines if kubelet_grep in line][-40:]
        told += [f"--- kubelet log lines with {kubelet_grep!r}", "\n".join(picked)]
    return "\n".join(told)


def exists(kube: Kube, path: str) -> bool:
    """Whether the object at ``path`` exists (NotFound: no; any other error raised)."""
    try:
        kube.get(path)
    except ApiError as error:
        if error.not_found:
            return False
        raise
    return True


def create_pki(kube: Kube, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return kube.create(PKIS.path(namespace), body)


def events_on(kube: Kube, obj: dict[str, Any], reason: str | None = None) -> list[dict[str, Any]]:
    """pkiwarden's Events whose involvedObject is ``obj`` (by uid), optionally of one reason.

    Others' Events on the same object (the scheduler's ``FailedScheduling`` on
    every Pod, since no node exists) are left out.
    """
    metadata = obj["metadata"]
    selector = f"involvedObject.uid={metadata['uid']}"
    if reason:
        selector += f",reason={reason}"
    page = kube.get(EVENTS.path(metadata["namespace"]), params={"fieldSelector": selector})
    return [
        event
        for event in page.get("items") or []
        if (event.get("source") or {}).get("component") == COMPONENT
    ]


def ready(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """The Pki if its Ready condition is True, else None (a probe for :func:`eventually`)."""
    pki = kube.get(PKIS.path(namespace, name))
    return pki if condition(pki).get("status") == "True" else None


# --------------------------------------------------------------------------- through kubectl


def apply(plane: ControlPlane, obj: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", input=json.dumps(obj))


def get(plane: ControlPlane, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    result = plane.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def condition(obj: dict[str, Any] | None, kind: str = "Ready") -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def wait_ready(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    plane.kubectl(
        "wait", "--for=condition=Ready", f"--timeout={TIMEOUT:.0f}s", "-n", namespace, f"pki/{name}"
    )
    obj = get(plane, "pki", namespace, name)
    assert obj is not None
    return obj


def wait_reason(
    plane: ControlPlane, namespace: str, name: str, status: str, reason: str
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(plane, "pki", namespace, name)
        ready = condition(obj)
        return obj if (ready.get("status"), ready.get("reason")) == (status, reason) else None

    return eventually(probe, TIMEOUT, f"pki {namespace}/{name} Ready={status} {reason}")


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
    return serial_hex(
        leaf({k: base64.b64decode(v) for k, v in secret["data"].items()}).serial_number
    )


# --------------------------------------------------------------------------- issuer processes


METRICS_RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac" / "metrics.yaml"


def metrics_reader_token(plane: ControlPlane, account: str = "metrics-scraper") -> str:
    """A token of a ServiceAccount bound to pkiwarden-metrics-reader, as Prometheus would hold.

    Applies deploy/rbac/metrics.yaml (the reader role and the processes' review
    grants) so a control plane without the rest of deploy/ has them too.
    """
    plane.kubectl("apply", "-f", str(METRICS_RBAC))
    plane.kubectl("create", "serviceaccount", account, "-n", "default", check=False)
    plane.kubectl(
        "create", "clusterrolebinding", f"{account}-pkiwarden-metrics",
        "--clusterrole=pkiwarden-metrics-reader", f"--serviceaccount=default:{account}",
        check=False,
    )  # fmt: skip
    token = plane.kubectl("create", "token", account, "-n", "default", "--duration=2h")
    return token.stdout.strip()


def scrape(issuer: LocalIssuer) -> Samples:
    """Every sample of the issuer's ``/metrics``, keyed by name and labels."""
    with urllib.request.urlopen(f"{issuer.health_url}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, metric: str, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def log_size(plane: ControlPlane, name: str) -> int:
    """Where the log of process ``name`` ends now: pass to :func:`json_log` to read on from."""
    log = procs.log_path(plane.dir, name)
    return log.stat().st_size if log.exists() else 0


def json_log(plane: ControlPlane, name: str, since: int = 0) -> list[dict[str, Any]]:
    """The JSON log lines of process ``name`` from byte offset ``since`` on."""
    with procs.log_path(plane.dir, name).open("rb") as log:
        log.seek(since)
        text = log.read().decode("utf-8", "replace")
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def assert_running(plane: ControlPlane, name: str) -> None:
    """Fail with the end of its log if process ``name`` is no longer running."""
    record = procs.read(plane.dir, name)
    if record is None or not procs.is_running(record):
        pytest.fail(f"{name} exited:\n{procs.tail(procs.log_path(plane.dir, name))}")


def kill_9(plane: ControlPlane, name: str) -> None:
    """SIGKILL process ``name`` (a crash: no clean-up runs) and wait until it is gone."""
    record = procs.read(plane.dir, name)
    assert record is not None, f"no process {name} recorded"
    os.killpg(record.pid, signal.SIGKILL)
    eventually(lambda: not procs.is_running(record), 10, f"{name} to die")


TYPO_DENIAL = (
    'admission webhook "pkis.pkiwarden.dev" denied the request: spec.serviceName: "appp1" is not'
    ' allowed in namespace "app1" (allowed by PkiPolicy "app-teams": app1, app2);'
    ' did you mean "app1"?'
)


def one_line(text: str) -> str:
    """kubectl wraps long messages; compare them with white space folded."""
    return " ".join(text.split())
