"""A site hub's upstream link sends by the agent's own send policy (common/send_policy.py, one link): the
messages and seqs an agent's link would send, with UPSTREAM_RESULT and BYE taking the link's next seqs."""

from __future__ import annotations

from gsmon.common import protocol as proto
from gsmon.common.send_policy import SendPolicy
from gsmon.hub.alarms import AlarmBook
from gsmon.hub.state import HubSettings, HubState
from gsmon.hub.upstream import UpstreamCore, UpstreamSettings

WALL0 = 1_700_000_000.0


def _site() -> tuple[HubState, UpstreamCore]:
    state = HubState(HubSettings(alert_log_level=None), 1, now=0.0, alarms=AlarmBook())
    entries = [proto.PointEntry("cpu", 1.0, 10, "GREEN", WALL0, 1.0)]
    head = {"sender": "rack1", "epoch": 3, "seq": 1, "sent_ns": 0}
    state.apply(proto.State(**head, mount="rack1", heartbeat_s=1.0, points=entries), 0.0, WALL0)
    state.drain(WALL0)
    settings = UpstreamSettings(endpoint="tcp://c:1", mount="GS1", heartbeat_interval_s=1.0, state_interval_s=30.0)
    return state, UpstreamCore(settings, state, "site:1", epoch=9, now=0.0)


def test_the_site_link_is_the_agents_policy_with_one_link_and_one_seq_for_every_message() -> None:
    state, core = _site()
    assert isinstance(core.policy, SendPolicy)
    assert core.tick(0.05, WALL0) == []  # nobody subscribed yet, no flush due
    assert core.upstream(b"\x01") == (None, None)  # the central hub subscribed: a STATE is owed
    sent = core.tick(0.1, WALL0 + 0.1)
    assert [(type(msg), msg.seq) for msg in sent] == [(proto.State, 1)]  # a message sent: no HEARTBEAT
    assert all(msg.sender == "GS1" and msg.epoch == 9 for msg in sent)
    state_msg = sent[0]
    assert isinstance(state_msg, proto.State)
    assert (state_msg.mount, [entry.path for entry in state_msg.points]) == ("GS1", ["rack1/cpu"])
    head = {"sender": "rack1", "epoch": 3, "seq": 2, "sent_ns": 0}
    state.apply(proto.Delta(**head, points=[proto.PointEntry("cpu", 2.0, 10, "GREEN", WALL0 + 1, 1.0)]), 0.5, WALL0)
    state.drain(WALL0 + 0.5)
    sent = core.tick(0.5, WALL0 + 0.5)
    assert [(type(msg), msg.seq) for msg in sent] == [(proto.Delta, 2)]
    # The sender's resync topic books a STATE as a subscription does; another agent's does not.
    core.upstream(b"\x01" + proto.RESYNC_TOPIC_PREFIX + b"rack9")
    assert not core.policy.wants_state(0)
    core.upstream(b"\x01" + proto.RESYNC_TOPIC_PREFIX + b"GS1")
    assert core.policy.wants_state(0)
    sent = core.tick(0.6, WALL0 + 0.6)
    assert [(type(msg), msg.seq) for msg in sent] == [(proto.State, 3)]
    result = core.result(0.7, WALL0 + 0.7, route_id=5, ok=True, message="done", result={})
    assert (type(result), result.seq) == (proto.UpstreamResult, 4)
    assert core.tick(1.6, WALL0 + 1.6) == []  # 0.9 s since the last message: no HEARTBEAT yet
    [beat] = core.tick(1.8, WALL0 + 1.8)
    assert isinstance(beat, proto.Heartbeat)
    assert (beat.seq, beat.mount, beat.point_count) == (5, "GS1", 1)
    assert [(type(msg), msg.seq) for msg in core.bye(1.9, WALL0 + 1.9)] == [(proto.Bye, 6)]
