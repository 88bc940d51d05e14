"""How every client waits for the hub's answer to a COMMAND (:func:`gsmon.common.commands.wait_reply`).

Real ZeroMQ sockets over TCP in this process: the test plays the hub's ROUTER
and answers in an order a hub can (a late reply to an earlier request first,
a message that is no envelope), so the client's rule is checked as it runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from gsmon.common import protocol as proto
from gsmon.common.clone import ClientEnvelope
from gsmon.common.commands import wait_reply


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router, dealer = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    router.bind("tcp://127.0.0.1:0")
    dealer.connect(router.getsockopt_string(zmq.LAST_ENDPOINT))
    try:
        yield router, dealer
    finally:
        context.destroy(linger=0)


def _result(request_id: int, message: str) -> bytes:
    hub = ClientEnvelope("hub", epoch=7)
    return proto.encode(proto.CommandResult(**hub.header(), request_id=request_id, ok=True, message=message, result={}))


def test_the_reply_to_this_request_is_taken_and_late_or_broken_ones_are_dropped(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    router, dealer = pair
    envelope = ClientEnvelope("client-x")
    earlier, current = envelope.command("alarms", {}), envelope.command("alarms", {})
    dealer.send(proto.encode(current))
    identity, request = router.recv_multipart()
    assert proto.decode(request) == current
    router.send_multipart([identity, _result(earlier.request_id, "late")])
    router.send_multipart([identity, b"\x93not an envelope"])
    router.send_multipart([identity, _result(current.request_id, "this one")])
    reply = wait_reply(dealer, current.request_id, timeout_s=5.0)
    assert isinstance(reply, proto.CommandResult)
    assert (reply.request_id, reply.message) == (current.request_id, "this one")


def test_no_answer_within_the_timeout_is_none(pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    _, dealer = pair
    command = ClientEnvelope("client-x").command("alarms", {})
    dealer.send(proto.encode(command))
    assert wait_reply(dealer, command.request_id, timeout_s=0.2) is None
