"""The ``gsmon hub`` configuration file: schema, defaults and loader.

``load_hub_config(path)`` reads a TOML file into a frozen :class:`HubConfig`,
or raises :class:`~gsmon.common.config.ConfigError` naming the file, the key
and what was expected. Every key is optional. Command-line flags override the
file: ``read_hub_config(path, overrides)`` lays them over the file's data
before the one validation, so a flag obeys exactly its key's rule and an
error names the flag (``gsmon hub --agent-liveness 0.5`` is refused like
``agent_liveness = 0.5``). ``gsmon hub --print-example-config`` prints a
commented example (``example-hub.toml``, shipped with the package). Complete
schema, with the defaults::

    [hub]
    agents = "tcp://127.0.0.1:7761"       # where agents connect (port 0: any free port)
    subscribers = "tcp://127.0.0.1:7762"  # where subscribers (watch, get, programs) connect
    query = "tcp://127.0.0.1:7763"        # snapshots, hub info and commands
    state_dir = "/var/lib/gsmon"          # alarms, shelves, journal, contexts (SQLite, WAL); default: "state"
                                          #   beside keys_dir, else /var/lib/gsmon if writable, else
                                          #   $XDG_STATE_HOME/gsmon. state_dir = "" runs without a state store
                                          #   (no alarms, shelves or journal: only for benchmarks/tests)
    alarm_min_level = "ORANGE"            # an alarm opens at this effective level: ORANGE, RED or CRITICAL
    max_shelve_s = 86400.0                # operators may shelve for at most this long (admins: no limit)

    hub_id = ""                           # this hub's id in a federation (default: <host name>:<agents port>)
    # Hub-of-hubs (a site hub under a central hub; protocol "Hub-of-hubs"): all optional, upstream first.
    upstream = "tcp://central:7761"       # publish this hub's tree to that central hub's agents endpoint, or
                                          #   to each hub of a central pair: ["tcp://ca:7761", "tcp://cb:7761"]
                                          #   (--upstream repeated: one link each, the same settings and keys)
    upstream_mount = "GS1"                #   under this mount there (required with upstream)
    upstream_name = "GS1"                 #   as this agent name (default: the mount's last segment)
    upstream_prefixes = ["rack1"]         #   only these subtrees of this hub (default: everything)
    upstream_min_level = "NONE"           #   value-only changes below this level are not sent: NONE, GREEN,
                                          #   ORANGE, RED, STALE or CRITICAL (level changes always are)
    upstream_coalesce_ms = 1000           #   at most one update per point per interval (0: every change)
    upstream_key = "GS1.key_secret"       #   CURVE: this hub's agent secret key at the central hub ...
    upstream_hub_key = "central.key"      #   ... and the central hub's public key (both or neither)

    [[alarms]]                            # optional, repeatable, first match wins: per path pattern
    path = "GS1/*/Power/**"               #   * one segment, ** any number of segments
    latch = true                          #   latch (default: RED and above and STALE latch, ORANGE not)
    min_level = "RED"                     #   this path's own alarm_min_level (optional)
    # Listening on a station network: "tcp://0.0.0.0:7761" etc. -- with [security].

    [liveness]
    heartbeat_interval_s = 1.0            # hub heartbeat to subscribers; health points refresh
    agent_liveness = 3.0                  # an agent is silent after this many of ITS heartbeat intervals
    stale_factor = 3.0                    # a point is stale when not refreshed within stale_factor x its dt
    stale_slack_s = 1.0                   #   ... plus this slack
    removal_grace_s = 10.0                # points an agent's full state no longer lists go after this
    resync_interval_s = 1.0               # at most one full-state request per agent per interval

    [retention]
    agent_retention_s = 3600.0            # a silent agent and its (stale) points are forgotten after this
                                          #   (until then they stay, STALE; `gsmon forget NAME` removes one now)
    journal_days = 90.0                   # journal rows (and cleared alarms, ended shelves) older are pruned
    journal_max_bytes = 1073741824        # then the oldest rows while the state store is larger than this

    [limits]
    max_frame_bytes = 16777216            # larger agent messages disconnect the sender (ZMQ_MAXMSGSIZE)
    max_points_per_message = 5000
    max_query_frame_bytes = 65536
    max_nodes = 1000000                   # new points beyond this are refused and counted
    max_points_per_agent = 100000
    max_agents = 10000
    max_published_prefixes = 1000         # distinct subscriber prefixes tracked for gap detection
    agents_rcvhwm = 100000                # messages queued from agents before ZeroMQ drops
    subscribers_sndhwm = 100000           # messages queued per subscriber before it misses some (and resyncs):
                                          #   a NODE, or a NODES batch of at most ~16 KiB (protocol 1.4)

    [pair]                                # optional (1.3): the other hub of a pair (protocol: Hub pairs)
    peer = "tcp://gs1-hub-b:7763"         #   its query endpoint (--peer); peer_key = its public key file
    hub_id = "gs1-a"                      #   default: made once, kept in the state directory; peer_timeout_s = 15

    [security]                            # optional: CURVE on every TCP endpoint
    keys_dir = "/etc/gsmon/keys"          # hub.key_secret and authorized.toml (see `gsmon keys`)

    [process]
    gc_tuning = true                      # freeze the start-up heap and raise the collector's thresholds
                                          #   (gsmon.common.gc_tuning); false: CPython's defaults

    [logging]
    level = "INFO"                        # DEBUG, INFO, WARNING or ERROR
    format = "text"                       # or "json" (one JSON object per line)
    alerts = "WARNING"                    # level of the merged tree's alert-transition lines, or "OFF"
    alert_threshold = "RED"               # log a point's transition when its old or new level is at least
                                          #   this: GREEN, ORANGE, RED (default; STALE counts) or CRITICAL

Relative paths are taken relative to the file's folder.

This module owns the settings' types (:class:`HubEndpoints`,
:class:`ServerLimits`, with :class:`~gsmon.hub.state.HubSettings` from the
pure core) and imports neither the server nor ZeroMQ: checking a
configuration needs no sockets. The server imports its settings from here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from gsmon.common import endpoints, names
from gsmon.common import protocol as proto
from gsmon.common.alerts import CriticalAlert, GreenAlert, OrangeAlert, RedAlert
from gsmon.common.config import ConfigError, Section, load_toml, parse_toml, with_overrides
from gsmon.common.logs import FORMATS, LEVELS
from gsmon.hub.alarms import AlarmRule, AlarmSettings, AlarmSettingsError
from gsmon.hub.journal import Retention, default_state_dir
from gsmon.hub.pair import PairConfig, PairSettings, check_hub_id
from gsmon.hub.state import HubSettings

__all__ = [
    "ConfigError",
    "HubConfig",
    "HubEndpoints",
    "LoggingSettings",
    "ServerLimits",
    "load_hub_config",
    "parse_hub_config",
    "read_hub_config",
]


@dataclass(frozen=True, slots=True)
class HubEndpoints:
    """Where the hub binds (port 0 picks a free port)."""

    agents: str = endpoints.default_endpoint(endpoints.DEFAULT_AGENTS_PORT)
    subscribers: str = endpoints.default_endpoint(endpoints.DEFAULT_SUBSCRIBERS_PORT)
    query: str = endpoints.default_endpoint(endpoints.DEFAULT_QUERY_PORT)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Socket-level limits (the core has its own in HubSettings)."""

    max_frame_bytes: int = proto.MAX_FRAME_BYTES
    max_points_per_message: int = proto.MAX_POINTS_PER_MESSAGE
    max_query_frame_bytes: int = 64 * 1024
    agents_rcvhwm: int = 100_000
    subscribers_sndhwm: int = 100_000
    query_sndhwm: int = 10_000
    max_subscriptions_per_subscriber: int = 100
    max_subscriptions: int = 100_000


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "INFO"
    format: str = "text"


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """The ``upstream*`` keys of ``[hub]`` (hub-of-hubs): where and what this site hub publishes."""

    endpoint: str  # the (first) central hub's agents endpoint
    mount: str
    name: str = ""
    prefixes: tuple[str, ...] = ()
    min_level: int = 0
    coalesce_ms: int = 1000
    secret_key_file: Path | None = None
    hub_public_key_file: Path | None = None
    # ``upstream`` given as an array: the other central hubs (a central pair), one link each.
    more_endpoints: tuple[str, ...] = ()

    @property
    def endpoints(self) -> tuple[str, ...]:
        return (self.endpoint, *self.more_endpoints)


