"""``gsmon demo``: the whole system on one machine, with nothing to configure.

Starts a hub (on free loopback ports), a standalone agent with the built-in
psutil probes publishing to it, and ``gsmon watch`` on the whole tree in this
terminal until Ctrl-C; then stops both children. Every piece is the real
thing, run the way an operator runs it, only wired together for you.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import IO, Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a hub, a local agent and a live view on this machine (no setup needed)"
    )
    parser.add_argument("--refresh-s", type=float, default=0.5, help="seconds between redraws (default 0.5)")
    parser.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--no-colour", action="store_true", help="no ANSI colours")
    parser.set_defaults(handler=run)


def _start(argv: list[str]) -> subprocess.Popen[str]:
    # Our own interpreter running our own CLI: no untrusted input reaches argv.
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gsmon.common.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _ready_line(child: subprocess.Popen[str], what: str, timeout_s: float = 20.0) -> str:
    stream: IO[str] | None = child.stdout
    assert stream is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if line.startswith("READY"):
            return line.strip()
        if not line and child.poll() is not None:
            break
    raise RuntimeError(f"the {what} did not start (exit status {child.poll()})")


def _stop(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if child.stdout is not None:
        child.stdout.close()


def run(args: argparse.Namespace) -> int:
    from gsmon.common import views

    children: list[subprocess.Popen[str]] = []
    try:
        hub = _start(
            [
                "hub",
                "--agents",
                "tcp://127.0.0.1:0",
                "--subscribers",
                "tcp://127.0.0.1:0",
                "--query",
                "tcp://127.0.0.1:0",
                "--log-level",
                "WARNING",
            ]
        )
        children.append(hub)
        endpoints = dict(part.split("=", 1) for part in _ready_line(hub, "hub").split()[1:])
        agent = _start(["agent", "--hub", endpoints["agents"], "--log-level", "WARNING"])
        children.append(agent)
        _ready_line(agent, "agent")
        watch_args = argparse.Namespace(
            prefix="",
            hub=endpoints["query"],
            timeout_s=5.0,
            refresh_s=args.refresh_s,
            duration_s=args.duration_s,
            no_colour=args.no_colour,
            key=None,
            hub_key=None,
        )
        return views.run_watch(watch_args)
    except RuntimeError as error:
        print(f"gsmon demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            _stop(child)
