"""The tree never lies, a busy hub never stalls, mistakes get one clear line: real hub, agents and clients.

Issue 11 (2, 3, 10, 11, 12) and issue 10 (5, 6, 7, 8) against running processes: a frozen hub,
a flooding agent next to a dead one, a restarted agent with fewer points, two processes with one
name, a subscriber key that floods snapshot requests, an agent that relabels levels, the forget
command and the hub's logs. Hand-made agents are raw_agent_program.py (the agent protocol without
a Monitor); the rest are the real programs.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from harness import Hub, KeySet, Process, Processes, gsmon_cli, make_keys, polled, wait_until

from gsmon.common import protocol as proto
from gsmon.common.alerts import CriticalAlert, OrangeAlert, RedAlert
from gsmon.common.client import Change, NodeState, Subscriber
from gsmon.common.keys import ClientKeys

RAW_AGENT = Path(__file__).resolve().parent / "raw_agent_program.py"
COUNTER = {"points": [{"name": "Ticks", "counter": True, "dt": 0.05}]}


def raw_agent(procs: Processes, hub: Hub, name: str, mount: str, *extra: str) -> Process:
    """A hand-made agent process (raw_agent_program.py), returned once its STATE is sent."""
    argv = [sys.executable, str(RAW_AGENT), "--hub", hub.agents, "--name", name, "--mount", mount, *extra]
    process = procs.start(f"raw-{name}", argv)
    process.wait_for_line("READY")
    return process


def _replace_text(path: Path, text: str) -> None:
    """Write a file an agent polls all at once (it must never read half of it)."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


def node(sub: Subscriber, path: str) -> NodeState | None:
    return sub.tree.get(path)


def value(sub: Subscriber, path: str) -> Any:
    found = sub.tree.get(path)
    return None if found is None else found.value


def ticking(sub: Subscriber, path: str, timeout_s: float = 10.0) -> None:
    """Wait until the counter at ``path`` advances (its agent is publishing and the hub delivering)."""
    first = wait_until(lambda: polled(sub) and value(sub, path), timeout_s=timeout_s, what=f"{path} to appear")
    wait_until(lambda: polled(sub) and value(sub, path) != first, timeout_s=timeout_s, what=f"{path} to advance")


def watch(sub: Subscriber, seconds: float, until: Callable[[], bool] | None = None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until is not None and until()):
        sub.poll(0.05)


def recorded(sub: Subscriber) -> list[Change]:
    changes: list[Change] = []
    sub.add_callback(changes.append)
    return changes


