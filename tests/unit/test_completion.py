"""Shell completion: candidates from the real parser, the scripts run by a real bash."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pkiwarden import cli, completion
from pkiwarden.completion import Shell

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tree() -> completion.Command:
    return completion.command_tree(cli.build_parser())


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([""], ["lint", "local", "why", "webhook", "issuer", "ca", "completion"]),
        (["w"], ["why", "webhook"]),
        (["local", ""], ["up", "down"]),
        (["completion", ""], []),
        (["why", "--ou"], ["--output"]),
        (["--v"], ["--version"]),
    ],
)
def test_candidates_follow_the_parser(
    tree: completion.Command, words: list[str], expected: list[str]
) -> None:
    assert completion.candidates(tree, words) == expected


def test_hidden_options_are_not_offered() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shown")
    parser.add_argument("--hidden", help=argparse.SUPPRESS)
    assert completion.candidates(completion.command_tree(parser), ["--"]) == ["--help", "--shown"]


def test_kubectl_answer_ends_with_cobras_directive(tree: completion.Command) -> None:
    assert completion.kubectl_answer(tree, ["w"]) == "why\nwebhook\n:4\n"
    # Nothing to offer: kubectl lets the shell complete file names.
    assert completion.kubectl_answer(tree, ["lint", "x"]) == ":0\n"


def test_bash_script_completes_through_the_installed_command() -> None:
    script = subprocess.run(
        [BIN / "pkiwarden", "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    program = (
        f"{script}\nCOMP_WORDS=(pkiwarden local ''); COMP_CWORD=2; _pkiwarden;"
        ' printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.split() == ["up", "down"]


@pytest.mark.parametrize("shell", [Shell.ZSH, Shell.FISH])
def test_zsh_and_fish_scripts_ask_the_command(shell: Shell) -> None:
    text = completion.script(shell)
    assert "pkiwarden completion --complete --" in text
    found = shutil.which(shell.value)
    if found:  # parse it with the shell itself where the machine has one
        subprocess.run([found, "-n"], input=text, text=True, check=True)


def test_completion_without_a_shell_is_an_error_not_a_traceback() -> None:
    done = subprocess.run(
        [BIN / "pkiwarden", "completion", "tcsh"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "invalid choice: 'tcsh'" in done.stderr and "Traceback" not in done.stderr


def test_kubectl_completion_executable_is_installed() -> None:
    done = subprocess.run(
        [BIN / "kubectl_complete-pkiwarden", "local", ""],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "up\ndown\n:4\n"
