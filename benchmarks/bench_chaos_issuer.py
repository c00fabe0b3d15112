"""``make bench-chaos``: kill -9 the issuer at random moments while it issues 200 certificates.

On a fresh local control plane, with a PkiPolicy and the development CA:

1. a few foreign Secrets (not pkiwarden's) whose names some Pkis ask for;
2. 200 Pkis (ECDSA, RSA and Ed25519 keys) created while the issuer runs;
3. the issuer killed with SIGKILL at random moments (seeded RNG; the seed is
   printed, ``--seed`` replays a run) and restarted each time, 20 times;
4. once the last issuer settles, the invariants crash safety promises:
   every Pki but the conflicting ones Ready, each Secret's key matching its
   certificate and its chain verifying against ``ca.crt`` (the CA's own
   certificate), status naming the Secret's serial, the conflicting Pkis
   failing with ``SecretConflict``, every foreign Secret untouched
   (resourceVersion and data), no object with more Event objects than the
   recorder's aggregation allows and no duplicated Event, and no certificate
   issued twice for one Pki (re-issues, counted from a Secret watch).

Prints the figures; exits non-zero with the broken invariants listed. Every
wait is bounded (``--timeout``) so a hang fails with a message instead of
blocking ``make bench``.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from workload import open_namespace, pki_body

from issuer.runtime.events.recorder import COMPONENT
from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane, issuer_process
from pkiwarden.local import processes as procs
from pkiwarden.local.controlplane import ControlPlane
from shared import PKI_LABEL
from shared.certificates import serial_hex
from shared.kube.client import (
    EVENTS,
    PKIS,
    SECRETS,
    ApiError,
    Kube,
)

NAMESPACE = "chaos"
SERVICE = "web"
ISSUER = "issuer"
SERIAL_ANNOTATION = "pkiwarden.dev/serial-number"
KEYS: tuple[dict[str, Any], ...] = (
    {"algorithm": "ECDSA", "size": 256},
    {"algorithm": "ECDSA", "size": 256},
    {"algorithm": "RSA", "size": 2048},  # slow keys stretch issuance, so kills land mid-way
    {"algorithm": "Ed25519"},
)
SIMILAR_MESSAGES = 10
"""The recorder's aggregation: per object, type and reason, at most this many Event objects
(distinct messages before they fold into one "combined from similar events")."""
SPAM_BURST = 25
"""The recorder's spam filter: writes per object and type one process may make at once."""
SPAM_REFILL_SECONDS = 300.0


def fail(message: str) -> SystemExit:
    return SystemExit(f"bench-chaos: {message}")


@dataclass
class Deadline:
    """One time budget for the whole run: every wait checks it and fails with what it waited for."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def wait_for(self, what: str, probe: Callable[[], bool], every: float = 0.5) -> None:
        while not probe():
            if time.monotonic() - self.start > self.seconds:
                raise fail(f"gave up after {self.seconds:.0f} s waiting for {what}")
            time.sleep(every)


class SerialWatch:
    """Every serial each of our Secrets ever carried, seen on a watch from before the first Pki.

    The issuer's log is no count of issuances: a SIGKILL can land after the
    Secret was written and before the line was logged. The API server's
    history of each Secret is.
    """

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.serials: dict[str, set[str]] = defaultdict(set)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._version = self._list()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _params(self) -> dict[str, str]:
        return {"labelSelector": PKI_LABEL}

    def _see(self, secret: Mapping[str, Any]) -> None:
        metadata = secret.get("metadata") or {}
        serial = (metadata.get("annotations") or {}).get(SERIAL_ANNOTATION)
        if serial:
            with self._lock:
                self.serials[str(metadata.get("name"))].add(str(serial))

    def _list(self) -> str:
        listed = self.kube.get(SECRETS.path(self.namespace), params=self._params())
        for item in listed.get("items") or []:
            self._see(item)
        return str(listed["metadata"]["resourceVersion"])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for event in self.kube.watch(
                    SECRETS.path(self.namespace),
                    params={**self._params(), "resourceVersion": self._version},
                    timeout_seconds=30,
                ):
                    obj = event.get("object") or {}
                    self._version = str((obj.get("metadata") or {}).get("resourceVersion"))
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._see(obj)
                    if self._stop.is_set():
                        return
            except ApiError as error:
                if not error.gone:
                    raise
                self._version = self._list()  # compacted away: what we missed is in the list
            except (urllib3.exceptions.HTTPError, OSError):
                time.sleep(0.2)

    def snapshot(self) -> dict[str, set[str]]:
        with self._lock:
            return {name: set(serials) for name, serials in self.serials.items()}

    def stop(self) -> None:
        self._stop.set()


@dataclass
class ChaosIssuer:
    """The issuer as a process the control plane records (``down`` stops it), killed at will."""

    plane: ControlPlane
    settings: Settings
    pid: int = 0
    starts: int = 0
    log_offset: int = 0

    def start(self) -> None:
        log = procs.log_path(self.plane.dir, ISSUER)
        self.log_offset = log.stat().st_size if log.exists() else 0
        # After the first start CRDs and CA are in place: restart as fast as a
        # crash-looping Pod would.
        self.pid = issuer_process.start(
            self.plane,
            self.settings,
            name=ISSUER,
            wait=False,
            with_prerequisites=self.starts == 0,
        ).pid
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed, the Lease is not released."""
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)

    def synced(self) -> bool:
        """This run has synced its caches: from here on it reconciles (and issues)."""
        with procs.log_path(self.plane.dir, ISSUER).open("rb") as log:
            log.seek(self.log_offset)
            return b'"caches synced"' in log.read()

    def alive(self) -> bool:
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return done == 0


