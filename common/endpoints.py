"""ZeroMQ endpoints as text: which ones gsmon accepts, their parts, the default ports.

These rules need no ZeroMQ, so configuration checks, the ``gsmon`` command
line and the in-process Monitor use them without loading libzmq;
:mod:`gsmon.common.transport` re-exports them for the socket code. An
endpoint is ``tcp://host:port`` (an IPv6 host in brackets:
``tcp://[::1]:7761``), ``ipc://path`` or ``inproc://name``; one to bind may
use port 0 or ``*`` (any free port) and host ``*`` (every interface), one to
connect to may not.
"""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = [
    "DEFAULT_AGENTS_PORT",
    "DEFAULT_QUERY_PORT",
    "DEFAULT_SUBSCRIBERS_PORT",
    "default_endpoint",
    "endpoint_problem",
    "host_of",
    "hub_list_problem",
    "is_loopback",
    "parse_endpoint",
    "split_hubs",
    "with_host",
]

DEFAULT_AGENTS_PORT: Final = 7761
DEFAULT_SUBSCRIBERS_PORT: Final = 7762
DEFAULT_QUERY_PORT: Final = 7763

_TRANSPORTS: Final = ("tcp", "ipc", "inproc")
_MAX_PORT: Final = 65535


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


#: How the endpoints of a hub pair are written in one setting (1.3): ``tcp://a:7763,tcp://b:7763``.
HUB_SEPARATOR: Final = ","


def hub_list_problem(text: object) -> str | None:
    """Why ``text`` is not a hub setting (one query endpoint, or several joined by ``,``: a hub pair),
    or ``None`` when it is. Spaces around a comma are allowed; an endpoint listed twice is not."""
    if not isinstance(text, str):
        return f"an endpoint is a string, not {type(text).__name__}"
    parts = [part.strip() for part in text.split(HUB_SEPARATOR)]
    if len(parts) == 1:
        return endpoint_problem(text, connect=True)
    for index, part in enumerate(parts):
        if not part:
            return f"endpoint {index + 1} of {len(parts)} is empty (a pair is written tcp://a:7763,tcp://b:7763)"
        problem = endpoint_problem(part, connect=True)
        if problem is not None:
            return f"endpoint {index + 1} of {len(parts)} ({part!r}): {problem}"
        if part in parts[:index]:
            return f"{part!r} is listed twice"
    return None


def split_hubs(text: str) -> tuple[str, ...]:
    """The endpoints of a hub setting, in the order given: ``"tcp://a:7763,tcp://b:7763"`` -> both.
    Raises ``ValueError("bad hub endpoint(s) ...: <why>")`` (see :func:`hub_list_problem`)."""
    problem = hub_list_problem(text)
    if problem is not None:
        what = "hub endpoint(s)" if HUB_SEPARATOR in text else "endpoint"
        raise ValueError(f"bad {what} {text!r}: {problem}")  # one endpoint: parse_endpoint's words
    return tuple(part.strip() for part in text.split(HUB_SEPARATOR))


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
