"""A small real process that serves the hub's ``journal`` command on a ZeroMQ ROUTER, per common/protocol.py.

Usage: python journal_server_program.py ENTRIES_FILE [--refuse]

Stands in for the hub's query socket in the notifier's tests: it binds
``tcp://127.0.0.1:0``, prints ``READY query=<endpoint>``, and answers every
COMMAND ``journal`` {after_id, prefix, limit} with COMMAND_RESULT
{"entries": [...], "last_id": n} from ENTRIES_FILE (JSON lines, one journal
entry each, appended by the test; re-read for every request, so a restarted
server keeps its journal and its ids, like the hub's state store). Other
commands get ok=false reason "unknown-command"; ``--refuse`` refuses the
journal command too (reason "forbidden"), like a hub that says no. Each
request is printed as ``REQUEST <json args>``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from gsmon.common import protocol as proto
from gsmon.common.ready import ready_line


def in_prefix(path: str, prefix: str) -> bool:
    if not path.startswith(prefix):
        return False
    return not prefix or prefix[-1] == "/" or len(path) == len(prefix) or path[len(prefix)] == "/"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("entries", type=Path)
    parser.add_argument("--refuse", action="store_true")
    args = parser.parse_args()
    running = {"on": True}
    signal.signal(signal.SIGTERM, lambda *_: running.update(on=False))
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind("tcp://127.0.0.1:0")
    endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
    print(ready_line(query=endpoint), flush=True)
    seq = 0
    while running["on"]:
        if not router.poll(100):
            continue
        frames = router.recv_multipart()
        try:
            request = proto.decode(frames[-1])
        except proto.ProtocolError as error:
            print(f"BAD {error}", file=sys.stderr, flush=True)
            continue
        if not isinstance(request, proto.Command):
            continue
        print("REQUEST " + json.dumps({"command": request.command, "args": request.args}), flush=True)
        result: Any
        if request.command != "journal":
            ok, message, result = False, f"unknown command {request.command!r}", {"reason": "unknown-command"}
        elif args.refuse:
            ok, message, result = False, "this key may not read the journal", {"reason": "forbidden"}
        else:
            after_id = int(request.args.get("after_id", 0))
            prefix = str(request.args.get("prefix") or "")
            limit = int(request.args.get("limit", 1000))
            lines = args.entries.read_text().splitlines() if args.entries.exists() else []
            journal = [json.loads(line) for line in lines if line.strip()]
            chosen = [e for e in journal if e["id"] > after_id and in_prefix(e["path"], prefix)][:limit]
            last_id = chosen[-1]["id"] if len(chosen) == limit else max([after_id, *(e["id"] for e in journal)])
            ok, message, result = True, f"{len(chosen)} entries", {"entries": chosen, "last_id": last_id}
        seq += 1
        reply = proto.CommandResult(
            sender="fake-hub",
            epoch=1,
            seq=seq,
            sent_ns=time.time_ns(),
            request_id=request.request_id,
            ok=ok,
            message=message,
            result=result,
        )
        router.send_multipart([*frames[:-1], proto.encode(reply)])
    context.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
