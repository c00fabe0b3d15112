"""``make bench-scale``: pkiwarden in a cluster the size of a real one.

One local control plane holds 1,000 namespaces selected by PkiPolicies,
50,000 Secrets pkiwarden does not own (about 2 KiB each), 20,000 Pending Pods
(half of them mounting a pkiwarden Secret) and 10,000 Pkis. The Pkis are
created (through the webhook) while the issuer is stopped; then the issuer
starts and the run measures:

- issuer: time from process start to all Pkis Ready, Pkis/s, peak RSS, and
  the API requests of the run by verb (kube-apiserver's own counters; the
  scheduler and the controller-manager are stopped once the cluster is
  seeded, so the issuer is the only writer while it runs);
- webhook: RSS with its caches synced and full;
- one ``/metrics`` scrape of the issuer: its size and the CPU it costs;
- a restart over the Ready Pkis: time until the issuer is idle again and the
  writes it makes (target 0).

The cluster's content is kept between runs when the control plane is left
running (``--keep``): a later run finds it seeded and only replaces the Pkis.
``--scale 0.05`` runs the same at a twentieth of the size.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from issuer.controllers.authorities.inputs.spec import ROTATE_ANNOTATION
from issuer.run import LEASE_NAME
from issuer.runtime.settings import Settings
from issuer.runtime.shards import lease_name
from pkiwarden.local import controlplane
from pkiwarden.local import processes as local_processes
from pkiwarden.local import webhook_process as local_webhook
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.local.issuer_process import issuer_argv, prepare
from pkiwarden.local.readiness import free_port
from shared import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from shared.authority_schema import DEFAULT_REISSUE_RATE
from shared.kube.cache import WatchCache
from shared.kube.client import (
    EVENTS,
    LEASES,
    NAMESPACES,
    PKI_AUTHORITIES,
    PKI_POLICIES,
    PKIS,
    PODS,
    SECRETS,
    ApiError,
    Kube,
)

GROUP_LABEL = "bench.pkiwarden.dev/group"
AUTHORITY = Settings().authority
AUTHORITY_NAMESPACE = Settings().namespace  # the issuer's own: its Leases


def shard_lease(shard: int, shards: int) -> str:
    return lease_name(LEASE_NAME, shard, shards)


SEED_CONFIGMAP = "bench-scale-seed"
POLICY_GROUPS = 10
SECRET_BYTES = 2048
# etcd's default 2 GiB quota is over half full at SCALE=10 before a CA rotation writes
# every issued Secret twice more (old revisions stay until compaction); past the quota
# etcd refuses every write. A limit, not an allocation: smaller runs lose nothing.
ETCD_QUOTA_BYTES = 8 * 1024**3
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "CREATE", "UPDATE", "APPLY")


@dataclass(frozen=True)
class Size:
    namespaces: int
    secrets: int
    pods: int
    pkis: int

    @classmethod
    def scaled(cls, factor: float) -> Size:
        """Up to 1: everything in proportion. Beyond, 1,000 namespaces stay and the rest
        grows towards SCALE=10: 100,000 Pkis, 200,000 foreign Secrets, 100,000 Pods."""
        namespaces = max(1, round(1000 * min(factor, 1.0)))
        beyond = max(0.0, factor - 1.0) / 9
        return cls(
            namespaces=namespaces,
            secrets=max(namespaces, round(50_000 * min(factor, 1.0) + 150_000 * beyond)),
            pods=max(2 * namespaces, round(20_000 * min(factor, 1.0) + 80_000 * beyond)),
            pkis=max(namespaces, round(10_000 * factor)),
        )

    def mounts(self, pod_number: int) -> bool:
        """Half the Pods mount a Pki's Secret; all of them once there are as many Pods as Pkis."""
        return pod_number % 2 == 0 or self.pods >= self.pkis

    def namespace(self, number: int) -> str:
        return f"scale-{number % self.namespaces:04d}"

    def pki(self, number: int) -> tuple[str, str]:
        return self.namespace(number), f"web-{number // self.namespaces:03d}"


# --------------------------------------------------------------------------- creating


def in_parallel(what: str, count: int, work: Callable[[int], object], threads: int) -> None:
    """Run ``work(0..count-1)`` on a thread pool; print the rate. Existing objects count as made."""

    def one(number: int) -> None:
        for attempt in range(5):
            try:
                work(number)
                return
            except ApiError as error:
                if error.conflict:
                    return
                if error.status not in (429, 500, 503, 504) or attempt == 4:
                    raise
            except (urllib3.exceptions.HTTPError, OSError):
                if attempt == 4:
                    raise
            time.sleep(0.5 * (attempt + 1))

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    seconds = time.monotonic() - started
    print(f"  created {count:6d} {what:<11} in {seconds:7.1f} s ({count / seconds:6.0f}/s)")


