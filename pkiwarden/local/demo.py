"""``make demo``: the seed's story, told with real commands and their real output.

A local control plane with a controller-manager and a scheduler, and one
node; pkiwarden installed from ``deploy/`` as shipped (through
``deploy/overlays/local``), its webhook and issuer running as Pods from its
image under their own ServiceAccounts; then:

1. a Pki with a typo is denied at ``kubectl apply``, with the suggestion;
2. a correct Pki becomes a Ready certificate Secret;
3. a run-time failure (the policy tightened after admission) reaches
   ``kubectl describe pod`` of a new Pod that mounts the Secret, next to the
   kubelet's ``FailedMount``, and ``kubectl pkiwarden why`` walks from that
   Pod to the policy and the fix;
4. the fix makes the Pki Ready again, the Pod runs, ``why`` says so, and the
   Pod's TLS server answers a handshake verified against the trust ConfigMap.

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

from pkiwarden.local import controlplane, install, node, on_node
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


def new_pod(cp: ControlPlane, namespace: str, app: str, old: str) -> str | None:
    """A Pod of the Deployment (label ``app``) other than ``old``, once the ReplicaSet made one."""
    listed = cp.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "name")
    names = [name.removeprefix("pod/") for name in listed.stdout.split()]
    return next((name for name in names if name != old), None)


def handshake(cp: ControlPlane, pod: str) -> None:
    """A TLS handshake with app2's Pod, verified against the namespace's trust ConfigMap.

    The machine reaches the Pod's address through the node's bridge.
    """
    bundle = cp.dir / "app2-ca.crt"
    trust_file = (
        bundle.relative_to(controlplane.REPO_ROOT)
        if bundle.is_relative_to(controlplane.REPO_ROOT)
        else bundle
    )
    run(
        cp,
        "kubectl get configmap pkiwarden-ca.crt -n app2 -o jsonpath='{.data.ca\\.crt}'"
        f" > {trust_file}",
    )
    run(
        cp,
        f"openssl s_client -connect $(kubectl get pod {pod} -n app2"
        " -o jsonpath='{.status.podIP}'):8443 -servername app2.app2.svc"
        f" -verify_hostname app2.app2.svc -CAfile {trust_file} -verify_return_error"
        " </dev/null 2>/dev/null | grep -E '^(subject|issuer)=|^Verify return code'",
    )


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
        "Starting a local cluster: etcd, kube-apiserver, kube-controller-manager and\n"
        "kube-scheduler, and one node (containerd, runc, the CNI bridge, a kubelet) ..."
    )
    cp = controlplane.up(args.dir, pod_subnet=node.free_pod_subnet())
    worker = node.up(cp)
    print(f"API server at {cp.server}; Service network {cp.service_cidr} (on loopback)")
    run(cp, "kubectl get nodes")

    say(
        "Putting pkiwarden's image (make image) on the node, which reaches no registry, and\n"
        "installing pkiwarden as shipped: the dev overlay (a self-signed CA), through\n"
        "deploy/overlays/local (image name, pull policy, one webhook replica) and where this\n"
        "cluster's Pods reach the API server; onboarding the namespaces app1 and app2:"
    )
    image = on_node.build_image()
    on_node.import_image(cp, worker, image)
    print(f"{image} imported into the node's containerd")
    install.install(
        cp, tenants=["app1", "app2"], kubectl=shown_kubectl(cp), overlay=on_node.write_overlay(cp)
    )
    say("The webhook and the issuer run as Pods; their readiness probes say when they serve:")
    for deployment in (install.WEBHOOK_DEPLOYMENT, install.ISSUER_DEPLOYMENT):
        run(
            cp,
            f"kubectl rollout status deployment/{deployment} -n {install.SYSTEM_NAMESPACE}"
            f" --timeout={on_node.ROLLOUT_TIMEOUT}",
        )
    wait_until(
        "the CA Job's PkiAuthority to get its CA from the issuer",
        lambda: (
            cp.kubectl(
                "get", "pkica", "default", "-o", "jsonpath={.status.phase}", check=False
            ).stdout
            == "Stable"
        ),
        timeout=120,
    )
    run(cp, f"kubectl get pods -n {install.SYSTEM_NAMESPACE} -o wide")
    run(cp, "kubectl get pkica")
    say(
        "The webhook is registered through its Service; the API server calls it at the\n"
        "Service's ready endpoint, the webhook Pod:"
    )
    run(
        cp,
        "kubectl get validatingwebhookconfiguration pkiwarden"
        " -o jsonpath='{.webhooks[0].clientConfig.service}{\"\\n\"}'",
    )
    run(cp, "kubectl get service,endpointslices -n pkiwarden-system")

    say("The platform team allows app1 and app2 to ask for certificates:")
    run(cp, f"kubectl apply -f {EXAMPLES}/policy.yaml")

    say("1. Team app1 applies a Pki with a typo in serviceName; the API server refuses it:")
    run(cp, f"kubectl apply -f {EXAMPLES}/app1.yaml", expect=1)

    say("2. Team app2 applies a correct Pki and a Deployment that mounts its Secret:")
    run(cp, f"kubectl apply -f {EXAMPLES}/app2.yaml")
    run(cp, "kubectl wait --for=condition=Ready pki/app2-pki -n app2 --timeout=90s")
    run(cp, "kubectl get pki -A")
    run(
        cp,
        "kubectl get secret app2-pki-tls -n app2 -o jsonpath='{.data.tls\\.crt}' | base64 -d"
        " | openssl x509 -noout -subject -ext subjectAltName -issuer -enddate",
    )
    run(cp, "kubectl rollout status deployment/app2 -n app2 --timeout=90s")
    running = deployment_pod(cp, "app2", "app2")
    run(cp, "kubectl get pods -n app2 -o wide")

    say("3. The platform team tightens the policy; app2's Secret is lost and must be re-issued:")
    run(
        cp,
        "kubectl patch pkipolicy app-teams --type=json"
        ' -p \'[{"op":"replace","path":"/spec/allowedServiceNames","value":["app1"]}]\'',
    )
    run(cp, "kubectl delete secret app2-pki-tls -n app2")
    say("   A new version of app2 rolls out; its new Pod cannot mount the Secret:")
    run(cp, "kubectl rollout restart deployment/app2 -n app2")
    wait_until(
        "the Deployment's ReplicaSet to create app2's new Pod",
        lambda: bool(new_pod(cp, "app2", "app2", str(running))),
    )
    pod = str(new_pod(cp, "app2", "app2", str(running)))
    wait_until(
        "the kubelet's FailedMount and pkiwarden's Warning on the new Pod",
        lambda: (
            warning_events(cp, "app2", "Pod", "NotAllowed") > 0
            and warning_events(cp, "app2", "Pod", "FailedMount") > 0
        ),
    )
    run(cp, "kubectl get pods -n app2")
    say("   The app2 team, who cannot read the control plane's logs, asks Kubernetes why:")
    run(cp, f"kubectl describe pod {pod} -n app2 | sed -n '/^Events:/,$p'")
    run(cp, "kubectl get pki -n app2")
    say("   ... and asks pkiwarden, from the Pod, for the cause and the fix (exit 1: not Ready):")
    run(cp, f"kubectl pkiwarden why pod/{pod} -n app2", expect=1, show_status=True)

    say("4. The policy is fixed; the issuer retries, the Pki is Ready and the new Pod runs:")
    run(cp, f"kubectl apply -f {EXAMPLES}/policy.yaml")
    run(cp, "kubectl wait --for=condition=Ready pki/app2-pki -n app2 --timeout=90s")
    run(cp, "kubectl get pki -n app2")
    run(cp, "kubectl describe pki app2-pki -n app2 | sed -n '/^Events:/,$p'")
    run(cp, f"kubectl wait --for=condition=Ready pod/{pod} -n app2 --timeout=90s")
    run(cp, f"kubectl get pod {pod} -n app2 -o wide")
    run(cp, f"kubectl pkiwarden why pod/{pod} -n app2", show_status=True)
    say("   The Pod serves its certificate; it verifies against app2's trust ConfigMap:")
    handshake(cp, pod)

    say("Done. Poke around:")
    print(f"  export KUBECONFIG={cp.kubeconfig}")
    print(f"  {path_line(cp.bin_dir)}")
    print("  kubectl get pods,pki,secrets -A; kubectl get events -A")
    print(f"  kubectl pkiwarden why pod/{pod} -n app2")
    stop = "make demo-down" if args.dir == DEMO_DIR else f"pkiwarden local down --dir {args.dir}"
    print(f"Stop everything with: {stop}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
