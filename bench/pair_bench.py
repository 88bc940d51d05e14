"""A pair of hubs (issue 17 section 2): how fast an ack crosses, how fast notifications take over.

::

    python -m bench.pair_bench               # 20 acks, 3 takeovers (~1 min), 3 partitions if root (~1.5 min)
    python -m bench.pair_bench --quick       # 5 acks, 1 takeover, 1 partition if root
    python -m bench.pair_bench --partition   # only the partitions (root: network namespaces)
    python -m bench.pair_bench --partition --rounds 5 --hold-s 30   # 5 partitions of 30 s each
    python -m bench.pair_bench --markdown    # the tables as bench/RESULTS.md shows them

Two real ``gsmon hub`` processes linked as a pair (``--peer``), one agent (this
process: an XPUB connected to both, speaking the protocol as agents do) and a
``gsmon notify`` on each hub, delivering JSON webhooks to an HTTP receiver in
this process.

ack
    A point goes RED (a new alarm, the same id on both hubs); COMMAND ``ack`` on
    hub A; then hub B is asked (``alarms``) every 5 ms until it shows the ack.
    Figure: from A's COMMAND_RESULT to B showing it. Baseline, same run: one
    ``alarms`` round trip to B (the floor of any observation of B).
takeover
    With both hubs up a point goes RED: the webhook arrives after the
    notifier's group wait (baseline: one hub sends). Then hub A, the sender,
    is SIGKILLed and at once another point goes RED: the webhook arrives when
    B has missed A for ``peer_timeout_s`` (3 s here; default 15) and B's
    notifier sends what no mark covers. Figures: SIGKILL to B's ``pair_status``
    saying sender, SIGKILL to the webhook, and the webhooks per RED (must be 1).
partition (root only: network namespaces, :mod:`bench.netns`)
    The pair on hosts of its own: hub A and its notifier in namespace a, hub B
    and its notifier in b, the agent, the commands and the HTTP receiver (this
    process's thread, ``netns.entered``) in c; the peer link runs over the a-b
    cable only. Each round, a fresh pair: a RED with the link up (the baseline:
    one webhook, its latency); the a-b cable
    pulled (``ip link set tob down`` in a: no RST, no FIN); time until both
    hubs say sender (B's takeover: ``peer_timeout_s``); a RED: its webhooks,
    from which host each came (at least one, at most two: one from each hub)
    and when; an ack on A (it stays on A); the cable plugged back: time until
    one sender again and until the ack shows on B; one RED after the heal
    (exactly one webhook); and at the end, nothing of before told again. The
    cable is out as long as the steps take (~7 s), or ``--hold-s`` at least.
    Without root the default run says so in one line and skips only this.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import zmq

from bench import netns
from bench._support import Children, machine_details
from gsmon.common import children as child_processes
from gsmon.common import protocol as proto
from gsmon.common.commands import send_command

PEER_TIMEOUT_S: Final = 3.0
MOUNT: Final = "GS1/bench"
SETTLE_S: Final = 3.0  # after the last webhook expected: what would come twice has come by then (polls of 0.1 s)
NOTIFY_ARGS: Final = ["--group-wait-s", "0.5", "--group-interval-s", "1", "--startup-grace-s", "0", "--poll-s", "0.1"]
# The hosts the partition's webhooks come from: the sender's address on its cable to c.
HOST_OF: Final = {netns.PAIR_ADDRESSES["a", "c"]: "A", netns.PAIR_ADDRESSES["b", "c"]: "B"}


class _Sink:
    """An HTTP receiver of the notifiers' webhooks: (arrival time, title, sender's address) of each."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.posts: list[tuple[float, str, str]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    title = str(json.loads(body).get("title"))
                except ValueError:
                    title = body.decode(errors="replace")
                sink.posts.append((time.monotonic(), title, str(self.client_address[0])))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _of(self, point: str) -> list[tuple[float, str, str]]:
        return [post for post in self.posts if post[1].endswith(f"RED {MOUNT}/{point}")]

    def count(self, point: str) -> int:
        return len(self._of(point))

    def first(self, point: str) -> float | None:
        return next((at for at, _, _ in self._of(point)), None)

    def times(self, point: str) -> list[float]:
        return [at for at, _, _ in self._of(point)]

    def hosts(self, point: str) -> str:
        """Where the webhooks for ``point`` came from, in arrival order (``A+B``; an address if neither)."""
        return "+".join(HOST_OF.get(sender, sender) for _, _, sender in self._of(point))


