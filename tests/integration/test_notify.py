"""gsmon notify end to end: a real notifier process, a real SMTP server and a real HTTP webhook receiver.

The journal comes from journal_server_program.py, a real process serving the
hub's ``journal`` command on a real ZeroMQ ROUTER exactly per common/protocol.py
(its entries file is its persistent store, so it can be SIGKILLed and restarted
like the hub). Assertions are on what the servers received: count, order, content.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from harness import HERE, Process, Processes, gsmon_cli, wait_until

RED, GREEN, STALE = 30, 10, 50
FAST = ["--group-wait-s", "0.5", "--group-interval-s", "1", "--startup-grace-s", "0", "--poll-s", "0.2"]


class Journal:
    """The fake hub's journal: a JSON-lines file the server re-reads on every request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_id = 1
        path.write_text("")

    def add(self, kind: str, path: str, **fields: Any) -> int:
        entry = {"id": self.next_id, "time": time.time(), "hub_time": time.time(), "path": path, "kind": kind}
        entry.update(fields)
        with self.path.open("a") as out:
            out.write(json.dumps(entry) + "\n")
        self.next_id += 1
        return int(entry["id"])


def start_sinks(procs: Processes, fail_first: int = 0) -> tuple[Process, str, Process, str]:
    smtp = procs.start("smtp", [sys.executable, str(HERE / "smtp_sink_program.py")])
    smtp_at = smtp.wait_for_line("READY ").split("smtp=", 1)[1]
    argv = [sys.executable, str(HERE / "http_sink_program.py"), "--fail-first", str(fail_first)]
    http = procs.start("http", argv)
    http_at = http.wait_for_line("READY ").split("http=", 1)[1]
    return smtp, smtp_at, http, http_at


def start_journal(procs: Processes, journal: Journal, *extra: str) -> tuple[Process, str]:
    server = procs.start(
        "fake-hub", [sys.executable, str(HERE / "journal_server_program.py"), str(journal.path), *extra]
    )
    return server, server.wait_for_line("READY ").split("query=", 1)[1]


def write_config(tmp_path: Path, smtp_at: str, http_at: str) -> Path:
    host, port = smtp_at.rsplit(":", 1)
    hook = http_at.replace("http://", "json://") + "/hook"
    config = tmp_path / "notify.toml"
    config.write_text(
        f"""
[[receiver]]
name = "mail"
urls = ["mailto://{host}:{port}?from=gsmon@example.org&to=ops@example.org&mode=insecure&format=text"]

[[receiver]]
name = "hook"
urls = ["{hook}"]

[[route]]
prefix = "GS1"
min_level = "RED"
receivers = ["mail", "hook"]

[[guidance]]
prefix = "GS1/ups"
text = "Check the UPS input breaker first."
"""
    )
    return config


def received(process: Process, prefix: str) -> list[dict[str, Any]]:
    process.latest(prefix)  # drain the reader queue into process.seen
    return [json.loads(line.split(" ", 1)[1]) for line in process.seen if line.startswith(prefix + " ")]


def notifier(procs: Processes, hub: str, config: Path, state: Path, *extra: str, name: str = "notify") -> Process:
    process = procs.gsmon(name, "notify", "--hub", hub, "--config", str(config), "--state-dir", str(state), *FAST,
                          *extra)  # fmt: skip
    process.wait_for_line("READY ")
    return process


def sent_counts(notify: Process) -> dict[str, int]:
    line = notify.latest("HEALTH ")
    if line is None:
        return {}
    return {name: r["sent"] for name, r in json.loads(line.split(" ", 1)[1])["receivers"].items()}


def titles(http: Process) -> list[str]:
    return [post["body"]["title"] for post in received(http, "POST")]


