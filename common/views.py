"""``gsmon get`` and ``gsmon watch``: the hub's tree for people, scripts and monitoring systems.

Both take ``--hub QUERY_ENDPOINT`` and, on a keyed station, ``--key`` and
``--hub-key``; each may instead come from ``GSMON_HUB``, ``GSMON_KEY``,
``GSMON_HUB_KEY`` or a client file (see :mod:`gsmon.common.client_settings`).
They learn everything else from the hub itself. A hub pair is one
``--hub`` of two endpoints joined by a comma (``tcp://a:7763,tcp://b:7763``):
``get`` asks the first that answers, ``watch`` follows it and moves to the
other by itself when it is lost (protocol: Clients of a hub pair), naming
the hub it uses in its title and saying HUB LOST only when both are gone.

``gsmon get PREFIX`` prints the subtree once as the tree table, or with
``--json`` as one JSON object mapping each path to its ``value``, ``alert``
(code), ``alertstr``, ``stale``, ``age`` (seconds since the hub received it),
``kind``, ``agent``, ``reported_alert`` (a point's own last code, before
staleness) and ``liveness_unknown`` (the hub cannot vouch for its freshness);
from a hub with the alarm layer also ``attention``, ``since`` (ISO 8601
UTC), ``alarm_id`` and ``alarm`` (the open alarm's summary, times ISO 8601
UTC), ``shelf_id``, ``shelved_below``, ``unacked_below``, and the
debounce's ``raw_alert``, ``pending`` and ``flapping``.
JSON has no bytes, datetimes or NaN: bytes become base64 text, datetimes ISO
8601 text, tuples arrays, and NaN/+-inf the strings "NaN", "Infinity",
"-Infinity". A prefix under which the hub has nothing is said so on stderr,
with exit status 1 (``--json`` still prints ``{}``).

``gsmon get PREFIX --check`` is a monitoring plugin (Nagios, Icinga, a cron
job): one line on stdout in the monitoring-plugins format, and its status::

    GSMON CRITICAL - 2 critical, 1 stale, 3 warning under GS1/ (worst GS1/Rack1/CPU/cpu_total_percent RED) \
        | points=40;;;0 green=34;;;0 orange=3;0;;0 red=1;;0;0 stale=1;;0;0 critical=1;;0;0 unjudged=0;;;0

    0 OK        the worst level under the prefix is below ORANGE
    1 WARNING   ORANGE (or a user level between ORANGE and RED)
    2 CRITICAL  RED, STALE or CRITICAL
    3 UNKNOWN   the hub cannot be asked, nothing is under the prefix, or bad flags

Counts are of points (parents only repeat their worst child): "critical"
counts points at RED or worse that are not stale, "stale" the stale ones,
"warning" the ORANGE ones; the performance data gives every level's count
separately, with the plugin thresholds that make any ORANGE point a warning
and any RED, STALE or CRITICAL point critical (``label=value;warn;crit;min``).

``gsmon watch PREFIX`` shows the subtree live until ``q``, Ctrl-C, SIGTERM or
``--duration-s`` (exit status 0, whatever the hub did). On a terminal it is a
full-screen application (:mod:`gsmon.common.watch`): problems first, the
tree collapsed around them, keys to move, expand, filter, acknowledge and
shelve, a status bar and a detail pane, redrawn in place on the terminal's
alternate screen. ``--plain``, or an output that is not a terminal (a pipe,
a file, a log), gives plain frames instead, one after another, separated by
a blank line, with no cursor-control codes and no colour; a terminal with no
keyboard behind it (stdin not a terminal) gets those frames redrawn in place,
with colours. Every human view shows values with their units
(:mod:`gsmon.common.units`); ``--json`` stays exact. A hub that is not there
yet shows ``waiting for the hub at ...`` (with the reason) and is tried
again until it answers. A hub lost while watching (no heartbeat for three of
its intervals) puts ``HUB LOST`` in place of the title and shows every row's
level as UNKNOWN -- the last known GREEN is not a current GREEN -- until the
hub is back and the view is resynchronised.
``gsmon get`` interrupted prints no traceback and exits with status 130.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from gsmon.common.alerts import STALE_ALERTCODE, CriticalAlert, OrangeAlert, RedAlert, alertstr_for
from gsmon.common.client import HubUnavailableError, NodeState, Subscriber
from gsmon.common.client_settings import ClientSettings, resolve_client_settings
from gsmon.common.errors import GsmonError, UnavailableError
from gsmon.common.json_form import iso_utc, jsonable
from gsmon.common.keys import ClientKeys, KeyFileError
from gsmon.common.render import Row, render_view

__all__ = [
    "CHECK_CRITICAL",
    "CHECK_OK",
    "CHECK_UNKNOWN",
    "CHECK_WARNING",
    "add_client_flags",
    "add_parser",
    "add_view_flags",
    "check_result",
    "client_settings",
    "open_subscriber",
    "rows_for",
    "to_json",
]

# Monitoring-plugins exit statuses.
CHECK_OK: Final = 0
CHECK_WARNING: Final = 1
CHECK_CRITICAL: Final = 2
CHECK_UNKNOWN: Final = 3
_CHECK_NAMES: Final = {CHECK_OK: "OK", CHECK_WARNING: "WARNING", CHECK_CRITICAL: "CRITICAL", CHECK_UNKNOWN: "UNKNOWN"}
UNKNOWN_ALERTSTR: Final = "UNKNOWN"
# Seconds between attempts while watch waits for its hub (each attempt itself waits up to --timeout-s).
RETRY_PAUSE_S: Final = 1.0


def add_client_flags(parser: argparse.ArgumentParser) -> None:
    """--hub, --timeout-s, --key and --hub-key, as every command that asks the hub takes them."""
    parser.add_argument(
        "--hub",
        metavar="QUERY_ENDPOINT",
        help="the hub's query endpoint; a hub pair: both joined by a comma, tcp://a:7763,tcp://b:7763 (the first "
        "that answers is used, the other taken over within seconds when it is lost) "
        "(default: $GSMON_HUB, else the client file's hub, else tcp://127.0.0.1:7763)",
    )
    parser.add_argument("--timeout-s", type=float, default=5.0, help="how long to wait for the hub (default 5)")
    parser.add_argument(
        "--key",
        metavar="FILE",
        help="this client's secret key file (with --hub-key; default $GSMON_KEY or the client file's key)",
    )
    parser.add_argument(
        "--hub-key",
        metavar="FILE",
        help="the hub's public key file (CURVE; with --key; default $GSMON_HUB_KEY or the client file's hub_key)",
    )


def add_parser(subparsers: Any, name: str, summary: str) -> None:
    """Register ``gsmon get`` or ``gsmon watch`` (``name``) on the ``gsmon`` command's subparsers."""
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=summary,
        epilog="Client settings: --hub, --key and --hub-key win over GSMON_HUB, GSMON_KEY and GSMON_HUB_KEY, "
        "which win over $XDG_CONFIG_HOME/gsmon/client.toml (default ~/.config/gsmon/client.toml), then "
        "/etc/gsmon/client.toml (keys hub, key, hub_key; paths relative to the file).",
    )
    parser.add_argument("prefix", nargs="?", default="", help="path prefix, e.g. GS1/ (default: the whole tree)")
    add_client_flags(parser)
    if name == "get":
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="print JSON instead of the table")
        output.add_argument(
            "--check",
            action="store_true",
            help="print one monitoring-plugins line and exit 0 OK, 1 WARNING (ORANGE), "
            "2 CRITICAL (RED, STALE, CRITICAL) or 3 UNKNOWN (no hub, nothing under the prefix)",
        )
        parser.set_defaults(handler=run_get)
    else:
        parser.add_argument("--refresh-s", type=float, default=0.5, help="seconds between redraws (default 0.5)")
        parser.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")
        add_view_flags(parser)
        parser.set_defaults(handler=run_watch)


