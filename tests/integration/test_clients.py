"""The operator's commands against real hubs: `gsmon get --check`, prefixes that match nothing,
`gsmon watch` waiting for and losing its hub, client settings from variables and files, agents
pointed at their hub from the environment, --check-config, `gsmon keys` as root, and `gsmon demo`
telling why a child failed.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from harness import Hub, Process, Processes, make_keys, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples"
NOBODY_UID = 65534


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment without gsmon settings, with no client file in reach, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GSMON_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "no-client-files")
    env.update(extra)
    return env


def gsmon(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout_s: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gsmon.common.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )


def write_level(path: Path, value: float, level: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps([value, level]))
    os.replace(partial, path)


def drained(process: Process) -> list[str]:
    while True:
        try:
            process.seen.append(process.lines.get_nowait())
        except queue.Empty:
            return process.seen


# ----------------------------------------------------------------------
# gsmon get --check, and prefixes that match nothing
# ----------------------------------------------------------------------


def test_get_check_is_a_monitoring_plugin(procs: Processes, tmp_path: Path) -> None:
    """OK / WARNING / CRITICAL as the worst level changes, STALE once the agent dies, UNKNOWN for nothing
    under the prefix or no hub: one line on stdout each, with the monitoring-plugins status."""
    env = clean_env(tmp_path)
    control = tmp_path / "level.json"
    write_level(control, 1.0, "GREEN")
    hub = procs.hub()
    spec = {
        "parents": {"Plant": None},
        "points": [
            {"name": "temp_c", "parent": "Plant", "file": str(control), "dt": 0.1},
            {"name": "fine", "parent": "Plant", "value": 2, "alert": "GREEN", "dt": 0.2},
            {"name": "unjudged", "parent": "Plant", "value": "text", "dt": 0.2},
        ],
    }
    agent = procs.agent(hub, "plant", spec, mount="Lab/Plant")

    def check(prefix: str = "Lab/") -> subprocess.CompletedProcess[str]:
        return gsmon("get", prefix, "--check", "--hub", hub.query, env=env)

    def status_becomes(wanted: int) -> subprocess.CompletedProcess[str] | None:
        result = check()
        return result if result.returncode == wanted and "points=3" in result.stdout else None

    ok = wait_until(lambda: status_becomes(0), timeout_s=15, what="GSMON OK")
    assert ok.stdout.splitlines() == [
        "GSMON OK - 3 points under Lab/, all below ORANGE | points=3;;;0 green=2;;;0 orange=0;0;;0 "
        "red=0;;0;0 stale=0;;0;0 critical=0;;0;0 unjudged=1;;;0"
    ]
    assert ok.stderr == ""

    write_level(control, 75.0, "ORANGE")
    warning = wait_until(lambda: status_becomes(1), timeout_s=15, what="GSMON WARNING")
    assert warning.stdout.startswith("GSMON WARNING - 1 warning under Lab/ (worst Lab/Plant/Plant/temp_c ORANGE) | ")
    assert "orange=1;0;;0" in warning.stdout

    write_level(control, 95.0, "RED")
    critical = wait_until(lambda: status_becomes(2), timeout_s=15, what="GSMON CRITICAL")
    assert critical.stdout.startswith("GSMON CRITICAL - 1 critical under Lab/ (worst Lab/Plant/Plant/temp_c RED) | ")
    assert "red=1;;0;0" in critical.stdout

    write_level(control, 1.0, "GREEN")
    wait_until(lambda: status_becomes(0), timeout_s=15, what="GSMON OK again")
    agent.kill()
    stale = wait_until(
        lambda: (result := status_becomes(2)) is not None and "stale=3;;0;0" in result.stdout and result,
        timeout_s=15,
        what="every point STALE after the agent died",
    )
    assert stale.stdout.startswith("GSMON CRITICAL - 3 stale under Lab/ (worst Lab/Plant/")

    nothing = check("Nowhere/")
    assert nothing.returncode == 3
    assert nothing.stdout.splitlines() == [f"GSMON UNKNOWN - nothing under Nowhere/ at {hub.query}"]

    hub.process.kill()
    gone = gsmon("get", "Lab/", "--check", "--hub", hub.query, "--timeout-s", "1", env=env)
    assert gone.returncode == 3
    assert len(gone.stdout.splitlines()) == 1
    assert gone.stdout.startswith("GSMON UNKNOWN - ")
    assert hub.query in gone.stdout


def test_get_of_a_prefix_that_matches_nothing_says_so(procs: Processes, tmp_path: Path) -> None:
    """Exit status 1 and one line on stderr, with or without --json (which still prints {})."""
    env = clean_env(tmp_path)
    hub = procs.hub()
    table = gsmon("get", "GS9/", "--hub", hub.query, env=env)
    assert table.returncode == 1
    assert table.stdout == ""
    assert table.stderr.splitlines() == [
        f"gsmon get: nothing under GS9/ at the hub {hub.query} "
        "(a prefix names whole path segments: GS1/Rack1 is that node and its subtree)"
    ]
    as_json = gsmon("get", "GS9/", "--json", "--hub", hub.query, env=env)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {}
    assert as_json.stderr == table.stderr
    found = gsmon("get", "_hub/", "--json", "--hub", hub.query, env=env)
    assert found.returncode == 0, found.stderr
    assert "_hub/uptime_s" in json.loads(found.stdout)


def test_get_table_shows_units_and_json_stays_exact(procs: Processes, tmp_path: Path) -> None:
    """The issue's own raw values: the table says them with their units, sized to COLUMNS, the long error
    cut with an ellipsis; ``--json`` gives every number and character exactly as the agent sent it."""
    hub = procs.hub()
    error = "ERROR ConnectionError: no reply from the downconverter at 10.0.0.5 after 3 tries"
    values: dict[str, object] = {
        "memory_available_bytes": 24_670_994_432,
        "eno1_rx_bytes_per_s": 8.21207e07,
        "uptime_s": 1.23457e06,
        "lock": error,
    }
    points = [{"name": name, "parent": "Host", "value": value, "dt": 1.0} for name, value in values.items()]
    procs.agent(hub, "host", {"parents": {"Host": None}, "points": points}, mount="GS1")
    env = clean_env(tmp_path, COLUMNS="80")

    def listed() -> subprocess.CompletedProcess[str] | None:
        done = gsmon("get", "GS1", "--hub", hub.query, env=env)
        return done if done.returncode == 0 and "lock" in done.stdout else None

    table = wait_until(listed, what="the agent's points at the hub").stdout
    lines = table.splitlines()
    assert all(len(line) <= 80 for line in lines), table
    assert re.search(r"memory_available_bytes +23\.0 GiB\b", table), table
    assert re.search(r"eno1_rx_bytes_per_s +82\.1 MB/s\b", table), table
    assert re.search(r"uptime_s +14d 6h 56m\b", table), table
    lock = next(line for line in lines if "lock" in line)
    shown = re.search(r"(ERROR \S.*?)… ", lock)
    assert shown is not None, lock
    assert error.startswith(shown.group(1)), lock  # the error's head, and an ellipsis
    assert " age" in lines[1]
    assert "Last polled" not in table
    exact = json.loads(gsmon("get", "GS1", "--json", "--hub", hub.query, env=env).stdout)
    assert {name: exact[f"GS1/Host/{name}"]["value"] for name in values} == values


# ----------------------------------------------------------------------
# gsmon watch: waits for its hub, says when it is lost, plain frames off a terminal
# ----------------------------------------------------------------------


def frames(lines: list[str]) -> list[list[str]]:
    """watch's plain output split into frames (a blank line between frames)."""
    result: list[list[str]] = [[]]
    for line in lines:
        if line == "":
            result.append([])
        else:
            result[-1].append(line)
    return [frame for frame in result if frame]


