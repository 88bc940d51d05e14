"""When a point is saved: save policies per path pattern, retention per prefix, and the recorder's TOML file.

A *save policy* decides which of a point's updates become rows (the rules
themselves are applied by :class:`~gsmon.common.recorder.core.RecorderCore`)::

    [[policy]]
    path = "GS1/**"            # a path pattern (below); the first [[policy]] that matches wins
    deadband_abs = 0.5         # a value change is saved when it moves more than this from the saved value...
    deadband_rel = 0.01        # ...or more than this fraction of it (either one is enough; default: any change)
    min_interval_s = 1         # at most one value-change row per this many seconds (the latest value is kept)
    save_dt_s = 900            # a heartbeat row at least this often, changed or not
    context_save_dt_s = 5      # while a context (a pass) is active for the point: heartbeat this often...
    context_min_interval_s = 5 # ...and throttle to this (default: the smaller of min_interval_s, context_save_dt_s)
    context_deadband_abs = 0.1 # ...and these deadbands (default: the ones above)
    context_deadband_rel = 0.0

Level and staleness changes are always saved at once, whatever the deadband
or throttle: they are what an operator looks for afterwards. Without any
matching ``[[policy]]`` a point gets :data:`DEFAULT_POLICY`: every value
change, every level change, a heartbeat every 900 s, every 5 s in a context.

The seed's own policy (libgs ``MonitorDb``: each point saved at most every
5 s during a pass and every 900 s otherwise), as a configuration; level and
staleness changes are still saved at once, which the seed did not do::

    [[policy]]
    path = "**"
    min_interval_s = 900
    save_dt_s = 900
    context_min_interval_s = 5
    context_save_dt_s = 5

Path patterns match segment by segment: ``**`` any number of segments (none
included), ``*`` any run of characters inside one segment, ``?`` one
character (``GS1/*/Power/**`` matches ``GS1/Ant1/Power/Volts``, not
``GS1/Ant1/Drive/Power``). They are the hub's ``[[alarms]]`` patterns
(one class for both: :class:`gsmon.common.names.PathPattern`).

*Retention* (``[retention]``): raw rows are kept ``raw_days`` (30), one-minute
roll-ups (``rollup_s``, min/max/avg/count/first/last) ``rollup_days`` (400);
``[[retention.override]] prefix = "GS1/Rack1/" raw_days = 7`` overrides both
for a subtree (the longest matching prefix wins; prefixes are segment-aware,
:func:`gsmon.common.names.path_in_prefix`).

``[process] gc_tuning = false`` leaves Python's garbage collector at CPython's defaults (by default the
recorder freezes what its first snapshots built and raises the thresholds: :mod:`gsmon.common.gc_tuning`).

The whole file is read by :func:`read_recorder_config` through
:class:`gsmon.common.config.Section`, so every error names the file, the key
and what was expected; command-line flags are laid over it first
(:func:`gsmon.common.config.with_overrides`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from gsmon.common import names as naming
from gsmon.common.config import REQUIRED, Section, parse_toml, with_overrides
from gsmon.common.names import PathPattern

__all__ = [
    "DEFAULT_CONTEXTS_FROM",
    "DEFAULT_POLICY",
    "PathPattern",
    "Policy",
    "PolicyTable",
    "RecorderConfig",
    "Retention",
    "RetentionRule",
    "default_host_name",
    "read_recorder_config",
]

DEFAULT_CONTEXTS_FROM: Final = "_hub/contexts/"
_SEP: Final = "/"


@dataclass(frozen=True, slots=True)
class Policy:
    """One save policy (see the module docstring); ``None`` deadbands: any change counts."""

    deadband_abs: float | None = None
    deadband_rel: float | None = None
    min_interval_s: float = 0.0
    save_dt_s: float = 900.0
    context_save_dt_s: float = 5.0
    context_min_interval_s: float | None = None  # None: min(min_interval_s, context_save_dt_s)
    context_deadband_abs: float | None = None  # None: deadband_abs
    context_deadband_rel: float | None = None  # None: deadband_rel
    # Whether the context deadbands were given (so that 0 can switch a deadband off in a context).
    context_deadbands_set: tuple[bool, bool] = (False, False)

    def rules(self, in_context: bool) -> tuple[float | None, float | None, float, float]:
        """``(deadband_abs, deadband_rel, min_interval_s, save_dt_s)`` outside or inside a context."""
        if not in_context:
            return self.deadband_abs, self.deadband_rel, self.min_interval_s, self.save_dt_s
        abs_set, rel_set = self.context_deadbands_set
        deadband_abs = self.context_deadband_abs if abs_set else self.deadband_abs
        deadband_rel = self.context_deadband_rel if rel_set else self.deadband_rel
        throttle = self.context_min_interval_s
        if throttle is None:
            throttle = min(self.min_interval_s, self.context_save_dt_s)
        return deadband_abs, deadband_rel, throttle, self.context_save_dt_s


DEFAULT_POLICY: Final = Policy()


class PolicyTable:
    """``[[policy]]`` rules in file order: the first whose pattern matches a path gives its policy."""

    __slots__ = ("_cache", "default", "rules")

    def __init__(self, rules: Sequence[tuple[PathPattern, Policy]] = (), default: Policy = DEFAULT_POLICY) -> None:
        self.rules = tuple(rules)
        self.default = default
        self._cache: dict[str, Policy] = {}

    def policy_for(self, path: str) -> Policy:
        found = self._cache.get(path)
        if found is None:
            found = next((policy for pattern, policy in self.rules if pattern.matches(path)), self.default)
            if len(self._cache) < 1_000_000:
                self._cache[path] = found
        return found


@dataclass(frozen=True, slots=True)
class RetentionRule:
    prefix: str
    raw_days: float
    rollup_days: float


@dataclass(frozen=True, slots=True)
class Retention:
    """How long rows are kept: raw rows ``raw_days``, roll-ups of ``rollup_s`` ``rollup_days``; overrides by prefix."""

    raw_days: float = 30.0
    rollup_days: float = 400.0
    rollup_s: int = 60
    overrides: tuple[RetentionRule, ...] = ()

    def rule_for(self, path: str) -> RetentionRule:
        """The retention of ``path``: the longest override prefix that selects it, else the defaults."""
        best: RetentionRule | None = None
        for rule in self.overrides:
            if naming.path_in_prefix(path, rule.prefix) and (best is None or len(rule.prefix) > len(best.prefix)):
                best = rule
        return best if best is not None else RetentionRule("", self.raw_days, self.rollup_days)

    @property
    def longest_raw_days(self) -> float:
        return max([self.raw_days, *(rule.raw_days for rule in self.overrides)])

    @property
    def longest_rollup_days(self) -> float:
        return max([self.rollup_days, *(rule.rollup_days for rule in self.overrides)])


def default_host_name() -> str:
    """This host's short name as a valid tree name (for the health mount ``Recorder/<host>``)."""
    return naming.host_name_as_name(short=True, fallback="recorder")


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    """Everything ``gsmon recorder`` reads from its file and flags."""

    source: str
    hub: str | None = None
    prefixes: tuple[str, ...] = ("",)
    db: str | None = None
    state_dir: Path | None = None
    contexts_from: str = DEFAULT_CONTEXTS_FROM
    commit_interval_s: float = 0.5
    tick_s: float = 0.25
    max_queue_rows: int = 500_000
    resync_gap_margin_s: float = 3.0
    serve_history: bool = False
    policies: PolicyTable = field(default_factory=PolicyTable)
    retention: Retention = field(default_factory=Retention)
    maintenance_interval_s: float = 10.0
    health: bool = True
    health_mount: str = ""
    health_agent: str = ""
    health_key: Path | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    gc_tuning: bool = True  # [process] gc_tuning: see gsmon.common.gc_tuning
    overrides: Mapping[str, str] = field(default_factory=dict)

    def where(self, key: str) -> str:
        """How messages name a setting: its flag, or ``<file>: <key>``."""
        return self.overrides.get(key, f"{self.source}: {key}")


