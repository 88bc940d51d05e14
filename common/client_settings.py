"""Where a client finds its hub and keys when the command line does not say: flags, variables, files.

``gsmon get``, ``gsmon watch`` (and any command that asks the hub) need the
hub's query endpoint and, on a keyed station, a secret key and the hub's
public key. Typing ``--hub``, ``--key`` and ``--hub-key`` every time is what
this module saves. Each of the three settings is looked up on its own, the
first source that has it wins::

    1. the flag                 --hub, --key, --hub-key
    2. an environment variable  GSMON_HUB (the query endpoint), GSMON_KEY, GSMON_HUB_KEY
    3. the user's client file   $XDG_CONFIG_HOME/gsmon/client.toml (default ~/.config/gsmon/client.toml)
    4. the host's client file   /etc/gsmon/client.toml
    5. the default              tcp://127.0.0.1:7763, no keys

A client file holds any of three top-level keys::

    hub = "tcp://10.10.0.1:7763"      # the hub's query endpoint; a hub pair: "tcp://a:7763,tcp://b:7763"
                                      # (or an array ["tcp://a:7763", "tcp://b:7763"]; --hub A,B likewise)
    key = "keys/ops.key_secret"       # this client's secret key file
    hub_key = "keys/hub.key"          # the hub's public key file

Relative paths in a file are taken relative to the file's folder; relative
paths in variables and flags relative to the current folder. An empty
variable counts as unset. A file that exists but cannot be used (bad TOML, an
unknown key, a wrong value) is an error, never skipped: its
:class:`~gsmon.common.config.ConfigError` names the file and the key, one
that comes from a variable names the variable. ``key`` and ``hub_key`` go
together: one without the other is an error naming where each came from.

Agents (``gsmon agent``, and ``Monitor(...)`` created without ``hub=``) look
up their hub in ``GSMON_AGENT_HUB`` (the hub's *agents* endpoint, a
different port) and their keys in the same ``GSMON_KEY``/``GSMON_HUB_KEY``:
see :func:`agent_environment`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gsmon.common import endpoints
from gsmon.common.config import ConfigError, load_toml

__all__ = [
    "AGENT_HUB_VARIABLE",
    "HUB_KEY_VARIABLE",
    "HUB_VARIABLE",
    "KEY_VARIABLE",
    "AgentEnvironment",
    "ClientSettings",
    "agent_environment",
    "client_files",
    "resolve_client_settings",
]

HUB_VARIABLE: Final = "GSMON_HUB"
KEY_VARIABLE: Final = "GSMON_KEY"
HUB_KEY_VARIABLE: Final = "GSMON_HUB_KEY"
AGENT_HUB_VARIABLE: Final = "GSMON_AGENT_HUB"
SYSTEM_CLIENT_FILE: Final = Path("/etc/gsmon/client.toml")
DEFAULT_QUERY_ENDPOINT: Final = endpoints.default_endpoint(endpoints.DEFAULT_QUERY_PORT)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """The hub and keys a client uses, and where each came from (for messages).

    ``*_origin`` is the flag (``--hub``), the variable (``GSMON_HUB``), the
    file and key (``/home/ops/.config/gsmon/client.toml: hub``) or ``default``.
    """

    hub: str
    key: Path | None
    hub_key: Path | None
    hub_origin: str = "default"
    key_origin: str | None = None
    hub_key_origin: str | None = None


@dataclass(frozen=True, slots=True)
class AgentEnvironment:
    """What an agent takes from the environment when nothing else names its hub or keys."""

    hub: str | None
    key: Path | None
    hub_key: Path | None


def client_files(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The client files in the order they are consulted (the user's, then the host's)."""
    env = os.environ if environ is None else environ
    config_home = env.get("XDG_CONFIG_HOME") or ""
    # The XDG spec: a relative $XDG_CONFIG_HOME is invalid and ignored.
    base = Path(config_home) if os.path.isabs(config_home) else Path(env.get("HOME") or Path.home()) / ".config"
    return (base / "gsmon" / "client.toml", SYSTEM_CLIENT_FILE)


