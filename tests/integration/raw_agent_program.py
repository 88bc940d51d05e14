"""A hand-made agent: a real process speaking the agent protocol without a Monitor.

Usage: python raw_agent_program.py --hub AGENTS_EP --name NAME --mount PATH [--points N]
       [--code C --label L] [--flood] [--batch B] [--heartbeat-s S] [--key SECRET --hub-key HUB_PUBLIC]

It connects an XPUB to the hub's agents socket as agents do, waits for the
hub's subscription, sends one complete STATE of ``N`` points ``p0..p{N-1}``
(code ``C`` with label ``L``; one-shot), then every ``heartbeat_s`` a
HEARTBEAT -- or, with ``--flood``, DELTAs of ``batch`` of those points as fast
as it can (XPUB_NODROP: it blocks rather than drop, so it outruns the hub's
applying, never its queue). It answers resync requests with its STATE, prints
``READY`` once its STATE is sent, and exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time

import msgpack
import zmq

from gsmon.common import protocol as proto
from gsmon.common.keys import ClientKeys
from gsmon.common.ready import ready_line


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hub", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--mount", required=True)
    parser.add_argument("--points", type=int, default=1)
    parser.add_argument("--code", type=int, default=10)
    parser.add_argument("--label", default="GREEN")
    parser.add_argument("--flood", action="store_true")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--heartbeat-s", type=float, default=0.2)
    parser.add_argument("--key")
    parser.add_argument("--hub-key")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 10_000)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    if args.key:
        ClientKeys.load(args.key, args.hub_key).apply(sock)
    sock.connect(args.hub)
    epoch = time.time_ns() & ((1 << 63) - 1)
    seq = -1
    names = [f"p{index}" for index in range(args.points)]

    def head() -> dict[str, int | str]:
        nonlocal seq
        seq += 1
        return {"sender": args.name, "epoch": epoch, "seq": seq, "sent_ns": time.time_ns()}

    def send(msg: proto.Message) -> None:
        data = proto.encode(msg)
        while not stop.is_set():  # XPUB_NODROP: wait while the hub's queue is full, as long as we run
            try:
                sock.send(data, zmq.DONTWAIT)
                return
            except zmq.Again:
                sock.poll(100, zmq.POLLOUT)

    def state() -> None:
        now = time.time()
        entries = [proto.PointEntry(name, index, args.code, args.label, now, None) for index, name in enumerate(names)]
        parts = [entries[start : start + proto.MAX_POINTS_PER_MESSAGE] for start in range(0, len(entries), 5000)]
        for part, points in enumerate(parts or [[]]):
            send(
                proto.State(
                    **head(),
                    mount=args.mount,
                    heartbeat_s=args.heartbeat_s,
                    points=points,
                    part=part,
                    parts=max(1, len(parts)),
                )
            )

    def answer_subscriptions() -> None:
        while True:
            try:
                event = sock.recv(zmq.DONTWAIT)
            except zmq.Again:
                return
            if event[:1] == b"\x01" and (
                event[1:] == b"" or event[1:] == proto.RESYNC_TOPIC_PREFIX + args.name.encode()
            ):
                state()

    while not sock.poll(100) and not stop.is_set():
        pass  # the hub's subscription: it is there
    answer_subscriptions()
    print(ready_line(), flush=True)
    # Flood DELTAs are packed once and sent with a fresh header, as fast as ZeroMQ takes them
    # (packing each anew would make this process slower than the hub it is meant to outrun).
    bodies = []
    for start in range(0, len(names), args.batch):
        batch = [
            proto.PointEntry(name, start, args.code, args.label, time.time(), 0.05)
            for name in names[start : start + args.batch]
        ]
        whole = proto.encode(proto.Delta(sender=args.name, epoch=epoch, seq=0, sent_ns=0, points=batch))
        bodies.append(whole[len(msgpack.packb([1, proto.PROTOCOL_MINOR, 2, args.name, epoch, 0, 0])) :])
    next_beat = time.monotonic()
    while not stop.is_set():
        answer_subscriptions()
        if args.flood:
            for body in bodies:
                seq += 1
                header = msgpack.packb([1, proto.PROTOCOL_MINOR, 2, args.name, epoch, seq, time.time_ns()])
                data = b"\x98" + header[1:] + body
                while not stop.is_set():
                    try:
                        sock.send(data, zmq.DONTWAIT)
                        break
                    except zmq.Again:
                        sock.poll(100, zmq.POLLOUT)
        elif time.monotonic() >= next_beat:
            send(proto.Heartbeat(**head(), mount=args.mount, heartbeat_s=args.heartbeat_s, point_count=len(names)))
            next_beat = time.monotonic() + args.heartbeat_s
        else:
            stop.wait(min(0.02, max(0.0, next_beat - time.monotonic())))
    with contextlib.suppress(zmq.Again):  # the hub is not reading: it will find us silent instead
        sock.send(proto.encode(proto.Bye(**head())), zmq.DONTWAIT)
    sock.close(linger=100)
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
