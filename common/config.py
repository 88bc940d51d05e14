"""Typed readers over TOML configuration files, with errors an operator can act on.

Every gsmon process reads a TOML file the same way::

    root = load_toml("/etc/gsmon/agent.toml")      # ConfigError if missing, unreadable, bad TOML
    agent = root.section("agent")                  # an optional [agent] table
    workers = agent.integer("workers", 10, minimum=1)
    hubs = agent.endpoints("hubs", ["tcp://127.0.0.1:7761"], connect=True)
    root.finish()                                  # ConfigError on any key nobody read

A :class:`Section` is one TOML table. Its readers (``string``, ``boolean``,
``integer``, ``number``, ``seconds``, ``choice``, ``strings``, ``endpoint``,
``endpoints``, ``name``, ``agent_name``, ``mount``, ``point_path``, ``file_path``) return the
value with the right Python type, the default when the key is absent, or raise
:class:`ConfigError`. A reader called without a default makes the key
required. Each reader records its key as *known*, so :meth:`Section.finish`
can report a misspelt key together with the keys that are allowed there.

Every :class:`ConfigError` message has the same shape, ``<file>: <key>: <what
was expected>, got <what was found>``, where the key is dotted from the root
(``probes.cpu.dt_s``, ``agent.hubs[1]``, ``thresholds[0].red``)::

    /etc/gsmon/agent.toml: probes.cpu.dt_s: expected a positive number of seconds, got 'fast'

No tracebacks are needed to fix a configuration; the original exception, when
there is one, is chained as ``__cause__`` for debugging.

Command-line flags go through the same readers: :func:`with_overrides` lays
the flags' values over the file's data at their keys *before* anything is
read, so a flag is checked by exactly the rule of its key, and an error about
a value that came from a flag names the flag instead of the file::

    root = with_overrides(load_toml(path), {"liveness.agent_liveness": (0.5, "--agent-liveness")})
    root.section("liveness").number("agent_liveness", 3.0, minimum=1.0)
    # ConfigError: --agent-liveness: expected a number from 1 to 1000, got 0.5

A relative file path given by a flag is taken relative to the current folder
(where the operator typed it), one from the file relative to the file.
"""

from __future__ import annotations

import argparse
import enum
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from gsmon.common import names as naming
from gsmon.common.endpoints import endpoint_problem, hub_list_problem, split_hubs
from gsmon.common.errors import UsageError

__all__ = [
    "REQUIRED",
    "ConfigError",
    "Section",
    "add_key_flag",
    "check_endpoint",
    "default_state_dir",
    "flag_overrides",
    "load_toml",
    "parse_toml",
    "with_overrides",
]

_T = TypeVar("_T")


SYSTEM_STATE_DIR: Final = Path("/var/lib/gsmon")


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where a gsmon process keeps its files when it is not told (hub, agent, recorder, notifier alike):
    ``/var/lib/gsmon`` when it (or ``/var/lib``, to create it in) is writable -- a service run as root or
    as a user given that folder -- else ``$XDG_STATE_HOME/gsmon`` (``~/.local/state/gsmon``)."""
    environ = os.environ if env is None else env
    system = SYSTEM_STATE_DIR
    if os.access(system if system.exists() else system.parent, os.W_OK):
        return system
    base = environ.get("XDG_STATE_HOME") or str(Path(environ.get("HOME", "~")).expanduser() / ".local" / "state")
    return Path(base) / "gsmon"


class _Required(enum.Enum):
    """Type of the :data:`REQUIRED` marker (an enum so that mypy can narrow it)."""

    REQUIRED = enum.auto()


#: Default of every reader: the key must be present.
REQUIRED: Final = _Required.REQUIRED
_Req = Literal[_Required.REQUIRED]

# tomllib (3.11) only puts the position in the message text: "... (at line 2, column 5)".
_TOML_POSITION: Final = re.compile(r"\s*\(at (line \d+, column \d+|end of document)\)$")


class ConfigError(UsageError):
    """A configuration file cannot be used as it is.

    The message says which file, which key and what was expected; show it to
    the operator as it is (no traceback) and exit. ``file``, ``key`` and
    ``detail`` are also available separately.
    """

    def __init__(self, detail: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.detail = detail
        super().__init__(": ".join(part for part in (file, key, detail) if part))


def _describe(value: object) -> str:
    """Show a TOML value the way an operator wrote it (roughly)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int | float):
        return repr(value)
    return f"a {type(value).__name__}"