def _variable(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value if value else None


def _check_hub(value: str, where: str) -> str:
    problem = endpoints.hub_list_problem(value)
    if problem is not None:
        raise ConfigError(
            f"expected the hub's query endpoint (tcp://host:port, ipc://path or inproc://name; "
            f"a hub pair: two joined by a comma), got {value!r}: {problem}",
            key=where,
        )
    return ",".join(endpoints.split_hubs(value))


def _check_path(value: str, where: str) -> Path:
    if "\x00" in value:
        raise ConfigError(f"expected a file path, got {value!r}", key=where)
    return Path(value).expanduser()


def _read_file(path: Path) -> dict[str, tuple[object, str]]:
    """The settings one client file holds, as {name: (value, origin)}; {} when there is no file."""
    if not path.exists() and not path.is_symlink():
        return {}
    root = load_toml(path)
    found: dict[str, tuple[object, str]] = {}
    hub = root.hubs("hub", None)
    if hub is not None:
        found["hub"] = (hub, f"{path}: hub")
    for name in ("key", "hub_key"):
        value = root.file_path(name, None)
        if value is not None:
            found[name] = (value, f"{path}: {name}")
    root.finish()
    return found


def resolve_client_settings(
    hub: str | None = None,
    key: str | os.PathLike[str] | None = None,
    hub_key: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    files: tuple[Path, ...] | None = None,
) -> ClientSettings:
    """The client's settings: each of ``hub``, ``key``, ``hub_key`` from the flag given here, else
    its variable, else the first client file that has it, else the default.

    Raises :class:`~gsmon.common.config.ConfigError` (one line: where, what
    was expected, what was found) for a bad value or file, and when ``key``
    and ``hub_key`` do not come as a pair.
    """
    env = os.environ if environ is None else environ
    chosen: dict[str, tuple[object, str]] = {}
    if hub is not None:
        chosen["hub"] = (_check_hub(hub, "--hub"), "--hub")
    for name, flag, value in (("key", "--key", key), ("hub_key", "--hub-key", hub_key)):
        if value is not None:
            chosen[name] = (Path(value), flag)
    for name, variable in (("hub", HUB_VARIABLE), ("key", KEY_VARIABLE), ("hub_key", HUB_KEY_VARIABLE)):
        text = _variable(env, variable)
        if name not in chosen and text is not None:
            checked = _check_hub(text, variable) if name == "hub" else _check_path(text, variable)
            chosen[name] = (checked, variable)
    if len(chosen) < 3:
        for path in client_files(env) if files is None else files:
            for name, found in _read_file(path).items():
                chosen.setdefault(name, found)
    hub_value, hub_origin = chosen.get("hub", (DEFAULT_QUERY_ENDPOINT, "default"))
    key_value, key_origin = chosen.get("key", (None, None))
    hub_key_value, hub_key_origin = chosen.get("hub_key", (None, None))
    if (key_value is None) != (hub_key_value is None):
        present, missing = (key_origin, "the hub's public key") if key_value is not None else (hub_key_origin, "a key")
        raise ConfigError(
            f"{missing} is missing: --key and --hub-key go together (this client's secret key and the hub's "
            f"public key; or {KEY_VARIABLE} and {HUB_KEY_VARIABLE}, or key and hub_key in a client file)",
            key=present,
        )
    assert isinstance(hub_value, str)
    assert key_value is None or isinstance(key_value, Path)
    assert hub_key_value is None or isinstance(hub_key_value, Path)
    return ClientSettings(hub_value, key_value, hub_key_value, hub_origin, key_origin, hub_key_origin)


def agent_environment(environ: Mapping[str, str] | None = None) -> AgentEnvironment:
    """``GSMON_AGENT_HUB``, ``GSMON_KEY`` and ``GSMON_HUB_KEY``, checked (unset or empty: ``None``).

    Raises :class:`~gsmon.common.config.ConfigError` naming the variable for
    a bad endpoint, or when only one of the two key variables is set.
    """
    env = os.environ if environ is None else environ
    hub = _variable(env, AGENT_HUB_VARIABLE)
    if hub is not None:
        problem = endpoints.endpoint_problem(hub, connect=True)
        if problem is not None:
            raise ConfigError(
                f"expected the hub's agents endpoint (tcp://host:port, ipc://path or inproc://name), "
                f"got {hub!r}: {problem}",
                key=AGENT_HUB_VARIABLE,
            )
    key_text = _variable(env, KEY_VARIABLE)
    hub_key_text = _variable(env, HUB_KEY_VARIABLE)
    if (key_text is None) != (hub_key_text is None):
        present = KEY_VARIABLE if key_text is not None else HUB_KEY_VARIABLE
        missing = HUB_KEY_VARIABLE if key_text is not None else KEY_VARIABLE
        raise ConfigError(
            f"{missing} is not set: the two go together (a secret key and the hub's public key)", key=present
        )
    return AgentEnvironment(
        hub,
        None if key_text is None else _check_path(key_text, KEY_VARIABLE),
        None if hub_key_text is None else _check_path(hub_key_text, HUB_KEY_VARIABLE),
    )
