"""Socket setup shared by every gsmon process: one place for the ZeroMQ options.

Every socket is made by :func:`make_socket`, so none can be created without
``LINGER`` (the default of -1 makes ``Context.term()`` hang on unsent
messages), and every bind goes through :func:`bind`, which accepts port 0,
binds an OS-chosen port and returns the real endpoint for the ready line.

Connection-level ZMTP heartbeats are switched on for TCP so that a peer that
vanished without closing its connection (power cut, cable pulled) is noticed
by libzmq, which then reconnects; they complement, never replace, the
application heartbeats of the protocol. Reconnects back off up to
:data:`RECONNECT_IVL_MAX_MS` so that a hub restart does not meet a storm.

:func:`listen` makes a listening socket in Python and :func:`bind` hands
libzmq a duplicate of it (``ZMQ_USE_FD``): the hub keeps the original for its
lifetime, so rebuilding a socket never releases its port to another process.

:class:`LinkWatch` is the one reader of a connecting socket's monitor events
(the agent's links, the client's query and subscriber sockets): it turns them
into what went wrong, said in one line with what to do. What libzmq 4.3.5
reports on the connecting side, found by experiment against real sockets:

=====================================  ==============================================================
situation                              events on the connecting socket
=====================================  ==============================================================
nothing listening (refused)            CONNECT_DELAYED, CLOSED, CONNECT_RETRIED ... (never CONNECTED)
handshake succeeds                     CONNECTED, HANDSHAKE_SUCCEEDED
key not in the hub's allow-list        CONNECTED, HANDSHAKE_FAILED_AUTH (value: ZAP status 400),
                                       DISCONNECTED; libzmq does not retry (a protocol error ends
                                       the session)
wrong hub public key                   CONNECTED, HANDSHAKE_FAILED_NO_DETAIL (EPIPE: the hub cannot
                                       open our HELLO and hangs up; it sees FAILED_PROTOCOL
                                       ZMTP_CRYPTOGRAPHIC), DISCONNECTED, CONNECT_RETRIED: retried
no keys against a keyed hub (or the    CONNECTED, HANDSHAKE_FAILED_PROTOCOL (ZMTP_MECHANISM_MISMATCH),
reverse)                               DISCONNECTED; not retried
another socket type (a DEALER on the   CONNECTED, DISCONNECTED with no handshake event; not retried
agents or subscribers port)            (a keyed hub hanging up on a keyless client can look like this
                                       until its MECHANISM_MISMATCH event arrives)
no handshake in time (a hub too busy  CONNECTED, then after HANDSHAKE_IVL_MS (5 s)
to greet, a stopped one, or something  HANDSHAKE_FAILED_NO_DETAIL (EAGAIN: our own handshake timer),
that is not ZeroMQ at all)             DISCONNECTED, CONNECT_RETRIED: retried; keys or not alike
=====================================  ==============================================================

Where libzmq does not retry, the owner of the socket must close it and make a
new one (:attr:`LinkWatch.needs_new_socket`), with :class:`Backoff`.

Hot paths (the hub's publish loop and its agents' reads) send and receive
through :func:`fast_send`, :func:`fast_recv` and :func:`fast_get`: see
:func:`choose_fast_path` for what they are and why they are version-bound.

The rules for endpoint text (:func:`endpoint_problem`, :func:`parse_endpoint`,
the default ports...) live in :mod:`gsmon.common.endpoints`, which needs no
ZeroMQ (configuration checks and the CLI use them without loading libzmq);
they are re-exported here for the socket code.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import itertools
import logging
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, cast

import zmq

from gsmon.common.endpoints import (
    DEFAULT_AGENTS_PORT,
    DEFAULT_QUERY_PORT,
    DEFAULT_SUBSCRIBERS_PORT,
    default_endpoint,
    endpoint_problem,
    host_of,
    is_loopback,
    parse_endpoint,
    with_host,
)

__all__ = [
    "DEFAULT_AGENTS_PORT",
    "DEFAULT_QUERY_PORT",
    "DEFAULT_SUBSCRIBERS_PORT",
    "FAST_PATH",
    "MONITOR_EVENTS",
    "PYZMQ_CHECKED_MAJOR",
    "Backoff",
    "LinkProblem",
    "LinkWatch",
    "SocketOptions",
    "bind",
    "choose_fast_path",
    "default_endpoint",
    "describe_problem",
    "endpoint_problem",
    "fast_get",
    "fast_recv",
    "fast_recv_frame",
    "fast_send",
    "host_of",
    "is_loopback",
    "listen",
    "make_socket",
    "monitor_socket",
    "parse_endpoint",
    "publisher_options",
    "with_host",
]

log = logging.getLogger(__name__)

RECONNECT_IVL_MS: Final = 100
RECONNECT_IVL_MAX_MS: Final = 5000
ZMTP_HEARTBEAT_IVL_MS: Final = 2000
ZMTP_HEARTBEAT_TIMEOUT_MS: Final = 6000
HANDSHAKE_IVL_MS: Final = 5000


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """The options a socket gets before it binds or connects."""

    linger_ms: int = 0
    sndhwm: int = 1000
    rcvhwm: int = 1000
    max_msg_bytes: int = -1  # -1: no limit (set on sockets that read untrusted peers)
    zmtp_heartbeats: bool = True
    xpub_verbose: bool = False  # XPUB: pass every (un)subscription up, not only the first


def publisher_options(sndhwm: int) -> SocketOptions:
    """An agent's (or a site hub's upstream) XPUB: every (un)subscription passed up, and no receive limit.

    What an XPUB receives is the hubs' (un)subscriptions only -- tiny, and as many as a hub sends: a hub
    restarted under thousands of agents sends each of them a resync request per agent. With a receive
    limit the pipe fills, libzmq stops reading the connection, ZMTP heartbeats then time out and on the
    reconnect libzmq 4.3.5 aborts the whole process (``Assertion failed: _input_stopped``, libzmq issue
    3937, still open; seen killing a 750-agent bench fleet). With none, input never stops."""
    return SocketOptions(sndhwm=sndhwm, rcvhwm=0, xpub_verbose=True)


def make_socket(context: zmq.Context[zmq.Socket[bytes]], socket_type: int, options: SocketOptions) -> zmq.Socket[bytes]:
    """Create a socket with every option set before any bind or connect."""
    sock = context.socket(socket_type)
    sock.setsockopt(zmq.LINGER, options.linger_ms)
    sock.setsockopt(zmq.SNDHWM, options.sndhwm)
    sock.setsockopt(zmq.RCVHWM, options.rcvhwm)
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
    sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_IVL_MS)
    if options.max_msg_bytes >= 0:
        sock.setsockopt(zmq.MAXMSGSIZE, options.max_msg_bytes)
    if options.zmtp_heartbeats:
        # Must be set before connect/bind to take effect (libzmq applies them per new session).
        sock.setsockopt(zmq.HEARTBEAT_IVL, ZMTP_HEARTBEAT_IVL_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ZMTP_HEARTBEAT_TIMEOUT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TTL, ZMTP_HEARTBEAT_TIMEOUT_MS)
    if options.xpub_verbose:
        sock.setsockopt(zmq.XPUB_VERBOSER, 1)
    return sock


def bind(sock: zmq.Socket[bytes], endpoint: str, listener: socket.socket | None = None) -> str:
    """Bind ``endpoint`` (port 0 or * = any free port) and return the real endpoint.

    With ``listener`` (from :func:`listen`), libzmq gets a duplicate of its
    file descriptor (``ZMQ_USE_FD``, which it closes with the socket) instead
    of binding a port itself; ``endpoint`` then only names the transport.
    """
    transport, host, port = parse_endpoint(endpoint)
    if transport == "tcp" and port == "0":
        endpoint = f"tcp://{host}:*"
    if listener is not None:
        sock.setsockopt(zmq.USE_FD, os.dup(listener.fileno()))
    sock.bind(endpoint)
    real = sock.getsockopt(zmq.LAST_ENDPOINT)
    assert isinstance(real, bytes)
    return real.decode()


def listen(endpoint: str, backlog: int = 1024) -> socket.socket | None:
    """A listening socket for a ``tcp://`` or ``ipc://`` endpoint, or None where only libzmq can bind it
    (inproc, an interface name as host); raises ``OSError`` (e.g. EADDRINUSE) like a bind would.

    Options as libzmq's own listener sets them: ``SO_REUSEADDR`` (a restarted
    hub rebinds at once), non-blocking (libzmq's I/O thread must never block
    in ``accept``), close-on-exec. An ipc path that holds a stale socket file
    is replaced, as libzmq does; ``ipc://@name`` is the abstract namespace.
    """
    scheme, host, port = parse_endpoint(endpoint)
    if scheme == "ipc":
        path = endpoint.partition("://")[2]
        if path == "*" or path.startswith("*"):
            return None  # libzmq picks a temporary name
        address = "\0" + path[1:] if path.startswith("@") else path
        if not path.startswith("@"):
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            unix.bind(address)
            unix.listen(backlog)
        except BaseException:
            unix.close()
            raise
        unix.setblocking(False)
        return unix
    if scheme != "tcp":
        return None
    bare = host.strip("[]")
    if bare in ("*", ""):
        bare = "0.0.0.0"
    try:
        infos = socket.getaddrinfo(bare, 0 if port in ("*", "0") else int(port), type=socket.SOCK_STREAM)
    except socket.gaierror:
        return None  # e.g. an interface name ("eth0"): libzmq resolves those itself
    # IPv4 first, as libzmq resolves a name (its IPv6 is off by default).
    family, kind, proto, _, sockaddr = min(infos, key=lambda info: info[0] != socket.AF_INET)
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind(sockaddr)
        listener.listen(backlog)
    except BaseException:
        listener.close()
        raise
    listener.setblocking(False)
    return listener


# ----------------------------------------------------------------------------
# What a connecting socket's monitor says
# ----------------------------------------------------------------------------

MONITOR_EVENTS: Final = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_CONNECT_RETRIED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


_MONITOR_NAMES: Final = itertools.count(1)
# HANDSHAKE_FAILED_NO_DETAIL's value when the connecting side's own HANDSHAKE_IVL ran out (libzmq 4.3.5:
# EAGAIN; ETIMEDOUT too, should another version say it so).
_HANDSHAKE_TIMED_OUT: Final = frozenset({errno.EAGAIN, errno.ETIMEDOUT})


def monitor_socket(sock: zmq.Socket[bytes], events: int) -> zmq.Socket[bytes]:
    """``sock.get_monitor_socket(events)`` on an endpoint no other monitor ever used.

    pyzmq names the endpoint after the socket's file descriptor, which the
    next socket may get again while libzmq still holds the old name: a
    replaced socket's monitor would fail with EADDRINUSE.
    """
    return sock.get_monitor_socket(events, addr=f"inproc://gsmon-monitor-{os.getpid()}-{next(_MONITOR_NAMES)}")


class LinkProblem(enum.Enum):
    """What most likely went wrong on a link (see the module docstring for the events behind each)."""

    NOTHING_LISTENING = "nothing listening"
    KEYS_REQUIRED = "keys required"
    KEYS_NOT_USED = "keys not used"
    KEY_REFUSED = "key refused"
    HUB_KEY_MISMATCH = "hub key mismatch"
    WRONG_SOCKET_TYPE = "wrong socket type"
    HANDSHAKE_TIMEOUT = "no handshake in time"


def describe_problem(problem: LinkProblem, endpoint: str, *, who: str = "this client", what: str = "hub") -> str:
    """One line saying what went wrong and what to do (``who``: "this agent" or "this client")."""
    if problem is LinkProblem.NOTHING_LISTENING:
        return f"nothing is listening at {endpoint} (connection refused): is the hub running, and is this its address?"
    if problem is LinkProblem.KEYS_REQUIRED:
        return (
            f"the hub at {endpoint} requires CURVE keys: give {who} its key and the hub's public key (--key/--hub-key)"
        )
    if problem is LinkProblem.KEYS_NOT_USED:
        return f"the hub at {endpoint} does not use keys: leave out --key/--hub-key"
    if problem is LinkProblem.KEY_REFUSED:
        return (
            f"the hub at {endpoint} refused {who}'s key: it is not (or no longer) in the hub's allow-list "
            "(register it there with gsmon keys)"
        )
    if problem is LinkProblem.HUB_KEY_MISMATCH:
        return (
            f"the handshake with {endpoint} failed: the hub's public key does not match the one {who} "
            "was given (--hub-key), or this is another hub"
        )
    if problem is LinkProblem.HANDSHAKE_TIMEOUT:
        # Not "wrong socket type": a wrong socket hangs up at once; this one said nothing for 5 s.
        return (
            f"no reply from {endpoint} within {HANDSHAKE_IVL_MS / 1000:g} s of connecting (no handshake): "
            "the hub there may be overloaded or stopped (it answers once it catches up: try again, and look "
            f"at its load), or {endpoint} is not the {what} endpoint (check the address and port)"
        )
    return f"{endpoint} is not the {what} endpoint: the socket there is of another kind (a different hub port?)"


@dataclass(slots=True)
class LinkWatch:
    """Reads one connecting socket's monitor events; a pure state machine (:meth:`feed` takes them one by one).

    ``uses_keys``: whether this side is a CURVE client (a mechanism mismatch
    then means the hub has no keys rather than that it wants some).
    """

    uses_keys: bool
    connected: bool = False  # a TCP connection is up (handshake maybe not yet)
    handshaken: bool = False  # the ZMTP handshake succeeded on the current connection
    problem: LinkProblem | None = None  # the latest failure, until a handshake succeeds
    needs_new_socket: bool = False  # libzmq will not retry this one: close it, make another
    ever_handshaken: bool = False
    _failed_this_connection: bool = field(default=False, repr=False)

    def feed(self, event: int, value: int) -> LinkProblem | None:
        """Take one event; return a problem when this event revealed one (else None)."""
        if event == zmq.EVENT_CONNECTED:
            self.connected, self.handshaken, self._failed_this_connection = True, False, False
            return None
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshaken = self.ever_handshaken = True
            self.problem = None
            self.needs_new_socket = False
            return None
        if event == zmq.EVENT_CONNECT_RETRIED:
            if not self.connected and self.problem is None:
                return self._found(LinkProblem.NOTHING_LISTENING, final=False)
            return None
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self._failed_this_connection = True
            return self._found(LinkProblem.KEY_REFUSED, final=True)
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            self._failed_this_connection = True
            if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                problem = LinkProblem.KEYS_NOT_USED if self.uses_keys else LinkProblem.KEYS_REQUIRED
            elif self.uses_keys:
                problem = LinkProblem.HUB_KEY_MISMATCH
            else:
                problem = LinkProblem.WRONG_SOCKET_TYPE
            return self._found(problem, final=True)
        if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            self._failed_this_connection = True
            if value in _HANDSHAKE_TIMED_OUT:
                # Our handshake timer ran out: the other side said nothing at all (too busy, stopped, or
                # not ZeroMQ). With keys or without: not evidence of a wrong key or a wrong socket type.
                return self._found(LinkProblem.HANDSHAKE_TIMEOUT, final=False)
            # The hub hung up mid-handshake: with CURVE, it could not open our HELLO.
            return self._found(
                LinkProblem.HUB_KEY_MISMATCH if self.uses_keys else LinkProblem.WRONG_SOCKET_TYPE, final=False
            )
        if event == zmq.EVENT_DISCONNECTED:
            was_connected, handshaken = self.connected, self.handshaken
            self.connected = self.handshaken = False
            if was_connected and not handshaken and not self._failed_this_connection:
                # Closed during the greeting with no handshake event: most likely the socket types
                # do not match. Not taken as final: a keyed hub that hangs up on a client without
                # keys can look the same until its mechanism-mismatch event follows, which then
                # replaces this verdict.
                return self._found(LinkProblem.WRONG_SOCKET_TYPE, final=False)
            return None
        return None

    def _found(self, problem: LinkProblem, *, final: bool) -> LinkProblem:
        self.problem = problem
        if final:
            self.needs_new_socket = True
        return problem

    def new_socket(self) -> None:
        """The owner replaced the socket: start over (the last problem is kept until a handshake succeeds)."""
        self.connected = self.handshaken = self.needs_new_socket = self._failed_this_connection = False


@dataclass(slots=True)
class Backoff:
    """Delays that double from ``first_s`` up to ``max_s`` (1, 2, 4 ... 30 s), and start over on :meth:`reset`."""

    first_s: float = 1.0
    max_s: float = 30.0
    _next_s: float = field(default=0.0, repr=False)

    def next_delay(self) -> float:
        delay = self._next_s or self.first_s
        self._next_s = min(self.max_s, delay * 2)
        return delay

    def reset(self) -> None:
        self._next_s = 0.0


# ----------------------------------------------------------------------------
# The hot-path shortcut into pyzmq's Cython socket
# ----------------------------------------------------------------------------

#: The newest pyzmq major version the shortcut was checked against (27.3.0, libzmq 4.3.5):
#: tests/unit/test_transport_fast_path.py proves it equivalent to the public API there.
PYZMQ_CHECKED_MAJOR: Final = 27

SendFunction = Callable[..., Any]  # (sock, data, flags) -> None (typed loosely: pyzmq's own stubs overload it)
RecvFunction = Callable[..., bytes]  # (sock, flags) -> bytes
GetFunction = Callable[..., Any]  # (sock, option) -> int for RCVMORE


def choose_fast_path(pyzmq_major: int) -> tuple[SendFunction, RecvFunction, GetFunction, bool]:
    """The ``(send, recv, get)`` functions for hot paths under this pyzmq major, and whether they are the shortcut.

    ``zmq.Socket`` (pyzmq's "sugar" class, written in Python) subclasses the
    Cython ``zmq.backend.Socket``; its ``send`` only adds the DRAFT
    ``routing_id``/``group`` arguments before calling the Cython one, and
    ``recv_multipart`` is a Python loop around the Cython ``recv``. Called
    unbound on a socket, the Cython methods skip that Python frame: the hub's
    publish loop goes from 2.5 to 1.0 us an update, and a small agent
    message's read is a fifth cheaper (0.75 us). They are the same functions
    the public API ends in, with the same arguments, frames, flags and errors
    (tests/unit/test_transport_fast_path.py checks that on an inproc pair).

    But ``zmq.backend.Socket`` is pyzmq's internal layer, not its API: a new
    major version may rename it or change what the sugar adds on top (a new
    major version is where pyzmq allows itself such changes). So the
    shortcut is used only up to :data:`PYZMQ_CHECKED_MAJOR`; above it (or if
    the backend lacks the methods) the public methods are used, called the
    same way, and a DEBUG line says so once: correct everywhere, and only
    as fast as the public API until someone checks the new version and
    raises the bound.
    """
    backend = getattr(getattr(zmq, "backend", None), "Socket", None)
    usable = backend is not None and all(callable(getattr(backend, name, None)) for name in ("send", "recv", "get"))
    if pyzmq_major <= PYZMQ_CHECKED_MAJOR and usable:
        assert backend is not None
        return backend.send, backend.recv, backend.get, True
    log.debug(
        "pyzmq %s is newer than the %d.x the hot-path shortcut was checked against (or lacks zmq.backend.Socket): "
        "using pyzmq's public Socket.send/recv",
        zmq.pyzmq_version(),
        PYZMQ_CHECKED_MAJOR,
    )
    return zmq.Socket.send, zmq.Socket.recv, zmq.Socket.get, False


#: ``fast_send(sock, data, flags)``: ``sock.send(data, flags)`` for one bytes frame, without pyzmq's
#: Python layer (:func:`choose_fast_path`). Module-level names bound once, so a hot loop pays no extra call.
#: ``fast_recv(sock, flags) -> bytes``: ``sock.recv(flags)``; ``fast_get(sock, option)``: ``sock.get(option)``.
fast_send, fast_recv, fast_get, FAST_PATH = choose_fast_path(zmq.pyzmq_version_info()[0])
#: ``fast_recv_frame(sock, flags) -> zmq.Frame``: ``sock.recv(flags, copy=False)``, the same function as
#: :data:`fast_recv` with ``copy`` False: the frame's ``more`` is libzmq's ``zmq_msg_more``, where
#: ``fast_get(sock, RCVMORE)`` goes through pyzmq's option lookup (an enum made per call: ~0.8 us, more
#: than receiving the frame). The subscriber's lean read path reads [topic, payload] with it.
fast_recv_frame: Final = cast(Callable[[zmq.Socket[bytes], int], zmq.Frame], functools.partial(fast_recv, copy=False))