def add_view_flags(parser: argparse.ArgumentParser) -> None:
    """--no-colour and --plain, as ``gsmon watch`` and ``gsmon demo`` take them."""
    parser.add_argument("--no-colour", action="store_true", help="no colours (NO_COLOR in the environment too)")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="plain text frames, one after another, no escape sequences (always so when stdout is not a terminal)",
    )


def table_width() -> int:
    """The terminal's width for a table (COLUMNS wins; 100 when stdout is not a terminal)."""
    return shutil.get_terminal_size((100, 24)).columns


def rows_for(subscriber: Subscriber, *, unknown: bool = False) -> list[Row]:
    """The followed subtree as table rows, depth from the shallowest node.

    ``unknown``: the levels cannot be vouched for (the hub is lost), so every
    row shows UNKNOWN, uncoloured, instead of the level it last had.
    """
    tree = subscriber.tree
    if not tree:
        return []
    base_depth = min(path.count("/") for path in tree)
    rows = []
    for path in sorted(tree, key=lambda p: p.split("/")):
        node = tree[path]
        value = node.value if node.kind == "point" else None
        code: int | None = None if unknown else node.alertcode
        label = UNKNOWN_ALERTSTR if unknown else node.alertstr
        rows.append(Row(path.count("/") - base_depth, node.name, value, code, label, subscriber.age_s(node)))
    return rows


