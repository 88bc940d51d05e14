"""Network namespaces a benchmark or a test builds for itself: several hosts for real, on links it can pull.

One place for the namespace code of the benchmarks (bench/pair_bench.py: the partition between the
two hubs of a pair) and of the integration tests (tests/integration/namespaces.py re-exports all of it
and adds pytest's skip-or-fail and the harness's process registry)::

    why = unavailable("gspair")                   # None: this host can (Linux, root, iproute2, tried once)
    with namespaces("gspair") as spaces:          # every namespace added is deleted when the block ends
        a, b = spaces.add("a"), spaces.add("b")   # gspair-a-<suffix>, lo up
        spaces.veth(a, "tob", "10.79.3.1/24", b, "toa", "10.79.3.2/24")
        start("hub", in_namespace(a, gsmon_argv("hub", ...)))
        must("-n", a, "link", "set", "tob", "down")  # the cable pulled: no RST, no FIN, the packets stop
        with entered(c):                           # this thread's sockets are made in c from here on
            ...

Names carry a random suffix per run, so runs side by side never meet. A
namespace that cannot be deleted at the end raises :class:`NetnsError`.

The hub pair's network (:func:`pair_hosts`, :func:`start_pair`), used by
tests/integration/test_hub_pair_netns.py and bench/pair_bench.py::

    ns a: hub A                          ns c: agents, clients, the HTTP receiver of the webhooks
      toc 10.79.1.1 ------------------ toa 10.79.1.2
      tob 10.79.3.1 ---+
    ns b: hub B        |
      toc 10.79.2.1 ---|-------------- tob 10.79.2.2
      toa 10.79.3.2 ---+ the pair link: the only path between a and b

Only connected routes: a cannot reach 10.79.2.0/24 nor b 10.79.1.0/24
(:func:`pair_hosts` checks), so the peer link (PAIR_SYNC both ways) runs over
the a-b cable and nothing else. Each hub binds its agents and subscribers
endpoints on its address towards c (port 0) and its query endpoint on every
address of its host (``tcp://0.0.0.0``), which clients in c reach over the
a-c / b-c cable and the peer over the a-b one. Each hub must know its peer's
query endpoint before it starts, so hub A is first started once on its own
only to learn the port its host gives it (reported on its ready line; nothing
else runs on a until A is back, so the port stays free), then B with
``--peer`` at A's a-b address and that port, then A again, on that port, with
``--peer`` at B's a-b address and the port B reported.

Needs Linux, root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gsmon.common.children import Child, gsmon_argv

__all__ = [
    "PAIR_ADDRESSES",
    "Namespaces",
    "NetnsError",
    "PairHosts",
    "PairHub",
    "entered",
    "in_namespace",
    "ip",
    "must",
    "namespaces",
    "pair_hosts",
    "start_pair",
    "unavailable",
]

CLONE_NEWNET: Final = 0x40000000  # <sched.h>: setns(2) into a network namespace
NETNS_DIR: Final = Path("/run/netns")  # where `ip netns add` keeps its namespaces
IFNAME_MAX: Final = 15  # IFNAMSIZ - 1


class NetnsError(RuntimeError):
    """An ``ip`` command that had to succeed did not, or a namespace outlived its block."""


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    """``ip ARGS`` run to completion (never raises on its status)."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


