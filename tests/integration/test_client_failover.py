"""Clients of a hub pair (issue 17 §2, protocol 1.3 Hub pairs): two hubs (not linked to each other), one agent
publishing to both; SIGKILL the hub a client uses and it resumes within 5 s with a fresh snapshot from the other.

The hubs beat at 1 s (the default interval, so the measured time is what a station sees: about 3 missed
heartbeats, then the other hub's HELLO, subscription and snapshot).
"""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import Hub, Process, Processes, wait_until
from test_notify import notifier, start_sinks, titles, write_config

from gsmon.common.client import HubUnavailableError, Subscriber
from gsmon.common.ready import parse_ready_line

pytestmark = pytest.mark.integration

FAILOVER_BOUND_S = 5.0
HEARTBEAT_S = "1.0"


def start_pair(procs: Processes) -> tuple[Hub, Hub]:
    """Two independent hubs and one agent publishing to both (agent hub=[A, B])."""
    a = procs.hub("--heartbeat-s", HEARTBEAT_S, name="hub-a")
    b = procs.hub("--heartbeat-s", HEARTBEAT_S, name="hub-b")
    spec = {"points": [{"name": "fine", "value": 1, "alert": "GREEN", "dt": 0.2}]}
    procs.agent([a, b], "pairagent", spec, mount="Lab/P")
    return a, b


def test_the_subscriber_fails_over_to_the_other_hub_with_a_fresh_snapshot(procs: Processes) -> None:
    a, b = start_pair(procs)
    with Subscriber(f"{a.query},{b.query}", "Lab/", timeout_s=5.0) as sub:
        wait_until(lambda: sub.poll(0.05) is not None and "Lab/P/fine" in sub.tree, what="the point at hub A")
        assert sub.hub == a.query
        epoch_a, resyncs = sub.epoch, sub.resyncs
        a.process.kill()
        killed = time.monotonic()

        def resumed() -> bool:
            sub.poll(0.05)
            return sub.hub == b.query and not sub.hub_lost and "Lab/P/fine" in sub.tree

        wait_until(resumed, timeout_s=10, what="the subscriber on hub B")
        elapsed_s = time.monotonic() - killed
        assert elapsed_s <= FAILOVER_BOUND_S, f"failover took {elapsed_s:.2f} s"
        assert sub.epoch not in (None, epoch_a)  # B's own epoch: a snapshot of B, never A's seqs
        assert sub.resyncs > resyncs
        assert sub.choice.switches == 1
        # Updates keep flowing from B (its seqs now).
        before = sub.tree["Lab/P/fine"].seq
        wait_until(lambda: sub.poll(0.05) is not None and sub.tree["Lab/P/fine"].seq > before, what="B's updates")


def test_a_lean_subscriber_applies_updates_and_fails_over_with_a_fresh_snapshot(procs: Processes) -> None:
    """The recorder's read path (lean, poll_updates): NodeUpdates as the hub sends them, the same failover."""
    a, b = start_pair(procs)
    seen: list[int] = []

    def read(sub: Subscriber) -> bool:
        """Poll once (always true: for wait_until's conditions)."""
        updates, _changes = sub.poll_updates(0.05)
        seen.extend(update.seq for update in updates if update.path == "Lab/P/fine")
        return True

    with Subscriber(f"{a.query},{b.query}", "Lab/", timeout_s=5.0, lean=True) as sub:
        wait_until(lambda: read(sub) and len(seen) >= 3, what="updates of the point from hub A")
        assert seen == sorted(seen)  # each newer than the one held
        assert sub.updates["Lab/P/fine"].seq == seen[-1]
        assert sub.tree["Lab/P/fine"].seq == seen[-1]
        epoch_a, resyncs = sub.epoch, sub.resyncs
        a.process.kill()

        def resumed() -> bool:
            read(sub)
            return sub.hub == b.query and not sub.hub_lost and sub.resyncs > resyncs

        wait_until(resumed, timeout_s=10, what="the lean subscriber on hub B")
        assert sub.epoch not in (None, epoch_a)
        before = sub.updates["Lab/P/fine"].seq
        wait_until(lambda: read(sub) and sub.updates["Lab/P/fine"].seq > before, what="B's updates")


