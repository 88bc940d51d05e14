"""Who may connect to the hub: the ZAP authenticator, and the sender key behind every message.

With keys configured the hub is the CURVE server on its three bound sockets
(SUB for agents; XPUB and ROUTER for subscribers). What each key may do is
the allow-list, :class:`gsmon.common.allowlist.AllowList` (the file
``authorized.toml``, its grants and rules); this module enforces it. Two
layers, because ZAP (ZeroMQ's authentication protocol, RFC 27) looks at a
connection only once, during its handshake:

1. **Handshake** -- :class:`HubAuthenticator` runs pyzmq's ``ThreadAuthenticator``
   in the hub's context. Every CURVE handshake on a hub socket asks it, and it
   answers from the *current* allow-list: agent keys only on the agent
   socket (ZAP domain :data:`AGENTS_DOMAIN`), subscriber keys (and the hub's
   own key pair, an administrator's) only on the subscriber sockets
   (:data:`SUBSCRIBERS_DOMAIN`). A revoked key cannot handshake again once
   :meth:`HubAuthenticator.reload_if_changed` has seen the new file.
2. **Every message** -- an already-open connection survives revocation, and if
   the ZAP thread ever died libzmq would admit any client that knows the hub's
   public key (the fail-open trap: no ZAP handler means no authentication, and
   the option that would forbid that, ``ZMQ_ZAP_ENFORCE_DOMAIN``, is draft-only).
   So the hub (:mod:`gsmon.hub.server`) also reads the sender key of every
   received message, :func:`sender_key` (libzmq's ``User-Id`` property, the
   Z85 public key set by a successful ZAP reply), and checks it against the
   current allow-list: :meth:`~gsmon.common.allowlist.AllowList.agent_for_key`
   and :meth:`~gsmon.common.allowlist.AgentGrant.covers` for each agent
   message (its sender name and mount), :meth:`~gsmon.common.allowlist.AllowList.may_subscribe`
   for each subscription, :meth:`~gsmon.common.allowlist.SubscriberGrant.allows_prefix`
   for each snapshot prefix (:mod:`gsmon.hub.queries`). A message without a
   ``User-Id`` (no ZAP ran) is never allowed.

Hub usage, in this order::

    auth = HubAuthenticator.from_keys_dir(ctx, keys_dir)  # hub.key_secret + authorized.toml
    auth.start()                        # before any socket is bound; raises if it cannot guard
    sub = ctx.socket(zmq.SUB)
    auth.server_socket_options(sub, "agents")   # then bind
    sub.bind(endpoint)
    xpub = ctx.socket(zmq.XPUB)
    auth.server_socket_options(xpub, "subscribers")
    ...
    while running:                      # the hub loop
        auth.reload_if_changed()        # every ~0.5 s
        auth.is_alive()                 # False: the hub keeps serving but fails closed (no User-Id,
                                        #   every message refused) and _hub/auth_alive turns Critical
        frame = sub.recv(copy=False)    # copy=False keeps the metadata
        grant = auth.allow_list.agent_for_key(sender_key(frame))   # None: refused
    # shutdown: close the sockets, auth.stop(), then ctx.term()

Keep the :class:`HubAuthenticator` referenced for the hub's lifetime: pyzmq's
authenticator stops itself when garbage-collected (pyzmq #1520), and from then
on the handshakes are not checked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import zmq
from zmq.auth.thread import ThreadAuthenticator

from gsmon.common.allowlist import ALLOW_LIST_FILE, HUB_KEY_NAME, AllowList, AllowListError, Grant
from gsmon.common.keys import KeyPair, apply_curve_server, load_key_pair, require_curve, secret_key_path

__all__ = [
    "AGENTS_DOMAIN",
    "DEFAULT_SETTLE_S",
    "SUBSCRIBERS_DOMAIN",
    "DenialLog",
    "HubAuthenticator",
    "Role",
    "sender_key",
]

log = logging.getLogger(__name__)

# One ZAP domain per kind of client: an agent key cannot even handshake on a
# subscriber socket and the reverse. A server socket left without a domain is
# asked about as "*", which nothing here answers to, so it denies everyone.
AGENTS_DOMAIN: Final = "gsmon-agents"
SUBSCRIBERS_DOMAIN: Final = "gsmon-subscribers"
Role = Literal["agents", "subscribers"]
_DOMAINS: Final[Mapping[str, str]] = {"agents": AGENTS_DOMAIN, "subscribers": SUBSCRIBERS_DOMAIN}

# A hostile client can make a handshake fail as often as it likes, with as many
# fresh keys as it likes: the log says so a few times a minute in total, then
# sums up what it left out (DenialLog).
_DENIAL_LOG_INTERVAL_S: Final = 60.0
_DENIAL_LOG_BURST: Final = 3
_DENIAL_SUMMARY_S: Final = 10.0
_DENIAL_LOG_MEMORY: Final = 1024
DEFAULT_SETTLE_S: Final = 0.25


# -- per-message checks -------------------------------------------------------


def sender_key(frame: zmq.Frame) -> str | None:
    """Return the Z85 public key a received frame came from (its ``User-Id``), or ``None``.

    ``None`` means no ZAP handler vouched for the connection (no CURVE, or the
    authenticator was not running at its handshake): treat it as unknown and
    deny. Receive with ``copy=False`` to get a :class:`zmq.Frame`.
    """
    try:
        user_id = frame.get("User-Id")
    except zmq.ZMQError:  # libzmq has no such property when ZAP never ran
        return None
    if not isinstance(user_id, str) or not user_id:
        return None
    return user_id


# -- the authenticator --------------------------------------------------------


class _GuardedThreadAuthenticator(ThreadAuthenticator):
    """pyzmq's ``ThreadAuthenticator``, made to deny rather than die, and to accept CURVE only.

    In pyzmq an exception inside ``handle_zap_message`` (a credentials
    provider that raises, say) ends the ZAP thread -- after which libzmq lets
    every client in (the fail-open trap). Here any error answers the request
    with a denial and the thread carries on.
    """

    current_address: str = ""

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        """Answer one ZAP request; never raise."""
        request_id = msg[1] if len(msg) >= 2 else None
        try:
            if len(msg) >= 6 and msg[5] != b"CURVE":
                # pyzmq admits NULL by default; a hub socket is only ever CURVE.
                self.log.warning("denied a %r handshake: the hub only accepts CURVE", msg[5])
                self._send_zap_reply(msg[1], b"400", b"CURVE required")
                return
            self.current_address = msg[3].decode("utf-8", "replace") if len(msg) >= 4 else ""
            await super().handle_zap_message(msg)
        except Exception:
            self.log.exception("ZAP request failed; denying it")
            if request_id is not None:
                # Already replied before failing? Then REP refuses a second send: fine.
                with contextlib.suppress(zmq.ZMQError):
                    self._send_zap_reply(request_id, b"500", b"Internal error")

    def stop(self) -> None:
        """Stop the thread; also when it has already died, where pyzmq's ``stop()`` would block forever."""
        pipe: zmq.Socket[Any] | None = self.pipe  # pyzmq types it as never None; it is None once stopped
        if pipe is not None and not self.is_alive():
            # TERMINATE would be sent down a PAIR socket whose peer is gone,
            # and that send blocks for good: close our end instead.
            pipe.close(linger=0)
            self.pipe = None  # type: ignore[assignment]
            self.thread = None  # type: ignore[assignment]
        super().stop()


