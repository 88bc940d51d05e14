"""CURVE key files: create them safely, load them strictly, put them on sockets.

A key pair lives in two files in the czmq "zcert" text format, so pyzmq's
``zmq.auth.load_certificate`` and czmq tools read them too::

    <name>.key          public key only: may be shared (hand the hub's to agents)
    <name>.key_secret   public + secret key: never leaves its host

Both are created with ``os.open(..., O_CREAT | O_EXCL, 0o600)`` inside a folder
created 0700: there is no moment at which a secret is readable by others, and
an existing file is never overwritten. (pyzmq's own ``create_certificates``
writes with a plain ``open()``, so the umask decides; we do not use it.)

Loading a secret key refuses a file that group or others may access, or a
folder looser than 0700, with a :class:`KeyFileError` that names the file, its
mode and the ``chmod`` that fixes it: a key that others could have read is a
key that others may hold. Public keys load from any readable file.

Who holds what, with ``gsmon keys``:

* the hub: ``hub.key_secret`` (its pair) and ``authorized.toml`` (the client
  public keys it accepts);
* every agent and subscriber: its own ``<name>.key_secret`` and a copy of the
  hub's **public** key ``hub.key`` -- that file is what you hand to agents.

Ownership: every file and folder written here takes the owner and group of
the folder it is written in, when that is not who runs the command. So
``gsmon keys`` run as root on the hub's keys folder (owned by the ``gsmon``
user) leaves ``authorized.toml`` and the key files owned by ``gsmon`` -- a
root-owned 0600 file there would be unreadable by the running hub. Where the
owner cannot be changed (not root, or a file system that refuses it), the
write is refused with a :class:`KeyFileError` that says to run the command as
the folder's owner instead; a file is never left with the wrong owner.

Sockets: :func:`apply_curve_server` makes a socket a CURVE server,
:func:`apply_curve_client` a client. Both must run before the socket binds or
connects (libzmq applies security options only to later binds and connects;
an endpoint bound earlier would stay unencrypted), and both check
``zmq.has("curve")``. A CURVE server authenticates clients only when a ZAP
handler runs in the same context -- see :mod:`gsmon.hub.auth`.

:func:`read_protected_file` is the one secure way files are read here (the
secret keys, and the hub's allow-list in :mod:`gsmon.common.allowlist`):
the checks happen on the opened descriptor.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shlex
import stat
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import zmq
from zmq.utils import z85

from gsmon.common.errors import UsageError

__all__ = [
    "PUBLIC_SUFFIX",
    "SECRET_SUFFIX",
    "ClientKeys",
    "CurveUnavailableError",
    "KeyFileError",
    "KeyPair",
    "apply_curve_client",
    "apply_curve_server",
    "check_z85_key",
    "create_key_pair",
    "ensure_private_dir",
    "generate_key_pair",
    "load_key_pair",
    "load_public_key",
    "public_key_path",
    "read_protected_file",
    "replace_private_file",
    "require_curve",
    "secret_key_path",
    "write_key_pair",
    "write_private_file",
    "write_public_key",
]

PUBLIC_SUFFIX: Final = ".key"
SECRET_SUFFIX: Final = ".key_secret"  # noqa: S105 -- a file suffix, not a password

# A key file is a few hundred bytes; refuse to slurp anything much larger.
_MAX_KEY_FILE_BYTES: Final = 64 * 1024
_Z85_KEY: Final = re.compile(rb"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")
# ZPL (czmq's config format) names; values are written in double quotes, which
# ZPL cannot escape, so they may hold neither quotes nor control characters.
_META_NAME: Final = re.compile(r"[A-Za-z0-9$\-_@.&+/]{1,64}")
_META_VALUE_BAD: Final = re.compile('["\x00-\x1f\x7f-\x9f]')
_MAX_META_VALUE: Final = 256

_PAIR_BANNER: Final = """\
#   ****  Generated on {when} by gsmon  ****
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

"""
_PUBLIC_BANNER: Final = """\
#   ****  Generated on {when} by gsmon  ****
#   ZeroMQ CURVE Public Certificate
#   Exchange securely, or use a secure mechanism to verify the contents
#   of this file after exchange.

