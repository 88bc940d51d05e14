"""The two hubs of a pair on hosts of their own (issue 17 §5): real processes in network namespaces.

The test builds the network itself, three hosts and three cables: the pair network of
bench/netns.py (its module docstring says why hub A is started twice), reached through
namespaces.py::

    ns a: hub A, A's notifier              ns c: the agents (each publishing to both hubs),
      toc 10.79.1.1 ------------------ toa 10.79.1.2   the clients (this test's thread, gsmon get),
      tob 10.79.3.1 ---+                               the HTTP receiver of the webhooks
    ns b: hub B, B's notifier      |
      toc 10.79.2.1 ---------------|-- tob 10.79.2.2
      toa 10.79.3.2 ---+ the pair link: the only path between a and b

The peer link (PAIR_SYNC both ways) runs over the a-b cable and nothing else.
The test's own thread joins c (``namespaces.entered``) to be a client there:
its Subscriber and its commands (``pair_status``, ``alarms``, ``ack``) go over
the a-c and b-c cables.

* SIGKILL of the notifying hub A while a point goes RED, under load (a second
  agent's 200 counters at 10 Hz into both hubs): a Subscriber and ``gsmon get``
  of ``A,B`` resume on B with a fresh snapshot within 5 s; every RED is one
  webhook (the first from A's host, the one during the takeover from B's).
* The a-b cable pulled (``ip link set tob down`` in a) while both hubs keep
  their agents: each hub sends on its own, so a RED is one webhook from each
  host (at least one and at most two in all); an ack on A then stays on A.
  Plugged back: one sender again, the ack shows on B (resent after the link
  came back), and the next RED is one webhook.
* An ack on A shows on B within 1 s with the same alarm id, over the a-b cable
  (its TCP connections listed there).

Needs root and iproute2: skipped otherwise, failed under ``CI=true``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from harness import AGENT_PROGRAM, FAST_HUB_ARGS, HERE, Process, Processes, wait_until
from namespaces import (
    PAIR_ADDRESSES,
    PairHosts,
    PairHub,
    entered,
    gsmon_in,
    in_namespace,
    made_namespaces,
    pair_hosts,
    start_pair,
)
from test_notify import received

from gsmon.common.client import Subscriber
from gsmon.common.commands import send_command

pytestmark = pytest.mark.integration

MOUNT: Final = "GS1/ups"
PEER_TIMEOUT_S: Final = "2"
FAILOVER_BOUND_S: Final = 5.0
RED: Final = 30
FAST_NOTIFY: Final = ["--group-wait-s", "0.5", "--group-interval-s", "1", "--startup-grace-s", "0", "--poll-s", "0.2"]


@pytest.fixture
def hosts() -> Iterator[PairHosts]:
    """Hosts a, b, c and the cables a-c, b-c, a-b; deleted afterwards whatever happens."""
    with made_namespaces("gspair") as spaces:
        yield pair_hosts(spaces)


def _port(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[1]


def _pair(procs: Processes, hosts: PairHosts, tmp_path: Path) -> tuple[PairHub, PairHub]:
    """Hubs A and B, each the other's peer over the a-b cable (A started twice: see bench/netns.py)."""
    return start_pair(procs.start, hosts, tmp_path, FAST_HUB_ARGS, PEER_TIMEOUT_S)


def _status(hub: PairHub, check: list[list[Any]] | None = None) -> dict[str, Any]:
    reply = send_command(hub.query, "pair_status", {"check": check or []}, timeout_s=5.0)
    assert reply.ok, reply.message
    return dict(reply.result)


def _linked(a: PairHub, b: PairHub) -> bool:
    return bool(_status(a)["peer_live"] and _status(b)["peer_live"])


def _alarms(hub: PairHub, point: str) -> list[dict[str, Any]]:
    reply = send_command(hub.query, "alarms", {"prefix": f"{MOUNT}/{point}"}, timeout_s=5.0)
    assert reply.ok, reply.message
    return list(reply.result["alarms"])


def _set(file: Path, value: Any, alert: str) -> None:
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps([value, alert]))
    tmp.replace(file)