def decode(secret: Mapping[str, Any]) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}


def public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def secret_problems(data: Mapping[str, bytes], ca: x509.Certificate, now: datetime) -> list[str]:
    """What is wrong with one issued Secret: key/certificate pair, chain, trust anchor."""
    if set(data) != {"tls.crt", "tls.key", "ca.crt"}:
        return [f"keys {sorted(data)}"]
    chain = x509.load_pem_x509_certificates(data["tls.crt"])
    key: PrivateKeyTypes = serialization.load_pem_private_key(data["tls.key"], password=None)
    problems = []
    if public_der(key.public_key()) != public_der(chain[0].public_key()):
        problems.append("tls.key does not match tls.crt")
    anchors = x509.load_pem_x509_certificates(data["ca.crt"])
    if ca not in anchors:
        problems.append("ca.crt is not the CA's certificate")
    for child, parent in zip(chain, [*chain[1:], ca], strict=True):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as error:
            problems.append(f"{child.subject.rfc4514_string()} not signed by its issuer: {error}")
    leaf = chain[0]
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        problems.append("certificate not valid now")
    return problems


def ready_reason(pki: Mapping[str, Any]) -> tuple[str, str] | None:
    generation = (pki.get("metadata") or {}).get("generation")
    for condition in (pki.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("observedGeneration") == generation:
            return str(condition.get("status")), str(condition.get("reason"))
    return None


def foreign_secret(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"team": "someone-else"}},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": f"not ours: {name}\n", "tls.key": "hands off\n"},
    }


@dataclass
class EventFigures:
    problems: list[str]
    objects: dict[str, int]  # Event objects per involved object
    writes: dict[str, int]  # creates + patches (the sum of counts) per involved object
    by_reason: Counter[str]