def seed(kube: Kube, size: Size, threads: int) -> None:
    """Namespaces, policies, foreign Secrets and Pending Pods; skipped when already there."""
    marker = f"{size.namespaces}/{size.secrets}/{size.pods}"
    path = f"{NAMESPACES.path()}/default/configmaps"
    try:
        found = kube.get(f"{path}/{SEED_CONFIGMAP}")
        if (found.get("data") or {}).get("size") == marker:
            print(f"  seed found ({marker} namespaces/Secrets/Pods): reused")
            return
    except ApiError as error:
        if not error.not_found:
            raise
    in_parallel(
        "namespaces",
        size.namespaces,
        lambda n: kube.create(
            NAMESPACES.path(),
            {
                "metadata": {
                    "name": size.namespace(n),
                    "labels": {GROUP_LABEL: f"g{n % POLICY_GROUPS}"},
                }
            },
        ),
        threads,
    )
    for group in range(POLICY_GROUPS):
        try:
            kube.create(
                PKI_POLICIES.path(),
                {
                    "apiVersion": "pkiwarden.dev/v1alpha1",
                    "kind": "PkiPolicy",
                    "metadata": {"name": f"bench-scale-g{group}"},
                    "spec": {
                        "namespaceSelector": {"matchLabels": {GROUP_LABEL: f"g{group}"}},
                        "allowedServiceNames": ["web"],
                    },
                },
            )
        except ApiError as error:
            if not error.conflict:
                raise
    filler = os.urandom(SECRET_BYTES * 3 // 4)
    import base64  # noqa: PLC0415 - only for the filler

    data = base64.b64encode(filler).decode()
    in_parallel(
        "Secrets",
        size.secrets,
        lambda n: kube.create(
            SECRETS.path(size.namespace(n)),
            {
                "metadata": {"name": f"app-{n // size.namespaces:04d}", "labels": {"app": "other"}},
                "type": "Opaque",
                "data": {"blob": data},
            },
        ),
        threads,
    )
    in_parallel("Pods", size.pods, lambda n: kube.create(*pod(size, n)), threads)
    body = {"metadata": {"name": SEED_CONFIGMAP}, "data": {"size": marker}}
    try:
        kube.create(path, body)
    except ApiError as error:
        if not error.conflict:
            raise
        kube.replace(f"{path}/{SEED_CONFIGMAP}", body)


def pod(size: Size, number: int) -> tuple[str, dict[str, object]]:
    """A Pod that stays Pending (no scheduler runs); even numbers mount a Pki's Secret."""
    namespace = size.namespace(number)
    index = number // size.namespaces
    volumes: list[dict[str, object]] = []
    mounts: list[dict[str, object]] = []
    if size.mounts(number):
        # The Pod's own namespace's Pki: every Pki once, then round again.
        mounted = (index // 2) * size.namespaces + number % size.namespaces
        _, pki_name = size.pki(number if size.pods >= size.pkis else mounted)
        volumes = [{"name": "tls", "secret": {"secretName": f"{pki_name}-tls"}}]
        mounts = [{"name": "tls", "mountPath": "/tls", "readOnly": True}]
    body = {
        "metadata": {"name": f"pod-{index:04d}", "namespace": namespace},
        "spec": {
            "containers": [
                {"name": "app", "image": "registry.invalid/app:1", "volumeMounts": mounts}
            ],
            "volumes": volumes,
        },
    }
    return PODS.path(namespace), body


def clear_pkis(kube: Kube, size: Size, threads: int) -> None:
    """Remove a previous run's Pkis, their Secrets and Events (the seed stays)."""

    def clear(number: int) -> None:
        namespace = size.namespace(number)
        kube.delete(PKIS.path(namespace))
        kube.delete(
            SECRETS.path(namespace),
            params={"labelSelector": f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"},
        )
        kube.delete(EVENTS.path(namespace))

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(clear, range(size.namespaces)))
    deadline = time.monotonic() + 300
    while kube.get(PKIS.path(), params={"limit": 1}).get("items"):
        if time.monotonic() > deadline:
            raise SystemExit("previous Pkis were not deleted within 300 s")
        time.sleep(1)
    print(
        f"  previous run's Pkis, Secrets and Events removed in {time.monotonic() - started:.1f} s"
    )


def pki_body(namespace: str, name: str) -> dict[str, object]:
    return {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serviceName": "web", "privateKey": {"algorithm": "ECDSA", "size": 256}},
    }


def create_pkis(kube: Kube, size: Size, threads: int) -> None:
    def create(number: int) -> None:
        namespace, name = size.pki(number)
        kube.create(PKIS.path(namespace), pki_body(namespace, name))

    in_parallel("Pkis", size.pkis, create, threads)


# --------------------------------------------------------------------------- measuring


class ApiServerCounters:
    """kube-apiserver's ``apiserver_request_total``, read from its /metrics as admin."""

    _LINE = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$", re.MULTILINE)
    _LABEL = re.compile(r'(\w+)="([^"]*)"')

    def __init__(self, plane: ControlPlane) -> None:
        context = ssl.create_default_context(cafile=str(plane.ca_cert))
        context.load_cert_chain(str(plane.admin_cert), str(plane.admin_key))
        self._pool = urllib3.PoolManager(ssl_context=context, retries=False)
        self._url = f"{plane.server}/metrics"

    def read(self) -> Counter[tuple[str, str]]:
        """(verb, resource[/subresource]) -> requests so far; ("429", "") counts refusals."""
        text = self._pool.request("GET", self._url, timeout=30).data.decode()
        counts: Counter[tuple[str, str]] = Counter()
        for labels_text, value in self._LINE.findall(text):
            labels = dict(self._LABEL.findall(labels_text))
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            counts[(labels.get("verb", ""), resource)] += int(float(value))
            if labels.get("code") == "429":
                counts[("429", "")] += int(float(value))
        return counts


def delta(
    after: Counter[tuple[str, str]], before: Counter[tuple[str, str]]
) -> Counter[tuple[str, str]]:
    return Counter({key: after[key] - before[key] for key in after if after[key] > before[key]})


def writes(counts: Counter[tuple[str, str]]) -> int:
    """Writes of the run; Leases are left out: the API server renews its own every 10 s."""
    return sum(
        n for (verb, resource), n in counts.items() if verb in WRITE_VERBS and resource != "leases"
    )


def print_requests(counts: Counter[tuple[str, str]], pkis: int, indent: str = "    ") -> None:
    interesting = {
        key: n
        for key, n in counts.items()
        if key[1].split("/")[0] in ("pkis", "secrets", "pods", "events", "namespaces")
        or (key[0] in WRITE_VERBS and key[1] != "leases")
    }
    for (verb, resource), n in sorted(interesting.items(), key=lambda item: -item[1]):
        print(f"{indent}{verb:<8} {resource:<14} {n:8d}  ({n / pkis:5.2f} per Pki)")
    others = sum(counts.values()) - sum(interesting.values())
    print(f"{indent}(other resources, the API server's own included: {others})")


class Process:
    """A process by pid: peak and current RSS, CPU seconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def _status(self, field: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def peak_rss_mib(self) -> float:
        return self._status("VmHWM")

    def rss_mib(self) -> float:
        return self._status("VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Issuer:
    def __init__(
        self,
        plane: ControlPlane,
        workers: int,
        log_path: Path,
        *,
        traced: bool = False,
        shards: int = 1,
    ) -> None:
        self.plane = plane
        self.workers = workers
        self.shards = shards
        self.log_path = log_path
        self.traced = traced
        self.trace_path = log_path.with_name("issuer-trace.txt")
        self.port = 0
        self.popen: subprocess.Popen[bytes] | None = None
        self.http = urllib3.PoolManager(retries=False)

    def start(self) -> Process:
        self.port = free_port()
        settings = Settings(
            health_port=self.port,
            workers=self.workers,
            leader_elect=self.shards > 1,  # a shard is worked by its Lease's holder
            shards=self.shards,
        )
        argv = issuer_argv(settings)
        env = {**os.environ, **self.plane.env()}
        if self.traced:  # the same command line, under tracemalloc (see traced_issuer.py)
            argv = [sys.executable, str(Path(__file__).with_name("traced_issuer.py")), *argv[3:]]
            env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
            env["PKIWARDEN_TRACE_OUT"] = str(self.trace_path)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                argv, stdout=log, stderr=log, env=env, start_new_session=True
            )
        return Process(self.popen.pid)

    def print_trace(self, top: int = 25) -> None:
        """The traced issuer's live allocations by source line, largest first."""
        if not self.traced or self.popen is None:
            return
        self.trace_path.unlink(missing_ok=True)
        os.kill(self.popen.pid, signal.SIGUSR1)
        wait_for("the allocation trace", self.trace_path.exists, 120)
        time.sleep(1.0)  # written in one go; let it finish
        print("  live allocations by source line (tracemalloc):")
        for line in self.trace_path.read_text().splitlines()[: top + 1]:
            print(f"    {line}")

    def scrape(self, gzipped: bool = False) -> bytes | None:
        """The /metrics body as sent: gzipped when asked, as Prometheus asks."""
        try:
            response = self.http.request(
                "GET",
                f"http://127.0.0.1:{self.port}/metrics",
                headers={"Accept-Encoding": "gzip" if gzipped else "identity"},
                decode_content=not gzipped,
                timeout=30,
            )
        except urllib3.exceptions.HTTPError:
            return None
        return response.data if response.status == 200 else None

    def idle(self, pkis: int) -> bool:
        """Every Pki reconciled since the start and the queue empty."""
        text = self.scrape()
        if text is None:
            return False
        reconciled = metric_sum(text, "controller_runtime_reconcile_total")
        return reconciled >= pkis and metric_sum(text, "workqueue_depth") == 0

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


def print_control_plane(plane: ControlPlane, when: str) -> None:
    """What kube-apiserver and etcd hold at this size: RSS now and at peak, etcd's files."""
    parts = []
    for name in (controlplane.APISERVER, controlplane.ETCD):
        record = local_processes.read(plane.dir, name)
        if record is not None and local_processes.is_running(record):
            process = Process(record.pid)
            parts.append(f"{name} {process.rss_mib():.0f} MiB (peak {process.peak_rss_mib():.0f})")
    data = sum(f.stat().st_size for f in (plane.dir / "etcd-data").rglob("*") if f.is_file())
    print(f"  {when}: {', '.join(parts)}; etcd data {data / 1024**2:.0f} MiB")


def metric_sum(text: bytes, name: str) -> float:
    total = 0.0
    prefix = name.encode()
    for line in text.splitlines():
        if line.startswith(prefix) and line[len(prefix) : len(prefix) + 1] in (b"{", b" "):
            total += float(line.rsplit(b" ", 1)[1])
    return total


class ReadyCounter:
    """Watches every Pki; notes when each is first seen Ready=True."""

    def __init__(self, kube: Kube) -> None:
        self.ready: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.cache = WatchCache(kube, PKIS, on_change=self._seen).start()

    def _seen(self, kind: str, pki: dict[str, object]) -> None:
        metadata = pki.get("metadata") or {}
        status = pki.get("status") or {}
        assert isinstance(metadata, dict) and isinstance(status, dict)
        conditions = status.get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            key = (str(metadata.get("namespace")), str(metadata.get("name")))
            with self._lock:
                self.ready.setdefault(key, time.monotonic())

    def count(self) -> int:
        with self._lock:
            return len(self.ready)

    def last(self) -> float:
        with self._lock:
            return max(self.ready.values())


def wait_for(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


VEGETA = "vegeta-v12.13.0/vegeta"  # built by make bench-webhook into the shared tool cache
PACED_RATE = 500
PACED_SECONDS = 10


def vegeta_binary() -> Path | None:
    root = os.environ.get("PKIWARDEN_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pkiwarden"
    )
    binary = Path(root) / VEGETA
    return binary if binary.is_file() else None


def paced_latency(webhook: local_webhook.LocalWebhook, size: Size, scratch: Path) -> None:
    """The webhook at 500 reviews/s, open loop, with its caches full (dry-run Pki creates)."""
    binary = vegeta_binary()
    if binary is None:
        print(f"  webhook paced latency      skipped: no {VEGETA} (make bench-webhook builds it)")
        return
    scratch.mkdir(parents=True, exist_ok=True)
    targets = []
    for number in range(100):  # spread over the namespaces: each review reads their caches
        namespace = size.namespace(number * 7)
        body = scratch / f"review-{number}.json"
        body.write_text(json.dumps(admission_review(namespace, f"paced-{number}")))
        targets.append(
            f"POST {webhook.url}/validate?timeout=5s\nContent-Type: application/json\n@{body}\n"
        )
    (scratch / "targets").write_text("\n".join(targets))

    def attack(seconds: int) -> dict[str, Any]:
        results = scratch / "results.bin"
        with results.open("wb") as out:
            subprocess.run(
                [
                    str(binary),
                    "attack",
                    f"-rate={PACED_RATE}/1s",
                    f"-duration={seconds}s",
                    f"-targets={scratch / 'targets'}",
                    f"-root-certs={webhook.settings.cert_file}",
                    "-http2=false",
                    "-keepalive=true",
                    "-timeout=10s",
                ],
                stdout=out,
                check=True,
            )
        report = subprocess.run(
            [str(binary), "report", "-type=json", str(results)], capture_output=True, check=True
        )
        parsed: dict[str, Any] = json.loads(report.stdout)
        return parsed

    attack(3)  # warm-up
    server = Process(webhook.pid)
    cpu = server.cpu_seconds()
    report = attack(PACED_SECONDS)
    cpu = server.cpu_seconds() - cpu
    ms = {key: value / 1e6 for key, value in report["latencies"].items()}
    errors = int(report["requests"]) - int((report.get("status_codes") or {}).get("200", 0))
    print(
        f"  webhook at {PACED_RATE}/s, caches full  p50 {ms['50th']:.2f} ms, p90 {ms['90th']:.2f},"
        f" p99 {ms['99th']:.2f}, max {ms['max']:.2f}; errors {errors}"
    )
    per_review = cpu * 1000 / max(1, int(report["requests"]))
    print(f"  webhook CPU per review     {per_review:8.3f} ms (the machine's load aside)")


def admission_review(namespace: str, name: str) -> dict[str, Any]:
    pki = {
        "apiVersion": "pkiwarden.dev/v1alpha1",
        "kind": "Pki",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serviceName": "web"},
    }
    kind = {"group": "pkiwarden.dev", "version": "v1alpha1", "kind": "Pki"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"bench-scale-{namespace}-{name}",
            "kind": kind,
            "resource": {"group": "pkiwarden.dev", "version": "v1alpha1", "resource": "pkis"},
            "requestKind": kind,
            "operation": "CREATE",
            "name": name,
            "namespace": namespace,
            "userInfo": {"username": "bench", "groups": ["system:masters"]},
            "object": pki,
            "oldObject": None,
            "dryRun": True,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


# The idle issuer still runs the authority controller's pass over every Pki once a
# second: what that costs is read over this long.
IDLE_SECONDS = 10.0
ROTATION_PROPAGATION = "5s"  # trust spread to every namespace: not what is measured here


def rotate_all(  # noqa: PLR0917 - the rotation's knobs
    plane: ControlPlane,
    kube: Kube,
    counters: ApiServerCounters,
    pkis: int,
    rate: int | None,
    limit: float | None = None,
) -> bool:
    """``pkiwarden ca rotate`` over every Pki: each phase's duration, the re-issue rate, 429s.

    ``rate`` None: the PkiAuthority's default reissueRate. ``limit``: watch Reissuing
    for at most this long, then print the pace reached and what the phase would take at
    it, marked as a projection, and return False: the rotation goes on unwatched.
    """
    path = PKI_AUTHORITIES.path(name=AUTHORITY)
    rotation: dict[str, object] = {"trustPropagation": ROTATION_PROPAGATION}
    rotation["reissueRate"] = rate if rate is not None else DEFAULT_REISSUE_RATE
    kube.patch(path, {"spec": {"rotation": rotation}}, "merge")
    before = counters.read()
    subprocess.run(
        controlplane.pkiwarden_argv("ca", "rotate", "--authority", AUTHORITY),
        env={**os.environ, **plane.env()},
        check=True,
        capture_output=True,
    )
    request = (kube.get(path).get("metadata") or {}).get("annotations", {}).get(ROTATE_ANNOTATION)
    started = time.monotonic()
    phases: list[tuple[str, float]] = [("Stable", started)]
    pending: list[tuple[float, int]] = []  # (when, pendingPkis) while Reissuing
    projected = ""
    while True:
        status = kube.get(path).get("status") or {}
        phase = str(status.get("phase"))
        now = time.monotonic()
        if phase != phases[-1][0]:
            phases.append((phase, now))
        if phase == "Stable" and status.get("lastRotationRequest") == request:
            break
        if phase == "Reissuing" and isinstance(status.get("pendingPkis"), int):
            pending.append((now, int(status["pendingPkis"])))
            if limit is not None and now - phases[-1][1] > limit:
                projected = reissue_projection(pending, pkis)
                break
        if now - started > 6 * 3600:
            raise SystemExit(f"rotation not done in 6 h; phase {phase}")
        time.sleep(0.5)
    ended = time.monotonic()
    spent = delta(counters.read(), before)
    print(
        f"\n== CA rotation of all {pkis} Pkis (reissueRate {rotation['reissueRate']}/s,"
        f" trustPropagation {ROTATION_PROPAGATION})"
    )
    for (name, at), (_, until) in zip(phases[1:], [*phases[2:], ("", ended)], strict=True):
        if name == "Stable":
            continue
        if name == "Reissuing" and projected:
            print(f"  {name:<24} {until - at:8.1f} s watched, then stopped watching")
            print(projected)
            continue
        print(f"  {name:<24} {until - at:8.1f} s")
        if name == "Reissuing":
            print(f"  re-issued per second     {pkis / max(until - at, 0.001):8.1f}")
    print(f"  {'watched' if projected else 'total':<24} {ended - started:8.1f} s")
    print(f"  refused with 429         {spent[('429', '')]:8d}")
    written = writes(spent) / (pkis - pending[-1][1] if projected else pkis)
    print(f"  writes per re-issued Pki {written:8.2f}")
    print_control_plane(plane, "after the rotation")
    return not projected


def reissue_projection(pending: list[tuple[float, int]], pkis: int) -> str:
    """The pace over the watched part of Reissuing, and the whole phase at that pace."""
    (first_at, first), (last_at, last) = pending[0], pending[-1]
    pace = (first - last) / max(last_at - first_at, 0.001)
    whole = f"{pkis / pace:8.1f} s" if pace > 0 else "       ? s"
    return (
        f"  re-issued per second     {pace:8.1f} (over the {last_at - first_at:.0f} s watched:"
        f" {first - last} of {pkis})\n"
        f"  Reissuing, projected     {whole} ({pkis} at that pace; a projection, not a run)"
    )


def median(values: Iterable[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


# --------------------------------------------------------------------------- the run


def run(  # noqa: PLR0917 - the run's knobs, from the command line
    plane: ControlPlane,
    size: Size,
    workers: int,
    threads: int,
    log_path: Path,
    traced: bool,
    rotation_rates: tuple[int | None, ...] = (),
    rotation_limit: float | None = None,
    shards: int = 1,
) -> None:
    kube = Kube.from_environment(str(plane.kubeconfig), pool_size=threads)
    # The webhook first: a kept cluster still registers the last run's, which
    # refuses every PkiAuthority until one answers again.
    # registered: PkiPolicies and Pkis go through it. Its first lists over a kept
    # cluster of 100,000 Pkis take two minutes, past the local tooling's wait.
    local_webhook.stop(plane)  # a kept run's, if it was left running
    webhook = local_webhook.start(plane, wait=False)
    local_webhook.wait_ready(plane, webhook, timeout=900)
    prepare(plane, Settings())
    try:
        print(f"\n== seeding: {size}")
        seed(kube, size, threads)
        clear_pkis(kube, size, threads)
        create_pkis(kube, size, threads)
        print(f"  webhook RSS after the Pki creates: {Process(webhook.pid).rss_mib():.1f} MiB")
        # The scheduler would keep trying to place the Pending Pods (a status
        # PATCH and an Event each) and the controller-manager writes into every
        # namespace: stopped, the API server's counters are the issuer's alone.
        for component in (controlplane.SCHEDULER, controlplane.CONTROLLER_MANAGER):
            print(f"  {controlplane.stop_process(plane.dir, component)}")
        measure(
            plane,
            kube,
            size,
            workers=workers,
            log_path=log_path,
            webhook=webhook,
            traced=traced,
            rotation_rates=rotation_rates,
            rotation_limit=rotation_limit,
            threads=threads,
        )
        if shards > 1:
            sharded_restart(plane, kube, size, workers, log_path, shards)
    finally:
        local_webhook.stop(plane)


def measure(
    plane: ControlPlane,
    kube: Kube,
    size: Size,
    *,
    workers: int,
    log_path: Path,
    webhook: local_webhook.LocalWebhook,
    traced: bool = False,
    rotation_rates: tuple[int | None, ...] = (),
    rotation_limit: float | None = None,
    threads: int = 32,
) -> None:
    """The issuer's burst, one scrape, the restart, create-to-Ready while it runs, rotations."""
    counters = ApiServerCounters(plane)
    issuer = Issuer(plane, workers, log_path, traced=traced)
    ready = ReadyCounter(kube)
    ready.cache.wait_synced(120)
    print(f"\n== issuer: {size.pkis} Pkis to issue, {workers} workers, {os.cpu_count()} cores")
    before = counters.read()
    started = time.monotonic()
    process = issuer.start()
    try:
        wait_for("all Pkis Ready", lambda: ready.count() >= size.pkis, 3600)
        all_ready = ready.last() - started
        time.sleep(2.0)  # let the last status writes and Events land
        burst = delta(counters.read(), before)
        print(f"  all {size.pkis} Ready after     {all_ready:8.1f} s (from process start)")
        waits = sorted(at - started for at in ready.ready.values())
        print(
            f"  Ready after start p50/p99  {waits[len(waits) // 2]:8.1f} / "
            f"{waits[min(len(waits) - 1, len(waits) * 99 // 100)]:.1f} s"
            " (the Pkis were created before the issuer started)"
        )
        print(f"  throughput                 {size.pkis / all_ready:8.1f} Pkis/s")
        print(f"  issuer peak RSS            {process.peak_rss_mib():8.1f} MiB")
        print("  API requests of the run (all clients; the issuer is the only writer):")
        print_requests(burst, size.pkis)
        print(f"  writes per Pki             {writes(burst) / size.pkis:8.2f}")
        print(f"  webhook RSS, caches full   {Process(webhook.pid).rss_mib():8.1f} MiB")
        print_control_plane(plane, "after the burst")
        paced_latency(webhook, size, log_path.parent / "vegeta")

        print("\n== one /metrics scrape of the issuer (idle)")
        time.sleep(1.0)
        for how, gzipped in (("plain", False), ("gzip", True)):
            costs, body = [], b""
            for _ in range(5):
                cpu = process.cpu_seconds()
                body = issuer.scrape(gzipped) or b""
                costs.append(process.cpu_seconds() - cpu)
                time.sleep(0.5)
            print(
                f"  {how}: {len(body) / 1024:8.1f} KiB, issuer CPU per scrape {median(costs):.3f} s"
                f" (median of 5; first {costs[0]:.3f}, worst {max(costs):.3f})"
            )

        print("\n== restart of the issuer over the Ready Pkis")
        issuer.stop()
        before = counters.read()
        started = time.monotonic()
        process = issuer.start()
        wait_for("idle after restart", lambda: issuer.idle(size.pkis), 600)
        settled = time.monotonic() - started
        time.sleep(3.0)
        restart = delta(counters.read(), before)
        print(f"  idle after                 {settled:8.1f} s (every Pki reconciled, queue empty)")
        print(f"  writes                     {writes(restart):8d}")
        print(f"  issuer peak RSS            {process.peak_rss_mib():8.1f} MiB")
        print_requests(restart, size.pkis)
        print(f"  issuer settled RSS         {process.rss_mib():8.1f} MiB")
        cpu = process.cpu_seconds()
        time.sleep(IDLE_SECONDS)
        idle_cpu = (process.cpu_seconds() - cpu) / IDLE_SECONDS
        print(f"  issuer CPU while idle      {idle_cpu:8.3f} s per s (over {IDLE_SECONDS:.0f} s)")
        print_control_plane(plane, "after the restart")
        issuer.print_trace()
        late = create_to_ready(kube, ready, size, threads)
        for rate in rotation_rates:
            if not rotate_all(plane, kube, counters, size.pkis + late, rate, rotation_limit):
                break
    finally:
        ready.cache.stop()
        issuer.stop()


# Pkis created one by one while the issuer runs over all the others: what a team applying
# one sees. Paced below the burst's rate so that each meets an idle issuer.
LATE_RATE = 10.0


def create_to_ready(kube: Kube, ready: ReadyCounter, size: Size, threads: int) -> int:
    """Create a hundredth more Pkis at LATE_RATE; print create-to-Ready p50/p99."""
    count = max(20, size.pkis // 100)
    sent: dict[tuple[str, str], float] = {}

    def create(number: int) -> None:
        namespace, name = size.namespace(number), f"late-{number // size.namespaces:03d}"
        time.sleep(max(0.0, started + number / LATE_RATE - time.monotonic()))
        sent[(namespace, name)] = time.monotonic()
        kube.create(PKIS.path(namespace), pki_body(namespace, name))

    print(f"\n== create-to-Ready: {count} more Pkis at {LATE_RATE:.0f}/s, the issuer running")
    started = time.monotonic()
    with ThreadPoolExecutor(min(threads, 8)) as pool:
        list(pool.map(create, range(count)))
    wait_for("the late Pkis Ready", lambda: all(key in ready.ready for key in sent), 600)
    waits = sorted(ready.ready[key] - at for key, at in sent.items())
    print(
        f"  create to Ready p50/p99    {waits[len(waits) // 2]:8.2f} / "
        f"{waits[min(len(waits) - 1, len(waits) * 99 // 100)]:.2f} s"
    )
    return count


def sharded_restart(  # noqa: PLR0917 - the run's knobs
    plane: ControlPlane, kube: Kube, size: Size, workers: int, log_path: Path, shards: int
) -> None:
    """``shards`` replicas with ``--shards`` over the Ready Pkis: each one's RSS and share."""
    counters = ApiServerCounters(plane)
    replicas = [
        Issuer(plane, workers, log_path.with_name(f"issuer-replica-{n}.log"), shards=shards)
        for n in range(shards)
    ]
    print(f"\n== {shards} replicas with --shards {shards}, over the Ready Pkis")
    before = counters.read()
    started = time.monotonic()
    processes = [replica.start() for replica in replicas]
    holders: set[str] = set()
    try:

        def idle() -> bool:
            texts = [replica.scrape() for replica in replicas]
            if any(text is None for text in texts):
                return False
            reconciled = sum(
                metric_sum(t or b"", "controller_runtime_reconcile_total") for t in texts
            )
            if reconciled < size.pkis or any(
                metric_sum(t or b"", "workqueue_depth") for t in texts
            ):
                return False
            holders.clear()
            for shard in range(shards):
                lease = kube.get(LEASES.path(AUTHORITY_NAMESPACE, shard_lease(shard, shards)))
                holders.add(str((lease.get("spec") or {}).get("holderIdentity") or ""))
            return len(holders - {""}) == shards  # one shard each

        wait_for(f"{shards} replicas idle, one shard each", idle, 900)
        settled = time.monotonic() - started
        time.sleep(3.0)
        spent = delta(counters.read(), before)
        print(f"  idle after                 {settled:8.1f} s (every shard held, queues empty)")
        print(f"  writes                     {writes(spent):8d}")
        print_requests(spent, size.pkis)
        for number, (replica, process) in enumerate(zip(replicas, processes, strict=True)):
            text = replica.scrape() or b""
            print(
                f"  replica {number}: peak RSS {process.peak_rss_mib():6.1f} MiB, settled"
                f" {process.rss_mib():6.1f} MiB, Pkis reconciled"
                f" {metric_sum(text, 'controller_runtime_reconcile_total'):8.0f}"
            )
    finally:
        for replica in replicas:
            replica.stop()


def restart_only(
    plane: ControlPlane, size: Size, workers: int, log_path: Path, shards: int
) -> None:
    """One replica's restart, then ``shards`` replicas', over a kept run's Ready Pkis."""
    kube = Kube.from_environment(str(plane.kubeconfig))
    ready = ReadyCounter(kube)
    ready.cache.wait_synced(600)
    try:
        if ready.count() < size.pkis:
            raise SystemExit(
                f"{ready.count()} Pkis Ready, not {size.pkis}: run without --restart-only"
            )
    finally:
        ready.cache.stop()
    counters = ApiServerCounters(plane)
    issuer = Issuer(plane, workers, log_path)
    before = counters.read()
    started = time.monotonic()
    process = issuer.start()
    try:
        print("\n== one replica, over the Ready Pkis")
        wait_for("idle after restart", lambda: issuer.idle(size.pkis), 900)
        print(f"  idle after                 {time.monotonic() - started:8.1f} s")
        time.sleep(3.0)
        print(f"  writes                     {writes(delta(counters.read(), before)):8d}")
        print(f"  peak RSS {process.peak_rss_mib():6.1f} MiB, settled {process.rss_mib():6.1f} MiB")
    finally:
        issuer.stop()
    if shards > 1:
        sharded_restart(plane, kube, size, workers, log_path, shards)


def rotation_rates(text: str) -> tuple[int | None, ...]:
    """``--rotate``: "default,500" -> (None, 500)."""
    return tuple(
        None if part.strip() == "default" else int(part) for part in text.split(",") if part.strip()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size factor (default 1.0)")
    parser.add_argument("--dir", type=Path, default=Path(".local/bench-scale"))
    parser.add_argument("--keep", action="store_true", help="leave the control plane running")
    parser.add_argument("--workers", type=int, default=Settings().workers)
    parser.add_argument("--threads", type=int, default=32, help="concurrent creates")
    parser.add_argument(
        "--rotate",
        default="default,500",
        help="CA rotations of every Pki to run at the end, one per reissueRate given"
        ' ("default": the PkiAuthority\'s default; "" for none; default %(default)s)',
    )
    parser.add_argument(
        "--rotation-limit",
        type=float,
        default=None,
        help="watch a rotation's Reissuing for at most this many seconds, then print the pace"
        " and the phase's projected length and end the run (default: watch to the end)",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=3,
        help="at the end, restart as this many replicas with --shards (each one's RSS against"
        " one replica's; 1: skip; default %(default)s)",
    )
    parser.add_argument(
        "--restart-only",
        type=int,
        metavar="SHARDS",
        default=0,
        help="over a kept run's Ready Pkis (--keep), restart one replica, then SHARDS replicas"
        " with --shards SHARDS; print each one's RSS (no seeding, burst or rotation)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="run the issuer under tracemalloc; print its live allocations by line when idle",
    )
    args = parser.parse_args()
    size = Size.scaled(args.scale)
    plane = controlplane.up(args.dir, etcd_quota_bytes=ETCD_QUOTA_BYTES)
    try:
        if args.restart_only:
            restart_only(
                plane, size, args.workers, args.dir / "issuer-bench.log", args.restart_only
            )
            return 0
        run(
            plane,
            size,
            args.workers,
            args.threads,
            args.dir / "issuer-bench.log",
            args.trace,
            rotation_rates(args.rotate),
            args.rotation_limit,
            args.shards,
        )
    finally:
        if args.keep:
            print(f"\ncontrol plane left running: pkiwarden local down --dir {args.dir}")
        else:
            controlplane.down(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