@dataclass(frozen=True, slots=True)
class HubConfig:
    """A whole hub configuration."""

    endpoints: HubEndpoints = field(default_factory=HubEndpoints)
    settings: HubSettings = field(default_factory=HubSettings)
    limits: ServerLimits = field(default_factory=ServerLimits)
    keys_dir: Path | None = None
    # None: no state store (state_dir = ""); the default is resolved from keys_dir (default_state_dir).
    state_dir: Path | None = None
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    journal_retention: Retention = field(default_factory=Retention)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    upstream: UpstreamConfig | None = None
    hub_id: str | None = None
    pair: PairConfig | None = None  # [pair]: a hub of a pair (issue 17 section 2)
    gc_tuning: bool = True  # [process] gc_tuning: see gsmon.common.gc_tuning
    source: str = "<defaults>"
    # Dotted keys set by flags, with the flag as typed (see read_hub_config).
    origins: Mapping[str, str] = field(default_factory=dict)

    def where(self, key: str) -> str:
        """How messages name the dotted ``key``: the flag that set it, or ``<file>: <key>``."""
        return Section({}, self.source, origins=self.origins).where(key)


# Which HubSettings / ServerLimits field each [liveness], [retention] and
# [limits] key sets (the names are the same).
_LIVENESS_KEYS = (
    "heartbeat_interval_s",
    "agent_liveness",
    "stale_factor",
    "stale_slack_s",
    "removal_grace_s",
    "resync_interval_s",
)
_SETTINGS_LIMITS = ("max_nodes", "max_points_per_agent", "max_agents", "max_published_prefixes")
# [logging] alerts and alert_threshold, as the agent's configuration has them.
_ALERT_LOG_LEVELS: Final = (*LEVELS, "OFF")
_ALERT_THRESHOLDS: Final = {cls.alertstr: cls.alertcode for cls in (GreenAlert, OrangeAlert, RedAlert, CriticalAlert)}
_SERVER_LIMITS = tuple(f.name for f in fields(ServerLimits))


