"""A routed command is read by its site hub only (protocol "Sealed routes", hub/sealed.py).

Real processes with keys on loopback: a central hub, a site hub relaying to it under its agent key,
an agent at the site with a RED point; and a *spy*: a publisher with its own valid agent key at the
central hub that reads every subscription the central hub's agents socket sends (every route among
them, as ZeroMQ sends subscriptions to every connected publisher). An ack with a comment at the
centre reaches the site and is applied there; the spy sees that a route went to GS1, never what it said.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zmq
from harness import Processes, polled, wait_until

from gsmon.common import protocol as proto
from gsmon.common.client import Subscriber
from gsmon.common.commands import send_command
from gsmon.common.keys import ClientKeys

pytestmark = pytest.mark.integration

POINTS: dict[str, Any] = {"points": [{"name": "disk", "value": 97, "alert": "RED", "dt": 0.2}]}
COMMENT = "spy-must-not-read-this comment"


def _gsmon(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gsmon.common.cli", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


def _keys(root: Path) -> Path:
    hub_dir = root / "central"
    _gsmon("keys", "init", str(hub_dir))
    for name in ("GS1", "spy"):
        _gsmon("keys", "agent", name, "--mount", name, "--hub-dir", str(hub_dir), "--out", str(root / name))
    _gsmon("keys", "subscriber", "ops", "--role", "operator", "--hub-dir", str(hub_dir), "--out", str(root / "ops"))
    return hub_dir


def test_a_route_is_sealed_to_its_site_and_other_publishers_at_the_centre_cannot_read_it(
    procs: Processes, tmp_path: Path
) -> None:
    hub_dir = _keys(tmp_path)
    central = procs.hub("--keys", str(hub_dir), "--hub-id", "central", name="central")
    site = procs.hub(
        "--hub-id", "gs1", "--upstream", central.agents, "--upstream-mount", "GS1",
        "--upstream-key", str(tmp_path / "GS1" / "GS1.key_secret"),
        "--upstream-hub-key", str(tmp_path / "GS1" / "hub.key"),
        "--upstream-coalesce-ms", "200", name="site",
    )  # fmt: skip
    procs.agent(site, "rack1", POINTS, mount="rack1")

    context = zmq.Context()
    spy = context.socket(zmq.XPUB)
    spy.setsockopt(zmq.XPUB_VERBOSE, 1)
    spy.setsockopt(zmq.LINGER, 0)
    ClientKeys.load(tmp_path / "spy" / "spy.key_secret", tmp_path / "spy" / "hub.key").apply(spy)
    spy.connect(central.agents)
    seen: list[bytes] = []

    def spy_reads() -> list[bytes]:
        while spy.poll(0):
            seen.append(spy.recv())
        return seen

    try:
        wait_until(lambda: b"\x01" in spy_reads(), what="the spy admitted: the central hub's subscribe-all")
        ops = ClientKeys.load(tmp_path / "ops" / "ops.key_secret", tmp_path / "ops" / "hub.key")
        with Subscriber(central.query, "", curve=ops) as sub:
            wait_until(
                lambda: polled(sub) and (sub.tree.get("GS1/rack1/disk") or None) is not None
                and bool(sub.tree["GS1/rack1/disk"].alarm),
                timeout_s=20.0, what="the site's RED alarm at the centre",
            )  # fmt: skip
            shown = sub.tree["GS1/rack1/disk"].alarm["id"]
            reply = send_command(central.query, "ack", {"ids": [shown], "comment": COMMENT}, curve=ops, user="jo")
            assert reply.ok, reply.message
        # Applied at the site, with its comment: the site opened the sealed route.
        [acked] = send_command(site.query, "alarms", {}, timeout_s=10.0).result["alarms"]
        assert acked["state"] == "active_acked"
        assert acked["ack_comment"] == COMMENT
        routes = wait_until(
            lambda: [frame for frame in spy_reads() if frame.startswith(b"\x01" + proto.ROUTE_TOPIC_PREFIX)],
            what="the route reaching the spy too (every publisher gets every subscription)",
        )
        head = b"\x01" + proto.ROUTE_TOPIC_PREFIX + b"GS1\x00"
        assert all(frame.startswith(head + proto.SEALED_ROUTE_MARK) for frame in routes), routes
        assert not any(COMMENT.encode() in frame or b"jo@" in frame for frame in seen)
    finally:
        spy.close()
        context.term()
