"""Health points reported by the hub's clients (report_health): no sockets, no sleeps, the time passed in."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gsmon.common import protocol as proto
from gsmon.common.allowlist import AllowList, SubscriberGrant
from gsmon.common.keys import generate_key_pair
from gsmon.hub.client_health import MAX_POINTS, ClientHealth
from gsmon.hub.queries import QueryCore
from gsmon.hub.state import HubSettings, HubState

GREEN, ORANGE, RED = 10, 20, 30
WALL0 = 1_700_000_000.0


def report(
    core: QueryCore, now: float = 0.0, key: str | None = None, allow: AllowList | None = None, **args: Any
) -> proto.CommandResult:
    msg = proto.Command(sender="c", epoch=7, seq=1, sent_ns=0, request_id=41, command="report_health", args=args)
    outcome = core.request(msg, b"conn", now, WALL0 + now, key=key, allow=allow)
    ((_, frame),) = outcome.replies
    reply = proto.decode(frame)
    assert isinstance(reply, proto.CommandResult)
    assert reply.request_id == 41
    return reply


def make() -> QueryCore:
    return QueryCore(HubState(HubSettings(), 0xFEED, now=0.0), {}, 1.0, "9.9")


def test_a_report_shows_its_points_and_reporting_until_its_ttl_then_reporting_turns_red() -> None:
    core = make()
    reply = report(core, 0.0, client="recorder", points={"lag_s": [0.25, GREEN], "errors": [3, ORANGE]}, ttl_s=15)
    assert (reply.ok, reply.result) == (True, {"prefix": "_hub/clients/recorder"})
    assert core.client_health.points(15.0) == {
        "clients/recorder/reporting": (True, GREEN),
        "clients/recorder/lag_s": (0.25, GREEN),
        "clients/recorder/errors": (3, ORANGE),
    }
    # No new report: the figures go (a last good lag would lie) and the client is shown as not reporting.
    assert core.client_health.points(15.1) == {"clients/recorder/reporting": (False, RED)}
    report(core, 20.0, client="recorder", points={"lag_s": [0.5, GREEN]}, ttl_s=15)
    assert core.client_health.points(21.0)["clients/recorder/lag_s"] == (0.5, GREEN)


def test_a_point_name_may_have_a_few_segments() -> None:
    core = make()
    assert report(core, client="notify", points={"receivers/ops/failures": [2, ORANGE]}, ttl_s=15).ok
    assert core.client_health.points(1.0)["clients/notify/receivers/ops/failures"] == (2, ORANGE)


def test_a_final_report_removes_the_clients_subtree() -> None:
    core = make()
    report(core, client="notify", points={"failures": [0, GREEN]}, ttl_s=15)
    assert report(core, 1.0, client="notify", final=True).ok
    assert core.client_health.points(2.0) == {}


def test_with_keys_a_client_reports_under_its_own_key_name_never_another() -> None:
    core = make()
    viewer = generate_key_pair({}).public.decode()
    allow = AllowList(subscribers=[SubscriberGrant("rec1", viewer)])
    reply = report(core, key=viewer, allow=allow, client="hub", points={"lag_s": [1.0, GREEN]}, ttl_s=5)
    assert (reply.ok, reply.result) == (True, {"prefix": "_hub/clients/rec1"})
    assert set(core.client_health.points(1.0)) == {"clients/rec1/reporting", "clients/rec1/lag_s"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"points": {"lag_s": [1, GREEN]}, "ttl_s": 5}, "client name"),  # no name without keys
        ({"client": "a/b", "points": {"lag_s": [1, GREEN]}, "ttl_s": 5}, "client name"),
        ({"client": "r", "points": {"lag_s": [1, 7]}, "ttl_s": 5}, "level must be one of"),
        ({"client": "r", "points": {"lag_s": [math.nan, GREEN]}, "ttl_s": 5}, "value must be"),
        ({"client": "r", "points": {"lag_s": [[1], GREEN]}, "ttl_s": 5}, "value must be"),
        ({"client": "r", "points": {"lag_s": 1}, "ttl_s": 5}, "[value, level]"),
        ({"client": "r", "points": {"reporting": [True, GREEN]}, "ttl_s": 5}, "the hub's own point"),
        ({"client": "r", "points": {"a//b": [1, GREEN]}, "ttl_s": 5}, "health point name"),
        ({"client": "r", "points": {"a/b/c/d": [1, GREEN]}, "ttl_s": 5}, "1 to 3 path segments"),
        ({"client": "r", "points": {}, "ttl_s": 5}, "points must be a map"),
        ({"client": "r", "points": {f"p{n}": [n, GREEN] for n in range(MAX_POINTS + 1)}, "ttl_s": 5}, "points must"),
        ({"client": "r", "points": {"lag_s": [1, GREEN]}, "ttl_s": 0}, "ttl_s"),
        ({"client": "r", "points": {"lag_s": [1, GREEN]}, "ttl_s": "5"}, "ttl_s"),
        ({"client": "r", "points": {"lag_s": [1, GREEN]}}, "ttl_s"),
    ],
)
def test_a_bad_report_is_refused_with_one_line_and_keeps_nothing(args: dict[str, Any], words: str) -> None:
    core = make()
    reply = report(core, **args)
    assert (reply.ok, reply.result) == (False, {"reason": "bad-args"})
    assert words in reply.message
    assert "\n" not in reply.message
    assert core.client_health.points(0.0) == {}


def test_a_bad_report_leaves_the_previous_good_one_in_place() -> None:
    health = ClientHealth()
    assert health.report("r", {"lag_s": [1, GREEN]}, 10, False, 0.0) is None
    assert health.report("r", {"lag_s": [1, 99]}, 10, False, 1.0) is not None
    assert health.points(5.0)["clients/r/lag_s"] == (1, GREEN)


def test_the_hub_publishes_the_reports_as_its_own_points() -> None:
    hub = HubState(HubSettings(), 0xFEED, now=0.0)
    hub.subscriptions.follow(b"", subscribed=True)  # a subscriber follows everything
    health = ClientHealth()
    health.report("recorder", {"lag_s": [0.5, ORANGE]}, 60, False, 0.0)
    hub.set_server_health(health.points(30.0))
    hub.tick(30.0, WALL0 + 30.0)  # past the health refresh interval
    published = {}
    for topic, payload in hub.drain(WALL0 + 30.0):
        update = proto.decode_hub_message(topic, payload)
        if isinstance(update, proto.NodeUpdate):
            published[update.path] = update
    assert (published["_hub/clients/recorder/lag_s"].value, published["_hub/clients/recorder/lag_s"].alertcode) == (
        0.5,
        ORANGE,
    )
    assert published["_hub/clients/recorder/reporting"].value is True