def _title(subscriber: Subscriber) -> str:
    tree = subscriber.tree
    worst = max((node.alertcode for node in tree.values()), default=0)
    label = alertstr_for(worst)
    where = f"{subscriber.hub} {subscriber.prefix!r}" if subscriber.prefix else subscriber.hub
    if subscriber.hub_lost:
        return (
            f"HUB LOST --- hub lost: no heartbeat from {where}; every level below is UNKNOWN "
            "until it is back (retrying)"
        )
    state = f"{len(tree)} nodes"
    return f"Hub {where} ({label}) --- {state}" if label else f"Hub {where} --- {state}"


def to_json(subscriber: Subscriber) -> dict[str, dict[str, Any]]:
    """The followed subtree as the ``gsmon get --json`` object."""
    result = {}
    for path, node in sorted(subscriber.tree.items()):
        result[path] = _node_json(subscriber, node)
    return result


def _node_json(subscriber: Subscriber, node: NodeState) -> dict[str, Any]:
    age = subscriber.age_s(node)
    return {
        "kind": node.kind,
        "value": jsonable(node.value),
        "alert": node.alertcode,
        "alertstr": node.alertstr,
        "stale": node.stale,
        "age": None if age is None else round(age, 3),
        "agent": node.agent,
        # The hub sends it only when it shows another level (STALE): else it is the alert itself.
        "reported_alert": node.alertcode
        if node.reported_alert is None and node.kind == "point"
        else node.reported_alert,
        "liveness_unknown": node.liveness_unknown,
        **_operator_json(node),
    }


