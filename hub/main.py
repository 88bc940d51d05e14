"""``gsmon hub``: bind, print the ready line, serve until SIGTERM or SIGINT.

Settings come from ``--config hub.toml`` (see :mod:`gsmon.hub.config` for the
schema and defaults); command-line flags override the file. Once bound, the
hub prints exactly one line to stdout::

    READY agents=<endpoint> subscribers=<endpoint> query=<endpoint>

with the real endpoints (port 0 in a requested endpoint picks a free port).
A hub listening beyond loopback without keys says so in a warning and appends
``WARNING=unauthenticated-non-loopback`` to that line.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
from dataclasses import replace
from typing import Any

from gsmon.common import logs, transport

__all__ = ["add_parser", "run"]

log = logging.getLogger("gsmon.hub")

# flag -> (HubSettings field, help)
_SETTING_FLAGS = {
    "heartbeat_s": ("heartbeat_interval_s", "hub heartbeat interval in seconds (default 1)"),
    "agent_liveness": ("agent_liveness", "an agent is silent after this many of its heartbeats (default 3)"),
    "stale_factor": ("stale_factor", "a point is stale after this many of its dt (default 3)"),
    "stale_slack_s": ("stale_slack_s", "... plus this many seconds (default 1)"),
    "removal_grace_s": ("removal_grace_s", "unlisted points are removed after this many seconds (default 10)"),
    "retention_s": ("agent_retention_s", "a silent agent is forgotten after this many seconds (default 3600)"),
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "hub",
        help="run the hub: merge agents into one tree, serve subscribers",
        description="Run the hub. Flags override --config. Port 0 in an endpoint picks a free port; the "
        "real endpoints are printed on one line: READY agents=... subscribers=... query=...",
    )
    parser.add_argument("--config", metavar="FILE", help="hub configuration (TOML); see deploy/examples/hub.toml")
    for name, port, what in (
        ("agents", transport.DEFAULT_AGENTS_PORT, "where agents connect"),
        ("subscribers", transport.DEFAULT_SUBSCRIBERS_PORT, "where subscribers connect"),
        ("query", transport.DEFAULT_QUERY_PORT, "snapshots and hub info"),
    ):
        parser.add_argument(
            f"--{name}", metavar="ENDPOINT", help=f"{what} (default {transport.default_endpoint(port)})"
        )
    for flag, (_, text) in _SETTING_FLAGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", type=float, help=text)
    parser.add_argument("--keys", metavar="DIR", help="keys folder (gsmon keys init): require CURVE on every endpoint")
    parser.add_argument("--log-level", choices=logs.LEVELS)
    parser.add_argument("--log-format", choices=logs.FORMATS)
    parser.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"gsmon hub: {message}", file=sys.stderr)
    return 2


def _bind_form(endpoint: str) -> str:
    """The endpoint as it is handed to ZeroMQ's bind (port 0 becomes ``*``), and so named in its errors."""
    return endpoint[: -len(":0")] + ":*" if endpoint.startswith("tcp://") and endpoint.endswith(":0") else endpoint


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import zmq

    from gsmon.common.keys import CurveUnavailableError, KeyFileError
    from gsmon.hub.auth import AllowListError
    from gsmon.hub.config import ConfigError, HubConfig, load_hub_config
    from gsmon.hub.server import HubServer, ready_line

    try:
        config = load_hub_config(args.config) if args.config else HubConfig()
    except ConfigError as error:
        return _fail(str(error))
    endpoints = config.endpoints
    # Where each setting came from, for error messages: a flag, or the file's key.
    origin = {name: f"{config.source}: hub.{name}" for name in ("agents", "subscribers", "query")}
    for name in ("agents", "subscribers", "query"):
        value = getattr(args, name)
        if value is None:
            continue
        try:
            transport.parse_endpoint(value)
        except ValueError as error:
            return _fail(f"--{name}: {error}")
        endpoints = replace(endpoints, **{name: value})
        origin[name] = f"--{name}"
    settings = config.settings
    for flag, (field_name, _) in _SETTING_FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if not value > 0:
            return _fail(f"--{flag.replace('_', '-')} must be positive, got {value}")
        settings = replace(settings, **{field_name: value})
    keys_dir = Path(args.keys) if args.keys else config.keys_dir
    keys_origin = "--keys" if args.keys else f"{config.source}: security.keys_dir"
    logs.configure(args.log_level or config.logging.level, args.log_format or config.logging.format)

    server = HubServer(endpoints, settings, config.limits, keys_dir=keys_dir)
    try:
        bound = server.bind()
    except (KeyFileError, AllowListError, CurveUnavailableError) as error:
        return _fail(f"{keys_origin}: {error}")
    except zmq.ZMQError as error:
        # pyzmq appends "(addr='tcp://...')" to a bind error: name the setting that asked for it.
        where = next(
            (origin[name] for name in origin if _bind_form(getattr(endpoints, name)) in str(error)),
            "cannot start",
        )
        if error.errno == errno.EADDRINUSE:
            # Most likely another hub (or the previous one, still closing): worth a retry, so not status 2.
            print(f"gsmon hub: {where}: {error}; is another hub running?", file=sys.stderr)
            return 1
        return _fail(f"{where}: cannot listen there: {error}")
    except Exception as error:
        print(f"gsmon hub: cannot start: {error}", file=sys.stderr)
        return 1
    warnings = []
    exposed = [ep for ep in (bound.agents, bound.subscribers, bound.query) if not transport.is_loopback(ep)]
    if exposed and keys_dir is None:
        warnings.append("unauthenticated-non-loopback")
        log.warning(
            "listening on %s WITHOUT KEYS: anyone who can reach these ports can read the tree and publish "
            "into it. Create keys with `gsmon keys init` and start the hub with --keys.",
            ", ".join(exposed),
        )

    def on_signal(signum: int, frame: object) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(ready_line(bound, warnings), flush=True)
    log.info("hub epoch %x serving", server.epoch)
    server.run()
    log.info("hub stopped")
    return 0