def test_watch_waits_for_the_hub_then_shows_it_lost_with_every_level_unknown(procs: Processes, tmp_path: Path) -> None:
    """Started before its hub: `waiting for the hub at …` until it answers; the tree; the hub killed:
    a HUB LOST banner and every row UNKNOWN, never its last GREEN; no escape codes (not a terminal)."""
    query = f"ipc://{tmp_path}/query.sock"  # a path, not a pre-picked port: the hub binds it later
    watch = procs.start(
        "watch",
        [
            sys.executable,
            "-m",
            "gsmon.common.cli",
            "watch",
            "Lab/",
            "--hub",
            query,
            "--refresh-s",
            "0.1",
            "--timeout-s",
            "1",
        ],
        env=clean_env(tmp_path),
    )
    waiting = watch.wait_for_line(" waiting for the hub at ")
    assert waiting.startswith(f" waiting for the hub at {query}: ")
    assert "(retrying; Ctrl-C stops)" in waiting
    hub = procs.hub(query=query)
    procs.agent(hub, "green", {"points": [{"name": "fine", "value": 1, "alert": "GREEN", "dt": 0.1}]}, mount="Lab/G")
    wait_until(
        lambda: any(line.startswith(" ..fine") and "GREEN" in line for line in drained(watch)),
        timeout_s=20,
        what="the point in watch once the hub is up",
    )
    seen_before = len(drained(watch))
    hub.process.kill()
    wait_until(lambda: any("HUB LOST" in line for line in drained(watch)[seen_before:]), what="the HUB LOST banner")
    # A whole frame after the banner: every row UNKNOWN.
    wait_until(lambda: len(frames(drained(watch)[seen_before:])) >= 3, what="frames after the hub was lost")
    lost_frames = [frame for frame in frames(drained(watch)[seen_before:]) if "HUB LOST" in frame[0]]
    assert lost_frames
    for frame in lost_frames[:-1]:  # the last one may still be arriving
        assert "hub lost" in frame[0]
        rows = frame[3:]
        assert rows, frame
        assert all("GREEN" not in row for row in rows), frame
        assert any(row.startswith(" ..fine") and "UNKNOWN" in row for row in rows), frame
    watch.signal(signal.SIGINT)
    assert watch.popen.wait(timeout=5) == 0, watch.stderr()
    everything = "\n".join(drained(watch))
    assert "\x1b" not in everything, "no cursor-control or colour codes when stdout is not a terminal"
    assert "Traceback" not in watch.stderr()