def _snapshot_nodes(hub: Hub, prefix: str) -> dict[str, dict[str, Any]]:
    """A snapshot of ``prefix`` taken with a plain DEALER: {path: node payload}."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(hub.query)
        request = proto.SnapshotRequest(sender="t", epoch=0, seq=1, sent_ns=0, request_id=1, prefix=prefix)
        dealer.send(proto.encode(request))
        nodes: dict[str, dict[str, Any]] = {}
        while dealer.poll(10_000):
            reply = proto.decode(dealer.recv())
            if isinstance(reply, proto.SnapshotChunk):
                nodes.update(reply.nodes)
            elif isinstance(reply, proto.SnapshotEnd):
                assert reply.count == len(nodes)
                return nodes
        raise AssertionError(f"no snapshot of {prefix!r}")
    finally:
        context.destroy(linger=0)


def _snapshot(hub: Hub, prefix: str) -> set[str]:
    return set(_snapshot_nodes(hub, prefix))


# -- issue 11.10: a hub that was stopped does not judge the time it was stopped --------------------------


class RawWatcher:
    """Every NODE the hub publishes, read by a plain SUB socket without ZMTP heartbeats.

    The project's Subscriber heartbeats its connection and, the hub being stopped for longer
    than that timeout, reconnects: this one keeps its one connection through the pause, so it
    sees every update the hub sends before, during and after it."""

    def __init__(self, hub: Hub) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sock = self.context.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        with Subscriber(hub.query, "_hub/") as probe:  # the endpoint, as a client learns it
            endpoint = probe.endpoints["subscribers"]
        self.sock.connect(endpoint)
        self.updates: list[proto.NodeUpdate] = []
        self.beats = 0

    def read(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if not self.sock.poll(int(left * 1000) + 1):
                continue
            topic, payload = self.sock.recv_multipart()
            message = proto.decode_hub_message(topic, payload)
            if isinstance(message, proto.NodeUpdate):
                self.updates.append(message)
            else:
                self.beats += 1

    def latest(self) -> dict[str, proto.NodeUpdate]:
        return {update.path: update for update in self.updates}

    def close(self) -> None:
        self.context.destroy(linger=0)


def test_a_hub_stopped_for_10_s_turns_none_of_its_live_agents_stale(procs: Processes) -> None:
    """SIGSTOP the hub 10 s while 3 agents publish, then SIGCONT: watching everything it publishes over
    the whole test, no point turns STALE and no _hub/agents/* reads silent (the hub's own alert log
    agrees); right after the pause the agents' points say liveness_unknown, and that clears."""
    hub = procs.hub()
    names = ("ant1", "ant2", "ant3")
    for name in names:
        procs.agent(hub, name, COUNTER, mount=f"GS1/{name}")
    watcher = RawWatcher(hub)
    try:
        watcher.read(0.5)
        wait_until(
            lambda: watcher.read(0.1) or {f"GS1/{n}/Ticks" for n in names} <= set(watcher.latest()),
            what="all three agents publishing",
        )
        hub.process.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            # What the hub published just before the stop may still be on its way (a loaded machine): the
            # count is taken after a quiet second, and nothing may come after it.
            before_pause = len(watcher.updates)
            while True:
                watcher.read(1.0)
                if len(watcher.updates) == before_pause:
                    break
                before_pause = len(watcher.updates)
                assert time.monotonic() - stopped_at < 5.0, "updates kept coming for 5 s after the SIGSTOP"
            watcher.read(max(0.0, 10.0 - (time.monotonic() - stopped_at)))
        finally:
            hub.process.signal(signal.SIGCONT)
        assert len(watcher.updates) == before_pause  # it really was stopped
        watcher.read(4.0)
        after = watcher.updates[before_pause:]
        stale = [u for u in after if u.path.startswith("GS1/") and u.stale]
        silent = [u for u in after if u.path.startswith("_hub/agents/") and u.value != "live"]
        unknown = [u for u in after if u.path.startswith("GS1/") and u.liveness_unknown]
        print(
            f"after the pause: {len(after)} updates, {len(stale)} STALE, {len(silent)} silent, {len(unknown)} unknown"
        )
        assert not stale, stale[:5]
        assert not silent, silent[:5]
        assert unknown, "the points did not say that the hub could not vouch for them after the pause"
        latest = watcher.latest()
        for name in names:
            assert not latest[f"GS1/{name}/Ticks"].liveness_unknown
            assert not latest[f"GS1/{name}"].liveness_unknown
        assert len({u.value for u in after if u.path == "GS1/ant1/Ticks"}) > 10  # and it kept publishing
    finally:
        watcher.close()
    log = hub.process.stderr()
    assert "did not run for" in log
    assert "--> STALE" not in log, log  # the hub's own record of every transition
    assert "is silent" not in log


# -- issue 11.11: one agent's flood does not blind the hub ------------------------------------------------


def test_a_flooding_agent_does_not_hide_a_dead_one_and_says_its_own_points_are_unknown(
    procs: Processes, tmp_path: Path
) -> None:
    """An agent floods faster than the hub applies; another is SIGKILLed meanwhile: it turns STALE within
    its liveness time while the flood goes on, and the flooder's points carry liveness_unknown while the
    hub is behind (cleared once it has caught up)."""
    config = tmp_path / "hub.toml"
    config.write_text("[limits]\nagents_rcvhwm = 2000\n")  # a backlog of seconds, not minutes
    hub = procs.hub("--config", str(config))
    victim = procs.agent(hub, "victim", COUNTER, mount="GS1/Victim")
    # The flood's own updates are not followed (they would only delay this test's reading): its
    # points are looked at in snapshots.
    with Subscriber(hub.query, "GS1/Victim/", timeout_s=5.0) as sub, Subscriber(hub.query, "_hub/") as health:
        ticking(sub, "GS1/Victim/Ticks")
        flood = raw_agent(procs, hub, "flood", "GS1/Flood", "--points", "200", "--flood", "--batch", "100")
        wait_until(
            lambda: polled(health) and (value(health, "_hub/agents_backlog_s") or 0) > 1.0,
            timeout_s=30.0,
            what="the hub to fall behind the flood",
        )
        wait_until(
            lambda: _snapshot_nodes(hub, "GS1/Flood/p0").get("GS1/Flood/p0", {}).get("liveness_unknown"),
            what="the flooder's points to say liveness_unknown",
        )
        assert _snapshot_nodes(hub, "GS1/Flood")["GS1/Flood"].get("liveness_unknown")  # and its parent
        watch(sub, 0.2)
        assert not node(sub, "GS1/Victim/Ticks").stale  # type: ignore[union-attr]
        assert not node(sub, "GS1/Victim/Ticks").liveness_unknown  # type: ignore[union-attr]
        killed = time.monotonic()
        victim.kill()
        wait_until(
            lambda: polled(sub) and node(sub, "GS1/Victim/Ticks").stale,  # type: ignore[union-attr]
            timeout_s=15.0,
            what="the killed agent to turn STALE",
        )
        took = time.monotonic() - killed
        watch(health, 0.3)
        backlog = value(health, "_hub/agents_backlog_s")
        print(f"killed agent STALE after {took:.2f} s, with the hub {backlog} s behind the flood")
        assert flood.popen.poll() is None
        assert backlog > 1.0, "the hub caught up before the dead agent was judged: not judged during the flood"
        assert took < 2.5  # its liveness (3 x 0.2 s) + ticks + delivery; before the fix: only after the flood
        snapshot = _snapshot_nodes(hub, "GS1/Flood/")
        assert snapshot["GS1/Flood/p0"].get("liveness_unknown")
        assert not snapshot["GS1/Flood/p0"]["stale"]  # not judged while its messages wait in the queue
        flood.stop()
        wait_until(
            lambda: "liveness_unknown" not in _snapshot_nodes(hub, "GS1/Flood/p0")["GS1/Flood/p0"],  # absent: false
            timeout_s=30.0,
            what="the flooder's points to be vouched for again once the hub caught up",
        )


# -- issue 11.12: a point the new incarnation does not have never reads live again --------------------------


def test_a_restarted_agents_dropped_one_shot_point_never_reads_live_again(procs: Processes) -> None:
    """The agent dies (its points STALE) and restarts without its one-shot point: that point stays
    STALE until it is removed, and never reads live with its old value in between."""
    old = {
        "points": [
            {"name": "Keep", "counter": True, "dt": 0.1},
            {"name": "Once", "value": "old", "alert": "RED", "dt": None},
        ]
    }
    new = {"points": [{"name": "Keep", "counter": True, "dt": 0.1}, {"name": "Fresh", "value": 1, "dt": None}]}
    hub = procs.hub()
    first = procs.agent(hub, "ant", old, mount="GS1/Ant")
    with Subscriber(hub.query, "GS1/", timeout_s=5.0) as sub:
        ticking(sub, "GS1/Ant/Keep")
        assert not node(sub, "GS1/Ant/Once").stale  # type: ignore[union-attr]
        first.kill()
        wait_until(lambda: polled(sub) and node(sub, "GS1/Ant/Once").stale, what="the dead agent's point STALE")  # type: ignore[union-attr]
        changes = recorded(sub)
        procs.agent(hub, "ant", new, mount="GS1/Ant")
        wait_until(lambda: polled(sub) and "GS1/Ant/Fresh" in sub.tree, what="the new incarnation's point")
        wait_until(lambda: polled(sub) and "GS1/Ant/Once" not in sub.tree, what="the dropped point removed")
        revived = [c.new for c in changes if c.path == "GS1/Ant/Once" and c.new is not None and not c.new.stale]
        assert not revived, revived
        assert any(c.path == "GS1/Ant/Once" and c.new is None for c in changes)
        assert not node(sub, "GS1/Ant/Keep").stale  # type: ignore[union-attr]


# -- issue 10.7: two processes with one agent name ---------------------------------------------------------


def test_two_processes_with_one_agent_name_are_one_conflict_one_warning_and_orange(procs: Processes) -> None:
    """A second process claims a running agent's name: one WARNING naming both peers, counted once in
    _hub/conflicts, _hub/agents/<name> ORANGE -- instead of a "restarted" line per alternation; when
    one of them stops, the agent is plain live again."""
    hub = procs.hub()
    procs.agent(hub, "rack", COUNTER, mount="GS1/Rack")
    with Subscriber(hub.query, "", timeout_s=5.0) as sub:
        ticking(sub, "GS1/Rack/Ticks")
        second = procs.agent(hub, "rack", COUNTER, mount="GS1/Rack")
        wait_until(
            lambda: polled(sub) and value(sub, "_hub/agents/rack") == "conflict: two processes",
            what="the conflict on _hub/agents/rack",
        )
        assert node(sub, "_hub/agents/rack").alertcode >= OrangeAlert.alertcode  # type: ignore[union-attr]
        watch(sub, 3.0)  # both keep publishing
        assert value(sub, "_hub/conflicts") == 1
        assert value(sub, "_hub/agents/rack") == "conflict: two processes"
        log = hub.process.stderr()
        warnings = [line for line in log.splitlines() if "two processes claim this name" in line]
        assert len(warnings) == 1, warnings
        assert "WARNING" in warnings[0]
        peers = re.findall(r"from (\S+:\d+)", warnings[0])
        assert len(set(peers)) == 2, warnings[0]  # two connections, told apart by their ports
        assert log.count("restarted") <= 1, log
        second.stop()
        wait_until(lambda: polled(sub) and value(sub, "_hub/agents/rack") == "live", what="one process again")
        ticking(sub, "GS1/Rack/Ticks")


def test_a_real_restart_is_one_info_line_and_no_conflict(procs: Processes) -> None:
    hub = procs.hub()
    first = procs.agent(hub, "rack", COUNTER, mount="GS1/Rack")
    with Subscriber(hub.query, "", timeout_s=5.0) as sub:
        ticking(sub, "GS1/Rack/Ticks")
        first.stop()
        procs.agent(hub, "rack", COUNTER, mount="GS1/Rack")
        ticking(sub, "GS1/Rack/Ticks")
        watch(sub, 1.0)
        assert value(sub, "_hub/agents/rack") == "live"
        assert value(sub, "_hub/conflicts") == 0
    log = hub.process.stderr()
    assert len(re.findall(r"INFO gsmon.hub.state: agent rack restarted", log)) == 1, log
    assert "two processes" not in log


# -- issue 11.3: a subscriber key's snapshot flood does not stall the agents --------------------------------


def _max_gap(sub: Subscriber, path: str, seconds: float) -> float:
    """The longest time between two changes of ``path`` seen by ``sub`` over ``seconds``."""
    last, gap = time.monotonic(), 0.0
    end = last + seconds
    while time.monotonic() < end:
        for change in sub.poll(0.01):
            if change.path == path:
                now = time.monotonic()
                gap, last = max(gap, now - last), now
    return max(gap, time.monotonic() - last)


def test_a_snapshot_request_flood_from_a_limited_key_does_not_stall_a_good_agent(
    procs: Processes, tmp_path: Path
) -> None:
    """At ~35,000 nodes, one prefix-limited key sends 2,000 SNAPSHOT_REQUESTs in a burst: the good agent's
    updates keep flowing -- the longest pause in them grows by at most a few hundred ms over the longest
    pause without the flood (it was 3.5 s); the flooder's surplus is answered "busy, retry"."""
    keys = make_keys(
        tmp_path / "keys",
        agents={"good": ["GS1/Good"], "bulk": ["GS1/Bulk"]},
        subscribers={"ops": None, "limited": ["GS1/A"]},
    )
    hub = procs.hub("--keys", str(keys.hub_dir))
    bulk = [
        "--points",
        "35000",
        "--heartbeat-s",
        "0.2",
        "--key",
        str(keys.secret("bulk")),
        "--hub-key",
        str(keys.hub_public),
    ]
    raw_agent(procs, hub, "bulk", "GS1/Bulk", *bulk)
    clock = {"points": [{"name": "Clock", "clock": True, "dt": 0.02}]}
    procs.agent(hub, "good", clock, mount="GS1/Good", key=keys.secret("good"), hub_key=keys.hub_public)
    ops = ClientKeys.load(keys.secret("ops"), keys.hub_public)
    with Subscriber(hub.query, "_hub/", curve=ops) as health:
        wait_until(lambda: polled(health) and (value(health, "_hub/nodes") or 0) > 35_000, what="35,000 nodes")
    with Subscriber(hub.query, "GS1/Good/", curve=ops) as sub:
        ticking(sub, "GS1/Good/Clock")
        quiet_gap = _max_gap(sub, "GS1/Good/Clock", 3.0)
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            dealer = context.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.setsockopt(zmq.SNDHWM, 0)
            dealer.setsockopt(zmq.RCVHWM, 0)
            ClientKeys.load(keys.secret("limited"), keys.hub_public).apply(dealer)
            dealer.connect(hub.query)
            requests = [
                proto.encode(
                    proto.SnapshotRequest(sender="limited", epoch=0, seq=i, sent_ns=0, request_id=i, prefix="GS1/A/")
                )
                for i in range(1, 2001)
            ]
            for request in requests:  # a burst: a few milliseconds
                dealer.send(request)
            flood_gap = _max_gap(sub, "GS1/Good/Clock", 3.0)
            replies: list[proto.Message] = []
            while dealer.poll(2000):
                replies.append(proto.decode(dealer.recv()))
                if (
                    len(
                        {getattr(r, "request_id", 0) for r in replies if isinstance(r, proto.SnapshotEnd | proto.Error)}
                    )
                    == 2000
                ):
                    break
        finally:
            context.destroy(linger=0)
    ends = sum(isinstance(r, proto.SnapshotEnd) for r in replies)
    busy = sum(isinstance(r, proto.Error) and r.message == "busy, retry" for r in replies)
    print(
        f"longest pause of the good agent: {quiet_gap * 1000:.0f} ms quiet, {flood_gap * 1000:.0f} ms under the flood; "
        f"{ends} snapshots served, {busy} busy"
    )
    assert ends + busy == 2000  # every request answered
    assert busy > 0
    assert flood_gap - quiet_gap < 0.3


# -- issue 11.2: an agent cannot relabel other agents' nodes --------------------------------------------------


def test_an_agent_cannot_relabel_levels_outside_its_own_points(procs: Processes) -> None:
    """Agent A sends code 100 labelled "GREEN"; B's CRITICAL parent and the root still read CRITICAL."""
    hub = procs.hub()
    raw_agent(procs, hub, "a", "GS1/A", "--points", "1", "--code", str(CriticalAlert.alertcode), "--label", "GREEN")
    procs.agent(hub, "b", {"points": [{"name": "x", "value": 1, "alert": "CRITICAL", "dt": 0.1}]}, mount="GS1/B")
    with Subscriber(hub.query, "GS1", timeout_s=5.0) as sub:
        wait_until(lambda: polled(sub) and {"GS1/A/p0", "GS1/B/x"} <= set(sub.tree), what="both agents' points")
        labels = {path: (n.alertcode, n.alertstr) for path, n in sub.tree.items()}
    assert labels["GS1/B/x"] == labels["GS1/B"] == labels["GS1"] == (100, "CRITICAL")
    assert labels["GS1/A/p0"] == labels["GS1/A"] == (100, "CRITICAL")


# -- issue 10.5: snapshots take whole segments ---------------------------------------------------------------


def test_a_snapshot_prefix_names_whole_segments(procs: Processes) -> None:
    """GS1/Antenna1 is that node and its subtree, never GS1/Antenna10; _hub/agents never _hub/agents_live."""
    hub = procs.hub()
    procs.agent(hub, "a1", COUNTER, mount="GS1/Antenna1")
    procs.agent(hub, "a10", COUNTER, mount="GS1/Antenna10")
    wait_until(lambda: "GS1/Antenna10/Ticks" in _snapshot(hub, "GS1/"), what="both agents in the tree")
    assert _snapshot(hub, "GS1/Antenna1") == {"GS1/Antenna1", "GS1/Antenna1/Ticks"}
    assert _snapshot(hub, "GS1/Antenna1/") == {"GS1/Antenna1/Ticks"}
    wait_until(
        lambda: {"_hub/agents_live", "_hub/agents/a10"} <= _snapshot(hub, "_hub/"), what="the hub's health points"
    )
    agents = _snapshot(hub, "_hub/agents")
    assert agents == {"_hub/agents", "_hub/agents/a1", "_hub/agents/a10"}
    assert _snapshot(hub, "GS1/Ant") == set()


# -- issue 10.6: forget ---------------------------------------------------------------------------------------------


def test_forget_needs_an_administrator_refuses_a_live_agent_and_removes_a_silent_one(
    procs: Processes, tmp_path: Path
) -> None:
    """`gsmon forget` with a plain subscriber key is refused (exit 1, nothing removed); a live agent is
    refused with the reason; with an admin key a silent agent and its points go at once;
    `gsmon keys revoke NAME --forget` revokes a running agent and removes it from the hub too."""
    keys = make_keys(tmp_path / "keys", agents={"dead": ["GS1/Dead"], "live": ["GS1/Live"]}, subscribers={"ops": None})
    made = gsmon_cli(
        "keys", "subscriber", "root", "--admin", "--hub-dir", str(keys.hub_dir), "--out", str(keys.root / "root")
    )
    assert made.returncode == 0, made.stderr
    listing = gsmon_cli("keys", "list", "--hub-dir", str(keys.hub_dir))
    assert "administrator" in listing.stdout
    hub = procs.hub("--keys", str(keys.hub_dir))
    dead = procs.agent(hub, "dead", COUNTER, mount="GS1/Dead", key=keys.secret("dead"), hub_key=keys.hub_public)
    procs.agent(hub, "live", COUNTER, mount="GS1/Live", key=keys.secret("live"), hub_key=keys.hub_public)

    def forget(name: str, who: str) -> Any:
        return gsmon_cli(
            "forget", name, "--hub", hub.query, "--key", str(keys.secret(who)), "--hub-key", str(keys.hub_public)
        )

    with Subscriber(hub.query, "", curve=ClientKeys.load(keys.secret("ops"), keys.hub_public)) as sub:
        ticking(sub, "GS1/Dead/Ticks")
        ticking(sub, "GS1/Live/Ticks")
        dead.kill()
        wait_until(lambda: polled(sub) and value(sub, "_hub/agents/dead") == "silent", what="the dead agent silent")
        plain = forget("dead", "ops")
        assert plain.returncode == 1
        assert "administrator" in plain.stderr
        assert plain.stderr.count("\n") == 1
        live = forget("live", "root")
        assert live.returncode == 1
        assert "is live" in live.stderr
        watch(sub, 0.5)
        assert "GS1/Dead/Ticks" in sub.tree
        assert "GS1/Live/Ticks" in sub.tree
        done = forget("dead", "root")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "forgot agent 'dead' and its 1 point(s)"
        wait_until(
            lambda: polled(sub) and not {"GS1/Dead", "GS1/Dead/Ticks", "_hub/agents/dead"} & set(sub.tree),
            what="the forgotten agent's points removed",
        )
        revoked = gsmon_cli("keys", "revoke", "live", "--hub-dir", str(keys.hub_dir), "--forget", "--hub", hub.query)
        assert revoked.returncode == 0, revoked.stderr
        assert "forgot agent 'live'" in revoked.stdout
        wait_until(lambda: polled(sub) and "GS1/Live/Ticks" not in sub.tree, what="the revoked agent forgotten")
        watch(sub, 1.0)
        assert "GS1/Live/Ticks" not in sub.tree  # its process still runs, but the hub refuses it
    log = hub.process.stderr()
    assert "command forget" in log


def test_forget_says_what_it_needs_when_the_hub_is_not_there(procs: Processes) -> None:
    result = gsmon_cli("forget", "x", "--hub", "tcp://127.0.0.1:9", "--timeout-s", "0.5")
    assert result.returncode == 1
    assert result.stderr.strip() == "gsmon forget: no answer from the hub at tcp://127.0.0.1:9 within 0.5 s"
    assert gsmon_cli("forget", "x", "--key", "k").returncode == 2


# -- issue 10.7 and 10.8: the hub's log ---------------------------------------------------------------------------


def test_the_hub_logs_what_an_operator_needs_and_no_line_per_get(procs: Processes, tmp_path: Path) -> None:
    """Silent at WARNING and back at INFO; gsmon get leaves no INFO line; every alert transition of the
    merged tree above the threshold, as JSON lines with the path, levels, value and agent."""
    config = tmp_path / "hub.toml"
    config.write_text('[logging]\nformat = "json"\nalerts = "INFO"\nalert_threshold = "ORANGE"\n')
    control = tmp_path / "level.json"
    _replace_text(control, json.dumps([1, "GREEN"]))
    hub = procs.hub("--config", str(config))
    spec = {
        "points": [{"name": "Level", "file": str(control), "dt": 0.05}, {"name": "Ticks", "counter": True, "dt": 0.05}]
    }
    agent = procs.agent(hub, "ctl", spec, mount="GS1/Ctl")
    with Subscriber(hub.query, "GS1/", timeout_s=5.0) as sub:
        ticking(sub, "GS1/Ctl/Ticks")
        before = len(hub.process.stderr().splitlines())
        for _ in range(2):
            got = gsmon_cli("get", "GS1/", "--hub", hub.query, "--json")
            assert got.returncode == 0, got.stderr
        watch(sub, 0.3)
        during_gets = [json.loads(line) for line in hub.process.stderr().splitlines()[before:] if line.startswith("{")]
        assert not [e for e in during_gets if e["level"] == "INFO"], during_gets  # HELLO, SNAPSHOT: DEBUG
        assert json.loads(got.stdout)["GS1/Ctl/Level"]["reported_alert"] == 10
        assert "liveness_unknown" in json.loads(got.stdout)["GS1/Ctl/Level"]
        _replace_text(control, json.dumps([7, "ORANGE"]))
        wait_until(lambda: polled(sub) and value(sub, "GS1/Ctl/Level") == 7, what="the point ORANGE")
        _replace_text(control, json.dumps([8, "RED"]))
        wait_until(lambda: polled(sub) and value(sub, "GS1/Ctl/Level") == 8, what="the point RED")
        agent.signal(signal.SIGSTOP)
        try:
            wait_until(lambda: polled(sub) and node(sub, "GS1/Ctl/Ticks").stale, what="the stopped agent silent")  # type: ignore[union-attr]
            stale = json.loads(gsmon_cli("get", "GS1/Ctl/", "--hub", hub.query, "--json").stdout)["GS1/Ctl/Level"]
            assert (stale["alert"], stale["stale"], stale["reported_alert"]) == (50, True, RedAlert.alertcode)
        finally:
            agent.signal(signal.SIGCONT)
        wait_until(lambda: polled(sub) and not node(sub, "GS1/Ctl/Ticks").stale, what="the agent back")  # type: ignore[union-attr]
        watch(sub, 0.5)
    lines = [json.loads(line) for line in hub.process.stderr().splitlines() if line.startswith("{")]
    mine = [entry for entry in lines if entry.get("logger") in ("gsmon.hub.state", "gsmon.hub.alerts")]
    silent = [e for e in mine if e["message"].startswith("agent ctl is silent")]
    back = [e for e in mine if e["message"].startswith("agent ctl is back")]
    assert [e["level"] for e in silent] == ["WARNING"]
    assert [e["level"] for e in back] == ["INFO"]
    alerts = [e for e in mine if e["logger"] == "gsmon.hub.alerts"]
    transitions = [(e["point"], e["old_alertstr"], e["new_alertstr"], e["value"], e["agent"]) for e in alerts]
    assert ("GS1/Ctl/Level", "GREEN", "ORANGE", 7, "ctl") in transitions
    assert ("GS1/Ctl/Level", "ORANGE", "RED", 8, "ctl") in transitions
    assert ("GS1/Ctl/Level", "RED", "STALE", 8, "ctl") in transitions
    assert all(e["level"] == "INFO" for e in alerts)
    assert ("GS1/Ctl/Level", "unset", "GREEN", 1, "ctl") not in transitions  # below the threshold
    assert RedAlert.alertcode in {e["new_alert"] for e in alerts}


def test_nested_mounts_are_warned_about_at_start_up_and_at_first_sight(procs: Processes, tmp_path: Path) -> None:
    """Grants GS1 and GS1/Antenna1 to two agents: one WARNING when the hub starts. Without keys, two
    agents whose mounts nest: one WARNING when the second is first seen. Equal mounts: none."""
    keys: KeySet = make_keys(
        tmp_path / "keys", agents={"site": ["GS1"], "ant1": ["GS1/Antenna1"], "ant1b": ["GS1/Antenna1"]}, subscribers={}
    )
    keyed = procs.hub("--keys", str(keys.hub_dir), name="keyed-hub")
    wait_until(lambda: "nested mounts" in keyed.process.stderr(), what="the start-up warning")
    nested = [line for line in keyed.process.stderr().splitlines() if "nested mounts" in line]
    assert len(nested) == 2  # site/ant1 and site/ant1b; ant1 and ant1b share a mount: fine
    assert all("WARNING" in line and "agent site may publish at GS1" in line for line in nested)
    plain = procs.hub(name="plain-hub")
    procs.agent(plain, "ctl", COUNTER, mount="GS1/Antenna2")
    procs.agent(plain, "rack", COUNTER, mount="GS1/Antenna2")
    procs.agent(plain, "site", COUNTER, mount="GS1")
    wait_until(lambda: "nested mounts" in plain.process.stderr(), what="the first-sight warning")
    with Subscriber(plain.query, "GS1/", timeout_s=5.0) as sub:
        ticking(sub, "GS1/Ticks")  # many more messages of all three since: no second warning for a pair
    lines = [line for line in plain.process.stderr().splitlines() if "nested mounts" in line]
    assert len(lines) == 2, lines
    assert all("agents site (mount GS1)" in line for line in lines)
