"""``gsmon web`` and ``gsmon web passwd``: the command lines of the bridge.

::

    gsmon web --hub tcp://gs1-hub:7763 --listen 127.0.0.1:7764 --users /etc/gsmon/web-users.toml \\
              --key web.key_secret --hub-key hub.key
    gsmon web passwd alice --users /etc/gsmon/web-users.toml --role operator   # password from stdin

``gsmon web`` prints one line once it serves::

    READY url=http://127.0.0.1:7764/

(``--listen HOST:0`` picks a free port; the line has the real one), then
serves until SIGTERM or SIGINT (exit 0). It exits 1 when the hub feed fails
for good or the port is taken, 2 on bad usage or an address it cannot bind
(one line saying what is wrong, printed by :func:`gsmon.common.cli.main`). ``--hub``, ``--key``
and ``--hub-key`` are read like every client's (flags, then GSMON_HUB /
GSMON_KEY / GSMON_HUB_KEY, then the client files). The bridge's key should be
a subscriber key with ``role = "operator"`` (``gsmon keys subscriber web
--role operator``): the hub checks that role for every forwarded write, and
records the key's name as ``by`` beside the browser user.

Reads (the page, the read API, the stream) need no login when the bridge
listens on loopback; listening anywhere else makes them private (a session
required) unless ``--public-reads`` is given; ``--private-reads`` makes them
private on loopback too. ``/metrics`` never needs a login.

``--no-gc-tuning`` leaves Python's garbage collector at CPython's defaults; by default the bridge freezes
what the hub's first snapshot built and raises the thresholds (:mod:`gsmon.common.gc_tuning`).

``gsmon web passwd NAME --users FILE [--role viewer|operator|admin]`` creates
the user or changes their password (and role, when given); the password is
read from stdin (one line; typed twice, unechoed, on a terminal). The file is
written 0600 and atomically; a running bridge sees the change within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import ipaddress
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from gsmon.common import logs
from gsmon.common.errors import BindError, UnavailableError
from gsmon.common.ready import ready_line

__all__ = ["add_parser", "parse_listen", "run_passwd", "run_web"]

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:7764"
# WebSocket streams served at once (--max-streams): each holds a queue and a snapshot of what it follows, so
# without a bound a loop of connections is a denial of service; the one past it gets 503 and retries later.
DEFAULT_MAX_STREAMS = 200


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port). Raises ValueError with one line."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--listen takes HOST:PORT such as {DEFAULT_LISTEN}, got {text!r}")
    host = host.removeprefix("[").removesuffix("]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--listen: the port must be a number 0-65535, got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--listen: the port must be a number 0-65535, got {port}")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_parser(subparsers: Any, name: str = "web", summary: str = "serve the live tree to browsers") -> None:
    """Register ``gsmon web`` (and ``gsmon web passwd``) on the ``gsmon`` command's subparsers."""
    from gsmon.common.views import add_client_flags

    parser = subparsers.add_parser(name, help=summary, description=summary + ".")
    add_client_flags(parser)
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help="where to serve HTTP (default %(default)s)"
    )
    parser.add_argument(
        "--users", metavar="FILE", help="the users file (gsmon web passwd writes it); no file: read-only"
    )
    reads = parser.add_mutually_exclusive_group()
    reads.add_argument(
        "--private-reads", action="store_true", help="the page and read API need a login (never /metrics)"
    )
    reads.add_argument(
        "--public-reads", action="store_true", help="no login for reads even when listening beyond loopback"
    )
    parser.add_argument(
        "--behind-proxy",
        action="store_true",
        help="trust X-Forwarded-Proto/-Host from a reverse proxy (TLS there: Secure cookies, the public origin)",
    )
    parser.add_argument(
        "--max-series", type=int, default=100_000, help="series cap of one /metrics scrape (default 100000)"
    )
    parser.add_argument(
        "--max-streams",
        type=int,
        default=DEFAULT_MAX_STREAMS,
        help=f"WebSocket streams served at once; the next one is refused 503 (default {DEFAULT_MAX_STREAMS})",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument(
        "--no-gc-tuning",
        action="store_true",
        help="leave Python's garbage collector at CPython's defaults (default: freeze what the first snapshot "
        "built and raise the thresholds)",
    )
    parser.set_defaults(handler=run_web)
    actions = parser.add_subparsers(title="user management", metavar="ACTION")
    passwd_summary = "create a user of the web page, or change their password or role (password from stdin)"  # noqa: S105
    passwd = actions.add_parser("passwd", help=passwd_summary, description=passwd_summary + ".")
    passwd.add_argument("name", metavar="NAME", help="the user's name")
    passwd.add_argument("--users", required=True, metavar="FILE", help="the users file (created 0600 if missing)")
    passwd.add_argument(
        "--role", choices=("viewer", "operator", "admin"), help="the user's role (default: kept; new users: viewer)"
    )
    passwd.set_defaults(handler=run_passwd)


def _read_password(name: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def run_passwd(args: argparse.Namespace) -> int:
    from gsmon.common.errors import GsmonError, UsageError
    from gsmon.common.web.auth import set_user

    try:
        password = _read_password(args.name)
        user, new = set_user(args.users, args.name, password, args.role)
    except GsmonError:
        raise  # a bad name or users file: cli.main prints it (one line) with its exit status
    except ValueError as error:
        raise UsageError(f"passwd: {' '.join(str(error).split())}") from error
    print(f"{'created' if new else 'changed'} {user.name} ({user.role}) in {args.users}")
    return 0


def run_web(args: argparse.Namespace) -> int:
    """``gsmon web``: errors that end it are GsmonErrors, printed by cli.main (one line, their exit status)."""
    from gsmon.common.errors import UsageError
    from gsmon.common.views import client_settings
    from gsmon.common.web.app import WebBridge, WebSettings
    from gsmon.common.web.auth import Users

    if args.log_level.upper() not in logs.LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(logs.LEVELS)}, got {args.log_level!r}")
    logs.configure(args.log_level.upper())
    try:
        host, port = parse_listen(args.listen)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.max_series < 1:
        raise UsageError(f"--max-series must be at least 1, got {args.max_series}")
    if args.max_streams < 1:
        raise UsageError(f"--max-streams must be at least 1, got {args.max_streams}")
    if not args.timeout_s > 0:
        raise UsageError(f"--timeout-s must be positive, got {args.timeout_s}")
    settings, curve = client_settings(args)  # ConfigError / KeyFileError: UsageErrors
    users = Users(args.users) if args.users else None
    private = args.private_reads or (not _is_loopback(host) and not args.public_reads)
    if not _is_loopback(host) and not private:
        log.warning("serving reads without a login beyond loopback (--public-reads) at %s", args.listen)
    if not _is_loopback(host) and not args.behind_proxy:
        log.warning("listening beyond loopback without TLS: put it behind a reverse proxy (see deploy/web/nginx.conf)")
    web_settings = WebSettings(
        hub=settings.hub,
        host=host,
        port=port,
        users_file=Path(args.users) if args.users else None,
        private_reads=private,
        behind_proxy=args.behind_proxy,
        max_series=args.max_series,
        max_streams=args.max_streams,
        curve=curve,
        timeout_s=args.timeout_s,
    )
    from gsmon.common.gc_tuning import GcTuner

    bridge = WebBridge(web_settings, users=users, gc_tuner=GcTuner(not args.no_gc_tuning))
    return asyncio.run(_serve(bridge, args.listen))


async def _serve(bridge: Any, listen: str) -> int:
    """Serve until SIGTERM/SIGINT or the hub feed's end; a port that cannot be bound is a BindError
    (naming ``listen``, as typed), raised before anything is served."""
    from aiohttp import web

    settings = bridge.settings
    runner = web.AppRunner(bridge.app, access_log=None, handle_signals=False, shutdown_timeout=3.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        try:
            await site.start()
        except OSError as error:  # only the bind: an OSError while serving is not one
            # A host that does not resolve is a getaddrinfo error: its errno (-2...) is no errno for strerror.
            unresolved = isinstance(error, socket.gaierror)
            raise BindError(
                "HTTP",
                listen,
                errno_value=None if unresolved else error.errno,
                reason=(
                    f"the host does not resolve ({error.strerror})"
                    if unresolved
                    else None
                    if error.errno
                    else str(error)  # asyncio's strerror repeats the address
                ),
                process="gsmon web",
                setting="--listen",
            ) from error
        server = site._server  # the bound sockets: the only way to learn the port of "HOST:0"
        sockets = [] if server is None else list(getattr(server, "sockets", []) or [])
        bound = sockets[0].getsockname() if sockets else (settings.host, settings.port)
        shown = f"[{bound[0]}]" if sockets and sockets[0].family == socket.AF_INET6 else bound[0]
        print(ready_line(url=f"http://{shown}:{bound[1]}/", hub=settings.hub), flush=True)
        log.info("serving http://%s:%s/ for the hub at %s", shown, bound[1], settings.hub)
        done = loop.create_task(bridge.done.wait())
        stopping = loop.create_task(stop.wait())
        await asyncio.wait([done, stopping], return_when=asyncio.FIRST_COMPLETED)
        for task in (done, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await runner.cleanup()
    if bridge.failure is not None:  # printed by cli.main as "gsmon web: the hub feed failed: ...", status 1
        raise UnavailableError(f"the hub feed failed: {bridge.failure}") from bridge.failure
    return 0