def load_hub_config(path: str | Path) -> HubConfig:
    """Read the hub configuration file at ``path`` (ConfigError on any problem)."""
    return _read(load_toml(path))


def read_hub_config(path: str | Path | None, overrides: Mapping[str, tuple[object, str]] | None = None) -> HubConfig:
    """The file at ``path`` (none: the defaults) with ``overrides`` ({dotted key: (value, flag)}) laid over
    it, validated once; ConfigError names the flag for a value that came from one."""
    root = load_toml(path) if path is not None else Section({}, "<defaults>", base_dir=Path())
    return _read(with_overrides(root, overrides or {}))


def parse_hub_config(text: str, file: str = "<string>", base_dir: Path | None = None) -> HubConfig:
    """Parse hub configuration text (for tests and tools)."""
    return _read(parse_toml(text, file, base_dir))


def _read(root: Section) -> HubConfig:
    defaults_endpoints = HubEndpoints()
    hub = root.section("hub")
    endpoints = HubEndpoints(
        agents=hub.endpoint("agents", defaults_endpoints.agents),
        subscribers=hub.endpoint("subscribers", defaults_endpoints.subscribers),
        query=hub.endpoint("query", defaults_endpoints.query),
    )

    base_settings = HubSettings()
    changes: dict[str, Any] = {}
    liveness = root.section("liveness")
    for key in _LIVENESS_KEYS:
        if key in ("agent_liveness", "stale_factor"):
            changes[key] = liveness.number(key, getattr(base_settings, key), minimum=1.0, maximum=1000.0)
        else:
            changes[key] = liveness.seconds(key, getattr(base_settings, key))
    retention = root.section("retention")
    changes["agent_retention_s"] = retention.seconds("agent_retention_s", base_settings.agent_retention_s)

    limits_table = root.section("limits")
    for key in _SETTINGS_LIMITS:
        changes[key] = limits_table.integer(key, getattr(base_settings, key), minimum=1)
    base_limits = ServerLimits()
    limit_changes = {key: limits_table.integer(key, getattr(base_limits, key), minimum=1) for key in _SERVER_LIMITS}

    security = root.section("security")
    keys_dir = security.file_path("keys_dir", None)

    if "state_dir" in hub and hub.string("state_dir", allow_empty=True) == "":
        state_dir: Path | None = None
    else:
        state_dir = hub.file_path("state_dir", None) or default_state_dir(keys_dir)
    levels = {cls.alertstr: cls.alertcode for cls in (OrangeAlert, RedAlert, CriticalAlert)}
    min_name = hub.choice("alarm_min_level", tuple(levels), "ORANGE", upper=True)
    max_shelve_s = hub.seconds("max_shelve_s", 24 * 3600.0)
    rules = []
    for rule in root.sections("alarms"):
        rule_min = rule.choice("min_level", tuple(levels), None, upper=True) if "min_level" in rule else None
        rules.append(
            AlarmRule(
                path=rule.string("path"),
                latch=rule.boolean("latch", None),
                min_level=None if rule_min is None else levels[rule_min],
            )
        )
    try:
        alarm_settings = AlarmSettings(alarm_min_level=levels[min_name], max_shelve_s=max_shelve_s, rules=tuple(rules))
    except AlarmSettingsError as error:
        raise root.error("alarms", str(error)) from None
    journal_days = retention.number("journal_days", 90.0, minimum=0.001, maximum=1e6)
    journal_bytes = retention.integer("journal_max_bytes", 1 << 30, minimum=1 << 20)

    upstream = _upstream(hub)
    hub_id = hub.string("hub_id", None)
    pair = _read_pair(root.section("pair"))
    if pair is not None and pair.hub_id is None and hub_id is not None:
        # One id per hub: --hub-id names it in a federation and in its pair alike.
        if (problem := check_hub_id(hub_id)) is not None:
            raise hub.error("hub_id", problem)
        pair = dataclasses.replace(pair, hub_id=hub_id)

    gc_tuning = root.section("process").boolean("gc_tuning", True)

    logging_table = root.section("logging")
    level = logging_table.choice("level", LEVELS, "INFO", upper=True)
    fmt = logging_table.choice("format", FORMATS, "text")
    alerts = logging_table.choice("alerts", _ALERT_LOG_LEVELS, "WARNING", upper=True)
    changes["alert_log_level"] = None if alerts == "OFF" else logging.getLevelName(alerts)
    threshold = logging_table.choice("alert_threshold", tuple(_ALERT_THRESHOLDS), "RED", upper=True)
    changes["alert_log_threshold"] = _ALERT_THRESHOLDS[threshold]
    root.finish()
    return HubConfig(
        endpoints=endpoints,
        settings=HubSettings(**changes),
        limits=ServerLimits(**limit_changes),
        keys_dir=keys_dir,
        state_dir=state_dir,
        alarms=alarm_settings,
        journal_retention=Retention(max_age_days=journal_days, max_size_bytes=journal_bytes),
        logging=LoggingSettings(level, fmt),
        upstream=upstream,
        hub_id=hub_id,
        pair=pair,
        gc_tuning=gc_tuning,
        source=root.file,
        origins=dict(root.origins),
    )


