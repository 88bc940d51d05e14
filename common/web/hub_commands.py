"""The bridge's COMMAND client: operator verbs and list queries, forwarded to the hub's query socket.

Every write the page makes (ack, unack, shelve, unshelve) and every read that
is not the tree (alarms, shelves, journal, history) is one COMMAND (kind 12)
to the hub, answered by one COMMAND_RESULT (kind 24), exactly as
:mod:`gsmon.common.protocol` specifies them. The bridge sends them under its
own CURVE key (``--key``/``--hub-key``, like every client), so the hub
records ``by`` = the bridge's key name and checks the bridge key's role; the
end user travels in the envelope's ``user`` field, and ``args`` carries
``"via": "web"`` (ALARMS.md: every action records by, user and via).

One DEALER socket on the aiohttp event loop (``zmq.asyncio``): any number of
requests may be outstanding, replies are matched by ``request_id``. A request
without an answer within ``timeout_s`` fails with :class:`HubNoAnswerError`,
and the socket is replaced for the next one (a CURVE handshake the hub
refused is final for a socket in libzmq). An ERROR reply (the hub refused
the key outright) raises :class:`HubRefusedError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Final, cast

import zmq
import zmq.asyncio

from gsmon.common import protocol as proto
from gsmon.common import transport
from gsmon.common.clone import ClientEnvelope
from gsmon.common.failover import HubChoice
from gsmon.common.keys import ClientKeys

__all__ = ["VIA", "CommandOutcome", "HubCommandClient", "HubCommandError", "HubNoAnswerError", "HubRefusedError"]

log = logging.getLogger(__name__)

VIA: Final = "web"


class HubCommandError(Exception):
    """The hub could not be asked (the message is one line for a person)."""


class HubNoAnswerError(HubCommandError):
    """No COMMAND_RESULT in time."""


class HubRefusedError(HubCommandError):
    """The hub answered ERROR (it refused this client's request as such, e.g. its key)."""


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """A COMMAND_RESULT: ``ok``, one line, the result value, and ``reason`` when refused."""

    ok: bool
    message: str
    result: Any

    @property
    def reason(self) -> str | None:
        if isinstance(self.result, dict):
            reason = self.result.get("reason")
            return reason if isinstance(reason, str) else None
        return None


class HubCommandClient:
    """Sends COMMANDs to the hub's query endpoint ``hub`` (see the module docstring)."""

    def __init__(self, hub: str | HubChoice, *, curve: ClientKeys | None = None, timeout_s: float = 5.0) -> None:
        # A HubChoice shared with the bridge's feed: commands go to the hub the tree comes from (1.3).
        self.choice = hub if isinstance(hub, HubChoice) else HubChoice(hub)
        for endpoint in self.choice.endpoints:
            transport.parse_endpoint(endpoint, connect=True)
        self._socket_hub = ""
        self.timeout_s = timeout_s
        self._curve = curve
        self._context: zmq.asyncio.Context | None = None
        self._socket: zmq.asyncio.Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[proto.Message]] = {}
        self._envelope = ClientEnvelope(f"web-{secrets.token_hex(4)}")
        #: Requests sent and answered, for the bridge's own metrics.
        self.sent = 0
        self.answered = 0

    @property
    def hub(self) -> str:
        """The hub commands go to now (of a pair: the one the feed uses)."""
        return self.choice.current

    def _open(self) -> zmq.asyncio.Socket:
        if self._context is None:
            self._context = zmq.asyncio.Context()
        # make_socket sets every option gsmon's sockets get; the asyncio context makes asyncio sockets.
        sock = cast(
            zmq.asyncio.Socket,
            transport.make_socket(cast(Any, self._context), zmq.DEALER, transport.SocketOptions()),
        )
        if self._curve is not None:
            self._curve.apply(sock)
        self._socket_hub = self.hub
        sock.connect(self._socket_hub)
        self._socket = sock
        self._envelope.new_connection()
        self._reader = asyncio.get_running_loop().create_task(self._read(sock))
        return sock

    def _drop_socket(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    async def close(self) -> None:
        reader = self._reader
        self._drop_socket()
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()
        if self._context is not None:
            self._context.term()
            self._context = None

    async def _read(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            data = await sock.recv()
            try:
                reply = proto.decode(data)
            except proto.ProtocolError as error:
                log.debug("dropped a reply from the hub: %s", error)
                continue
            request_id = getattr(reply, "request_id", None)
            future = self._waiting.get(request_id) if isinstance(request_id, int) else None
            if future is not None and not future.done():
                future.set_result(reply)

    async def call(self, command: str, args: dict[str, Any], *, user: str | None) -> CommandOutcome:
        """Send ``command`` with ``args`` for the end user ``user``; return the hub's result.

        Raises :class:`HubNoAnswerError` or :class:`HubRefusedError`.
        """
        if self._socket is not None and self._socket_hub != self.hub:
            self._drop_socket()  # the feed moved to the other hub of the pair: so do the commands
        sock = self._socket or self._open()
        message = self._envelope.command(command, args, user)
        request_id = message.request_id
        future: asyncio.Future[proto.Message] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            with contextlib.suppress(zmq.Again):  # not connected yet: nothing queued, and the wait below says so
                await sock.send(proto.encode(message), zmq.DONTWAIT)
            self.sent += 1
            try:
                reply = await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                self._drop_socket()  # a refused handshake is final for a socket: the next call makes a new one
                raise HubNoAnswerError(
                    f"no answer from the hub at {self.hub} within {self.timeout_s:g} s to {command!r}"
                ) from None
        finally:
            self._waiting.pop(request_id, None)
        self.answered += 1
        if isinstance(reply, proto.Error):
            raise HubRefusedError(f"the hub at {self.hub} refused: {reply.message}")
        if not isinstance(reply, proto.CommandResult):
            raise HubRefusedError(f"the hub answered {reply.kind.name} to a COMMAND")
        return CommandOutcome(reply.ok, reply.message, reply.result)
