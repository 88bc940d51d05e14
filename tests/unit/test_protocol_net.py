"""Protocol additions of issues 10.2 and 11.6: scope heartbeat topics, INFO heartbeat_topic, NOTICE."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsmon.common import protocol as proto

NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"), min_size=1, max_size=20)


@given(NAMES, NAMES)
def test_no_scope_heartbeat_topic_is_a_byte_prefix_of_another(first: str, second: str) -> None:
    one, other = proto.scope_heartbeat_topic(first), proto.scope_heartbeat_topic(second)
    assert proto.is_heartbeat_topic(one)
    if first != second:
        assert not other.startswith(one)
    assert not one.startswith(proto.HUB_HEARTBEAT_TOPIC)
    assert not proto.HUB_HEARTBEAT_TOPIC.startswith(one)


def test_info_carries_the_heartbeat_topic_and_old_infos_still_decode() -> None:
    head = {"sender": "hub", "epoch": 1, "seq": 2, "sent_ns": 3}
    endpoints = {"agents": "tcp://a:1", "subscribers": "tcp://a:2", "query": "tcp://a:3"}
    topic = proto.scope_heartbeat_topic("lim")
    info = proto.Info(**head, request_id=4, endpoints=endpoints, heartbeat_s=1.0, version="x", heartbeat_topic=topic)
    assert proto.decode(proto.encode(info)) == info
    old = proto.Info(**head, request_id=4, endpoints=endpoints, heartbeat_s=1.0, version="x")
    assert proto.decode(proto.encode(old)).heartbeat_topic is None  # type: ignore[union-attr]


def test_a_heartbeat_on_a_scope_topic_decodes_and_says_whether_it_is_complete() -> None:
    topic = proto.scope_heartbeat_topic("lim")
    for complete in (True, False):
        beat = proto.HubHeartbeat(1, 2, 1.0, 3.0, {"GS1/A/": 4}, complete=complete)
        frames = proto.encode_hub_heartbeat(beat, topic)
        assert frames[0] == topic
        assert proto.decode_hub_message(*frames) == beat


@pytest.mark.parametrize("reason", ["unauthorised: mount X", "é" * 150, "x" * 500])
def test_a_notice_names_its_agent_and_carries_at_most_200_bytes_of_reason(reason: str) -> None:
    topic = proto.notice_topic("ant1", reason)
    heard = proto.parse_notice("ant1", b"\x01" + topic)
    assert heard is not None
    assert len(heard.encode()) <= proto.MAX_NOTICE_REASON_BYTES
    assert reason.startswith(heard)
    assert proto.parse_notice("ant", b"\x01" + topic) is None  # another agent's (a name prefix)
    assert proto.parse_notice("ant1", b"\x00" + topic) is None  # the unsubscription
