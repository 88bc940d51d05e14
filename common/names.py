"""Names and paths of monitor points.

A *name* is one segment ("CPU usage", "Antenna 2"): any Unicode text except
``/`` (the path separator) and control characters, at most
:data:`MAX_NAME_CHARS` characters, not empty and not blank. A *path* is names
joined by ``/`` (``GS1/Antenna2/Azimuth``); it is also the ZeroMQ topic a
subscriber filters on, so its UTF-8 form is capped at :data:`MAX_PATH_BYTES`
and its depth at :data:`MAX_DEPTH` segments.

A root segment starting with ``_`` is reserved for the hub's own points
(``_hub/...``); agents may not mount there.

An *agent name* (what an agent sends in every envelope, and what the
allow-list grants) is a name that does not start with ``_`` either:
:func:`check_agent_name` is that rule, for the agent's configuration, the
Monitor, the allow-list, the recorder and the hub alike;
:func:`default_agent_name` is the host name made into one
(:func:`host_name_as_name`, which the recorder's defaults use too).

A *prefix* (what ``gsmon get``/``watch``, snapshots, grants and the
Subscriber take) names whole segments: ``GS1/Antenna1`` selects that node and
its subtree, never its sibling ``GS1/Antenna10``; with a trailing ``/``
(``GS1/Antenna1/``) only the subtree below it; the empty prefix everything.
:func:`path_in_prefix` is that rule, the one every process uses.
"""

from __future__ import annotations

import re
import socket
from typing import Final

from gsmon.common.errors import UsageError

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME_CHARS",
    "MAX_PATH_BYTES",
    "RESERVED_ROOT_PREFIX",
    "SEPARATOR",
    "InvalidNameError",
    "PathPattern",
    "check_agent_name",
    "check_mount",
    "check_name",
    "check_path",
    "default_agent_name",
    "host_name_as_name",
    "is_agent_name",
    "join",
    "path_in_prefix",
    "split",
]

SEPARATOR: Final = "/"
MAX_NAME_CHARS: Final = 128
MAX_DEPTH: Final = 16
MAX_PATH_BYTES: Final = 1024
RESERVED_ROOT_PREFIX: Final = "_"

# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; a regex is
# far cheaper than asking unicodedata about every character.
_FORBIDDEN_CHAR: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class InvalidNameError(UsageError, ValueError):
    """A point, parent, agent or mount name breaks the naming rules.

    Raised at registration, before anything is stored; the message names the
    offending name and the rule it breaks.
    """


def _why_bad(name: object) -> str | None:
    """Return why ``name`` is not a valid name, or ``None`` when it is."""
    if not isinstance(name, str):
        return f"a name must be a str, not {type(name).__name__}"
    if not name or name.isspace():
        return "a name must not be empty or blank"
    if len(name) > MAX_NAME_CHARS:
        return f"a name is at most {MAX_NAME_CHARS} characters, this one has {len(name)}"
    if SEPARATOR in name:
        return f"a name must not contain {SEPARATOR!r} (it separates path segments)"
    bad = _FORBIDDEN_CHAR.search(name)
    if bad is not None:
        char = bad.group()
        if "\ud800" <= char <= "\udfff":
            # A lone surrogate cannot be encoded as the UTF-8 topic at all.
            return f"a name must be valid Unicode text (found the lone surrogate {char!r})"
        # Control characters (newline, tab, NUL, DEL...) would corrupt the
        # tree table and make topics ambiguous.
        return f"a name must not contain control characters (found {char!r})"
    return None


