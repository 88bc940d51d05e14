"""The operator's commands against a real hub: gsmon alarms, ack, unack, shelve, shelves, unshelve, log.

A real hub (with a state directory) and a real agent whose points read their
level from files the test writes, so each test raises and clears alarms when
it wants; every command is the real ``gsmon`` process.
"""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path
from typing import Any

import pytest
from harness import Hub, Processes, gsmon_cli, make_keys, wait_until

PREFIX = "GS1/Rack1"
CPU = f"{PREFIX}/CPU/cpu_percent"
TEMP = f"{PREFIX}/Env/temp_celsius"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Station:
    """A hub and an agent with two points whose level the test sets."""

    def __init__(self, procs: Processes, tmp_path: Path) -> None:
        self.files = {CPU: tmp_path / "cpu.json", TEMP: tmp_path / "temp.json"}
        self.set(CPU, 97.5, "RED")
        self.set(TEMP, 41.0, "GREEN")
        self.hub: Hub = procs.hub("--state-dir", str(tmp_path / "state"))
        spec = {
            "parents": {"CPU": None, "Env": None},
            "points": [
                {"name": "cpu_percent", "parent": "CPU", "file": str(self.files[CPU]), "dt": 0.1},
                {"name": "temp_celsius", "parent": "Env", "file": str(self.files[TEMP]), "dt": 0.1},
                {"name": "fan_rpm", "parent": "Env", "value": 2100, "alert": "GREEN", "dt": 0.2},
            ],
        }
        procs.agent(self.hub, "rack1", spec, mount=PREFIX)

    def set(self, path: str, value: float, level: str) -> None:
        target = self.files[path]
        scratch = target.with_suffix(".tmp")
        scratch.write_text(json.dumps([value, level]))
        scratch.replace(target)  # atomic: the agent never reads half a file

    def cli(self, *args: str) -> Any:
        """``gsmon ARGS --hub ... --json``: its JSON (one document, or JSON lines as a list)."""
        done = gsmon_cli(*args, "--hub", self.hub.query, "--json")
        assert done.returncode == 0, done.stderr
        text = done.stdout.strip()
        if args[0] == "log":
            return [json.loads(line) for line in text.splitlines()]
        return json.loads(text)

    def alarms(self, *args: str) -> dict[str, dict[str, Any]]:
        return {alarm["path"]: alarm for alarm in self.cli("alarms", PREFIX, *args)}


@pytest.fixture
def station(procs: Processes, tmp_path: Path) -> Station:
    return Station(procs, tmp_path)


def test_alarms_lists_the_red_point_and_ack_acks_only_what_was_listed(station: Station) -> None:
    alarms = wait_until(lambda: station.alarms().get(CPU) and station.alarms(), what="the RED point's alarm")
    cpu = alarms[CPU]
    assert (cpu["state"], cpu["level"], cpu["latch"], cpu["acked"], cpu["shelved"]) == (
        "active_unacked",
        30,
        True,
        False,
        False,
    )
    assert ISO_UTC.match(cpu["raised_at"])
    assert cpu["agent"] == "rack1"
    assert list(alarms) == [CPU]
    text = gsmon_cli("alarms", PREFIX, "--hub", station.hub.query)
    assert text.returncode == 0
    assert CPU in text.stdout
    assert "RED" in text.stdout
    assert "97.5%" in text.stdout

    # gsmon get --json shows the alarm on the point, and the attention it raises.
    tree = wait_until(lambda: (got := station.cli("get", PREFIX)) and got[CPU].get("alarm_id") and got)
    assert (tree[CPU]["alarm_id"], tree[CPU]["attention"], tree[PREFIX]["attention"]) == (cpu["id"], 30, 30)
    assert ISO_UTC.match(tree[CPU]["since"])
    assert tree[CPU]["alarm"]["state"] == "active_unacked"
    assert ISO_UTC.match(tree[CPU]["alarm"]["raised_at"])

    # The operator looked (the listing above); then the temperature turns RED too.
    listed_ids = [cpu["id"]]
    station.set(TEMP, 71.0, "RED")
    wait_until(lambda: TEMP in station.alarms(), what="the second alarm")
    # Acting on that listing sends its ids: the alarm raised after it is not acknowledged.
    answer = station.cli("ack", "--id", *map(str, listed_ids), "-m", "looking at the load")
    assert answer["acked"] == listed_ids
    alarms = station.alarms()
    assert alarms[CPU]["state"] == "active_acked"
    assert alarms[CPU]["ack_comment"] == "looking at the load"
    assert alarms[CPU]["acked_by"]
    assert ISO_UTC.match(alarms[CPU]["acked_at"])
    assert alarms[TEMP]["state"] == "active_unacked"

    # gsmon ack PREFIX: lists the unacked alarms (now only the temperature) and acks exactly those.
    answer = station.cli("ack", PREFIX, "-m", "fan replaced")
    assert answer["listed"] == [alarms[TEMP]["id"]]
    assert answer["acked"] == [alarms[TEMP]["id"]]
    assert station.alarms()[TEMP]["state"] == "active_acked"

    # unack: back to needing attention.
    assert station.cli("unack", str(cpu["id"]), "-m", "not fixed after all")["acked"] == [cpu["id"]]
    assert station.alarms()[CPU]["state"] == "active_unacked"
    nothing = gsmon_cli("ack", "GS1/Nowhere", "--hub", station.hub.query)
    assert nothing.returncode == 0
    assert "nothing to acknowledge" in nothing.stdout