def _agent(procs: Processes, hosts: PairHosts, name: str, spec: dict[str, Any], mount: str, *hubs: PairHub) -> Process:
    """A test agent on host c publishing to every hub given (agent ``hub=[A, B]``), once its Monitor runs."""
    argv = [sys.executable, str(AGENT_PROGRAM), "--name", name, "--mount", mount, "--spec", json.dumps(spec)]
    argv += ["--heartbeat-s", "0.2"]
    for hub in hubs:
        argv += ["--hub", hub.agents]
    process = procs.start(f"agent-{name}", in_namespace(hosts.c, argv))
    process.wait_for_ready()
    return process


@dataclass
class Station:
    """A pair with one agent (Power, Fan: files the test writes), a notifier beside each hub and the receiver in c."""

    a: PairHub
    b: PairHub
    http: Process
    power: Path
    fan: Path

    def webhooks(self, point: str) -> list[str]:
        """The hosts (a, b) the webhooks for ``point`` going RED came from, in arrival order."""
        title = f"[gsmon] RAISED RED {MOUNT}/{point}"
        by_address = {PAIR_ADDRESSES["a", "c"]: "a", PAIR_ADDRESSES["b", "c"]: "b"}
        posts = received(self.http, "POST")
        return [by_address.get(post["from"], post["from"]) for post in posts if post["body"]["title"] == title]

    def settle(self, seconds: float = 3.0) -> None:
        """Let the notifiers poll a few more seconds: what would come twice has come by then."""
        until = time.monotonic() + seconds
        wait_until(lambda: time.monotonic() > until, timeout_s=seconds + 2, what=f"{seconds:g} more seconds of polls")


def _notify_config(tmp_path: Path, me: str, http_port: str) -> Path:
    """Hub ``me``'s notifier posts to the receiver at c's address on the cable between them."""
    config = tmp_path / f"notify-{me}.toml"
    config.write_text(
        f'[[receiver]]\nname = "hook"\nurls = ["json://{PAIR_ADDRESSES["c", me]}:{http_port}/hook"]\n\n'
        '[[route]]\nprefix = "GS1"\nmin_level = "RED"\nreceivers = ["hook"]\n'
    )
    return config


def _station(procs: Processes, hosts: PairHosts, tmp_path: Path) -> Station:
    http = procs.start("http", in_namespace(hosts.c, [sys.executable, str(HERE / "http_sink_program.py"),
                                                     "--host", "0.0.0.0"]))  # fmt: skip
    http_port = _port(http.ready()["http"])
    a, b = _pair(procs, hosts, tmp_path)
    files = {name: tmp_path / f"{name}.json" for name in ("power", "fan")}
    for file in files.values():
        _set(file, 1.0, "GREEN")
    spec = {"points": [{"name": "Power", "file": str(files["power"]), "dt": 0.1},
                       {"name": "Fan", "file": str(files["fan"]), "dt": 0.1}]}  # fmt: skip
    _agent(procs, hosts, "ant1", spec, MOUNT, a, b)
    for hub in (a, b):
        notify = gsmon_in(procs, hosts.of(hub.name), f"notify-{hub.name}", "notify", "--hub", hub.local_query,
                          "--config", str(_notify_config(tmp_path, hub.name, http_port)),
                          "--state-dir", str(tmp_path / f"notify-{hub.name}"), *FAST_NOTIFY)  # fmt: skip
        notify.wait_for_line("READY ")
    return Station(a, b, http, files["power"], files["fan"])