def check_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid single segment, else raise
    :class:`InvalidNameError` naming it and the rule it breaks."""
    reason = _why_bad(name)
    if reason is not None:
        raise InvalidNameError(f"invalid {what} {name!r}: {reason}")
    assert isinstance(name, str)
    return name


def check_agent_name(name: object) -> str:
    """Return ``name`` if it can name an agent -- a valid name whose first character is not the
    reserved ``_`` -- else raise :class:`InvalidNameError` saying which rule it breaks."""
    checked = check_name(name, "agent name")
    if checked.startswith(RESERVED_ROOT_PREFIX):
        raise InvalidNameError(
            f"invalid agent name {checked!r}: a leading {RESERVED_ROOT_PREFIX!r} is reserved for the hub"
        )
    return checked


def is_agent_name(name: object) -> bool:
    """Whether :func:`check_agent_name` accepts ``name`` (for the hub, which counts and drops the others)."""
    return _why_bad(name) is None and not str(name).startswith(RESERVED_ROOT_PREFIX)


def default_agent_name() -> str:
    """The host name, made a valid agent name ("agent" if nothing is left of it)."""
    return host_name_as_name()


def host_name_as_name(*, short: bool = False, fallback: str = "agent") -> str:
    """This host's name (its first label when ``short``) made a valid name not starting with ``_``.

    A host name cannot normally hold ``/`` or control characters, but the OS
    does not guarantee it: they are replaced rather than refused, and leading
    ``_`` (reserved) are dropped, so that an agent always starts; ``fallback``
    when nothing is left.
    """
    text = socket.gethostname()
    if short:
        text = text.split(".")[0]
    cleaned = "".join("_" if char == SEPARATOR or not char.isprintable() else char for char in text)
    cleaned = cleaned.strip().lstrip("_")[:MAX_NAME_CHARS]
    return cleaned or fallback


def split(path: str) -> list[str]:
    """Split a path into its names (no validation)."""
    return path.split(SEPARATOR)


def join(*names: str) -> str:
    """Join names (or already-joined paths) with the separator, skipping empty parts."""
    return SEPARATOR.join(n for n in names if n)


def check_path(path: object, what: str = "path") -> str:
    """Return ``path`` if every segment is a valid name and the depth and byte
    length are within limits, else raise :class:`InvalidNameError`."""
    if not isinstance(path, str):
        raise InvalidNameError(f"invalid {what} {path!r}: a path must be a str, not {type(path).__name__}")
    segments = split(path)
    if len(segments) > MAX_DEPTH:
        raise InvalidNameError(
            f"invalid {what} {path!r}: at most {MAX_DEPTH} levels deep, this one has {len(segments)}"
        )
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidNameError(f"invalid {what} {path!r}: at most {MAX_PATH_BYTES} bytes of UTF-8")
    for segment in segments:
        reason = _why_bad(segment)
        if reason is not None:
            raise InvalidNameError(f"invalid {what} {path!r}: segment {segment!r}: {reason}")
    return path


def check_mount(mount: object) -> str:
    """Validate an agent's mount path: a path whose root is not reserved."""
    path = check_path(mount, "mount path")
    if path.startswith(RESERVED_ROOT_PREFIX):
        raise InvalidNameError(
            f"invalid mount path {path!r}: root names starting with {RESERVED_ROOT_PREFIX!r} are reserved for the hub"
        )
    return path


def path_in_prefix(path: str, prefix: str) -> bool:
    """Whether the node at ``path`` is selected by ``prefix``, segment by segment.

    ``""`` selects every path; ``"A/B"`` selects ``A/B`` and everything below
    it (``A/B/c``) but not ``A/B2``; ``"A/B/"`` selects only what lies below
    ``A/B``. (ZeroMQ subscriptions match raw bytes, so ``A/B`` as a topic also
    delivers ``A/B2``: a subscriber filters what it receives with this.)
    """
    if not path.startswith(prefix):
        return False
    # A prefix that is empty or ends at a separator selects everything it starts;
    # otherwise the path must end there, or go on with a new segment.
    return not prefix or prefix[-1] == SEPARATOR or len(path) == len(prefix) or path[len(prefix)] == SEPARATOR


class PathPattern:
    """A path pattern (the hub's ``[[alarms]]`` rules, the recorder's ``[[policy]]``), matched segment by segment.

    ``**`` matches any number of segments (none included); in other segments
    ``*`` matches any run of characters and ``?`` one character, never across
    ``/``. ``GS1/*/Power/**`` matches ``GS1/Ant1/Power`` and
    ``GS1/Ant1/Power/Supply/Volts``, not ``GS1/Ant1/Drive/Power``.
    """

    __slots__ = ("_regex", "pattern")

    def __init__(self, pattern: str) -> None:
        text: object = pattern  # from TOML: anything
        if not isinstance(text, str) or not text:
            raise ValueError(f"expected a path pattern such as 'GS1/*/Power/**', got {pattern!r}")
        self.pattern = pattern
        parts: list[str] = []
        for index, segment in enumerate(pattern.split(SEPARATOR)):
            if not segment:
                raise ValueError(f"empty segment in path pattern {pattern!r}")
            lead = "" if index == 0 else "/"
            if segment == "**":
                # Zero or more whole segments; at the start they bring no leading "/" of their own.
                parts.append("(?:[^/]+(?:/[^/]+)*)?" if index == 0 else "(?:/[^/]+)*")
                continue
            body = "".join("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char) for char in segment)
            parts.append(lead + body)
        regex = "".join(parts)
        if pattern.startswith("**/"):
            regex = regex.replace("(?:[^/]+(?:/[^/]+)*)?/", "(?:[^/]+/)*", 1)
        self._regex = re.compile(regex)

    def matches(self, path: str) -> bool:
        return self._regex.fullmatch(path) is not None

    def __repr__(self) -> str:
        return f"PathPattern({self.pattern!r})"