def event_figures(kube: Kube, processes: int, seconds: float) -> EventFigures:
    """Our Events, grouped by involvedObject uid, against the aggregation and spam limits.

    Each issuer process has its own spam buckets (they live in memory), so the
    write bound grows with the number of processes that ran.
    """
    page = kube.get(EVENTS.path(NAMESPACE), params={"fieldSelector": f"source={COMPONENT}"})
    per_key: Counter[tuple[str, str, str]] = Counter()
    per_message: Counter[tuple[str, str, str, str]] = Counter()
    per_uid: Counter[str] = Counter()
    writes: Counter[tuple[str, str]] = Counter()
    names: dict[str, str] = {}
    reasons: Counter[str] = Counter()
    for event in page.get("items") or []:
        involved = event["involvedObject"]
        uid, kind = involved["uid"], event["type"]
        names[uid] = f"{involved['kind']} {involved['name']}"
        per_uid[uid] += 1
        per_key[(uid, kind, event["reason"])] += 1
        per_message[(uid, kind, event["reason"], event["message"])] += 1
        reasons[f"{kind}/{event['reason']}"] += event.get("count") or 1
        writes[(uid, kind)] += event.get("count") or 1
    problems = [
        f"{names[uid]}: {count} {kind} {reason} Events (aggregation allows {SIMILAR_MESSAGES})"
        for (uid, kind, reason), count in per_key.items()
        if count > SIMILAR_MESSAGES
    ]
    problems += [
        f"{names[uid]}: {count} {kind} {reason} Events with one message: {message[:80]}"
        for (uid, kind, reason, message), count in per_message.items()
        if count > 1
    ]
    allowed = processes * (SPAM_BURST + seconds / SPAM_REFILL_SECONDS)
    problems += [
        f"{names[uid]}: {count} {kind} Event writes (spam filter allows {allowed:.0f})"
        for (uid, kind), count in writes.items()
        if count > allowed
    ]
    per_object_writes: Counter[str] = Counter()
    for (uid, _), count in writes.items():
        per_object_writes[names[uid]] += count
    return EventFigures(
        problems,
        {names[uid]: count for uid, count in per_uid.items()},
        dict(per_object_writes),
        reasons,
    )


