"""The agent configuration file: defaults, a full file, and every error an operator can make."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gsmon.agent.config import (
    DEFAULT_HUB_ENDPOINT,
    AgentConfig,
    ConfigError,
    DebounceRule,
    ProcessCheck,
    SecurityConfig,
    default_agent_config,
    default_agent_name,
    is_module_file,
    load_agent_config,
    parse_agent_config,
)
from gsmon.agent.debounce import DebounceSettings
from gsmon.agent.thresholds import Threshold
from gsmon.common import names as naming

FILE = "/etc/gsmon/agent.toml"

FULL = """
modules = ["antenna.py", "/opt/site/extra.py", "mypackage.monitors"]

[agent]
name = "rack1"
mount = "GS1/Rack1"
hubs = ["tcp://hub.example:7761", "tcp://hub2.example:7761"]
flush_interval_s = 0.1
heartbeat_interval_s = 2
state_interval_s = 60.0
workers = 4
default_dt_s = 5.0
default_timeout_s = 3.0

[agent.security]
hub_public_key_file = "keys/hub.key"
secret_key_file = "/etc/gsmon/keys/rack1.key_secret"

[logging]
level = "debug"
format = "json"

[probes.cpu]
dt_s = 2.0
per_core = false

[probes.load]
enabled = false

[probes.memory]
dt_s = 20

[probes.swap]
enabled = false

[probes.disk]
mounts = ["/", "/var/log"]
ignore_mounts = []
ignore_fstypes = ["squashfs"]

[probes.disk_io]
disks = ["sda"]
ignore = ["loop*"]

[probes.network]
interfaces = ["eth0"]
ignore = []

[probes.sensors]
temperatures = true
fans = false

[probes.uptime]
dt_s = 600

[[probes.process]]
name = "gpsd"
match = "gpsd"

[[probes.process]]
name = "tracker"
match = "python3 -m tracker"
dt_s = 5

[[thresholds]]
point = "CPU/cpu_total_percent"
orange = 70.0
red = 90.0
critical = 99
hysteresis = 2.0

[[thresholds]]
point = "Disk/*_free_bytes"
red = 1e9
direction = "below"
"""


def parse(text: str) -> AgentConfig:
    return parse_agent_config(text, FILE, Path("/etc/gsmon"))


def error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return str(caught.value)


class TestDefaults:
    def test_empty_file_is_a_working_agent(self) -> None:
        """Every key is optional; defaults are the documented ones."""
        config = parse("")
        assert config.agent.name == default_agent_name()
        assert config.agent.mount == config.agent.name
        assert config.agent.hubs == (DEFAULT_HUB_ENDPOINT,) == ("tcp://127.0.0.1:7761",)
        assert (config.agent.flush_interval_s, config.agent.heartbeat_interval_s) == (0.05, 1.0)
        assert (config.agent.state_interval_s, config.agent.workers) == (30.0, 10)
        assert (config.agent.default_dt_s, config.agent.default_timeout_s) == (10.0, 10.0)
        assert config.agent.security is None
        assert (config.logging.level, config.logging.format) == ("INFO", "text")
        assert (config.probes.cpu.enabled, config.probes.cpu.per_core, config.probes.cpu.dt_s) == (True, True, 5.0)
        assert config.probes.network.ignore == ("lo",)
        assert config.probes.processes == ()
        assert config.thresholds == ()
        assert config.modules == ()
        assert config.source == FILE

    def test_default_config_without_a_file(self) -> None:
        """default_agent_config() is what an empty file gives."""
        defaults = default_agent_config()
        assert defaults.source == "<defaults>"
        assert defaults.agent == parse("").agent
        assert defaults.probes == parse("").probes

    def test_default_name_is_a_valid_name(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A host name is made a valid tree name, whatever the OS returns."""
        assert naming.check_name(default_agent_name()) == default_agent_name()
        monkeypatch.setattr("socket.gethostname", lambda: "_odd/host\tname")
        assert default_agent_name() == "odd_host_name"
        monkeypatch.setattr("socket.gethostname", lambda: "")
        assert default_agent_name() == "agent"

    def test_config_is_frozen(self) -> None:
        """Nobody changes the configuration behind the agent's back."""
        config = parse("")
        with pytest.raises(AttributeError):
            config.agent.workers = 3  # type: ignore[misc]


