"""The agent's outbox end to end (issue 17 §3): what happened while the hub was down is not lost.

Real processes: a hub with a state directory, an agent (agent_program.py: a
Monitor publishing, its outbox in memory as an in-process Monitor keeps it),
``gsmon notify`` with the repo's HTTP sink. The hub is stopped; a point goes
RED and back to GREEN; a new hub starts on the same endpoints and state
directory. It asks the agent for the transitions it missed: they are in the
journal (``gsmon log``) with their original times and the replayed mark, the
RED is latched (rtn_unacked), and the notifier sends exactly one summary.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness import Hub, Processes, gsmon_cli, wait_until
from test_notify import notifier, sent_counts, start_sinks, titles

from gsmon.common.commands import send_command

MOUNT = "GS1/Rack1"
TEMP = f"{MOUNT}/Temp"


def _set(file: Path, value: Any, alert: str) -> None:
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps([value, alert]))
    tmp.replace(file)


def _journal(hub: Hub) -> list[dict[str, Any]]:
    reply = send_command(hub.query, "journal", {"after_id": 0, "prefix": MOUNT, "limit": 10_000}, timeout_s=5.0)
    assert reply.ok, reply.message
    return list(reply.result["entries"])


def _health(hub: Hub, name: str) -> Any:
    shown = gsmon_cli("get", f"_hub/{name}", "--json", "--hub", hub.query)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)[f"_hub/{name}"]["value"]


def _write_config(tmp_path: Path, http_at: str) -> Path:
    config = tmp_path / "notify.toml"
    config.write_text(
        f"""