class _Agent:
    """One agent publishing to both hubs: STATE on each hub's subscription, then DELTAs and heartbeats."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], hubs: list[str], points: list[str]) -> None:
        self.sock = context.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        for hub in hubs:
            self.sock.connect(hub)
        self.epoch = secrets.randbits(63)
        self.seq = 0
        self.levels = dict.fromkeys(points, (1.0, 10, "GREEN"))
        self.polled = {name: time.time() for name in points}
        self._beat = 0.0

    def _header(self) -> dict[str, Any]:
        self.seq += 1
        return {"sender": "bench", "epoch": self.epoch, "seq": self.seq, "sent_ns": time.time_ns()}

    def _entry(self, name: str) -> proto.PointEntry:
        value, code, label = self.levels[name]
        return proto.PointEntry(name, value, code, label, self.polled[name], None)

    def serve(self) -> None:
        """Answer subscriptions with STATE, and keep the hubs' liveness (call often)."""
        while self.sock.poll(0):
            if self.sock.recv()[:1] == b"\x01":
                points = [self._entry(name) for name in self.levels]
                state = proto.State(**self._header(), mount=MOUNT, heartbeat_s=0.2, points=points)
                self.sock.send(proto.encode(state))
        if time.monotonic() >= self._beat:
            self._beat = time.monotonic() + 0.1
            beat = proto.Heartbeat(**self._header(), mount=MOUNT, heartbeat_s=0.2, point_count=len(self.levels))
            self.sock.send(proto.encode(beat))

    def set(self, name: str, code: int, label: str) -> None:
        self.levels[name] = (float(code), code, label)
        self.polled[name] = time.time()
        self.sock.send(proto.encode(proto.Delta(**self._header(), points=[self._entry(name)])))


def _until(predicate: Any, agent: _Agent, timeout_s: float, every_s: float = 0.005) -> Any:
    """``predicate()`` once it is truthy, the agent served meanwhile; None if ``timeout_s`` passed first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        agent.serve()
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    return None


def _wait(predicate: Any, agent: _Agent, timeout_s: float, what: str, every_s: float = 0.005) -> Any:
    value = _until(predicate, agent, timeout_s, every_s)
    if value is None:
        raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
    return value


def _settle(agent: _Agent, seconds: float = 2.0) -> None:
    """Serve the agent for ``seconds`` (the notifiers poll meanwhile)."""
    until = time.monotonic() + seconds
    _wait(lambda: time.monotonic() > until, agent, seconds + 3.0, f"{seconds:g} more seconds", every_s=0.05)


def _alarm(query: str, point: str) -> dict[str, Any] | None:
    reply = send_command(query, "alarms", {"prefix": f"{MOUNT}/{point}"}, timeout_s=5.0)
    found = reply.result["alarms"] if reply.ok else []
    return found[0] if found else None


def _start_pair(children: Children, state: Path, notify_config: Path) -> tuple[list[Any], list[dict[str, str]]]:
    # Each hub must know its peer's query endpoint before either starts: ipc paths, never a pre-picked port.
    queries = [f"ipc://{state}/hub-a.query", f"ipc://{state}/hub-b.query"]
    hubs, ready = [], []
    for index, (me, peer) in enumerate(((queries[0], queries[1]), (queries[1], queries[0]))):
        hub_id = "hub-a" if index == 0 else "hub-b"
        argv = child_processes.gsmon_argv(
            "hub", "--agents", "tcp://127.0.0.1:0", "--subscribers", "tcp://127.0.0.1:0",
            "--query", me, "--peer", peer, "--hub-id", hub_id,
            "--peer-timeout-s", str(PEER_TIMEOUT_S), "--heartbeat-s", "0.2", "--agent-liveness", "5",
            "--state-dir", str(state / hub_id), "--log-level", "WARNING",
        )  # fmt: skip
        child = children.start(hub_id, argv)
        hubs.append(child)
        ready.append(child.ready())
    for index, fields in enumerate(ready):
        argv = child_processes.gsmon_argv(
            "notify", "--hub", fields["query"], "--config", str(notify_config),
            "--state-dir", str(state / f"notify-{index}"), *NOTIFY_ARGS,
        )  # fmt: skip
        children.start(f"notify-{index}", argv).wait_for_line("READY ")
    return hubs, ready


def _notify_config(path: Path, url: str) -> Path:
    """A notifier's configuration: every RED under GS1 to ``url``, one message per point."""
    path.write_text(
        "[notify]\ngroup_by_depth = 3\nmax_per_minute = 1000\n\n"  # one message per point
        f'[[receiver]]\nname = "hook"\nurls = ["{url}"]\n\n'
        '[[route]]\nprefix = "GS1"\nmin_level = "RED"\nreceivers = ["hook"]\n'
    )
    return path