def test_raise_and_resolution_reach_mail_and_webhook_once_through_restarts(procs: Processes, tmp_path: Path) -> None:
    smtp, smtp_at, http, http_at = start_sinks(procs)
    journal = Journal(tmp_path / "journal.jsonl")
    hub, hub_at = start_journal(procs, journal)
    config = write_config(tmp_path, smtp_at, http_at)
    state = tmp_path / "state"
    notify = notifier(procs, hub_at, config, state)

    journal.add("level", "GS1/ups/on_battery", old=GREEN, new=RED, value=True, agent="ups")
    raised_at = time.monotonic()
    journal.add("alarm_raised", "GS1/ups/on_battery", new=RED, value=True, agent="ups", alarm_id=7)
    wait_until(
        lambda: received(smtp, "MAIL") and received(http, "POST"), timeout_s=15, what="the raise by mail and hook"
    )
    assert time.monotonic() - raised_at < 15
    [mail] = received(smtp, "MAIL")
    assert mail["subject"] == "[gsmon] RAISED RED GS1/ups/on_battery"
    assert mail["to"] == ["ops@example.org"]
    for text in ("value: True", "agent: ups", "guidance: Check the UPS input breaker first.",
                 f"gsmon ack GS1/ups/on_battery --hub {hub_at} -m"):  # fmt: skip
        assert text in mail["body"]
    [post] = received(http, "POST")
    assert post["path"] == "/hook"
    assert post["body"]["title"] == "[gsmon] RAISED RED GS1/ups/on_battery"

    # SIGKILL the notifier and restart it: nothing is sent again. (Killed once it has said that both
    # deliveries are recorded: a kill between a receiver's acceptance and that commit -- milliseconds --
    # is the one case that sends again, by design: at least once, never lost; see common/notify/store.py.)
    wait_until(lambda: sent_counts(notify) == {"mail": 1, "hook": 1}, what="both deliveries recorded")
    notify.kill()
    notify = notifier(procs, hub_at, config, state, name="notify-2")
    # SIGKILL the hub and restart it on the same journal (a new port, like a hub without a fixed one).
    hub.kill()
    hub, hub_at = start_journal(procs, journal)
    notify.stop()
    notify = notifier(procs, hub_at, config, state, name="notify-3")
    wait_until(lambda: received(hub, "REQUEST"), what="the restarted notifier asking the restarted hub")
    journal.add("alarm_rtn", "GS1/ups/on_battery", old=RED, new=GREEN, value=False, agent="ups", alarm_id=7)
    resolved_at = time.monotonic()
    wait_until(lambda: len(received(http, "POST")) == 2 and len(received(smtp, "MAIL")) == 2, timeout_s=15,
               what="the resolution")  # fmt: skip
    assert time.monotonic() - resolved_at < 15
    assert titles(http) == ["[gsmon] RAISED RED GS1/ups/on_battery", "[gsmon] RESOLVED RED GS1/ups/on_battery"]
    assert [m["subject"] for m in received(smtp, "MAIL")] == [
        "[gsmon] RAISED RED GS1/ups/on_battery",
        "[gsmon] RESOLVED RED GS1/ups/on_battery",
    ]
    # A later request from the notifier asks after the last id: the cursor survived both restarts.
    last_args = wait_until(lambda: [r["args"] for r in received(hub, "REQUEST") if r["args"]["after_id"] >= 3],
                           what="a request after the resolution")  # fmt: skip
    assert last_args[-1]["after_id"] == 3
    assert notify.stop() == 0

    log = gsmon_cli("notify", "--log", "--json", "--state-dir", str(state), "--config", str(config))
    assert log.returncode == 0, log.stderr
    rows = [json.loads(line) for line in log.stdout.splitlines()]
    assert [(r["receiver"], r["status"], r["title"]) for r in rows] == [
        ("mail", "sent", "[gsmon] RAISED RED GS1/ups/on_battery"),
        ("hook", "sent", "[gsmon] RAISED RED GS1/ups/on_battery"),
        ("mail", "sent", "[gsmon] RESOLVED RED GS1/ups/on_battery"),
        ("hook", "sent", "[gsmon] RESOLVED RED GS1/ups/on_battery"),
    ]


def test_silent_agent_shelved_and_shelf_end(procs: Processes, tmp_path: Path) -> None:
    _smtp, smtp_at, http, http_at = start_sinks(procs)
    journal = Journal(tmp_path / "journal.jsonl")
    _hub, hub_at = start_journal(procs, journal)
    notifier(procs, hub_at, write_config(tmp_path, smtp_at, http_at), tmp_path / "state")
    journal.add("agent_silent", "GS1/rack7", new=STALE, agent="rack7", alarm_id=3)
    for point in ("cpu", "disk", "temp"):  # its points' STALE is never notified
        journal.add("stale", f"GS1/rack7/{point}", old=GREEN, new=STALE, agent="rack7")
    journal.add("alarm_raised", "GS1/ant/lna", new=RED, value=81.5, agent="ant", alarm_id=4, shelf_id=9)  # shelved
    wait_until(lambda: titles(http), timeout_s=15, what="the silent agent")
    journal.add("shelf_ended_still_active", "GS1/ant/lna", new=RED, value=82.0, agent="ant", alarm_id=4, shelf_id=9)
    wait_until(lambda: len(titles(http)) == 2, timeout_s=15, what="the shelf end")
    journal.add("agent_back", "GS1/rack7", old=STALE, agent="rack7", alarm_id=3)
    wait_until(lambda: len(titles(http)) == 3, timeout_s=15, what="the agent back")
    assert titles(http) == [
        "[gsmon] AGENT SILENT STALE GS1/rack7",
        "[gsmon] SHELF ENDED, STILL ACTIVE RED GS1/ant/lna",
        "[gsmon] AGENT BACK STALE GS1/rack7",
    ]


