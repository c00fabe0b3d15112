"""``make bench-rotation``: a CA rotation over 1,000 Pkis, time per phase and re-issue rate.

On a fresh local control plane, with the issuer as its own process:
1,000 ECDSA Pkis are issued, then ``pkiwarden ca rotate`` runs with
``trustPropagation`` 5s and ``reissueRate`` 50 (both flags). The phases are
timed from the PkiAuthority's status as ``kubectl get pkica -w`` shows them;
the re-issue rate is the Pkis re-issued over the Reissuing phase.

Prints figures; asserts only the correctness facts (every Pki on the new CA,
one trusted CA at the end, every serial changed).
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography import x509
from workload import open_namespace, pki_body

from issuer.runtime.settings import Settings
from pkiwarden.local import controlplane
from pkiwarden.local.issuer_process import issuer_argv, prepare
from shared.kube.client import (
    PKI_AUTHORITIES,
    PKIS,
    SECRETS,
    Kube,
)

NAMESPACE = "bench-rotation"
AUTHORITY = "default"


def _authority(kube: Kube) -> dict[str, Any]:
    return kube.get(PKI_AUTHORITIES.path(name=AUTHORITY))


def _serials(kube: Kube) -> dict[str, str]:
    listed = kube.get(SECRETS.path(NAMESPACE), params={"labelSelector": "pkiwarden.dev/pki"})
    return {
        item["metadata"]["name"]: item["metadata"]["annotations"]["pkiwarden.dev/serial-number"]
        for item in listed.get("items") or []
    }


def _signers(kube: Kube) -> set[bytes]:
    listed = kube.get(SECRETS.path(NAMESPACE), params={"labelSelector": "pkiwarden.dev/pki"})
    found = set()
    for item in listed.get("items") or []:
        leaf = x509.load_pem_x509_certificates(base64.b64decode(item["data"]["tls.crt"]))[0]
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        found.add(aki.key_identifier or b"")
    return found


def _wait_ready(kube: Kube, count: int, timeout: float = 900) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        items = kube.get(PKIS.path(NAMESPACE))["items"]
        ready = sum(
            any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (item.get("status") or {}).get("conditions") or []
            )
            for item in items
        )
        if ready >= count:
            return time.monotonic() - start
        time.sleep(1)
    raise SystemExit(f"only {ready} of {count} Pkis Ready after {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000, help="Pkis (default 1000)")
    parser.add_argument("--rate", type=int, default=50, help="reissueRate (default 50/s)")
    parser.add_argument("--propagation", default="5s", help="trustPropagation (default 5s)")
    parser.add_argument("--workers", type=int, default=Settings().workers)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pkiwarden-bench-rotation-") as tmp:
        directory = Path(tmp) / "plane"
        plane = controlplane.up(directory, die_with_caller=True)
        settings = Settings(
            health_port=0, workers=args.workers, leader_elect=False, authority=AUTHORITY
        )
        process = None
        try:
            prepare(plane, settings)
            kube = Kube.from_environment(str(plane.kubeconfig))
            kube.patch(
                PKI_AUTHORITIES.path(name=AUTHORITY),
                {
                    "spec": {
                        "rotation": {"trustPropagation": args.propagation, "reissueRate": args.rate}
                    }
                },
                "merge",
            )
            with (Path(tmp) / "issuer.log").open("ab") as log:
                process = subprocess.Popen(
                    issuer_argv(settings),
                    stdout=log,
                    stderr=log,
                    env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
                    start_new_session=True,
                )
            open_namespace(kube, NAMESPACE, ["web"])

            def create(number: int) -> None:
                body = pki_body(NAMESPACE, f"web-{number:04d}", "web")
                kube.create(PKIS.path(NAMESPACE), body)

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(create, range(args.count)))
            issued = _wait_ready(kube, args.count)
            print(f"{args.count} Pkis issued in {issued:.1f} s; {os.cpu_count()} cores")
            before = _serials(kube)
            controlplane_env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
            subprocess.run(
                controlplane.pkiwarden_argv("ca", "rotate", "--authority", AUTHORITY),
                env=controlplane_env,
                check=True,
                capture_output=True,
            )
            request = _authority(kube)["metadata"]["annotations"]["pkiwarden.dev/rotate"]
            started = time.monotonic()
            phases: list[tuple[str, float]] = [("Stable", started)]
            while time.monotonic() - started < 1800:
                status = _authority(kube).get("status") or {}
                phase = str(status.get("phase"))
                if phase != phases[-1][0]:
                    phases.append((phase, time.monotonic()))
                if phase == "Stable" and status.get("lastRotationRequest") == request:
                    break
                time.sleep(0.1)
            ended = time.monotonic()
            print(
                f"\n== rotation over {args.count} Pkis (trustPropagation {args.propagation},"
                f" reissueRate {args.rate}/s, {args.workers} workers)"
            )
            for (name, at), (_, until) in zip(phases[1:], [*phases[2:], ("", ended)], strict=True):
                if name == "Stable":
                    continue
                print(f"  {name:<12} {until - at:8.1f} s")
                if name == "Reissuing":
                    print(f"  re-issue rate {args.count / (until - at):7.1f} Pkis/s")
            print(f"  total        {ended - started:8.1f} s")
            after = _serials(kube)
            changed = sum(1 for name, value in before.items() if after.get(name) != value)
            status = _authority(kube).get("status") or {}
            if changed != args.count or len(status.get("trusted") or []) != 1:
                raise SystemExit(
                    f"re-issued {changed} of {args.count}; trust {status.get('trusted')}"
                )
            if len(_signers(kube)) != 1:
                raise SystemExit("not every Pki is signed by the new CA")
        finally:
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)
            controlplane.down(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
