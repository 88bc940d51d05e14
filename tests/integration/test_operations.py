"""Running gsmon the way an operator does: real `gsmon hub` / `gsmon agent` / `gsmon watch`
processes started from the example configurations in deploy/, with keys made by
`gsmon keys`; bad configurations; alert-transition logs; clean shutdown.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import HERE, Hub, Process, Processes, gsmon_cli, polled, wait_until

from gsmon.common.alerts import GreenAlert, OrangeAlert, RedAlert
from gsmon.common.client import Subscriber
from gsmon.common.gc_tuning import THRESHOLDS
from gsmon.common.keys import ClientKeys

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples"
SHUTDOWN_LIMIT_S = 2.0
# Units in point names: every built-in probe point ends in one of these.
UNIT_SUFFIX = re.compile(r"_(percent|bytes|per_s|temp_c|fan_rpm|s|1min|5min|15min)$")
PROBE_FAMILIES = ("cpu", "load", "memory", "swap", "disk", "disk_io", "network", "sensors", "uptime")

# What the shutdown tests measured, printed after the module's last test (run with -s to see it).
SHUTDOWN_TIMES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_shutdown_times() -> Iterator[None]:
    """Print the measured shutdown times once the module is done."""
    yield
    for what, took in sorted(SHUTDOWN_TIMES.items()):
        print(f"\nshutdown of {what}: {took * 1000:.0f} ms", end="")


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------


@dataclass(frozen=True)
class StationKeys:
    """Keys of the example station, made with `gsmon keys` as deploy/README.md does."""

    hub_dir: Path
    root: Path

    def client(self, name: str) -> tuple[Path, Path]:
        """(secret key file, hub public key file) of a client, as its --out folder holds them."""
        return self.root / name / f"{name}.key_secret", self.root / name / "hub.key"

    def curve(self, name: str) -> ClientKeys:
        return ClientKeys.load(*self.client(name))


@pytest.fixture(scope="module")
def station_keys(tmp_path_factory: pytest.TempPathFactory) -> StationKeys:
    """`gsmon keys init`, an agent key per example agent, and an operator's subscriber key."""
    root = tmp_path_factory.mktemp("station-keys")
    keys = StationKeys(root / "hub", root)
    for command in (
        ["keys", "init", str(keys.hub_dir)],
        [
            "keys",
            "agent",
            "ant2",
            "--mount",
            "GS1/Antenna2",
            "--hub-dir",
            str(keys.hub_dir),
            "--out",
            str(root / "ant2"),
        ],
        [
            "keys",
            "agent",
            "rack1",
            "--mount",
            "GS1/Rack1",
            "--hub-dir",
            str(keys.hub_dir),
            "--out",
            str(root / "rack1"),
        ],
        ["keys", "subscriber", "ops", "--hub-dir", str(keys.hub_dir), "--out", str(root / "ops")],
    ):
        result = gsmon_cli(*command)
        assert result.returncode == 0, result.stderr
    return keys


def example_hub(procs: Processes, keys: StationKeys) -> Hub:
    """The example hub.toml, on loopback ports the OS picks, with the test's keys."""
    return procs.hub("--config", str(EXAMPLES / "hub.toml"), "--keys", str(keys.hub_dir))


def example_agent(procs: Processes, hub: Hub, keys: StationKeys, config: str, name: str, *extra: str) -> Process:
    """An example agent configuration, run as it is but for the hub's address and the key files."""
    secret, hub_public = keys.client(name)
    process = procs.gsmon(
        f"agent-{name}",
        "agent",
        "--config",
        str(EXAMPLES / config),
        "--hub",
        hub.agents,
        "--key",
        str(secret),
        "--hub-key",
        str(hub_public),
        "--heartbeat-s",
        "0.2",
        *extra,
    )
    process.wait_for_line("READY ")
    return process


def quiet_probes(keep: tuple[str, ...] = ()) -> str:
    """TOML switching off every probe family but ``keep`` (fast start, nothing host-dependent)."""
    return "".join(f"[probes.{family}]\nenabled = false\n\n" for family in PROBE_FAMILIES if family not in keep)


def write_value(path: Path, value: float) -> None:
    """Replace the control file atomically (a poll never reads half a number)."""
    partial = path.with_suffix(".partial")
    partial.write_text(repr(value))
    os.replace(partial, path)


def json_records(process: Process) -> list[dict[str, Any]]:
    """Every stderr line of ``process``, each parsed as one JSON object (fails on any other line)."""
    records = []
    for line in process.stderr().splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        for key in ("time", "level", "logger", "message"):
            assert key in record, f"{key!r} missing in {line}"
        records.append(record)
    return records


def drained(process: Process) -> list[str]:
    """Every stdout line ``process`` printed so far (``wait_for_line`` keeps them in ``seen`` too)."""
    while True:
        try:
            process.seen.append(process.lines.get_nowait())
        except queue.Empty:
            return process.seen


def _agent_state(sub: Subscriber, name: str) -> Any:
    """What the hub says of an agent (``"live"``...), or None before it says anything."""
    node = sub.tree.get(f"_hub/agents/{name}")
    return None if node is None else node.value


