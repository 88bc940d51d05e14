"""The operator commands without a hub: parsing, formatting, and the client against a fake hub.

The fake hub (:class:`FakeHub`) answers the command contract of the session's
COORD.md (alarms, ack, unack, shelve, shelves, unshelve, journal) from plain
lists, and records every request, so each test can say what was sent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gsmon.common import alarms_cli, cli, views
from gsmon.common import protocol as proto
from gsmon.common.alarm_commands import (
    AlarmRecord,
    BadAnswerError,
    CommandRefusedError,
    JournalRecord,
    OperatorClient,
    ShelfRecord,
    iso_utc,
    parse_duration,
    parse_moment,
)
from gsmon.common.client import HubUnavailableError, NodeState
from gsmon.common.errors import UsageError
from gsmon.common.watch.adapter import read_extras
from gsmon.common.watch.commands import CommandError, HubCommands, ShelveRequest

OSLO = ZoneInfo("Europe/Oslo")
CPU_PATH = "GS1/Rack1/cpu_percent"
# 2026-12-02 12:00:00 UTC (13:00 in Oslo).
NOON_UTC = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC).timestamp()


def _result(ok: bool, message: str, result: Any) -> proto.CommandResult:
    return proto.CommandResult(
        sender="hub", epoch=1, seq=1, sent_ns=0, request_id=1, ok=ok, message=message, result=result
    )


def _alarm(alarm_id: int, path: str, state: str = "active_unacked", level: int = 30, **extra: Any) -> dict[str, Any]:
    return {
        "id": alarm_id,
        "path": path,
        "agent": path.split("/")[1].lower(),
        "state": state,
        "level": level,
        "level_str": "",
        "max_level": extra.pop("max_level", level),
        "latch": level >= 30,
        "reason": "level",
        "raised_at": NOON_UTC - 300,
        "rtn_at": None,
        "acked_by": None,
        "acked_user": None,
        "acked_at": None,
        "ack_comment": None,
        "shelf_id": None,
        "value": 97.5,
        **extra,
    }


@dataclass
class FakeHub:
    """The hub's command contract over lists; ``refuse`` maps a command to (message, reason)."""

    alarms: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    shelves: list[dict[str, Any]] = field(default_factory=list)
    refuse: dict[str, tuple[str, str]] = field(default_factory=dict)
    known: set[str] = field(
        default_factory=lambda: {"alarms", "ack", "unack", "clear", "shelve", "shelves", "unshelve", "journal"}
    )
    strict_args: bool = False  # refuse unknown args as bad-args (a hub without `seen`)
    down: bool = False
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def send(self, command: str, args: dict[str, Any]) -> proto.CommandResult:
        if self.down:
            raise HubUnavailableError("no answer from the hub at tcp://hub:7763 within 5 s")
        self.sent.append((command, args))
        if command not in self.known:
            return _result(False, f"unknown command {command!r}", {"reason": "unknown-command"})
        if command in self.refuse:
            message, reason = self.refuse[command]
            return _result(False, message, {"reason": reason})
        return getattr(self, "_" + command)(args)

    def _alarms(self, args: dict[str, Any]) -> proto.CommandResult:
        prefix, states = args["prefix"], set(args.get("states") or ())
        chosen = [
            alarm
            for alarm in self.alarms
            if (not prefix or alarm["path"] == prefix or alarm["path"].startswith(prefix.rstrip("/") + "/"))
            and (not states or alarm["state"] in states)
        ]
        return _result(True, f"{len(chosen)} alarms", {"alarms": chosen})

    def _ack(self, args: dict[str, Any], new_state: str = "active_acked") -> proto.CommandResult:
        if self.strict_args and set(args) - {"ids", "comment"}:
            return _result(False, f"unknown argument {sorted(set(args) - {'ids', 'comment'})}", {"reason": "bad-args"})
        acked, skipped = [], []
        for alarm_id in args["ids"]:
            alarm = next((a for a in self.alarms if a["id"] == alarm_id), None)
            if alarm is None:
                skipped.append({"id": alarm_id, "reason": "unknown"})
            elif alarm["state"] == new_state:
                skipped.append({"id": alarm_id, "reason": f"already {new_state}"})
            else:
                alarm["state"] = new_state
                acked.append(alarm_id)
        return _result(True, f"done {acked}", {"acked": acked, "skipped": skipped})

    def _unack(self, args: dict[str, Any]) -> proto.CommandResult:
        return self._ack(args, "active_unacked")

    def _clear(self, args: dict[str, Any]) -> proto.CommandResult:
        reply = self._ack(args, "cleared")
        result = reply.result
        return _result(True, reply.message, {"cleared": result["acked"], "skipped": result["skipped"]})

    def _shelve(self, args: dict[str, Any]) -> proto.CommandResult:
        ends = args.get("ends_at") or (NOON_UTC + args["duration_s"] if "duration_s" in args else None)
        shelf = {
            "id": 40 + len(self.shelves),
            "prefix": args["prefix"],
            "mode": args["mode"],
            "starts_at": args.get("starts_at", NOON_UTC),
            "ends_at": ends,
            "comment": args["comment"],
            "by": "ops",
            "user": "alice",
            "created_at": NOON_UTC,
            "ended_at": None,
            "end_reason": None,
        }
        self.shelves.append(shelf)
        return _result(True, f"shelf {shelf['id']}", {"shelf": shelf})

    def _shelves(self, args: dict[str, Any]) -> proto.CommandResult:
        return _result(True, "", {"shelves": self.shelves})

    def _unshelve(self, args: dict[str, Any]) -> proto.CommandResult:
        return _result(True, f"shelf {args['id']} ended", None)

    def _journal(self, args: dict[str, Any]) -> proto.CommandResult:
        prefix = args.get("prefix", "")
        chosen = [
            entry
            for entry in self.journal
            if entry["id"] > args["after_id"] and (not prefix or entry["path"].startswith(prefix))
        ][: args.get("limit", 1000)]
        last = chosen[-1]["id"] if chosen else args["after_id"]
        return _result(True, "", {"entries": chosen, "last_id": last})