def run(plane: ControlPlane, args: argparse.Namespace, rng: random.Random) -> list[str]:
    deadline = Deadline(args.timeout)
    settings = Settings(health_port=0, workers=args.workers, leader_elect=False)
    kube = Kube.from_environment(str(plane.kubeconfig))
    issuer = ChaosIssuer(plane, settings)
    issuer.start()  # applies the CRDs and bootstraps the CA first

    open_namespace(kube, NAMESPACE, [SERVICE])
    names = [f"web-{number:03d}" for number in range(args.count)]
    conflicting = sorted(rng.sample(names, args.foreign))
    foreign_before = {
        name: kube.create(SECRETS.path(NAMESPACE), foreign_secret(f"{name}-tls"))
        for name in conflicting
    }
    watch = SerialWatch(kube, NAMESPACE)

    def create(number: int) -> None:
        kube.create(
            PKIS.path(NAMESPACE),
            pki_body(NAMESPACE, names[number], SERVICE, privateKey=dict(KEYS[number % len(KEYS)])),
        )

    # Half at once, the rest in a batch per restart: every run of the issuer,
    # not just the first few, has issuances in flight when it is killed.
    first = len(names) // 2
    later = range(first, len(names))
    batches = [range(first)] + [later[i :: args.kills] for i in range(args.kills)]
    pool = ThreadPoolExecutor(8)
    list(pool.map(create, batches[0]))
    print(f"{len(names)} Pkis ({len(conflicting)} aim at foreign Secrets), {first} at once")

    for number in range(1, args.kills + 1):
        list(pool.map(create, batches[number]))
        if rng.random() < args.startup_share:
            moment = "during start-up"
            time.sleep(rng.uniform(0.0, 1.5))
        else:
            moment = "after sync"
            deadline.wait_for(f"issuer run {issuer.starts} to sync", issuer.synced, every=0.05)
            time.sleep(rng.uniform(0.0, args.max_pause))
        if not issuer.alive():
            raise fail(f"the issuer exited by itself before kill {number}")
        issuer.kill()
        issued = sum(len(s) for s in watch.snapshot().values())
        print(f"  kill {number:2d} {moment:15s}: {issued:3d} certificates issued so far")
        issuer.start()
    pool.shutdown()
    last_kill = time.monotonic()

    expected_ready = set(names) - set(conflicting)

    def settled() -> bool:
        if not issuer.alive():
            raise fail("the issuer exited by itself after the last restart")
        listed = kube.get(PKIS.path(NAMESPACE)).get("items") or []
        reasons = {item["metadata"]["name"]: ready_reason(item) for item in listed}
        return all(reasons.get(n) == ("True", "Issued") for n in expected_ready) and all(
            reasons.get(n) == ("False", "SecretConflict") for n in conflicting
        )

    deadline.wait_for("every Pki to settle after the last restart", settled, every=0.2)
    settle_seconds = time.monotonic() - last_kill
    time.sleep(2.0)  # let the watch deliver the last writes
    watch.stop()

    problems: list[str] = []
    now = datetime.now(UTC)
    ca_secret = kube.get(SECRETS.path(settings.namespace, settings.ca_secret))
    ca = x509.load_pem_x509_certificate(decode(ca_secret)["tls.crt"])
    pkis = {item["metadata"]["name"]: item for item in kube.get(PKIS.path(NAMESPACE))["items"]}
    secrets = {
        item["metadata"]["name"]: item for item in kube.get(SECRETS.path(NAMESPACE))["items"]
    }
    for name in sorted(expected_ready):
        secret = secrets.get(f"{name}-tls")
        if secret is None:
            problems.append(f"Pki {name}: Ready but no Secret")
            continue
        problems += [f"Secret {name}-tls: {p}" for p in secret_problems(decode(secret), ca, now)]
        serial = (secret["metadata"].get("annotations") or {}).get(SERIAL_ANNOTATION)
        leaf = x509.load_pem_x509_certificates(decode(secret)["tls.crt"])[0]
        if (
            serial != serial_hex(leaf.serial_number)
            or pkis[name]["status"].get("serialNumber") != serial
        ):
            problems.append(f"Pki {name}: status, annotation and certificate name other serials")
    touched = [
        f"{name}-tls"
        for name, before in foreign_before.items()
        if (after := secrets.get(f"{name}-tls")) is None
        or (after["metadata"]["resourceVersion"], after.get("data"))
        != (before["metadata"]["resourceVersion"], before.get("data"))
    ]
    problems += [f"foreign Secret {name} was modified or deleted" for name in touched]

    history = watch.snapshot()
    issuances = sum(len(serials) for serials in history.values())
    reissued = {name: len(serials) - 1 for name, serials in history.items() if len(serials) > 1}
    if reissued:
        problems.append(f"certificates issued more than once: {sorted(reissued.items())[:10]}")
    stray = sorted(set(history) - {f"{name}-tls" for name in expected_ready})
    if stray:
        problems.append(f"Secrets issued that no Ready Pki asked for: {stray[:10]}")

    events = event_figures(kube, issuer.starts, time.monotonic() - deadline.start)
    problems += events.problems
    busiest = max(events.objects.items(), key=lambda item: item[1], default=("none", 0))
    loudest = max(events.writes.items(), key=lambda item: item[1], default=("none", 0))

    print(f"\n== {len(names)} Pkis, {args.kills} SIGKILLs (seed {args.seed})")
    print(f"  settled after last kill    {settle_seconds:8.2f} s (restart included)")
    print(f"  issuer starts              {issuer.starts:8d}")
    print(f"  issuances (Secret watch)   {issuances:8d}   (needed {len(expected_ready)})")
    print(f"  re-issues                  {sum(reissued.values()):8d}")
    print(f"  Event objects, max/object  {busiest[1]:8d}   ({busiest[0]})")
    print(f"  Event writes, max/object   {loudest[1]:8d}   ({loudest[0]})")
    print(f"  Event writes by reason     {dict(sorted(events.by_reason.items()))}")
    print(f"  foreign Secrets touched    {len(touched):8d} of {len(foreign_before)}")
    print(f"  total run time             {time.monotonic() - deadline.start:8.2f} s")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="Pkis (default 200)")
    parser.add_argument("--foreign", type=int, default=5, help="foreign Secrets (default 5)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run's random choices")
    parser.add_argument(
        "--max-pause", type=float, default=3.0, help="longest run after sync, seconds"
    )
    parser.add_argument(
        "--startup-share", type=float, default=0.2, help="share of kills during start-up"
    )
    parser.add_argument("--workers", type=int, default=Settings().workers)
    parser.add_argument("--timeout", type=float, default=600.0, help="whole run, seconds")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    print(f"seed {args.seed}; machine: {os.cpu_count()} cores; issuer: {args.workers} workers")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="pkiwarden-bench-chaos-") as tmp:
        directory = Path(tmp) / "plane"
        plane = controlplane.up(directory, die_with_caller=True)
        try:
            problems = run(plane, args, rng)
        finally:
            controlplane.down(directory)
    if problems:
        print(f"\n{len(problems)} invariant(s) broken:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("\nall invariants hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
