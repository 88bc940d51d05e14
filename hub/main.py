"""``gsmon hub``: bind, print the ready line, serve until SIGTERM or SIGINT.

Settings come from ``--config hub.toml`` (see :mod:`gsmon.hub.config` for the
schema and defaults). Every flag sets the key of the same name (older
spellings kept as aliases: ``--heartbeat-s``, ``--retention-s``, ``--keys``)
and is laid over the file's data before the one validation, so a flag is
refused exactly like the same value in the file, naming the flag.
``--check-config`` validates the file, the flags and the keys (the hub's pair
and a non-empty allow-list) without binding, prints ``config OK: ...`` and
exits 0, or prints one line and exits 2. ``--print-example-config`` prints the
example shipped with the package. Once bound, the
hub prints exactly one line to stdout::

    READY agents=<endpoint> subscribers=<endpoint> query=<endpoint>

with the real endpoints (port 0 in a requested endpoint picks a free port).
A hub listening beyond loopback without keys says so in a warning and appends
``WARNING=unauthenticated-non-loopback`` to that line.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gsmon.common import endpoints, logs
from gsmon.common.config import add_key_flag, flag_overrides

if TYPE_CHECKING:
    from gsmon.hub.config import HubConfig

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

EXAMPLE_CONFIG = "example-hub.toml"

# (flag names: the first matches the key, the others are older spellings), dotted key, type, help.
_KEY_FLAGS: tuple[tuple[tuple[str, ...], str, type[float] | type[int] | None, str], ...] = (
    *(
        ((f"--{name}",), f"hub.{name}", None, f"{what} (default {endpoints.default_endpoint(port)})")
        for name, port, what in (
            ("agents", endpoints.DEFAULT_AGENTS_PORT, "where agents connect"),
            ("subscribers", endpoints.DEFAULT_SUBSCRIBERS_PORT, "where subscribers connect"),
            ("query", endpoints.DEFAULT_QUERY_PORT, "snapshots and hub info"),
        )
    ),
    (
        ("--heartbeat-interval-s", "--heartbeat-s"),
        "liveness.heartbeat_interval_s",
        float,
        "hub heartbeat interval in seconds (default 1)",
    ),
    (
        ("--agent-liveness",),
        "liveness.agent_liveness",
        float,
        "an agent is silent after this many of its heartbeats (default 3)",
    ),
    (("--stale-factor",), "liveness.stale_factor", float, "a point is stale after this many of its dt (default 3)"),
    (("--stale-slack-s",), "liveness.stale_slack_s", float, "... plus this many seconds (default 1)"),
    (
        ("--removal-grace-s",),
        "liveness.removal_grace_s",
        float,
        "unlisted points are removed after this many seconds (default 10)",
    ),
    (
        ("--resync-interval-s",),
        "liveness.resync_interval_s",
        float,
        "at most one full-state request per agent per this many seconds (default 1)",
    ),
    (
        ("--agent-retention-s", "--retention-s"),
        "retention.agent_retention_s",
        float,
        "a silent agent and its (stale) points are forgotten after this many seconds (default 3600)",
    ),
    (
        ("--state-dir",),
        "hub.state_dir",
        None,
        "alarms, shelves and the journal live here (default: 'state' beside the keys folder, else "
        "/var/lib/gsmon if writable, else $XDG_STATE_HOME/gsmon; '' runs without a state store)",
    ),
    (
        ("--keys-dir", "--keys"),
        "security.keys_dir",
        None,
        "keys folder (gsmon keys init): require CURVE on every endpoint",
    ),
    (("--hub-id",), "hub.hub_id", None, "this hub's id in a federation (default: <host name>:<agents port>)"),
    (("--upstream-mount",), "hub.upstream_mount", None, "where this hub's tree hangs at the central hub"),
    (("--upstream-name",), "hub.upstream_name", None, "the agent name there (default: the mount's last segment)"),
    (("--upstream-min-level",), "hub.upstream_min_level", None, "value-only changes below this are not sent"),
    (
        ("--upstream-coalesce-ms",),
        "hub.upstream_coalesce_ms",
        int,
        "at most one update per point per this many ms (default 1000; 0: every change)",
    ),
    (("--upstream-key",), "hub.upstream_key", None, "this hub's agent secret key at the central hub (CURVE)"),
    (("--upstream-hub-key",), "hub.upstream_hub_key", None, "the central hub's public key (CURVE)"),
    (
        ("--peer",),
        "pair.peer",
        None,
        "the other hub of a pair: its query endpoint (the two link and share acks, shelves and notifications)",
    ),
    (("--peer-key",), "pair.peer_key", None, "the peer hub's public key file (with keys)"),
    (("--peer-timeout-s",), "pair.peer_timeout_s", float, "the peer is gone after this long unheard (default 15)"),
    (("--log-level",), "logging.level", None, f"one of {', '.join(logs.LEVELS)} (default INFO)"),
    (("--log-format",), "logging.format", None, f"one of {', '.join(logs.FORMATS)} (default text)"),
)


def add_parser(subparsers: Any, name: str, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description="Run the hub. Every flag sets the configuration key of the same name and overrides "
        "--config. Port 0 in an endpoint picks a free port; the real endpoints are printed on one line: "
        "READY agents=... subscribers=... query=...",
        epilog="Every configuration key, with an example: gsmon hub --print-example-config",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="hub configuration (TOML); see gsmon hub --print-example-config"
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the configuration, flags and keys without listening anywhere: print 'config OK: ...' and "
        "exit 0, or one line saying what is wrong and exit 2",
    )
    parser.add_argument(
        "--print-example-config",
        action="store_true",
        help="print a commented example configuration (every section, station-ready) and exit",
    )
    add_key_flag(
        parser,
        "--upstream",
        key="hub.upstream",
        repeat=True,
        metavar="ENDPOINT",
        help="publish this hub's tree to the central hub whose agents endpoint this is (hub-of-hubs); repeat it "
        "for each hub of a central pair (one link each)",
    )
    add_key_flag(
        parser,
        "--upstream-prefix",
        key="hub.upstream_prefixes",
        repeat=True,
        metavar="PREFIX",
        help="send only this subtree upstream (repeatable; default: everything)",
    )
    for names, key, value_type, text in _KEY_FLAGS:
        if key in ("hub.agents", "hub.subscribers", "hub.query"):
            metavar = "ENDPOINT"
        elif key == "pair.peer":
            metavar = "QUERY_ENDPOINT"
        elif key == "pair.peer_key" or key in ("hub.upstream_key", "hub.upstream_hub_key"):
            metavar = "FILE"
        elif key == "hub.state_dir":
            metavar = "DIR"
        elif key in ("hub.hub_id", "hub.upstream_mount", "hub.upstream_name"):
            metavar = key.rpartition("_")[2].upper()
        elif key == "hub.upstream_coalesce_ms":
            metavar = "MS"
        elif key.startswith("hub."):
            metavar = "LEVEL"
        elif key == "security.keys_dir":
            metavar = "DIR"
        elif value_type is float:
            metavar = "SECONDS" if key.endswith("_s") else "N"
        else:
            metavar = key.rpartition(".")[2].upper()
        add_key_flag(parser, *names, key=key, type=value_type, metavar=metavar, help=text)
    parser.set_defaults(handler=run)


def example_config() -> str:
    """The example configuration shipped with the package (deploy/examples/hub.toml in the sources)."""
    return resources.files("gsmon.hub").joinpath(EXAMPLE_CONFIG).read_text(encoding="utf-8")


def _check_keys(keys_dir: Path) -> str:
    """Load what the hub would load from its keys folder; a summary, or KeyFileError/AllowListError/..."""
    from gsmon.common.allowlist import ALLOW_LIST_FILE, HUB_KEY_NAME, AllowList, AllowListError
    from gsmon.common.keys import load_key_pair, require_curve, secret_key_path

    require_curve()
    load_key_pair(secret_key_path(keys_dir, HUB_KEY_NAME))
    allow_list = AllowList.load(keys_dir / ALLOW_LIST_FILE)
    if allow_list.is_empty:
        raise AllowListError(
            f"{keys_dir / ALLOW_LIST_FILE} allows nobody, so the hub would refuse every agent and subscriber: "
            "add them with gsmon keys agent / gsmon keys subscriber"
        )
    return f"keys {keys_dir} ({len(allow_list.agents)} agents, {len(allow_list.subscribers)} subscribers)"


def _setting_of(config: HubConfig, key: str) -> str:
    """The setting an operator changes for the dotted ``key``: its flag as typed, the key in the file, or the
    flag of the same name when the value is the default."""
    if key in config.origins:
        return config.origins[key]
    if config.source != "<defaults>":  # read_hub_config without a file
        return f"{key} in {config.source}"
    return f"--{key.partition('.')[2]}"


def _upstream_settings(config: HubConfig) -> Any:
    """The hub-of-hubs link's settings (keys loaded), or None; KeyFileError names the key."""
    from gsmon.common.keys import ClientKeys, KeyFileError
    from gsmon.hub.upstream import UpstreamSettings

    upstream = config.upstream
    if upstream is None:
        return None
    curve = None
    if upstream.secret_key_file is not None and upstream.hub_public_key_file is not None:
        try:
            curve = ClientKeys.load(upstream.secret_key_file, upstream.hub_public_key_file)
        except KeyFileError as error:
            raise error.at(config.where("hub.upstream_key")) from error
    return UpstreamSettings(
        endpoint=upstream.endpoint,
        more_endpoints=upstream.more_endpoints,
        mount=upstream.mount,
        name=upstream.name,
        prefixes=upstream.prefixes,
        min_level=upstream.min_level,
        coalesce_s=upstream.coalesce_ms / 1000,
        heartbeat_interval_s=config.settings.heartbeat_interval_s,
        curve=curve,
    )