def _entry(entry_id: int, hub_time: float, path: str = "GS1/Rack1/cpu_percent", **extra: Any) -> dict[str, Any]:
    return {
        "id": entry_id,
        "time": hub_time - 0.2,
        "hub_time": hub_time,
        "path": path,
        "kind": "level",
        "old": 10,
        "new": 30,
        "value": 97.5,
        "agent": "rack1",
        "user": None,
        "by": None,
        "comment": None,
        "alarm_id": None,
        "replayed": False,
        **extra,
    }


# -- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("1d", 86400), ("45s", 45), ("3600", 3600)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2x", "h", "-1h", "0", "1h 2", "inf"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected_utc"),
    [
        ("18:00", "2026-12-02T17:00:00.000Z"),  # Oslo local time, later today
        ("12:30", "2026-12-03T11:30:00.000Z"),  # past already in Oslo (13:00): tomorrow
        ("18:00Z", "2026-12-02T18:00:00.000Z"),
        ("18:00 UTC", "2026-12-02T18:00:00.000Z"),
        ("11:00Z", "2026-12-03T11:00:00.000Z"),  # 11:00 UTC has passed: tomorrow
        ("18:00+02:00", "2026-12-02T16:00:00.000Z"),
        ("18:00 -0500", "2026-12-02T23:00:00.000Z"),
        ("18:00 America/New_York", "2026-12-02T23:00:00.000Z"),
        ("2026-12-02T18:00", "2026-12-02T17:00:00.000Z"),  # no zone: the local one
        ("2026-12-02T18:00Z", "2026-12-02T18:00:00.000Z"),
        ("2026-12-02 18:00+01:00", "2026-12-02T17:00:00.000Z"),
        ("2026-12-02T18:00 Asia/Tokyo", "2026-12-02T09:00:00.000Z"),
        ("2026-12-05", "2026-12-04T23:00:00.000Z"),  # a date: its local midnight
    ],
)
def test_future_times_with_zones(text: str, expected_utc: str) -> None:
    assert iso_utc(parse_moment(text, NOON_UTC, direction="future", zone=OSLO)) == expected_utc


@pytest.mark.parametrize(
    ("text", "expected_utc"),
    [
        ("1h", "2026-12-02T11:00:00.000Z"),
        ("2d", "2026-11-30T12:00:00.000Z"),
        ("08:00", "2026-12-02T07:00:00.000Z"),  # earlier today in Oslo
        ("18:00", "2026-12-01T17:00:00.000Z"),  # still to come today: yesterday's
        ("18:00Z", "2026-12-01T18:00:00.000Z"),
        ("2026-12-01T08:00:00Z", "2026-12-01T08:00:00.000Z"),
    ],
)
def test_past_times_and_durations_back(text: str, expected_utc: str) -> None:
    assert iso_utc(parse_moment(text, NOON_UTC, direction="past", zone=OSLO)) == expected_utc