"""


class KeyFileError(UsageError):
    """A key file or key folder cannot be used: missing, malformed, too open, or in the way.

    The message names the file and, for permissions, the command that fixes it.
    """


class CurveUnavailableError(UsageError, RuntimeError):
    """This libzmq was built without CURVE, so keys cannot be used at all."""


def require_curve() -> None:
    """Raise :class:`CurveUnavailableError` unless libzmq supports CURVE."""
    if not zmq.has("curve"):
        raise CurveUnavailableError(
            f"libzmq {zmq.zmq_version()} was built without CURVE security; install a pyzmq wheel "
            "(it bundles libzmq with CURVE) or rebuild libzmq with libsodium"
        )


def check_z85_key(key: object, what: str = "key") -> bytes:
    """Return ``key`` as 40 ASCII bytes of Z85 if it encodes a 32-byte CURVE key, else raise ValueError.

    Accepts ``str`` or ``bytes``. Every 5-character group must also stay below
    2**32, which the alphabet alone does not guarantee.
    """
    if isinstance(key, str):
        try:
            raw = key.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"{what} must be 40 characters of Z85, found a non-ASCII character") from None
    elif isinstance(key, bytes):
        raw = key
    else:
        raise ValueError(f"{what} must be a Z85 string, not {type(key).__name__}")
    if _Z85_KEY.fullmatch(raw) is None:
        raise ValueError(f"{what} must be 40 characters of Z85 (a CURVE public or secret key), got {len(raw)}")
    try:
        decoded = z85.decode(raw)
    except (ValueError, struct.error) as exc:  # struct.error: a 5-character group >= 2**32
        raise ValueError(f"{what} is not valid Z85: {exc}") from exc
    if len(decoded) != 32:  # pragma: no cover - 40 chars always decode to 32 bytes
        raise ValueError(f"{what} must decode to 32 bytes")
    return raw


def _check_metadata(metadata: Mapping[Any, Any]) -> dict[str, str]:
    """Return ``metadata`` as a plain dict if it can be written as zcert metadata, else raise ValueError."""
    checked: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or _META_NAME.fullmatch(name) is None:
            raise ValueError(f"metadata name {name!r} must be 1-64 of A-Z a-z 0-9 $ - _ @ . & + /")
        # pyzmq's load_certificate takes any line *starting with* these words
        # as the key, even in the metadata section: such a name would let the
        # metadata shadow the real key for pyzmq tools.
        if name.startswith(("public-key", "secret-key")):
            raise ValueError(f"metadata name {name!r} must not start with 'public-key' or 'secret-key'")
        if not isinstance(value, str) or len(value) > _MAX_META_VALUE or _META_VALUE_BAD.search(value):
            raise ValueError(
                f"metadata {name!r}: a value is text of at most {_MAX_META_VALUE} characters "
                "without quotes or control characters"
            )
        checked[name] = value
    return checked


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair as Z85 bytes, with the zcert metadata it was stored with.

    The secret never appears in ``repr()``, so logging a pair does not leak it.
    Construction checks both keys and, when CURVE is available, that the
    public key really belongs to the secret one.
    """

    public: bytes
    secret: bytes = field(repr=False)
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public", check_z85_key(self.public, "public key"))
        object.__setattr__(self, "secret", check_z85_key(self.secret, "secret key"))
        object.__setattr__(self, "metadata", _check_metadata(self.metadata))
        if zmq.has("curve") and zmq.curve_public(self.secret) != self.public:
            raise ValueError("the public key does not belong to the secret key")

    @property
    def public_text(self) -> str:
        """The public key as ``str`` (what ``User-Id`` and ``authorized.toml`` hold)."""
        return self.public.decode("ascii")


def generate_key_pair(metadata: Mapping[str, str] | None = None) -> KeyPair:
    """Return a new random key pair (needs CURVE)."""
    require_curve()
    public, secret = zmq.curve_keypair()
    return KeyPair(public, secret, dict(metadata or {}))


def public_key_path(folder: str | os.PathLike[str], name: str) -> Path:
    """Return ``folder/<name>.key``."""
    return Path(folder) / f"{_check_file_stem(name)}{PUBLIC_SUFFIX}"


def secret_key_path(folder: str | os.PathLike[str], name: str) -> Path:
    """Return ``folder/<name>.key_secret``."""
    return Path(folder) / f"{_check_file_stem(name)}{SECRET_SUFFIX}"


def _check_file_stem(name: object) -> str:
    """Return ``name`` if it can name key files (no separators, not hidden), else raise ValueError."""
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or "/" in name
        or "\x00" in name
        or not name.isprintable()
    ):
        raise ValueError(f"{name!r} cannot name a key file: use printable text without '/' not starting with '.'")
    return name


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


