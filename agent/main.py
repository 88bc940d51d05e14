"""``gsmon agent``: the standalone agent process beside a rack or a controller.

It runs a Monitor with the built-in psutil probes, the thresholds and the user
monitor modules of its configuration file, publishes to its hub(s), prints
one line ``READY agent=<name> mount=<mount> hubs=<endpoint,...>`` once it runs,
and stops cleanly on SIGTERM or SIGINT (exit status 0). Command-line flags
override the file; a bad file or flag gets one clear message and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from gsmon.common import logs

__all__ = ["add_parser", "run"]

log = logging.getLogger("gsmon.agent")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="run a standalone agent: built-in probes and user modules, published to the hub",
        description="Run a standalone agent. Flags override the configuration file.",
    )
    parser.add_argument("--config", metavar="FILE", help="agent configuration (TOML); see deploy/examples/agent-*.toml")
    parser.add_argument(
        "--hub",
        action="append",
        metavar="ENDPOINT",
        help="hub agents endpoint, e.g. tcp://hub:7761 (repeat for several hubs; default tcp://127.0.0.1:7761)",
    )
    parser.add_argument("--name", help="agent name (default: the host name)")
    parser.add_argument(
        "--mount", metavar="PATH", help="where the agent's points appear in the tree (default: its name)"
    )
    parser.add_argument("--key", metavar="FILE", help="this agent's secret key file (CURVE; with --hub-key)")
    parser.add_argument("--hub-key", metavar="FILE", help="the hub's public key file (CURVE; with --key)")
    parser.add_argument("--heartbeat-s", type=float, help="heartbeat interval when idle (default 1)")
    parser.add_argument("--flush-interval-s", type=float, help="how often changed points are sent (default 0.05)")
    parser.add_argument("--log-level", choices=logs.LEVELS)
    parser.add_argument("--log-format", choices=logs.FORMATS)
    parser.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"gsmon agent: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from gsmon.agent.config import ConfigError, default_agent_config, load_agent_config
    from gsmon.agent.modules import load_modules
    from gsmon.agent.monitor import Monitor
    from gsmon.agent.probes import register_probes
    from gsmon.agent.publisher import PublisherSettings
    from gsmon.agent.thresholds import ThresholdRule
    from gsmon.common import names as naming
    from gsmon.common import transport
    from gsmon.common.keys import ClientKeys, KeyFileError, load_key_pair, load_public_key

    try:
        config = load_agent_config(args.config) if args.config else default_agent_config()
    except ConfigError as error:
        return _fail(str(error))
    settings = config.agent
    try:
        if args.name is not None:
            naming.check_name(args.name, "agent name (--name)")
            if args.name.startswith(naming.RESERVED_ROOT_PREFIX):
                raise ValueError(f"--name: invalid agent name {args.name!r}: a leading '_' is reserved for the hub")
            # The mount follows the name unless the file set a mount of its own.
            mount = args.name if settings.mount == settings.name else settings.mount
            settings = replace(settings, name=args.name, mount=mount)
        if args.mount is not None:
            try:
                settings = replace(settings, mount=naming.check_mount(args.mount))
            except ValueError as error:
                raise ValueError(f"--mount: {error}") from error
        if args.hub:
            for endpoint in args.hub:
                try:
                    transport.parse_endpoint(endpoint, connect=True)
                except ValueError as error:
                    raise ValueError(f"--hub: {error}") from error
            settings = replace(settings, hubs=tuple(args.hub))
        for flag, value in (("--heartbeat-s", args.heartbeat_s), ("--flush-interval-s", args.flush_interval_s)):
            if value is not None and not value > 0:
                raise ValueError(f"{flag} must be a positive number of seconds, got {value}")
        if args.heartbeat_s is not None:
            settings = replace(settings, heartbeat_interval_s=args.heartbeat_s)
        if args.flush_interval_s is not None:
            settings = replace(settings, flush_interval_s=args.flush_interval_s)
    except ValueError as error:
        return _fail(str(error))
    if (args.key is None) != (args.hub_key is None):
        return _fail("--key and --hub-key go together (this agent's secret key and the hub's public key)")
    curve = None
    # (where it was set, for messages; the file)
    key_files: tuple[tuple[str, str | Path], ...]
    if args.key is not None:
        key_files = (("--key", args.key), ("--hub-key", args.hub_key))
    elif settings.security is not None:
        key_files = (
            (f"{config.source}: agent.security.secret_key_file", settings.security.secret_key_file),
            (f"{config.source}: agent.security.hub_public_key_file", settings.security.hub_public_key_file),
        )
    else:
        key_files = ()
    if key_files:
        (secret_where, secret_file), (public_where, public_file) = key_files
        try:
            pair = load_key_pair(secret_file)
        except (KeyFileError, ValueError) as error:
            return _fail(f"{secret_where}: {error}")
        try:
            curve = ClientKeys(pair, load_public_key(public_file))
        except (KeyFileError, ValueError) as error:
            return _fail(f"{public_where}: {error}")
    logs.configure(args.log_level or config.logging.level, args.log_format or config.logging.format)
    alerts_level = None if config.logging.alerts == "OFF" else logging.getLevelName(config.logging.alerts)

    try:
        mon = Monitor(
            workers=settings.workers,
            default_dt=settings.default_dt_s,
            default_timeout=settings.default_timeout_s,
            hub=list(settings.hubs),
            agent=settings.name,
            mount=settings.mount,
            publisher=PublisherSettings(
                flush_interval_s=settings.flush_interval_s,
                heartbeat_interval_s=settings.heartbeat_interval_s,
                state_interval_s=settings.state_interval_s,
            ),
            curve=curve,
            # Alert transitions visible at the agent's usual log level (see [logging] alerts).
            loglvl_alerts=alerts_level,
            logthr_alerts=config.logging.alert_threshold,
        )
    except ValueError as error:  # names the flags and the file already checked; a last line of defence
        return _fail(str(error))
    try:
        probes = register_probes(mon, config.probes, source=config.source)
        mon.set_alert_rule(ThresholdRule([*config.thresholds, *probes.default_thresholds]))
        load_modules(mon, config.modules, source=config.source)
    except ConfigError as error:
        return _fail(str(error))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    mon.start()
    print(f"READY agent={settings.name} mount={settings.mount} hubs={','.join(settings.hubs)}", flush=True)
    log.info("agent %s publishing %d points under %s", settings.name, len(mon), settings.mount)
    stop.wait()
    mon.stop()
    log.info("agent stopped")
    return 0