def test_shelve_shelves_unshelve(station: Station) -> None:
    wait_until(lambda: CPU in station.alarms(), what="the RED point's alarm")
    shelf = station.cli("shelve", PREFIX, "--for", "1h", "-m", "rack maintenance")
    assert (shelf["prefix"], shelf["mode"], shelf["comment"]) == (PREFIX, "timed", "rack maintenance")
    assert ISO_UTC.match(shelf["ends_at"])
    assert ISO_UTC.match(shelf["created_at"])
    listed = station.cli("shelves")
    assert [item["id"] for item in listed] == [shelf["id"]]
    shelved = wait_until(lambda: station.alarms()[CPU]["shelved"] and station.alarms()[CPU], what="shelved alarm")
    assert shelved["shelf_id"] == shelf["id"]
    text = gsmon_cli("shelves", "--hub", station.hub.query)
    assert "rack maintenance" in text.stdout
    done = gsmon_cli("unshelve", str(shelf["id"]), "--hub", station.hub.query)
    assert done.returncode == 0, done.stderr
    assert station.cli("shelves") == []
    ended = station.cli("shelves", "--all")
    assert [(item["id"], item["end_reason"]) for item in ended] == [(shelf["id"], "unshelved")]
    assert ISO_UTC.match(ended[0]["ended_at"])
    assert not station.alarms()[CPU]["shelved"]
    again = gsmon_cli("unshelve", str(shelf["id"]), "--hub", station.hub.query)
    assert again.returncode == 1
    assert again.stderr.startswith("gsmon unshelve: the hub refused: ")
    assert again.stderr.count("\n") == 1
    missing_comment = gsmon_cli("shelve", PREFIX, "--for", "1h", "--hub", station.hub.query)
    assert missing_comment.returncode == 2
    assert "comment is required" in missing_comment.stderr


def test_log_follow_prints_each_entry_once(procs: Processes, station: Station) -> None:
    follower = procs.gsmon(
        "log-follow", "log", PREFIX, "--since", "all", "--follow", "--json", "--hub", station.hub.query
    )
    wait_until(lambda: follower.latest("{") is not None, what="the first journal entry")
    for round_number in range(3):  # three flips: each makes level entries and alarm transitions
        station.set(CPU, 12.0, "GREEN")
        wait_until(lambda: CPU not in station.alarms() or station.alarms()[CPU]["state"] != "active_unacked")
        station.set(CPU, 98.0 + round_number, "RED")
        wait_until(lambda: station.alarms().get(CPU, {}).get("state") == "active_unacked")
    one_shot = station.cli("log", PREFIX, "--since", "all")

    def followed() -> list[dict[str, Any]]:
        follower.latest("")  # takes in what the reader thread has collected
        return [json.loads(line) for line in follower.seen if line.startswith("{")]

    wait_until(lambda: len(followed()) >= len(one_shot), what="the follower to catch up")
    assert follower.stop() == 0  # SIGTERM ends it cleanly
    entries = followed()
    ids = [entry["id"] for entry in entries]
    assert len(ids) == len(set(ids))  # each entry once
    assert ids == sorted(ids)
    assert ids[: len(one_shot)] == [entry["id"] for entry in one_shot]
    kinds = {entry["kind"] for entry in entries}
    assert {"level", "alarm_raised"} <= kinds
    assert all(ISO_UTC.match(entry["time"]) for entry in entries)
    assert all(entry["path"].startswith(PREFIX) for entry in entries)


def test_log_since_a_time_and_text_lines(station: Station) -> None:
    wait_until(lambda: CPU in station.alarms(), what="the RED point's alarm")
    everything = station.cli("log", PREFIX, "--since", "all")
    assert everything
    recent = station.cli("log", PREFIX, "--since", "1s")
    assert {entry["id"] for entry in recent} <= {entry["id"] for entry in everything}
    text = gsmon_cli("log", PREFIX, "--since", "1h", "--hub", station.hub.query)
    assert text.returncode == 0
    assert "alarm_raised" in text.stdout
    assert CPU in text.stdout


