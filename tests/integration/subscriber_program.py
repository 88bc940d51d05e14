"""A test subscriber: a real process following a prefix with the client library.

Usage: python subscriber_program.py --hub QUERY_EP --prefix P [--rcvhwm N]
       [--key SECRET --hub-key HUB_PUBLIC] [--watch PATH]

Prints ``READY`` once connected (first snapshot loaded), then every 0.1 s a
line ``STATUS {json}`` with ``resyncs``, ``lost`` (no hub heartbeat),
``nodes``, ``digest`` (:func:`harness.tree_digest` of its tree), and for the
``--watch`` path its ``value`` and ``changed_at`` (this process's wall clock
when that value last changed). Exits 0 on SIGTERM/SIGINT; exits 1 with
``FAILED <why>`` when the hub does not let it connect.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from harness import tree_digest

from gsmon.common.client import HubUnavailableError, Subscriber
from gsmon.common.keys import ClientKeys
from gsmon.common.ready import ready_line

STATUS_EVERY_S = 0.1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hub", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--rcvhwm", type=int, default=1_000_000)
    parser.add_argument("--key")
    parser.add_argument("--hub-key")
    parser.add_argument("--watch")
    args = parser.parse_args()
    curve = ClientKeys.load(args.key, args.hub_key) if args.key else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sub = Subscriber(args.hub, args.prefix, timeout_s=3.0, curve=curve, rcvhwm=args.rcvhwm)
    try:
        sub.connect()
    except HubUnavailableError as error:
        print(f"FAILED {error}", flush=True)
        return 1
    print(ready_line(), flush=True)
    value: object = None
    changed_at = 0.0
    next_status = 0.0
    try:
        while not stop.is_set():
            sub.poll(0.02)
            node = sub.tree.get(args.watch) if args.watch else None
            if node is not None and node.value != value:
                value, changed_at = node.value, time.time()
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + STATUS_EVERY_S
                status = {
                    "resyncs": sub.resyncs,
                    "lost": sub.hub_lost,
                    "nodes": len(sub.tree),
                    "digest": tree_digest(sub.tree),
                    "value": value if isinstance(value, int | float | None) else str(value)[:40],
                    "changed_at": changed_at,
                }
                print("STATUS " + json.dumps(status), flush=True)
    finally:
        sub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