def run(acks: int, takeovers: int) -> dict[str, Any]:
    points = [f"Ack{i}" for i in range(acks)] + [f"Base{i}" for i in range(takeovers)]
    points += [f"Kill{i}" for i in range(takeovers)]
    ack_s: list[float] = []
    round_trip_s: list[float] = []
    base_s: list[float] = []
    sender_s: list[float] = []
    notify_s: list[float] = []
    counts: list[int] = []
    sink = _Sink()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        for round_index in range(takeovers):
            with tempfile.TemporaryDirectory("-pair-bench") as tmp, Children() as children:
                config = _notify_config(Path(tmp) / "notify.toml", sink.url)
                _, ready = _start_pair(children, Path(tmp), config)
                a, b = ready[0]["query"], ready[1]["query"]
                agent = _Agent(context, [ready[0]["agents"], ready[1]["agents"]], points)

                def linked(a: str = a, b: str = b) -> bool:
                    return all(send_command(q, "pair_status", {}).result["peer_live"] for q in (a, b))

                _wait(linked, agent, 20.0, "the pair linked", every_s=0.05)
                if round_index == 0:
                    for name in points[:acks]:
                        agent.set(name, 30, "RED")
                        raised = _wait(lambda n=name, a=a, b=b: _alarm(b, n) and _alarm(a, n), agent, 10.0, "the alarm")
                        reply = send_command(a, "ack", {"ids": [raised["id"]]})
                        acked_at = time.monotonic()
                        assert reply.ok, reply.message

                        def acked_on_b(n: str = name, b: str = b) -> bool:
                            found = _alarm(b, n)
                            return found is not None and found["state"] == "active_acked"

                        _wait(acked_on_b, agent, 5.0, "the ack on B")
                        ack_s.append(time.monotonic() - acked_at)
                        started = time.monotonic()
                        _alarm(b, name)
                        round_trip_s.append(time.monotonic() - started)
                base, kill = f"Base{round_index}", f"Kill{round_index}"
                agent.set(base, 30, "RED")
                raised_at = time.monotonic()
                try:
                    _wait(lambda p=base: sink.first(p), agent, 15.0, "the notification with both up", every_s=0.01)
                except TimeoutError:
                    print(sink.posts, [child.stderr()[-1500:] for child in children.children], file=sys.stderr)
                    raise
                base_s.append((sink.first(base) or 0.0) - raised_at)
                # Kill A once its mark has reached B: a kill in the instant between the webhook and the mark
                # leaves the message unmarked, and B sends it again (a repeat, never a loss; see RESULTS.md).
                key = ["hook", (_alarm(b, base) or {}).get("id"), "alarm_raised"]

                def marked(b: str = b, key: list[Any] = key) -> bool:
                    return bool(send_command(b, "pair_status", {"check": [key]}).result["delivered"] == [True])

                _wait(marked, agent, 10.0, "the delivery mark on B", every_s=0.01)
                hub_a = children.children[0]
                hub_a.expect_exit(9)
                hub_a.popen.kill()
                agent.set(kill, 30, "RED")
                killed_at = time.monotonic()
                _wait(lambda b=b: send_command(b, "pair_status", {}).result["sender"], agent, 30.0, "B sender",
                      every_s=0.02)  # fmt: skip
                sender_s.append(time.monotonic() - killed_at)
                _wait(lambda p=kill: sink.first(p), agent, 30.0, "the notification after the takeover", every_s=0.01)
                notify_s.append((sink.first(kill) or 0.0) - killed_at)
                _settle(agent)
                counts += [sink.count(base), sink.count(kill)]
                hub_a.popen.wait()
                agent.sock.close(linger=0)
    finally:
        sink.close()
        context.destroy(linger=0)
    return {
        "acks": len(ack_s),
        "ack_ms_median": 1000 * statistics.median(ack_s) if ack_s else None,
        "ack_ms_max": 1000 * max(ack_s) if ack_s else None,
        "round_trip_ms_median": 1000 * statistics.median(round_trip_s) if round_trip_s else None,
        "takeovers": len(notify_s),
        "peer_timeout_s": PEER_TIMEOUT_S,
        "notify_both_up_s_median": statistics.median(base_s),
        "sender_after_kill_s_median": statistics.median(sender_s),
        "notify_after_kill_s_median": statistics.median(notify_s),
        "notify_after_kill_s_max": max(notify_s),
        "webhooks_per_red": sorted(set(counts)),
    }