class _AllowListProvider:
    """The ``configure_curve_callback`` provider: decides each handshake from the hub's current allow-list."""

    def __init__(self, owner: HubAuthenticator) -> None:
        self._owner = owner

    def callback(self, domain: str, key: bytes) -> bool:
        """Return True to admit ``key`` on ``domain``; errors deny (a raise would kill the ZAP thread)."""
        try:
            return self._owner._decide(domain, key)
        except Exception:
            log.exception("allow-list check failed during a CURVE handshake; denying it")
            return False


class HubAuthenticator:
    """The hub's ZAP authenticator: CURVE handshakes are checked against the allow-list file.

    Owns the hub's key pair (for :meth:`server_socket_options`) and the path
    of the allow-list, which :meth:`reload_if_changed` re-reads when it
    changes. Start it before any hub socket binds; keep a reference to it for
    the hub's lifetime; stop it before terminating the context.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        server_pair: KeyPair,
        allow_list_path: str | os.PathLike[str],
        *,
        settle_s: float = DEFAULT_SETTLE_S,
    ) -> None:
        """Prepare (not start) an authenticator for ``context``.

        ``settle_s``: a changed allow-list is applied only once it has stayed
        unchanged for this long, so a file caught half-written by an editor
        (say, a subscriber entry cut before its ``prefixes`` line, which would
        read as "everything") is never applied. 0 applies at once.
        """
        self._context = context
        self._server_pair = server_pair
        self._path = Path(allow_list_path)
        self._settle_s = settle_s
        self._allow_list = AllowList(source=str(self._path))
        self._auth: _GuardedThreadAuthenticator | None = None
        self._provider = _AllowListProvider(self)
        self._applied_signature: tuple[int, ...] | None = None
        self._pending_signature: tuple[int, ...] | None = None
        self._pending_since = 0.0
        self._failed_signature: tuple[int, ...] | None = None
        self.denials = DenialLog(log)
        self.accepted_handshakes = 0

    @property
    def denied_handshakes(self) -> int:
        """Handshakes refused: by the allow-list (ZAP), and those the hub's monitors saw fail before it."""
        return self.denials.count

    def handshake_failed(self, role: str, peer: str | None, why: str, now: float | None = None) -> None:
        """A handshake the hub's socket monitor saw fail before ZAP was asked (wrong hub key, no keys)."""
        now = time.monotonic() if now is None else now
        self.denials.denied(
            ("monitor", peer, why),
            f"refused a handshake on the {role} socket from {peer or 'an unknown peer'}: {why}",
            now,
        )

    @classmethod
    def from_keys_dir(
        cls, context: zmq.Context[Any], keys_dir: str | os.PathLike[str], *, settle_s: float = DEFAULT_SETTLE_S
    ) -> HubAuthenticator:
        """Build one from a ``gsmon keys init`` folder: ``hub.key_secret`` and ``authorized.toml``.

        Raises :class:`~gsmon.common.keys.KeyFileError` if the hub's secret key
        is missing or unsafe.
        """
        folder = Path(keys_dir)
        return cls(
            context, load_key_pair(secret_key_path(folder, HUB_KEY_NAME)), folder / ALLOW_LIST_FILE, settle_s=settle_s
        )

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Load the allow-list and start the ZAP thread; raise instead of running unguarded.

        Raises :class:`~gsmon.common.keys.CurveUnavailableError` without CURVE,
        :class:`AllowListError` if the file is missing, unsafe, invalid or
        empty (a hub that accepts nobody is a misconfiguration, not a policy),
        and ``RuntimeError`` if the ZAP thread cannot run (already started, or
        another authenticator already serves this context).
        """
        require_curve()
        if self._auth is not None:
            raise RuntimeError("the authenticator is already started")
        signature = self._signature()
        allow_list = AllowList.load(self._path)
        if allow_list.is_empty:
            raise AllowListError(
                f"{self._path}: no agents or subscribers: the hub would accept nobody "
                "(add keys with: gsmon keys agent / gsmon keys subscriber)"
            )
        self._allow_list = allow_list
        self._applied_signature = signature
        auth = _GuardedThreadAuthenticator(self._context, log=logging.getLogger(f"{__name__}.zap"))
        # Providers first, thread second: there is no moment at which the
        # thread answers without them.
        for domain in _DOMAINS.values():
            auth.configure_curve_callback(domain, self._provider)
        try:
            auth.start()
        except zmq.ZMQError as exc:
            with contextlib.suppress(Exception):
                auth.stop()
            raise RuntimeError(f"cannot start the ZAP authenticator ({exc}); only one may run per context") from exc
        if not auth.is_alive():  # pragma: no cover - start() raises first
            raise RuntimeError("the ZAP authenticator thread did not start")
        # A strong reference for the hub's lifetime: pyzmq's authenticator
        # stops itself when collected (pyzmq #1520), which would fail open.
        self._auth = auth
        log.info(
            "authenticator started: %d agent and %d subscriber keys from %s",
            len(allow_list.agents),
            len(allow_list.subscribers),
            self._path,
        )

    def stop(self) -> None:
        """Stop the ZAP thread (idempotent). Close the CURVE sockets first, then this, then terminate the context."""
        auth, self._auth = self._auth, None
        if auth is not None:
            auth.stop()
            log.info("authenticator stopped")

    def is_alive(self) -> bool:
        """True while the ZAP thread runs. When it turns False the hub keeps running but
        fails closed: a connection made without ZAP carries no ``User-Id``, so every
        message from it is refused by the per-message checks (and ``_hub/auth_alive``
        turns Critical)."""
        return self._auth is not None and self._auth.is_alive()

    # -- sockets ----------------------------------------------------------------

    def server_socket_options(self, socket: zmq.Socket[Any], role: Role) -> None:
        """Make ``socket`` a CURVE server checked by this authenticator for ``role``; call before ``bind``.

        ``role`` is ``"agents"`` for the SUB socket agents publish into and
        ``"subscribers"`` for the XPUB and ROUTER sockets. Refuses (so that a
        socket is never bound unguarded) when the authenticator is not running,
        when the socket belongs to another context (ZAP is per context: its
        handshakes would not be checked at all), or when the socket is already
        bound or connected.
        """
        if role not in _DOMAINS:
            raise ValueError(f"role must be one of {sorted(_DOMAINS)}, not {role!r}")
        if not self.is_alive():
            raise RuntimeError(
                "start the authenticator before configuring server sockets: without a running ZAP handler "
                "libzmq admits every client that knows the hub's public key"
            )
        if socket.context.underlying != self._context.underlying:
            raise ValueError("the socket belongs to another zmq context; this authenticator cannot check it")
        apply_curve_server(socket, self._server_pair, zap_domain=_DOMAINS[role])

    @property
    def server_pair(self) -> KeyPair:
        """The hub's own key pair (a hub of a pair connects to its peer with it)."""
        return self._server_pair

    @property
    def server_public_key(self) -> bytes:
        """The hub's Z85 public key (what agents and subscribers need)."""
        return self._server_pair.public

    # -- the allow-list ----------------------------------------------------------

    @property
    def allow_list(self) -> AllowList:
        """The allow-list in force now (immutable: hold it for one message, ask again for the next)."""
        return self._allow_list

    def _signature(self) -> tuple[int, ...] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def reload_if_changed(self, now: float | None = None) -> bool:
        """Re-read the allow-list if the file changed (inode, size, mtime or ctime); True if a new list was applied.

        Call it from the hub loop every ~0.5 s. A changed file is applied once
        it has been stable for ``settle_s``. A file that fails to load keeps
        the previous list in force (never fail open, never drop everyone for a
        typo) and logs the error once. An
        empty but valid file *is* applied: revoking the last key must work.
        """
        now = time.monotonic() if now is None else now
        signature = self._signature()
        if signature == self._applied_signature:
            self._pending_signature = None
            return False
        if signature != self._pending_signature:
            self._pending_signature, self._pending_since = signature, now
        if now - self._pending_since < self._settle_s:
            return False
        if signature == self._failed_signature:
            return False  # already reported; wait for the next change
        try:
            new = AllowList.load(self._path)
        except (AllowListError, OSError) as exc:
            self._failed_signature = signature
            log.error("allow-list not reloaded, the previous one stays in force: %s", exc)
            return False
        old, self._allow_list = self._allow_list, new
        self._applied_signature, self._failed_signature = signature, None
        self._pending_signature = None
        added = sorted(set(_grant_names(new)) - set(_grant_names(old)))
        removed = sorted(set(_grant_names(old)) - set(_grant_names(new)))
        log.info("allow-list reloaded from %s: added %s, removed %s", self._path, added or "none", removed or "none")
        if new.is_empty:
            log.warning("allow-list %s is now empty: every client is refused", self._path)
        return True

    # -- the ZAP decision (runs in the ZAP thread) ---------------------------------

    def _decide(self, domain: str, key: bytes) -> bool:
        """Admit ``key`` on ``domain`` if the current allow-list grants it that role."""
        allow_list = self._allow_list  # one immutable snapshot for the whole decision
        grant: Grant | None
        if domain == AGENTS_DOMAIN:
            grant = allow_list.agent_for_key(key)
        elif domain == SUBSCRIBERS_DOMAIN:
            grant = allow_list.subscriber_for_key(key)
        else:  # pragma: no cover - pyzmq only calls us for the domains we registered
            grant = None
        address = self._auth.current_address if self._auth is not None else ""
        if grant is None and domain == SUBSCRIBERS_DOMAIN and key == self._server_pair.public:
            # The hub's own key pair: an administrator on the hub's machine (gsmon keys revoke --forget).
            self.accepted_handshakes += 1
            log.debug("accepted the hub's own key on %s from %s", domain, address or "?")
            return True
        if grant is not None:
            self.accepted_handshakes += 1
            # DEBUG: every `gsmon get` makes two handshakes; an INFO line each would flood the log.
            log.debug("accepted %s %r from %s", domain, grant.name, address or "?")
            return True
        other = allow_list.grant_for_key(key)
        why = f"it belongs to {other.name!r}, not a {domain} client" if other is not None else "unknown key"
        self.denials.denied(
            (domain, key),
            f"denied a CURVE handshake on {domain} from {address or '?'}: {why} {key.decode('ascii', 'replace')}",
            time.monotonic(),
        )
        return False


