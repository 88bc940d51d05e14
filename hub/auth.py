"""Who may connect to the hub, and what each key may do: the allow-list and the ZAP authenticator.

With keys configured the hub is the CURVE server on its three bound sockets
(SUB for agents; XPUB and ROUTER for subscribers). Authorisation has two
layers, because ZAP (ZeroMQ's authentication protocol, RFC 27) looks at a
connection only once, during its handshake:

1. **Handshake** -- :class:`HubAuthenticator` runs pyzmq's ``ThreadAuthenticator``
   in the hub's context. Every CURVE handshake on a hub socket asks it, and it
   answers from the *current* :class:`AllowList`: agent keys only on the agent
   socket (ZAP domain :data:`AGENTS_DOMAIN`), subscriber keys only on the
   subscriber sockets (:data:`SUBSCRIBERS_DOMAIN`). A revoked key cannot
   handshake again once :meth:`HubAuthenticator.reload_if_changed` has seen
   the new file.
2. **Every message** -- an already-open connection survives revocation, and if
   the ZAP thread ever died libzmq would admit any client that knows the hub's
   public key (the fail-open trap: no ZAP handler means no authentication, and
   the option that would forbid that, ``ZMQ_ZAP_ENFORCE_DOMAIN``, is draft-only).
   So the hub also reads the sender key of every received message,
   :func:`sender_key` (libzmq's ``User-Id`` property, the Z85 public key set by
   a successful ZAP reply), and checks it against the current allow-list:
   :meth:`AllowList.may_publish` for each path an agent sends,
   :meth:`AllowList.may_subscribe` for each subscription and snapshot prefix,
   :meth:`AllowList.may_read` for each node a snapshot returns. A message
   without a ``User-Id`` (no ZAP ran) is never allowed.

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
        if not auth.is_alive(): stop the hub (never keep serving unguarded)
        frame = sub.recv(copy=False)    # copy=False keeps the metadata
        allowed = auth.allow_list.may_publish(sender_key(frame), envelope.sender, path)
    # shutdown: close the sockets, auth.stop(), then ctx.term()

Keep the :class:`HubAuthenticator` referenced for the hub's lifetime: pyzmq's
authenticator stops itself when garbage-collected (pyzmq #1520), and from then
on the handshakes are not checked.

The allow-list file (``authorized.toml`` beside ``hub.key_secret``, written by
``gsmon keys``)::

    [agents.ant1]                  # the agent's name, as it sends it in every envelope
    public_key = "<40 chars Z85>"
    mounts = ["GS1/Antenna1"]      # it may publish at or below these paths

    [subscribers.ops]
    public_key = "<40 chars Z85>"
    prefixes = ["GS1/"]            # optional: it may read only these subtrees; absent = everything
    admin = true                   # optional: it may also run administrators' commands (gsmon forget)
    role = "operator"              # optional: viewer (default) | operator | admin (issue 13; admin = true: admin)
    services = ["history"]         # optional: it may register as these services (register_service)

Names follow :func:`gsmon.common.names.check_name`, mounts
:func:`~gsmon.common.names.check_mount`. A key appears once in the whole
file, and a name once across both tables. Unknown tables or fields are
errors, not ignored: a misspelt ``prefix =`` must not silently grant
everything. A subscriber prefix names a subtree and is stored with a trailing
``/`` (``"GS1/Antenna1"`` means ``GS1/Antenna1/...``), so that it never
also covers ``GS1/Antenna10``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import stat
import threading
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import zmq
from zmq.auth.thread import ThreadAuthenticator

from gsmon.common import names
from gsmon.common.keys import (
    KeyPair,
    apply_curve_server,
    check_z85_key,
    load_key_pair,
    require_curve,
    secret_key_path,
)

__all__ = [
    "AGENTS_DOMAIN",
    "ALLOW_LIST_FILE",
    "DEFAULT_SETTLE_S",
    "HUB_KEY_NAME",
    "SUBSCRIBERS_DOMAIN",
    "AgentGrant",
    "AllowList",
    "AllowListError",
    "DenialLog",
    "Grant",
    "HubAuthenticator",
    "Role",
    "SubscriberGrant",
    "peer_address",
    "sender_key",
]

log = logging.getLogger("gsmon.hub.auth")

HUB_KEY_NAME: Final = "hub"
ALLOW_LIST_FILE: Final = "authorized.toml"
# One ZAP domain per kind of client: an agent key cannot even handshake on a
# subscriber socket and the reverse. A server socket left without a domain is
# asked about as "*", which nothing here answers to, so it denies everyone.
AGENTS_DOMAIN: Final = "gsmon-agents"
SUBSCRIBERS_DOMAIN: Final = "gsmon-subscribers"
Role = Literal["agents", "subscribers"]
_DOMAINS: Final[Mapping[str, str]] = {"agents": AGENTS_DOMAIN, "subscribers": SUBSCRIBERS_DOMAIN}

_MAX_ALLOW_LIST_BYTES: Final = 8 * 1024 * 1024
# A hostile client can make a handshake fail as often as it likes, with as many
# fresh keys as it likes: the log says so a few times a minute in total, then
# sums up what it left out (DenialLog).
_DENIAL_LOG_INTERVAL_S: Final = 60.0
_DENIAL_LOG_BURST: Final = 3
_DENIAL_SUMMARY_S: Final = 10.0
_DENIAL_LOG_MEMORY: Final = 1024
DEFAULT_SETTLE_S: Final = 0.25


class AllowListError(ValueError):
    """The allow-list is malformed or unsafe; the message names the file and the entry."""


def _key_text(key: str | bytes | None) -> str | None:
    """Return a Z85 key as ``str``, or ``None`` for anything that cannot be one (the caller then denies)."""
    if isinstance(key, bytes):
        try:
            return key.decode("ascii")
        except UnicodeDecodeError:
            return None
    return key if isinstance(key, str) else None


def _grant_key(key: object) -> str:
    try:
        return check_z85_key(key, "public_key").decode("ascii")
    except ValueError as exc:
        raise AllowListError(str(exc)) from None


@dataclass(frozen=True)
class AgentGrant:
    """An agent key's rights: its agent name, and the mounts it may publish at or below."""

    name: str
    public_key: str
    mounts: tuple[str, ...]

    def __post_init__(self) -> None:
        try:
            names.check_name(self.name, "agent name")
            given: object = self.mounts
            if isinstance(given, str) or not isinstance(given, Iterable):
                raise AllowListError("mounts must be a non-empty list of paths")
            mounts = tuple(given)
            if not mounts:
                raise AllowListError("mounts must be a non-empty list of paths")
            for mount in mounts:
                names.check_mount(mount)
            if len(set(mounts)) != len(mounts):
                raise AllowListError("mounts lists a path twice")
        except names.InvalidNameError as exc:
            raise AllowListError(str(exc)) from None
        object.__setattr__(self, "public_key", _grant_key(self.public_key))
        object.__setattr__(self, "mounts", mounts)

    def covers(self, path: str) -> bool:
        """True if ``path`` is one of the mounts or lies below one (whole segments: ``A/B`` never covers ``A/B2``)."""
        return any(path == mount or path.startswith(mount + names.SEPARATOR) for mount in self.mounts)