@dataclass
class _PartitionRound:
    """One partition round's figures (times in s; webhook counts and the hosts they came from)."""

    base_s: float = math.nan  # a RED with the link up to its webhook
    cut_s: float = math.nan  # the cable pulled to both hubs sending
    part_first_s: float = math.nan  # a RED in the partition to its first webhook ...
    part_second_s: float = math.nan  # ... and its second (NaN: there was none)
    part_webhooks: int = 0  # in the partition, after a settle
    part_hosts: str = ""
    ack_stayed_on_a: bool = False  # an ack on A during the partition not on B (yet)
    partition_s: float = math.nan  # the cable out, cut to heal
    heal_sender_s: float = math.nan  # the cable back to one sender
    heal_ack_s: float = math.nan  # the cable back to the partition's ack shown on B
    after_s: float = math.nan  # a RED after the heal to its webhook
    base_webhooks: int = 0  # these three at the end of the round, after a settle
    after_webhooks: int = 0
    part_webhooks_end: int = 0
    base_hosts: str = ""
    after_hosts: str = ""


def _status(query: str) -> dict[str, Any]:
    reply = send_command(query, "pair_status", {}, timeout_s=5.0)
    if not reply.ok:
        raise RuntimeError(f"pair_status on {query}: {reply.message}")
    return dict(reply.result)


def _one_sender(a: netns.PairHub, b: netns.PairHub) -> bool:
    """Linked both ways and exactly one of them the sender (A: the lower hub id)."""
    on_a, on_b = _status(a.query), _status(b.query)
    return bool(on_a["peer_live"] and on_b["peer_live"] and on_a["sender"] != on_b["sender"])


