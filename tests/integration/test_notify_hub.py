"""gsmon notify against the real hub and a real agent: a point goes RED and back, through SIGKILLs.

The hub journals the alarm; the notifier reads it by cursor and tells a real
SMTP server and a real webhook receiver (the sinks of test_notify.py). After a
SIGKILL of the notifier and of the hub (restarted on the same state directory)
nothing is sent again, and the resolution still arrives, once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import Hub, Processes, gsmon_cli, polled, wait_until, wait_until_gone
from test_notify import notifier, received, sent_counts, start_sinks, titles, write_config

from gsmon.common.client import Subscriber
from gsmon.common.commands import send_command

MOUNT = "GS1/ups"
POWER = f"{MOUNT}/Power"


def _set(file: Path, value: Any, alert: str) -> None:
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps([value, alert]))
    tmp.replace(file)


def _last_id(hub: Hub) -> int:
    reply = send_command(hub.query, "journal", {"after_id": 0, "limit": 10_000}, timeout_s=10.0)
    assert reply.ok, reply.message
    return int(reply.result["last_id"])


def _cursor(process: Any) -> int:
    line = process.latest("HEALTH ")
    return -1 if line is None else int(json.loads(line.split(" ", 1)[1])["cursor"])


def test_point_red_and_back_through_notifier_and_hub_sigkills(procs: Processes, tmp_path: Path) -> None:
    smtp, smtp_at, http, http_at = start_sinks(procs)
    config = write_config(tmp_path, smtp_at, http_at)
    hub_state, notify_state = tmp_path / "hub-state", tmp_path / "notify-state"
    power = tmp_path / "power.json"
    _set(power, 230.0, "GREEN")
    hub = procs.hub("--state-dir", str(hub_state))
    spec = {"points": [{"name": "Power", "file": str(power), "dt": 0.1}]}
    agent = procs.agent(hub, "ant1", spec, mount=MOUNT)
    notify = notifier(procs, hub.query, config, notify_state)

    _set(power, 0.0, "RED")
    wait_until(lambda: titles(http) and received(smtp, "MAIL"), timeout_s=15, what="the raise from the real hub")
    assert titles(http) == [f"[gsmon] RAISED RED {POWER}"]
    [mail] = received(smtp, "MAIL")
    assert mail["subject"] == f"[gsmon] RAISED RED {POWER}"
    for text in (
        "value: 0.0",
        "agent: ant1",
        "guidance: Check the UPS input breaker first.",
        f"gsmon ack {POWER} --hub {hub.query} -m",
        f"gsmon shelve {POWER} --hub {hub.query} --for 2h",
    ):
        assert text in mail["body"]
    wait_until(lambda: sent_counts(notify) == {"mail": 1, "hook": 1}, what="both deliveries recorded")

    # SIGKILL the notifier and restart it on the same hub: nothing again.
    notify.kill()
    notify = notifier(procs, hub.query, config, notify_state, name="notify-2")
    last = _last_id(hub)
    wait_until(lambda: _cursor(notify) >= last, what="the restarted notifier to catch up with the journal")

    # SIGKILL the hub; a new one on the same state directory, its agent, and the notifier pointed at it.
    # The point is still RED: the hub keeps the same alarm, and the notifier's grace covers the refill.
    hub.process.kill()
    agent.stop()
    notify.stop()
    hub2 = procs.hub("--state-dir", str(hub_state), name="hub2")
    procs.agent(hub2, "ant1", spec, mount=MOUNT)
    notify = notifier(procs, hub2.query, config, notify_state, "--startup-grace-s", "3", name="notify-3")
    wait_until(
        lambda: send_command(hub2.query, "alarms", {"prefix": POWER}, timeout_s=5.0).result["alarms"],
        what="the alarm back on the restarted hub",
    )
    _set(power, 231.0, "GREEN")
    wait_until(lambda: len(titles(http)) >= 2, timeout_s=20, what="the resolution after the restarts")
    last = _last_id(hub2)
    wait_until(lambda: _cursor(notify) >= last, what="the notifier to take in the whole journal")
    assert titles(http) == [f"[gsmon] RAISED RED {POWER}", f"[gsmon] RESOLVED RED {POWER}"]
    assert [m["subject"] for m in received(smtp, "MAIL")] == titles(http)
    assert notify.stop() == 0
    log = gsmon_cli("notify", "--log", "--json", "--state-dir", str(notify_state), "--config", str(config))
    assert log.returncode == 0, log.stderr
    rows = [json.loads(line) for line in log.stdout.splitlines()]
    assert [(r["receiver"], r["status"], r["title"]) for r in rows] == [
        ("mail", "sent", f"[gsmon] RAISED RED {POWER}"),
        ("hook", "sent", f"[gsmon] RAISED RED {POWER}"),
        ("mail", "sent", f"[gsmon] RESOLVED RED {POWER}"),
        ("hook", "sent", f"[gsmon] RESOLVED RED {POWER}"),
    ]


def test_shelved_raise_is_silent_its_shelf_end_is_announced_and_a_silent_agent_is_one_message(
    procs: Processes, tmp_path: Path
) -> None:
    _smtp, smtp_at, http, http_at = start_sinks(procs)
    lna = tmp_path / "lna.json"
    _set(lna, 20.0, "GREEN")
    hub = procs.hub()
    procs.agent(hub, "ant1", {"points": [{"name": "Lna", "file": str(lna), "dt": 0.1}]}, mount=MOUNT)
    rack_spec = {"points": [{"name": "Cpu", "counter": True, "dt": 0.1}, {"name": "Disk", "counter": True, "dt": 0.1}]}
    rack = procs.agent(hub, "rack", rack_spec, mount="GS1/Rack")
    notify = notifier(procs, hub.query, write_config(tmp_path, smtp_at, http_at), tmp_path / "state")
    shelf = send_command(hub.query, "shelve", {"prefix": f"{MOUNT}/Lna", "mode": "timed", "duration_s": 3,
                                              "comment": "LNA swap"}, user="tester")  # fmt: skip
    assert shelf.ok, shelf.message
    _set(lna, 80.0, "RED")  # raised under the shelf: not told
    wait_until(lambda: titles(http), timeout_s=20, what="the shelf end with the LNA still RED")
    assert titles(http) == [f"[gsmon] SHELF ENDED, STILL ACTIVE RED {MOUNT}/Lna"]

    rack.kill()  # one message for the agent, none for its STALE points
    wait_until(lambda: len(titles(http)) == 2, timeout_s=20, what="the silent agent")
    last = _last_id(hub)
    wait_until(lambda: _cursor(notify) >= last, what="the notifier to take in the whole journal")
    assert titles(http) == [
        f"[gsmon] SHELF ENDED, STILL ACTIVE RED {MOUNT}/Lna",
        "[gsmon] AGENT SILENT STALE GS1/Rack",
    ]
    procs.agent(hub, "rack", rack_spec, mount="GS1/Rack")
    wait_until(lambda: len(titles(http)) >= 3, timeout_s=20, what="the agent back")
    assert titles(http)[2] == "[gsmon] AGENT BACK STALE GS1/Rack"


def test_a_receiver_that_keeps_failing_is_an_alarm_in_the_hubs_tree(procs: Processes, tmp_path: Path) -> None:
    """The notifier's own health is in the live tree (report_health): a webhook that answers 500 every
    time turns ``_hub/clients/notify/receivers/hook/consecutive_failures`` ORANGE, then RED."""
    _smtp, smtp_at, _http, http_at = start_sinks(procs, fail_first=1_000_000)
    config = write_config(tmp_path, smtp_at, http_at)
    power = tmp_path / "power.json"
    _set(power, 0.0, "RED")
    hub = procs.hub("--state-dir", str(tmp_path / "hub-state"))
    procs.agent(hub, "ant1", {"points": [{"name": "Power", "file": str(power), "dt": 0.1}]}, mount=MOUNT)
    notify = notifier(procs, hub.query, config, tmp_path / "notify-state", "--retry-initial-s", "0.2")
    streak = "_hub/clients/notify/receivers/hook/consecutive_failures"
    with Subscriber(hub.query, "_hub/clients/") as sub:
        wait_until(
            lambda: polled(sub) and getattr(sub.tree.get(streak), "alertstr", None) == "RED",
            timeout_s=45,
            what="the failing receiver RED in the hub's tree",
        )
        assert sub.tree[streak].value >= 5
        assert sub.tree["_hub/clients/notify/reporting"].value is True
        assert sub.tree["_hub/clients/notify/hub_up"].value is True
        mail = "_hub/clients/notify/receivers/mail/consecutive_failures"
        assert (sub.tree[mail].value, sub.tree[mail].alertstr) == (0, "GREEN")
        assert notify.stop() == 0
        wait_until_gone(sub, "_hub/clients/notify", timeout_s=15, what="the stopped notifier's figures to go")