def leaf(sub: Subscriber, path: str) -> Any:
    node = sub.tree.get(path)
    return node if node is not None and node.kind == "point" else None


# ----------------------------------------------------------------------
# The example station
# ----------------------------------------------------------------------

ANTENNA_POINTS = ("azimuth_deg", "elevation_deg", "motor_temp_c", "tracking", "controller_link_ms")


def test_antenna_controller_module_loaded_by_a_real_agent_appears_at_the_hub(
    procs: Processes, station_keys: StationKeys
) -> None:
    """agent-antenna.toml as shipped: its module's points and the host probes reach the keyed example hub."""
    hub = example_hub(procs, station_keys)
    agent = example_agent(procs, hub, station_keys, "agent-antenna.toml", "ant2")
    assert agent.seen[-1] == f"READY agent=ant2 mount=GS1/Antenna2 hubs={hub.agents}"
    expected = [f"GS1/Antenna2/Antenna/{point}" for point in ANTENNA_POINTS]
    with Subscriber(hub.query, "GS1/Antenna2/", curve=station_keys.curve("ops")) as sub:
        wait_until(
            lambda: polled(sub) and all(leaf(sub, path) is not None for path in expected),
            what="the antenna module's points",
        )
        tree = sub.tree
        # The simulation starts a pass low in the east, the motor cool, the dish stowed.
        assert 100.0 <= tree["GS1/Antenna2/Antenna/azimuth_deg"].value < 268.0
        assert tree["GS1/Antenna2/Antenna/azimuth_deg"].alertcode == GreenAlert.alertcode
        assert tree["GS1/Antenna2/Antenna/motor_temp_c"].value == 40.0
        assert tree["GS1/Antenna2/Antenna/tracking"].value in ("STOWED", "SLEWING", "TRACKING")
        assert tree["GS1/Antenna2/Antenna/controller_link_ms"].alertcode == GreenAlert.alertcode
        assert {tree[path].agent for path in expected} == {"ant2"}
        assert tree["GS1/Antenna2/Antenna"].kind == "parent"
        # The host probes of the same agent, in the same subtree, units in their names.
        for path in (
            "CPU/cpu_total_percent",
            "Memory/memory_used_percent",
            "Disk/root_used_percent",
            "System/uptime_s",
        ):
            wait_until(lambda path=path: polled(sub) and leaf(sub, f"GS1/Antenna2/{path}"), what=path)
        assert not (set(sub.tree) & {"GS1/Antenna2/Disk/sda_read_bytes_per_s"}), "disk_io is disabled there"
    stderr = agent.stderr()
    assert "loaded monitor module" in stderr
    assert "Traceback" not in stderr


def test_rack_example_probes_and_process_checks_with_json_logs(procs: Processes, station_keys: StationKeys) -> None:
    """agent-rack.toml as shipped: probes with units in every name, a running process Green, JSON-lines logs."""
    # A stand-in for the SDR server: its command line contains "sdr_server.py", which the rack config matches.
    stand_in = procs.start("sdr-server", [sys.executable, "-c", "import time; time.sleep(120)", "sdr_server.py"])
    stand_in.expect_exit(signal.SIGTERM)  # a bare sleep: the reap's SIGTERM ends it
    hub = example_hub(procs, station_keys)
    agent = example_agent(procs, hub, station_keys, "agent-rack.toml", "rack1")
    with Subscriber(hub.query, "GS1/Rack1/", curve=station_keys.curve("ops")) as sub:
        wait_until(
            lambda: (
                polled(sub)
                and all(
                    leaf(sub, f"GS1/Rack1/{path}")
                    for path in (
                        "Processes/sdr_server",
                        "Processes/gpsd",
                        "CPU/load_1min",
                        "Memory/memory_used_percent",
                    )
                )
            ),
            what="the rack's points",
        )
        sdr = sub.tree["GS1/Rack1/Processes/sdr_server"]
        assert sdr.alertcode == GreenAlert.alertcode
        assert sdr.value >= 1
        # Units in names: every probe point says what it measures in.
        checks = {"gpsd", "chronyd", "sdr_server"}
        for path, node in sub.tree.items():
            if node.kind != "point" or path.split("/")[-1] in checks:
                continue
            assert UNIT_SUFFIX.search(path), f"{path}: no unit in the name"
        # The rack's thresholds judge its memory (Green, Orange or Red: never unjudged).
        assert sub.tree["GS1/Rack1/Memory/memory_used_percent"].alertcode >= GreenAlert.alertcode
    records = json_records(agent)
    assert any(record["message"].startswith("agent rack1 publishing") for record in records)
    # Logger names are the modules' (__name__): the agent's own modules and its probes.
    agent_loggers = {f"gsmon.agent.{name}" for name in ("main", "monitor", "publisher", "modules", "probes.base")}
    assert {record["logger"] for record in records} <= agent_loggers


TANK_MODULE = '''"""Test module: one plain number read from a file, judged by the agent's [[thresholds]]."""

from pathlib import Path

CONTROL = Path({control!r})


def setup(mon):
    @mon.monitor(point="level_percent", dt=0.05, parent="Tank")
    def level():
        return float(CONTROL.read_text())
'''