def _iso_times(value: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(value, dict):
        return jsonable(value)
    return {
        str(key): iso_utc(item) if key in keys and isinstance(item, int | float) else jsonable(item)
        for key, item in value.items()
    }


def _operator_json(node: NodeState) -> dict[str, Any]:
    """The alarm layer's keys of a node, when the hub has that layer (``attention`` is then at least 0), and
    the debounce keys whenever the hub relays them (a hub without the layer does too)."""
    debounce = {
        "raw_alert": node.raw_alert,
        "pending": _iso_times(node.pending, ("since",)),
        "flapping": _iso_times(node.flapping, ("since",)),
    }
    if node.attention is None:
        return debounce if node.raw_alert is not None else {}
    alarm = node.alarm if isinstance(node.alarm, dict) else None
    return {
        "attention": node.attention,
        "since": iso_utc(node.since) if isinstance(node.since, int | float) else None,
        "alarm_id": alarm.get("id") if alarm is not None else None,
        "alarm": _iso_times(alarm, ("raised_at", "rtn_at", "acked_at")) if alarm is not None else None,
        "shelf_id": node.shelf_id,
        "shelved_below": node.shelved_below,
        "unacked_below": node.unacked_below,
        **debounce,
    }


def client_settings(args: argparse.Namespace) -> tuple[ClientSettings, ClientKeys | None]:
    """The hub and the loaded keys from the flags, the environment and the client files.

    Raises :class:`ConfigError` (bad settings) or :class:`KeyFileError` (bad key files).
    """
    settings = resolve_client_settings(args.hub, args.key, args.hub_key)
    curve = None
    if settings.key is not None and settings.hub_key is not None:
        try:
            curve = ClientKeys.load(settings.key, settings.hub_key)
        except KeyFileError as error:
            raise KeyFileError(f"{settings.key_origin}: {error}") from error
    return settings, curve


def open_subscriber(args: argparse.Namespace) -> Subscriber:
    """A connected Subscriber from the common flags (prefix, --hub, --timeout-s, --key/--hub-key).

    Raises :class:`ConfigError` (bad settings), :class:`KeyFileError` (bad key
    files) or :class:`HubUnavailableError` (the hub cannot be asked).
    """
    settings, curve = client_settings(args)
    return Subscriber(settings.hub, args.prefix, timeout_s=args.timeout_s, curve=curve).connect()


def _login_name() -> str | None:
    """The user name sent with commands (the hub records it beside the key's name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """Make SIGTERM end the command as Ctrl-C does: sockets closed, exit status 0."""
    signal.signal(signal.SIGTERM, _interrupt)


def _where(prefix: str) -> str:
    return f"under {prefix}" if prefix else "in the whole tree"


def check_result(prefix: str, tree: Mapping[str, NodeState]) -> tuple[int, str]:
    """The ``--check`` status and line for the followed subtree ``tree`` (pure: no I/O).

    See the module docstring for the rules; an empty ``tree`` is UNKNOWN.
    """
    if not tree:
        return CHECK_UNKNOWN, f"GSMON UNKNOWN - nothing {_where(prefix)}"
    counts = dict.fromkeys(("green", "orange", "red", "stale", "critical", "unjudged"), 0)
    points = [node for node in tree.values() if node.kind == "point"] or list(tree.values())
    for node in points:
        code = node.alertcode
        if node.stale or code == STALE_ALERTCODE:
            counts["stale"] += 1
        elif code >= CriticalAlert.alertcode:
            counts["critical"] += 1
        elif code >= RedAlert.alertcode:
            counts["red"] += 1
        elif code >= OrangeAlert.alertcode:
            counts["orange"] += 1
        elif code > 0:
            counts["green"] += 1
        else:
            counts["unjudged"] += 1
    # The worst point, not its parents (which carry the same level): the path says what to look at.
    worst = max(points, key=lambda node: (node.stale or node.alertcode >= RedAlert.alertcode, node.alertcode))
    if counts["stale"] or counts["critical"] or counts["red"] or worst.stale or worst.alertcode >= RedAlert.alertcode:
        status = CHECK_CRITICAL
    elif worst.alertcode >= OrangeAlert.alertcode:
        status = CHECK_WARNING
    else:
        status = CHECK_OK
    summary = [
        f"{count} {label}"
        for count, label in (
            (counts["critical"] + counts["red"], "critical"),
            (counts["stale"], "stale"),
            (counts["orange"], "warning"),
        )
        if count
    ]
    if status == CHECK_OK:
        text = f"{len(points)} points {_where(prefix)}, all below ORANGE"
    else:
        label = "STALE" if worst.stale else (worst.alertstr or alertstr_for(worst.alertcode))
        text = f"{', '.join(summary) or '0 points'} {_where(prefix)} (worst {worst.path} {label})"
    perfdata = " ".join(
        [f"points={len(points)};;;0", f"green={counts['green']};;;0", f"orange={counts['orange']};0;;0"]
        + [f"{name}={counts[name]};;0;0" for name in ("red", "stale", "critical")]
        + [f"unjudged={counts['unjudged']};;;0"]
    )
    return status, f"GSMON {_CHECK_NAMES[status]} - {text} | {perfdata}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_get(args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    check = getattr(args, "check", False)
    try:
        with open_subscriber(args) as subscriber:
            tree = subscriber.tree
            if check:
                status, line = check_result(args.prefix, tree)
                print(line if tree else f"{line} at {subscriber.hub}")
                return status
            if args.json:
                json.dump(to_json(subscriber), sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
                sys.stdout.write("\n")
            elif tree:
                sys.stdout.write(render_view(_title(subscriber), rows_for(subscriber), width=table_width()))
            if not tree:  # status 1, like a hub that does not answer: there may be something later
                raise UnavailableError(
                    f"nothing {_where(args.prefix)} at the hub {subscriber.hub} "
                    "(a prefix names whole path segments: GS1/Rack1 is that node and its subtree)"
                )
    except GsmonError as error:
        if not check:
            raise  # the one error path: gsmon.common.cli.main
        # A monitoring plugin answers on stdout, whatever went wrong: UNKNOWN, status 3.
        print(f"GSMON UNKNOWN - {_one_line(str(error))}")
        return CHECK_UNKNOWN
    return 0


class _Screen:
    """Where watch draws: in place on a terminal, plain frames separated by a blank line elsewhere."""

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal

    def show(self, frame: str) -> None:
        if self.terminal:
            # Cursor home + clear below: redraw in place without flicker.
            sys.stdout.write("\x1b[H\x1b[J" + frame)
        else:
            sys.stdout.write(frame + "\n")
        sys.stdout.flush()


def run_watch(
    args: argparse.Namespace,
    *,
    given: tuple[ClientSettings, ClientKeys | None] | None = None,
    check_children: Callable[[], None] | None = None,
) -> int:
    """``gsmon watch``. ``given``: the hub and keys to use instead of the flags, variables and files
    (``gsmon demo`` watches its own hub); ``check_children``: called before each frame, raises to stop
    the view (``gsmon demo``'s hub or agent died)."""
    terminal = sys.stdout.isatty()
    plain = getattr(args, "plain", False)
    colour = not args.no_colour and terminal and not plain and "NO_COLOR" not in os.environ
    deadline = None if args.duration_s is None else time.monotonic() + args.duration_s

    def remaining_s() -> float:
        return float("inf") if deadline is None else deadline - time.monotonic()

    _stop_on_sigterm()
    settings, curve = client_settings(args) if given is None else given
    if terminal and not plain and sys.stdin.isatty():
        from gsmon.common.alarm_commands import OperatorClient, hub_sender
        from gsmon.common.failover import HubChoice
        from gsmon.common.watch import run_app
        from gsmon.common.watch.commands import HubCommands

        # One choice for the view and its commands: ack and shelve go to the hub the view reads (1.3).
        choice = HubChoice(settings.hub)
        send = hub_sender(choice, curve, timeout_s=args.timeout_s, user=_login_name())
        return run_app(
            choice,
            args.prefix,
            timeout_s=args.timeout_s,
            curve=curve,
            colour=not args.no_colour,
            duration_s=args.duration_s,
            check=check_children,
            commands=HubCommands(OperatorClient(send), keyed=curve is not None),
        )
    # Ctrl-C (and SIGTERM, made one) is watch's normal stop: gsmon.common.cli.main exits 0 for it.
    screen = _Screen(terminal and not plain)
    while remaining_s() > 0:
        if check_children is not None:
            check_children()
        try:
            attempt_s = args.timeout_s if remaining_s() >= args.timeout_s else max(0.1, round(remaining_s(), 1))
            subscriber = Subscriber(settings.hub, args.prefix, timeout_s=attempt_s, curve=curve).connect()
        except HubUnavailableError as error:
            screen.show(f" waiting for the hub at {settings.hub}: {_one_line(str(error))} (retrying; Ctrl-C stops)\n")
            time.sleep(max(0.0, min(RETRY_PAUSE_S, remaining_s())))
            continue
        with subscriber:
            while remaining_s() > 0:
                if check_children is not None:
                    check_children()
                lost = subscriber.hub_lost
                frame = render_view(
                    _title(subscriber), rows_for(subscriber, unknown=lost), width=table_width(), colour=colour
                )
                screen.show(frame)
                next_draw = time.monotonic() + min(args.refresh_s, max(0.0, remaining_s()))
                while (wait_s := next_draw - time.monotonic()) > 0:
                    subscriber.poll(wait_s)
        break
    return 0