def must(*args: str) -> None:
    """``ip ARGS``; :class:`NetnsError` with ip's own message when it does not succeed."""
    result = ip(*args)
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def in_namespace(namespace: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``namespace`` (``ip netns exec`` execs it: the pid is the program's own)."""
    return ["ip", "netns", "exec", namespace, *argv]


class Namespaces:
    """The namespaces one run created (``<prefix>-<role>-<suffix>``)."""

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
        if max(len(left_name), len(right_name)) > IFNAME_MAX:
            raise NetnsError(f"interface names are at most {IFNAME_MAX} characters: {left_name}, {right_name}")
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
    """Why this machine cannot run namespaces, as far as can be told without trying (None: it may)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    return None


def _probe(prefix: str) -> str | None:
    """Try what every user does (a namespace, a process in it, a veth pair); why it failed, or None."""
    name = f"{prefix}-probe-{secrets.token_hex(3)}"
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


def unavailable(prefix: str) -> str | None:
    """Why namespaces cannot be built on this host (checked, then tried once under ``prefix``); None: they can."""
    return _why_not() or _probe(prefix)


@contextlib.contextmanager
def namespaces(prefix: str) -> Iterator[Namespaces]:
    """A :class:`Namespaces` to add to; every one of them deleted when the block ends, whatever happens."""
    spaces = Namespaces(prefix)
    try:
        yield spaces
    finally:
        problems = spaces.teardown()
        if problems:
            raise NetnsError("; ".join(problems))


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """Run this thread inside ``namespace`` for the block (setns(2)), then back where it was.

    A network namespace belongs to a thread: sockets this thread makes in the block
    live in ``namespace`` (and keep living there), and so do the threads it starts
    then, such as the I/O threads of a ZeroMQ context made in the block (the ones
    that connect) or an HTTP server's, and the children it starts. Other threads
    stay where they are. A test or a benchmark uses it to be a client on a host of
    its network; every socket made in the block must be closed in it.
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


# -- the hub pair's network: hosts a and b (the hubs), c (the station LAN) -------------------------------

# Each host's address on each cable: (host, towards) -> address.
PAIR_ADDRESSES: Final = {
    ("a", "c"): "10.79.1.1", ("c", "a"): "10.79.1.2",
    ("b", "c"): "10.79.2.1", ("c", "b"): "10.79.2.2",
    ("a", "b"): "10.79.3.1", ("b", "a"): "10.79.3.2",
}  # fmt: skip
PAIR_LINK: Final = ("a", "tob")  # the a-b cable's end in a: `ip -n <a> link set tob down` partitions the pair


@dataclass(frozen=True)
class PairHosts:
    """The three namespaces of one run (a, b: the hubs; c: the station LAN)."""

    a: str
    b: str
    c: str

    def of(self, host: str) -> str:
        return {"a": self.a, "b": self.b, "c": self.c}[host]

    def pair_link(self, up: bool) -> None:
        """Plug the a-b cable back (``up``) or pull it at a's end: no RST, no FIN, the packets stop."""
        must("-n", self.of(PAIR_LINK[0]), "link", "set", PAIR_LINK[1], "up" if up else "down")


def pair_hosts(spaces: Namespaces) -> PairHosts:
    """Hosts a, b, c added to ``spaces`` and the cables a-c, b-c, a-b (addresses: :data:`PAIR_ADDRESSES`)."""
    made = PairHosts(spaces.add("a"), spaces.add("b"), spaces.add("c"))
    for left, right in (("a", "c"), ("b", "c"), ("a", "b")):
        spaces.veth(made.of(left), f"to{right}", f"{PAIR_ADDRESSES[left, right]}/24",
                    made.of(right), f"to{left}", f"{PAIR_ADDRESSES[right, left]}/24")  # fmt: skip
    # The pair link is the only path between the hubs' hosts: no route through c (a host's own
    # cables are all it has routes for), whatever c would forward.
    for host, other in (("a", ("b", "c")), ("b", ("a", "c"))):
        route = ip("-n", made.of(host), "route", "get", PAIR_ADDRESSES[other])
        if route.returncode == 0:
            raise NetnsError(f"{host} has a route to {PAIR_ADDRESSES[other]} through c: {route.stdout}")
    return made


@dataclass(frozen=True)
class PairHub:
    """A hub of the pair as a client reaches it: from c (clients, agents) and from its own host (its notifier)."""

    name: str  # "a" or "b"
    process: Child
    query: str  # from c, over the cable to c
    agents: str
    query_port: str

    @property
    def local_query(self) -> str:
        return f"tcp://127.0.0.1:{self.query_port}"


def _port(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[1]


Start = Callable[[str, Sequence[str]], Child]  # a process registry's start(name, argv): reaped by its owner


def _hub(start: Start, hosts: PairHosts, me: str, query_port: str, peer: str | None,
         state_dir: Path, hub_args: Sequence[str], peer_timeout_s: str) -> PairHub:  # fmt: skip
    """Hub ``me`` in its namespace (``peer``: the peer's query endpoint; None: a hub on its own)."""
    towards_c = PAIR_ADDRESSES[me, "c"]
    args = ["hub", "--agents", f"tcp://{towards_c}:0", "--subscribers", f"tcp://{towards_c}:0",
            "--query", f"tcp://0.0.0.0:{query_port}", *hub_args]  # fmt: skip
    if peer is None:
        args += ["--state-dir", ""]
    else:
        args += ["--peer", peer, "--hub-id", f"hub-{me}", "--peer-timeout-s", peer_timeout_s]
        args += ["--state-dir", str(state_dir / f"state-{me}")]
    process = start(f"hub-{me}" if peer else f"hub-{me}-port", in_namespace(hosts.of(me), gsmon_argv(*args)))
    fields = process.ready()
    port = _port(fields["query"])
    if query_port not in ("0", port):
        raise NetnsError(f"hub {me} asked for port {query_port}, bound {fields['query']}")
    return PairHub(me, process, f"tcp://{towards_c}:{port}", fields["agents"], port)


def start_pair(start: Start, hosts: PairHosts, state_dir: Path, hub_args: Sequence[str],
               peer_timeout_s: str) -> tuple[PairHub, PairHub]:  # fmt: skip
    """Hubs A and B (``hub-a`` < ``hub-b``: A is the sender while both are up), each the other's peer over
    the a-b cable, started through ``start`` (the order: see the module docstring)."""
    first_a = _hub(start, hosts, "a", "0", None, state_dir, hub_args, peer_timeout_s)
    status = first_a.process.stop()
    if status != 0:
        raise NetnsError(f"hub a, started only to learn its port, exited with status {status}")
    b_peer = f"tcp://{PAIR_ADDRESSES['a', 'b']}:{first_a.query_port}"
    b = _hub(start, hosts, "b", "0", b_peer, state_dir, hub_args, peer_timeout_s)
    a_peer = f"tcp://{PAIR_ADDRESSES['b', 'a']}:{b.query_port}"
    a = _hub(start, hosts, "a", first_a.query_port, a_peer, state_dir, hub_args, peer_timeout_s)
    return a, b
