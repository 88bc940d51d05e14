"""A pair of hubs (issue 17 section 2): how fast an ack crosses, how fast notifications take over.

::

    python -m bench.pair_bench               # 20 acks, 3 takeovers (~1 min)
    python -m bench.pair_bench --quick       # 5 acks, 1 takeover
    python -m bench.pair_bench --markdown    # the table as bench/RESULTS.md shows it

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
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import zmq

from bench._support import Children, machine_details
from gsmon.common import children as child_processes
from gsmon.common import protocol as proto
from gsmon.common.commands import send_command

PEER_TIMEOUT_S: Final = 3.0
MOUNT: Final = "GS1/bench"


class _Sink:
    """An HTTP receiver of the notifiers' webhooks: (arrival time, title) of each."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, str]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    title = str(json.loads(body).get("title"))
                except ValueError:
                    title = body.decode(errors="replace")
                sink.posts.append((time.monotonic(), title))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, point: str) -> int:
        return sum(1 for _, title in self.posts if title.endswith(f"RED {MOUNT}/{point}"))

    def first(self, point: str) -> float | None:
        return next((at for at, title in self.posts if title.endswith(f"RED {MOUNT}/{point}")), None)


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


def _wait(predicate: Any, agent: _Agent, timeout_s: float, what: str, every_s: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        agent.serve()
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")


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
            "--state-dir", str(state / f"notify-{index}"), "--group-wait-s", "0.5", "--group-interval-s", "1",
            "--startup-grace-s", "0", "--poll-s", "0.1",
        )  # fmt: skip
        children.start(f"notify-{index}", argv).wait_for_line("READY ")
    return hubs, ready


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
                config = Path(tmp) / "notify.toml"
                config.write_text(
                    "[notify]\ngroup_by_depth = 3\nmax_per_minute = 1000\n\n"  # one message per point
                    f'[[receiver]]\nname = "hook"\nurls = ["{sink.url}"]\n\n'
                    '[[route]]\nprefix = "GS1"\nmin_level = "RED"\nreceivers = ["hook"]\n'
                )
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
                settle = time.monotonic() + 2.0
                _wait(lambda s=settle: time.monotonic() > s, agent, 5.0, "two more seconds", every_s=0.05)
                counts += [sink.count(base), sink.count(kill)]
                hub_a.popen.wait()
                agent.sock.close(linger=0)
    finally:
        sink.server.shutdown()
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pair_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 acks, 1 takeover")
    parser.add_argument("--markdown", action="store_true", help="print the RESULTS.md table")
    args = parser.parse_args(argv)
    result = run(5, 1) if args.quick else run(20, 3)
    result["machine"] = machine_details()
    print(_markdown(result) if args.markdown else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
