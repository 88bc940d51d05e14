"""The hub's alert log (gsmon.hub.alerts): an agent back from STALE is one line, not one per point.

Driven through a real :class:`HubState` with a fake clock (no sockets, no sleeps); ``caplog`` reads the channel.
"""

from __future__ import annotations

import logging

import pytest

from gsmon.common import protocol as proto
from gsmon.common.alerts import alertstr_for
from gsmon.hub.state import HubSettings, HubState

WALL0 = 1_700_000_000.0
GREEN, RED = 10, 30
SETTINGS = HubSettings(heartbeat_interval_s=1.0, agent_liveness=3.0, stale_factor=3.0, stale_slack_s=1.0)


class Agent:
    """One agent's messages with consecutive seqs; :meth:`restart` is a new process (a new epoch)."""

    def __init__(self, name: str, mount: str) -> None:
        self.name, self.mount, self.epoch, self.seq = name, mount, 1, -1

    def _head(self) -> dict[str, object]:
        self.seq += 1
        return {"sender": self.name, "epoch": self.epoch, "seq": self.seq, "sent_ns": 0}

    def state(self, codes: dict[str, int], polled: float) -> proto.State:
        points = [proto.PointEntry(path, 1.0, c, alertstr_for(c), WALL0 + polled, 1.0) for path, c in codes.items()]
        return proto.State(**self._head(), mount=self.mount, heartbeat_s=1.0, points=points)  # type: ignore[arg-type]

    def bye(self) -> proto.Bye:
        return proto.Bye(**self._head())  # type: ignore[arg-type]

    def restart(self) -> None:
        self.epoch, self.seq = self.epoch + 1, -1


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    records = [r for r in caplog.records if r.name == "gsmon.hub.alerts"]
    caplog.clear()
    return records


def turn(hub: HubState, msg: proto.Message, now: float) -> None:
    """One loop turn: the message applied, then the turn's changes published (drain flushes the log)."""
    hub.apply(msg, now, WALL0 + now)
    hub.drain(WALL0 + now)


def test_an_agent_restarting_is_one_line_fresh_again_not_one_per_point(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gsmon.hub.alerts")
    hub = HubState(SETTINGS, 0xFEED, now=0.0)
    rack = Agent("rack1", "GS1/Rack1")
    points = {f"p{i:03d}": GREEN for i in range(100)}
    turn(hub, rack.state(points, polled=0.0), 0.0)
    turn(hub, rack.bye(), 0.5)  # the process stops: every point STALE
    lines(caplog)
    rack.restart()
    turn(hub, rack.state(points, polled=12.3), 12.3)  # the new process's first STATE
    [record] = lines(caplog)
    assert record.getMessage() == "rack1: 100 points fresh again after 12.3 s"
    assert record.levelno == logging.WARNING  # alert_log_level, as every line of the channel
    fields = {key: getattr(record, key) for key in ("agent", "points", "quiet_s", "point", "old_alertstr")}
    assert fields == {
        "agent": "rack1",
        "points": 100,
        "quiet_s": pytest.approx(12.3),
        "point": None,
        "old_alertstr": "STALE",
    }


def test_one_point_fresh_again_keeps_its_own_line_and_a_point_back_at_red_is_said_by_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gsmon.hub.alerts")
    hub = HubState(SETTINGS, 0xFEED, now=0.0)
    ups, rack = Agent("ups", "GS1/UPS"), Agent("rack1", "GS1/Rack1")
    for agent, codes in ((ups, {"battery": GREEN}), (rack, {"temp": GREEN, "fan": GREEN, "psu": GREEN})):
        turn(hub, agent.state(codes, polled=0.0), 0.0)
        turn(hub, agent.bye(), 0.5)
        agent.restart()
    lines(caplog)
    turn(hub, ups.state({"battery": GREEN}, polled=5.0), 5.0)
    assert [r.getMessage() for r in lines(caplog)] == ['alert "GS1/UPS/battery" STALE --> GREEN (value 1.0, agent ups)']
    turn(hub, rack.state({"temp": GREEN, "fan": RED, "psu": RED}, polled=5.0), 5.0)
    # Back from the silence first (the hub's judgement), then the new process's levels: RED needs a look.
    assert sorted(r.getMessage() for r in lines(caplog)) == [
        'alert "GS1/Rack1/fan" GREEN --> RED (value 1.0, agent rack1)',
        'alert "GS1/Rack1/psu" GREEN --> RED (value 1.0, agent rack1)',
        "rack1: 3 points fresh again after 5.0 s",
    ]


def test_two_agents_back_in_one_turn_are_a_line_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gsmon.hub.alerts")
    hub = HubState(SETTINGS, 0xFEED, now=0.0)
    racks = [Agent("rack1", "GS1/Rack1"), Agent("rack2", "GS1/Rack2")]
    for rack in racks:
        hub.apply(rack.state({"a": GREEN, "b": GREEN}, polled=0.0), 0.0, WALL0)
        hub.apply(rack.bye(), 0.5, WALL0 + 0.5)
    hub.drain(WALL0 + 0.5)
    lines(caplog)
    for rack in racks:
        rack.restart()
        hub.apply(rack.state({"a": GREEN, "b": GREEN}, polled=2.0), 2.0, WALL0 + 2.0)
    assert [r.getMessage() for r in lines(caplog)] == []  # said when the turn is published
    hub.drain(WALL0 + 2.0)
    assert [r.getMessage() for r in lines(caplog)] == [
        "rack1: 2 points fresh again after 2.0 s",
        "rack2: 2 points fresh again after 2.0 s",
    ]