def _is_number(value: object) -> bool:
    # TOML booleans are Python bools, which are ints: `dt_s = true` is a mistake, not 1.
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_endpoint(endpoint: object, *, connect: bool = False) -> str:
    """Return ``endpoint`` if it is a ZeroMQ endpoint gsmon can use, else raise
    :class:`ValueError` saying what is wrong with it (the rules are
    :func:`gsmon.common.endpoints.endpoint_problem`'s)."""
    problem = endpoint_problem(endpoint, connect=connect)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(endpoint, str)
    return endpoint


class Section:
    """One TOML table, read through typed readers that remember which keys they read.

    Args:
        data: The table's contents.
        file: The file it came from (every error message starts with it).
        path: The table's dotted key from the root (``""`` for the root).
        base_dir: Relative file paths in the table are taken relative to it
            (the configuration file's folder).
        origins: Dotted keys (from the root) whose values came from elsewhere
            than the file, with what to call them in messages (a flag such as
            ``"--agent-liveness"``); see :func:`with_overrides`.
    """

    __slots__ = ("_children", "_data", "_known", "base_dir", "file", "origins", "path")

    def __init__(
        self,
        data: Mapping[str, Any],
        file: str,
        path: str = "",
        base_dir: Path | None = None,
        origins: Mapping[str, str] | None = None,
    ) -> None:
        self._data = data
        self.file = file
        self.path = path
        self.base_dir = base_dir if base_dir is not None else Path(file).parent
        self.origins: Mapping[str, str] = origins if origins is not None else {}
        self._known: set[str] = set()
        self._children: list[Section] = []

    # -- errors -----------------------------------------------------------

    def key_path(self, key: str) -> str:
        """The dotted key of ``key`` in this table, from the root."""
        if key.startswith("["):
            return f"{self.path}{key}"
        return f"{self.path}.{key}" if self.path else key

    def origin(self, key: str) -> str | None:
        """The flag (or other source) ``key`` of this table came from, or ``None`` when it came from the file.

        An element of a list set by a flag (``hubs[1]``) came from that flag too.
        """
        if not self.origins:
            return None
        dotted = self.key_path(key)
        while True:
            if dotted in self.origins:
                return self.origins[dotted]
            cut = max(dotted.rfind("["), dotted.rfind("."))
            if cut <= 0:
                return None
            dotted = dotted[:cut]

    def where(self, key: str) -> str:
        """How messages name ``key``: its flag, or ``<file>: <dotted key>``."""
        origin = self.origin(key)
        return origin if origin is not None else f"{self.file}: {self.key_path(key)}"

    def error(self, key: str | None, detail: str) -> ConfigError:
        """A :class:`ConfigError` for ``key`` of this table (``None``: the table itself)."""
        if key is not None and (origin := self.origin(key)) is not None:
            return ConfigError(detail, key=origin)
        return ConfigError(detail, file=self.file, key=self.key_path(key) if key is not None else (self.path or None))

    def expected(self, key: str, what: str, value: object, reason: str | None = None) -> ConfigError:
        """The usual error: ``<key>: expected <what>, got <value>[: <reason>]``."""
        detail = f"expected {what}, got {_describe(value)}"
        return self.error(key, f"{detail}: {reason}" if reason else detail)

    # -- bookkeeping ------------------------------------------------------

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def keys(self) -> list[str]:
        """The keys present in this table, in file order."""
        return list(self._data)

    def known(self, *keys: str) -> None:
        """Name keys as this table's own without reading them (a reader that only tests ``in``), so an
        unknown key's error lists them among the allowed ones."""
        self._known.update(keys)

    def _has(self, key: str) -> bool:
        """Whether ``key`` is present; either way it becomes a known key."""
        self._known.add(key)
        return key in self._data

    def _absent(self, key: str, default: _T | _Req, what: str) -> _T:
        """What a reader returns for an absent key: the default, or an error when required."""
        if default is REQUIRED:
            raise self.error(key, f"missing; expected {what}")
        return default

    def finish(self) -> None:
        """Raise :class:`ConfigError` for the first key, in this table or any
        table read from it, that no reader asked for."""
        for key in self._data:
            if key not in self._known:
                allowed = ", ".join(sorted(self._known)) or "none"
                raise self.error(key, f"unknown key; allowed keys here: {allowed}")
        for child in self._children:
            child.finish()

    # -- tables -----------------------------------------------------------

    def section(self, key: str) -> Section:
        """The sub-table ``key`` (an empty one when absent)."""
        value = self._data[key] if self._has(key) else {}
        if not isinstance(value, Mapping):
            raise self.expected(key, "a table", value)
        child = Section(value, self.file, self.key_path(key), self.base_dir, self.origins)
        self._children.append(child)
        return child

    def sections(self, key: str) -> list[Section]:
        """The array of tables ``key`` (``[[key]]`` in TOML; empty when absent)."""
        value = self._data[key] if self._has(key) else []
        if not isinstance(value, list):
            raise self.expected(key, f"an array of tables ([[{self.key_path(key)}]])", value)
        children = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise self.expected(f"{key}[{index}]", "a table", item)
            child = Section(item, self.file, self.key_path(f"{key}[{index}]"), self.base_dir, self.origins)
            self._children.append(child)
            children.append(child)
        return children

    # -- scalars ----------------------------------------------------------

    def string(self, key: str, default: _T | _Req = REQUIRED, *, allow_empty: bool = False) -> str | _T:
        """A string (not empty unless ``allow_empty``)."""
        what = "a string" if allow_empty else "a non-empty string"
        if not self._has(key):
            return self._absent(key, default, what)
        value = self._data[key]
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            raise self.expected(key, what, value)
        return value

    def boolean(self, key: str, default: _T | _Req = REQUIRED) -> bool | _T:
        """``true`` or ``false``."""
        if not self._has(key):
            return self._absent(key, default, "true or false")
        value = self._data[key]
        if not isinstance(value, bool):
            raise self.expected(key, "true or false", value)
        return value

    def integer(
        self,
        key: str,
        default: _T | _Req = REQUIRED,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | _T:
        """An integer within ``[minimum, maximum]`` (either bound optional)."""
        what = _range_text("an integer", minimum, maximum)
        if not self._has(key):
            return self._absent(key, default, what)
        value = self._data[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.expected(key, what, value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self.expected(key, what, value)
        return value

    def number(
        self,
        key: str,
        default: _T | _Req = REQUIRED,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
        what: str | None = None,
    ) -> float | _T:
        """A finite number (integers are accepted and returned as float),
        within ``[minimum, maximum]``, and ``> 0`` when ``positive``."""
        if what is None:
            what = "a positive number" if positive else _range_text("a number", minimum, maximum)
        if not self._has(key):
            return self._absent(key, default, what)
        value = self._data[key]
        if not _is_number(value) or not math.isfinite(value):
            raise self.expected(key, what, value)
        number = float(value)
        if (
            (positive and number <= 0)
            or (minimum is not None and number < minimum)
            or (maximum is not None and number > maximum)
        ):
            raise self.expected(key, what, value)
        return number

    def seconds(self, key: str, default: _T | _Req = REQUIRED) -> float | _T:
        """A duration: a positive number of seconds."""
        return self.number(key, default, positive=True, what="a positive number of seconds")

    def choice(
        self, key: str, choices: Sequence[str], default: _T | _Req = REQUIRED, *, upper: bool = False
    ) -> str | _T:
        """One of ``choices``; with ``upper`` the value is compared and returned upper-cased."""
        what = "one of " + ", ".join(repr(choice) for choice in choices)
        if not self._has(key):
            return self._absent(key, default, what)
        value = self._data[key]
        if not isinstance(value, str):
            raise self.expected(key, what, value)
        normalised = value.upper() if upper else value
        if normalised not in choices:
            raise self.expected(key, what, value)
        return normalised

    def strings(
        self,
        key: str,
        default: _T | _Req = REQUIRED,
        *,
        non_empty: bool = False,
        unique: bool = True,
        allow_empty: bool = False,
    ) -> list[str] | _T:
        """An array of non-empty strings (at least one when ``non_empty``;
        without repeats when ``unique``; ``allow_empty``: an item may be
        empty or blank, for the caller to judge)."""
        what = "a non-empty array of strings" if non_empty else "an array of strings"
        if not self._has(key):
            return self._absent(key, default, what)
        value = self._data[key]
        if not isinstance(value, list) or (non_empty and not value):
            raise self.expected(key, what, value)
        seen: set[str] = set()
        for index, item in enumerate(value):
            if not isinstance(item, str) or (not allow_empty and not item.strip()):
                raise self.expected(f"{key}[{index}]", "a string" if allow_empty else "a non-empty string", item)
            if unique and item in seen:
                raise self.expected(f"{key}[{index}]", "no repeated entries", item, "it is listed twice")
            seen.add(item)
        return list(value)

    def integers(
        self, key: str, default: _T | _Req = REQUIRED, *, length: int | None = None, what: str | None = None
    ) -> list[int] | _T:
        """An array of integers (exactly ``length`` of them when given); ``what`` names it in errors."""
        if what is None:
            what = "an array of integers" if length is None else f"an array of {length} integers"
        if not self._has(key):
            return self._absent(key, default, what)
        value = self._data[key]
        if (
            not isinstance(value, list)
            or (length is not None and len(value) != length)
            or not all(isinstance(item, int) and not isinstance(item, bool) for item in value)
        ):
            raise self.expected(key, what, value)
        return list(value)

    # -- validated strings --------------------------------------------------

    def endpoint(self, key: str, default: _T | _Req = REQUIRED, *, connect: bool = False) -> str | _T:
        """A ZeroMQ endpoint (see :func:`check_endpoint`)."""
        what = _endpoint_text(connect)
        if not self._has(key):
            return self._absent(key, default, what)
        value = self._data[key]
        return self._check_endpoint(key, value, connect)

    def endpoints(self, key: str, default: _T | _Req = REQUIRED, *, connect: bool = False) -> list[str] | _T:
        """A non-empty array of distinct ZeroMQ endpoints."""
        if not self._has(key):
            return self._absent(key, default, "a non-empty array of endpoints")
        value = self._data[key]
        if not isinstance(value, list) or not value:
            raise self.expected(key, "a non-empty array of endpoints", value)
        result: list[str] = []
        for index, item in enumerate(value):
            endpoint = self._check_endpoint(f"{key}[{index}]", item, connect)
            if endpoint in result:
                raise self.expected(f"{key}[{index}]", "no repeated endpoints", item, "it is listed twice")
            result.append(endpoint)
        return result

    def endpoint_list(self, key: str, default: _T | _Req = REQUIRED, *, connect: bool = False) -> list[str] | _T:
        """One ZeroMQ endpoint (a string) or a non-empty array of distinct ones (:meth:`endpoints`), as a list."""
        if self._has(key) and isinstance(self._data[key], list):
            return self.endpoints(key, connect=connect)
        if not self._has(key):
            return self._absent(key, default, "an endpoint or a non-empty array of endpoints")
        return [self.endpoint(key, connect=connect)]

    def hubs(self, key: str, default: _T | _Req = REQUIRED) -> str | _T:
        """A client's hub setting (1.3): one query endpoint, or a hub pair, written ``"tcp://a:7763,tcp://b:7763"``
        or as an array of endpoints; returned as one string joined by ``,`` (what ``--hub`` takes)."""
        if not self._has(key):
            return self._absent(key, default, "a hub's query endpoint, or a pair joined by a comma")
        value = self._data[key]
        if isinstance(value, list):
            return ",".join(self.endpoints(key, connect=True))
        if not isinstance(value, str) or "," not in value:
            return self._check_endpoint(key, value, True)  # one endpoint: the usual words
        problem = hub_list_problem(value)
        if problem is not None:
            raise self.expected(key, "a hub's query endpoint, or a pair joined by a comma", value, problem)
        assert isinstance(value, str)
        return ",".join(split_hubs(value))

    def _check_endpoint(self, key: str, value: object, connect: bool) -> str:
        try:
            return check_endpoint(value, connect=connect)
        except ValueError as error:
            raise self.expected(key, _endpoint_text(connect), value, str(error)) from error

    def name(self, key: str, default: _T | _Req = REQUIRED, *, what: str = "name") -> str | _T:
        """One tree name (see :mod:`gsmon.common.names`): no ``/``, no control characters."""
        if not self._has(key):
            return self._absent(key, default, f"a valid {what}")
        value = self._data[key]
        try:
            return naming.check_name(value, what)
        except naming.InvalidNameError as error:
            raise self.expected(key, f"a valid {what}", value, _reason(error, what, value)) from error

    def agent_name(self, key: str, default: _T | _Req = REQUIRED) -> str | _T:
        """An agent's name (:func:`gsmon.common.names.check_agent_name`): a name not starting with ``_``."""
        what = "agent name"
        if not self._has(key):
            return self._absent(key, default, f"a valid {what}")
        value = self._data[key]
        try:
            return naming.check_agent_name(value)
        except naming.InvalidNameError as error:
            raise self.expected(key, f"a valid {what}", value, _reason(error, what, value)) from error

    def point_path(self, key: str, default: _T | _Req = REQUIRED, *, what: str = "path") -> str | _T:
        """A ``/``-separated path of valid names."""
        if not self._has(key):
            return self._absent(key, default, f"a valid {what}")
        value = self._data[key]
        try:
            return naming.check_path(value, what)
        except naming.InvalidNameError as error:
            raise self.expected(key, f"a valid {what}", value, _reason(error, what, value)) from error

    def mount(self, key: str, default: _T | _Req = REQUIRED) -> str | _T:
        """An agent's mount path: a path whose root is not reserved for the hub."""
        if not self._has(key):
            return self._absent(key, default, "a valid mount path")
        value = self._data[key]
        try:
            return naming.check_mount(value)
        except naming.InvalidNameError as error:
            raise self.expected(key, "a valid mount path", value, _reason(error, "mount path", value)) from error

    def file_path(self, key: str, default: _T | _Req = REQUIRED) -> Path | _T:
        """A file path; a relative one is taken relative to the configuration file's folder."""
        what = "a file path"
        if not self._has(key):
            return self._absent(key, default, what)
        value = self._data[key]
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise self.expected(key, what, value)
        path = Path(value).expanduser()
        if path.is_absolute() or self.origin(key) is not None:
            return path  # a flag's relative path is relative to where it was typed
        return self.base_dir / path


def _range_text(what: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{what} from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f"{what} of at least {minimum:g}"
    if maximum is not None:
        return f"{what} of at most {maximum:g}"
    return what


def _endpoint_text(connect: bool) -> str:
    if connect:
        return "an endpoint to connect to (tcp://host:port with port 1-65535, ipc://path or inproc://name)"
    return "an endpoint (tcp://host:port with port 0-65535 or '*', ipc://path or inproc://name)"


def _reason(error: naming.InvalidNameError, what: str, value: object) -> str:
    """The rule an invalid name breaks, without repeating the name itself."""
    message = str(error)
    prefix = f"invalid {what} {value!r}: "
    return message.removeprefix(prefix)


def with_overrides(root: Section, overrides: Mapping[str, tuple[object, str]]) -> Section:
    """``root`` (a root table nobody has read yet) with values laid over it, for one validation.

    ``overrides`` maps a dotted key (``"liveness.agent_liveness"``) to
    ``(value, origin)``; the value replaces the file's (tables on the way are
    created when absent) and errors about that key name ``origin`` (the flag)
    instead of the file. A key whose value is ``None`` is left as the file has it.
    """
    data: dict[str, Any] = _copy_tables(root._data)
    origins = dict(root.origins)
    for dotted, (value, origin) in overrides.items():
        if value is None:
            continue
        *tables, last = dotted.split(".")
        target = data
        for name in tables:
            child = target.get(name)
            if not isinstance(child, dict):
                # A non-table here is the file's mistake: the reader reports it, not silently replaced.
                if child is not None:
                    break
                child = target[name] = {}
            target = child
        else:
            target[last] = value
            origins[dotted] = origin
    return Section(data, root.file, root.path, root.base_dir, origins)


class _KeyFlag(argparse.Action):
    """An argparse action for a flag that sets one configuration key: it stores
    the value (appends, for a repeatable flag) and records it, with the flag's
    spelling as typed, in ``namespace.config_flags`` for :func:`flag_overrides`."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        *,
        key: str,
        repeat: bool = False,
        convert: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ):
        self.key = key
        self.repeat = repeat
        self.convert = convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        spelling = option_string or self.option_strings[0]
        value: Any = values
        if self.convert is not None:
            # Converted here rather than by argparse's type=, so that an error names the spelling typed.
            try:
                value = self.convert(str(values))
            except ValueError:
                parser.error(f"argument {spelling}: invalid {self.convert.__name__} value: {values!r}")
        if self.repeat:
            value = [*(getattr(namespace, self.dest, None) or []), values]
        setattr(namespace, self.dest, value)
        if not isinstance(getattr(namespace, "config_flags", None), dict):
            namespace.config_flags = {}
        namespace.config_flags[self.key] = (value, spelling)


def add_key_flag(
    parser: argparse.ArgumentParser,
    *names: str,
    key: str,
    repeat: bool = False,
    type: Callable[[str], Any] | None = None,  # noqa: A002 -- argparse's own name for it
    **kwargs: Any,
) -> None:
    """Add a flag that sets the configuration key ``key`` (dotted), for :func:`with_overrides`.

    The first name is the one that corresponds to the key; more names are
    older spellings kept as aliases. ``repeat``: the flag may be given several
    times and builds a list.
    """
    parser.add_argument(*names, action=_KeyFlag, key=key, repeat=repeat, convert=type, default=None, **kwargs)


def flag_overrides(args: argparse.Namespace) -> dict[str, tuple[object, str]]:
    """The keys set by :func:`add_key_flag` flags on this command line: {dotted key: (value, flag as typed)}."""
    flags = getattr(args, "config_flags", None)
    return dict(flags) if isinstance(flags, dict) else {}


def _copy_tables(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` whose tables (not arrays) are copies too, so overlaying never changes the original."""
    return {key: _copy_tables(value) if isinstance(value, Mapping) else value for key, value in data.items()}


def parse_toml(text: str, file: str = "<string>", base_dir: Path | None = None) -> Section:
    """Parse TOML ``text`` into a root :class:`Section`; errors name ``file``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(_toml_error_text(error), file=file) from error
    return Section(data, file, "", base_dir)


def load_toml(path: str | Path) -> Section:
    """Read and parse the TOML file at ``path`` into a root :class:`Section`.

    Raises :class:`ConfigError` when the file is missing, cannot be read, is
    not UTF-8, or is not valid TOML (the message gives the line and column).
    """
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as error:
        raise ConfigError("cannot read the configuration: no such file", file=file) from error
    except IsADirectoryError as error:
        raise ConfigError("cannot read the configuration: it is a directory, not a file", file=file) from error
    except OSError as error:
        raise ConfigError(f"cannot read the configuration: {error.strerror or error}", file=file) from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(f"line {line}: invalid TOML: the file is not UTF-8 text", file=file) from error
    return parse_toml(text, file, Path(path).parent)


def _toml_error_text(error: tomllib.TOMLDecodeError) -> str:
    message = str(error)
    match = _TOML_POSITION.search(message)
    if match is None:
        return f"invalid TOML: {message}"
    return f"{match.group(1)}: invalid TOML: {message[: match.start()]}"