def test_watch_against_no_hub_keeps_waiting_until_its_duration(tmp_path: Path) -> None:
    """No hub at all: waiting lines until --duration-s, then exit status 0."""
    result = gsmon(
        "watch",
        "--hub",
        f"ipc://{tmp_path}/nobody.sock",
        "--duration-s",
        "2.5",
        "--timeout-s",
        "0.5",
        env=clean_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line]
    assert len(lines) >= 2, result.stdout
    assert all(line.startswith(f" waiting for the hub at ipc://{tmp_path}/nobody.sock: ") for line in lines)


# ----------------------------------------------------------------------
# Client settings: variables and files instead of flags
# ----------------------------------------------------------------------


@pytest.fixture
def keyed_hub(procs: Processes, tmp_path: Path) -> tuple[Hub, Path]:
    keys = make_keys(tmp_path / "keys", agents={"lab": ["Lab/Agent"], "app": ["Lab/App"]}, subscribers={"ops": None})
    return procs.hub("--keys", str(keys.hub_dir)), keys.root


def test_get_takes_hub_and_keys_from_variables_and_client_files(keyed_hub: tuple[Hub, Path], tmp_path: Path) -> None:
    """GSMON_HUB/GSMON_KEY/GSMON_HUB_KEY alone; a client file with paths relative to itself; flags beat
    variables, variables beat files."""
    hub, keys = keyed_hub
    secret, hub_public = keys / "ops" / "ops.key_secret", keys / "ops" / "hub.key"
    from_variables = gsmon(
        "get",
        "_hub/uptime_s",
        "--json",
        env=clean_env(tmp_path, GSMON_HUB=hub.query, GSMON_KEY=str(secret), GSMON_HUB_KEY=str(hub_public)),
    )
    assert from_variables.returncode == 0, from_variables.stderr
    assert "_hub/uptime_s" in json.loads(from_variables.stdout)

    config_home = tmp_path / "xdg"
    (config_home / "gsmon").mkdir(parents=True)
    (config_home / "gsmon" / "ops").symlink_to(keys / "ops", target_is_directory=True)
    (config_home / "gsmon" / "client.toml").write_text(
        f'hub = "{hub.query}"\nkey = "ops/ops.key_secret"\nhub_key = "ops/hub.key"\n'
    )
    from_file = gsmon(
        "get", "_hub/uptime_s", "--check", env=clean_env(tmp_path, XDG_CONFIG_HOME=str(config_home)), cwd=tmp_path
    )
    assert from_file.returncode == 0, from_file.stdout + from_file.stderr
    assert from_file.stdout.startswith("GSMON OK - 1 points under _hub/uptime_s")

    # A variable beats the file: a hub that does not exist makes the command fail.
    nowhere = f"ipc://{tmp_path}/nowhere.sock"
    beaten = gsmon(
        "get",
        "_hub/",
        "--timeout-s",
        "0.5",
        env=clean_env(tmp_path, XDG_CONFIG_HOME=str(config_home), GSMON_HUB=nowhere),
    )
    assert beaten.returncode == 1
    assert nowhere in beaten.stderr
    # ...and a flag beats the variable.
    flag = gsmon(
        "get",
        "_hub/uptime_s",
        "--hub",
        hub.query,
        env=clean_env(tmp_path, XDG_CONFIG_HOME=str(config_home), GSMON_HUB=nowhere),
    )
    assert flag.returncode == 0, flag.stderr