def test_a_time_in_a_zone_that_changes_its_offset_uses_that_day_s_offset() -> None:
    summer_noon = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC).timestamp()
    assert iso_utc(parse_moment("18:00 Europe/Oslo", summer_noon, direction="future")) == "2026-07-01T16:00:00.000Z"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("25:00", "time of day"),
        ("18:61", "time of day"),
        ("18:00 Mars/Olympus", "unknown time zone"),
        ("18:00+25:00", "UTC offset"),
        ("tomorrow", "expected a time"),
        ("2026-13-01T10:00", "expected a time"),
        ("2026-12-02T18:00+01:00 Europe/Oslo", "two zones"),
        ("", "got nothing"),
    ],
)
def test_bad_times_get_one_line_saying_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_moment(text, NOON_UTC, direction="future", zone=OSLO)
    assert "\n" not in str(caught.value)


def _shelve_args(**given: Any) -> argparse.Namespace:
    values: dict[str, Any] = {"for_": None, "until": None, "until_normal": False, "from_": None, "to": None}
    values.update(given)
    return argparse.Namespace(**values)


def test_shelve_flags_become_the_contract_s_arguments() -> None:
    request = alarms_cli.shelve_request
    assert request(_shelve_args(for_="2h"), NOON_UTC) == {"mode": "timed", "duration_s": 7200.0}
    until = request(_shelve_args(until="2026-12-02T18:00Z"), NOON_UTC)
    assert until == {"mode": "timed", "ends_at": NOON_UTC + 6 * 3600}
    assert request(_shelve_args(until_normal=True), NOON_UTC) == {"mode": "until_normal"}
    assert request(_shelve_args(until_normal=True, for_="4h"), NOON_UTC) == {
        "mode": "until_normal",
        "duration_s": 14400.0,
    }
    window = request(_shelve_args(from_="2026-12-02T14:00Z", to="2026-12-02T16:00Z"), NOON_UTC)
    assert window == {"mode": "scheduled", "starts_at": NOON_UTC + 7200, "ends_at": NOON_UTC + 4 * 3600}
    for_window = request(_shelve_args(from_="2026-12-02T14:00Z", for_="30m"), NOON_UTC)
    assert for_window["ends_at"] - for_window["starts_at"] == 1800