class DenialLog:
    """Refused handshakes in the log, rate-limited in total: at most ``burst`` lines per ``interval_s``
    (never the same key twice in it), then one summary line every ``summary_s`` while more come
    ("... and 149 more denied handshakes in the last 10 s"). Thread-safe: the ZAP thread and the hub
    loop both report here. ``now`` is ``time.monotonic()``."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = _DENIAL_LOG_BURST,
        interval_s: float = _DENIAL_LOG_INTERVAL_S,
        summary_s: float = _DENIAL_SUMMARY_S,
    ) -> None:
        self._log = logger
        self.burst, self.interval_s, self.summary_s = burst, interval_s, summary_s
        self._lock = threading.Lock()
        self._window_start = -float("inf")
        self._lines_in_window = 0
        self._seen: dict[object, float] = {}
        self._suppressed = 0
        self._suppressed_since = 0.0
        self.count = 0

    def denied(self, memo: object, text: str, now: float) -> None:
        """One refused handshake; ``memo`` (e.g. the key) is logged at most once per interval."""
        with self._lock:
            self.count += 1
            if now - self._window_start >= self.interval_s:
                self._window_start, self._lines_in_window = now, 0
            last = self._seen.get(memo)
            if self._lines_in_window < self.burst and (last is None or now - last >= self.interval_s):
                if len(self._seen) >= _DENIAL_LOG_MEMORY:
                    self._seen.clear()
                self._seen[memo] = now
                self._lines_in_window += 1
                self._log.warning("%s", text)
            else:
                if not self._suppressed:
                    self._suppressed_since = now
                self._suppressed += 1
        self.flush(now)

    def flush(self, now: float) -> None:
        """Write the summary line if one is due (the hub loop calls this regularly)."""
        with self._lock:
            if not self._suppressed or now - self._suppressed_since < self.summary_s:
                return
            count, self._suppressed = self._suppressed, 0
            span = now - self._suppressed_since
        self._log.warning("... and %d more denied handshakes in the last %.0f s", count, span)


def _grant_names(allow_list: AllowList) -> list[str]:
    return [*allow_list.agents, *allow_list.subscribers]
