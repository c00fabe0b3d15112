"""The deployed processes load nothing of the local development tooling.

Each case runs the real entry point in a fresh interpreter with a kubeconfig
that does not exist: the command gets as far as loading its credentials (by
then the whole app or controller is imported) and stops there, so no cluster
is needed. What matters is what ``sys.modules`` holds at that point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json, runpy, sys
entry, argv = sys.argv[1], sys.argv[2:]
sys.argv = [entry, *argv]
try:
    runpy.run_module(entry, run_name="__main__")
except BaseException as error:  # the missing kubeconfig, or its SystemExit
    print(type(error).__name__, file=sys.stderr)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_modules(entry: str, argv: list[str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, entry, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules: list[str] = json.loads(result.stdout.splitlines()[-1])
    return modules


@pytest.mark.parametrize(
    ("entry", "argv", "product"),
    [
        ("pkiwarden.cli", ["webhook", "serve"], "webhook.serve"),
        ("webhook", ["serve"], "webhook.serve"),
        ("pkiwarden.cli", ["issuer", "run", "--health-port=-1"], "issuer.run"),
    ],
    ids=["pkiwarden webhook serve", "python -m webhook serve", "pkiwarden issuer run"],
)
def test_serving_imports_no_local_tooling(
    entry: str, argv: list[str], product: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    modules = loaded_modules(entry, [*argv, f"--kubeconfig={missing}"])
    assert product in modules, "the command did not get as far as loading the process"
    tooling = ("pkiwarden.local", "pkiwarden.release", "pkiwarden.generate")
    loaded = [name for name in modules if name.startswith(tooling)]
    assert loaded == []
    assert "pkiwarden.lint" not in modules


def test_local_up_does_load_the_local_tooling(tmp_path: Path) -> None:
    """The check above can fail: the ``local`` command group does import it."""
    modules = loaded_modules("pkiwarden.cli", ["local", "down", f"--dir={tmp_path / 'none'}"])
    assert "pkiwarden.local.controlplane" in modules


@pytest.mark.parametrize(
    ("entry", "argv"),
    [
        ("pkiwarden.cli", ["webhook", "serve"]),
        ("pkiwarden.cli", ["issuer", "run", "--health-port=-1"]),
    ],
    ids=["pkiwarden webhook serve", "pkiwarden issuer run"],
)
def test_serving_does_not_load_the_kubernetes_package(
    entry: str, argv: list[str], tmp_path: Path
) -> None:
    """Its generated API models alone are 21 MiB of each process; only a kubeconfig that
    needs an exec plugin or merging loads it (shared.kube.connection)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    timeout = ["--sync-timeout=0.1"] if "issuer" in argv else []
    modules = loaded_modules(entry, [*argv, f"--kubeconfig={kubeconfig}", *timeout])
    assert "shared.kube.connection" in modules
    assert [name for name in modules if name.split(".")[0] == "kubernetes"] == []
