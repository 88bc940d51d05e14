"""``gsmon get`` and ``gsmon watch``: the hub's tree for people and scripts.

Both take ``--hub QUERY_ENDPOINT`` (default: the local hub) and learn
everything else from the hub itself.

``gsmon get PREFIX`` prints the subtree once as the tree table, or with
``--json`` as one JSON object mapping each path to its ``value``, ``alert``
(code), ``alertstr``, ``stale``, ``age`` (seconds since the hub received it),
``kind``, ``agent``, ``reported_alert`` (a point's own last code, before
staleness) and ``liveness_unknown`` (the hub cannot vouch for its freshness).
JSON has no bytes, datetimes or NaN: bytes become base64 text, datetimes ISO 8601 text, tuples arrays, and NaN/+-inf the
strings "NaN", "Infinity", "-Infinity".

``gsmon watch PREFIX`` redraws the subtree in place, with alert colours, until
Ctrl-C or SIGTERM (exit status 0, even when the hub is gone). ``gsmon get``
interrupted the same way prints no traceback and exits with status 130.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import math
import signal
import sys
import time
from typing import Any

from gsmon.common.alerts import alertstr_for
from gsmon.common.client import DEFAULT_QUERY_ENDPOINT, HubUnavailableError, NodeState, Subscriber
from gsmon.common.keys import ClientKeys, KeyFileError
from gsmon.common.render import Row, render_table

__all__ = ["add_parsers", "rows_for", "to_json"]


def add_parsers(subparsers: Any) -> None:
    for name, handler, summary in (
        ("get", run_get, "print a subtree of the hub's tree once"),
        ("watch", run_watch, "show a subtree live, redrawn in place, until Ctrl-C"),
    ):
        parser = subparsers.add_parser(name, help=summary, description=summary)
        parser.add_argument("prefix", nargs="?", default="", help="path prefix, e.g. GS1/ (default: the whole tree)")
        parser.add_argument(
            "--hub",
            default=DEFAULT_QUERY_ENDPOINT,
            metavar="QUERY_ENDPOINT",
            help="the hub's query endpoint (default %(default)s)",
        )
        parser.add_argument("--timeout-s", type=float, default=5.0, help="how long to wait for the hub (default 5)")
        parser.add_argument("--key", metavar="FILE", help="this subscriber's secret key file (with --hub-key)")
        parser.add_argument("--hub-key", metavar="FILE", help="the hub's public key file (CURVE; with --key)")
        if name == "get":
            parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
        else:
            parser.add_argument("--refresh-s", type=float, default=0.5, help="seconds between redraws (default 0.5)")
            parser.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")
            parser.add_argument("--no-colour", action="store_true", help="no ANSI colours")
        parser.set_defaults(handler=handler)


def rows_for(subscriber: Subscriber) -> list[Row]:
    """The followed subtree as table rows, depth from the shallowest node."""
    tree = subscriber.tree
    if not tree:
        return []
    base_depth = min(path.count("/") for path in tree)
    rows = []
    for path in sorted(tree, key=lambda p: p.split("/")):
        node = tree[path]
        value = node.value if node.kind == "point" else None
        rows.append(
            Row(path.count("/") - base_depth, node.name, value, node.alertcode, node.alertstr, subscriber.age_s(node))
        )
    return rows


def _title(subscriber: Subscriber) -> str:
    tree = subscriber.tree
    worst = max((node.alertcode for node in tree.values()), default=0)
    label = alertstr_for(worst)
    where = f"{subscriber.hub} {subscriber.prefix!r}" if subscriber.prefix else subscriber.hub
    state = "HUB LOST" if subscriber.hub_lost else f"{len(tree)} nodes"
    return f"Hub {where} ({label}) --- {state}" if label else f"Hub {where} --- {state}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return value


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
        "value": _jsonable(node.value),
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
    }


def open_subscriber(args: argparse.Namespace) -> Subscriber:
    """A Subscriber from the common flags (--hub, prefix, --timeout-s, --key/--hub-key).

    Raises ``ValueError`` (bad flags) or ``KeyFileError`` (bad key files).
    """
    if (args.key is None) != (args.hub_key is None):
        raise ValueError("--key and --hub-key go together (your secret key and the hub's public key)")
    curve = ClientKeys.load(args.key, args.hub_key) if args.key is not None else None
    return Subscriber(args.hub, args.prefix, timeout_s=args.timeout_s, curve=curve)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """Make SIGTERM end the command as Ctrl-C does: sockets closed, exit status 0."""
    signal.signal(signal.SIGTERM, _interrupt)


def run_get(args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    try:
        with open_subscriber(args) as subscriber:
            if args.json:
                json.dump(to_json(subscriber), sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
                sys.stdout.write("\n")
            else:
                sys.stdout.write(render_table(_title(subscriber), rows_for(subscriber)))
    except HubUnavailableError as error:
        print(f"gsmon get: {error}", file=sys.stderr)
        return 1
    except (ValueError, KeyFileError) as error:
        print(f"gsmon get: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # No traceback; but a one-shot answer cut short is not a success (128 + SIGINT, as shells report).
        return 130
    return 0


def run_watch(args: argparse.Namespace) -> int:
    colour = not args.no_colour and sys.stdout.isatty()
    deadline = None if args.duration_s is None else time.monotonic() + args.duration_s
    _stop_on_sigterm()
    try:
        with open_subscriber(args) as subscriber:
            while deadline is None or time.monotonic() < deadline:
                frame = render_table(_title(subscriber), rows_for(subscriber), colour=colour)
                # Cursor home + clear below: redraw in place without flicker.
                sys.stdout.write("\x1b[H\x1b[J" + frame)
                sys.stdout.flush()
                next_draw = time.monotonic() + args.refresh_s
                while (remaining := next_draw - time.monotonic()) > 0:
                    subscriber.poll(remaining)
    except HubUnavailableError as error:
        print(f"gsmon watch: {error}", file=sys.stderr)
        return 1
    except (ValueError, KeyFileError) as error:
        print(f"gsmon watch: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