def _partition_round(hosts: netns.PairHosts, a: netns.PairHub, b: netns.PairHub, agent: _Agent, sink: _Sink,
                     points: tuple[str, str, str], hold_s: float) -> _PartitionRound:  # fmt: skip
    base, part, after = points
    figures = _PartitionRound()
    _wait(lambda: _one_sender(a, b), agent, 30.0, "the pair linked over the a-b cable", every_s=0.05)

    agent.set(base, 30, "RED")
    raised_at = time.monotonic()
    figures.base_s = _wait(lambda: sink.first(base), agent, 15.0, "the RED with the link up notified") - raised_at
    # Cut once A's delivery mark is on B: a cut before it leaves the message unmarked there, and B,
    # the sender from then on, would send it too (that is the partition's "at most twice", measured below).
    key = ["hook", (_alarm(b.query, base) or {}).get("id"), "alarm_raised"]

    def marked() -> bool:
        return bool(send_command(b.query, "pair_status", {"check": [key]}).result["delivered"] == [True])

    _wait(marked, agent, 10.0, "A's delivery mark on B", every_s=0.01)

    hosts.pair_link(up=False)
    cut_at = time.monotonic()
    _wait(lambda: _status(a.query)["sender"] and _status(b.query)["sender"], agent, 30.0, "both hubs sending",
          every_s=0.02)  # fmt: skip
    figures.cut_s = time.monotonic() - cut_at

    agent.set(part, 30, "RED")
    raised_at = time.monotonic()
    # Two are expected (one from each hub); fewer is a figure too, never a failure of the bench.
    _until(lambda: sink.count(part) >= 2, agent, 15.0, every_s=0.01)
    _settle(agent, SETTLE_S)
    times = sink.times(part)
    figures.part_first_s = times[0] - raised_at if times else math.nan
    figures.part_second_s = times[1] - raised_at if len(times) > 1 else math.nan
    figures.part_webhooks, figures.part_hosts = len(times), sink.hosts(part)

    alarm = _wait(lambda: _alarm(a.query, part), agent, 5.0, "the partition's alarm on A")
    reply = send_command(a.query, "ack", {"ids": [alarm["id"]], "comment": "partitioned"}, timeout_s=5.0)
    if not reply.ok:
        raise RuntimeError(f"ack on A: {reply.message}")
    figures.ack_stayed_on_a = (_alarm(b.query, part) or {}).get("state") == "active_unacked"
    # A longer partition (--hold-s): the peer links' ZMTP heartbeats time out after 6 s and ZeroMQ's
    # reconnects back off (up to 5 s), so how soon the pair heals depends on how long it was cut.
    _until(lambda: time.monotonic() - cut_at >= hold_s, agent, hold_s + 1.0, every_s=0.05)

    hosts.pair_link(up=True)
    healed_at = time.monotonic()
    figures.partition_s = healed_at - cut_at
    seen: dict[str, float] = {}

    def healed() -> bool:
        now = time.monotonic()
        if "sender" not in seen and _one_sender(a, b):
            seen["sender"] = now
        if "ack" not in seen and (_alarm(b.query, part) or {}).get("state") == "active_acked":
            seen["ack"] = now
        return len(seen) == 2

    _wait(healed, agent, 60.0, "one sender again and the partition's ack on B", every_s=0.02)
    figures.heal_sender_s, figures.heal_ack_s = seen["sender"] - healed_at, seen["ack"] - healed_at

    agent.set(after, 30, "RED")
    raised_at = time.monotonic()
    figures.after_s = _wait(lambda: sink.first(after), agent, 15.0, "the RED after the heal notified") - raised_at
    _settle(agent, SETTLE_S)
    figures.base_webhooks, figures.base_hosts = sink.count(base), sink.hosts(base)
    figures.after_webhooks, figures.after_hosts = sink.count(after), sink.hosts(after)
    figures.part_webhooks_end = sink.count(part)
    return figures


def partition_unavailable() -> str | None:
    """Why the partition scenario cannot run here (None: it can)."""
    return netns.unavailable("gspb")


