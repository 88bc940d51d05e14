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
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

import zmq

__all__ = [
    "DEFAULT_AGENTS_PORT",
    "DEFAULT_QUERY_PORT",
    "DEFAULT_SUBSCRIBERS_PORT",
    "SocketOptions",
    "bind",
    "default_endpoint",
    "endpoint_problem",
    "host_of",
    "is_loopback",
    "make_socket",
    "parse_endpoint",
    "with_host",
]

DEFAULT_AGENTS_PORT: Final = 7761
DEFAULT_SUBSCRIBERS_PORT: Final = 7762
DEFAULT_QUERY_PORT: Final = 7763

RECONNECT_IVL_MS: Final = 100
RECONNECT_IVL_MAX_MS: Final = 5000
ZMTP_HEARTBEAT_IVL_MS: Final = 2000
ZMTP_HEARTBEAT_TIMEOUT_MS: Final = 6000
HANDSHAKE_IVL_MS: Final = 5000

_TRANSPORTS: Final = ("tcp", "ipc", "inproc")
_MAX_PORT: Final = 65535


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """The options a socket gets before it binds or connects."""

    linger_ms: int = 0
    sndhwm: int = 1000
    rcvhwm: int = 1000
    max_msg_bytes: int = -1  # -1: no limit (set on sockets that read untrusted peers)
    zmtp_heartbeats: bool = True
    xpub_verbose: bool = False  # XPUB: pass every (un)subscription up, not only the first


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


def endpoint_problem(endpoint: object, *, connect: bool = False) -> str | None:
    """Why ``endpoint`` is not a ZeroMQ endpoint gsmon can use, or ``None`` when it is.

    Accepted: ``tcp://host:port`` (port 0-65535 or ``*``; an IPv6 host in
    brackets, ``tcp://[::1]:7761``), ``ipc://path`` and ``inproc://name``.
    With ``connect=True`` (an address to connect to rather than bind), the
    host may not be ``*`` and the port must be 1-65535.
    """
    if not isinstance(endpoint, str):
        return f"an endpoint is a string, not {type(endpoint).__name__}"
    scheme, sep, address = endpoint.partition("://")
    if not sep:
        return "no transport (it must start with tcp://, ipc:// or inproc://)"
    if scheme not in _TRANSPORTS:
        return f"unknown transport {scheme!r} (use tcp, ipc or inproc)"
    if not address:
        return f"nothing after {scheme}://"
    if any(char.isspace() or not char.isprintable() for char in address):
        return "it contains spaces or control characters"
    if scheme != "tcp":
        return None
    host, colon, port = address.rpartition(":")
    if not colon:
        return "no port (tcp://host:port)"
    if not host:
        return "no host (tcp://host:port)"
    if "/" in host:
        return f"host {host!r} contains '/'"
    if host.startswith("[") != host.endswith("]"):
        return f"unbalanced brackets in host {host!r}"
    if connect and host == "*":
        return "host '*' can only be bound, not connected to"
    if port == "*":
        return "port '*' can only be bound, not connected to" if connect else None
    if not port.isdigit() or not port.isascii():
        return f"port {port!r} is not a number or '*'"
    lowest = 1 if connect else 0
    if not lowest <= int(port) <= _MAX_PORT:
        return f"port {int(port)} is out of range {lowest}-{_MAX_PORT}"
    return None


def parse_endpoint(endpoint: object, *, connect: bool = False) -> tuple[str, str, str]:
    """Split ``tcp://host:port`` (or ``ipc://path``, ``inproc://name``) into
    (transport, host, port); host and port are "" for ipc/inproc. Raises
    ``ValueError("bad endpoint ...: <why>")`` for anything else (see
    :func:`endpoint_problem`)."""
    problem = endpoint_problem(endpoint, connect=connect)
    if problem is not None:
        raise ValueError(f"bad endpoint {endpoint!r}: {problem}")
    assert isinstance(endpoint, str)
    scheme, _, address = endpoint.partition("://")
    if scheme != "tcp":
        return scheme, "", ""
    host, _, port = address.rpartition(":")
    return scheme, host, port


def default_endpoint(port: int, host: str = "127.0.0.1") -> str:
    return f"tcp://{host}:{port}"


def bind(sock: zmq.Socket[bytes], endpoint: str) -> str:
    """Bind ``endpoint`` (port 0 or * = any free port) and return the real endpoint."""
    transport, host, port = parse_endpoint(endpoint)
    if transport == "tcp" and port == "0":
        endpoint = f"tcp://{host}:*"
    sock.bind(endpoint)
    real = sock.getsockopt(zmq.LAST_ENDPOINT)
    assert isinstance(real, bytes)
    return real.decode()


def host_of(endpoint: str) -> str:
    """The host part of a tcp endpoint ("" for ipc/inproc)."""
    return parse_endpoint(endpoint)[1]


def with_host(endpoint: str, host: str) -> str:
    """Replace a wildcard bind address (``*``, ``0.0.0.0``, ``[::]``) in a tcp
    endpoint the hub reported by ``host`` (the address the client reached the
    hub at); other endpoints are returned unchanged."""
    transport, bound_host, port = parse_endpoint(endpoint)
    if transport != "tcp" or bound_host not in ("*", "0.0.0.0", "[::]", "::"):
        return endpoint
    return f"tcp://{host}:{port}"


def is_loopback(endpoint: str) -> bool:
    """Whether an endpoint can only be reached from this machine."""
    transport, host, _ = parse_endpoint(endpoint)
    if transport in ("ipc", "inproc"):
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or interface name: assume reachable from outside