def tank_agent(procs: Processes, hub: Hub, tmp_path: Path, *flags: str, logging: str = "") -> tuple[Process, Path]:
    """A real agent loading a one-point module, with a threshold (orange 60, red 80, hysteresis 5)."""
    control = tmp_path / "level"
    write_value(control, 50.0)
    (tmp_path / "tank.py").write_text(TANK_MODULE.format(control=str(control)))
    config = tmp_path / "agent.toml"
    config.write_text(
        'modules = ["tank.py"]\n\n'
        '[agent]\nname = "tank1"\nmount = "GS1/Tank1"\nheartbeat_interval_s = 0.2\n\n'
        f"[logging]\n{logging}\n"
        '[[thresholds]]\npoint = "Tank/level_percent"\norange = 60.0\nred = 80.0\nhysteresis = 5.0\n\n' + quiet_probes()
    )
    agent = procs.gsmon("agent-tank1", "agent", "--config", str(config), "--hub", hub.agents, *flags)
    agent.wait_for_line("READY agent=tank1 ")
    return agent, control


def test_threshold_with_hysteresis_end_to_end_and_transitions_logged_as_json(procs: Processes, tmp_path: Path) -> None:
    """A module value crossing [[thresholds]] changes its alert at a subscriber, with hysteresis; Red logged as JSON."""
    hub = procs.hub("--log-format", "json")
    agent, control = tank_agent(procs, hub, tmp_path, "--log-level", "WARNING", logging='format = "json"\n')
    path = "GS1/Tank1/Tank/level_percent"

    def seen(value: float, alert: type) -> Callable[[], bool]:
        def check() -> bool:
            sub.poll(0.05)
            node = leaf(sub, path)
            return node is not None and node.value == value and node.alertcode == alert.alertcode

        return check

    with Subscriber(hub.query, "GS1/Tank1/") as sub:
        for value, alert, why in (
            (50.0, GreenAlert, "below orange"),
            (85.0, RedAlert, "above red"),
            (77.0, RedAlert, "back under red, but not by the 5.0 hysteresis"),
            (70.0, OrangeAlert, "under red - hysteresis: down to Orange"),
            (50.0, GreenAlert, "under orange - hysteresis"),
        ):
            write_value(control, value)
            wait_until(seen(value, alert), what=f"{value} {alert.__name__} ({why})")
        assert sub.tree["GS1/Tank1/Tank"].alertcode == GreenAlert.alertcode

    def transitions() -> list[dict[str, Any]]:
        return [record for record in json_records(agent) if record.get("point") == "Tank/level_percent"]

    # Default alert_threshold RED: the changes into and out of Red, not Orange -> Green.
    wait_until(lambda: len(transitions()) >= 2, what="two logged transitions")
    into_red, out_of_red = transitions()
    assert into_red["level"] == "WARNING"
    assert into_red["logger"] == "gsmon.agent.monitor"
    assert (into_red["old_alert"], into_red["new_alert"], into_red["value"]) == (10, 30, 85.0)
    assert (into_red["old_alertstr"], into_red["new_alertstr"]) == ("GREEN", "RED")
    assert into_red["message"] == 'alert "Tank/level_percent" GREEN --> RED (value 85.0)'
    assert (out_of_red["old_alert"], out_of_red["new_alert"], out_of_red["value"]) == (30, 20, 70.0)
    # --log-level WARNING: the agent's INFO lines are gone, the transitions are not.
    assert all(record["level"] in ("WARNING", "ERROR") for record in json_records(agent))
    # The hub logs JSON lines too.
    assert any(record["message"].startswith("hub epoch") for record in json_records(hub.process))


def test_default_text_log_shows_a_red_transition_at_info(procs: Processes, tmp_path: Path) -> None:
    """With no [logging] settings at all, an operator reading the INFO log sees a point turning Red."""
    hub = procs.hub()
    agent, control = tank_agent(procs, hub, tmp_path)
    write_value(control, 95.0)
    line = 'WARNING gsmon.agent.monitor: alert "Tank/level_percent" GREEN --> RED (value 95.0)'
    wait_until(lambda: line in agent.stderr(), what="the transition in the text log")
    assert "INFO gsmon.agent.main: agent tank1 publishing" in agent.stderr()


NOBODY = 65534
# The agent unit's sandbox, as far as it can be had without systemd: a mount namespace
# with / read-only (ProtectSystem=strict) and a private /tmp (PrivateTmp), then the
# process as an unprivileged user with no capabilities at all and no_new_privs.
# A checkout (and its venv) under /tmp, as CI's clean clone is, stays visible: the folder under /tmp
# that holds it is bound aside before the private /tmp is mounted, and bound back on it after.
SANDBOX_SCRIPT = (
    'keep="$GSMON_SANDBOX_KEEP"; aside=/var/tmp/.gsmon-sandbox-keep; '
    'if [ -n "$keep" ]; then mkdir -p "$aside" && mount --bind "$keep" "$aside"; fi && '
    "mount -t tmpfs -o mode=1777 tmpfs /tmp && "
    'if [ -n "$keep" ]; then mkdir -p "$keep" && mount --bind "$aside" "$keep"; fi && '
    "mount -o remount,bind,ro / && "
    f"exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "
    '--no-new-privs --bounding-set=-all --inh-caps=-all "$@"'
)