class TestFullFile:
    def test_every_key(self) -> None:
        """A file using every key is read into the matching fields."""
        config = parse(FULL)
        agent = config.agent
        assert (agent.name, agent.mount) == ("rack1", "GS1/Rack1")
        assert agent.hubs == ("tcp://hub.example:7761", "tcp://hub2.example:7761")
        assert agent.heartbeat_interval_s == 2.0
        assert isinstance(agent.heartbeat_interval_s, float)
        assert (agent.workers, agent.default_dt_s, agent.default_timeout_s) == (4, 5.0, 3.0)
        assert agent.security == SecurityConfig(
            hub_public_key_file=Path("/etc/gsmon/keys/hub.key"),
            secret_key_file=Path("/etc/gsmon/keys/rack1.key_secret"),
        )
        assert (config.logging.level, config.logging.format) == ("DEBUG", "json")
        probes = config.probes
        assert (probes.cpu.dt_s, probes.cpu.per_core) == (2.0, False)
        assert (probes.load.enabled, probes.swap.enabled) == (False, False)
        assert probes.memory.dt_s == 20.0
        assert probes.disk.mounts == ("/", "/var/log")
        assert probes.disk.ignore_mounts == ()
        assert probes.disk_io.disks == ("sda",)
        assert probes.network.interfaces == ("eth0",)
        assert (probes.sensors.temperatures, probes.sensors.fans) == (True, False)
        assert probes.uptime.dt_s == 600.0
        assert probes.processes == (
            ProcessCheck("gpsd", "gpsd", 10.0),
            ProcessCheck("tracker", "python3 -m tracker", 5.0),
        )
        assert config.thresholds == (
            Threshold("CPU/cpu_total_percent", 70.0, 90.0, 99.0, "above", 2.0),
            Threshold("Disk/*_free_bytes", red=1e9, direction="below"),
        )
        assert config.modules == ("/etc/gsmon/antenna.py", "/opt/site/extra.py", "mypackage.monitors")

    def test_load_from_a_file(self, tmp_path: Path) -> None:
        """load_agent_config reads the file; relative paths follow the file's folder."""
        path = tmp_path / "agent.toml"
        path.write_text(FULL, encoding="utf-8")
        config = load_agent_config(path)
        assert config.source == str(path)
        assert config.modules[0] == str(tmp_path / "antenna.py")
        assert config.agent.security is not None
        assert config.agent.security.hub_public_key_file == tmp_path / "keys/hub.key"

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming it."""
        with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'x.toml'}: cannot read the configuration")):
            load_agent_config(tmp_path / "x.toml")

    def test_syntax_error(self, tmp_path: Path) -> None:
        """Broken TOML gives the line."""
        path = tmp_path / "agent.toml"
        path.write_text("[agent]\nworkers = = 3\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(f"{path}: line 2, column 11: invalid TOML")):
            load_agent_config(path)


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            # unknown keys, at every level
            (
                "nmae = 1",
                "nmae: unknown key; allowed keys here: agent, debounce, logging, modules, outbox, probes, thresholds",
            ),
            (
                "[agent]\nworker = 3",
                "agent.worker: unknown key; allowed keys here: default_dt_s, default_timeout_s, flush_interval_s, "
                "heartbeat_interval_s, hubs, mount, name, security, state_dir, state_interval_s, workers",
            ),
            (
                "[agent.security]\npublic_key = 'x'",
                "agent.security.public_key: unknown key; allowed keys here: hub_public_key_file, secret_key_file",
            ),
            (
                "[logging]\nfile = 'x'",
                "logging.file: unknown key; allowed keys here: alert_threshold, alerts, format, level",
            ),
            (
                "[probes.gpu]\ndt_s = 1",
                "probes.gpu: unknown key; allowed keys here: cpu, disk, disk_io, load, memory, network, process, "
                "sensors, swap, uptime",
            ),
            (
                "[probes.cpu]\npercpu = true",
                "probes.cpu.percpu: unknown key; allowed keys here: dt_s, enabled, per_core",
            ),
            (
                "[[probes.process]]\nname = 'a'\nmatch = 'a'\nuser = 'root'",
                "probes.process[0].user: unknown key; allowed keys here: dt_s, match, name",
            ),
            (
                "[[thresholds]]\npoint = 'x'\nred = 1\nyellow = 0.5",
                "thresholds[0].yellow: unknown key; allowed keys here: critical, direction, hysteresis, orange, "
                "point, red",
            ),
            # wrong types and ranges
            ("[agent]\nworkers = 'ten'", "agent.workers: expected an integer from 1 to 1000, got 'ten'"),
            ("[agent]\nworkers = 0", "agent.workers: expected an integer from 1 to 1000, got 0"),
            ("[agent]\nflush_interval_s = 0", "agent.flush_interval_s: expected a positive number of seconds, got 0"),
            ("[probes.cpu]\ndt_s = 'fast'", "probes.cpu.dt_s: expected a positive number of seconds, got 'fast'"),
            ("[probes.cpu]\nenabled = 'no'", "probes.cpu.enabled: expected true or false, got 'no'"),
            ("[probes.disk]\nmounts = '/'", "probes.disk.mounts: expected an array of strings, got '/'"),
            (
                "[logging]\nlevel = 'LOUD'",
                "logging.level: expected one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', got 'LOUD'",
            ),
            ("[logging]\nformat = 'xml'", "logging.format: expected one of 'text', 'json', got 'xml'"),
            ("agent = 3", "agent: expected a table, got 3"),
            (
                "[probes]\nprocess = 'gpsd'",
                "probes.process: expected an array of tables ([[probes.process]]), got 'gpsd'",
            ),
            # endpoints
            (
                "[agent]\nhubs = ['tcp://hub']",
                "agent.hubs[0]: expected an endpoint to connect to (tcp://host:port with port 1-65535, ipc://path or "
                "inproc://name), got 'tcp://hub': no port (tcp://host:port)",
            ),
            (
                "[agent]\nhubs = ['tcp://*:7761']",
                "agent.hubs[0]: expected an endpoint to connect to (tcp://host:port with port 1-65535, ipc://path or "
                "inproc://name), got 'tcp://*:7761': host '*' can only be bound, not connected to",
            ),
            ("[agent]\nhubs = []", "agent.hubs: expected a non-empty array of endpoints, got an array"),
            ("[agent]\nhubs = 'tcp://h:1'", "agent.hubs: expected a non-empty array of endpoints, got 'tcp://h:1'"),
            # names and paths
            (
                "[agent]\nname = 'rack/1'",
                "agent.name: expected a valid agent name, got 'rack/1': a name must not contain '/' "
                "(it separates path segments)",
            ),
            (
                "[agent]\nmount = '_hub/agents'",
                "agent.mount: expected a valid mount path, got '_hub/agents': root names starting with '_' are "
                "reserved for the hub",
            ),
            (
                "[agent]\nmount = 'GS1/'",
                "agent.mount: expected a valid mount path, got 'GS1/': segment '': a name must not be empty or blank",
            ),
            (
                "[[probes.process]]\nname = 'a/b'\nmatch = 'x'",
                "probes.process[0].name: expected a valid process check name, got 'a/b': a name must not contain '/' "
                "(it separates path segments)",
            ),
            # security: both or neither
            (
                "[agent.security]\nhub_public_key_file = 'hub.key'",
                "agent.security.secret_key_file: missing; expected a file path (CURVE needs both "
                "hub_public_key_file and secret_key_file, or neither)",
            ),
            (
                "[agent.security]\nsecret_key_file = 'me.key_secret'",
                "agent.security.hub_public_key_file: missing; expected a file path (CURVE needs both "
                "hub_public_key_file and secret_key_file, or neither)",
            ),
            ("[agent.security]\nsecret_key_file = 3", "agent.security.secret_key_file: expected a file path, got 3"),
            # process checks
            ("[[probes.process]]\nname = 'gpsd'", "probes.process[0].match: missing; expected a non-empty string"),
            (
                "[[probes.process]]\nmatch = 'gpsd'",
                "probes.process[0].name: missing; expected a valid process check name",
            ),
            (
                "[[probes.process]]\nname = 'g'\nmatch = 'g'\n[[probes.process]]\nname = 'g'\nmatch = 'h'",
                "probes.process[1].name: expected a name no other process check uses, got 'g'",
            ),
            (
                f"[[probes.process]]\nname = '{'p' * 120}'\nmatch = 'x'",
                "probes.process[0].name: expected a name of at most 116 characters (it gets suffixes), "
                f"got '{'p' * 120}'",
            ),
            # thresholds
            ("[[thresholds]]\nred = 1", "thresholds[0].point: missing; expected a valid point path or pattern"),
            (
                "[[thresholds]]\npoint = 'CPU//x'\nred = 1",
                "thresholds[0].point: expected a valid point path or pattern, got 'CPU//x': segment '': a name must "
                "not be empty or blank",
            ),
            ("[[thresholds]]\npoint = 'x'\nred = 'high'", "thresholds[0].red: expected a number, got 'high'"),
            (
                "[[thresholds]]\npoint = 'x'\nred = 1\ndirection = 'up'",
                "thresholds[0].direction: expected one of 'above', 'below', got 'up'",
            ),
            (
                "[[thresholds]]\npoint = 'x'\nred = 1\nhysteresis = -2",
                "thresholds[0].hysteresis: expected a number of at least 0, got -2",
            ),
            (
                "[[thresholds]]\npoint = 'x'",
                "thresholds[0]: expected at least one of orange, red or critical, got none",
            ),
            (
                "[[thresholds]]\npoint = 'x'\norange = 90\nred = 70",
                "thresholds[0]: expected orange below red (direction 'above'), got orange=90, red=70",
            ),
            (
                "[[thresholds]]\npoint = 'x'\norange = 10\nred = 20\ndirection = 'below'",
                "thresholds[0]: expected orange above red (direction 'below'), got orange=10, red=20",
            ),
            # modules
            ("modules = 'a.py'", "modules: expected an array of strings, got 'a.py'"),
            ("modules = ['a.py', 'a.py']", "modules[1]: expected no repeated entries, got 'a.py': it is listed twice"),
            (
                "modules = ['my-package']",
                "modules[0]: expected a Python file (a path ending in .py) or an importable module name "
                "(like mypackage.monitors), got 'my-package'",
            ),
            ("modules = ['']", "modules[0]: expected a non-empty string, got ''"),
        ],
    )
    def test_message_names_file_key_and_expectation(self, text: str, expected: str) -> None:
        """Each mistake gives '<file>: <dotted key>: <what was expected>, got <what was found>'."""
        assert error(text) == f"{FILE}: {expected}"


class TestModuleEntries:
    @pytest.mark.parametrize(
        ("entry", "is_file"),
        [
            ("antenna.py", True),
            ("/etc/gsmon/antenna.py", True),
            ("site/monitors", True),
            ("mypackage.monitors", False),
            ("monitors", False),
        ],
    )
    def test_file_or_module(self, entry: str, is_file: bool) -> None:
        """Entries ending in .py or holding a slash are files; the rest are module names."""
        assert is_module_file(entry) is is_file


class TestDebounce:
    """[[debounce]] tables: settings by path pattern; each bad input is one clear line naming its key."""

    def test_tables_give_settings_by_pattern_first_match_wins(self) -> None:
        config = parse(
            """
            [[debounce]]
            point = "Sensors/*_temp_c"
            for_s = 30
            clear_for_s = 60.0
            m_of_n = [3, 5]
            [[debounce]]
            point = "*_percent"
            flap_window_s = 600
            flap_start = 6
            flap_stop = 2
            """
        )
        rule = DebounceRule(config.debounce)
        temp = rule("Sensors/cpu_temp_c")
        assert temp == DebounceSettings(for_s=30.0, clear_for_s=60.0, m_of_n=(3, 5))
        assert rule("CPU/cpu_total_percent") == DebounceSettings(flap_window_s=600.0, flap_start=6, flap_stop=2)
        assert rule("CPU/load_1min") is None
        assert config.debounce[0].point == "Sensors/*_temp_c"

    def test_no_tables_no_debounce(self) -> None:
        assert parse("").debounce == ()

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("for_s = 'fast'", "debounce[0].for_s: expected a number of seconds >= 0 (0 = off), got 'fast'"),
            ("clear_for_s = -1", "debounce[0].clear_for_s: expected a number of seconds >= 0 (0 = off), got -1"),
            ("m_of_n = [3]", "debounce[0].m_of_n: expected [M, N]: two whole numbers, M <= N, got an array"),
            ("m_of_n = [5, 3]", "debounce[0].m_of_n: expected [M, N] with 1 <= M <= N <= 10000, got [5, 3]"),
            (
                "flap_start = 4",
                "debounce[0].flap_start: needs flap_window_s > 0 (without a window there is no flap guard)",
            ),
            (
                "flap_window_s = 60\nflap_start = 3\nflap_stop = 3",
                "debounce[0].flap_stop: must be below flap_start (3) so that flapping has hysteresis, got 3",
            ),
            (
                "for_s = 1\nfor = 2",
                "debounce[0].for: unknown key; allowed keys here: clear_for_s, flap_start, "
                "flap_stop, flap_window_s, for_s, m_of_n, point",
            ),
        ],
    )
    def test_bad_input_is_one_line_naming_the_key(self, text: str, expected: str) -> None:
        message = error(f'[[debounce]]\npoint = "CPU/*"\n{text}\n')
        assert message == f"{FILE}: {expected}"
        assert "\n" not in message


def test_a_state_dir_under_a_folder_we_cannot_even_look_into_is_not_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As nobody with HOME=/root: stat of /root/.local fails with EACCES; the folder is reported, never raised."""
    from gsmon.agent.config import writable_folder

    locked = tmp_path / "home"
    real_exists = Path.exists

    def exists(self: Path, *args: object, **kwargs: object) -> bool:
        if self != locked and locked in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real_exists(self)

    locked.mkdir()
    monkeypatch.setattr(Path, "exists", exists)
    assert writable_folder(locked / ".local" / "state" / "gsmon") == locked / ".local" / "state" / "gsmon"
    assert writable_folder(tmp_path / "new" / "gsmon") is None