[[receiver]]
name = "hook"
urls = ["{http_at.replace("http://", "json://")}/hook"]

[[route]]
prefix = "GS1"
min_level = "RED"
receivers = ["hook"]
"""
    )
    return config


def test_a_red_that_came_and_went_while_the_hub_was_down_is_journaled_latched_and_summarised(
    procs: Processes, tmp_path: Path
) -> None:
    _smtp, _smtp_at, http, http_at = start_sinks(procs)
    hub_state = tmp_path / "hub-state"
    temp = tmp_path / "temp.json"
    _set(temp, 21.0, "GREEN")
    hub = procs.hub("--state-dir", str(hub_state))
    spec = {"points": [{"name": "Temp", "file": str(temp), "dt": 0.1, "log_alerts": True}]}
    agent = procs.agent(hub, "rack1", spec, mount=MOUNT)
    notify = notifier(procs, hub.query, _write_config(tmp_path, http_at), tmp_path / "notify-state")
    # The point is in the hub's tree: the agent's STATE (with its outbox mark) was applied, and the mark stored.
    wait_until(
        lambda: "Temp" in gsmon_cli("get", "--hub", hub.query, MOUNT).stdout, what="the agent's point at the hub"
    )

    assert hub.process.stop() == 0  # a clean stop: the store holds what the hub had
    before = time.time()
    _set(temp, 95.0, "RED")
    wait_until(lambda: "GREEN --> RED" in agent.stderr(), what="the agent to see RED (no hub to tell)")
    _set(temp, 22.0, "GREEN")
    wait_until(lambda: "RED --> GREEN" in agent.stderr(), what="the agent to see GREEN again")
    after = time.time()

    hub2 = procs.hub(
        "--state-dir", str(hub_state), agents=hub.agents, subscribers=hub.subscribers, query=hub.query, name="hub2"
    )
    levels = wait_until(
        lambda: [e for e in _journal(hub2) if e["kind"] == "level" and e["replayed"]] or None,
        timeout_s=20,
        what="the replayed transitions in the restarted hub's journal",
    )
    assert [(e["path"], e["old"], e["new"]) for e in levels] == [(TEMP, 10, 30), (TEMP, 30, 10)]
    for entry in levels:  # their original times: the agent's polls while the hub was down
        assert before <= entry["time"] <= after, (entry, before, after)
        assert entry["hub_time"] > after
    (alarm,) = send_command(hub2.query, "alarms", {"prefix": MOUNT}, timeout_s=5.0).result["alarms"]
    assert (alarm["state"], alarm["max_level"], alarm["level"]) == ("rtn_unacked", 30, 10)
    assert before <= alarm["raised_at"] <= alarm["rtn_at"] <= after

    # gsmon log shows them as an operator sees them.
    shown = gsmon_cli("log", "--hub", hub2.query, MOUNT, "--json")
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    replayed = [(r["kind"], r["replayed"]) for r in rows if r["replayed"]]
    assert ("level", True) in replayed
    assert ("alarm_raised", True) in replayed
    assert ("alarm_rtn", True) in replayed
    assert ("replayed", True) in replayed

    # Exactly one notification: the summary (nothing one by one), once the notifier took the whole journal.
    wait_until(lambda: titles(http), timeout_s=30, what="the replay's summary notification")
    wait_until(lambda: sent_counts(notify).get("hook") == 1, what="the delivery recorded")
    last = max(r["id"] for r in rows)
    wait_until(
        lambda: (line := notify.latest("HEALTH ")) is not None and json.loads(line.split(" ", 1)[1])["cursor"] >= last,
        what="the notifier to take in the whole journal",
    )
    (title,) = titles(http)
    assert title.startswith("[gsmon] rack1: 1 alarm between "), title
    assert title.endswith(" UTC, now GREEN"), title
    assert agent.stop() == 0
    assert notify.stop() == 0


def test_a_blip_shorter_than_a_flush_is_journaled_once_and_latched_with_its_time(
    procs: Processes, tmp_path: Path
) -> None:
    """Issue 17 §2: RED and back between two of the agent's publishes reaches the hub at once (live transitions).

    The agent flushes every 0.5 s; its Door point is RED for one poll (5 ms) each time the trigger file's number
    grows. A DELTA carries only the latest poll (GREEN): before live transitions the hub never learned of it. Now
    the RED is in the journal with its original time, once, as a live entry (notified like any), and latched,
    with no replay. (A blip that happens to straddle a flush reaches the hub in two DELTAs instead, journaled
    in two turns: the test then blips again, at most three times.)
    """
    door = f"{MOUNT}/Door"
    trigger = tmp_path / "blip"
    trigger.write_text("0")
    hub = procs.hub("--state-dir", str(tmp_path / "hub-state"))
    spec = {"flush_s": 0.5, "points": [{"name": "Door", "blip": str(trigger), "dt": 0.005}]}
    agent = procs.agent(hub, "rack1", spec, mount=MOUNT)
    wait_until(lambda: "Door" in gsmon_cli("get", "--hub", hub.query, MOUNT).stdout, what="the point at the hub")
    levels: list[dict[str, Any]] = []
    for attempt in range(1, 4):
        before = time.time()
        tmp = trigger.with_suffix(".tmp")
        tmp.write_text(str(attempt))
        tmp.replace(trigger)

        def blipped(since: float = before) -> list[dict[str, Any]] | None:
            found = [e for e in _journal(hub) if e["kind"] == "level" and e["path"] == door and e["time"] >= since]
            return found if len(found) >= 2 else None

        levels = wait_until(blipped, timeout_s=10, what="the blip's two transitions in the hub's journal")
        after = time.time()
        if levels[0]["hub_time"] == levels[1]["hub_time"]:
            break  # folded between two flushes: both came in one live TRANSITIONS, journaled in one turn
    assert [(e["old"], e["new"], e["replayed"]) for e in levels] == [(10, 30, False), (30, 10, False)]
    wait_until(lambda: _health(hub, "outbox_live") >= 2, what="_hub/outbox_live to count the blip")
    assert before <= levels[0]["time"] <= levels[1]["time"] <= after  # the agent's poll times
    # The Door's alarm (one: a later blip re-raises the same id). Only the Door's: on a loaded machine the hub
    # may also have judged the agent silent for a moment, an alarm of the mount.
    alarms = send_command(hub.query, "alarms", {"prefix": MOUNT}, timeout_s=5.0).result["alarms"]
    door_alarms = [item for item in alarms if item["path"] == door]
    assert len(door_alarms) == 1, alarms
    (alarm,) = door_alarms
    assert (alarm["state"], alarm["max_level"], alarm["level"]) == ("rtn_unacked", 30, 10)
    assert alarm["raised_at"] == levels[0]["time"]
    assert [e for e in _journal(hub) if e["kind"] == "replayed"] == []  # no replay was needed
    assert agent.stop() == 0
    assert hub.process.stop() == 0
