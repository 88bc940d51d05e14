"""Network namespaces a test builds for itself: several hosts for real, on links the test can pull.

Used by test_netns.py (a hub and two agents on a bridge), test_hub_federation.py
(a central hub and two sites) and test_hub_pair_netns.py (the two hubs of a pair
and a station LAN). One place for what they share::

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
import ctypes
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from harness import Process, Processes

__all__ = ["Namespaces", "entered", "gsmon_in", "in_namespace", "ip", "made_namespaces", "must"]

CLONE_NEWNET = 0x40000000  # <sched.h>: setns(2) into a network namespace
NETNS_DIR = Path("/run/netns")  # where `ip netns add` keeps its namespaces
IFNAME_MAX = 15  # IFNAMSIZ - 1


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    """``ip ARGS`` run to completion (never raises on its status)."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


def must(*args: str) -> None:
    """``ip ARGS``, failing the test with ip's own message when it does not succeed."""
    result = ip(*args)
    assert result.returncode == 0, f"ip {' '.join(args)}: {result.stderr.strip()}"


def in_namespace(namespace: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``namespace`` (``ip netns exec`` execs it: the pid is the program's own)."""
    return ["ip", "netns", "exec", namespace, *argv]


def gsmon_in(procs: Processes, namespace: str, name: str, *args: str) -> Process:
    """A ``gsmon ARGS`` child inside ``namespace``."""
    return procs.start(name, in_namespace(namespace, [sys.executable, "-m", "gsmon.common.cli", *args]))


class Namespaces:
    """The namespaces one test run created (``<prefix>-<role>-<suffix>``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.suffix = secrets.token_hex(3)
        self.names: list[str] = []

    def add(self, role: str) -> str:
        """A new namespace with its loopback up (a program in it may bind 127.0.0.1); its name."""
        name = f"{self.prefix}-{role}-{self.suffix}"
        must("netns", "add", name)
        self.names.append(name)
        must("-n", name, "link", "set", "lo", "up")
        return name

    def veth(self, left: str, left_name: str, left_address: str | None,
             right: str, right_name: str, right_address: str | None) -> None:  # fmt: skip
        """A cable: a veth pair from ``left`` to ``right``, each end named, addressed (``10.1.2.3/24``;
        None: no address, e.g. an end made a bridge's port) and up. Made in the two namespaces directly,
        so an end's name need only be unique in its own namespace."""
        assert max(len(left_name), len(right_name)) <= IFNAME_MAX, "interface names are at most 15 characters"
        must("link", "add", left_name, "netns", left, "type", "veth", "peer", "name", right_name, "netns", right)
        for namespace, name, address in ((left, left_name, left_address), (right, right_name, right_address)):
            if address is not None:
                must("-n", namespace, "addr", "add", address, "dev", name)
            must("-n", namespace, "link", "set", name, "up")

    def teardown(self) -> list[str]:
        """Delete every namespace (their veths and bridges go with them); return what failed."""
        problems = []
        for name in reversed(self.names):
            result = ip("netns", "del", name)
            if result.returncode != 0:
                problems.append(f"ip netns del {name}: {result.stderr.strip()}")
        listed = [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]
        problems += [f"{name} still listed" for name in self.names if name in listed]
        return problems


def _why_not() -> str | None:
    """Why this machine cannot run such a test (None: it can, as far as can be told without trying)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    return None


def _probe(spaces: Namespaces) -> str | None:
    """Try what every such test does (a namespace, a process in it, a veth pair); why it failed, or None."""
    name = f"{spaces.prefix}-probe-{spaces.suffix}"
    made = ip("netns", "add", name)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    try:
        entered_ns = subprocess.run(
            in_namespace(name, ["true"]), capture_output=True, text=True, timeout=30, check=False
        )
        if entered_ns.returncode != 0:
            return f"cannot run a process in a network namespace here: {entered_ns.stderr.strip()}"
        veth = ip("-n", name, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
        if veth.returncode != 0:
            return f"cannot create veth pairs here: {veth.stderr.strip()}"
        return None
    finally:
        must("netns", "del", name)


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"network namespaces are required under CI=true: {why}")
    pytest.skip(why)


@contextlib.contextmanager
def made_namespaces(prefix: str) -> Iterator[Namespaces]:
    """A :class:`Namespaces` to add to; every one of them deleted when the block ends, whatever happens."""
    why = _why_not()
    if why is not None:
        _unavailable(why)
    spaces = Namespaces(prefix)
    why = _probe(spaces)
    if why is not None:
        _unavailable(why)
    try:
        yield spaces
    finally:
        problems = spaces.teardown()
        assert not problems, "; ".join(problems)


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """Run this thread inside ``namespace`` for the block (setns(2)), then back where it was.

    A network namespace belongs to a thread: sockets this thread makes in the block
    live in ``namespace`` (and keep living there), and so do the threads it starts
    then, such as the I/O threads of a ZeroMQ context made in the block (the ones
    that connect), and the children it starts. Other threads stay where they are.
    A test uses it to be a client on a host of its network; every socket made in the
    block must be closed in it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(NETNS_DIR / namespace, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {namespace}: {os.strerror(errno)}")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover (only if the kernel refuses the way home)
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns back to this thread's own namespace: {os.strerror(errno)}")
    finally:
        os.close(target)
        os.close(home)
