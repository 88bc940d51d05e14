"""The XPUBs that publish to hubs (an agent's, a site hub's upstream link) take subscriptions without limit.

What such a socket receives is the hubs' (un)subscriptions only. With a receive limit, a restarted hub's
resync requests (one per agent, to every agent) filled the pipe; libzmq then stopped reading, ZMTP
heartbeats timed out and the reconnect aborted the process (libzmq issue 3937: a 750-agent bench fleet
died of it). These check the sockets the real classes make, not a copy of their options.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from gsmon.agent.publisher import Publisher
from gsmon.common import transport
from gsmon.hub.upstream import UpstreamLink, UpstreamSettings

NOWHERE = "tcp://127.0.0.1:1"  # connect is asynchronous: nothing needs to listen


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def test_the_publisher_options_have_no_receive_limit_and_pass_every_subscription() -> None:
    options = transport.publisher_options(sndhwm=123)
    assert (options.rcvhwm, options.sndhwm, options.xpub_verbose) == (0, 123, True)


def test_an_agents_socket_to_its_hub_has_no_receive_limit(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    publisher = Publisher([NOWHERE], "rack1", "GS1/rack1", source=None)  # type: ignore[arg-type]
    publisher._context = context  # (the thread's context, as _run sets it)
    sock = publisher._new_socket(NOWHERE)
    assert sock.type == zmq.XPUB
    assert sock.getsockopt(zmq.RCVHWM) == 0
    sock.close(linger=0)


def test_a_site_hubs_upstream_socket_has_no_receive_limit(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    link = UpstreamLink(UpstreamSettings(endpoint=NOWHERE, mount="GS1"), NOWHERE, 0, context)
    assert link.socket.type == zmq.XPUB
    assert link.socket.getsockopt(zmq.RCVHWM) == 0
    link.close()