def test_agent_and_monitor_find_their_hub_and_keys_in_the_environment(
    keyed_hub: tuple[Hub, Path], procs: Processes, tmp_path: Path
) -> None:
    """`gsmon agent` without --hub and `Monitor()` without hub= publish to GSMON_AGENT_HUB with
    GSMON_KEY/GSMON_HUB_KEY, to a hub that requires keys."""
    hub, keys = keyed_hub
    env = clean_env(
        tmp_path,
        GSMON_AGENT_HUB=hub.agents,
        GSMON_KEY=str(keys / "lab" / "lab.key_secret"),
        GSMON_HUB_KEY=str(keys / "lab" / "hub.key"),
    )
    config = tmp_path / "agent.toml"
    config.write_text(
        "[probes.uptime]\ndt_s = 0.5\n"
        + "".join(
            f"[probes.{family}]\nenabled = false\n"
            for family in ("cpu", "load", "memory", "swap", "disk", "disk_io", "network", "sensors")
        )
    )
    agent = procs.gsmon("agent", "agent", "--config", str(config), "--name", "lab", "--mount", "Lab/Agent", env=env)
    assert agent.wait_for_line("READY ") == f"READY agent=lab mount=Lab/Agent hubs={hub.agents}"
    program = textwrap.dedent(
        """
        import signal, threading
        from gsmon.agent import Monitor, GreenAlert
        mon = Monitor(agent="app", mount="Lab/App")

        @mon.monitor(dt=0.2)
        def answer():
            return GreenAlert(7)

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        mon.start()
        print("READY", flush=True)
        while not stop.wait(0.25):  # timed: a SIGTERM taken by another thread runs its handler only then
            pass
        mon.stop()
        """
    )
    app_env = dict(env, GSMON_KEY=str(keys / "app" / "app.key_secret"), GSMON_HUB_KEY=str(keys / "app" / "hub.key"))
    app = procs.start("monitor-app", [sys.executable, "-c", program], env=app_env)
    app.wait_for_line("READY")
    reader = clean_env(
        tmp_path,
        GSMON_HUB=hub.query,
        GSMON_KEY=str(keys / "ops" / "ops.key_secret"),
        GSMON_HUB_KEY=str(keys / "ops" / "hub.key"),
    )

    def both() -> dict[str, object] | None:
        result = gsmon("get", "Lab/", "--json", env=reader)
        if result.returncode != 0:
            return None
        tree = json.loads(result.stdout)
        return tree if "Lab/Agent/System/uptime_s" in tree and "Lab/App/answer" in tree else None

    tree = wait_until(both, timeout_s=20, interval_s=0.3, what="both publishers at the keyed hub")
    assert tree["Lab/App/answer"]["value"] == 7  # type: ignore[index]
    assert app.stop() == 0
    assert agent.stop() == 0


# ----------------------------------------------------------------------
# --check-config, and thresholds that match nothing
# ----------------------------------------------------------------------


def test_check_config_validates_everything_without_listening(tmp_path: Path) -> None:
    """Hub and agent: `config OK: …` and exit 0 for good configurations (keys loaded, modules imported),
    and nothing is bound or connected (the ipc endpoints' files never appear)."""
    env = clean_env(tmp_path)
    keys = make_keys(tmp_path / "keys", agents={"ant2": ["GS1/Antenna2"]}, subscribers={"ops": None})
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    hub = gsmon(
        "hub",
        "--config",
        str(EXAMPLES / "hub.toml"),
        "--keys",
        str(keys.hub_dir),
        "--agents",
        f"ipc://{sockets}/agents",
        "--check-config",
        env=env,
    )
    assert hub.returncode == 0, hub.stderr
    assert hub.stdout.splitlines() == [
        f"config OK: {EXAMPLES / 'hub.toml'}: agents=ipc://{sockets}/agents subscribers=tcp://0.0.0.0:7762 "
        f"query=tcp://0.0.0.0:7763; keys {keys.hub_dir} (1 agents, 1 subscribers)"
    ]
    agent = gsmon(
        "agent",
        "--config",
        str(EXAMPLES / "agent-antenna.toml"),
        "--hub",
        f"ipc://{sockets}/agents",
        "--key",
        str(keys.secret("ant2")),
        "--hub-key",
        str(keys.root / "ant2" / "hub.key"),
        "--check-config",
        env=env,
    )
    assert agent.returncode == 0, agent.stderr
    (line,) = agent.stdout.splitlines()
    assert line.startswith(
        f"config OK: {EXAMPLES / 'agent-antenna.toml'}: agent=ant2 mount=GS1/Antenna2 hubs=ipc://{sockets}/agents; "
    )
    assert "1 modules" in line
    # Only a host without sensors (a VM) may leave a threshold with nothing to judge: the sensor ones.
    unmatched = [entry for entry in agent.stderr.splitlines() if "matches no point" in entry]
    assert all("'Sensors/" in entry for entry in unmatched), agent.stderr
    assert "READY" not in agent.stdout
    assert list(sockets.iterdir()) == [], "nothing was bound"


