"""``gsmon hub``: bind, print the ready line, serve until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from gsmon.common import logs, transport

__all__ = ["add_parser", "run"]

log = logging.getLogger("gsmon.hub")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "hub",
        help="run the hub: merge agents into one tree, serve subscribers",
        description="Run the hub. Port 0 in an endpoint picks a free port; the real endpoints are printed "
        "on one line: READY agents=... subscribers=... query=...",
    )
    parser.add_argument(
        "--agents",
        metavar="ENDPOINT",
        default=transport.default_endpoint(transport.DEFAULT_AGENTS_PORT),
        help="where agents connect (default %(default)s)",
    )
    parser.add_argument(
        "--subscribers",
        metavar="ENDPOINT",
        default=transport.default_endpoint(transport.DEFAULT_SUBSCRIBERS_PORT),
        help="where subscribers connect (default %(default)s)",
    )
    parser.add_argument(
        "--query",
        metavar="ENDPOINT",
        default=transport.default_endpoint(transport.DEFAULT_QUERY_PORT),
        help="snapshots and queries (default %(default)s)",
    )
    parser.add_argument("--heartbeat-s", type=float, default=1.0, help="hub heartbeat interval (default 1)")
    parser.add_argument(
        "--agent-liveness", type=float, default=3.0, help="an agent is silent after this many heartbeats (default 3)"
    )
    parser.add_argument(
        "--stale-factor", type=float, default=3.0, help="a point is stale after this many of its dt (default 3)"
    )
    parser.add_argument("--stale-slack-s", type=float, default=1.0, help="... plus this many seconds (default 1)")
    parser.add_argument(
        "--removal-grace-s", type=float, default=10.0, help="unlisted points are removed after this (default 10)"
    )
    parser.add_argument(
        "--retention-s", type=float, default=3600.0, help="a silent agent is forgotten after this (default 3600)"
    )
    parser.add_argument("--log-level", default="INFO", choices=logs.LEVELS)
    parser.add_argument("--log-format", default="text", choices=logs.FORMATS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gsmon.hub.server import HubEndpoints, HubServer, ready_line
    from gsmon.hub.state import HubSettings

    logs.configure(args.log_level, args.log_format)
    for name in ("agents", "subscribers", "query"):
        try:
            transport.parse_endpoint(getattr(args, name))
        except ValueError as error:
            print(f"gsmon hub: --{name}: {error}", file=sys.stderr)
            return 2
    settings = HubSettings(
        heartbeat_interval_s=args.heartbeat_s,
        agent_liveness=args.agent_liveness,
        stale_factor=args.stale_factor,
        stale_slack_s=args.stale_slack_s,
        removal_grace_s=args.removal_grace_s,
        agent_retention_s=args.retention_s,
    )
    server = HubServer(HubEndpoints(args.agents, args.subscribers, args.query), settings)
    try:
        endpoints = server.bind()
    except Exception as error:
        print(f"gsmon hub: cannot bind: {error}", file=sys.stderr)
        return 1
    warnings = []
    exposed = [ep for ep in (endpoints.agents, endpoints.subscribers, endpoints.query) if not transport.is_loopback(ep)]
    if exposed:
        warnings.append("unauthenticated-non-loopback")
        log.warning(
            "listening on %s without keys: anyone who can reach these ports can read the tree and "
            "publish into it. Use keys (gsmon keys) on a shared network.",
            ", ".join(exposed),
        )

    def on_signal(signum: int, frame: object) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(ready_line(endpoints, warnings), flush=True)
    log.info("hub epoch %x serving", server.epoch)
    server.run()
    log.info("hub stopped")
    return 0
