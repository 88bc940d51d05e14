"""The hub's operator layer end to end (issue 13): real hub, agent and client processes on loopback.

Alarms are driven by ``file`` points (the agent reads ``[value, "ALERT"]`` at every poll); commands go
over the real query socket (:func:`gsmon.common.commands.send_command`).
"""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq
from harness import Hub, KeySet, Processes, gsmon_cli, polled, wait_until, wait_until_gone

from gsmon.common import protocol as proto
from gsmon.common.client import Subscriber
from gsmon.common.commands import send_command
from gsmon.common.keys import ClientKeys

MOUNT = "GS1/Ant1"


def _set(file: Path, value: Any, alert: str) -> None:
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps([value, alert]))
    tmp.replace(file)


def _spec(*files: tuple[str, Path]) -> dict[str, Any]:
    return {"points": [{"name": name, "file": str(path), "dt": 0.1} for name, path in files]}


def _cmd(hub: Hub, command: str, curve: ClientKeys | None = None, **args: Any) -> proto.CommandResult:
    return send_command(hub.query, command, args, curve=curve, user="tester", timeout_s=10.0)


def _alarm(hub: Hub, path: str, curve: ClientKeys | None = None) -> dict[str, Any] | None:
    reply = _cmd(hub, "alarms", curve, prefix=path)
    assert reply.ok, reply.message
    return next((alarm for alarm in reply.result["alarms"] if alarm["path"] == path), None)


def _wait_state(hub: Hub, path: str, state: str, curve: ClientKeys | None = None) -> dict[str, Any]:
    return wait_until(
        lambda: (alarm := _alarm(hub, path, curve)) is not None and alarm["state"] == state and alarm,
        timeout_s=15,
        what=f"alarm on {path} to be {state}",
    )


def _journal(hub: Hub, after_id: int = 0, prefix: str = "") -> dict[str, Any]:
    reply = _cmd(hub, "journal", after_id=after_id, prefix=prefix, limit=10_000)
    assert reply.ok, reply.message
    return reply.result


def test_raise_ack_return_to_normal_clears_and_the_journal_has_every_step(procs: Processes, tmp_path: Path) -> None:
    power = tmp_path / "power.json"
    _set(power, 1, "RED")
    hub = procs.hub()
    procs.agent(hub, "ant1", _spec(("Power", power)), mount=MOUNT)
    path = f"{MOUNT}/Power"
    alarm = _wait_state(hub, path, "active_unacked")
    assert (alarm["level"], alarm["latch"], alarm["reason"]) == (30, True, "level")

    # The NODEs carry attention and the alarm summary (views never poll for them): read raw.
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = context.socket(zmq.SUB)
    try:
        sub.connect(hub.subscribers)
        sub.setsockopt(zmq.SUBSCRIBE, b"GS1")
        wait_until(lambda: _cmd(hub, "whoami").ok, what="the hub to answer")  # the subscription travels
        reply = _cmd(hub, "ack", ids=[alarm["id"]], comment="on it", via="cli")
        assert reply.ok, reply.message
        assert reply.result == {"acked": [alarm["id"]], "skipped": []}
        payloads: dict[str, dict[str, Any]] = {}

        def _node_after_ack() -> bool:
            while sub.poll(50):
                topic, payload = sub.recv_multipart()
                payloads[topic.decode()] = msgpack.unpackb(payload)
            point = payloads.get(path, {})
            return (point.get("alarm") or {}).get("state") == "active_acked"

        wait_until(_node_after_ack, timeout_s=15, what="the point's NODE to say the alarm is acknowledged")
        point = payloads[path]
        assert point["alarm"]["id"] == alarm["id"]
        assert point["alarm"]["ack_comment"] == "on it"
        assert "attention" not in point  # acknowledged: nothing needs attention (0 is left out)
        assert isinstance(point["since"], float)
    finally:
        sub.close(linger=0)
        context.term()
    _set(power, 2, "GREEN")
    cleared = wait_until(
        lambda: _cmd(hub, "alarms", prefix=path, states=["cleared"]).result["alarms"],
        timeout_s=15,
        what="the acked alarm to clear at return to normal",
    )
    assert cleared[0]["id"] == alarm["id"]
    kinds = [entry["kind"] for entry in _journal(hub, prefix=path)["entries"]]
    for kind in ("alarm_raised", "ack", "level", "alarm_rtn", "alarm_cleared"):
        assert kind in kinds, (kind, kinds)
    assert kinds.index("alarm_raised") < kinds.index("ack") < kinds.index("alarm_cleared")