def test_a_threshold_that_matches_no_point_is_warned_about(procs: Processes, tmp_path: Path) -> None:
    """With --check-config and in a running agent: one WARNING per threshold whose pattern matches no point."""
    config = tmp_path / "agent.toml"
    config.write_text(
        '[agent]\nname = "typo"\nmount = "Lab/Typo"\n\n'
        '[[thresholds]]\npoint = "System/uptime_s"\nred = 1e12\n\n'
        '[[thresholds]]\npoint = "CPU/cpu_totl_percent"\nred = 90.0\n'
    )
    env = clean_env(tmp_path)
    checked = gsmon("agent", "--config", str(config), "--check-config", env=env)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.rstrip().endswith("; 1 threshold(s) match no point (see the warnings above)")
    warnings = [line for line in checked.stderr.splitlines() if "matches no point" in line]
    assert len(warnings) == 1, checked.stderr
    assert " WARNING " in warnings[0]
    assert f"{config}: thresholds[1].point: 'CPU/cpu_totl_percent' matches no point of this agent" in warnings[0]
    hub = procs.hub()
    agent = procs.gsmon("agent", "agent", "--config", str(config), "--hub", hub.agents, env=env)
    agent.wait_for_line("READY ")
    wait_until(lambda: "cpu_totl_percent" in agent.stderr(), what="the warning of the running agent")
    assert agent.stderr().count("matches no point") == 1


# ----------------------------------------------------------------------
# gsmon keys as root on another user's folder
# ----------------------------------------------------------------------


@pytest.fixture
def nobody_folder() -> Iterator[Path]:
    """A folder the user `nobody` can reach (pytest's tmp folders are root's own, 0700)."""
    with tempfile.TemporaryDirectory(prefix="gsmon-keys-owner-") as name:
        root = Path(name)
        root.chmod(0o711)
        yield root


@pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="giving files to another user needs root; run the suite as root (CI does) to test it",
)
def test_keys_as_root_keep_the_folders_owner(nobody_folder: Path, tmp_path: Path) -> None:
    """`gsmon keys` run as root in a folder owned by `nobody` leaves every file it writes (and every
    folder it creates there) owned by nobody, modes unchanged, so nobody's hub can read them all."""
    env = clean_env(tmp_path)
    hub_dir = nobody_folder / "keys"
    hub_dir.mkdir(mode=0o700)
    os.chown(hub_dir, NOBODY_UID, NOBODY_UID)
    clients = nobody_folder / "clients"
    clients.mkdir(mode=0o700)
    os.chown(clients, NOBODY_UID, NOBODY_UID)
    for command in (
        ["keys", "init", str(hub_dir)],
        ["keys", "agent", "rack1", "--mount", "GS1/Rack1", "--hub-dir", str(hub_dir), "--out", str(clients / "rack1")],
        ["keys", "subscriber", "ops", "--hub-dir", str(hub_dir), "--out", str(clients / "ops")],
        ["keys", "revoke", "ops", "--hub-dir", str(hub_dir)],
    ):
        result = gsmon(*command, env=env)
        assert result.returncode == 0, result.stderr
    written = sorted([*hub_dir.iterdir(), *clients.rglob("*")])
    assert {path.name for path in hub_dir.iterdir()} == {"hub.key", "hub.key_secret", "authorized.toml"}
    assert len(written) >= 3 + 2 + 3 + 3
    for path in written:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (NOBODY_UID, NOBODY_UID), f"{path} is owned by {info.st_uid}"
        assert info.st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), f"{path}: {info.st_mode:o}"
    # The folder's owner can read every file root wrote or rewrote (this Python lives where nobody
    # may not enter, so the reading is done by cat, as nobody).
    for path in [*hub_dir.iterdir(), *(clients / "rack1").iterdir()]:
        read = subprocess.run(
            ["cat", str(path)],
            capture_output=True,
            timeout=30,
            check=False,
            cwd="/",
            user=NOBODY_UID,
            group=NOBODY_UID,
            extra_groups=[],
        )
        assert read.returncode == 0, (path, read.stderr)
        assert read.stdout == path.read_bytes()
    listed = gsmon("keys", "list", "--hub-dir", str(hub_dir), env=env)
    assert listed.returncode == 0, listed.stderr
    assert "rack1" in listed.stdout
    assert "subscribers (0):" in listed.stdout


