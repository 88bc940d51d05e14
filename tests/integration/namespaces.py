"""Network namespaces a test builds for itself: several hosts for real, on links the test can pull.

Used by test_netns.py (a hub and two agents on a bridge), test_hub_federation.py
(a central hub and two sites) and test_hub_pair_netns.py (the two hubs of a pair
and a station LAN). The namespace code itself is bench/netns.py, which
bench/pair_bench.py uses too (the partition between the hubs of a pair,
measured); this module re-exports it and adds what only tests need: skip or
fail when the host cannot (:func:`made_namespaces`) and children in the
harness's registry (:func:`gsmon_in`)::

    with made_namespaces("gspair") as spaces:      # skips (fails under CI=true) when this host cannot
        a, b = spaces.add("a"), spaces.add("b")    # gspair-a-<suffix>, lo up; deleted at the end
        spaces.veth(a, "tob", "10.79.3.1/24", b, "toa", "10.79.3.2/24")
        procs.start("hub", in_namespace(a, [sys.executable, "-m", "gsmon.common.cli", "hub", ...]))
        must("-n", a, "link", "set", "tob", "down")  # the cable pulled: no RST, no FIN, the packets stop
        with entered(c):                            # this thread's sockets are made in c from here on
            Subscriber(...)

Names carry a random suffix per run, so runs side by side never meet. Every
namespace (and with it every veth and bridge in it) is deleted when the block
ends, also when the test fails; a namespace left behind fails the test.

Needs Linux, root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2. Without them the
test is skipped with the reason, except under ``CI=true``, where it fails
(CI runs as root: a test that cannot build its network there is broken, not
inapplicable).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import pytest
from harness import Process, Processes

from bench.netns import (
    PAIR_ADDRESSES,
    Namespaces,
    NetnsError,
    PairHosts,
    PairHub,
    entered,
    in_namespace,
    ip,
    must,
    namespaces,
    pair_hosts,
    start_pair,
    unavailable,
)

__all__ = [
    "PAIR_ADDRESSES",
    "Namespaces",
    "NetnsError",
    "PairHosts",
    "PairHub",
    "entered",
    "gsmon_in",
    "in_namespace",
    "ip",
    "made_namespaces",
    "must",
    "pair_hosts",
    "start_pair",
]


def gsmon_in(procs: Processes, namespace: str, name: str, *args: str) -> Process:
    """A ``gsmon ARGS`` child inside ``namespace``."""
    return procs.start(name, in_namespace(namespace, [sys.executable, "-m", "gsmon.common.cli", *args]))


@contextlib.contextmanager
def made_namespaces(prefix: str) -> Iterator[Namespaces]:
    """A :class:`Namespaces` to add to; every one of them deleted when the block ends, whatever happens.
    Skips the test when this host cannot build them (fails it under ``CI=true``)."""
    why = unavailable(prefix)
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"network namespaces are required under CI=true: {why}")
        pytest.skip(why)
    with namespaces(prefix) as spaces:
        yield spaces
