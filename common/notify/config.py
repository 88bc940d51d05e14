"""``gsmon notify`` configuration: TOML (``notify.toml``) and flags, read through :class:`gsmon.common.config.Section`.

::

    [notify]
    hub = "tcp://gs1-hub:7763"          # the hub's query endpoint (--hub)
    prefix = ""                          # follow only this subtree of the journal
    state_dir = "/var/lib/gsmon"         # notify.db lives here (--state-dir)
    group_wait_s = 5                     # --group-wait-s
    group_interval_s = 10                # --group-interval-s
    group_by_depth = 2
    repeat_s = 14400                     # --repeat-s
    startup_grace_s = 30                 # --startup-grace-s
    max_per_minute = 20                  # per receiver; the rest becomes one summary
    retry_initial_s = 10
    retry_max_s = 600
    retry_give_up_s = 3600
    poll_s = 1.0                         # journal poll when no NODE woke us

    [[receiver]]
    name = "ops"
    urls = ["mailtos://user:pass@mail.example.org?to=ops@example.org", "json://hooks.example.org/gsmon"]
    command = ["/usr/local/bin/page", "{title}"]   # optional; the body on stdin

    [[route]]                            # first match wins, unless continue = true
    prefix = "GS1/"
    min_level = "RED"                    # a label (GREEN, ORANGE, RED, STALE, CRITICAL) or a code
    receivers = ["ops"]
    continue = false
    notify_ack = false
    send_resolved = true

    [[guidance]]                         # the deepest matching prefix wins
    prefix = "GS1/ups"
    text = "Check the UPS input breaker first."
    runbook_url = "https://wiki.example.org/ups"

For a quick start, ``--route PREFIX:LEVEL:URL`` (repeatable) adds a receiver
with that one apprise URL and a route to it, after the file's routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gsmon.common.alerts import STALE_ALERTCODE, alertstr_for
from gsmon.common.config import ConfigError, Section, default_state_dir, load_toml, with_overrides
from gsmon.common.notify.core import Guidance, Receiver, Route, Settings

__all__ = ["NotifyConfig", "parse_level", "parse_route_flag", "read_notify_config"]

DEFAULT_HUB: Final = "tcp://127.0.0.1:7763"
_LEVELS: Final = {label: code for code in (10, 20, 30, 100, STALE_ALERTCODE) if (label := alertstr_for(code))}


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    settings: Settings
    hub: str
    prefix: str
    state_dir: Path
    poll_s: float


def parse_level(value: object) -> int:
    """A level label (case-insensitive) or code; ValueError says which are known."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.upper() in _LEVELS:
        return _LEVELS[value.upper()]
    known = ", ".join(_LEVELS)
    raise ValueError(f"expected a level ({known}) or a level code, got {value!r}")


def parse_route_flag(text: str) -> tuple[str, int, str]:
    """``PREFIX:LEVEL:URL`` (the URL may hold colons) -> (prefix, level, url)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[2]:
        raise ValueError(f"--route: expected PREFIX:LEVEL:URL (e.g. GS1/:RED:json://host/hook), got {text!r}")
    try:
        level = parse_level(parts[1])
    except ValueError as error:
        raise ValueError(f"--route {text!r}: {error}") from None
    return parts[0], level, parts[2]


def read_notify_config(
    path: str | None,
    overrides: dict[str, tuple[object, str]] | None = None,
    route_flags: list[str] | None = None,
    check_url: Any = None,
) -> NotifyConfig:
    """Read the file (if any) with the flags laid over it; :class:`ConfigError` is one line to show."""
    root = load_toml(path) if path is not None else Section({}, "<defaults>", base_dir=Path())
    root = with_overrides(root, overrides or {})
    notify = root.section("notify")
    hub = notify.hubs("hub", DEFAULT_HUB)
    prefix = notify.string("prefix", "", allow_empty=True)
    state_dir = notify.file_path("state_dir", None)
    timing: dict[str, Any] = {
        "group_wait_s": notify.number("group_wait_s", 5.0, minimum=0.0),
        "group_interval_s": notify.number("group_interval_s", 10.0, minimum=0.0),
        "group_by_depth": notify.integer("group_by_depth", 2, minimum=1, maximum=16),
        "repeat_s": notify.seconds("repeat_s", 4 * 3600.0),
        "startup_grace_s": notify.number("startup_grace_s", 30.0, minimum=0.0),
        "max_per_minute": notify.integer("max_per_minute", 20, minimum=1),
        "retry_initial_s": notify.seconds("retry_initial_s", 10.0),
        "retry_max_s": notify.seconds("retry_max_s", 600.0),
        "retry_give_up_s": notify.seconds("retry_give_up_s", 3600.0),
    }
    poll_s = notify.seconds("poll_s", 1.0)
    receivers: dict[str, Receiver] = {}
    for table in root.sections("receiver"):
        name = table.name("name", what="receiver name")
        if name in receivers:
            raise table.expected("name", "a receiver name used once", name, "another [[receiver]] has it")
        urls = table.strings("urls", [])
        for index, url in enumerate(urls):
            problem = check_url(url) if check_url is not None else None
            if problem is not None:
                raise table.error(f"urls[{index}]", problem)
        command = table.strings("command", [], unique=False)
        if not urls and not command:
            raise table.error(None, f"receiver {name!r} needs urls = [...] or command = [...]")
        receivers[name] = Receiver(name, tuple(urls), tuple(command))
    routes: list[Route] = []
    for table in root.sections("route"):
        level_value = table._data.get("min_level", "ORANGE")
        try:
            level = parse_level(level_value)
        except ValueError as error:
            raise table.error("min_level", str(error)) from None
        table.string("min_level", "ORANGE") if isinstance(level_value, str) else table.integer("min_level", 0)
        names = table.strings("receivers", non_empty=True)
        for index, name in enumerate(names):
            if name not in receivers:
                known = ", ".join(receivers) or "none"
                raise table.expected(f"receivers[{index}]", f"a [[receiver]] name (known: {known})", name)
        routes.append(
            Route(
                prefix=table.string("prefix", "", allow_empty=True),
                min_level=level,
                receivers=tuple(names),
                continue_=table.boolean("continue", False),
                notify_ack=table.boolean("notify_ack", False),
                send_resolved=table.boolean("send_resolved", True),
            )
        )
    for index, flag in enumerate(route_flags or [], start=1):
        try:
            route_prefix, level, url = parse_route_flag(flag)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        problem = check_url(url) if check_url is not None else None
        if problem is not None:
            raise ConfigError(f"--route {flag!r}: {problem}")
        name = f"route{index}"
        receivers[name] = Receiver(name, (url,))
        routes.append(Route(route_prefix, level, (name,)))
    guidance = [
        Guidance(
            table.string("prefix", "", allow_empty=True),
            table.string("text", "", allow_empty=True),
            table.string("runbook_url", "", allow_empty=True),
        )
        for table in root.sections("guidance")
    ]
    root.finish()
    settings = Settings(receivers=receivers, routes=routes, guidance=guidance, hub=hub, **timing)
    return NotifyConfig(settings, hub, prefix, state_dir or default_state_dir(), poll_s)
