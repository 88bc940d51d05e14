"""``gsmon demo``: the whole system on one machine, with nothing to configure.

Starts a hub (on free loopback ports), a standalone agent with the built-in
psutil probes publishing to it (with their default thresholds, so levels and
colours show from the start, and rates from the first frame), and ``gsmon
watch`` on the whole tree in this terminal -- the full-screen attention view,
the hub's own ``_hub`` subtree collapsed; plain frames with ``--plain`` or
off a terminal -- until ``q``, Ctrl-C or ``--duration-s``; then stops both
children. The hub's alarm store and the agent's outbox live in a temporary
folder removed at the end: a demo never mixes its alarms into (or locks) the
state of a real hub or agent on the same machine, and each demo starts
fresh. Every
piece is the real thing, run the way an operator runs it, only wired together
for you. The children get no ``GSMON_*`` variables: the demo's hub has no
keys, whatever the operator's client settings say.

A child that fails -- before its ready line or later, while the view runs --
ends the demo with exit status 1 and the last lines the child wrote to stderr
(the reason: a traceback, a configuration error), which a reader thread keeps
for each child, bounded to the last :data:`STDERR_TAIL_LINES` lines. The
children are :mod:`gsmon.common.children`'s, stopped (SIGTERM, then SIGKILL)
and reaped however the demo ends.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any, Final

from gsmon.common.children import Child, ChildFailedError, Children, gsmon_argv
from gsmon.common.views import add_view_flags

__all__ = ["STDERR_TAIL_LINES", "ChildFailedError", "add_parser", "run"]

STDERR_TAIL_LINES: Final = 20


def add_parser(subparsers: Any, name: str, summary: str) -> None:
    parser = subparsers.add_parser(name, help=summary, description=summary)
    parser.add_argument("--refresh-s", type=float, default=0.5, help="seconds between redraws (default 0.5)")
    parser.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")
    add_view_flags(parser)
    parser.set_defaults(handler=run)


def _start(children: Children, what: str, *args: str) -> Child:
    """``gsmon ARGS`` as a child named ``what``, without the operator's ``GSMON_*`` variables."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GSMON_")}
    return children.start(what, gsmon_argv(*args), env=env, tail_lines=STDERR_TAIL_LINES)


def run(args: argparse.Namespace) -> int:
    from gsmon.common import views
    from gsmon.common.client_settings import ClientSettings

    with tempfile.TemporaryDirectory(prefix="gsmon-demo-") as state, Children() as children:
        hub = _start(
            children,
            "hub",
            "hub",
            "--agents",
            "tcp://127.0.0.1:0",
            "--subscribers",
            "tcp://127.0.0.1:0",
            "--query",
            "tcp://127.0.0.1:0",
            "--state-dir",
            os.path.join(state, "hub"),
            "--log-level",
            "WARNING",
        )
        endpoints = _ready(hub)
        agent_state = os.path.join(state, "agent")
        _ready(
            _start(
                children,
                "agent",
                "agent",
                "--hub",
                endpoints["agents"],
                "--state-dir",
                agent_state,
                "--log-level",
                "WARNING",
            )
        )
        watch_args = argparse.Namespace(
            prefix="",
            timeout_s=5.0,
            refresh_s=args.refresh_s,
            duration_s=args.duration_s,
            no_colour=args.no_colour,
            plain=args.plain,
        )
        # A child that fails ends the view with ChildFailedError, Ctrl-C with KeyboardInterrupt: both are
        # gsmon.common.cli.main's to report (status 1 with the child's last lines; 0), once the children stop.
        return views.run_watch(
            watch_args,
            given=(ClientSettings(endpoints["query"], None, None, "gsmon demo"), None),
            check_children=children.check,
        )


def _ready(child: Child, timeout_s: float = 20.0) -> dict[str, str]:
    """The child's ready-line fields; :class:`ChildFailedError` ("the hub did not start") without one."""
    try:
        return child.ready(timeout_s)
    except ChildFailedError:
        raise child.failure("did not start") from None
