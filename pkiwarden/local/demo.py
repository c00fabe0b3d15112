"""``make demo``: the seed's story, told with real commands and their real output.

A local control plane with a controller-manager and a scheduler; pkiwarden
installed from ``deploy/`` as shipped, the webhook reached through its
Service, both processes under their own ServiceAccount tokens; then:

1. a Pki with a typo is denied at ``kubectl apply``, with the suggestion;
2. a correct Pki becomes a Ready certificate Secret;
3. a run-time failure (the policy tightened after admission) reaches
   ``kubectl describe pod`` of the Pod that mounts the Secret, and
   ``kubectl pkiwarden why`` walks from that Pod to the policy and the fix;
4. the fix makes the Pki Ready again, and ``why`` says so.

Every command shown is run; every output shown is what it printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pkiwarden.local import controlplane, install, issuer_process, webhook_process
from pkiwarden.local.controlplane import ControlPlane
from pkiwarden.why.plugin import path_line, with_plugin

DEMO_DIR = controlplane.REPO_ROOT / ".local" / "demo"
EXAMPLES = "deploy/examples"
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text: str) -> None:
    print(f"\n{BOLD}{text}{RESET}", flush=True)


def run(cp: ControlPlane, command: str, *, expect: int = 0, show_status: bool = False) -> str:
    """Show ``command``, run it in a shell and show its output; stop unless it exits ``expect``.

    ``show_status`` shows the exit status too, where it is part of the answer.

    The pinned kubectl is first on PATH, and the ``kubectl-pkiwarden`` plugin
    installed with pkiwarden (a venv's ``bin`` is not on PATH unless it is
    activated) right after it, so ``kubectl pkiwarden why`` runs as a user's would.
    """
    print(f"{DIM}${RESET} {command}", flush=True)
    env = {
        **with_plugin(os.environ),
        "KUBECONFIG": str(cp.kubeconfig),
    }
    env["PATH"] = f"{cp.bin_dir}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=controlplane.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = (result.stdout + result.stderr).rstrip()
    if output:
        print(output, flush=True)
    if show_status:
        print(f"{DIM}(exit status {result.returncode}){RESET}", flush=True)
    if result.returncode != expect:
        raise SystemExit(f"demo stopped: `{command}` exited {result.returncode}, expected {expect}")
    return output


def wait_until(what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo stopped: {what} did not happen within {timeout:.0f} s")
        time.sleep(0.5)


def warning_events(cp: ControlPlane, namespace: str, kind: str, reason: str) -> int:
    selector = f"involvedObject.kind={kind},reason={reason},type=Warning"
    listed = cp.kubectl(
        "get", "events", "-n", namespace, "--field-selector", selector, "-o", "json"
    )
    return len(json.loads(listed.stdout)["items"])


def deployment_pod(cp: ControlPlane, namespace: str, app: str) -> str | None:
    """The name of a Pod the Deployment's ReplicaSet created (label ``app``), if any yet."""
    listed = cp.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "name")
    names = listed.stdout.split()
    return names[0].removeprefix("pod/") if names else None


