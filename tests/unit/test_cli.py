"""The ``pkiwarden`` entry point: --version, and a description for every command."""

import argparse
from collections.abc import Iterator

import pytest

from pkiwarden.cli import build_parser, main, version


def _commands(
    parser: argparse.ArgumentParser, prefix: str = "pkiwarden"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from _commands(sub, f"{prefix} {name}")


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"pkiwarden {version()}\n"
    assert version()[0].isdigit()


def test_every_command_says_what_it_does() -> None:
    commands = dict(_commands(build_parser()))
    assert {"pkiwarden lint", "pkiwarden local up", "pkiwarden webhook serve"} <= set(commands)
    assert [name for name, sub in commands.items() if not sub.description] == []