def run_partition(rounds: int, hold_s: float = 0.0) -> dict[str, Any]:
    """The partition scenario (module docstring): ``rounds`` fresh pairs in one set of namespaces, each
    cable out for at least ``hold_s`` (0: as long as the steps take, ~7 s)."""
    done: list[_PartitionRound] = []
    hub_args = ["--heartbeat-s", "0.2", "--agent-liveness", "5", "--log-level", "WARNING"]
    with netns.namespaces("gspb") as spaces:
        hosts = netns.pair_hosts(spaces)
        # This thread joins c: the agent's XPUB, the commands and the HTTP receiver (with the ZeroMQ I/O
        # threads of a context made here and the receiver's threads) are on the station LAN from here on.
        with netns.entered(hosts.c):
            sink = _Sink("0.0.0.0")
            context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            try:
                for index in range(rounds):
                    points = (f"PBase{index}", f"PPart{index}", f"PAfter{index}")
                    with tempfile.TemporaryDirectory("-pair-bench") as tmp, Children() as children:
                        a, b = netns.start_pair(children.start, hosts, Path(tmp), hub_args, str(PEER_TIMEOUT_S))
                        for hub in (a, b):  # each notifier beside its hub, posting over its host's cable to c
                            url = f"json://{netns.PAIR_ADDRESSES['c', hub.name]}:{sink.port}/hook"
                            config = _notify_config(Path(tmp) / f"notify-{hub.name}.toml", url)
                            argv = child_processes.gsmon_argv(
                                "notify", "--hub", hub.local_query, "--config", str(config),
                                "--state-dir", str(Path(tmp) / f"notify-{hub.name}"), *NOTIFY_ARGS,
                            )  # fmt: skip
                            notify = children.start(f"notify-{hub.name}", netns.in_namespace(hosts.of(hub.name), argv))
                            notify.wait_for_line("READY ")
                        agent = _Agent(context, [a.agents, b.agents], list(points))
                        try:
                            done.append(_partition_round(hosts, a, b, agent, sink, points, hold_s))
                        except TimeoutError:
                            print([child.stderr()[-1500:] for child in children.children], file=sys.stderr)
                            raise
                        finally:
                            agent.sock.close(linger=0)
            finally:
                sink.close()
                context.destroy(linger=0)

    def column(name: str) -> list[Any]:
        return [getattr(figures, name) for figures in done]

    def median(name: str) -> float:
        values = [value for value in column(name) if not math.isnan(value)]
        return statistics.median(values) if values else math.nan

    def most(name: str) -> float:
        values = [value for value in column(name) if not math.isnan(value)]
        return max(values) if values else math.nan

    return {
        "partition_rounds": len(done),
        "partition_peer_timeout_s": PEER_TIMEOUT_S,
        "link_up_notify_s_median": median("base_s"),
        "link_up_webhooks_per_red": sorted(set(column("base_webhooks"))),
        "link_up_from": sorted(set(column("base_hosts"))),
        "cut_to_both_senders_s_median": median("cut_s"),
        "cut_to_both_senders_s_max": most("cut_s"),
        "partition_webhooks_per_red": sorted(set(column("part_webhooks"))),
        "partition_from": sorted(set(column("part_hosts"))),
        "partition_first_webhook_s_median": median("part_first_s"),
        "partition_second_webhook_s_median": median("part_second_s"),
        "partition_ack_stayed_on_a": all(column("ack_stayed_on_a")),
        "partition_hold_s": hold_s,
        "partition_s_median": median("partition_s"),
        "heal_to_one_sender_s_median": median("heal_sender_s"),
        "heal_to_one_sender_s_max": most("heal_sender_s"),
        "heal_to_ack_on_b_s_median": median("heal_ack_s"),
        "heal_to_ack_on_b_s_max": most("heal_ack_s"),
        "after_heal_notify_s_median": median("after_s"),
        "after_heal_webhooks_per_red": sorted(set(column("after_webhooks"))),
        "after_heal_from": sorted(set(column("after_hosts"))),
        "partition_webhooks_per_red_at_end": sorted(set(column("part_webhooks_end"))),
    }


def _markdown(result: dict[str, Any]) -> str:
    ratio = result["ack_ms_median"] / result["round_trip_ms_median"]
    takeover = result["notify_after_kill_s_median"] / result["notify_both_up_s_median"]
    return "\n".join(
        [
            "| measure | result | baseline (same run) | target |",
            "|---|---|---|---|",
            f"| ack on A shown on B ({result['acks']} acks) | median {result['ack_ms_median']:.0f} ms, "
            f"max {result['ack_ms_max']:.0f} ms | one `alarms` round trip to B: {result['round_trip_ms_median']:.1f} ms"
            f" (ratio {ratio:.1f}) | <= 1 s |",
            f"| SIGKILL of the sender to B the sender ({result['takeovers']} takeovers, peer_timeout_s "
            f"{result['peer_timeout_s']:g}) | median {result['sender_after_kill_s_median']:.2f} s | peer_timeout_s | "
            "peer_timeout_s + a sync |",
            f"| SIGKILL + a RED at once to its webhook | median {result['notify_after_kill_s_median']:.2f} s, max "
            f"{result['notify_after_kill_s_max']:.2f} s | a RED with both up: "
            f"{result['notify_both_up_s_median']:.2f} s (ratio {takeover:.1f}) | nothing lost |",
            f"| webhooks per RED | {result['webhooks_per_red']} | — | exactly 1 |",
        ]
    )


