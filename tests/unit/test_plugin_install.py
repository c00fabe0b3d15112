"""The kubectl plugin installs and runs without the webhook's server dependencies.

A CLI-only install (``pipx install pkiwarden``, ``uv tool install pkiwarden``)
gets pyproject.toml's ``dependencies`` and not the ``server`` extra. Each
plugin command is run here in a fresh interpreter in which the server
modules cannot be imported at all, as on such a laptop, and the webhook's
own command says what to install instead of a traceback.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest

from pkiwarden.cli import SERVER_MODULES
from pkiwarden.release.version import PYPROJECT

# Runs pkiwarden's entry point with every server module made unimportable.
SCRIPT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` raises ModuleNotFoundError
from pkiwarden.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:  # --help
    code = exit.code
loaded = sorted(name for name in {blocked!r} if sys.modules.get(name) is not None)
print("LOADED", loaded, file=sys.stderr)
sys.exit(code)
"""


def run_without_server(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocked=sorted(SERVER_MODULES)), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def requirement_names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower() for requirement in requirements
    }


def test_server_dependencies_are_an_extra() -> None:
    with PYPROJECT.open("rb") as file:
        project = tomllib.load(file)["project"]
    core = requirement_names(project["dependencies"])
    server = requirement_names(project["optional-dependencies"]["server"])
    assert {"fastapi", "uvicorn"} <= server
    assert not core & {"fastapi", "uvicorn", "uvloop", "httptools", "starlette"}
    scripts = project["scripts"]
    assert scripts["kubectl-pkiwarden"] == "pkiwarden.cli:main"
    assert scripts["kubectl_complete-pkiwarden"] == "pkiwarden.cli:kubectl_complete"


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["why", "--help"],
        ["lint", "--help"],
        ["ca", "--help"],
        ["completion", "bash"],
        ["completion", "--complete", "--", "w"],
    ],
)
def test_plugin_commands_run_without_server_modules(argv: list[str]) -> None:
    done = run_without_server(*argv)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stderr


def test_lint_checks_a_file_without_server_modules(tmp_path: pytest.TempPathFactory) -> None:
    manifest = tmp_path / "pki.yaml"  # type: ignore[operator]
    manifest.write_text(
        "apiVersion: pkiwarden.dev/v1alpha1\nkind: Pki\nmetadata: {name: a, namespace: b}\n"
        "spec: {serviceName: b}\n"
    )
    done = run_without_server("lint", str(manifest))
    assert "Traceback" not in done.stderr, done.stderr
    assert "LOADED []" in done.stderr


def test_webhook_serve_without_the_extra_says_what_to_install(
    tmp_path: pytest.TempPathFactory,
) -> None:
    done = run_without_server(
        "webhook", "serve", "--kubeconfig", "/nonexistent", "--cert-dir", str(tmp_path)
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "install pkiwarden[server]" in done.stderr