def test_get_takes_the_hub_of_the_pair_that_answers(procs: Processes, tmp_path: Path) -> None:
    a, b = start_pair(procs)
    wait_until(lambda: _get(f"{a.query},{b.query}").returncode == 0, timeout_s=15, what="the point at both hubs")
    a.process.kill()
    started = time.monotonic()
    result = _get(f"{a.query},{b.query}")
    elapsed_s = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Lab/P/fine" in json.loads(result.stdout)
    assert elapsed_s <= FAILOVER_BOUND_S, f"gsmon get took {elapsed_s:.2f} s with hub A dead"
    # A command (a viewer's "alarms", as ack and shelve go) reaches the hub that answers, too.
    started = time.monotonic()
    alarms = subprocess.run(
        [sys.executable, "-m", "gsmon.common.cli", "alarms", "Lab/", "--hub", f"{a.query},{b.query}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    elapsed_s = time.monotonic() - started
    assert alarms.returncode == 0, alarms.stderr
    assert elapsed_s <= FAILOVER_BOUND_S, f"gsmon alarms took {elapsed_s:.2f} s with hub A dead"
    both_dead = _get(f"{a.query},tcp://127.0.0.1:9")
    assert both_dead.returncode == 1
    assert "no hub of the pair answered" in both_dead.stderr


def _get(hubs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gsmon.common.cli", "get", "Lab/", "--json", "--hub", hubs],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _printed(process: Process, text: str) -> bool:
    """Whether a stdout line holding ``text`` arrived (consumed up to it: the next wait sees only later ones)."""
    while True:
        try:
            line = process.lines.get_nowait()
        except queue.Empty:
            return False
        if text in line:
            return True


def test_watch_plain_names_the_hub_used_and_fails_over(procs: Processes) -> None:
    a, b = start_pair(procs)
    watch = procs.gsmon("watch", "watch", "Lab/", "--plain", "--hub", f"{a.query},{b.query}", "--refresh-s", "0.1")
    wait_until(lambda: _printed(watch, f"Hub {a.query} 'Lab/'"), timeout_s=15, what="watch on hub A")
    a.process.kill()
    killed = time.monotonic()
    wait_until(lambda: _printed(watch, f"Hub {b.query} 'Lab/'"), timeout_s=10, what="watch on hub B")
    elapsed_s = time.monotonic() - killed
    assert elapsed_s <= FAILOVER_BOUND_S, f"watch took {elapsed_s:.2f} s"


def _json_get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a loopback URL the test made)
        return json.loads(response.read())


def test_the_web_bridge_status_names_the_hub_used_and_fails_over(procs: Processes) -> None:
    a, b = start_pair(procs)
    web = procs.gsmon("web", "web", "--hub", f"{a.query},{b.query}", "--listen", "127.0.0.1:0", "--timeout-s", "3")
    url = parse_ready_line(web.wait_for_line("READY "))["url"]

    def status() -> dict[str, Any]:
        body: dict[str, Any] = _json_get(url + "api/v1/status")
        return body

    wait_until(lambda: status().get("hub") == a.query and status().get("state") == "connected", what="web on A")
    a.process.kill()
    killed = time.monotonic()
    wait_until(
        lambda: status().get("hub") == b.query and status().get("state") == "connected",
        timeout_s=10,
        what="web on B",
    )
    elapsed_s = time.monotonic() - killed
    assert elapsed_s <= FAILOVER_BOUND_S, f"the bridge took {elapsed_s:.2f} s"
    tree = _json_get(url + "api/v1/tree?prefix=Lab/")
    assert any(node.get("path") == "Lab/P/fine" for node in tree["nodes"]), tree


def test_a_web_socket_client_sees_the_bridge_move_to_the_other_hub(procs: Processes) -> None:
    """The page's stream stays open across the failover: its status names hub B within 5 s of A's SIGKILL."""
    a, b = start_pair(procs)
    web = procs.gsmon("web", "web", "--hub", f"{a.query},{b.query}", "--listen", "127.0.0.1:0", "--timeout-s", "3")
    url = parse_ready_line(web.wait_for_line("READY "))["url"]
    wait_until(lambda: _json_get(url + "api/v1/status").get("hub") == a.query, what="web on A")

    async def scenario() -> float:
        async with aiohttp.ClientSession() as session, session.ws_connect(url + "api/v1/ws") as ws:
            await ws.send_json({"subscribe": "Lab/"})
            first = await ws.receive_json(timeout=10)
            assert first["type"] == "snapshot", first
            a.process.kill()
            killed = time.monotonic()
            while time.monotonic() - killed < 10:
                message = await ws.receive_json(timeout=10)
                status = message.get("status", {}) if message["type"] == "status" else {}
                if status.get("hub") == b.query and status.get("state") == "connected":
                    return time.monotonic() - killed
            raise AssertionError("no status naming hub B on the stream")

    elapsed_s = asyncio.run(scenario())
    assert elapsed_s <= FAILOVER_BOUND_S, f"the stream saw hub B after {elapsed_s:.2f} s"


def test_the_recorder_fails_over_and_its_history_service_follows(procs: Processes, tmp_path: Path) -> None:
    a = procs.hub("--heartbeat-s", HEARTBEAT_S, name="hub-a")
    b = procs.hub("--heartbeat-s", HEARTBEAT_S, name="hub-b")
    procs.agent([a, b], "ant1", RECORDER_SPEC, mount="GS1/Ant1")
    url = f"sqlite:///{tmp_path / 'history.db'}"
    rec = procs.gsmon(
        "recorder", "recorder", "--hub", f"{a.query},{b.query}", "--db", url, "--commit-interval-s", "0.1"
    )
    rec.wait_for_line("READY recorder", timeout_s=30)
    wait_until(lambda: _remote_ok(a.query), timeout_s=20, what="history through hub A")
    a.process.kill()
    killed_wall = time.time()
    # The history service re-registers at B: asked through B, the recorder answers.
    wait_until(lambda: _remote_ok(b.query), timeout_s=20, what="history through hub B")

    def resumed_at() -> float | None:
        samples = _samples(url)
        times = [datetime.fromisoformat(sample["t"]).timestamp() for sample in samples]  # ISO 8601 UTC
        later = [t for t in times if t > killed_wall]
        return min(later) if later else None

    first = wait_until(resumed_at, timeout_s=15, what="rows recorded from hub B")
    # Measured by the data: the first row after the SIGKILL (B's snapshot, then its updates).
    assert first - killed_wall <= FAILOVER_BOUND_S, f"the recorder resumed {first - killed_wall:.2f} s after"


RECORDER_SPEC = {
    "parents": {"Drive": None},
    "points": [{"name": "count", "parent": "Drive", "counter": True, "dt": 0.1}],
}
COUNT = "GS1/Ant1/Drive/count"


def _remote_ok(query: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "gsmon.common.cli", "history", COUNT, "--since", "10m", "--hub", query, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode == 0 and bool(json.loads(result.stdout)["samples"])


def _samples(url: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "gsmon.common.cli", "history", COUNT, "--since", "10m", "--db", url, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    samples: list[dict[str, Any]] = json.loads(result.stdout)["samples"]
    return samples


def test_the_notifier_reads_the_other_hubs_journal_and_repeats_nothing(procs: Processes, tmp_path: Path) -> None:
    _smtp, smtp_at, http, http_at = start_sinks(procs)
    config = write_config(tmp_path, smtp_at, http_at)
    a = procs.hub("--heartbeat-s", HEARTBEAT_S, name="hub-a")
    b = procs.hub("--heartbeat-s", HEARTBEAT_S, name="hub-b")
    power = tmp_path / "power.json"
    _set(power, 230.0, "GREEN")
    procs.agent([a, b], "ant1", {"points": [{"name": "Power", "file": str(power), "dt": 0.1}]}, mount="GS1/ups")
    notify = notifier(procs, f"{a.query},{b.query}", config, tmp_path / "notify-state")
    _set(power, 0.0, "RED")
    wait_until(lambda: titles(http), timeout_s=15, what="the raise, read from hub A")
    assert titles(http) == ["[gsmon] RAISED RED GS1/ups/Power"]
    wait_until(lambda: _health(notify).get("hub") == a.query, what="the notifier on A")
    a.process.kill()
    killed = time.monotonic()
    wait_until(
        lambda: _health(notify).get("hub") == b.query and _health(notify).get("hub_up") is True,
        timeout_s=10,
        what="the notifier reading hub B",
    )
    elapsed_s = time.monotonic() - killed
    assert elapsed_s <= FAILOVER_BOUND_S, f"the notifier took {elapsed_s:.2f} s"
    _set(power, 231.0, "GREEN")
    wait_until(lambda: len(titles(http)) >= 2, timeout_s=15, what="the resolution, read from hub B")
    assert titles(http) == ["[gsmon] RAISED RED GS1/ups/Power", "[gsmon] RESOLVED RED GS1/ups/Power"]


def _set(file: Path, value: Any, alert: str) -> None:
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps([value, alert]))
    tmp.replace(file)


def _health(process: Process) -> dict[str, Any]:
    line = process.latest("HEALTH ")
    return {} if line is None else dict(json.loads(line.split(" ", 1)[1]))


def test_no_flapping_and_hub_lost_only_when_both_are_gone(procs: Processes, tmp_path: Path) -> None:
    """ipc endpoints, so that hub A can come back at the same address: the subscriber stays on B (it moves only
    when the hub it uses is lost), says hub lost only with both gone, and goes back to A when B dies."""

    def hub_at(name: str, letter: str) -> Hub:
        return procs.hub(
            "--heartbeat-s",
            HEARTBEAT_S,
            name=name,
            agents=f"ipc://{tmp_path}/{letter}-agents.sock",
            subscribers=f"ipc://{tmp_path}/{letter}-subscribers.sock",
            query=f"ipc://{tmp_path}/{letter}-query.sock",
        )

    a, b = hub_at("hub-a", "a"), hub_at("hub-b", "b")
    spec = {"points": [{"name": "fine", "value": 1, "alert": "GREEN", "dt": 0.2}]}
    procs.agent([a, b], "pairagent", spec, mount="Lab/P")
    with Subscriber(f"{a.query},{b.query}", "Lab/", timeout_s=4.0) as sub:
        wait_until(lambda: sub.poll(0.05) is not None and "Lab/P/fine" in sub.tree, what="the point at A")
        a.process.kill()
        wait_until(lambda: sub.poll(0.05) is not None and sub.hub == b.query and not sub.hub_lost, what="on B")
        assert not sub.hub_lost  # one hub gone is not "hub lost"
        hub_at("hub-a2", "a")  # A again, same endpoints (a new epoch), the agent reconnects to it by itself
        wait_until(lambda: _answers(a.query), what="A answering again")
        stay_until = time.monotonic() + 4.0  # longer than the 3 s loss bound: a flap would show
        while time.monotonic() < stay_until:
            sub.poll(0.05)
            assert sub.hub == b.query, "moved back to A while B was alive"
        assert sub.choice.switches == 1
        b.process.kill()
        wait_until(lambda: sub.poll(0.05) is not None and sub.hub == a.query and not sub.hub_lost, what="back on A")
        assert "Lab/P/fine" in sub.tree
        assert sub.choice.switches == 2


def test_a_subscriber_with_both_hubs_gone_says_hub_lost(procs: Processes) -> None:
    a, b = start_pair(procs)
    with Subscriber(f"{a.query},{b.query}", "Lab/", timeout_s=2.0) as sub:
        wait_until(lambda: sub.poll(0.05) is not None and "Lab/P/fine" in sub.tree, what="the point at A")
        b.process.kill()
        a.process.kill()
        wait_until(lambda: sub.poll(0.05) is not None and sub.hub_lost, timeout_s=15, what="hub lost")
        assert sub.hub == a.query  # it keeps the sockets of the hub it used (ZeroMQ reconnects them)


def _answers(query: str) -> bool:
    try:
        with Subscriber(query, "Lab/", timeout_s=1.0):
            return True
    except HubUnavailableError:
        return False