def test_a_night_window_ends_the_next_morning() -> None:
    window = alarms_cli.shelve_request(_shelve_args(from_="22:00Z", to="02:00Z"), NOON_UTC)
    assert (iso_utc(window["starts_at"]), iso_utc(window["ends_at"])) == (
        "2026-12-02T22:00:00.000Z",
        "2026-12-03T02:00:00.000Z",
    )


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({}, "say how long"),
        ({"for_": "2h", "until": "18:00"}, "not both"),
        ({"to": "18:00"}, "--to needs --from"),
        ({"from_": "18:00"}, "one end"),
        ({"from_": "18:00", "until_normal": True}, "scheduled window"),
        ({"until_normal": True, "for_": "1h", "until": "18:00"}, "one cap"),
        ({"for_": "soon"}, "--for: expected a duration"),
        ({"until": "half past"}, "--until: expected a time"),
    ],
)
def test_bad_shelve_flags_are_usage_errors(given: dict[str, Any], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        alarms_cli.shelve_request(_shelve_args(**given), NOON_UTC)


def test_log_since_defaults_to_a_day_and_all_means_everything() -> None:
    assert alarms_cli.log_since(None, NOON_UTC) == NOON_UTC - 86400
    assert alarms_cli.log_since("all", NOON_UTC) is None
    assert alarms_cli.log_since("30m", NOON_UTC) == NOON_UTC - 1800


# -- records and formatting -----------------------------------------------------------------------


def test_alarm_json_has_issue_13_fields_with_iso_utc_times() -> None:
    wire = _alarm(12, "GS1/Rack1/cpu_percent", "active_acked", acked_by="ops", acked_user="alice")
    wire.update(acked_at=NOON_UTC - 60.5, ack_comment="on it", shelf_id=7, raised_at=NOON_UTC - 300.123)
    record = AlarmRecord.from_wire(wire)
    data = record.to_json()
    issue_fields = [
        "id", "path", "agent", "reason", "state", "level", "max_level", "latch", "raised_at", "rtn_at",
        "acked", "acked_by", "acked_at", "ack_comment", "shelved", "shelf_id",
    ]  # fmt: skip
    assert list(data)[: len(issue_fields)] == issue_fields
    assert data["raised_at"] == "2026-12-02T11:54:59.877Z"
    assert data["acked_at"] == "2026-12-02T11:58:59.500Z"
    assert data["rtn_at"] is None
    assert (data["acked"], data["shelved"], data["shelf_id"]) == (True, True, 7)
    # The person who acked (issue 16: the end user a bridge forwarded), and beside it the key it came through.
    assert (data["acked_by"], data["acked_user"], data["acked_key"]) == ("alice", "alice", "ops")
    keyed_only = AlarmRecord.from_wire(_alarm(13, "GS1/x", "active_acked", acked_by="ops")).to_json()
    assert (keyed_only["acked_by"], keyed_only["acked_key"]) == ("ops", "ops")  # no user forwarded: the key
    assert (data["level"], data["level_str"], data["value"]) == (30, "RED", 97.5)
    json.dumps(data, allow_nan=False)
    assert record.who_acked == "alice (ops)"


def test_unacked_and_cleared_alarms_read_right() -> None:
    assert not AlarmRecord.from_wire(_alarm(1, "A/b")).acked
    cleared = AlarmRecord.from_wire(_alarm(2, "A/b", "cleared", acked_at=NOON_UTC))
    assert cleared.acked
    assert AlarmRecord.from_wire(_alarm(3, "A/b", "rtn_unacked")).unacked


@pytest.mark.parametrize(
    "wire",
    [
        "not a map",
        {"path": "A/b", "state": "active_unacked", "level": 30},
        {"id": 1, "path": "A/b", "state": "exploded", "level": 30},
        {"id": True, "path": "A/b", "state": "cleared", "level": 30},
    ],
)
def test_an_alarm_of_another_shape_is_a_bad_answer(wire: Any) -> None:
    with pytest.raises(BadAnswerError):
        AlarmRecord.from_wire(wire)


def test_shelf_and_journal_json_fields() -> None:
    args = {"prefix": "GS1/Ant2", "mode": "timed", "comment": "x", "duration_s": 60.0}
    shelf = ShelfRecord.from_wire(FakeHub()._shelve(args).result["shelf"])
    data = shelf.to_json()
    assert list(data)[:7] == ["id", "prefix", "mode", "comment", "by", "created_at", "ends_at"]
    assert (data["created_at"], data["ends_at"]) == ("2026-12-02T12:00:00.000Z", "2026-12-02T12:01:00.000Z")
    entry = JournalRecord.from_wire(_entry(5, NOON_UTC, value=float("nan")))
    data = entry.to_json()
    expected = ["time", "path", "kind", "old", "new", "value", "agent", "user", "comment", "alarm_id"]
    assert list(data)[:10] == expected
    assert data["time"] == "2026-12-02T11:59:59.800Z"
    assert (data["id"], data["hub_time"], data["value"]) == (5, "2026-12-02T12:00:00.000Z", "NaN")
    json.dumps(data, allow_nan=False)


def test_text_views_use_words_units_and_local_times() -> None:
    alarms = [
        AlarmRecord.from_wire(_alarm(3, "GS1/Rack1/mem_used_bytes", "active_acked", level=20, value=3 * 2**30)),
        AlarmRecord.from_wire(_alarm(4, "GS1/Rack1/cpu_percent", max_level=100)),
    ]
    lines = alarms_cli.alarm_lines(alarms, NOON_UTC, OSLO)
    assert lines[0].split() == ["ID", "STATE", "LEVEL", "RAISED", "PATH", "VALUE", "NOTE"]
    assert lines[1].startswith("4 ")
    assert "UNACKED" in lines[1]
    assert "RED (max CRITICAL)" in lines[1]
    assert "97.5%" in lines[1]
    assert "2026-12-02 12:55:00 CET (5m 0s ago)" in lines[1]
    assert "3.00 GiB" in lines[2]
    assert "acked" in lines[2]
    line = alarms_cli.journal_line(
        JournalRecord.from_wire(_entry(9, NOON_UTC, comment="fan\nreplaced", user="bob")), OSLO
    )
    assert line.startswith("2026-12-02 12:59:59.800 CET")
    assert "GREEN -> RED" in line
    assert "value 97.5%" in line
    assert "by bob" in line
    assert "fan\\nreplaced" in line
    assert alarms_cli.format_when(NOON_UTC + 7200, NOON_UTC, OSLO) == "2026-12-02 15:00:00 CET (in 2h 0m)"


def test_a_sites_last_known_alarm_is_marked_in_the_table_after_the_current_ones_and_kept_in_json() -> None:
    # (1.3) At a central hub: a site it could not ask, its alarm as the centre last heard of it at 11:50 UTC.
    wire = _alarm(9, "GS1/Rack1/disk_percent", level=100, last_known=True, as_of=NOON_UTC - 600)
    last_known = AlarmRecord.from_wire(wire)
    current = AlarmRecord.from_wire(_alarm(4, "GS2/Rack1/cpu_percent", "active_acked", level=20))
    lines = alarms_cli.alarm_lines([last_known, current], NOON_UTC, OSLO)
    assert lines[1].startswith("4 ")  # the current one first, though the site's is worse and unacked
    assert lines[2].split()[:5] == ["9", "last", "known", "12:50:", "UNACKED"]
    assert "last known" not in lines[1]
    assert last_known.to_json()["last_known"] is True
    assert last_known.to_json()["as_of"] == "2026-12-02T11:50:00.000Z"
    assert "last_known" not in current.to_json()
    assert "as_of" not in current.to_json()
    # as_of without last_known means nothing: read as a current alarm.
    assert not AlarmRecord.from_wire(_alarm(1, "A/b", as_of=NOON_UTC)).last_known


# -- the client against the fake hub --------------------------------------------------------------


def test_a_refusal_carries_the_hub_s_line_and_reason() -> None:
    hub = FakeHub(refuse={"ack": ("ack needs an operator's key; 'viewer1' is a viewer", "forbidden")})
    with pytest.raises(CommandRefusedError) as caught:
        OperatorClient(hub.send).ack([1], None)
    assert caught.value.reason == "forbidden"
    assert str(caught.value) == "the hub refused: ack needs an operator's key; 'viewer1' is a viewer"


def test_ack_sends_the_seen_levels_and_asks_again_without_them_on_bad_args() -> None:
    hub = FakeHub(alarms=[_alarm(1, "A/x", max_level=30)], strict_args=True)
    outcome = OperatorClient(hub.send).ack([1], "looking", seen={1: 30})
    assert outcome.done == (1,)
    assert [args for _, args in hub.sent] == [
        {"ids": [1], "seen": {"1": 30}, "comment": "looking"},
        {"ids": [1], "comment": "looking"},
    ]


def test_an_answer_without_the_contract_s_lists_is_a_bad_answer() -> None:
    def send(command: str, args: dict[str, Any]) -> proto.CommandResult:
        return _result(True, "ok", {"something": "else"})

    client = OperatorClient(send)
    for call in (lambda: client.alarms(""), lambda: client.ack([1], None), lambda: client.journal(0)):
        with pytest.raises(BadAnswerError):
            call()


def test_the_first_cursor_since_a_time_is_found_by_probes() -> None:
    # 1,000 entries, one a second, ids with gaps (pruned rows): the search must land exactly.
    hub = FakeHub(journal=[_entry(3 * i + 7, NOON_UTC - 1000 + i) for i in range(1000)])
    client = OperatorClient(hub.send)
    for back_s in (0.5, 1, 17, 500, 999, 1000, 5000):
        since = NOON_UTC - back_s
        cursor = client.first_cursor_since(since)
        after = [e for e in hub.journal if e["id"] > cursor]
        expected = [e for e in hub.journal if e["hub_time"] >= since]
        assert after == expected, back_s
    hub.sent.clear()
    client.first_cursor_since(NOON_UTC - 100)
    assert len(hub.sent) < 40  # log-many probes, not a walk of the journal
    assert client.first_cursor_since(NOON_UTC + 10) >= hub.journal[-1]["id"]
    assert OperatorClient(FakeHub().send).first_cursor_since(NOON_UTC) == 0


def test_read_journal_pages_through_by_cursor() -> None:
    hub = FakeHub(journal=[_entry(i, NOON_UTC + i) for i in range(1, 1201)])
    entries = list(OperatorClient(hub.send).read_journal(100))
    assert [entry.id for entry in entries] == list(range(101, 1201))
    # Until an empty page: a hub may cap a page below the limit asked for, so a short page is not the end.
    assert [args["after_id"] for command, args in hub.sent] == [100, 600, 1100, 1200]


def test_the_role_comes_from_whoami_else_from_a_probe_that_changes_nothing() -> None:
    hub = FakeHub(known=FakeHub().known | {"whoami"})
    hub._whoami = lambda args: _result(True, "", {"role": "admin"})  # type: ignore[attr-defined]
    assert OperatorClient(hub.send).role() == "admin"
    plain = FakeHub()
    assert OperatorClient(plain.send).role() == "operator"
    assert plain.sent[-1] == ("ack", {"ids": []})
    viewer = FakeHub(refuse={"ack": ("ack needs an operator", "forbidden")})
    assert OperatorClient(viewer.send).role() == "viewer"


# -- the commands through gsmon's own entry point --------------------------------------------------


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    hub = FakeHub()
    monkeypatch.setattr(alarms_cli, "hub_sender", lambda *args, **kwargs: hub.send)
    monkeypatch.setenv("GSMON_HUB", "tcp://127.0.0.1:7763")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent-gsmon-test")
    return hub


def test_gsmon_alarms_lists_open_ones_and_json_is_exact(fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    fake_hub.alarms = [_alarm(1, "GS1/Rack1/cpu_percent"), _alarm(2, "GS2/Rack1/cpu_percent", "cleared")]
    assert cli.main(["alarms", "GS1"]) == 0
    out = capsys.readouterr().out
    assert "GS1/Rack1/cpu_percent" in out
    assert "GS2" not in out
    assert fake_hub.sent[-1] == (
        "alarms",
        {"prefix": "GS1", "states": ["active_unacked", "active_acked", "rtn_unacked"]},
    )
    assert cli.main(["alarms", "--all", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [alarm["id"] for alarm in data] == [1, 2]
    assert data[0]["raised_at"] == "2026-12-02T11:55:00.000Z"


def test_gsmon_ack_prefix_sends_exactly_the_listed_ids(fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    fake_hub.alarms = [
        _alarm(1, "GS1/Rack1/cpu_percent"),
        _alarm(2, "GS1/Rack1/disk_percent", "active_acked"),
        _alarm(3, "GS1/Rack10/cpu_percent"),
        _alarm(4, "GS1/Rack1/temp_celsius", "rtn_unacked", max_level=50),
    ]
    assert cli.main(["ack", "GS1/Rack1", "-m", "on it", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"acked": [1, 4], "skipped": [], "listed": [1, 4]}
    assert fake_hub.sent[-1] == ("ack", {"ids": [1, 4], "seen": {"1": 30, "4": 50}, "comment": "on it"})
    assert cli.main(["ack", "GS1/Rack1"]) == 0
    assert "nothing to acknowledge" in capsys.readouterr().out
    # (1.3) A site's last-known alarm (its central hub could not reach it) is listed, never acked.
    fake_hub.alarms.append(_alarm(5, "GS1/Rack1/fan_rpm", last_known=True, as_of=NOON_UTC))
    assert cli.main(["ack", "GS1/Rack1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"acked": [], "skipped": [], "listed": []}


def test_gsmon_ack_ids_and_unack_report_skips(fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    fake_hub.alarms = [_alarm(1, "A/x"), _alarm(2, "A/y", "active_acked")]
    assert cli.main(["ack", "--id", "1", "2", "--id", "9"]) == 0
    out = capsys.readouterr().out
    assert "acknowledged 1 of 3 alarm: 1" in out
    assert "skipped 2: already active_acked" in out
    assert "skipped 9: unknown" in out
    assert cli.main(["unack", "1", "-m", "not fixed"]) == 0
    assert fake_hub.sent[-1] == ("unack", {"ids": [1], "comment": "not fixed"})


def test_refusals_exit_1_with_the_hub_s_reason(fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    fake_hub.refuse["shelve"] = ("operators may shelve for at most 1d 0h 0m (asked: 2d 0h 0m)", "bad-args")
    assert cli.main(["shelve", "GS1/Ant2", "--for", "2d", "-m", "maintenance"]) == 1
    err = capsys.readouterr().err
    assert err == "gsmon shelve: the hub refused: operators may shelve for at most 1d 0h 0m (asked: 2d 0h 0m)\n"
    fake_hub.down = True
    assert cli.main(["alarms"]) == 1
    assert capsys.readouterr().err.startswith("gsmon alarms: no answer from the hub")


def test_gsmon_clear_by_ids_json_and_exit_1_when_refused_or_not_all_cleared(
    fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_hub.alarms = [_alarm(1, "A/x"), _alarm(2, "A/y", "rtn_unacked"), _alarm(3, "A/z", "cleared")]
    assert cli.main(["clear", "1", "2", "-m", "sensor replaced"]) == 0
    assert fake_hub.sent[-1] == ("clear", {"ids": [1, 2], "comment": "sensor replaced"})
    assert capsys.readouterr().out == "cleared 2 of 2 alarms: 1, 2\n"
    # An id that is not cleared (already cleared, unknown) is said on stderr, and the status is 1.
    assert cli.main(["clear", "3", "9", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "cleared": [],
        "skipped": [{"id": 3, "reason": "already cleared"}, {"id": 9, "reason": "unknown"}],
    }
    assert captured.err.splitlines() == [
        "gsmon clear: alarm 3 not cleared: already cleared",
        "gsmon clear: alarm 9 not cleared: unknown",
    ]
    # Not an admin: the hub refuses, one line, exit 1, nothing on stdout (with --json too).
    fake_hub.refuse["clear"] = ("clear alarms needs the admin role; this key is an operator", "forbidden")
    assert cli.main(["clear", "1", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "gsmon clear: the hub refused: clear alarms needs the admin role; this key is an operator\n"
    )


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["shelve", "GS1/Ant2", "--for", "2h"], "a comment is required"),
        (["shelve", "GS1/Ant2", "--for", "2h", "-m", "x" * 501], "at most 500 characters"),
        (["shelve", "", "--for", "2h", "-m", "x"], "not the whole tree"),
        (["shelve", "GS1//Ant2", "--for", "2h", "-m", "x"], "invalid prefix"),
        (["ack"], "say what to acknowledge"),
        (["clear", "1", "-m", "x" * 501], "at most 500 characters"),
        (["log", "--limit", "0"], "--limit"),
        (["log", "--since", "last tuesday"], "--since"),
        (["alarms", "--timeout-s", "0"], "--timeout-s"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    fake_hub: FakeHub, capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert problem in err
    assert err.count("\n") == 1
    assert fake_hub.sent == []


def test_gsmon_shelve_shelves_unshelve(fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["shelve", "GS1/Ant2/", "--until-normal", "--for", "4h", "-m", "new LNA", "--json"]) == 0
    shelf = json.loads(capsys.readouterr().out)
    assert fake_hub.sent[-1] == (
        "shelve",
        {"prefix": "GS1/Ant2", "mode": "until_normal", "comment": "new LNA", "duration_s": 14400.0},
    )
    assert (shelf["id"], shelf["mode"], shelf["comment"]) == (40, "until_normal", "new LNA")
    assert cli.main(["shelves"]) == 0
    out = capsys.readouterr().out
    assert "GS1/Ant2" in out
    assert "until back to normal" in out
    assert "alice (ops)" in out
    assert cli.main(["unshelve", "40"]) == 0
    assert capsys.readouterr().out == "shelf 40 ended\n"


def test_gsmon_log_since_prints_from_that_time(
    fake_hub: FakeHub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = 1_800_000_000.0
    monkeypatch.setattr(alarms_cli.time, "time", lambda: now)
    fake_hub.journal = [_entry(i, now - 7200 + 60 * i) for i in range(1, 121)]
    assert cli.main(["log", "--since", "30m", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == list(range(90, 121))
    assert cli.main(["log", "--since", "all", "--limit", "5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5


def test_follow_prints_every_entry_once_and_survives_a_lost_hub(capsys: pytest.CaptureFixture[str]) -> None:
    hub = FakeHub(journal=[_entry(1, NOON_UTC), _entry(2, NOON_UTC + 1)])
    client = OperatorClient(hub.send)
    script = iter(
        [
            lambda: hub.journal.append(_entry(3, NOON_UTC + 2)),
            lambda: setattr(hub, "down", True),
            lambda: None,
            lambda: (setattr(hub, "down", False), hub.journal.append(_entry(5, NOON_UTC + 3))),
            lambda: None,
        ]
    )

    def sleep(seconds: float) -> None:
        next(script, lambda: None)()

    cursor = alarms_cli.follow(client, "", None, True, "gsmon log", sleep=sleep, rounds=6)
    captured = capsys.readouterr()
    assert [json.loads(line)["id"] for line in captured.out.splitlines()] == [1, 2, 3, 5]
    assert cursor == 5
    assert captured.err.count("no answer from the hub") == 1
    assert "answers again" in captured.err


# -- the terminal view's Commands -----------------------------------------------------------------


def test_hub_commands_send_the_view_s_requests() -> None:
    hub = FakeHub(alarms=[_alarm(1, "GS1/A/x"), _alarm(2, "GS1/A/y", "active_acked")])
    commands = HubCommands(OperatorClient(hub.send), keyed=False)
    assert commands.role == "admin"
    assert commands.role_known
    assert commands.ack([1], "on it").acked_ids == (1,)
    assert commands.unack([2], "").acked_ids == (2,)
    assert hub.sent[-1] == ("unack", {"ids": [2]})
    shelf = commands.shelve(ShelveRequest("GS1/A/", "timed", "swap", duration_s=3600.0))
    assert (shelf.prefix, shelf.ends_at) == ("GS1/A", NOON_UTC + 3600)
    assert [alarm.id for alarm in commands.alarms("GS1")] == [1, 2]
    hub.journal = [_entry(i, NOON_UTC + i) for i in range(1, 30)]
    assert [entry.id for entry in commands.journal("", NOON_UTC + 20)] == list(range(20, 30))


def test_hub_commands_turn_every_failure_into_one_line() -> None:
    hub = FakeHub(refuse={"ack": ("ack needs an operator's key", "forbidden")})
    commands = HubCommands(OperatorClient(hub.send), keyed=True)
    with pytest.raises(CommandError, match=r"^the hub refused to acknowledge: ack needs an operator.s key$"):
        commands.ack([1], "x")
    hub.down = True
    with pytest.raises(CommandError, match="no answer from the hub"):
        commands.alarms("")
    assert not commands.learn_role()
    assert commands.role == "viewer"
    hub.down = False
    assert commands.learn_role()
    assert commands.role == "viewer"


# -- the NODE keys of the operator layer reach the subscriber's nodes -----------------------------


def _payload(**extra: Any) -> dict[str, Any]:
    plain = {
        "v": 1, "epoch": 5, "seq": 9, "kind": "point", "alert": 30, "alertstr": "RED", "stale": False,
        "value": 97.5, "agent": "rack1", "polled_at": NOON_UTC, "received_at": NOON_UTC + 0.1, "dt": 1.0,
    }  # fmt: skip
    return {**plain, **extra}


@pytest.mark.parametrize("fast", [True, False])
def test_operator_keys_reach_node_state(fast: bool) -> None:
    alarm = {"id": 7, "state": "active_acked", "level": 30, "max_level": 30, "acked_by": "ops"}
    payload = _payload(since=NOON_UTC - 60, alarm=alarm, shelf_id=None, raw_alert=20)
    if not fast:
        payload["dt"] = 1  # an int where the fast path wants a float: the checked path
    update = proto.decode_node_payload(CPU_PATH, payload)
    assert update.operator == {"since": NOON_UTC - 60, "alarm": alarm, "shelf_id": None, "raw_alert": 20}
    state = NodeState.from_update(update)
    assert (state.since, state.alarm, state.raw_alert, state.shelf_id) == (NOON_UTC - 60, alarm, 20, None)
    # The hub leaves the counts out at 0: a node with since (the alarm layer's) reads them as 0, not "not sent".
    assert (state.attention, state.unacked_below, state.shelved_below) == (0, 0, 0)
    extras = read_extras(state)
    assert extras.alarm is not None
    assert (extras.alarm.id, extras.alarm.state, extras.attention) == (7, "active_acked", 0)


def test_debounce_keys_alone_leave_attention_unjudged() -> None:
    """Protocol, NODE attention: without ``since`` (a hub without the alarm layer relaying the debounce keys)
    an absent attention is not 0 but not judged, and views fall back to the node's level."""
    state = NodeState.from_update(proto.decode_node_payload(CPU_PATH, _payload(raw_alert=30, pending=None)))
    assert (state.raw_alert, state.attention, state.unacked_below, state.shelved_below) == (30, None, None, None)
    assert read_extras(state).attention is None
    # gsmon get --json shows the debounce keys, and no alarm-layer keys the hub did not judge.
    assert views._operator_json(state) == {"raw_alert": 30, "pending": None, "flapping": None}


def test_a_plain_node_has_no_operator_fields() -> None:
    update = proto.decode_node_payload(CPU_PATH, _payload())
    assert update.operator is None
    state = NodeState.from_update(update)
    assert (state.attention, state.alarm, state.since) == (None, None, None)
    assert not read_extras(state).known
    legacy = proto.decode_node_payload(CPU_PATH, _payload(reported_alert=30, liveness_unknown=True))
    assert legacy.operator is None


def test_an_agent_silent_alarm_whose_agent_is_back_reads_as_no_level_with_its_worst() -> None:
    # Code 0 is "no level": the alarm's own level once the agent is heard again; never a bare "0".
    back = _alarm(2, "GS1/vm", "rtn_unacked", level=0, max_level=50, reason="agent silent", value=None)
    cells = alarms_cli.alarm_cells(AlarmRecord.from_wire({**back, "rtn_at": NOON_UTC - 60}), NOON_UTC, OSLO)
    assert dict(zip(alarms_cli.ALARM_COLUMNS, cells, strict=True)) == {
        "ID": "2",
        "STATE": "back, unacked",
        "LEVEL": "- (max STALE)",
        "RAISED": "2026-12-02 12:55:00 CET (5m 0s ago)",
        "PATH": "GS1/vm",
        "VALUE": "",
        "NOTE": "agent silent; back to normal 2026-12-02 12:59:00 CET (1m 0s ago)",
    }
