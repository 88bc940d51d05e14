"""`gsmon watch` in a real terminal: tmux runs it against a real hub with several hundred points.

A few RED and CRITICAL points sit deep in the tree among ~450 GREEN ones. At
80x24 and at 160x50 they must be on the first screen, the screen is redrawn
in place (tmux's scrollback, ``#{history_size}``, does not grow), a resize is
followed live, the filter prompt works with real keys, and ``q`` exits with
status 0. Every captured screen is saved under ``tests/artifacts/`` (ignored
by git) for people to look at; the test prints where.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Hub, Processes, wait_until

TMUX = shutil.which("tmux") or "/usr/bin/tmux"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DEEP_PROBLEMS = ("smart_errors", "lock", "sdr_server")


def _require_tmux() -> None:
    if shutil.which("tmux") is None and not os.path.exists(TMUX):
        if os.environ.get("CI") == "true":
            pytest.fail("tmux is required for the real-terminal tests (apt-get install tmux)")
        pytest.skip("tmux is not installed")


def _agent_spec(
    healthy: int, parents: dict[str, str | None], problems: list[dict[str, Any]], tag: str
) -> dict[str, Any]:
    groups = ["CPU", "Memory", "Network"]
    points = [
        {
            "name": f"{tag}_{index:03d}_rx_bytes_per_s",
            "parent": groups[index % 3],
            "value": 8.21207e07 + index,
            "alert": "GREEN",
            "dt": 1.0,
        }
        for index in range(healthy)
    ]
    return {"parents": {**dict.fromkeys(groups), **parents}, "points": points + problems}


@pytest.fixture
def station(procs: Processes) -> Hub:
    """A hub and three agents: 450 GREEN points; a CRITICAL, two REDs, each 3-4 levels deep."""
    hub = procs.hub()
    procs.agent(
        hub,
        "rack1",
        _agent_spec(
            150,
            {"Storage": None, "Array": "Storage", "Bay3": "Array"},
            [{"name": "smart_errors", "parent": "Bay3", "value": 412, "alert": "CRITICAL", "dt": 1.0}],
            "r1",
        ),
        mount="GS1/Rack1",
    )
    procs.agent(
        hub,
        "ant2",
        _agent_spec(
            150,
            {"RF": None, "Downconverter": "RF"},
            [
                {
                    "name": "lock",
                    "parent": "Downconverter",
                    "value": "ERROR ConnectionError: no reply from the downconverter at 10.0.0.5 after 3 tries",
                    "alert": "RED",
                    "dt": 1.0,
                }
            ],
            "a2",
        ),
        mount="GS1/Antenna2",
    )
    procs.agent(
        hub,
        "rack3",
        _agent_spec(
            150,
            {"Processes": None},
            [{"name": "sdr_server", "parent": "Processes", "value": 0, "alert": "RED", "dt": 1.0}],
            "r3",
        ),
        mount="GS1/Rack3",
    )
    return hub


class Tmux:
    """One tmux server of our own (its own socket), one session; killed at the end."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.socket = f"gsmon-test-{os.getpid()}-{time.monotonic_ns()}"
        self.session = name
        self.status_file = tmp_path / f"{name}.status"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("GSMON_", "TMUX"))}
        self.env["XDG_CONFIG_HOME"] = str(tmp_path / "no-client-files")
        self.env.pop("NO_COLOR", None)

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=20, env=self.env, check=False
        )
        assert result.returncode == 0, f"tmux {' '.join(args)}: {result.stderr}"
        return result.stdout

    def start(self, command: list[str], width: int, height: int) -> None:
        shell = f"{shlex.join(command)}; echo $? > {shlex.quote(str(self.status_file))}"
        self.run("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height), shell)

    def capture(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def history_size(self) -> int:
        return int(self.run("display-message", "-p", "-t", self.session, "#{history_size}").strip())

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def resize(self, width: int, height: int) -> None:
        self.run("resize-window", "-t", self.session, "-x", str(width), "-y", str(height))

    def kill(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=20, check=False)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    _require_tmux()
    session = Tmux(tmp_path, "watch")
    try:
        yield session
    finally:
        session.kill()


def _save(name: str, screen: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"watch-{name}.txt"
    path.write_text(screen, encoding="utf-8")
    print(f"captured screen: {path}")
    return path


def _shows_everything(screen: str) -> bool:
    return all(re.search(rf"\b{name}\b", screen) for name in DEEP_PROBLEMS) and "connected" in screen


@pytest.mark.parametrize(("width", "height"), [(80, 24), (160, 50)])
def test_watch_in_tmux_problems_on_the_first_screen_no_scrollback_q_exits_0(
    station: Hub, tmux: Tmux, width: int, height: int
) -> None:
    command = [sys.executable, "-m", "gsmon.common.cli", "watch", "--hub", station.query]
    tmux.start(command, width, height)
    screen = wait_until(
        lambda: (shown := tmux.capture()) and _shows_everything(shown) and shown,
        timeout_s=30,
        what="the deep RED and CRITICAL points on the first screen",
    )
    _save(f"{width}x{height}-first", screen)
    lines = screen.splitlines()
    assert len(lines) <= height
    assert all(len(line) <= width for line in lines)
    assert "‼ CRITICAL" in screen
    assert "✗ RED" in screen
    assert "Traceback" not in screen
    # Healthy subtrees are one line each, with their count.
    assert re.search(r"▸ (CPU|Memory|Network) +✓ GREEN +✓ 50 ok", screen), screen
    history = tmux.history_size()
    assert history == 0, "a full-screen view leaves nothing in the scrollback"

    # A few redraws later (the age column ticks every second): still redrawn in place.
    first_ages = re.findall(r"\d+\.\ds", screen)
    wait_until(
        lambda: re.findall(r"\d+\.\ds", tmux.capture()) != first_ages,
        timeout_s=10,
        what="a redraw",
    )
    assert tmux.history_size() == history

    # Real keys: the filter prompt, then back to the tree.
    tmux.keys("/")
    tmux.keys("-l", "lock")
    tmux.keys("Enter")
    filtered = wait_until(
        lambda: (shown := tmux.capture()) and "filter 'lock'" in shown and shown, what="the filtered view"
    )
    _save(f"{width}x{height}-filter-lock", filtered)
    assert "smart_errors" not in filtered
    assert re.search(r"\block\b", filtered)
    tmux.keys("Escape")
    wait_until(lambda: "smart_errors" in tmux.capture(), what="the filter cleared")

    tmux.keys("q")
    status = wait_until(lambda: tmux.status_file.exists() and tmux.status_file.read_text().strip(), what="watch exit")
    assert status == "0"


def test_watch_in_tmux_follows_a_resize_live(station: Hub, tmux: Tmux) -> None:
    """80x24 -> 160x50 -> 80x24 while running: every screen fits, shows the problems, adds no scrollback."""
    tmux.start([sys.executable, "-m", "gsmon.common.cli", "watch", "--hub", station.query], 80, 24)
    wait_until(lambda: _shows_everything(tmux.capture()), timeout_s=30, what="the first screen")
    for width, height in ((160, 50), (80, 24)):
        tmux.resize(width, height)

        last: list[str] = [""]

        def fitted(width: int = width, height: int = height, last: list[str] = last) -> str | None:
            shown = last[0] = tmux.capture()
            lines = shown.splitlines()
            # The detail pane comes with the room for it (120 columns), and goes with it.
            laid_out = len(lines) == height and ("Path: " in shown) == (width >= 120)
            return shown if laid_out and _shows_everything(shown) else None

        try:  # a generous deadline: the re-layout of a 600-node station on a loaded machine
            screen = wait_until(fitted, timeout_s=30, what=f"the view at {width}x{height}")
        except AssertionError as error:
            pane = tmux.run("display-message", "-p", "-t", tmux.session, "#{pane_width}x#{pane_height}").strip()
            raise AssertionError(f"{error}; the pane is {pane}; the screen last read:\n{last[0]}") from None
        _save(f"resized-{width}x{height}", screen)
        assert all(len(line) <= width for line in screen.splitlines())
        assert tmux.history_size() == 0
    tmux.keys("q")
    status = wait_until(lambda: tmux.status_file.exists() and tmux.status_file.read_text().strip(), what="watch exit")
    assert status == "0"


def test_watch_in_tmux_a_acknowledges_the_selected_subtree_by_id(procs: Processes, tmux: Tmux, tmp_path: Path) -> None:
    """``a`` on the top node, a comment typed with real keys, Enter: the hub has that alarm acked with it."""
    hub = procs.hub("--state-dir", str(tmp_path / "state"))
    procs.agent(
        hub,
        "rack1",
        _agent_spec(
            30,
            {"Storage": None, "Bay3": "Storage"},
            [{"name": "smart_errors", "parent": "Bay3", "value": 412, "alert": "RED", "dt": 0.5}],
            "r1",
        ),
        mount="GS1/Rack1",
    )

    def alarms() -> list[dict[str, Any]]:
        done = subprocess.run(
            [sys.executable, "-m", "gsmon.common.cli", "alarms", "--json", "--hub", hub.query],
            capture_output=True,
            text=True,
            timeout=30,
            env=tmux.env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        listed: list[dict[str, Any]] = json.loads(done.stdout)
        return listed

    alarm = wait_until(lambda: next(iter(alarms()), None), what="the RED point's alarm")
    tmux.start([sys.executable, "-m", "gsmon.common.cli", "watch", "--hub", hub.query], 100, 30)
    wait_until(lambda: "1 unacked" in tmux.capture() and "smart_errors" in tmux.capture(), what="the unacked alarm")
    tmux.keys("Home")
    tmux.keys("a")
    prompt = wait_until(
        lambda: (shown := tmux.capture()) and "Acknowledge 1 unacked alarm" in shown and shown, what="the ack prompt"
    )
    _save("ack-prompt", prompt)
    assert f"ids {alarm['id']}" in prompt
    tmux.keys("-l", "disk swap booked")
    tmux.keys("Enter")
    done = wait_until(
        lambda: (shown := tmux.capture()) and "acknowledged 1 of 1" in shown and shown, what="the ack's answer"
    )
    _save("ack-done", done)
    acked = wait_until(lambda: (listed := alarms()) and listed[0]["state"] == "active_acked" and listed[0])
    assert (acked["id"], acked["ack_comment"]) == (alarm["id"], "disk swap booked")
    tmux.keys("Down")  # the answer stays on the status line until the selection moves
    wait_until(lambda: "0 unacked" in tmux.capture(), what="the status bar to follow the ack")
    tmux.keys("A")  # the alarm list: what gsmon alarms says, live
    listed = wait_until(
        lambda: (shown := tmux.capture()) and "GS1/Rack1/Storage/Bay3/smart_errors" in shown and shown,
        what="the alarm list",
    )
    _save("alarm-list", listed)
    row = next(line for line in listed.splitlines() if "GS1/Rack1/Storage/Bay3/smart_errors" in line)
    assert re.search(rf"\b{alarm['id']}\b.*\backed\b.*\bRED\b.*\b412\b", row), row  # id, state, level, value
    tmux.keys("Escape")
    wait_until(lambda: "0 unacked" in tmux.capture(), what="back to the tree")
    tmux.keys("q")
    status = wait_until(lambda: tmux.status_file.exists() and tmux.status_file.read_text().strip(), what="watch exit")
    assert status == "0"


def test_demo_in_tmux_first_sight(tmux: Tmux) -> None:
    """``gsmon demo`` as a newcomer runs it, at 80x24: the full-screen view (not plain frames), the local
    probes judged by their default thresholds, the hub's own ``_hub`` one collapsed line, and, in the full
    tree, the rates with a value and a unit on the first screen; nothing in the scrollback; ``q`` exits 0
    and the demo's hub and agent go with it."""
    tmux.start([sys.executable, "-m", "gsmon.common.cli", "demo"], 80, 24)
    judged = re.compile(r"[▸▾] CPU +[✓▲✗‼] (GREEN|ORANGE|RED|CRITICAL)\b")
    hub_line = re.compile(r"▸ _hub +\S.*\b\d+ (ok|orange|red|critical|stale)\b")  # "· 38 ok" before its first level
    screen = wait_until(
        lambda: (shown := tmux.capture()) and "connected" in shown and judged.search(shown) and shown,
        timeout_s=60,
        what="the demo's probes with their levels",
    )
    _save("demo-80x24-first", screen)
    assert hub_line.search(screen), screen
    assert "▾ _hub" not in screen
    assert all(len(line) <= 80 for line in screen.splitlines())
    tmux.keys("t")  # the full tree: every probe point, in path order
    rates = re.compile(r"_bytes_per_s +· +[\d.]+ [kMGT]?B/s\b")
    full = wait_until(
        lambda: (shown := tmux.capture()) and "full tree" in shown and rates.search(shown) and shown,
        timeout_s=20,
        what="the demo's rates with a value in the full tree",
    )
    _save("demo-80x24-full", full)
    assert re.search(r"\b\d+(\.\d+)?%", full), "percentages with their unit"
    assert re.search(r"\b\d+(\.\d+)? [KMGT]iB\b", full), "bytes in binary multiples"
    assert tmux.history_size() == 0
    tmux.keys("q")
    status = wait_until(lambda: tmux.status_file.exists() and tmux.status_file.read_text().strip(), what="demo exit")
    assert status == "0"


def test_watch_plain_in_tmux_draws_frames_with_no_escape_sequence(station: Hub, tmux: Tmux) -> None:
    """``--plain`` on a terminal: frames one after another, with no cursor movement and no colour (tmux
    keeps no attribute of any cell: ``capture-pane -e`` has no escape sequence); Ctrl-C stops it, status 0."""
    command = [sys.executable, "-m", "gsmon.common.cli", "watch", "--plain", "--hub", station.query]
    tmux.start([*command, "GS1/Rack1/Storage", "--refresh-s", "0.2"], 80, 24)
    screen = wait_until(
        lambda: (shown := tmux.capture()) and "smart_errors" in shown and shown.count("Hub ") >= 2 and shown,
        timeout_s=30,
        what="two plain frames",
    )
    _save("plain-80x24", screen)
    assert re.search(r"\.\.\.smart_errors +412 +CRITICAL\b", screen), screen
    assert all(len(line) <= 80 for line in screen.splitlines())
    assert "\x1b" not in tmux.run("capture-pane", "-e", "-p", "-t", tmux.session)
    tmux.keys("C-c")
    status = wait_until(lambda: tmux.status_file.exists() and tmux.status_file.read_text().strip(), what="watch exit")
    assert status == "0"
