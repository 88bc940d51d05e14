"""gsmon notify with real receivers: a real SMTP server (aiosmtpd) and a real HTTP webhook receiver (aiohttp).

The end-to-end tests against the real hub and agent are in test_notify_hub.py
(which uses the sinks and helpers here). The journal here comes from
journal_server_program.py, a real process serving the hub's ``journal`` command
on a real ZeroMQ ROUTER per common/protocol.py: kept for what the real hub
cannot easily be made to do (refuse the journal), and for the retry test, which
needs one journal entry written at a known moment and nothing else of a hub.
Assertions are on what the servers
received: count, order, content.
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
    smtp_at = smtp.ready()["smtp"]
    argv = [sys.executable, str(HERE / "http_sink_program.py"), "--fail-first", str(fail_first)]
    http = procs.start("http", argv)
    http_at = http.ready()["http"]
    return smtp, smtp_at, http, http_at


def start_journal(procs: Processes, journal: Journal, *extra: str) -> tuple[Process, str]:
    server = procs.start(
        "fake-hub", [sys.executable, str(HERE / "journal_server_program.py"), str(journal.path), *extra]
    )
    return server, server.ready()["query"]


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
    journal_requests = lambda: [r for r in received(hub, "REQUEST") if r["command"] == "journal"]  # noqa: E731
    wait_until(lambda: len(journal_requests()) >= 3, what="repeated journal requests")
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