def _get_in_c(hosts: PairHosts, hubs: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``gsmon get MOUNT --json --hub hubs`` on host c, and the time.monotonic() at which it ended."""
    argv = [sys.executable, "-m", "gsmon.common.cli", "get", MOUNT, "--json", "--hub", hubs]
    result = subprocess.run(
        in_namespace(hosts.c, argv), capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL
    )
    return result, time.monotonic()


def test_sigkill_of_the_notifying_hub_under_load_fails_clients_over_and_notifies_each_red_once(
    hosts: PairHosts, procs: Processes, tmp_path: Path
) -> None:
    with entered(hosts.c):
        station = _station(procs, hosts, tmp_path)
        a, b = station.a, station.b
        load = {"points": [{"name": f"c{index}", "counter": True, "dt": 0.1} for index in range(200)]}
        _agent(procs, hosts, "load", load, "GS1/load", a, b)
        wait_until(lambda: _linked(a, b), what="the two hubs linked over the a-b cable")
        assert _status(a)["sender"]
        assert not _status(b)["sender"]
        pair = f"{a.query},{b.query}"
        with Subscriber(pair, MOUNT, timeout_s=5.0) as client:
            wait_until(lambda: client.poll(0.05) is not None and f"{MOUNT}/Fan" in client.tree, what="the client on A")
            assert client.hub == a.query
            epoch_a, resyncs = client.epoch, client.resyncs

            _set(station.power, 0.0, "RED")  # both hubs raise it; only A's notifier sends, and marks it
            wait_until(lambda: station.webhooks("Power"), timeout_s=15, what="the first RED notified")
            [alarm] = _alarms(b, "Power")
            key = ["hook", alarm["id"], "alarm_raised"]
            wait_until(lambda: _status(b, [key])["delivered"] == [True], what="A's delivery mark on B")

            _set(station.fan, 0.0, "RED")
            a.process.kill()  # while the Fan goes RED: A's notifier has not sent it (its group waits 0.5 s)
            killed = time.monotonic()
            got: list[tuple[subprocess.CompletedProcess[str], float]] = []
            # At once, beside the Subscriber: gsmon get (a process of its own on host c) asks A first.
            getter = threading.Thread(target=lambda: got.append(_get_in_c(hosts, pair)), daemon=True)
            getter.start()

            def client_on_b() -> bool:
                client.poll(0.05)
                fan = client.tree.get(f"{MOUNT}/Fan")
                return client.hub == b.query and not client.hub_lost and fan is not None and fan.alertcode == RED

            wait_until(client_on_b, timeout_s=10, what="the client on B, the Fan RED there")
            took_s = time.monotonic() - killed
            assert took_s <= FAILOVER_BOUND_S, f"the Subscriber took {took_s:.2f} s to fail over"
            assert client.epoch not in (None, epoch_a)  # B's own epoch: a fresh snapshot of B, never A's seqs
            assert client.resyncs > resyncs

        getter.join(timeout=30)
        [(result, ended)] = got
        assert result.returncode == 0, result.stderr
        assert ended - killed <= FAILOVER_BOUND_S, f"gsmon get of {pair} ended {ended - killed:.2f} s after the kill"
        tree = json.loads(result.stdout)
        assert tree[f"{MOUNT}/Fan"]["alert"] == RED  # B's tree: A was dead before it asked

        wait_until(lambda: _status(b)["sender"], timeout_s=10, what="B to take over the notifications")
        wait_until(lambda: station.webhooks("Fan"), timeout_s=15, what="the RED during the takeover notified")
        station.settle()  # the survivor's notifier has had every journal entry and many polls since
        assert station.webhooks("Power") == ["a"]
        assert station.webhooks("Fan") == ["b"]


def test_the_pair_link_down_each_hub_notifies_and_up_again_the_pair_resyncs(
    hosts: PairHosts, procs: Processes, tmp_path: Path
) -> None:
    with entered(hosts.c):
        station = _station(procs, hosts, tmp_path)
        a, b = station.a, station.b
        wait_until(lambda: _linked(a, b), what="the two hubs linked over the a-b cable")
        assert not _status(b)["sender"]

        # The a-b cable pulled at A's end: no RST, no FIN; the agents still reach both hubs over c.
        hosts.pair_link(up=False)
        wait_until(lambda: _status(a)["sender"] and _status(b)["sender"], timeout_s=10, what="both hubs on their own")
        assert not _status(a)["peer_live"]
        assert not _status(b)["peer_live"]
        _set(station.power, 0.0, "RED")
        wait_until(lambda: len(station.webhooks("Power")) == 2, timeout_s=15, what="the RED notified by each hub")
        station.settle()
        hosts_notified = station.webhooks("Power")
        assert 1 <= len(hosts_notified) <= 2, hosts_notified
        assert sorted(hosts_notified) == ["a", "b"]  # neither hub heard of the other's delivery

        # An ack on A while the hubs cannot hear each other: on A only, for now.
        [alarm] = _alarms(a, "Power")
        reply = send_command(a.query, "ack", {"ids": [alarm["id"]], "comment": "partitioned"}, user="tester")
        assert reply.ok, reply.message
        assert reply.result["acked"] == [alarm["id"]]
        [on_b] = _alarms(b, "Power")
        assert on_b["id"] == alarm["id"]
        assert on_b["state"] == "active_unacked"

        # Plugged back: the peer links resume by themselves; one sender again, and A's op is resent to B.
        hosts.pair_link(up=True)
        wait_until(lambda: _linked(a, b) and not _status(b)["sender"], timeout_s=20, what="the pair linked again")
        [acked] = wait_until(
            lambda: [x for x in _alarms(b, "Power") if x["state"] == "active_acked"],
            timeout_s=5,
            what="A's ack from the partition on B",
        )
        assert (acked["id"], acked["ack_comment"], acked["acked_user"]) == (alarm["id"], "partitioned", "tester")
        _set(station.fan, 0.0, "RED")
        wait_until(lambda: station.webhooks("Fan"), timeout_s=15, what="the RED after the partition notified")
        station.settle()
        assert station.webhooks("Fan") == ["a"]
        assert len(station.webhooks("Power")) == 2  # nothing of the partition told again


def _pair_connections(hosts: PairHosts) -> set[tuple[str, str]]:
    """Established TCP connections on host a between its a-b address and B's (local, peer) ``address:port``."""
    listed = subprocess.run(in_namespace(hosts.a, ["ss", "-Htn", "state", "established"]), capture_output=True,
                            text=True, timeout=30, check=True).stdout  # fmt: skip
    pairs = {(fields[-2], fields[-1]) for fields in (line.split() for line in listed.splitlines()) if len(fields) >= 2}
    mine, theirs = PAIR_ADDRESSES["a", "b"], PAIR_ADDRESSES["b", "a"]
    return {(local, peer) for local, peer in pairs if local.startswith(f"{mine}:") and peer.startswith(f"{theirs}:")}


def test_an_ack_on_a_shows_on_b_within_a_second_over_the_pair_link(
    hosts: PairHosts, procs: Processes, tmp_path: Path
) -> None:
    with entered(hosts.c):
        a, b = _pair(procs, hosts, tmp_path)
        wait_until(lambda: _linked(a, b), what="the two hubs linked")

        # Both peer links over the a-b cable: A's DEALER to B's query port, B's to A's (B started first, so
        # its DEALER may still be in ZeroMQ's reconnect wait when A's is through).
        def both_ways() -> bool:
            links = _pair_connections(hosts)
            return any(peer.endswith(f":{b.query_port}") for _, peer in links) and any(
                local.endswith(f":{a.query_port}") for local, _ in links
            )

        wait_until(both_ways, what="a TCP connection each way over the a-b cable")

        power = tmp_path / "power.json"
        _set(power, 230.0, "GREEN")
        _agent(procs, hosts, "ant1", {"points": [{"name": "Power", "file": str(power), "dt": 0.1}]}, MOUNT, a, b)
        _set(power, 0.0, "RED")
        [on_a] = wait_until(lambda: _alarms(a, "Power"), what="the alarm on A")
        [on_b] = wait_until(lambda: _alarms(b, "Power"), what="the alarm on B")
        assert (on_a["id"], on_a["raised_at"]) == (on_b["id"], on_b["raised_at"])

        reply = send_command(a.query, "ack", {"ids": [on_a["id"]], "comment": "on it"}, user="tester")
        assert reply.ok, reply.message
        acked_at = time.monotonic()
        assert reply.result["acked"] == [on_a["id"]]
        [acked] = wait_until(lambda: [x for x in _alarms(b, "Power") if x["state"] == "active_acked"],
                             timeout_s=5.0, interval_s=0.02, what="the ack on B")  # fmt: skip
        took_s = time.monotonic() - acked_at
        assert took_s < 1.0, f"the ack took {took_s:.3f} s to reach B"
        assert (acked["id"], acked["ack_comment"], acked["acked_user"]) == (on_a["id"], "on it", "tester")