# ----------------------------------------------------------------------
# gsmon demo: a child's failure comes with its last stderr lines
# ----------------------------------------------------------------------


def test_demo_child_that_does_not_start_reports_its_stderr() -> None:
    """The demo's child runner keeps a bounded tail of stderr and puts it in the failure it reports."""
    from gsmon.common.children import Children
    from gsmon.common.demo import STDERR_TAIL_LINES, ChildFailedError, _ready, _start

    with Children() as children:
        child = _start(children, "agent", "agent", "--config", "/nonexistent/agent.toml")
        child.expect_exit(2)
        with pytest.raises(ChildFailedError) as failure:
            _ready(child, timeout_s=30)
    message = str(failure.value)
    assert message.startswith("the agent did not start (exit status 2); its last lines on stderr:\n")
    assert "  agent: gsmon agent: /nonexistent/agent.toml: cannot read the configuration: no such file" in message
    assert len(child.stderr().splitlines()) <= STDERR_TAIL_LINES
    assert children.reap() == []  # it ended as declared


def test_demo_ends_with_the_reason_when_its_agent_dies(procs: Processes, tmp_path: Path) -> None:
    """The demo's agent killed while the view runs: the demo stops with exit status 1 and says which child
    failed, with its exit status. Its hub and agent kept their state in a folder of the demo's own, gone
    after it (never the machine's /var/lib/gsmon, where a real hub or agent may live)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = clean_env(tmp_path, TMPDIR=str(temp))
    demo = procs.gsmon("demo", "demo", "--refresh-s", "0.2", "--duration-s", "60", env=env)
    wait_until(lambda: any("cpu_total_percent" in line for line in drained(demo)), timeout_s=30, what="the demo view")
    children = psutil.Process(demo.pid).children()
    (agent,) = [child for child in children if "agent" in child.cmdline()]
    (hub,) = [child for child in children if "hub" in child.cmdline()]
    (folder,) = temp.glob("gsmon-demo-*")
    for child, own in ((hub, folder / "hub"), (agent, folder / "agent")):
        argv = child.cmdline()
        assert argv[argv.index("--state-dir") + 1] == str(own), argv
    assert (folder / "hub" / "state.db").exists()
    demo.expect_exit(1)
    agent.kill()
    assert demo.popen.wait(timeout=10) == 1
    stderr = demo.stderr()
    assert "gsmon demo: the agent stopped (exit status -9)" in stderr, stderr
    assert "Traceback" not in stderr
    wait_until(lambda: not any(child.is_running() for child in children), what="the demo's children reaped")
    assert not folder.exists(), "the demo's state folder is removed at its end"


def test_watch_on_a_terminal_redraws_in_place_with_colours(procs: Processes, tmp_path: Path) -> None:
    """On a terminal (a pty) watch does use cursor-home/clear and alert colours."""
    import pty
    import select

    hub = procs.hub()
    procs.agent(hub, "green", {"points": [{"name": "fine", "value": 1, "alert": "GREEN", "dt": 0.1}]}, mount="Lab/G")
    controller, terminal = pty.openpty()
    stderr_path = tmp_path / "watch.stderr"
    with stderr_path.open("wb") as stderr_file:
        watch = subprocess.Popen(
            [sys.executable, "-m", "gsmon.common.cli", "watch", "Lab/", "--hub", hub.query, *("--duration-s", "3")],
            stdout=terminal,
            stderr=stderr_file,
            stdin=subprocess.DEVNULL,
            env=clean_env(tmp_path),
        )
        os.close(terminal)
        shown = b""
        while True:
            ready, _, _ = select.select([controller], [], [], 10)
            if not ready:
                break
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        os.close(controller)
        assert watch.wait(timeout=10) == 0, stderr_path.read_text()
    assert b"\x1b[H\x1b[J" in shown
    assert b"\x1b[32m ..fine" in shown, shown[-2000:]