SUBSCRIBER_ROLES: Final = ("viewer", "operator", "admin")


def _services(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise AllowListError(f"services must be a list of service names, not {value!r}")
    return tuple(value)  # type: ignore[arg-type]  # items checked by SubscriberGrant


@dataclass(frozen=True)
class SubscriberGrant:
    """A subscriber key's rights: the subtrees it may read, or everything.

    ``prefixes`` are subtree paths, each stored ending in ``/``; ``None``
    grants every path. ``admin``: it may also run the commands that need an
    administrator (:mod:`gsmon.hub.queries`); the hub's own key pair is one too.
    """

    name: str
    public_key: str
    prefixes: tuple[str, ...] | None = None
    admin: bool = False
    # Operator role (issue 13): "viewer" (read), "operator" (ack, unack, shelve <= max_shelve_s,
    # unshelve, contexts), "admin" (everything). None: viewer, unless admin = true (then admin).
    role: str | None = None
    # Services the key may register as on the query socket (register_service): e.g. ("history",).
    services: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            names.check_name(self.name, "subscriber name")
        except names.InvalidNameError as exc:
            raise AllowListError(str(exc)) from None
        if not isinstance(self.admin, bool):
            raise AllowListError(f"admin must be true or false, not {self.admin!r}")
        if self.role is not None and self.role not in SUBSCRIBER_ROLES:
            raise AllowListError(f"role must be one of {', '.join(SUBSCRIBER_ROLES)}, not {self.role!r}")
        services: object = self.services
        if not isinstance(services, tuple) or not all(isinstance(item, str) and item for item in services):
            raise AllowListError(f"services must be a list of service names, not {services!r}")
        object.__setattr__(self, "public_key", _grant_key(self.public_key))
        if self.prefixes is not None:
            object.__setattr__(self, "prefixes", _normalise_prefixes(self.prefixes))

    @property
    def effective_role(self) -> str:
        """The key's role: its ``role``, else admin for ``admin = true``, else viewer."""
        if self.role is not None:
            return self.role
        return "admin" if self.admin else "viewer"

    def allows_prefix(self, prefix: str) -> bool:
        """True if every topic a subscription to ``prefix`` could match lies inside a granted subtree.

        ZeroMQ matches subscriptions as raw byte prefixes, so the requested
        prefix must *start with* a grant: ``GS1/Antenna1/`` or ``GS1/Ant`` under
        a ``GS1/`` grant. A shorter prefix is refused -- ``GS1`` would also match
        ``GS10/...`` and the empty prefix matches everything.
        """
        if self.prefixes is None:
            return True
        return any(prefix.startswith(granted) for granted in self.prefixes)

    def allows_path(self, path: str) -> bool:
        """True if the node at ``path`` is a granted subtree's root or lies inside one."""
        if self.prefixes is None:
            return True
        return any(path.startswith(granted) or path == granted[:-1] for granted in self.prefixes)


def _normalise_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    """Validate subscriber prefixes as subtree paths and return them each ending in ``/``."""
    if isinstance(prefixes, str):
        raise AllowListError("prefixes must be a list of paths, not a single string")
    normalised: list[str] = []
    for prefix in prefixes:
        if not isinstance(prefix, str):
            raise AllowListError(f"prefixes must hold strings, not {type(prefix).__name__}")
        if prefix in ("", names.SEPARATOR):
            raise AllowListError("an empty prefix would grant everything: leave 'prefixes' out for that")
        path = prefix.removesuffix(names.SEPARATOR)
        try:
            names.check_path(path, "prefix")
        except names.InvalidNameError as exc:
            raise AllowListError(str(exc)) from None
        subtree = path + names.SEPARATOR
        if subtree in normalised:
            raise AllowListError(f"prefixes lists {prefix!r} twice")
        normalised.append(subtree)
    if not normalised:
        raise AllowListError("prefixes is empty, which would allow nothing: leave it out to allow everything")
    return tuple(normalised)


Grant = AgentGrant | SubscriberGrant


class AllowList:
    """The keys the hub accepts and what each may do; immutable and pure (no I/O except :meth:`load`).

    Build one with :meth:`load` (the file, with permission checks),
    :meth:`parse` (TOML text) or the constructor; change one with
    :meth:`with_grant` and :meth:`without`, which return a new list.
    """

    __slots__ = ("_agents", "_by_key", "_subscribers", "source")

    def __init__(
        self,
        agents: Iterable[AgentGrant] = (),
        subscribers: Iterable[SubscriberGrant] = (),
        *,
        source: str = "allow-list",
    ) -> None:
        self.source = source
        self._agents: dict[str, AgentGrant] = {}
        self._subscribers: dict[str, SubscriberGrant] = {}
        self._by_key: dict[str, Grant] = {}
        for agent in agents:
            self._add(agent)
        for subscriber in subscribers:
            self._add(subscriber)

    def _add(self, grant: Grant) -> None:
        table = "agents" if isinstance(grant, AgentGrant) else "subscribers"
        where = f"{self.source}: [{table}.{_toml_key(grant.name)}]"
        if grant.name in self._agents or grant.name in self._subscribers:
            raise AllowListError(f"{where}: the name {grant.name!r} is already used; names must be unique")
        other = self._by_key.get(grant.public_key)
        if other is not None:
            raise AllowListError(
                f"{where}: public_key {grant.public_key} is already granted to {other.name!r}; one key, one identity"
            )
        if isinstance(grant, AgentGrant):
            self._agents[grant.name] = grant
        else:
            self._subscribers[grant.name] = grant
        self._by_key[grant.public_key] = grant

    # -- reading ------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, source: str = "<string>") -> AllowList:
        """Parse allow-list TOML; raise :class:`AllowListError` naming ``source`` and the entry at fault."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise AllowListError(f"{source}: not valid TOML: {exc}") from None
        unknown = sorted(set(document) - {"agents", "subscribers"})
        if unknown:
            raise AllowListError(
                f"{source}: unknown top-level entries {unknown}; expected [agents.*] and [subscribers.*]"
            )
        result = cls(source=source)
        for table, fields in (
            ("agents", {"public_key", "mounts"}),
            ("subscribers", {"public_key", "prefixes", "admin", "role", "services"}),
        ):
            entries = document.get(table, {})
            if not isinstance(entries, dict):
                raise AllowListError(f"{source}: '{table}' must be a table of [{table}.NAME] entries")
            for name, entry in entries.items():
                where = f"{source}: [{table}.{_toml_key(name)}]"
                if not isinstance(entry, dict):
                    raise AllowListError(f"{where}: must be a table with public_key = ...")
                extra = sorted(set(entry) - fields)
                if extra:
                    raise AllowListError(f"{where}: unknown fields {extra}; allowed: {sorted(fields)}")
                required = {"public_key", "mounts"} if table == "agents" else {"public_key"}
                missing = sorted(required - set(entry))
                if missing:
                    raise AllowListError(f"{where}: missing {', '.join(missing)}")
                grant: Grant
                try:
                    if table == "agents":
                        mounts = entry["mounts"]
                        if not isinstance(mounts, list):
                            raise AllowListError("mounts must be a list of paths")
                        grant = AgentGrant(name, entry["public_key"], tuple(mounts))
                    else:
                        prefixes = entry.get("prefixes")
                        if prefixes is not None and not isinstance(prefixes, list):
                            raise AllowListError("prefixes must be a list of paths")
                        grant = SubscriberGrant(
                            name,
                            entry["public_key"],
                            None if prefixes is None else tuple(prefixes),
                            admin=entry.get("admin", False),
                            role=entry.get("role"),
                            services=_services(entry.get("services", [])),
                        )
                except AllowListError as exc:
                    raise AllowListError(f"{where}: {exc}") from None
                result._add(grant)
        return result

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AllowList:
        """Read and parse the allow-list file, refusing one that group or others may write.

        Whoever can write this file can let any key in, so a group/other
        writable file or folder is an error (with the ``chmod`` that fixes it),
        as is a missing file.
        """
        file = Path(path)
        try:
            fd = os.open(file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
        except FileNotFoundError:
            raise AllowListError(f"{file}: allow-list not found (create it with: gsmon keys init DIR)") from None
        except OSError as exc:
            raise AllowListError(f"{file}: cannot read the allow-list: {exc.strerror or exc}") from None
        try:
            # Checked on the opened descriptor: the file read is the file checked.
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise AllowListError(f"{file}: the allow-list is not a regular file")
            if st.st_mode & 0o022:
                raise AllowListError(
                    f"{file}: the allow-list is writable by group/others (mode {stat.S_IMODE(st.st_mode):04o}); "
                    f"fix with: chmod 600 {shlex.quote(str(file))}"
                )
        except BaseException:
            os.close(fd)
            raise
        with os.fdopen(fd, "rb") as src:
            data = src.read(_MAX_ALLOW_LIST_BYTES + 1)
        for folder in sorted({file.absolute().parent, Path(os.path.realpath(file)).parent}):
            folder_mode = folder.stat().st_mode
            if folder_mode & 0o022:
                raise AllowListError(
                    f"{file}: its folder {folder} is writable by group/others (mode {stat.S_IMODE(folder_mode):04o}); "
                    f"fix with: chmod 700 {shlex.quote(str(folder))}"
                )
        if len(data) > _MAX_ALLOW_LIST_BYTES:
            raise AllowListError(f"{file}: larger than {_MAX_ALLOW_LIST_BYTES} bytes; not an allow-list")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AllowListError(f"{file}: not UTF-8 text ({exc})") from None
        return cls.parse(text, str(file))

    # -- writing ------------------------------------------------------------

    def dumps(self) -> str:
        """Return this allow-list as TOML that :meth:`parse` reads back to an equal list."""
        out = [_FILE_HEADER]
        for grant in self._agents.values():
            out.append(f"\n[agents.{_toml_key(grant.name)}]\n")
            out.append(f"public_key = {_toml_string(grant.public_key)}\n")
            out.append(f"mounts = [{', '.join(_toml_string(m) for m in grant.mounts)}]\n")
        for sub in self._subscribers.values():
            out.append(f"\n[subscribers.{_toml_key(sub.name)}]\n")
            out.append(f"public_key = {_toml_string(sub.public_key)}\n")
            if sub.prefixes is not None:
                out.append(f"prefixes = [{', '.join(_toml_string(p) for p in sub.prefixes)}]\n")
            if sub.admin:
                out.append("admin = true\n")
            if sub.role is not None:
                out.append(f"role = {_toml_string(sub.role)}\n")
            if sub.services:
                out.append(f"services = [{', '.join(_toml_string(s) for s in sub.services)}]\n")
        return "".join(out)

    def with_grant(self, grant: Grant) -> AllowList:
        """Return a copy with ``grant`` added; :class:`AllowListError` if its name or key is taken."""
        agents = list(self._agents.values())
        subscribers = list(self._subscribers.values())
        if isinstance(grant, AgentGrant):
            agents.append(grant)
        else:
            subscribers.append(grant)
        return AllowList(agents, subscribers, source=self.source)

    def without(self, name: str) -> AllowList:
        """Return a copy without the agent or subscriber ``name``; ``KeyError`` if there is none."""
        if name not in self._agents and name not in self._subscribers:
            raise KeyError(name)
        return AllowList(
            (g for g in self._agents.values() if g.name != name),
            (g for g in self._subscribers.values() if g.name != name),
            source=self.source,
        )

    # -- questions ----------------------------------------------------------

    @property
    def agents(self) -> Mapping[str, AgentGrant]:
        """Agent grants by name (a read-only view)."""
        return _ReadOnly(self._agents)

    @property
    def subscribers(self) -> Mapping[str, SubscriberGrant]:
        """Subscriber grants by name (a read-only view)."""
        return _ReadOnly(self._subscribers)

    @property
    def is_empty(self) -> bool:
        """True if no key at all is granted (the hub would accept nobody)."""
        return not self._by_key

    def __len__(self) -> int:
        return len(self._by_key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AllowList):
            return NotImplemented
        return self._agents == other._agents and self._subscribers == other._subscribers

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"AllowList({self.source!r}, agents={sorted(self._agents)}, subscribers={sorted(self._subscribers)})"

    def grant_for_key(self, key: str | bytes | None) -> Grant | None:
        """The grant of a Z85 public key (``User-Id``), or ``None`` if it has none."""
        text = _key_text(key)
        return None if text is None else self._by_key.get(text)

    def agent_for_key(self, key: str | bytes | None) -> AgentGrant | None:
        """The agent grant of a Z85 public key, or ``None`` (unknown, or a subscriber's key)."""
        grant = self.grant_for_key(key)
        return grant if isinstance(grant, AgentGrant) else None

    def subscriber_for_key(self, key: str | bytes | None) -> SubscriberGrant | None:
        """The subscriber grant of a Z85 public key, or ``None`` (unknown, or an agent's key)."""
        grant = self.grant_for_key(key)
        return grant if isinstance(grant, SubscriberGrant) else None

    def may_publish(self, key: str | bytes | None, agent_name: str, path: str) -> bool:
        """True if the agent holding ``key`` may publish ``path`` under the name ``agent_name``.

        The key must be an agent's, the envelope's sender name must be that
        agent's name (no speaking for another agent), ``path`` must be a valid
        path and equal a granted mount or lie below one.
        """
        grant = self.agent_for_key(key)
        if grant is None or grant.name != agent_name:
            return False
        try:
            names.check_path(path)
        except names.InvalidNameError:
            return False
        return grant.covers(path)

    def may_subscribe(self, key: str | bytes | None, prefix: str | bytes) -> bool:
        """True if the subscriber holding ``key`` may subscribe to (or snapshot) the topic prefix ``prefix``.

        Bytes are decoded as UTF-8 (the raw XPUB subscription without its
        leading 0x01 byte); undecodable bytes are refused. See
        :meth:`SubscriberGrant.allows_prefix` for why a prefix shorter than the
        grant is refused.
        """
        grant = self.subscriber_for_key(key)
        if grant is None:
            return False
        if isinstance(prefix, bytes):
            try:
                prefix = prefix.decode("utf-8")
            except UnicodeDecodeError:
                return False
        return grant.allows_prefix(prefix)

    def may_read(self, key: str | bytes | None, path: str) -> bool:
        """True if the subscriber holding ``key`` may see the node at ``path`` (to filter snapshot replies)."""
        grant = self.subscriber_for_key(key)
        return grant is not None and grant.allows_path(path)


class _ReadOnly(Mapping[str, Any]):
    """A read-only view of a dict, so callers cannot change an AllowList behind the ZAP thread's back."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


_FILE_HEADER: Final = """\
# gsmon hub allow-list: the CURVE client keys the hub accepts, and what each may do.
# Managed by `gsmon keys` (init, agent, subscriber, revoke, list), which rewrites this
# file atomically and does not keep comments. The hub re-reads it within a second of
# a change; an invalid file is logged and the previous list stays in force.
#
#   [agents.NAME]       public_key = "<Z85>"   mounts = ["GS1/Antenna1", ...]
#                       NAME is the agent's name; it may publish only at or below its mounts.
#   [subscribers.NAME]  public_key = "<Z85>"   prefixes = ["GS1/", ...]  (optional)
#                       without prefixes the subscriber may read everything.
#                       admin = true (optional): it may also run `gsmon forget`.
"""

_BARE_KEY_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_TOML_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    """Quote ``text`` as a TOML basic string (every character TOML requires escaped, escaped)."""
    out = ['"']
    for char in text:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif char < " " or char == "\x7f":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _toml_key(name: str) -> str:
    """Write ``name`` as a bare TOML key when it can be one, else quoted."""
    return name if name and set(name) <= _BARE_KEY_CHARS else _toml_string(name)


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


def peer_address(frame: zmq.Frame) -> str | None:
    """Return the peer's IP address for a received frame (for log lines), or ``None``."""
    try:
        address = frame.get("Peer-Address")
    except zmq.ZMQError:
        return None
    return address if isinstance(address, str) else None


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
        self._last_error: str | None = None
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
        auth = _GuardedThreadAuthenticator(self._context, log=logging.getLogger("gsmon.hub.auth.zap"))
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

    def __enter__(self) -> HubAuthenticator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

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
    def server_public_key(self) -> bytes:
        """The hub's Z85 public key (what agents and subscribers need)."""
        return self._server_pair.public

    # -- the allow-list ----------------------------------------------------------

    @property
    def allow_list(self) -> AllowList:
        """The allow-list in force now (immutable: hold it for one message, ask again for the next)."""
        return self._allow_list

    @property
    def last_error(self) -> str | None:
        """Why the current file version was rejected (the previous list then stays in force), or ``None``."""
        return self._last_error

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
        typo), logs the error once, and exposes it as :attr:`last_error`. An
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
            self._last_error = str(exc)
            log.error("allow-list not reloaded, the previous one stays in force: %s", exc)
            return False
        old, self._allow_list = self._allow_list, new
        self._applied_signature, self._failed_signature, self._last_error = signature, None, None
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