def _folder_owner(folder: Path) -> tuple[int, int] | None:
    """The (uid, gid) that what is created in ``folder`` must get, or ``None`` when that is us already."""
    st = folder.stat()
    if (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()):
        return None
    if st.st_uid == os.geteuid() and os.geteuid() != 0:
        return None  # our own folder with another group: nothing we may fix, and nothing to fix
    return st.st_uid, st.st_gid


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _give_to_folder_owner(path: Path, fd: int | None = None) -> None:
    """Make ``path`` (open as ``fd`` when given) owned like the folder it is in, when that differs from us.

    Raises :class:`KeyFileError` saying to run as the folder's owner when the change is not allowed.
    """
    owner = _folder_owner(path.parent)
    if owner is None:
        return
    uid, gid = owner
    try:
        if fd is not None:
            os.fchown(fd, uid, gid)
        else:
            os.chown(path, uid, gid, follow_symlinks=False)
    except OSError as exc:
        user = _user_name(uid)
        raise KeyFileError(
            f"{path.parent} belongs to {user}, and {path.name} cannot be given to {user} "
            f"({exc.strerror or exc}); run this as {user}, e.g. runuser -u {user} -- gsmon keys ..."
        ) from exc


def ensure_private_dir(folder: str | os.PathLike[str]) -> Path:
    """Return ``folder``, creating it (and missing parents) with mode 0700; refuse an existing looser folder.

    An existing folder that group or others may enter would expose the secrets
    about to be written in it, so it raises :class:`KeyFileError` with the fix.
    """
    path = Path(folder)
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:  # pragma: no cover - the root always exists
            break
        probe = probe.parent
    for part in reversed(missing):
        try:
            # The mode is given to mkdir itself: the folder is never looser,
            # not even for the instant before a chmod.
            part.mkdir(mode=0o700)
        except FileExistsError:
            continue  # created meanwhile by someone else: checked below like any existing folder
        except OSError as exc:
            raise KeyFileError(f"cannot create key folder {part}: {exc.strerror or exc}") from exc
        try:
            _give_to_folder_owner(part)
        except BaseException:
            part.rmdir()
            raise
    try:
        st = path.stat()
    except OSError as exc:
        raise KeyFileError(f"cannot use key folder {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise KeyFileError(f"{path} is not a folder")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"key folder {path} is accessible by group/others (mode {_mode(st)}); "
            f"fix with: chmod 700 {shlex.quote(str(path))}"
        )
    return path


