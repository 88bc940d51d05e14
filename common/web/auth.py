"""Who may do what on the bridge: the users file, password hashes, session cookies, CSRF. Pure but for the file.

The users file (``gsmon web passwd NAME --users FILE --role ROLE`` writes it;
``gsmon web --users FILE`` reads it, and again whenever it changes)::

    # gsmon web users (written by `gsmon web passwd`; one table per user)
    [users."alice"]
    role = "operator"
    password = "$argon2id$v=19$m=65536,t=3,p=4$..."

Roles: ``viewer`` reads; ``operator`` also acknowledges, unacknowledges,
shelves and unshelves; ``admin`` as operator (the hub decides what only an
admin may do, e.g. a shelf longer than 24 h, and applies the bridge key's own
role on top). The role decides what the page offers AND what the bridge
accepts: a viewer's forged POST is refused here, before the hub is asked.

Passwords are hashed with Argon2id by ``argon2-cffi`` (the reference
implementation's binding, maintained by the PyCA's hynek; the winner of the
Password Hashing Competition and OWASP's first choice; its ``PasswordHasher``
picks salts, encodes parameters in the hash and says when a hash should be
upgraded). Verifying takes tens of milliseconds by design, so the app does it
off the event loop.

Sessions are a cookie the bridge signs itself with HMAC-SHA256 (stdlib
``hmac``), rather than aiohttp-session's EncryptedCookieStorage: the cookie
holds nothing secret (the user's name, a fingerprint of their password hash,
the CSRF token, an expiry), so it needs integrity, not secrecy, and checking
it is ten lines; aiohttp-session would add the ``cryptography`` package and a
middleware whose storage adds nothing we use. Every request looks the user up
again in the users file: a removed user, a changed password (the fingerprint
no longer matches) or a changed role takes effect at once, without any
session store. The signing key is made at start-up (sessions end when the
bridge restarts, which only means logging in again). Cookie attributes:
``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page
sends it), ``Path=/``, and ``Secure`` when the request came over TLS
(directly, or through a proxy that says so with ``X-Forwarded-Proto`` when
the bridge runs with ``--behind-proxy``).

CSRF, on every write: no valid session -> 401; a session but no
``X-Gsmon-CSRF`` header equal to the session's token, or an ``Origin`` (or,
without one, a ``Referer``) that is not this bridge's own origin, or a
``Sec-Fetch-Site`` of ``cross-site`` -> 403. Never a redirect: the page and
scripts get a status and a JSON line saying why.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gsmon.common import names as naming
from gsmon.common.config import ConfigError, load_toml
from gsmon.common.keys import replace_private_file

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "ROLES",
    "ROLES_THAT_ACT",
    "SESSION_S",
    "LoginThrottle",
    "Role",
    "Session",
    "SessionSigner",
    "User",
    "Users",
    "hash_password",
    "origin_allowed",
    "set_user",
]

Role = Literal["viewer", "operator", "admin"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "operator", "admin")
_ROLE_OF: Final[dict[str, Role]] = {role: role for role in ROLES}
ROLES_THAT_ACT: Final[frozenset[str]] = frozenset({"operator", "admin"})
COOKIE_NAME: Final = "gsmon_session"
CSRF_HEADER: Final = "X-Gsmon-CSRF"
#: How long a session lasts (one long shift): then the user logs in again.
SESSION_S: Final = 12 * 3600.0
MAX_REVOKED: Final = 100_000  # logged-out sessions remembered until they expire
MAX_PASSWORD_CHARS: Final = 1024

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` (raises :class:`ValueError` for an empty or huge one)."""
    if not password:
        raise ValueError("the password is empty")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"a password is at most {MAX_PASSWORD_CHARS} characters")
    return _hasher.hash(password)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password_hash: str

    @property
    def fingerprint(self) -> str:
        """Names this password: a session made with another one is no longer valid."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]

    def verify(self, password: str) -> bool:
        """Whether ``password`` is this user's (slow on purpose: call it off the event loop)."""
        if not password or len(password) > MAX_PASSWORD_CHARS:
            return False
        try:
            return _hasher.verify(self.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _parse(path: Path) -> dict[str, User]:
    root = load_toml(str(path))
    users: dict[str, User] = {}
    table = root.section("users")
    for name in table.keys():  # noqa: SIM118 (a config Section, not a dict: keys() is its API)
        try:
            naming.check_name(name, "user name")
        except naming.InvalidNameError as error:
            raise ConfigError(str(error), file=str(path), key=f"users.{name}") from None
        entry = table.section(name)
        role = _ROLE_OF[entry.choice("role", ROLES)]
        password = entry.string("password")
        if not str(password).startswith("$argon2"):
            raise entry.expected("password", "an Argon2 hash written by `gsmon web passwd`", "plain text")
        users[name] = User(name, role, str(password))
    root.finish()
    return users


class Users:
    """The users file, read again when it changes (checked at most every ``recheck_s``)."""

    def __init__(self, path: str | os.PathLike[str], *, recheck_s: float = 1.0) -> None:
        self.path = Path(path)
        self.recheck_s = recheck_s
        self._users = _parse(self.path)  # ConfigError: the bridge does not start with a bad file
        self._stamp = self._stat()
        self._checked_at = time.monotonic()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self.recheck_s:
            return
        self._checked_at = now
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._users = _parse(self.path)
        except ConfigError:
            # A half-edited or broken file: nobody may log in until it is fixed (never the old roles).
            self._users = {}

    def get(self, name: str) -> User | None:
        self._refresh()
        return self._users.get(name)

    def check_password(self, name: str, password: str) -> User | None:
        """The user ``name`` if ``password`` is theirs, else None. Slow on purpose, and as slow for a name
        that is not in the file (a hash is checked either way): the time taken does not tell who exists."""
        user = self.get(name)
        if user is None:
            User(name, "viewer", _dummy_hash()).verify(password)
            return None
        return user if user.verify(password) else None

    def __len__(self) -> int:
        self._refresh()
        return len(self._users)


@functools.cache
def _dummy_hash() -> str:
    """What a login of an unknown user is checked against (the same parameters as real hashes; made once,
    when first needed: hashing takes tens of milliseconds)."""
    return _hasher.hash(secrets.token_urlsafe(16))


class LoginThrottle:
    """Failed logins per user name: after ``limit`` within ``window_s`` that name must wait. Pure (takes ``now``).

    Bounded: names whose failures are all older than the window are forgotten, and at most ``max_names``
    are kept (the oldest go first): a stream of made-up names cannot grow the bridge's memory.
    """

    def __init__(self, limit: int = 5, window_s: float = 60.0, *, max_names: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_names = max_names
        self._failures: dict[str, list[float]] = {}  # insertion order: the oldest first

    def __len__(self) -> int:
        return len(self._failures)

    def _recent(self, name: str, now: float) -> list[float]:
        return [at for at in self._failures.get(name, ()) if now - at < self.window_s]

    def blocked(self, name: str, now: float) -> bool:
        """Whether ``name`` has had ``limit`` failed logins in the last ``window_s``."""
        return len(self._recent(name, now)) >= self.limit

    def failed(self, name: str, now: float) -> None:
        recent = self._recent(name, now)
        self._failures.pop(name, None)
        self._failures[name] = [*recent[-(self.limit - 1) :], now] if self.limit > 1 else [now]
        # Forget names whose window has passed (from the oldest), then the oldest beyond the bound.
        for old in list(self._failures):
            if len(self._failures) <= self.max_names and now - self._failures[old][-1] < self.window_s:
                break
            del self._failures[old]

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)


def _quote(name: str) -> str:
    # A TOML basic string: JSON's escapes are TOML's for what a name may hold (no control characters).
    return json.dumps(name, ensure_ascii=False)


def set_user(path: str | os.PathLike[str], name: str, password: str, role: Role | None) -> tuple[User, bool]:
    """Create or change user ``name`` in the users file at ``path`` (created 0600 if missing).

    ``role`` None keeps an existing user's role (a new one becomes a viewer).
    Returns the user and whether it is new. Raises :class:`ValueError` or
    :class:`ConfigError` (one line each).
    """
    naming.check_name(name, "user name")
    target = Path(path)
    users = _parse(target) if target.exists() else {}
    old = users.get(name)
    chosen: Role = role if role is not None else (old.role if old is not None else "viewer")
    user = User(name, chosen, hash_password(password))
    users[name] = user
    lines = ["# gsmon web users (written by `gsmon web passwd`; one table per user)", ""]
    for each in sorted(users.values(), key=lambda item: item.name):
        lines += [f"[users.{_quote(each.name)}]", f'role = "{each.role}"', f'password = "{each.password_hash}"', ""]
    replace_private_file(target, "\n".join(lines).encode())
    return user, old is None


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in user, as a request sees it (role from the users file, now)."""

    user: str
    role: Role
    csrf: str
    expires_at: float

    @property
    def may_act(self) -> bool:
        return self.role in ROLES_THAT_ACT


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Makes and checks session cookie values (see the module docstring)."""

    def __init__(self, key: bytes | None = None, *, lifetime_s: float = SESSION_S) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self.lifetime_s = lifetime_s
        # Sessions logged out before they expired: their CSRF token (unique per session) -> expiry. A cookie
        # is signed, not stored, so a logout must remember it until it would have expired by itself.
        self._revoked: dict[str, float] = {}

    def revoke(self, session: Session, now: float) -> None:
        """Log ``session`` out at wall time ``now``: its cookie is refused from now on (until it expires anyway)."""
        self._revoked = {token: until for token, until in self._revoked.items() if until > now}
        if len(self._revoked) >= MAX_REVOKED:
            # Each needed a login (argon2, throttled): a flood of them ends the oldest logouts' memory first.
            del self._revoked[min(self._revoked, key=self._revoked.__getitem__)]
        self._revoked[session.csrf] = session.expires_at

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def issue(self, user: User, now: float) -> tuple[str, Session]:
        """A new cookie value for ``user`` at wall time ``now``, and the session it stands for."""
        session = Session(user.name, user.role, secrets.token_urlsafe(24), now + self.lifetime_s)
        payload = {"u": user.name, "f": user.fingerprint, "c": session.csrf, "e": round(session.expires_at)}
        body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{body}.{self._sign(body)}", session

    def check(self, value: str | None, users: Users, now: float) -> Session | None:
        """The session ``value`` stands for, or None (forged, expired, user gone or password changed)."""
        if not value or value.count(".") != 1 or len(value) > 4096:
            return None
        body, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            payload = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        name, fingerprint, csrf, expires = (payload.get(key) for key in ("u", "f", "c", "e"))
        if not (isinstance(name, str) and isinstance(fingerprint, str) and isinstance(csrf, str)):
            return None
        if csrf in self._revoked:
            return None  # logged out
        if not isinstance(expires, int | float) or expires <= now:
            return None
        user = users.get(name)
        if user is None or not hmac.compare_digest(user.fingerprint, fingerprint):
            return None
        return Session(user.name, user.role, csrf, float(expires))


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def origin_allowed(headers: Mapping[str, str], own_origin: str) -> bool:
    """Whether a write with these request ``headers`` comes from a page of ``own_origin`` (``http://host:port``).

    ``Origin`` must be ours; without it (some clients send none) a ``Referer``
    must be ours; without either, the CSRF token alone decides (it cannot be
    read by another origin). ``Sec-Fetch-Site: cross-site`` is always refused.
    """
    if headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return False
    own = own_origin.lower()
    origin = headers.get("Origin")
    if origin is not None:
        return origin.strip().lower() == own
    referer = headers.get("Referer")
    if referer is not None:
        return _origin_of(referer) == own
    return True
