"""Two real hubs linked as a pair (issue 17 section 2), one agent publishing to both.

* an ack on A shows on B within 1 s, on the same alarm id;
* SIGKILL the sending hub while a point goes RED: exactly one notification
  reaches the HTTP sink, none repeated after the survivor takes over;
* the peer link cut (each hub's query port closed to the other by a real
  proxy that the test stops): each RED is notified at least once and at most twice.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from harness import HERE, Hub, Processes, wait_until
from test_notify import received

from gsmon.common.commands import send_command

MOUNT = "GS1/ups"
POWER = f"{MOUNT}/Power"
PEER_TIMEOUT_S = "2"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _set(file: Path, value: Any, alert: str) -> None:
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps([value, alert]))
    tmp.replace(file)


def _pair(procs: Processes, *, a_peer: str | None = None, b_peer: str | None = None) -> tuple[Hub, Hub, int, int]:
    """Hubs ``hub-a`` and ``hub-b``, each with the other's query endpoint as its peer (or the ones given)."""
    port_a, port_b = _free_port(), _free_port()
    a = procs.hub("--peer", a_peer or f"tcp://127.0.0.1:{port_b}", "--hub-id", "hub-a",
                  "--peer-timeout-s", PEER_TIMEOUT_S, query=f"tcp://127.0.0.1:{port_a}", name="hub-a")  # fmt: skip
    b = procs.hub("--peer", b_peer or f"tcp://127.0.0.1:{port_a}", "--hub-id", "hub-b",
                  "--peer-timeout-s", PEER_TIMEOUT_S, query=f"tcp://127.0.0.1:{port_b}", name="hub-b")  # fmt: skip
    return a, b, port_a, port_b


def _status(hub: Hub, check: list[list[Any]] | None = None) -> dict[str, Any]:
    reply = send_command(hub.query, "pair_status", {"check": check or []}, timeout_s=5.0)
    assert reply.ok, reply.message
    return dict(reply.result)


def _alarms(hub: Hub) -> list[dict[str, Any]]:
    reply = send_command(hub.query, "alarms", {"prefix": POWER}, timeout_s=5.0)
    assert reply.ok, reply.message
    return list(reply.result["alarms"])


def test_an_ack_on_one_hub_shows_on_the_other_within_a_second_on_the_same_alarm_id(
    procs: Processes, tmp_path: Path
) -> None:
    a, b, _, _ = _pair(procs)
    wait_until(lambda: _status(a)["peer_live"] and _status(b)["peer_live"], what="the two hubs linked")
    assert _status(a)["sender"] is True
    assert _status(b)["sender"] is False  # the lowest hub id sends
    power = tmp_path / "power.json"
    _set(power, 230.0, "GREEN")
    procs.agent([a, b], "ant1", {"points": [{"name": "Power", "file": str(power), "dt": 0.1}]}, mount=MOUNT)
    _set(power, 0.0, "RED")
    [on_a] = wait_until(lambda: _alarms(a), what="the alarm on A")
    [on_b] = wait_until(lambda: _alarms(b), what="the alarm on B")
    assert on_a["id"] == on_b["id"]
    assert on_a["raised_at"] == on_b["raised_at"]

    reply = send_command(a.query, "ack", {"ids": [on_a["id"]], "comment": "on it"}, user="tester")
    assert reply.ok, reply.message
    acked_at = time.monotonic()
    assert reply.result["acked"] == [on_a["id"]]
    acked = wait_until(lambda: [x for x in _alarms(b) if x["state"] == "active_acked"], timeout_s=5.0,
                       interval_s=0.02, what="the ack on B")  # fmt: skip
    took_s = time.monotonic() - acked_at
    assert took_s < 1.0, f"the ack took {took_s:.3f} s to reach B"
    assert acked[0]["id"] == on_a["id"]
    assert acked[0]["ack_comment"] == "on it"
    assert acked[0]["acked_user"] == "tester"

    # And back the other way: an unack on B shows on A.
    reply = send_command(b.query, "unack", {"ids": [on_a["id"]]})
    assert reply.ok, reply.message
    wait_until(lambda: _alarms(a)[0]["state"] == "active_unacked", timeout_s=2.0, what="the unack on A")