def write_private_file(path: str | os.PathLike[str], data: bytes) -> Path:
    """Create ``path`` with mode 0600 and write ``data``; never overwrite, never follow a symlink.

    ``O_EXCL`` makes creation fail if anything (a file, a planted symlink)
    already has that name. On a write error the partial file is removed.
    """
    target = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{target} already exists; refusing to overwrite it (move it away first)") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot create {target}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            _give_to_folder_owner(target, out.fileno())
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def replace_private_file(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically replace (or create) ``path`` with ``data``, as a 0600 file; readers see the old or the new file whole.

    The data goes to a temporary file in the same folder (``mkstemp``: 0600,
    ``O_EXCL``), is flushed to disk, then renamed over ``path``; a reader such
    as the hub polling ``authorized.toml`` never sees half a file.
    """
    target = Path(path)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        # The replacement is owned like its folder before it takes the name: the hub never sees a
        # file it cannot read (gsmon keys run as root on the hub user's folder).
        with os.fdopen(fd, "wb") as out:
            _give_to_folder_owner(Path(temp_name), out.fileno())
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    # Make the rename itself durable, so a crash cannot bring back the old list.
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return target


def _zcert_text(banner: str, public: bytes, secret: bytes | None, metadata: Mapping[str, str]) -> bytes:
    """Render a zcert file (ZPL: sections at column 0, properties indented by 4 spaces)."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [banner.format(when=when), "metadata\n"]
    lines.extend(f'    {name} = "{value}"\n' for name, value in _check_metadata(metadata).items())
    lines.append("curve\n")
    lines.append(f'    public-key = "{check_z85_key(public, "public key").decode()}"\n')
    if secret is not None:
        lines.append(f'    secret-key = "{check_z85_key(secret, "secret key").decode()}"\n')
    return "".join(lines).encode("utf-8")


def write_public_key(
    path: str | os.PathLike[str], public: bytes | str, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write a public-key-only zcert file at ``path`` (0600 on creation, never overwriting)."""
    public_bytes = check_z85_key(public, "public key")
    return write_private_file(path, _zcert_text(_PUBLIC_BANNER, public_bytes, None, metadata or {}))


def write_key_pair(folder: str | os.PathLike[str], name: str, pair: KeyPair) -> tuple[Path, Path]:
    """Write ``pair`` as ``folder/<name>.key`` and ``folder/<name>.key_secret``; return both paths.

    The folder is created 0700 if needed (and refused if looser); neither file
    may exist yet. If the second file cannot be written the first is removed.
    """
    directory = ensure_private_dir(folder)
    public_path = public_key_path(directory, name)
    secret_path = secret_key_path(directory, name)
    for existing in (public_path, secret_path):
        if existing.exists() or existing.is_symlink():
            raise KeyFileError(f"{existing} already exists; refusing to overwrite it (move it away first)")
    write_private_file(secret_path, _zcert_text(_PAIR_BANNER, pair.public, pair.secret, pair.metadata))
    try:
        write_public_key(public_path, pair.public, pair.metadata)
    except BaseException:
        secret_path.unlink(missing_ok=True)
        raise
    return public_path, secret_path


def create_key_pair(
    folder: str | os.PathLike[str], name: str, metadata: Mapping[str, str] | None = None
) -> tuple[KeyPair, Path, Path]:
    """Generate a pair and write it with :func:`write_key_pair`; return ``(pair, public_path, secret_path)``."""
    pair = generate_key_pair(metadata)
    public_path, secret_path = write_key_pair(folder, name, pair)
    return pair, public_path, secret_path


def _read_limited(fd: int, path: Path, what: str, max_bytes: int) -> bytes:
    with os.fdopen(fd, "rb") as src:
        data = src.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise KeyFileError(f"{path} is larger than {max_bytes} bytes; not a {what}")
    return data


def _open_regular(path: Path, what: str) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only and return the descriptor with its ``fstat``; checks happen on what was opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError as exc:
        raise KeyFileError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise KeyFileError(f"{what} {path} is not a regular file")
    return fd, st


def read_protected_file(
    path: str | os.PathLike[str], what: str, *, secret: bool, max_bytes: int = _MAX_KEY_FILE_BYTES
) -> bytes:
    """Read ``path`` once it is known that nobody but its owner could have changed it (nor, when
    ``secret``, read it); raise :class:`KeyFileError` naming the file, its mode and the ``chmod`` that fixes it.

    The file must be a regular file that group and others may not write
    (``secret``: not access at all), in a folder -- and, through a symlink, a
    target folder -- just as closed (``chmod 700``). The file's mode is
    checked on the opened descriptor, so a file swapped after the check is not
    the one read. A secret key others could have read is a key others may
    hold; an allow-list others could have written may let any key in. ``what``
    names the file in messages (``"secret key file"``, ``"allow-list"``).
    """
    file = Path(path)
    loose_bits, how = (0o077, "accessible") if secret else (0o022, "writable")
    fd, st = _open_regular(file, what)
    try:
        if st.st_mode & loose_bits:
            raise KeyFileError(
                f"{what} {file} is {how} by group/others (mode {_mode(st)}); "
                f"fix with: chmod 600 {shlex.quote(str(file))}"
            )
        for folder in sorted({file.absolute().parent, Path(os.path.realpath(file)).parent}):
            try:
                folder_st = folder.stat()
            except OSError as exc:
                raise KeyFileError(f"cannot check the folder of {what} {file}: {exc.strerror or exc}") from exc
            if folder_st.st_mode & loose_bits:
                raise KeyFileError(
                    f"folder {folder} holding {what} {file.name} is {how} by group/others "
                    f"(mode {_mode(folder_st)}); fix with: chmod 700 {shlex.quote(str(folder))}"
                )
    except BaseException:
        os.close(fd)
        raise
    return _read_limited(fd, file, what, max_bytes)


def _parse_zcert(data: bytes, path: Path) -> tuple[bytes, bytes | None, dict[str, str]]:
    """Parse zcert text into ``(public, secret or None, metadata)``; raise :class:`KeyFileError` if malformed."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"{path} is not a key file (not UTF-8 text)") from exc
    section = ""
    found: dict[str, dict[str, str]] = {"metadata": {}, "curve": {}}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line[0].isspace():
            section = stripped
            continue
        if section not in found:
            continue  # another ZPL section: not ours to interpret
        name, sep, value = stripped.partition("=")
        if not sep:
            raise KeyFileError(f"{path}:{number}: expected 'name = value' in section {section!r}")
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if name in found[section]:
            raise KeyFileError(f"{path}:{number}: {name!r} appears twice in section {section!r}")
        found[section][name] = value
    curve = found["curve"]
    if "public-key" not in curve:
        raise KeyFileError(f"{path} is not a CURVE key file: no public-key in a 'curve' section")
    try:
        public = check_z85_key(curve["public-key"], "public-key")
        secret = check_z85_key(curve["secret-key"], "secret-key") if "secret-key" in curve else None
    except ValueError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc
    return public, secret, found["metadata"]


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """Return the Z85 public key stored in a zcert file (``.key``, or the public half of a ``.key_secret``).

    Public keys are not secret, so the file's permissions are not checked.
    """
    key_path = Path(path)
    fd, _ = _open_regular(key_path, "public key file")
    public, _, _ = _parse_zcert(_read_limited(fd, key_path, "key file", _MAX_KEY_FILE_BYTES), key_path)
    return public


def load_key_pair(path: str | os.PathLike[str]) -> KeyPair:
    """Load a ``.key_secret`` zcert file, refusing it if group/others can access the file or its folder.

    Raises :class:`KeyFileError` naming the file, its mode and the fix
    (``chmod 600 FILE`` / ``chmod 700 FOLDER``); also if the file holds no
    secret key or the two keys do not belong together.
    """
    key_path = Path(path)
    data = read_protected_file(key_path, "secret key file", secret=True)
    public, secret, metadata = _parse_zcert(data, key_path)
    if secret is None:
        raise KeyFileError(f"{key_path} holds only a public key; the secret key is in the matching .key_secret file")
    try:
        return KeyPair(public, secret, _metadata_or_empty(metadata))
    except ValueError as exc:
        raise KeyFileError(f"{key_path}: {exc}") from exc


def _metadata_or_empty(metadata: dict[str, str]) -> dict[str, str]:
    """Keep metadata we could write back; a foreign file's odd metadata must not make its keys unusable."""
    try:
        return _check_metadata(metadata)
    except ValueError:
        return {}


def _require_unused(socket: zmq.Socket[Any]) -> None:
    """Refuse a socket that already binds or connects somewhere.

    libzmq applies security options only to the binds and connects that come
    after them: an endpoint made earlier would silently stay unencrypted and
    unauthenticated.
    """
    endpoint = socket.get(zmq.LAST_ENDPOINT)
    if endpoint:
        raise ValueError(
            f"socket is already bound or connected ({endpoint!r}); set CURVE options before bind/connect, "
            "or that endpoint stays unencrypted"
        )


def apply_curve_server(socket: zmq.Socket[Any], secret_pair: KeyPair, *, zap_domain: str = "") -> None:
    """Make ``socket`` a CURVE server with ``secret_pair``; call before ``bind``.

    Clients are authenticated only if a ZAP handler runs in the socket's
    context *and* knows ``zap_domain``; without one libzmq admits every client
    that knows the server's public key (the fail-open trap). The hub uses
    :meth:`gsmon.hub.auth.HubAuthenticator.server_socket_options`, which
    checks both.
    """
    require_curve()
    _require_unused(socket)
    socket.curve_secretkey = secret_pair.secret
    socket.curve_publickey = secret_pair.public
    if zap_domain:
        socket.zap_domain = zap_domain.encode("utf-8")
    socket.curve_server = True
    if socket.mechanism != zmq.CURVE:  # pragma: no cover - libzmq would have raised
        raise RuntimeError("libzmq did not switch the socket to CURVE")


def apply_curve_client(socket: zmq.Socket[Any], own_pair: KeyPair, server_public_key: bytes | str) -> None:
    """Make ``socket`` a CURVE client with ``own_pair``, talking only to ``server_public_key``; call before ``connect``.

    With the wrong server key the handshake fails and the socket silently
    never connects (ZeroMQ reports no error to the client).
    """
    require_curve()
    server_key = check_z85_key(server_public_key, "server public key")
    _require_unused(socket)
    socket.curve_secretkey = own_pair.secret
    socket.curve_publickey = own_pair.public
    socket.curve_serverkey = server_key
    if socket.mechanism != zmq.CURVE:  # pragma: no cover - libzmq would have raised
        raise RuntimeError("libzmq did not switch the socket to CURVE")


@dataclass(frozen=True)
class ClientKeys:
    """What a CURVE client (an agent, a subscriber) holds: its pair and the hub's public key."""

    pair: KeyPair
    server_public_key: bytes

    @classmethod
    def load(cls, secret_key_file: str | os.PathLike[str], hub_public_key_file: str | os.PathLike[str]) -> ClientKeys:
        """Load both files (permission-checked); raises :class:`KeyFileError`."""
        return cls(load_key_pair(secret_key_file), load_public_key(hub_public_key_file))

    def apply(self, socket: zmq.Socket[Any]) -> None:
        """Make ``socket`` a CURVE client of the hub; call before ``connect``."""
        apply_curve_client(socket, self.pair, self.server_public_key)
