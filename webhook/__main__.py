"""``python -m webhook serve|certs``: the webhook's commands without the rest of the CLI.

The local control plane starts the webhook this way, so the process does not
depend on other command groups being importable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from webhook.cli import register


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pkiwarden")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(["webhook", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
