"""``pkiwarden`` entry point.

Each command group lives in the package that owns it and contributes its
sub-parser through ``register(subparsers)``; this module only wires them up,
so adding a command never means editing another team's module.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# (command, module that defines register())
COMMAND_MODULES: tuple[tuple[str, str], ...] = (
    ("lint", "pkiwarden.lint"),
    ("local", "pkiwarden.local"),
    ("webhook", "webhook.cli"),
    ("issuer", "issuer.cli"),
    ("ca", "issuer.authority.cli"),
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pkiwarden",
        description="TLS certificates from a control-plane CA, with errors where teams look.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for _name, module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
