"""``pkiwarden`` entry point.

Each command group lives in the package that owns it and contributes its
sub-parser through ``register(subparsers)``; this module only wires them up.
Only the group named on the command line is imported, so ``pkiwarden
webhook serve`` and ``pkiwarden issuer run`` load nothing of the local
development tooling or the other commands.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence

from pkiwarden import completion

# (command, module that defines register())
COMMAND_MODULES: tuple[tuple[str, str], ...] = (
    ("lint", "pkiwarden.lint"),
    ("local", "pkiwarden.local.cli"),
    ("why", "pkiwarden.why.cli"),
    ("webhook", "webhook.cli"),
    ("issuer", "issuer.cli"),
    ("ca", "pkiwarden.ca.cli"),
    ("completion", "pkiwarden.completion"),
)
# What `pkiwarden webhook serve` and `pkiwarden issuer run` need beyond the
# CLI: the `server` extra, left out of a plugin-only install (pipx, uv tool).
SERVER_MODULES = frozenset({"fastapi", "uvicorn", "uvloop", "httptools", "starlette"})

Handler = Callable[[argparse.Namespace], int]


def version() -> str:
    try:
        return importlib.metadata.version("pkiwarden")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give every sub-command without a description its one-line help, so that
    ``pkiwarden X --help`` always says what X does."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            if not sub.description and helps.get(name):
                text = str(helps[name])
                sub.description = text[:1].upper() + text[1:] + "."
            _describe(sub)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command group, or of the group ``only`` alone."""
    parser = argparse.ArgumentParser(
        prog="pkiwarden",
        description="TLS certificates from a control-plane CA, with errors where teams look.",
    )
    parser.add_argument("--version", action="version", version=f"pkiwarden {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMAND_MODULES:
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        module.register(subparsers)
    _describe(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:2] == ["completion", "--complete"]:
        # The words are a partial command line: answered before argparse sees them.
        words = arguments[3:] if arguments[2:3] == ["--"] else arguments[2:]
        tree = completion.command_tree(build_parser())
        sys.stdout.write("".join(f"{word}\n" for word in completion.candidates(tree, words)))
        return 0
    named = {name for name, _module in COMMAND_MODULES}
    chosen = arguments[0] if arguments and arguments[0] in named else None
    args = build_parser(chosen).parse_args(arguments)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] not in SERVER_MODULES:
            raise
        print(
            f"pkiwarden {chosen}: needs {error.name}, which the webhook and the issuer use and"
            " a CLI-only install leaves out: install pkiwarden[server]",
            file=sys.stderr,
        )
        return 1


def kubectl_complete() -> int:
    """``kubectl_complete-pkiwarden``: kubectl runs it to complete ``kubectl pkiwarden ...``."""
    tree = completion.command_tree(build_parser())
    sys.stdout.write(completion.kubectl_answer(tree, sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
