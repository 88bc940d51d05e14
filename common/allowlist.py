"""The hub's allow-list: which CURVE keys it accepts, and what each may do.

The allow-list is a file, ``authorized.toml`` beside the hub's
``hub.key_secret``, written by ``gsmon keys`` (:mod:`gsmon.common.keys_cli`)
and read by the hub (:mod:`gsmon.hub.auth`, which polls it for changes)::

    [agents.ant1]                  # the agent's name, as it sends it in every envelope
    public_key = "<40 chars Z85>"
    mounts = ["GS1/Antenna1"]      # it may publish at or below these paths

    [subscribers.ops]
    public_key = "<40 chars Z85>"
    prefixes = ["GS1/"]            # optional: it may read only these subtrees; absent = everything
    admin = true                   # optional: it may also run administrators' commands (gsmon forget)
    role = "operator"              # optional: viewer (default) | operator | admin (issue 13; admin = true: admin)
    services = ["history"]         # optional: it may register as these services (register_service)

Agent names follow :func:`gsmon.common.names.check_agent_name`, subscriber
names :func:`~gsmon.common.names.check_name`, mounts
:func:`~gsmon.common.names.check_mount`. A key appears once in the whole
file, and a name once across both tables. Unknown tables or fields are
errors, not ignored: a misspelt ``prefix =`` must not silently grant
everything. A subscriber prefix names a subtree and is stored with a trailing
``/`` (``"GS1/Antenna1"`` means ``GS1/Antenna1/...``), so that it never
also covers ``GS1/Antenna10``.

This module is the model only, pure but for :meth:`AllowList.load`:
:class:`AgentGrant`, :class:`SubscriberGrant`, :class:`AllowList` (immutable;
parse, load, change, write back with :meth:`AllowList.dumps`) and its one
error, :class:`AllowListError` -- a
:class:`~gsmon.common.config.ConfigError`, so its messages have the shape of
every configuration error. The file is read with the secret keys' secure open
(:func:`gsmon.common.keys.read_protected_file`); ``gsmon keys`` replaces it
atomically (:func:`gsmon.common.keys.replace_private_file`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gsmon.common import names
from gsmon.common.config import ConfigError
from gsmon.common.keys import KeyFileError, check_z85_key, read_protected_file

__all__ = [
    "ALLOW_LIST_FILE",
    "HUB_KEY_NAME",
    "AgentGrant",
    "AllowList",
    "AllowListError",
    "Grant",
    "SubscriberGrant",
]

#: The hub's own key pair in its keys folder (``hub.key``, ``hub.key_secret``); no client may take this name.
HUB_KEY_NAME: Final = "hub"
#: The allow-list's file name in the hub's keys folder.
ALLOW_LIST_FILE: Final = "authorized.toml"

_MAX_ALLOW_LIST_BYTES: Final = 8 * 1024 * 1024


class AllowListError(ConfigError, ValueError):
    """The allow-list (or a grant) is malformed or unsafe; the message names the file and the entry."""


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
            names.check_agent_name(self.name)
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
    return tuple(value)  # items checked by SubscriberGrant


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
        as is a missing file. The file is read by
        :func:`gsmon.common.keys.read_protected_file`, the same secure open as
        the secret keys (which others may not even read).
        """
        file = Path(path)
        try:
            data = read_protected_file(file, "allow-list", secret=False, max_bytes=_MAX_ALLOW_LIST_BYTES)
        except KeyFileError as error:
            if isinstance(error.__cause__, FileNotFoundError):
                raise AllowListError(f"{file}: allow-list not found (create it with: gsmon keys init DIR)") from None
            raise AllowListError(str(error)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AllowListError(f"not UTF-8 text ({exc})", file=str(file)) from None
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