def _prefix(section: Section, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise section.expected(key, "a path prefix (text such as 'GS1/')", value)
    if value == "":
        return value
    body = value[:-1] if value.endswith(_SEP) else value
    try:
        naming.check_path(body, "prefix")
    except naming.InvalidNameError as error:
        raise section.expected(key, "a path prefix such as 'GS1/' or 'GS1/Antenna1'", value, str(error)) from error
    return value


def _policy(section: Section) -> tuple[PathPattern, Policy]:
    pattern_text = section.string("path")
    try:
        pattern = PathPattern(pattern_text)
    except ValueError as error:
        raise section.expected("path", "a path pattern such as 'GS1/**'", pattern_text, str(error)) from error

    def deadband(key: str) -> float | None:
        value = section.number(key, None, minimum=0.0)
        return None if value is None or value == 0 else value

    context_abs_set, context_rel_set = "context_deadband_abs" in section, "context_deadband_rel" in section
    min_interval = section.number("min_interval_s", 0.0, minimum=0.0)
    context_min = section.number("context_min_interval_s", None, minimum=0.0)
    policy = Policy(
        deadband_abs=deadband("deadband_abs"),
        deadband_rel=deadband("deadband_rel"),
        min_interval_s=min_interval,
        save_dt_s=section.seconds("save_dt_s", DEFAULT_POLICY.save_dt_s),
        context_save_dt_s=section.seconds("context_save_dt_s", DEFAULT_POLICY.context_save_dt_s),
        context_min_interval_s=context_min,
        context_deadband_abs=deadband("context_deadband_abs"),
        context_deadband_rel=deadband("context_deadband_rel"),
        context_deadbands_set=(context_abs_set, context_rel_set),
    )
    return pattern, policy


def _retention(section: Section) -> Retention:
    raw_days = section.number("raw_days", 30.0, positive=True, what="a positive number of days")
    rollup_days = section.number("rollup_days", 400.0, positive=True, what="a positive number of days")
    rollup_s = section.integer("rollup_s", 60, minimum=1, maximum=86_400)
    if 86_400 % rollup_s:
        raise section.expected("rollup_s", "a number of seconds that divides a day (60, 300, 3600...)", rollup_s)
    overrides = []
    for rule in section.sections("override"):
        prefix = _prefix(rule, "prefix", rule.string("prefix", REQUIRED, allow_empty=True))
        overrides.append(
            RetentionRule(
                prefix,
                rule.number("raw_days", raw_days, positive=True, what="a positive number of days"),
                rule.number("rollup_days", rollup_days, positive=True, what="a positive number of days"),
            )
        )
    return Retention(raw_days, rollup_days, rollup_s, tuple(overrides))


def read_recorder_config(
    path: str | Path | None, overrides: Mapping[str, tuple[object, str]] | None = None
) -> RecorderConfig:
    """The recorder's settings from ``path`` (None: defaults only) with flag ``overrides`` laid over it.

    Raises :class:`~gsmon.common.config.ConfigError` (one line: where, what, found).
    """
    from gsmon.common.config import load_toml

    root = load_toml(path) if path is not None else parse_toml("", "(defaults)", Path.cwd())
    flags = dict(overrides or {})
    root = with_overrides(root, flags)
    recorder = root.section("recorder")
    hub = recorder.hubs("hub", None)
    prefix_values = recorder.strings("prefixes", [""], unique=True) if "prefixes" in recorder else [""]
    prefixes = tuple(_prefix(recorder, f"prefixes[{index}]", value) for index, value in enumerate(prefix_values))
    db = recorder.string("db", None)
    state_dir = recorder.file_path("state_dir", None)
    contexts_from = _prefix(recorder, "contexts_from", recorder.string("contexts_from", DEFAULT_CONTEXTS_FROM))
    if contexts_from and not contexts_from.endswith(_SEP):
        contexts_from += _SEP
    settings = RecorderConfig(
        source=root.file,
        hub=hub,
        prefixes=_minimal_prefixes(prefixes),
        db=db,
        state_dir=state_dir,
        contexts_from=contexts_from,
        commit_interval_s=recorder.seconds("commit_interval_s", 0.5),
        tick_s=recorder.seconds("tick_s", 0.25),
        max_queue_rows=recorder.integer("max_queue_rows", 500_000, minimum=1000),
        resync_gap_margin_s=recorder.number("resync_gap_margin_s", 3.0, minimum=0.0),
        serve_history=recorder.boolean("serve_history", False),
        maintenance_interval_s=recorder.seconds("maintenance_interval_s", 10.0),
        policies=PolicyTable([_policy(section) for section in root.sections("policy")]),
        retention=_retention(root.section("retention")),
        health=(health := root.section("health")).boolean("enabled", True),
        health_mount=health.mount("mount", f"Recorder/{default_host_name()}"),
        health_agent=health.agent_name("agent", f"recorder-{default_host_name()}"),
        health_key=health.file_path("key", None),
        log_level=(logging := root.section("logging")).choice(
            "level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True
        ),
        log_format=logging.choice("format", ("text", "json"), "text"),
        gc_tuning=root.section("process").boolean("gc_tuning", True),
        overrides={key: origin for key, (value, origin) in flags.items() if value is not None},
    )
    root.finish()
    return settings


def _minimal_prefixes(prefixes: Sequence[str]) -> tuple[str, ...]:
    """The prefixes without those another one already covers (each path is recorded once)."""
    kept: list[str] = []
    for prefix in sorted(set(prefixes), key=len):
        if not any(_covers(other, prefix) for other in kept):
            kept.append(prefix)
    return tuple(kept)


def _covers(outer: str, inner: str) -> bool:
    """Whether every path ``inner`` selects is also selected by ``outer``."""
    if not outer:
        return True
    if outer.endswith(_SEP):
        return inner.startswith(outer) and len(inner) > len(outer)
    return naming.path_in_prefix(inner.rstrip(_SEP), outer)
