"""The ``gsmon`` command: one entry point, a table of subcommands imported only when used.

:data:`COMMANDS` maps each subcommand's name to the module that implements
it and a one-line summary, as pip's ``commands_dict`` does. ``gsmon --help``
lists the table's names and summaries and ``gsmon --version`` prints the
version without importing any of those modules (no ZeroMQ, no msgspec: a
few milliseconds); ``gsmon NAME ...`` and ``gsmon NAME --help`` import that
one module. Each command module has::

    def add_parser(subparsers, name: str, summary: str) -> None
        # subparsers.add_parser(name, help=summary, ...), its arguments, and
        # parser.set_defaults(handler=<a function of the parsed args returning the exit status>)

Errors end a command in one place, :func:`main`: a
:class:`~gsmon.common.errors.GsmonError` (every configuration, key, name,
allow-list, bind, store and hub-unavailable error is one; commands raise
them, none prints its own) prints ``gsmon NAME:
<message>`` on stderr, one line, and exits with its ``exit_status`` (2 usage
or configuration, 1 unavailable or refused); an ``OSError`` the same way
with status 1. Ctrl-C (``KeyboardInterrupt``) exits 130, except for the
long-running commands whose normal way to stop it is (``watch``, ``demo``,
``hub``, ``agent``: 0). A closed stdout (``gsmon watch | head``) exits 1
without a traceback. Unknown arguments get argparse's usage message and exit
status 2. The statuses are listed in :mod:`gsmon.common.errors`.

This module lives in ``common/`` but imports no process: the table names the
hub's and the agent's command modules as strings, imported only when their
subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gsmon.common.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, GsmonError
from gsmon.common.version import __version__

__all__ = ["COMMANDS", "CommandInfo", "build_parser", "main"]


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """One subcommand: the module that implements it, its summary, how Ctrl-C ends it.

    ``ctrl_c_stops``: Ctrl-C is this command's normal way to stop (a
    long-running view or process), so it exits 0 rather than 130.
    """

    module: str
    summary: str
    ctrl_c_stops: bool = False


COMMANDS: Final[Mapping[str, CommandInfo]] = {
    "demo": CommandInfo(
        "gsmon.common.demo",
        "run a hub, a local agent and a live view on this machine (no setup needed)",
        ctrl_c_stops=True,
    ),
    "keys": CommandInfo("gsmon.common.keys_cli", "create CURVE keys and manage the hub's allow-list"),
    "hub": CommandInfo(
        "gsmon.hub.main", "run the hub: merge agents into one tree, serve subscribers", ctrl_c_stops=True
    ),
    "agent": CommandInfo(
        "gsmon.agent.main",
        "run a standalone agent: built-in probes and user modules, published to the hub",
        ctrl_c_stops=True,
    ),
    "get": CommandInfo(
        "gsmon.common.views", "print a subtree of the hub's tree once (or check it, for a monitoring system)"
    ),
    "watch": CommandInfo(
        "gsmon.common.views", "show a subtree live, redrawn in place, until Ctrl-C", ctrl_c_stops=True
    ),
    "notify": CommandInfo(
        "gsmon.common.notify.main",
        "tell people when something goes wrong and when it is fixed (email, webhooks, chat, a command)",
        ctrl_c_stops=True,
    ),
    "forget": CommandInfo(
        "gsmon.common.commands",
        "remove a silent agent and all its points from the hub now (an administrator's command)",
    ),
    # The operator layer (issue 13): one module, gsmon.common.alarms_cli, for all of them.
    "alarms": CommandInfo(
        "gsmon.common.alarms_cli", "list the alarms that are not cleared (shelved ones too), or all of them"
    ),
    "ack": CommandInfo(
        "gsmon.common.alarms_cli",
        "acknowledge the unacked alarms under a prefix (exactly those listed), or given ids",
    ),
    "unack": CommandInfo("gsmon.common.alarms_cli", "take acknowledgements back: the alarms need attention again"),
    "clear": CommandInfo(
        "gsmon.common.alarms_cli",
        "clear alarms whatever their state, acknowledged or not (an administrator's command)",
    ),
    "shelve": CommandInfo(
        "gsmon.common.alarms_cli",
        "shelve a subtree for maintenance: still shown, but no attention and no notifications",
    ),
    "shelves": CommandInfo("gsmon.common.alarms_cli", "list the shelves in force or scheduled"),
    "unshelve": CommandInfo("gsmon.common.alarms_cli", "end a shelf now"),
    "log": CommandInfo(
        "gsmon.common.alarms_cli",
        "the hub's journal: every level change, alarm and operator action, or follow it live",
    ),
    "recorder": CommandInfo(
        "gsmon.common.recorder.main",
        "record the values of the hub's tree into a history store (SQLite or PostgreSQL)",
        ctrl_c_stops=True,
    ),
    "history": CommandInfo(
        "gsmon.common.recorder.commands",
        "values a point had: raw samples, buckets, the tree at a moment; export/import",
    ),
    "context": CommandInfo(
        "gsmon.common.recorder.commands",
        "start or stop a context (a pass) for a prefix: every row recorded under it carries its id",
    ),
    "web": CommandInfo(
        "gsmon.common.web.main",
        "serve the live tree to browsers (page, JSON API, WebSocket) and to Prometheus (/metrics)",
        ctrl_c_stops=True,
    ),
}


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``gsmon`` argument parser, with the full parsers of ``commands`` (None: every one).

    The other subcommands are there with their name and summary only (for
    ``--help``), so that their modules are not imported. :func:`main` builds
    it with just the subcommand the command line names; tools that check
    every documented command line build it whole.
    """
    parser = argparse.ArgumentParser(
        prog="gsmon",
        description="Distributed health monitor: agents publish monitor points, a hub merges them into one live tree.",
    )
    parser.add_argument("--version", action="version", version=f"gsmon {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, info in COMMANDS.items():
        if commands is None or name in commands:
            importlib.import_module(info.module).add_parser(subparsers, name, info.summary)
        else:
            subparsers.add_parser(name, help=info.summary, add_help=False)
    return parser


def _command_name(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is not an option (gsmon's own options take no value)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gsmon`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    name = _command_name(arguments)
    info = COMMANDS.get(name or "")
    parser = build_parser([name] if name is not None and info is not None else ())
    args = parser.parse_args(arguments)
    handler = getattr(args, "handler", None)
    if handler is None or name is None or info is None:
        parser.print_usage(sys.stderr)
        print("gsmon: error: a command is required (see gsmon --help)", file=sys.stderr)
        return EXIT_USAGE
    prog = f"gsmon {name}"
    try:
        status: int = handler(args)
    except BrokenPipeError:
        # The reader went away (`gsmon watch | head`): no traceback. As the
        # Python docs advise, point stdout at devnull so that the interpreter's
        # final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_UNAVAILABLE
    except GsmonError as error:
        # One line (gsmon demo's child failure alone adds the child's last stderr lines below it).
        print(f"{prog}: {error}", file=sys.stderr)
        return error.exit_status
    except OSError as error:  # the system said no: permissions, a full disk...
        where = f" ({error.filename})" if error.filename else ""
        print(f"{prog}: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        # No traceback; a one-shot answer cut short is not a success (128 + SIGINT, as shells report).
        return EXIT_OK if info.ctrl_c_stops else EXIT_INTERRUPTED
    return status


if __name__ == "__main__":
    sys.exit(main())
