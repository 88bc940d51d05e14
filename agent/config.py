"""The ``gsmon agent`` configuration file: schema, defaults and loader.

``load_agent_config(path)`` reads a TOML file into a frozen :class:`AgentConfig`,
or raises :class:`~gsmon.common.config.ConfigError` naming the file, the key and
what was expected. Every key is optional; an empty file is a working agent that
runs the built-in probes and publishes to a hub on the same host. Relative file
paths are taken relative to the configuration file's folder.

Command-line flags and the environment go through the same readers:
``read_agent_config(path, overrides)`` lays the flags' values over the file's
data before the one validation (an error names the flag), and when neither a
flag nor the file names the hub or the keys, ``GSMON_AGENT_HUB``,
``GSMON_KEY`` and ``GSMON_HUB_KEY`` do (see
:mod:`gsmon.common.client_settings`). ``gsmon agent --print-example-config``
prints a commented example (``example-agent.toml``, shipped with the package).

Complete schema, with the defaults::

    # Top level: user monitor modules (see gsmon.agent.modules): Python files
    # (a path ending in .py, or containing "/") or importable module names.
    modules = []                          # e.g. ["/etc/gsmon/antenna.py", "mypackage.monitors"]

    [agent]
    name = "<host name>"                  # this agent's name; default: the host name, made a valid name
    mount = "<name>"                      # where its points appear in the hub's tree, e.g. "GS1/Rack1"
    hubs = ["tcp://127.0.0.1:7761"]       # hub agent-endpoints to connect to (tcp://host:port, ipc://, inproc://)
    flush_interval_s = 0.05               # how often changed points are sent (one batch per flush)
    heartbeat_interval_s = 1.0            # heartbeat period when nothing else is sent
    state_interval_s = 30.0               # period of the full-state message that heals lost deltas
    workers = 10                          # threads running monitor functions (1-1000)
    default_dt_s = 10.0                   # poll interval of module points declared without dt
    default_timeout_s = 10.0              # a function still running after this long is reported as an error
    state_dir = "/var/lib/gsmon"          # the outbox lives here (outbox-<name>.db); default /var/lib/gsmon if
                                          #   writable, else $XDG_STATE_HOME/gsmon; "" keeps it in memory only

    [outbox]                              # every effective-level transition, numbered (tseq), kept for the hubs:
    enabled = true                        #   a hub that was down asks for what it missed (protocol 1.3)
    max_age_days = 7.0                    # entries older than this are dropped ...
    max_entries = 100000                  # ... and beyond this many the oldest (a hub that had not confirmed
                                          #   them journals the range as lost_transitions)

    [agent.security]                      # optional: CURVE encryption and authentication; both keys or neither
    hub_public_key_file = "hub.key"       # the hub's public key
    secret_key_file = "rack1.key_secret"  # this agent's secret key

    [logging]
    level = "INFO"                        # DEBUG, INFO, WARNING or ERROR (any case)
    format = "text"                       # "text", or "json" for one JSON object per line
    alerts = "WARNING"                    # level of alert-transition lines, or "OFF" (see below)
    alert_threshold = "RED"               # log a transition when its old or new level is at least
                                          #   this: GREEN, ORANGE, RED or CRITICAL

    # Built-in probes (gsmon.agent.probes). Each family has `enabled` (default
    # true) and its own poll interval `dt_s`; the default interval is shown.
    [probes.cpu]                          # CPU/cpu_total_percent, CPU/cpu<N>_percent
    enabled = true
    dt_s = 5.0
    per_core = true                       # also one point per core

    [probes.load]                         # CPU/load_1min, load_5min, load_15min
    dt_s = 10.0

    [probes.memory]                       # Memory/memory_used_percent, memory_available_bytes, memory_total_bytes
    dt_s = 10.0

    [probes.swap]                         # Memory/swap_used_percent, swap_used_bytes, swap_total_bytes
    dt_s = 30.0

    [probes.disk]                         # Disk/<mount>_used_percent, <mount>_free_bytes, <mount>_total_bytes
    dt_s = 60.0                           # (mount "/" is "root", "/var/log" is "var_log")
    mounts = []                           # mount points to watch; empty: every physical partition
    ignore_mounts = ["/snap/*", "/var/snap/*", "/var/lib/docker/*", "/run/*"]   # globs, when mounts is empty
    ignore_fstypes = ["squashfs", "iso9660", "overlay"]                        # when mounts is empty

    [probes.disk_io]                      # Disk/<disk>_read_bytes_per_s, _write_bytes_per_s,
    dt_s = 10.0                           #   _read_ops_per_s, _write_ops_per_s
    disks = []                            # disk names (e.g. "sda"); empty: every whole disk
    ignore = ["loop*", "ram*", "zram*", "sr*", "fd*"]   # globs, when disks is empty

    [probes.network]                      # Network/<if>_rx_bytes_per_s, _tx_bytes_per_s, _rx_errors_per_s,
    dt_s = 10.0                           #   _tx_errors_per_s, _rx_drops_per_s, _tx_drops_per_s
    interfaces = []                       # interface names; empty: every interface
    ignore = ["lo"]                       # globs, when interfaces is empty

    [probes.sensors]                      # Sensors/<chip>_<label>_temp_c, <chip>_<label>_fan_rpm,
    dt_s = 30.0                           #   where the OS reports them (nothing otherwise)
    temperatures = true
    fans = true

    [probes.uptime]                       # System/uptime_s
    dt_s = 60.0

    [[probes.process]]                    # one table per process to watch; under Processes/
    name = "gpsd"                         # point name: Green (process count) when running, Red when not;
                                          #   also <name>_cpu_percent and <name>_rss_bytes
    match = "gpsd"                        # the process name, or a substring of its command line
    dt_s = 10.0

    # Thresholds (gsmon.agent.thresholds): turn numeric points into Green,
    # Orange, Red or Critical. First matching table wins.
    [[thresholds]]
    point = "CPU/cpu_total_percent"       # a path inside this agent (fnmatch globs allowed) or a bare point name
    orange = 70.0                         # orange, red, critical: at least one
    red = 90.0
    critical = 99.0                       # optional
    direction = "above"                   # or "below", when low values are bad (free space)
    hysteresis = 2.0                      # default 0.0; units of the point: how far back past a threshold
                                          #   the value must come before its level drops

    # Debounce and flap guard (gsmon.agent.debounce), all off by default: the
    # level a point shows (and the hub alarms on) waits until the raw level has
    # held. First matching table wins; a module point's own decorator settings win.
    [[debounce]]
    point = "Sensors/*_temp_c"            # a path inside this agent (fnmatch globs allowed) or a bare point name
    for_s = 30.0                          # a higher level must hold this long before it shows (0 = off)
    clear_for_s = 60.0                    # a lower level must hold this long before it shows (0 = off)
    m_of_n = [3, 5]                       # a level counts when 3 of the last 5 polls reach it (default off)
    flap_window_s = 600.0                 # flap guard over this window (0 = off); while flapping the level
    flap_start = 6                        #   is held at the window's worst: starts above 6 changes,
    flap_stop = 2                         #   stops at 2 or fewer (must be below flap_start)

Units are in the key names (``_s`` seconds). Unknown keys are errors, so a typo
never silently falls back to a default.

Alert transitions: the agent logs a point's alert change (path, old and new
level, value) when the old or the new level is at least ``alert_threshold``
-- by default every change into or out of Red or Critical -- at the level
``alerts``, WARNING by default, so that an agent logging at INFO shows them.
This is the seed's ``loglvl_alerts``/``logthr_alerts`` pair, made the
defaults of the agent's Monitor: built-in probes and module points declared
without their own ``loglvl_alerts=``/``logthr_alerts=`` use them; a module
that passes its own keeps them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Final, Literal

from gsmon.agent.debounce import DebounceSettings, DebounceSettingsError
from gsmon.agent.thresholds import Direction, Threshold
from gsmon.common import client_settings
from gsmon.common import names as naming
from gsmon.common.config import ConfigError, Section, default_state_dir, load_toml, parse_toml, with_overrides
from gsmon.common.names import default_agent_name

__all__ = [
    "DEFAULT_HUB_ENDPOINT",
    "AgentConfig",
    "AgentSettings",
    "ConfigError",
    "CpuProbe",
    "DebounceRule",
    "DiskIOProbe",
    "DiskProbe",
    "LoadProbe",
    "LoggingConfig",
    "MemoryProbe",
    "NetworkProbe",
    "PointDebounce",
    "ProbesConfig",
    "ProcessCheck",
    "SecurityConfig",
    "SensorsProbe",
    "SwapProbe",
    "UptimeProbe",
    "default_agent_config",
    "default_agent_name",
    "is_module_file",
    "load_agent_config",
    "parse_agent_config",
    "read_agent_config",
]

DEFAULT_HUB_ENDPOINT: Final = "tcp://127.0.0.1:7761"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS: Final = ("text", "json")
ALERT_LOG_LEVELS: Final = (*LOG_LEVELS, "OFF")
# [logging] alert_threshold: a name -> the alert code it stands for.
ALERT_THRESHOLDS: Final = {"GREEN": 10, "ORANGE": 20, "RED": 30, "CRITICAL": 100}
# The longest suffix a process check adds to its name ("<name>_cpu_percent").
_PROCESS_SUFFIXES: Final = ("_cpu_percent", "_rss_bytes")

_DEFAULT_PROCESS_DT_S: Final = 10.0

LogFormat = Literal["text", "json"]


# ----------------------------------------------------------------------
# The schema, as frozen dataclasses (defaults = the documented defaults)
# ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """``[agent.security]``: CURVE key files (both are required together)."""

    hub_public_key_file: Path
    secret_key_file: Path


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """``[agent]``: identity, hubs and timing of this agent."""

    name: str
    mount: str
    hubs: tuple[str, ...] = (DEFAULT_HUB_ENDPOINT,)
    flush_interval_s: float = 0.05
    heartbeat_interval_s: float = 1.0
    state_interval_s: float = 30.0
    workers: int = 10
    default_dt_s: float = 10.0
    default_timeout_s: float = 10.0
    security: SecurityConfig | None = None
    # Where the outbox file is kept (None: in memory, state_dir = ""); see agent/outbox.py.
    state_dir: Path | None = None
    state_dir_given: bool = False  # set by the file or a flag (else the default, which may be unwritable)


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """``[outbox]``: the transitions a hub that was down asks back (agent/outbox.py)."""

    enabled: bool = True
    max_age_days: float = 7.0
    max_entries: int = 100_000


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """``[logging]``. ``alerts`` is a level name or ``"OFF"``; ``alert_threshold`` an alert code."""

    level: str = "INFO"
    format: LogFormat = "text"
    alerts: str = "WARNING"
    alert_threshold: int = ALERT_THRESHOLDS["RED"]


@dataclass(frozen=True, slots=True)
class CpuProbe:
    """``[probes.cpu]``: total and per-core busy percentages."""

    enabled: bool = True
    dt_s: float = 5.0
    per_core: bool = True


@dataclass(frozen=True, slots=True)
class LoadProbe:
    """``[probes.load]``: load averages."""

    enabled: bool = True
    dt_s: float = 10.0


@dataclass(frozen=True, slots=True)
class MemoryProbe:
    """``[probes.memory]``: RAM use."""

    enabled: bool = True
    dt_s: float = 10.0


@dataclass(frozen=True, slots=True)
class SwapProbe:
    """``[probes.swap]``: swap use."""

    enabled: bool = True
    dt_s: float = 30.0


@dataclass(frozen=True, slots=True)
class DiskProbe:
    """``[probes.disk]``: space used per mounted file system."""

    enabled: bool = True
    dt_s: float = 60.0
    mounts: tuple[str, ...] = ()
    ignore_mounts: tuple[str, ...] = ("/snap/*", "/var/snap/*", "/var/lib/docker/*", "/run/*")
    ignore_fstypes: tuple[str, ...] = ("squashfs", "iso9660", "overlay")


@dataclass(frozen=True, slots=True)
class DiskIOProbe:
    """``[probes.disk_io]``: read/write rates per disk."""

    enabled: bool = True
    dt_s: float = 10.0
    disks: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ("loop*", "ram*", "zram*", "sr*", "fd*")


@dataclass(frozen=True, slots=True)
class NetworkProbe:
    """``[probes.network]``: traffic, error and drop rates per interface."""

    enabled: bool = True
    dt_s: float = 10.0
    interfaces: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ("lo",)


@dataclass(frozen=True, slots=True)
class SensorsProbe:
    """``[probes.sensors]``: temperatures and fan speeds, where the OS reports them."""

    enabled: bool = True
    dt_s: float = 30.0
    temperatures: bool = True
    fans: bool = True


@dataclass(frozen=True, slots=True)
class UptimeProbe:
    """``[probes.uptime]``: seconds since boot."""

    enabled: bool = True
    dt_s: float = 60.0


@dataclass(frozen=True, slots=True)
class ProcessCheck:
    """One ``[[probes.process]]`` table: a process that must be running."""

    name: str
    match: str
    dt_s: float = _DEFAULT_PROCESS_DT_S


@dataclass(frozen=True, slots=True)
class ProbesConfig:
    """``[probes]``: the built-in probe families and process checks."""

    cpu: CpuProbe = field(default_factory=CpuProbe)
    load: LoadProbe = field(default_factory=LoadProbe)
    memory: MemoryProbe = field(default_factory=MemoryProbe)
    swap: SwapProbe = field(default_factory=SwapProbe)
    disk: DiskProbe = field(default_factory=DiskProbe)
    disk_io: DiskIOProbe = field(default_factory=DiskIOProbe)
    network: NetworkProbe = field(default_factory=NetworkProbe)
    sensors: SensorsProbe = field(default_factory=SensorsProbe)
    uptime: UptimeProbe = field(default_factory=UptimeProbe)
    processes: tuple[ProcessCheck, ...] = ()


@dataclass(frozen=True, slots=True)
class PointDebounce:
    """One ``[[debounce]]`` table: the settings of the points ``point`` matches.

    ``point`` is matched as a threshold's is: a path inside the agent (with
    :mod:`fnmatch` wildcards) when it holds a ``/``, else the point's name.
    """

    point: str
    settings: DebounceSettings

    def matches(self, path: str) -> bool:
        if naming.SEPARATOR in self.point:
            return fnmatchcase(path, self.point)
        return fnmatchcase(naming.split(path)[-1], self.point)


class DebounceRule:
    """``rule(path) -> settings``: the first ``[[debounce]]`` table that matches (for
    :meth:`gsmon.agent.monitor.Monitor.set_debounce_rule`)."""

    __slots__ = ("tables",)

    def __init__(self, tables: tuple[PointDebounce, ...]) -> None:
        self.tables = tables

    def __call__(self, path: str) -> DebounceSettings | None:
        return next((table.settings for table in self.tables if table.matches(path)), None)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """A whole agent configuration file.

    ``source`` is the file it was read from (``"<defaults>"`` or
    ``"<string>"`` when there was none); error messages about modules name it.
    """

    agent: AgentSettings
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    probes: ProbesConfig = field(default_factory=ProbesConfig)
    thresholds: tuple[Threshold, ...] = ()
    debounce: tuple[PointDebounce, ...] = ()
    modules: tuple[str, ...] = ()
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    source: str = "<defaults>"
    # Dotted keys set by flags or variables, with the flag/variable (see read_agent_config).
    origins: Mapping[str, str] = field(default_factory=dict)

    def where(self, key: str) -> str:
        """How messages name the dotted ``key``: the flag or variable that set it, or ``<file>: <key>``."""
        return Section({}, self.source, origins=self.origins).where(key)


# ----------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------


def load_agent_config(path: str | Path) -> AgentConfig:
    """Read the agent configuration file at ``path``.

    Raises :class:`~gsmon.common.config.ConfigError` (message: file, dotted
    key, what was expected) for a missing or unreadable file, invalid TOML,
    an unknown key, or a value of the wrong type or out of range.
    """
    return _read(load_toml(path))


def parse_agent_config(text: str, file: str = "<string>", base_dir: Path | None = None) -> AgentConfig:
    """Parse an agent configuration from TOML ``text`` (errors name ``file``;
    relative paths are resolved against ``base_dir``, default the current folder)."""
    return _read(parse_toml(text, file, base_dir if base_dir is not None else Path()))


def read_agent_config(
    path: str | Path | None,
    overrides: Mapping[str, tuple[object, str]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentConfig:
    """The file at ``path`` (none: the defaults) with the flags' ``overrides`` ({dotted key: (value,
    flag)}) laid over it, and the environment filling what neither names, validated once.

    ``GSMON_AGENT_HUB`` sets ``agent.hubs`` when no flag and no file does;
    ``GSMON_KEY``/``GSMON_HUB_KEY`` set ``agent.security`` likewise (``environ``
    defaults to ``os.environ``). Raises ConfigError naming the flag, the
    variable or the file's key.
    """
    root = load_toml(path) if path is not None else Section({}, "<defaults>", base_dir=Path())
    layered = dict(overrides or {})
    agent_table = root._data.get("agent")
    in_file = agent_table if isinstance(agent_table, Mapping) else {}
    security_table = in_file.get("security")
    file_security = isinstance(security_table, Mapping) and bool(security_table)
    flag_keys = {key for key, (value, _) in layered.items() if value is not None}
    key_flags = {"agent.security.secret_key_file", "agent.security.hub_public_key_file"} & flag_keys
    needs_hub = "agent.hubs" not in flag_keys and "hubs" not in in_file
    needs_keys = not file_security and not key_flags
    if needs_hub or needs_keys:
        env = client_settings.agent_environment(environ)
        if needs_hub and env.hub is not None:
            layered["agent.hubs"] = ([env.hub], client_settings.AGENT_HUB_VARIABLE)
        if needs_keys and env.key is not None and env.hub_key is not None:
            layered["agent.security.secret_key_file"] = (str(env.key), client_settings.KEY_VARIABLE)
            layered["agent.security.hub_public_key_file"] = (str(env.hub_key), client_settings.HUB_KEY_VARIABLE)
    return _read(with_overrides(root, layered))


def default_agent_config() -> AgentConfig:
    """The configuration of an agent started without a file."""
    return AgentConfig(agent=_agent_settings(Section({}, "<defaults>")), source="<defaults>")


def _read(root: Section) -> AgentConfig:
    config = AgentConfig(
        agent=_agent_settings(root.section("agent")),
        logging=_logging(root.section("logging")),
        probes=_probes(root.section("probes")),
        thresholds=tuple(_threshold(table) for table in root.sections("thresholds")),
        debounce=tuple(_debounce(table) for table in root.sections("debounce")),
        modules=_modules(root),
        outbox=_outbox(root.section("outbox")),
        source=root.file,
        origins=dict(root.origins),
    )
    root.finish()
    return config


def _agent_settings(table: Section) -> AgentSettings:
    name = table.agent_name("name", None)
    if name is None:
        name = default_agent_name()
    mount = table.mount("mount", name)
    return AgentSettings(
        name=name,
        mount=mount,
        hubs=tuple(table.endpoints("hubs", [DEFAULT_HUB_ENDPOINT], connect=True)),
        flush_interval_s=table.seconds("flush_interval_s", 0.05),
        heartbeat_interval_s=table.seconds("heartbeat_interval_s", 1.0),
        state_interval_s=table.seconds("state_interval_s", 30.0),
        workers=table.integer("workers", 10, minimum=1, maximum=1000),
        default_dt_s=table.seconds("default_dt_s", 10.0),
        default_timeout_s=table.seconds("default_timeout_s", 10.0),
        security=_security(table.section("security")),
        state_dir=_state_dir(table),
        state_dir_given="state_dir" in table,
    )


def _state_dir(table: Section) -> Path | None:
    if "state_dir" in table and table.string("state_dir", allow_empty=True) == "":
        return None
    found = table.file_path("state_dir", None)
    return found if found is not None else default_state_dir()


def writable_folder(path: Path) -> Path | None:
    """The first existing folder at or above ``path`` when it is not writable (None: ``path`` can be made)."""
    folder = path
    while True:
        try:
            exists = folder.exists()
        except OSError:  # e.g. under another user's 0700 home: we cannot even look, so cannot write there
            return folder
        if exists or folder.parent == folder:
            break
        folder = folder.parent
    return None if os.access(folder, os.W_OK) else folder


def _outbox(table: Section) -> OutboxConfig:
    return OutboxConfig(
        enabled=table.boolean("enabled", True),
        max_age_days=table.number("max_age_days", 7.0, positive=True, what="a positive number of days"),
        max_entries=table.integer("max_entries", 100_000, minimum=1),
    )


def _security(table: Section) -> SecurityConfig | None:
    public = table.file_path("hub_public_key_file", None)
    secret = table.file_path("secret_key_file", None)
    if public is None and secret is None:
        return None
    if public is None or secret is None:
        missing = "hub_public_key_file" if public is None else "secret_key_file"
        present = "secret_key_file" if public is None else "hub_public_key_file"
        if (flag := table.origin(present)) is not None:
            what = "the hub's public key" if public is None else "this agent's secret key"
            raise ConfigError(
                f"{what} is missing: --key and --hub-key go together (this agent's secret key and the "
                "hub's public key)",
                key=flag,
            )
        raise table.error(
            missing,
            "missing; expected a file path (CURVE needs both hub_public_key_file and secret_key_file, or neither)",
        )
    return SecurityConfig(hub_public_key_file=public, secret_key_file=secret)


def _logging(table: Section) -> LoggingConfig:
    level = table.choice("level", LOG_LEVELS, "INFO", upper=True)
    log_format: LogFormat = "json" if table.choice("format", LOG_FORMATS, "text") == "json" else "text"
    alerts = table.choice("alerts", ALERT_LOG_LEVELS, "WARNING", upper=True)
    threshold = ALERT_THRESHOLDS[table.choice("alert_threshold", tuple(ALERT_THRESHOLDS), "RED", upper=True)]
    return LoggingConfig(level=level, format=log_format, alerts=alerts, alert_threshold=threshold)


def _globs(table: Section, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(table.strings(key, list(default)))


def _probes(table: Section) -> ProbesConfig:
    # Slotted dataclasses keep no class-level defaults, so read them off an instance.
    default = ProbesConfig()
    cpu = table.section("cpu")
    load = table.section("load")
    memory = table.section("memory")
    swap = table.section("swap")
    disk = table.section("disk")
    disk_io = table.section("disk_io")
    network = table.section("network")
    sensors = table.section("sensors")
    uptime = table.section("uptime")
    return ProbesConfig(
        cpu=CpuProbe(
            cpu.boolean("enabled", True), cpu.seconds("dt_s", default.cpu.dt_s), cpu.boolean("per_core", True)
        ),
        load=LoadProbe(load.boolean("enabled", True), load.seconds("dt_s", default.load.dt_s)),
        memory=MemoryProbe(memory.boolean("enabled", True), memory.seconds("dt_s", default.memory.dt_s)),
        swap=SwapProbe(swap.boolean("enabled", True), swap.seconds("dt_s", default.swap.dt_s)),
        disk=DiskProbe(
            disk.boolean("enabled", True),
            disk.seconds("dt_s", default.disk.dt_s),
            mounts=tuple(disk.strings("mounts", [])),
            ignore_mounts=_globs(disk, "ignore_mounts", default.disk.ignore_mounts),
            ignore_fstypes=_globs(disk, "ignore_fstypes", default.disk.ignore_fstypes),
        ),
        disk_io=DiskIOProbe(
            disk_io.boolean("enabled", True),
            disk_io.seconds("dt_s", default.disk_io.dt_s),
            disks=tuple(disk_io.strings("disks", [])),
            ignore=_globs(disk_io, "ignore", default.disk_io.ignore),
        ),
        network=NetworkProbe(
            network.boolean("enabled", True),
            network.seconds("dt_s", default.network.dt_s),
            interfaces=tuple(network.strings("interfaces", [])),
            ignore=_globs(network, "ignore", default.network.ignore),
        ),
        sensors=SensorsProbe(
            sensors.boolean("enabled", True),
            sensors.seconds("dt_s", default.sensors.dt_s),
            temperatures=sensors.boolean("temperatures", True),
            fans=sensors.boolean("fans", True),
        ),
        uptime=UptimeProbe(uptime.boolean("enabled", True), uptime.seconds("dt_s", default.uptime.dt_s)),
        processes=_process_checks(table.sections("process")),
    )


def _process_checks(tables: list[Section]) -> tuple[ProcessCheck, ...]:
    checks: list[ProcessCheck] = []
    for table in tables:
        name = table.name("name", what="process check name")
        longest = naming.MAX_NAME_CHARS - max(len(suffix) for suffix in _PROCESS_SUFFIXES)
        if len(name) > longest:
            raise table.expected("name", f"a name of at most {longest} characters (it gets suffixes)", name)
        if any(check.name == name for check in checks):
            raise table.expected("name", "a name no other process check uses", name)
        checks.append(ProcessCheck(name, table.string("match"), table.seconds("dt_s", _DEFAULT_PROCESS_DT_S)))
    return tuple(checks)


def _threshold(table: Section) -> Threshold:
    point = table.point_path("point", what="point path or pattern")
    orange = table.number("orange", None)
    red = table.number("red", None)
    critical = table.number("critical", None)
    direction: Direction = "below" if table.choice("direction", ("above", "below"), "above") == "below" else "above"
    hysteresis = table.number("hysteresis", 0.0, minimum=0.0)
    try:
        return Threshold(point, orange, red, critical, direction, hysteresis)
    except ValueError as error:
        # The values are each fine but do not fit together (e.g. orange above red).
        raise table.error(None, str(error)) from error


_DEBOUNCE_SECONDS: Final = "a number of seconds >= 0 (0 = off)"


def _debounce(table: Section) -> PointDebounce:
    point = table.point_path("point", what="point path or pattern")
    read: dict[str, object] = {
        "for_s": table.number("for_s", None, minimum=0.0, what=_DEBOUNCE_SECONDS),
        "clear_for_s": table.number("clear_for_s", None, minimum=0.0, what=_DEBOUNCE_SECONDS),
        "m_of_n": table.integers("m_of_n", None, length=2, what="[M, N]: two whole numbers, M <= N"),
        "flap_window_s": table.number("flap_window_s", None, minimum=0.0, what=_DEBOUNCE_SECONDS),
        "flap_start": table.integer("flap_start", None, minimum=1),
        "flap_stop": table.integer("flap_stop", None, minimum=0),
    }
    try:
        settings = DebounceSettings.from_mapping({key: value for key, value in read.items() if value is not None})
    except DebounceSettingsError as error:
        # Values each fine but not together (M > N, flap_stop >= flap_start, counts without a window):
        # the first problem, named by its key, as every other config error.
        key, _, detail = error.problems[0].partition(": ")
        raise table.error(key, detail) from error
    return PointDebounce(point, settings)


def _modules(root: Section) -> tuple[str, ...]:
    entries = root.strings("modules", [])
    resolved: list[str] = []
    for index, entry in enumerate(entries):
        if is_module_file(entry):
            path = Path(entry).expanduser()
            resolved.append(str(path if path.is_absolute() else root.base_dir / path))
        elif all(part.isidentifier() for part in entry.split(".")):
            resolved.append(entry)
        else:
            raise root.expected(
                f"modules[{index}]",
                "a Python file (a path ending in .py) or an importable module name (like mypackage.monitors)",
                entry,
            )
    return tuple(resolved)


def is_module_file(entry: str) -> bool:
    """Whether a ``modules`` entry names a file (it ends in ``.py`` or holds a
    path separator) rather than an importable module."""
    return entry.endswith(".py") or "/" in entry or "\\" in entry