def _markdown_partition(result: dict[str, Any]) -> str:
    if "partition_skipped" in result:
        return f"partition: skipped ({result['partition_skipped']})"
    rounds, timeout = result["partition_rounds"], result["partition_peer_timeout_s"]
    return "\n".join(
        [
            "| partition (network namespaces) | result | baseline (same run) | target |",
            "|---|---|---|---|",
            f"| a-b cable pulled to both hubs sending ({rounds} rounds, peer_timeout_s {timeout:g}) | median "
            f"{result['cut_to_both_senders_s_median']:.2f} s, max {result['cut_to_both_senders_s_max']:.2f} s | "
            "peer_timeout_s | peer_timeout_s + a sync |",
            f"| webhooks per RED in the partition | {result['partition_webhooks_per_red']} from "
            f"{', '.join(result['partition_from'])}; first after {result['partition_first_webhook_s_median']:.2f} s,"
            f" second after {result['partition_second_webhook_s_median']:.2f} s (medians) | a RED with the link up: "
            f"{result['link_up_webhooks_per_red']} from {', '.join(result['link_up_from'])}, "
            f"{result['link_up_notify_s_median']:.2f} s | at least 1, at most 2 |",
            f"| an ack on A in the partition | on B before the heal: "
            f"{'no' if result['partition_ack_stayed_on_a'] else 'YES'} | — | on A only |",
            f"| cable plugged back (after a median {result['partition_s_median']:.1f} s out) to one sender | median "
            f"{result['heal_to_one_sender_s_median']:.2f} s, max {result['heal_to_one_sender_s_max']:.2f} s | — | — |",
            f"| cable plugged back to the partition's ack shown on B | median "
            f"{result['heal_to_ack_on_b_s_median']:.2f} s, max {result['heal_to_ack_on_b_s_max']:.2f} s | — | — |",
            f"| webhooks per RED after the heal | {result['after_heal_webhooks_per_red']} from "
            f"{', '.join(result['after_heal_from'])}, {result['after_heal_notify_s_median']:.2f} s | a RED with the "
            f"link up: {result['link_up_notify_s_median']:.2f} s | exactly 1 |",
            f"| webhooks per RED of the partition, at the round's end | {result['partition_webhooks_per_red_at_end']}"
            f" | in the partition: {result['partition_webhooks_per_red']} | nothing told again |",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pair_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 acks, 1 takeover, 1 partition round")
    parser.add_argument("--partition", action="store_true", help="only the partition scenario (root)")
    parser.add_argument("--rounds", type=int, default=None, help="partition rounds (default 3; --quick: 1)")
    parser.add_argument("--hold-s", type=float, default=0.0, help="keep each partition at least this long (s)")
    parser.add_argument("--markdown", action="store_true", help="print the RESULTS.md tables")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if rounds < 1:
        parser.error(f"--rounds must be at least 1, not {rounds}")
    why = partition_unavailable()
    if args.partition and why is not None:
        print(f"pair_bench: the partition scenario needs root and network namespaces: {why}", file=sys.stderr)
        return 2
    result: dict[str, Any] = {}
    if not args.partition:
        result.update(run(5, 1) if args.quick else run(20, 3))
    if why is None:
        result.update(run_partition(rounds, args.hold_s))
    else:
        print(f"pair_bench: partition scenario skipped, it needs root and network namespaces: {why}", file=sys.stderr)
        result["partition_skipped"] = why
    result["machine"] = machine_details()
    if args.markdown:
        tables = [] if args.partition else [_markdown(result)]
        print("\n\n".join([*tables, _markdown_partition(result)]))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