def test_failed_webhook_is_retried_and_its_failures_are_visible(procs: Processes, tmp_path: Path) -> None:
    _smtp, smtp_at, http, http_at = start_sinks(procs, fail_first=2)
    journal = Journal(tmp_path / "journal.jsonl")
    _hub, hub_at = start_journal(procs, journal)
    notify = notifier(procs, hub_at, write_config(tmp_path, smtp_at, http_at), tmp_path / "state",
                      "--retry-initial-s", "0.5")  # fmt: skip
    journal.add("alarm_raised", "GS1/a/b", new=RED, value=1, agent="a", alarm_id=1)
    wait_until(lambda: titles(http), timeout_s=20, what="the delivery after two failures")
    assert titles(http) == ["[gsmon] RAISED RED GS1/a/b"]
    failed = [line for line in http.seen if line.startswith("FAILED")]
    assert failed == ["FAILED 1", "FAILED 2"]

    def hook_health() -> dict[str, Any] | None:
        line = notify.latest("HEALTH ")
        health = json.loads(line.split(" ", 1)[1]) if line else None
        return health["receivers"]["hook"] if health and health["receivers"]["hook"]["sent"] == 1 else None

    health = wait_until(hook_health, what="health after the delivery")
    assert health["failures"] == 2
    assert health["consecutive_failures"] == 0
    assert health["queued"] == 0
    assert notify.stop() == 0
    status = gsmon_cli("notify", "--status", "--state-dir", str(tmp_path / "state"),
                       "--config", str(tmp_path / "notify.toml"))  # fmt: skip
    assert status.returncode == 0, status.stderr
    saved = json.loads(status.stdout)["receivers"]["hook"]
    assert (saved["sent"], saved["failures"], saved["queued"]) == (1, 2, 0)
    assert "500" in saved["last_error"]


def test_a_hub_that_refuses_the_journal_is_said_once_and_nothing_is_sent(procs: Processes, tmp_path: Path) -> None:
    _smtp, smtp_at, http, http_at = start_sinks(procs)
    journal = Journal(tmp_path / "journal.jsonl")
    journal.add("alarm_raised", "GS1/a/b", new=RED, alarm_id=1)
    hub, hub_at = start_journal(procs, journal, "--refuse")
    notify = notifier(procs, hub_at, write_config(tmp_path, smtp_at, http_at), tmp_path / "state")
    wait_until(lambda: len(received(hub, "REQUEST")) >= 3, what="repeated journal requests")
    assert titles(http) == []
    assert notify.stop() == 0
    refusals = [line for line in notify.stderr().splitlines() if "refused the journal command" in line]
    assert len(refusals) == 1
    assert "this key may not read the journal" in refusals[0]


def test_test_flag_sends_one_message_and_bad_config_is_one_line(procs: Processes, tmp_path: Path) -> None:
    _smtp, smtp_at, http, http_at = start_sinks(procs)
    config = write_config(tmp_path, smtp_at, http_at)
    done = gsmon_cli("notify", "--test", "hook", "--config", str(config), "--state-dir", str(tmp_path / "s"))
    assert done.returncode == 0, done.stderr
    wait_until(lambda: titles(http), what="the test message")
    assert titles(http) == ["[gsmon] test notification"]
    unknown = gsmon_cli("notify", "--test", "nobody", "--config", str(config), "--state-dir", str(tmp_path / "s"))
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "gsmon notify: no receiver 'nobody' (known: mail, hook); receivers are [[receiver]] tables or --route flags"
    ]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[route]]\nprefix = "GS1"\nmin_level = "PURPLE"\nreceivers = ["x"]\n')
    failed = gsmon_cli("notify", "--config", str(bad), "--state-dir", str(tmp_path / "s"))
    assert failed.returncode == 2
    assert len(failed.stderr.strip().splitlines()) == 1
    assert "route[0].min_level" in failed.stderr
    assert "PURPLE" in failed.stderr
    down = gsmon_cli("notify", "--route", "GS1:RED:json://127.0.0.1:9/none", "--test", "route1",
                     "--state-dir", str(tmp_path / "s"))  # fmt: skip
    assert down.returncode == 1
    assert down.stderr.startswith("gsmon notify: the test message to 'route1' failed")