_UPSTREAM_LEVELS: Final = {"NONE": 0, "GREEN": 10, "ORANGE": 20, "RED": 30, "STALE": 50, "CRITICAL": 100}


def _upstream(hub: Section) -> UpstreamConfig | None:
    """The hub-of-hubs keys: None without ``upstream``; each of the others needs it."""
    others = (
        "upstream_mount",
        "upstream_name",
        "upstream_prefixes",
        "upstream_min_level",
        "upstream_coalesce_ms",
        "upstream_key",
        "upstream_hub_key",
    )
    hub.known("upstream", *others)
    if "upstream" not in hub:
        for key in others:
            if key in hub:
                raise hub.error(key, "needs upstream: the central hub's agents endpoint (tcp://central:7761)")
        return None
    # One central hub, or the hubs of a central pair (an array, like an agent's hubs; --upstream repeated).
    endpoint, *more = hub.endpoint_list("upstream", connect=True)
    if "upstream_mount" not in hub:
        raise hub.error(
            "upstream_mount",
            "is required with upstream: where this hub's tree hangs at the central hub (--upstream-mount GS1)",
        )
    mount = hub.string("upstream_mount")
    try:
        names.check_mount(mount)
    except names.InvalidNameError as error:
        raise hub.error("upstream_mount", str(error)) from None
    name = hub.string("upstream_name", "")
    sender = name or names.split(mount)[-1]
    if not names.is_agent_name(sender):
        raise hub.error(
            "upstream_name" if name else "upstream_mount",
            f"{sender!r} is not a valid agent name for the central hub: set upstream_name",
        )
    prefixes = tuple(hub.strings("upstream_prefixes", []))
    for prefix in prefixes:
        try:
            names.check_path(prefix.rstrip("/"), "upstream prefix")
        except names.InvalidNameError as error:
            raise hub.error("upstream_prefixes", str(error)) from None
    level_name = hub.choice("upstream_min_level", tuple(_UPSTREAM_LEVELS), "NONE", upper=True)
    coalesce_ms = hub.integer("upstream_coalesce_ms", 1000, minimum=0, maximum=3_600_000)
    secret = hub.file_path("upstream_key", None)
    public = hub.file_path("upstream_hub_key", None)
    if (secret is None) != (public is None):
        missing = "upstream_hub_key" if public is None else "upstream_key"
        raise hub.error(
            missing,
            "is missing: upstream_key (this hub's agent secret key) and upstream_hub_key (the central hub's "
            "public key) go together",
        )
    return UpstreamConfig(
        endpoint=endpoint,
        mount=mount,
        name=name,
        prefixes=prefixes,
        min_level=_UPSTREAM_LEVELS[level_name],
        coalesce_ms=coalesce_ms,
        secret_key_file=secret,
        hub_public_key_file=public,
        more_endpoints=tuple(more),
    )


def _read_pair(table: Section) -> PairConfig | None:
    """``[pair]``: ``peer`` (the other hub's query endpoint), ``peer_key`` (its public key file, with keys),
    ``hub_id`` (default: the one stored in the state directory), ``peer_timeout_s`` (default 15)."""
    table.known("peer", "peer_key", "hub_id", "peer_timeout_s")
    if "peer" not in table:
        for key in ("peer_key", "hub_id", "peer_timeout_s"):
            if key in table:
                raise table.error(key, "is set without pair.peer (--peer QUERY_ENDPOINT): set both, or neither")
        return None
    peer = table.endpoint("peer", connect=True)
    peer_key = table.file_path("peer_key", None)
    hub_id = str(table.string("hub_id")) if "hub_id" in table else None
    if hub_id is not None and (problem := check_hub_id(hub_id)) is not None:
        raise table.error("hub_id", problem)
    timeout_s = table.seconds("peer_timeout_s", PairSettings().peer_timeout_s)
    return PairConfig(peer, peer_key, hub_id, PairSettings(peer_timeout_s=timeout_s))