def test_sigterm_during_follow_exits_zero(procs: Processes, station: Station) -> None:
    wait_until(lambda: CPU in station.alarms(), what="the RED point's alarm")
    follower = procs.gsmon("log-follow", "log", "--follow", "--hub", station.hub.query)
    line = follower.wait_for_line("20")  # a text line: the local time first (the last day's entries)
    assert "alarm_raised" in line or "level" in line
    assert follower.stop() == 0  # one SIGTERM (a second during its exit would meet Python's default handler)


def test_roles_a_viewer_reads_an_operator_acks_within_limits(procs: Processes, tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys", {"rack1": [PREFIX]}, {"viewer1": None})
    granted = gsmon_cli(
        "keys",
        "subscriber",
        "op1",
        "--role",
        "operator",
        "--hub-dir",
        str(keys.hub_dir),
        "--out",
        str(keys.root / "op1"),
    )
    assert granted.returncode == 0, granted.stderr
    hub = procs.hub("--keys-dir", str(keys.hub_dir), "--state-dir", str(tmp_path / "state"))
    spec = {
        "parents": {"CPU": None},
        "points": [{"name": "cpu_percent", "parent": "CPU", "value": 99.0, "alert": "RED", "dt": 0.2}],
    }
    procs.agent(hub, "rack1", spec, mount=PREFIX, key=keys.secret("rack1"), hub_key=keys.hub_public)

    def as_(name: str, *args: str) -> Any:
        return gsmon_cli(*args, "--hub", hub.query, "--key", str(keys.secret(name)), "--hub-key", str(keys.hub_public))

    def listed() -> list[dict[str, Any]]:
        done = as_("viewer1", "alarms", "--json")
        assert done.returncode == 0, done.stderr
        alarms: list[dict[str, Any]] = json.loads(done.stdout)
        return alarms

    alarm = wait_until(lambda: next(iter(listed()), None), what="the alarm, listed by a viewer")
    refused = as_("viewer1", "ack", "--id", str(alarm["id"]), "-m", "mine")
    assert refused.returncode == 1
    assert refused.stderr.startswith("gsmon ack: the hub refused: ")
    assert "operator" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert listed()[0]["state"] == "active_unacked"
    acked = as_("op1", "ack", PREFIX, "-m", "on it", "--json")
    assert acked.returncode == 0, acked.stderr
    assert json.loads(acked.stdout)["acked"] == [alarm["id"]]
    assert listed()[0]["acked_key"] == "op1"  # the key it came through; acked_by: the terminal's login
    assert listed()[0]["acked_by"] == (getpass.getuser() or "op1")
    too_long = as_("op1", "shelve", PREFIX, "--for", "2d", "-m", "long job")
    assert too_long.returncode == 1
    assert "the hub refused: " in too_long.stderr
    no_clear = as_("op1", "clear", str(alarm["id"]), "-m", "gone", "--json")
    assert no_clear.returncode == 1
    assert no_clear.stdout == ""
    assert no_clear.stderr.startswith("gsmon clear: the hub refused: ")
    assert "admin" in no_clear.stderr
    assert no_clear.stderr.count("\n") == 1
    assert listed()[0]["state"] == "active_acked"


def test_an_admin_clears_an_alarm_whatever_its_state(station: Station) -> None:
    """``gsmon clear`` (a hub without keys takes every caller as an admin): the alarm is cleared and journaled;
    clearing it again is said, with exit status 1."""
    cpu = wait_until(lambda: station.alarms().get(CPU), what="the RED point's alarm")
    answer = station.cli("clear", str(cpu["id"]), "-m", "sensor replaced")
    assert answer == {"cleared": [cpu["id"]], "skipped": []}
    assert CPU not in station.alarms()
    [cleared] = [a for a in station.cli("alarms", PREFIX, "--all") if a["id"] == cpu["id"]]
    assert cleared["state"] == "cleared"
    log = station.cli("log", PREFIX, "--since", "all")
    assert [e["comment"] for e in log if e["kind"] == "alarm_cleared" and e["alarm_id"] == cpu["id"]] == [
        "sensor replaced"
    ]
    again = gsmon_cli("clear", str(cpu["id"]), "--hub", station.hub.query)
    assert again.returncode == 1
    assert again.stdout == "cleared 0 of 1 alarm\n"
    assert again.stderr == f"gsmon clear: alarm {cpu['id']} not cleared: alarm {cpu['id']} is already cleared\n"