def run(args: argparse.Namespace) -> int:
    """``gsmon hub``; its errors end the command in :func:`gsmon.common.cli.main` (status 2, or 1 when a port is
    taken), each naming the flag or file key that led to it (a bind error: the socket, the endpoint, and the
    setting to change)."""
    from gsmon.common.errors import BindError, GsmonError
    from gsmon.common.ready import ready_line

    if args.print_example_config:
        sys.stdout.write(example_config())
        return 0
    from gsmon.hub.config import read_hub_config

    config = read_hub_config(args.config, flag_overrides(args))
    bind_to = config.endpoints
    keys_dir = config.keys_dir
    keys_origin = config.where("security.keys_dir")
    if args.check_config:
        try:
            keys = _check_keys(keys_dir) if keys_dir is not None else "no keys (CURVE off)"
        except GsmonError as error:
            raise error.at(keys_origin) from error
        upstream = config.upstream
        if upstream is not None:
            _upstream_settings(config)  # the upstream key files load too
            keys += f"; upstream {', '.join(upstream.endpoints)} under {upstream.mount}"
        print(
            f"config OK: {config.source}: agents={bind_to.agents} subscribers={bind_to.subscribers} "
            f"query={bind_to.query}; {keys}"
        )
        return 0
    # Only now: checking a configuration needs neither the server nor ZeroMQ (~130 ms less).
    from gsmon.common.gc_tuning import GcTuner
    from gsmon.hub.journal import StoreError
    from gsmon.hub.server import HubServer

    logs.configure(config.logging.level, config.logging.format)

    server = HubServer(
        bind_to,
        config.settings,
        config.limits,
        keys_dir=keys_dir,
        state_dir=config.state_dir,
        alarm_settings=config.alarms,
        journal_retention=config.journal_retention,
        upstream=_upstream_settings(config),
        hub_id=config.hub_id,
        pair=config.pair,
        gc_tuner=GcTuner(config.gc_tuning),
    )
    try:
        bound = server.bind()
    except BindError as error:  # name the flag or key that asked for that endpoint
        raise error.naming(_setting_of(config, f"hub.{error.role}")) from error
    except StoreError:  # the state store: its message names the folder and what to do
        raise
    except GsmonError as error:  # the keys: the hub's pair, the allow-list, CURVE
        raise error.at(keys_origin) from error
    warnings = []
    exposed = [ep for ep in (bound.agents, bound.subscribers, bound.query) if not endpoints.is_loopback(ep)]
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
    line = ready_line(
        agents=bound.agents, subscribers=bound.subscribers, query=bound.query, WARNING=",".join(warnings) or None
    )
    print(line, flush=True)
    log.info("hub epoch %x serving", server.epoch)
    server.run()
    log.info("hub stopped")
    return 0