def _under_tmp() -> str:
    """The top folder under /tmp holding this Python's venv or this checkout ("" when neither is there)."""
    for place in (Path(sys.prefix).resolve(), HERE.resolve()):
        parts = place.parts
        if len(parts) > 2 and parts[:2] == ("/", "tmp"):
            return str(Path("/tmp", parts[2]))
    return ""


def _sandboxed(*argv: str) -> list[str]:
    return [
        "env",
        f"GSMON_SANDBOX_KEEP={_under_tmp()}",
        *("unshare", "-m", "--propagation", "private", "sh", "-c", SANDBOX_SCRIPT, "sandbox", *argv),
    ]


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A folder outside /tmp (which the sandbox replaces) that the unprivileged user can read."""
    base = Path("/var/tmp")
    if not base.is_dir():
        pytest.skip("no /var/tmp for a folder the sandboxed agent can read")
    folder = Path(tempfile.mkdtemp(prefix="gsmon-sandbox-", dir=base))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None,
    reason="needs root, unshare and setpriv (util-linux) to drop to an unprivileged user in a read-only namespace",
)
def test_probes_work_unprivileged_without_capabilities_on_a_read_only_system(
    procs: Processes, world_readable_dir: Path
) -> None:
    """As nobody, no capabilities, read-only /, private /tmp: every probe reports, root's process is checked."""
    trial = subprocess.run(
        _sandboxed(sys.executable, "-c", "import gsmon.agent.probes"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if trial.returncode != 0:
        pytest.skip(f"the sandboxed user cannot run this checkout's Python: {trial.stderr.strip()[-300:]}")
    hub = procs.hub()
    config = world_readable_dir / "agent.toml"
    config.write_text(
        f'[agent]\nname = "sandboxed"\nmount = "Lab/Sandboxed"\nhubs = ["{hub.agents}"]\nheartbeat_interval_s = 0.2\n\n'
        '[[probes.process]]\nname = "the_hub"\nmatch = "gsmon.common.cli hub"\ndt_s = 0.5\n\n'
        + "".join(
            f"[probes.{family}]\ndt_s = 0.5\n\n" for family in ("cpu", "load", "memory", "disk", "disk_io", "network")
        )
    )
    config.chmod(0o644)
    agent = procs.start(
        "agent-sandboxed", _sandboxed(sys.executable, "-m", "gsmon.common.cli", "agent", "--config", str(config))
    )
    agent.wait_for_line("READY agent=sandboxed ")
    status = Path(f"/proc/{agent.pid}/status").read_text()
    assert re.search(rf"(?m)^Uid:\s+{NOBODY}\s", status), "the agent runs as nobody"
    assert re.search(r"(?m)^CapEff:\s+0+$", status), "with no capabilities"
    assert re.search(r"(?m)^NoNewPrivs:\s+1$", status)
    with Subscriber(hub.query, "Lab/Sandboxed/") as sub:

        def reported(path: str) -> bool:
            node = leaf(sub, f"Lab/Sandboxed/{path}")
            return node is not None and node.value is not None and not str(node.value).startswith("ERROR")

        wanted = (
            "CPU/cpu_total_percent",
            "CPU/load_1min",
            "Memory/memory_used_percent",
            "Disk/root_used_percent",
            "System/uptime_s",
            "Processes/the_hub",
            "Processes/the_hub_cpu_percent",
            "Processes/the_hub_rss_bytes",
        )
        wait_until(lambda: polled(sub) and all(reported(path) for path in wanted), what="every probe family")
        assert sub.tree["Lab/Sandboxed/Processes/the_hub"].alertcode == GreenAlert.alertcode
        assert sub.tree["Lab/Sandboxed/Processes/the_hub_rss_bytes"].value > 0, "root's process is readable"
        network = [path for path in sub.tree if path.startswith("Lab/Sandboxed/Network/")]
        assert network, "the network probe sees the interfaces"
    assert agent.stop() == 0
    assert "Traceback" not in agent.stderr()


# ----------------------------------------------------------------------
# Bad configurations and flags: one line, file + key + expectation, status 2
# ----------------------------------------------------------------------

AGENT_KEYS = (
    "default_dt_s, default_timeout_s, flush_interval_s, heartbeat_interval_s, hubs, mount, name, security, "
    "state_dir, state_interval_s, workers"
)


@dataclass(frozen=True)
class BadCase:
    """A command that must fail: the files it needs, its arguments, the one line it must print."""

    files: dict[str, str]
    args: tuple[str, ...]
    message: str
    modes: tuple[tuple[str, int], ...] = ()
    env: tuple[tuple[str, str], ...] = ()


BAD_CASES = {
    "agent-unknown-key": BadCase(
        {"a.toml": '[agent]\nnmae = "rack1"\n'},
        ("agent", "--config", "{d}/a.toml"),
        "gsmon agent: {d}/a.toml: agent.nmae: unknown key; allowed keys here: " + AGENT_KEYS,
    ),
    "agent-wrong-type": BadCase(
        {"a.toml": '[agent]\nworkers = "many"\n'},
        ("agent", "--config", "{d}/a.toml"),
        "gsmon agent: {d}/a.toml: agent.workers: expected an integer from 1 to 1000, got 'many'",
    ),
    "agent-missing-file": BadCase(
        {},
        ("agent", "--config", "{d}/absent.toml"),
        "gsmon agent: {d}/absent.toml: cannot read the configuration: no such file",
    ),
    "agent-bad-endpoint": BadCase(
        {"a.toml": '[agent]\nhubs = ["tcp://hub"]\n'},
        ("agent", "--config", "{d}/a.toml"),
        "gsmon agent: {d}/a.toml: agent.hubs[0]: expected an endpoint to connect to (tcp://host:port with port "
        "1-65535, ipc://path or inproc://name), got 'tcp://hub': no port (tcp://host:port)",
    ),
    "agent-missing-module": BadCase(
        {"a.toml": 'modules = ["antenna.py"]\n'},
        ("agent", "--config", "{d}/a.toml"),
        "gsmon agent: {d}/a.toml: modules[0]: module '{d}/antenna.py': no such file",
    ),
    "agent-broken-module": BadCase(
        {"a.toml": 'modules = ["antenna.py"]\n', "antenna.py": "def setup(mon:\n"},
        ("agent", "--config", "{d}/a.toml"),
        "gsmon agent: {d}/a.toml: modules[0]: module '{d}/antenna.py': syntax error (line 1): '(' was never closed",
    ),
    "agent-module-is-a-folder": BadCase(
        {"a.toml": 'modules = ["monitors.py"]\n', "monitors.py/__init__.py": ""},
        ("agent", "--config", "{d}/a.toml"),
        "gsmon agent: {d}/a.toml: modules[0]: module '{d}/monitors.py': it is a directory, not a Python file",
    ),
    "agent-key-file-too-open": BadCase(
        {
            "a.toml": '[agent.security]\nhub_public_key_file = "hub.key"\nsecret_key_file = "k/rack1.key_secret"\n',
            "k/rack1.key_secret": "not a key\n",
        },
        ("agent", "--config", "{d}/a.toml"),
        "gsmon agent: {d}/a.toml: agent.security.secret_key_file: secret key file {d}/k/rack1.key_secret is "
        "accessible by group/others (mode 0644); fix with: chmod 600 {d}/k/rack1.key_secret",
        modes=(("k/rack1.key_secret", 0o644),),
    ),
    "agent-key-file-not-a-key": BadCase(
        {
            "a.toml": '[agent.security]\nhub_public_key_file = "hub.key"\nsecret_key_file = "k/rack1.key_secret"\n',
            "k/rack1.key_secret": "not a key\n",
        },
        ("agent", "--config", "{d}/a.toml"),
        "gsmon agent: {d}/a.toml: agent.security.secret_key_file: {d}/k/rack1.key_secret is not a CURVE key file: "
        "no public-key in a 'curve' section",
        modes=(("k", 0o700), ("k/rack1.key_secret", 0o600)),
    ),
    "agent-reserved-name": BadCase(
        {"a.toml": '[agent]\nname = "_hub"\n'},
        ("agent", "--config", "{d}/a.toml"),
        "gsmon agent: {d}/a.toml: agent.name: expected a valid agent name, got '_hub': a leading '_' is reserved "
        "for the hub",
    ),
    "agent-bad-alert-log-level": BadCase(
        {"a.toml": '[logging]\nalerts = "LOUD"\n'},
        ("agent", "--config", "{d}/a.toml"),
        "gsmon agent: {d}/a.toml: logging.alerts: expected one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'OFF', "
        "got 'LOUD'",
    ),
    "agent-flag-bad-hub": BadCase(
        {},
        ("agent", "--hub", "udp://hub:7761"),
        # The same rule, and message, as for `hubs` in the file (issue 10.7), naming the flag.
        "gsmon agent: --hub: expected an endpoint to connect to (tcp://host:port with port 1-65535, ipc://path or "
        "inproc://name), got 'udp://hub:7761': unknown transport 'udp' (use tcp, ipc or inproc)",
    ),
    "agent-flag-bad-number": BadCase(
        {},
        ("agent", "--heartbeat-s", "soon"),
        "gsmon agent: error: argument --heartbeat-s: invalid float value: 'soon'",
    ),
    "agent-flag-unknown": BadCase(
        {},
        ("agent", "--hubs", "tcp://hub:7761"),
        "gsmon: error: unrecognized arguments: --hubs tcp://hub:7761",
    ),
    "hub-unknown-key": BadCase(
        {"h.toml": '[hub]\nagnets = "tcp://0.0.0.0:7761"\n'},
        ("hub", "--config", "{d}/h.toml"),
        "gsmon hub: {d}/h.toml: hub.agnets: unknown key; allowed keys here: "
        "agents, alarm_min_level, hub_id, max_shelve_s, query, state_dir, subscribers, upstream, "
        "upstream_coalesce_ms, upstream_hub_key, upstream_key, upstream_min_level, upstream_mount, upstream_name, "
        "upstream_prefixes",
    ),
    "hub-wrong-type": BadCase(
        {"h.toml": '[liveness]\nstale_factor = "3"\n'},
        ("hub", "--config", "{d}/h.toml"),
        "gsmon hub: {d}/h.toml: liveness.stale_factor: expected a number from 1 to 1000, got '3'",
    ),
    "hub-missing-file": BadCase(
        {},
        ("hub", "--config", "{d}/absent.toml"),
        "gsmon hub: {d}/absent.toml: cannot read the configuration: no such file",
    ),
    "hub-bad-endpoint": BadCase(
        {"h.toml": '[hub]\nquery = "tcp://*"\n'},
        ("hub", "--config", "{d}/h.toml"),
        "gsmon hub: {d}/h.toml: hub.query: expected an endpoint (tcp://host:port with port 0-65535 or '*', "
        "ipc://path or inproc://name), got 'tcp://*': no port (tcp://host:port)",
    ),
    "hub-endpoint-not-on-this-host": BadCase(
        # 192.0.2.0/24 is TEST-NET-1: never an address of this machine.
        {"h.toml": '[hub]\nagents = "tcp://192.0.2.1:0"\n'},
        ("hub", "--config", "{d}/h.toml", "--subscribers", "tcp://127.0.0.1:0", "--query", "tcp://127.0.0.1:0"),
        "gsmon hub: cannot bind the agents socket to tcp://192.0.2.1:0: cannot assign requested address; "
        "fix hub.agents in {d}/h.toml",
    ),
    "hub-no-keys": BadCase(
        {"h.toml": '[security]\nkeys_dir = "keys"\n'},
        ("hub", "--config", "{d}/h.toml", "--agents", "tcp://127.0.0.1:0", "--subscribers", "tcp://127.0.0.1:0"),
        "gsmon hub: {d}/h.toml: security.keys_dir: secret key file {d}/keys/hub.key_secret does not exist",
    ),
    "hub-flag-bad-number": BadCase(
        {},
        ("hub", "--stale-factor", "-1"),
        "gsmon hub: --stale-factor: expected a number from 1 to 1000, got -1.0",
    ),
    "hub-flag-bad-endpoint": BadCase(
        {},
        ("hub", "--agents", "tcp://0.0.0.0"),
        "gsmon hub: --agents: expected an endpoint (tcp://host:port with port 0-65535 or '*', ipc://path or "
        "inproc://name), got 'tcp://0.0.0.0': no port (tcp://host:port)",
    ),
    # Flags obey the rules of their keys (issue 10.7): refused exactly like the same value in the file.
    "hub-liveness-in-file": BadCase(
        {"h.toml": "[liveness]\nagent_liveness = 0.5\n"},
        ("hub", "--config", "{d}/h.toml"),
        "gsmon hub: {d}/h.toml: liveness.agent_liveness: expected a number from 1 to 1000, got 0.5",
    ),
    "hub-liveness-flag": BadCase(
        {"h.toml": "[liveness]\nagent_liveness = 3\n"},
        ("hub", "--config", "{d}/h.toml", "--agent-liveness", "0.5"),
        "gsmon hub: --agent-liveness: expected a number from 1 to 1000, got 0.5",
    ),
    "hub-old-flag-spelling": BadCase(
        {},
        ("hub", "--retention-s", "0"),
        "gsmon hub: --retention-s: expected a positive number of seconds, got 0.0",
    ),
    "hub-new-flag-spelling": BadCase(
        {},
        ("hub", "--agent-retention-s", "0"),
        "gsmon hub: --agent-retention-s: expected a positive number of seconds, got 0.0",
    ),
    "hub-flag-log-level": BadCase(
        {},
        ("hub", "--log-level", "loud"),
        "gsmon hub: --log-level: expected one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', got 'loud'",
    ),
    "hub-check-config-no-keys": BadCase(
        {"h.toml": '[security]\nkeys_dir = "keys"\n'},
        ("hub", "--config", "{d}/h.toml", "--check-config"),
        "gsmon hub: {d}/h.toml: security.keys_dir: secret key file {d}/keys/hub.key_secret does not exist",
    ),
    "hub-check-config-bad-file": BadCase(
        {"h.toml": '[hub]\nquery = "tcp://*"\n'},
        ("hub", "--config", "{d}/h.toml", "--check-config"),
        "gsmon hub: {d}/h.toml: hub.query: expected an endpoint (tcp://host:port with port 0-65535 or '*', "
        "ipc://path or inproc://name), got 'tcp://*': no port (tcp://host:port)",
    ),
    "agent-workers-flag": BadCase(
        {"a.toml": "[agent]\nworkers = 4\n"},
        ("agent", "--config", "{d}/a.toml", "--workers", "0"),
        "gsmon agent: --workers: expected an integer from 1 to 1000, got 0",
    ),
    "agent-name-flag-reserved": BadCase(
        {},
        ("agent", "--name", "_hub"),
        "gsmon agent: --name: expected a valid agent name, got '_hub': a leading '_' is reserved for the hub",
    ),
    "agent-key-without-hub-key": BadCase(
        {},
        ("agent", "--key", "rack1.key_secret"),
        "gsmon agent: --key: the hub's public key is missing: --key and --hub-key go together (this agent's "
        "secret key and the hub's public key)",
    ),
    "agent-key-flag-relative-to-cwd": BadCase(
        # A flag's relative path is where the operator typed it (the current folder), not the file's folder.
        {"etc/a.toml": "", "k/rack1.key_secret": "not a key\n"},
        ("agent", "--config", "{d}/etc/a.toml", "--key", "k/rack1.key_secret", "--hub-key", "hub.key"),
        "gsmon agent: --key: secret key file k/rack1.key_secret is accessible by group/others (mode 0644); "
        "fix with: chmod 600 k/rack1.key_secret",
        modes=(("k/rack1.key_secret", 0o644),),
    ),
    "agent-bad-environment-hub": BadCase(
        {},
        ("agent", "--check-config"),
        "gsmon agent: GSMON_AGENT_HUB: expected the hub's agents endpoint (tcp://host:port, ipc://path or "
        "inproc://name), got 'tcp://hub': no port (tcp://host:port)",
        env=(("GSMON_AGENT_HUB", "tcp://hub"),),
    ),
    "agent-check-config-missing-module": BadCase(
        {"a.toml": 'modules = ["antenna.py"]\n'},
        ("agent", "--config", "{d}/a.toml", "--check-config"),
        "gsmon agent: {d}/a.toml: modules[0]: module '{d}/antenna.py': no such file",
    ),
    "get-bad-client-file": BadCase(
        {"xdg/gsmon/client.toml": 'hub = "tcp://hub"\n'},
        ("get", "GS1/"),
        "gsmon get: {d}/xdg/gsmon/client.toml: hub: expected an endpoint to connect to (tcp://host:port with port "
        "1-65535, ipc://path or inproc://name), got 'tcp://hub': no port (tcp://host:port)",
        env=(("XDG_CONFIG_HOME", "{d}/xdg"),),
    ),
    "get-unknown-client-file-key": BadCase(
        {"xdg/gsmon/client.toml": 'hubb = "tcp://hub:7763"\n'},
        ("watch", "GS1/"),
        "gsmon watch: {d}/xdg/gsmon/client.toml: hubb: unknown key; allowed keys here: hub, hub_key, key",
        env=(("XDG_CONFIG_HOME", "{d}/xdg"),),
    ),
    "get-bad-environment-hub": BadCase(
        {},
        ("get", "GS1/"),
        "gsmon get: GSMON_HUB: expected the hub's query endpoint (tcp://host:port, ipc://path or inproc://name; "
        "a hub pair: two joined by a comma), got 'hub:7763': no transport (it must start with tcp://, ipc:// or "
        "inproc://)",
        env=(("GSMON_HUB", "hub:7763"),),
    ),
    "get-key-without-hub-key": BadCase(
        {},
        ("get", "GS1/", "--key", "ops.key_secret"),
        "gsmon get: --key: the hub's public key is missing: --key and --hub-key go together (this client's secret "
        "key and the hub's public key; or GSMON_KEY and GSMON_HUB_KEY, or key and hub_key in a client file)",
    ),
}


def _start_bad_case(
    tmp_path_factory: pytest.TempPathFactory, name: str, case: BadCase
) -> tuple[Path, subprocess.Popen[str]]:
    folder = tmp_path_factory.mktemp(name)
    for relative, text in case.files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for relative, mode in case.modes:
        (folder / relative).chmod(mode)
    argv = [sys.executable, "-m", "gsmon.common.cli", *(arg.format(d=folder) for arg in case.args)]
    if case.args[:1] == ("agent",) and "--state-dir" not in case.args:
        # Its own outbox folder: an agent of the default name in the machine's /var/lib/gsmon would meet
        # another case's (or another test's) agent there, and say so instead of the error under test.
        argv += ["--state-dir", str(folder / "agent-state")]
    # No client settings or agent variables of the machine running the tests leak in.
    env = {key: value for key, value in os.environ.items() if not key.startswith("GSMON_")}
    env["XDG_CONFIG_HOME"] = str(folder / "no-client-files")
    env.update((key, value.format(d=folder)) for key, value in case.env)
    popen = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=folder, env=env
    )
    return folder, popen


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Every bad case run once, a few at a time (each is a process start: run in parallel, they take a few
    seconds together; all ~40 at once on a loaded 2-core machine overran a 30 s wait)."""
    at_once = 4 * (os.cpu_count() or 1)
    cases = list(BAD_CASES.items())
    results = {}
    for first in range(0, len(cases), at_once):
        started: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
        try:
            for name, case in cases[first : first + at_once]:
                started[name] = _start_bad_case(tmp_path_factory, name, case)
            for name, (folder, popen) in started.items():
                stdout, stderr = popen.communicate(timeout=60)
                results[name] = (folder, subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr))
        finally:
            for _, popen in started.values():
                if popen.poll() is None:
                    popen.kill()
                    popen.wait()
    return results


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_configuration_or_flag_gets_one_clear_line_and_status_2(
    case: str, bad_results: dict[str, tuple[Path, subprocess.CompletedProcess[str]]]
) -> None:
    """A bad config file, key file, module or flag: exit status 2, no traceback, and exactly the expected message."""
    folder, result = bad_results[case]
    expected = BAD_CASES[case].message.format(d=folder)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == "", "nothing on stdout: no READY line"
    lines = result.stderr.splitlines()
    if "error: " in expected and not expected.startswith(f"gsmon {BAD_CASES[case].args[0]}: {folder}"):
        # argparse: its usage lines first, then the error.
        assert lines[0].startswith("usage: gsmon")
    else:
        assert len(lines) == 1, result.stderr
    assert lines[-1] == expected


# ----------------------------------------------------------------------
# Clean shutdown, peers gone
# ----------------------------------------------------------------------


def quiet_agent(procs: Processes, hub: Hub, tmp_path: Path) -> Process:
    """A real `gsmon agent` with one probe (uptime) under Lab/Quiet."""
    config = tmp_path / "quiet.toml"
    config.write_text(
        '[agent]\nname = "quiet"\nmount = "Lab/Quiet"\nheartbeat_interval_s = 0.2\n\n'
        "[probes.uptime]\ndt_s = 0.5\n\n" + quiet_probes(keep=("uptime",))
    )
    agent = procs.gsmon("agent-quiet", "agent", "--config", str(config), "--hub", hub.agents)
    agent.wait_for_line("READY agent=quiet ")
    return agent


def stop_and_time(process: Process, signum: int) -> tuple[int, float]:
    """Send ``signum``; (exit status, seconds until the process was gone). Kills it past the limit."""
    start = time.monotonic()
    process.signal(signum)
    try:
        status = process.popen.wait(timeout=SHUTDOWN_LIMIT_S + 3.0)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"{process.name} still running {SHUTDOWN_LIMIT_S + 3.0:g} s after {signum}") from None
    return status, time.monotonic() - start


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("role", ["hub", "agent", "watch"])
def test_stops_cleanly_within_2s_with_status_0_when_its_peers_are_gone(
    role: str, signum: signal.Signals, procs: Processes, tmp_path: Path
) -> None:
    """Hub with its agent killed, agent with its hub dead, watch with its hub dead: exit 0 within 2 s."""
    hub = procs.hub()
    agent = quiet_agent(procs, hub, tmp_path)
    with Subscriber(hub.query, "") as sub:
        wait_until(lambda: polled(sub) and leaf(sub, "Lab/Quiet/System/uptime_s"), what="the agent at the hub")
        if role == "hub":
            target = hub.process
            agent.kill()
            # The hard case: the hub has noticed the agent is gone (and is ageing its points).
            wait_until(
                lambda: polled(sub) and _agent_state(sub, "quiet") not in (None, "live"),
                what="the hub noticing the agent is gone",
            )
    if role == "watch":
        target = procs.gsmon("watch", "watch", "Lab/", "--hub", hub.query, "--no-colour", "--refresh-s", "0.1")
        wait_until(lambda: any("uptime_s" in line for line in drained(target)), what="a frame of watch")
        hub.process.kill()
        # The hard case: watch has noticed its hub is gone (and keeps trying to get it back).
        wait_until(lambda: any("HUB LOST" in line for line in drained(target)), what="watch noticing")
    elif role == "agent":
        target = agent
        hub.process.kill()
    status, took = stop_and_time(target, signum)
    SHUTDOWN_TIMES[f"{role} {signal.Signals(signum).name}"] = took
    stderr = target.stderr()
    assert "Traceback" not in stderr, stderr
    assert status == 0, stderr
    assert took < SHUTDOWN_LIMIT_S, f"{role} took {took:.2f} s to stop"


def test_the_hub_freezes_its_start_up_heap_and_reports_its_collector_unless_told_not_to(
    procs: Processes, tmp_path: Path
) -> None:
    """gsmon.common.gc_tuning in the real process: the ``_hub/gc_*`` points show what was frozen and what the
    collector did; ``[process] gc_tuning = false`` leaves CPython's defaults (nothing frozen), points still there."""
    tuned = procs.hub(name="tuned")
    off = tmp_path / "hub-gc-off.toml"
    off.write_text("[process]\ngc_tuning = false\n", encoding="utf-8")
    plain = procs.hub("--config", str(off), name="plain")

    def collector(hub: Hub) -> dict[str, Any] | None:
        got = gsmon_cli("get", "_hub/", "--hub", hub.query, "--json")
        assert got.returncode == 0, got.stderr
        tree: dict[str, Any] = json.loads(got.stdout)
        return tree if "_hub/gc_frozen_objects" in tree else None

    tuned_tree = wait_until(lambda: collector(tuned), what="the tuned hub's _hub/gc_* points")
    plain_tree = wait_until(lambda: collector(plain), what="the untuned hub's _hub/gc_* points")
    assert tuned_tree["_hub/gc_frozen_objects"]["value"] > 10_000  # at least the imported modules
    assert plain_tree["_hub/gc_frozen_objects"]["value"] == 0
    for tree in (tuned_tree, plain_tree):
        for name in ("gc_collections", "gc_full_collections", "gc_seconds", "gc_pause_max_s", "gc_full_last_s"):
            assert tree[f"_hub/{name}"]["value"] >= 0, name
    # The thresholds are the process's own: its log line says which ones it runs with.
    assert f"thresholds {THRESHOLDS}" in tuned.process.stderr()
    assert "CPython's defaults (gc_tuning off)" in plain.process.stderr()