def shown_kubectl(cp: ControlPlane) -> Callable[..., str]:
    """A kubectl that shows each command and its output, for :func:`install.install`."""
    return lambda *args: run(cp, "kubectl " + shlex.join(args))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pkiwarden.local.demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=DEMO_DIR, help="control plane directory")
    args = parser.parse_args(argv)
    if controlplane.running(args.dir) is not None:
        say(
            f"A demo is already running in {args.dir}: stopping its processes and removing"
            f" {args.dir} (its cluster and every object in it), so the story starts afresh.\n"
            "To keep a cluster, run the demo with --dir elsewhere, or use"
            " `pkiwarden local up --dir DIR`: the demo removes only its own directory ..."
        )
        controlplane.down(args.dir)
    say(
        "Starting a local control plane: etcd, kube-apiserver, kube-controller-manager and\n"
        "kube-scheduler on loopback, RBAC on; no kubelet, so Pods stay Pending ..."
    )
    cp = controlplane.up(args.dir)
    print(f"API server at {cp.server}; Service network {cp.service_cidr} (on loopback)")

    say(
        "Installing pkiwarden as shipped (the dev overlay adds a self-signed CA), onboarding\n"
        "the application namespaces app1 and app2:"
    )
    install.install(cp, tenants=["app1", "app2"], kubectl=shown_kubectl(cp))
    say("The webhook is registered through its Service, which has a ClusterIP:")
    run(
        cp,
        "kubectl get validatingwebhookconfiguration pkiwarden"
        " -o jsonpath='{.webhooks[0].clientConfig.service}{\"\\n\"}'",
    )
    run(cp, "kubectl get service pkiwarden-webhook -n pkiwarden-system")
    say(
        "With no kubelet, this machine runs the two Deployments' containers: their arguments,\n"
        "their ServiceAccounts' tokens; the webhook listens on the Service's ClusterIP and port:"
    )
    identities = install.identities(cp)
    webhook = webhook_process.start_deployed(cp, identities.webhook)
    print(
        f"webhook: {shlex.join(webhook.argv[3:])}\n  ready at {webhook.url}, certificate for"
        f" {webhook.server_name}, as system:serviceaccount:pkiwarden-system:pkiwarden-webhook"
    )
    issuer = issuer_process.start_deployed(cp, identities)
    print(
        f"issuer: {shlex.join(issuer.argv[3:])}\n  ready,"
        " as system:serviceaccount:pkiwarden-system:pkiwarden-issuer"
    )
    run(cp, "kubectl get pods -n pkiwarden-system")

    say("The platform team allows app1 and app2 to ask for certificates:")
    run(cp, f"kubectl apply -f {EXAMPLES}/policy.yaml")

    say("1. Team app1 applies a Pki with a typo in serviceName; the API server refuses it:")
    run(cp, f"kubectl apply -f {EXAMPLES}/app1.yaml", expect=1)

    say("2. Team app2 applies a correct Pki and a Deployment that mounts its Secret:")
    run(cp, f"kubectl apply -f {EXAMPLES}/app2.yaml")
    wait_until(
        "the Deployment's ReplicaSet to create app2's Pod",
        lambda: bool(deployment_pod(cp, "app2", "app2")),
    )
    pod = deployment_pod(cp, "app2", "app2")
    run(cp, "kubectl get pods -n app2")
    run(cp, "kubectl wait --for=condition=Ready pki/app2-pki -n app2 --timeout=60s")
    run(cp, "kubectl get pki -A")
    run(
        cp,
        "kubectl get secret app2-pki-tls -n app2 -o jsonpath='{.data.tls\\.crt}' | base64 -d"
        " | openssl x509 -noout -subject -ext subjectAltName -issuer -enddate",
    )

    say("3. The platform team tightens the policy; app2's Secret is lost and must be re-issued:")
    run(
        cp,
        "kubectl patch pkipolicy app-teams --type=json"
        ' -p \'[{"op":"replace","path":"/spec/allowedServiceNames","value":["app1"]}]\'',
    )
    run(cp, "kubectl delete secret app2-pki-tls -n app2")
    wait_until(
        "a Warning on the app2 Pod",
        lambda: warning_events(cp, "app2", "Pod", "NotAllowed") > 0,
    )
    say("   The app2 team, who cannot read the control plane's logs, asks Kubernetes why:")
    run(cp, f"kubectl describe pod {pod} -n app2 | sed -n '/^Events:/,$p'")
    run(cp, "kubectl get pki -n app2")
    say("   ... and asks pkiwarden, from the Pod, for the cause and the fix (exit 1: not Ready):")
    run(cp, f"kubectl pkiwarden why pod/{pod} -n app2", expect=1, show_status=True)

    say("4. The policy is fixed; the issuer retries and the Pki is Ready again:")
    run(cp, f"kubectl apply -f {EXAMPLES}/policy.yaml")
    run(cp, "kubectl wait --for=condition=Ready pki/app2-pki -n app2 --timeout=90s")
    run(cp, "kubectl get pki -n app2")
    run(cp, "kubectl describe pki app2-pki -n app2 | sed -n '/^Events:/,$p'")
    run(cp, f"kubectl pkiwarden why pod/{pod} -n app2", show_status=True)

    say("Done. Poke around:")
    print(f"  export KUBECONFIG={cp.kubeconfig}")
    print(f"  {path_line(cp.bin_dir)}")
    print("  kubectl get pki,secrets -A; kubectl get events -A")
    print(f"  kubectl pkiwarden why pod/{pod} -n app2")
    stop = "make demo-down" if args.dir == DEMO_DIR else f"pkiwarden local down --dir {args.dir}"
    print(f"Stop everything with: {stop}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
