"""A test agent: a real process running a Monitor with points described in JSON.

Usage: python agent_program.py --hub EP [--hub EP2] --name NAME [--mount PATH] --spec JSON

The spec::

    {"parents": {"Drive": null, "Motors": "Drive"},
     "points": [{"name": "Az", "parent": "Drive", "value": 1.5, "alert": "RED", "dt": 0.2},
                {"name": "Counter", "counter": true, "dt": 0.1},
                {"name": "Ctl", "file": "/tmp/x.json", "dt": 0.1},
                {"name": "Clock", "clock": true, "dt": 0.05},
                {"name": "Blob", "counter": true, "pad": 10000, "dt": 0.05}]}

``counter`` points return 1, 2, 3...; ``file`` points return the JSON
``[value, "ALERT"]`` read from the file at each poll (tests change it);
``clock`` points return the wall-clock time of the poll (latency probes);
``pad`` turns a counter's value into the text ``"<n>:"`` followed by that many
bytes (bulk traffic); ``blip`` points (``{"name": "Door", "blip": "/tmp/n"}``)
are GREEN, and RED for exactly one poll each time the number in that file
grows (a blip shorter than a flush). A top-level ``"flush_s"`` sets the
publisher's flush interval (default 0.02 s). A point may carry the decorator's debounce settings
(``"for_s": 10``, ``"m_of_n": [3, 5]``...) and ``"log_alerts": true`` (its alert
and debounce lines at WARNING). ``--key``/``--hub-key`` make the agent a CURVE client.
Log lines (INFO and above, as ``gsmon agent`` writes them) go to stderr.
The program prints ``READY`` once the Monitor runs and exits 0 on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gsmon.agent import Alert, CriticalAlert, GreenAlert, Monitor, NoAlert, OrangeAlert, RedAlert
from gsmon.agent.debounce import DEBOUNCE_KEYS
from gsmon.agent.publisher import PublisherSettings
from gsmon.common.keys import ClientKeys
from gsmon.common.ready import ready_line

ALERTS: dict[str, type[Alert]] = {
    "NONE": NoAlert,
    "GREEN": GreenAlert,
    "ORANGE": OrangeAlert,
    "RED": RedAlert,
    "CRITICAL": CriticalAlert,
}


def _source(point: dict[str, Any]) -> Any:
    alert = ALERTS[point.get("alert", "NONE")]
    if point.get("clock"):
        return lambda: alert(time.time())
    if point.get("counter"):
        counter = itertools.count(1)
        if point.get("pad"):
            padding = "x" * int(point["pad"])
            return lambda: alert(f"{next(counter)}:{padding}")
        return lambda: alert(next(counter))
    if "blip" in point:
        trigger, seen = Path(point["blip"]), [0]

        def blip() -> Alert:
            try:
                wanted = int(trigger.read_text() or 0)
            except (OSError, ValueError):
                wanted = seen[0]
            if wanted > seen[0]:
                seen[0] = wanted
                return RedAlert(wanted)
            return GreenAlert(seen[0])

        return blip
    if "file" in point:
        path = Path(point["file"])

        def read() -> Alert:
            value, label = json.loads(path.read_text())
            return ALERTS[label](value)

        return read
    value = point.get("value")
    return lambda: alert(value)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hub", action="append", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--mount")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--heartbeat-s", type=float, default=0.2)
    parser.add_argument("--key", help="this agent's secret key file (CURVE, with --hub-key)")
    parser.add_argument("--hub-key", help="the hub's public key file")
    args = parser.parse_args()
    # As `gsmon agent` does: INFO and above on stderr (tests read the link's messages there).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = json.loads(args.spec)
    curve = ClientKeys.load(args.key, args.hub_key) if args.key else None
    mon = Monitor(
        hub=args.hub,
        agent=args.name,
        mount=args.mount,
        publisher=PublisherSettings(
            flush_interval_s=float(spec.get("flush_s", 0.02)),
            heartbeat_interval_s=args.heartbeat_s,
            state_interval_s=5.0,
        ),
        curve=curve,
    )
    for name, parent in spec.get("parents", {}).items():
        mon.register_parent(name, parent)
    for point in spec.get("points", []):
        # Debounce settings as the decorator takes them; "log_alerts": alert and debounce lines at WARNING.
        extra: dict[str, Any] = {key: point[key] for key in DEBOUNCE_KEYS if key in point}
        if "m_of_n" in extra:
            extra["m_of_n"] = tuple(extra["m_of_n"])
        if point.get("log_alerts"):
            extra.update(loglvl_alerts=logging.WARNING, logthr_alerts=0)
        mon.monitor(point=point["name"], dt=point.get("dt", 0.2), parent=point.get("parent"), **extra)(_source(point))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    mon.start()
    print(ready_line(), flush=True)
    while not stop.wait(0.25):  # timed: a SIGTERM taken by another thread runs its handler only then
        pass
    mon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
