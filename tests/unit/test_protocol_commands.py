"""COMMAND and COMMAND_RESULT (protocol 1.1): round trips, and one clear error for each malformed body."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgpack
import pytest

from gsmon.common import protocol as proto

HEAD = {"sender": "client-1", "epoch": 0, "seq": 3, "sent_ns": 5}


def frame(kind: int, body: Any) -> bytes:
    return msgpack.packb([1, 1, kind, "client-1", 0, 3, 5, body])


@pytest.mark.parametrize(
    "message",
    [
        proto.Command(**HEAD, request_id=1, command="forget", args={"agent": "rack1"}, user="ops"),
        proto.Command(**HEAD, request_id=2, command="forget", args={}),
        proto.CommandResult(**HEAD, request_id=1, ok=True, message="done", result={"agent": "a", "points": 3}),
        proto.CommandResult(**HEAD, request_id=1, ok=False, message="no", result=None),
        proto.CommandResult(
            **HEAD, request_id=1, ok=True, message="t", result=[(1, 2), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
        ),
    ],
    ids=repr,
)
def test_commands_and_results_round_trip(message: proto.Message) -> None:
    assert proto.decode(proto.encode(message)) == message


def test_a_result_value_that_cannot_be_packed_is_sent_as_text_never_an_error() -> None:
    result = proto.CommandResult(**HEAD, request_id=1, ok=True, message="m", result={"x": object(), "big": 2**70})
    decoded = proto.decode(proto.encode(result))
    assert isinstance(decoded, proto.CommandResult)
    assert decoded.result["big"] == str(2**70)
    assert decoded.result["x"].startswith("<object object")


@pytest.mark.parametrize(
    ("kind", "body", "error"),
    [
        (12, {"request_id": 1, "args": {}}, "body.command must be a str"),
        (12, {"request_id": 1, "command": "forget", "args": [1]}, "body.args must be a map"),
        (12, {"request_id": 1, "command": "forget", "user": 5}, "body.user must be a str or nil"),
        (12, {"command": "forget"}, "body.request_id must be an unsigned int"),
        (24, {"request_id": 1, "ok": 1, "message": "m"}, "body.ok must be a bool"),
        (24, {"request_id": 1, "ok": True}, "body.message must be a str"),
    ],
)
def test_a_malformed_command_body_is_one_protocol_error(kind: int, body: dict[str, Any], error: str) -> None:
    with pytest.raises(proto.ProtocolError, match=error):
        proto.decode(frame(kind, body))


def test_a_command_without_args_or_user_means_none() -> None:
    command = proto.decode(frame(12, {"request_id": 4, "command": "forget"}))
    assert command == proto.Command(**HEAD, minor=1, request_id=4, command="forget", args={}, user=None)
