"""Commands to a running hub: ``gsmon forget NAME``, and the client side of the COMMAND message.

::

    gsmon forget rack7 --hub tcp://gs1-hub:7763 --key admin.key_secret --hub-key hub.key

:func:`send_command` sends one COMMAND on the hub's query socket (a DEALER,
like ``gsmon get``) and returns the hub's COMMAND_RESULT; the protocol module
lists the commands and the role each needs. ``forget`` removes a silent agent
and all its points from the hub at once, so that a retired host no longer
shows STALE for ``agent_retention_s``; the hub refuses a live agent, and, when
it uses keys, anyone but an administrator (a subscriber key granted with
``gsmon keys subscriber NAME --admin``, or the hub's own key pair).

Exit status of ``gsmon forget``: 0 forgotten, 1 refused by the hub or no
answer from it (the message says which, and why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import time
from collections.abc import Sequence
from typing import Any, Final

import zmq

from gsmon.common import endpoints, transport
from gsmon.common import protocol as proto
from gsmon.common.client import DEFAULT_QUERY_ENDPOINT, HubUnavailableError
from gsmon.common.clone import ClientEnvelope
from gsmon.common.errors import UnavailableError, UsageError
from gsmon.common.failover import HubChoice
from gsmon.common.keys import ClientKeys

__all__ = ["add_parser", "forget_with_hub_keys", "send_command", "wait_reply"]

RETRY_S: Final = 0.3


def send_command(
    hub: str | Sequence[str] | HubChoice,
    command: str,
    args: dict[str, Any],
    *,
    curve: ClientKeys | None = None,
    timeout_s: float = 5.0,
    user: str | None = None,
) -> proto.CommandResult:
    """Send one COMMAND to the hub's query endpoint ``hub`` and return its result.

    ``hub`` may name a hub pair (``"tcp://a:7763,tcp://b:7763"``, a sequence, or the
    :class:`~gsmon.common.failover.HubChoice` a view shares: its current hub first): the
    command goes to the first that answers (1.3). A hub that does not answer within its share
    of ``timeout_s`` (at least 1 s) is followed by the next; an answer, ok or not, is final,
    so nothing is applied twice on purpose (and a repeated ack is skipped as already acked).

    Raises :class:`HubUnavailableError` when no answer comes within
    ``timeout_s`` or the hub answers with an ERROR (it refused the key).
    """
    choice = hub if isinstance(hub, HubChoice) else HubChoice(hub)
    order = choice.order()
    if len(order) == 1:
        return _send_one(order[0], command, args, curve=curve, timeout_s=timeout_s, user=user)
    share_s = max(1.0, timeout_s / len(order))
    errors: list[str] = []
    for endpoint in order:
        try:
            return _send_one(endpoint, command, args, curve=curve, timeout_s=share_s, user=user)
        except HubUnavailableError as error:
            errors.append(str(error))
    raise HubUnavailableError("no hub of the pair answered: " + "; ".join(errors))


def _send_one(
    hub: str,
    command: str,
    args: dict[str, Any],
    *,
    curve: ClientKeys | None,
    timeout_s: float,
    user: str | None,
) -> proto.CommandResult:
    transport.parse_endpoint(hub, connect=True)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        dealer = transport.make_socket(context, zmq.DEALER, transport.SocketOptions())
        if curve is not None:
            curve.apply(dealer)
        dealer.connect(hub)
        # One envelope per call: a new connection each time (seq 1), and a fresh incarnation.
        message = ClientEnvelope(f"client-{secrets.token_hex(4)}").command(command, args, user)
        dealer.send(proto.encode(message), zmq.DONTWAIT)
        reply = wait_reply(dealer, message.request_id, timeout_s)
        if isinstance(reply, proto.Error):
            raise HubUnavailableError(f"the hub at {hub} refused: {reply.message}")
        if reply is None:
            raise HubUnavailableError(f"no answer from the hub at {hub} within {timeout_s:g} s")
        return reply
    finally:
        context.destroy(linger=0)


def wait_reply(
    dealer: zmq.Socket[bytes], request_id: int, timeout_s: float
) -> proto.CommandResult | proto.Error | None:
    """The hub's COMMAND_RESULT or ERROR to ``request_id`` on ``dealer``, or None when none came within
    ``timeout_s``. Late replies to earlier requests and undecodable messages are dropped."""
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        if not dealer.poll(int(remaining * 1000) + 1):
            break
        try:
            reply = proto.decode(dealer.recv())
        except proto.ProtocolError:
            continue  # a bad message from the network is dropped; the wait goes on
        if getattr(reply, "request_id", None) == request_id and isinstance(reply, proto.CommandResult | proto.Error):
            return reply
    return None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return None


def forget_with_hub_keys(name: str, hub: str, curve: ClientKeys | None, *, wait_s: float = 10.0) -> tuple[bool, str]:
    """Forget agent ``name`` with ``curve`` (the hub's own key pair; None: a hub without keys).

    Used right after revoking the agent's key: until the hub has re-read its
    allow-list (within about a second) the agent may still count as live, so
    a "live" refusal is retried for up to ``wait_s``. Returns (done, message).
    """
    deadline = time.monotonic() + wait_s
    while True:
        result = send_command(hub, "forget", {"agent": name}, curve=curve, user=_user())
        live = isinstance(result.result, dict) and result.result.get("reason") == "live"
        if result.ok or not live or time.monotonic() >= deadline:
            return result.ok, result.message
        time.sleep(RETRY_S)


# -- gsmon forget ---------------------------------------------------------------------------------


def add_parser(subparsers: Any, name: str, summary: str) -> None:
    """Register ``gsmon forget`` on the ``gsmon`` command's subparsers."""
    parser = subparsers.add_parser(name, help=summary, description=summary + ". A live agent is refused.")
    parser.add_argument("name", metavar="NAME", help="the agent's name")
    parser.add_argument(
        "--hub",
        default=DEFAULT_QUERY_ENDPOINT,
        metavar="QUERY_ENDPOINT",
        help="the hub's query endpoint (default %(default)s)",
    )
    parser.add_argument("--timeout-s", type=float, default=5.0, help="how long to wait for the hub (default 5)")
    parser.add_argument(
        "--key", metavar="FILE", help="an administrator's secret key file, or the hub's own (with --hub-key)"
    )
    parser.add_argument("--hub-key", metavar="FILE", help="the hub's public key file (CURVE; with --key)")
    parser.set_defaults(handler=run_forget)


def run_forget(args: argparse.Namespace) -> int:
    """``gsmon forget``; its errors (bad flags 2, no answer 1) end the command in :func:`gsmon.common.cli.main`."""
    if (args.key is None) != (args.hub_key is None):
        raise UsageError("--key and --hub-key go together (your secret key and the hub's public key)")
    if not args.timeout_s > 0:
        raise UsageError(f"--timeout-s must be positive, got {args.timeout_s}")
    problem = endpoints.hub_list_problem(args.hub)
    if problem is not None:
        raise UsageError(f"bad endpoint {args.hub!r}: {problem}")
    curve = ClientKeys.load(args.key, args.hub_key) if args.key is not None else None
    result = send_command(args.hub, "forget", {"agent": args.name}, curve=curve, timeout_s=args.timeout_s, user=_user())
    if not result.ok:
        raise UnavailableError(f"the hub refused: {result.message}")
    print(result.message)
    return 0
