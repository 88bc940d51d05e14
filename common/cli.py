"""The ``gsmon`` command: one entry point, one subcommand per job.

Subcommands register their own arguments (``add_parser``) and import their
heavy dependencies only when they run, so ``gsmon --version`` stays instant.
Unknown arguments get argparse's usage message and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gsmon.agent import main as agent_main
from gsmon.common import commands, demo, keys_cli, views
from gsmon.common.version import __version__
from gsmon.common.web import main as web_main
from gsmon.hub import main as hub_main

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gsmon",
        description="Distributed health monitor: agents publish monitor points, a hub merges them into one live tree.",
    )
    parser.add_argument("--version", action="version", version=f"gsmon {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    demo.add_parser(subparsers)
    keys_cli.add_parser(subparsers)
    hub_main.add_parser(subparsers)
    agent_main.add_parser(subparsers)
    views.add_parsers(subparsers)
    commands.add_parser(subparsers)
    web_main.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print("gsmon: error: a command is required (see gsmon --help)", file=sys.stderr)
        return 2
    try:
        result: int = handler(args)
    except BrokenPipeError:
        # The reader went away (`gsmon watch | head`): no traceback. As the
        # Python docs advise, point stdout at devnull so that the interpreter's
        # final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