def test_alarm_ack_shelf_journal_and_ids_survive_a_hub_sigkill(procs: Processes, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    power, fan = tmp_path / "power.json", tmp_path / "fan.json"
    _set(power, 1, "RED")
    _set(fan, 0, "GREEN")
    hub = procs.hub("--state-dir", str(state_dir))
    agent = procs.agent(hub, "ant1", _spec(("Power", power), ("Fan", fan)), mount=MOUNT)
    path = f"{MOUNT}/Power"
    alarm = _wait_state(hub, path, "active_unacked")
    assert _cmd(hub, "ack", ids=[alarm["id"]], comment="seen").ok
    shelf = _cmd(hub, "shelve", prefix=f"{MOUNT}/Fan", mode="timed", duration_s=3600, comment="maintenance")
    assert shelf.ok, shelf.message
    before = _journal(hub)
    assert before["entries"]

    hub.process.kill()
    agent.stop()
    hub2 = procs.hub("--state-dir", str(state_dir), name="hub2")
    procs.agent(hub2, "ant1", _spec(("Power", power), ("Fan", fan)), mount=MOUNT)
    again = _alarm(hub2, path)
    assert again is not None
    assert (again["id"], again["state"], again["ack_comment"]) == (alarm["id"], "active_acked", "seen")
    shelves = _cmd(hub2, "shelves").result["shelves"]
    assert [(s["id"], s["prefix"], s["comment"]) for s in shelves] == [
        (shelf.result["shelf"]["id"], f"{MOUNT}/Fan", "maintenance")
    ]
    # The point comes back RED: the same alarm, not a new one.
    wait_until(
        lambda: (
            any(e["kind"] == "agent_back" or e["kind"] == "level" for e in _journal(hub2, before["last_id"])["entries"])
            or _alarm(hub2, path) is not None
        ),
        what="the agent to report again",
    )
    assert [a["id"] for a in _cmd(hub2, "alarms", prefix=path).result["alarms"]] == [alarm["id"]]
    # The journal continues: nothing before the cursor comes again, and its ids keep growing.
    after = _journal(hub2, before["last_id"])
    assert all(entry["id"] > before["last_id"] for entry in after["entries"])
    assert _journal(hub2)["entries"][: len(before["entries"])] == before["entries"]
    # Ids are never reused: a new shelf gets an id above every earlier one.
    new = _cmd(hub2, "shelve", prefix=f"{MOUNT}/Fan", mode="timed", duration_s=60, comment="again")
    assert new.ok
    assert new.result["shelf"]["id"] > max(alarm["id"], shelf.result["shelf"]["id"])


def test_a_shelf_that_ends_with_the_alarm_still_active_announces_it_again(procs: Processes, tmp_path: Path) -> None:
    power = tmp_path / "power.json"
    _set(power, 1, "RED")
    hub = procs.hub()
    procs.agent(hub, "ant1", _spec(("Power", power)), mount=MOUNT)
    path = f"{MOUNT}/Power"
    alarm = _wait_state(hub, path, "active_unacked")
    assert _cmd(hub, "ack", ids=[alarm["id"]]).ok
    shelved = _cmd(hub, "shelve", prefix=MOUNT, mode="timed", duration_s=1.0, comment="short works")
    assert shelved.ok, shelved.message
    assert _alarm(hub, path)["shelf_id"] == shelved.result["shelf"]["id"]
    entries = wait_until(
        lambda: [e for e in _journal(hub, prefix=MOUNT)["entries"] if e["kind"] == "shelf_ended_still_active"],
        timeout_s=15,
        what="the shelf to end with the alarm still active",
    )
    assert entries[0]["alarm_id"] == alarm["id"]
    back = _wait_state(hub, path, "active_unacked")
    assert back["shelf_id"] is None


def test_journal_cursor_returns_each_entry_once_across_a_restart(procs: Processes, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    power = tmp_path / "power.json"
    _set(power, 1, "RED")
    hub = procs.hub("--state-dir", str(state_dir))
    agent = procs.agent(hub, "ant1", _spec(("Power", power)), mount=MOUNT)
    _wait_state(hub, f"{MOUNT}/Power", "active_unacked")
    seen: list[int] = []
    cursor = 0
    first = _journal(hub, cursor)
    seen += [e["id"] for e in first["entries"]]
    cursor = first["last_id"]
    hub.process.stop()
    agent.stop()
    hub2 = procs.hub("--state-dir", str(state_dir), name="hub2")
    procs.agent(hub2, "ant1", _spec(("Power", power)), mount=MOUNT)
    _set(power, 2, "ORANGE")
    wait_until(
        lambda: any(e["kind"] == "level" for e in _journal(hub2, cursor)["entries"]),
        timeout_s=15,
        what="a new level entry after the restart",
    )
    rest = _journal(hub2, cursor)
    seen += [e["id"] for e in rest["entries"]]
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    assert [e["id"] for e in _journal(hub2)["entries"]] == seen[: len(_journal(hub2)["entries"])]


def test_contexts_are_published_as_points_and_journaled(procs: Processes) -> None:
    hub = procs.hub()
    started = _cmd(hub, "context_start", kind="pass", prefix="GS1/Ant1", id="P123")
    assert started.ok, started.message
    with Subscriber(hub.query, "_hub/contexts") as sub:
        node = wait_until(
            lambda: polled(sub) and (n := sub.tree.get("_hub/contexts/pass/GS1/Ant1")) is not None and n,
            what="the context point",
        )
        assert node.value == "P123"
        assert _cmd(hub, "context_stop", kind="pass", prefix="GS1/Ant1").ok
        wait_until_gone(sub, "_hub/contexts/pass/GS1/Ant1", what="the context point to go when stopped")
    kinds = [e["kind"] for e in _journal(hub, prefix="GS1/Ant1")["entries"]]
    assert kinds == ["context_start", "context_stop"]


RECORDER = textwrap.dedent(
    """
    import signal, sys, zmq
    from gsmon.common import protocol as proto
    from gsmon.common.ready import ready_line
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean end on SIGTERM, as a gsmon program's
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)  # nothing to deliver on the way out
    sock.connect(sys.argv[1])
    def send(msg):
        sock.send(proto.encode(msg))
    send(proto.Command(sender="rec", epoch=1, seq=1, sent_ns=0, request_id=1, command="register_service",
                       args={"service": "history"}, user=None))
    reply = proto.decode(sock.recv())
    assert reply.ok, reply.message
    print(ready_line(), flush=True)
    seq = 2
    while True:
        msg = proto.decode(sock.recv())
        if isinstance(msg, proto.Command) and msg.command == "history":
            send(proto.CommandResult(sender="rec", epoch=1, seq=seq, sent_ns=0, request_id=msg.request_id,
                                     ok=True, message="1 bucket", result={"path": msg.args.get("path"),
                                     "buckets": [[1.0, 2.0, 3.0, 4]], "by": msg.args.get("by")}))
            seq += 1
    """
)


def test_history_is_forwarded_to_a_registered_recorder_process(procs: Processes, tmp_path: Path) -> None:
    hub = procs.hub()
    none = _cmd(hub, "history", path="GS1/Ant1/Power")
    assert (none.ok, none.result) == (False, {"reason": "no history service"})
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    recorder = procs.start("recorder", [sys.executable, str(script), hub.query])
    recorder.wait_for_ready()
    reply = _cmd(hub, "history", path="GS1/Ant1/Power", since=0)
    assert reply.ok, reply.message
    assert reply.result["path"] == "GS1/Ant1/Power"
    assert reply.result["buckets"] == [[1.0, 2.0, 3.0, 4]]
    assert reply.result["by"].startswith("anonymous@")


def test_roles_viewer_cannot_ack_operator_can_but_not_clear(procs: Processes, tmp_path: Path) -> None:
    root = tmp_path / "keys"
    hub_dir = root / "hub"
    commands = [
        ["keys", "init", str(hub_dir)],
        ["keys", "agent", "ant1", "--mount", MOUNT, "--hub-dir", str(hub_dir), "--out", str(root / "ant1")],
        ["keys", "subscriber", "view", "--hub-dir", str(hub_dir), "--out", str(root / "view")],
        ["keys", "subscriber", "op", "--role", "operator", "--hub-dir", str(hub_dir), "--out", str(root / "op")],
    ]
    for command in commands:
        result = gsmon_cli(*command)
        assert result.returncode == 0, result.stderr
    keys = KeySet(root)
    power = tmp_path / "power.json"
    _set(power, 1, "RED")
    hub = procs.hub("--keys", str(hub_dir))
    procs.agent(hub, "ant1", _spec(("Power", power)), mount=MOUNT, key=keys.secret("ant1"), hub_key=keys.hub_public)
    viewer = ClientKeys.load(keys.secret("view"), keys.hub_public)
    operator = ClientKeys.load(keys.secret("op"), keys.hub_public)
    path = f"{MOUNT}/Power"
    alarm = _wait_state(hub, path, "active_unacked", viewer)
    assert _cmd(hub, "whoami", viewer).result == {"role": "viewer", "by": "view"}
    refused = _cmd(hub, "ack", viewer, ids=[alarm["id"]])
    assert (refused.ok, refused.result) == (False, {"reason": "forbidden"})
    assert "operator" in refused.message
    assert _alarm(hub, path, viewer)["state"] == "active_unacked"
    too_long = _cmd(hub, "shelve", operator, prefix=MOUNT, mode="timed", duration_s=2 * 86400, comment="x")
    assert (too_long.ok, too_long.result) == (False, {"reason": "forbidden"})
    no_clear = _cmd(hub, "clear", operator, ids=[alarm["id"]])
    assert (no_clear.ok, no_clear.result) == (False, {"reason": "forbidden"})
    acked = _cmd(hub, "ack", operator, ids=[alarm["id"]], comment="mine")
    assert acked.ok, acked.message
    assert _wait_state(hub, path, "active_acked", viewer)["acked_by"] == "op"


def test_for_s_holds_back_a_one_poll_glitch_and_the_subscriber_sees_the_raw_level(
    procs: Processes, tmp_path: Path
) -> None:
    """Issue 13 §3/§6: under ``for_s`` a one-poll RED at a real agent opens no alarm and every NODE stays GREEN,
    while the subscriber sees the raw level (``raw_alert`` RED, ``pending`` RED) and the journal the glitch."""
    temp = tmp_path / "temp.json"
    _set(temp, 40.0, "GREEN")
    hub = procs.hub()
    spec = {"points": [{"name": "Temp", "file": str(temp), "dt": 0.1, "for_s": 30}]}
    procs.agent(hub, "sensor1", spec, mount="GS1/Sensor")
    path = "GS1/Sensor/Temp"
    seen: list[tuple[int, int | None, Any]] = []  # (alert, raw_alert, pending) of every NODE of the point
    with Subscriber(hub.query, "GS1/") as sub:

        def record(change: Any) -> None:
            if change.path == path and change.new is not None:
                seen.append((change.new.alertcode, change.new.raw_alert, change.new.pending))

        sub.add_callback(record)
        wait_until(lambda: polled(sub) and any(raw == 10 for _, raw, _ in seen), what="Temp with raw_alert GREEN")
        _set(temp, 95.0, "RED")
        node = wait_until(
            lambda: polled(sub) and (n := sub.tree.get(path)) is not None and n.raw_alert == 30 and n,
            what="the raw RED at the subscriber",
        )
        assert (node.alertcode, node.pending["level"]) == (10, 30)
        assert isinstance(node.pending["since"], float)
        _set(temp, 41.0, "GREEN")
        wait_until(
            lambda: polled(sub) and sub.tree[path].value == 41.0 and sub.tree[path].raw_alert == 10,
            what="the glitch over at the subscriber",
        )
        assert sub.tree[path].pending is None
        assert {alert for alert, _, _ in seen} == {10}  # the effective level never left GREEN
        assert sub.tree["GS1/Sensor"].alertcode == 10
        assert not sub.tree["GS1/Sensor"].attention
    assert _cmd(hub, "alarms", prefix="GS1").result["alarms"] == []
    entries = _journal(hub, prefix=path)["entries"]
    assert [(e["kind"], e["old"], e["new"]) for e in entries] == [("pending", 10, 30), ("discarded", 10, 30)]
    # gsmon get --json shows them under the same names.
    got = gsmon_cli("get", path, "--json", "--hub", hub.query)
    assert got.returncode == 0, got.stderr
    shown = json.loads(got.stdout)[path]
    assert (shown["alert"], shown["raw_alert"], shown["pending"], shown["flapping"]) == (10, 10, None, None)


def test_an_until_normal_shelf_ends_when_the_point_recovers(procs: Processes, tmp_path: Path) -> None:
    """Issue 13 §2/§6 (alertmanager#1057): a shelf ``--until-normal`` ends by itself, reason ``normal``, once
    nothing it covers is in alarm; a later alarm under the prefix is not shelved."""
    power = tmp_path / "power.json"
    _set(power, 1, "RED")
    hub = procs.hub()
    procs.agent(hub, "ant1", _spec(("Power", power)), mount=MOUNT)
    path = f"{MOUNT}/Power"
    alarm = _wait_state(hub, path, "active_unacked")
    shelved = _cmd(hub, "shelve", prefix=MOUNT, mode="until_normal", comment="replacing the PSU")
    assert shelved.ok, shelved.message
    shelf_id = shelved.result["shelf"]["id"]
    assert _alarm(hub, path)["shelf_id"] == shelf_id
    assert [s["id"] for s in _cmd(hub, "shelves").result["shelves"]] == [shelf_id]
    _set(power, 2, "GREEN")
    wait_until(lambda: _cmd(hub, "shelves").result["shelves"] == [], timeout_s=15, what="the shelf to end")
    [ended] = _cmd(hub, "shelves", all=True).result["shelves"]
    assert (ended["id"], ended["end_reason"]) == (shelf_id, "normal")
    entries = _journal(hub, prefix=MOUNT)["entries"]
    assert [e["shelf_id"] for e in entries if e["kind"] == "shelf_ended"] == [shelf_id]
    assert "shelf_ended_still_active" not in [e["kind"] for e in entries]
    # The latched alarm returned to normal unacknowledged, and still wants its ack (no longer shelved).
    rtn = _wait_state(hub, path, "rtn_unacked")
    assert (rtn["id"], rtn["shelf_id"]) == (alarm["id"], None)
    _set(power, 3, "RED")
    again = _wait_state(hub, path, "active_unacked")
    assert again["shelf_id"] is None


def test_an_agent_back_from_silence_journals_no_alarm_per_point(procs: Processes, tmp_path: Path) -> None:
    """Issue 13 §1/§5: a silent agent is ONE alarm on its mount. When it comes back (SIGSTOP, then SIGCONT,
    after its points' stale deadlines have passed too), its points are not raised as overdue one by one,
    the RED one does not escalate to STALE, and no level 50 -> 50 is journaled: the RED point keeps its alarm."""
    power, fan = tmp_path / "power.json", tmp_path / "fan.json"
    _set(power, 1, "RED")
    _set(fan, 2, "GREEN")
    hub = procs.hub()
    agent = procs.agent(hub, "ant1", _spec(("Power", power), ("Fan", fan)), mount=MOUNT)
    red = _wait_state(hub, f"{MOUNT}/Power", "active_unacked")
    agent.signal(signal.SIGSTOP)
    try:
        silent = wait_until(
            lambda: [e for e in _journal(hub, prefix=MOUNT)["entries"] if e["kind"] == "agent_silent"],
            what="the agent to be judged silent",
        )[0]
        # Let the points' own deadlines (3 x dt + 0.5 s) pass while the agent is silent: that is the case.
        lapse = time.monotonic() + 1.5
        wait_until(lambda: time.monotonic() >= lapse, timeout_s=5, what="the points' deadlines to pass")
    finally:
        agent.signal(signal.SIGCONT)
    wait_until(
        lambda: any(
            e["kind"] == "fresh" and e["path"] == f"{MOUNT}/Power" for e in _journal(hub, silent["id"])["entries"]
        ),
        timeout_s=15,
        what="the RED point refreshed after the return",
    )
    after = _journal(hub, silent["id"])["entries"]
    kinds = [(e["kind"], e["path"], e["old"], e["new"]) for e in after]
    assert ("agent_back", MOUNT, 50, None) in kinds, kinds
    assert not [k for k in kinds if k[0] in ("alarm_raised", "alarm_escalated") and k[1] != MOUNT], kinds
    assert not [k for k in kinds if k[0] == "level" and k[2] == k[3] == 50], kinds
    alarms = {a["path"]: a for a in _cmd(hub, "alarms", prefix=MOUNT).result["alarms"]}
    assert (alarms[f"{MOUNT}/Power"]["id"], alarms[f"{MOUNT}/Power"]["max_level"]) == (red["id"], 30)
    assert f"{MOUNT}/Fan" not in alarms


def test_a_second_red_under_an_acknowledged_parent_raises_its_attention(procs: Processes, tmp_path: Path) -> None:
    """The seed's worst-child rollup hides a second RED under a parent already RED; attention does not:
    once the first is acknowledged the parent needs nobody, and the second RED makes it need someone again."""
    power, fan = tmp_path / "power.json", tmp_path / "fan.json"
    _set(power, 1, "RED")
    _set(fan, 1, "GREEN")
    hub = procs.hub()
    procs.agent(hub, "ant1", _spec(("Power", power), ("Fan", fan)), mount=MOUNT)
    first = _wait_state(hub, f"{MOUNT}/Power", "active_unacked")
    with Subscriber(hub.query, "GS1/") as sub:

        def parent_attention() -> int | None:
            polled(sub)
            node = sub.tree.get(MOUNT)
            return None if node is None else node.attention

        wait_until(lambda: parent_attention() == 30, timeout_s=15, what="the parent's attention at RED")
        assert _cmd(hub, "ack", ids=[first["id"]], comment="known: breaker").ok
        wait_until(lambda: parent_attention() == 0, timeout_s=15, what="no attention after the ack")
        assert sub.tree[MOUNT].alertstr == "RED"  # the worst child is still RED: alert keeps its meaning
        _set(fan, 0, "RED")
        second = _wait_state(hub, f"{MOUNT}/Fan", "active_unacked")
        wait_until(lambda: parent_attention() == 30, timeout_s=15, what="the second RED's attention on the parent")
        assert sub.tree[f"{MOUNT}/Fan"].alarm["id"] == second["id"] != first["id"]
