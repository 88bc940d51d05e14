"""Per-point debounce and flap guard: raw level per poll -> effective level. No I/O, no clock.

The Monitor's point table (:mod:`gsmon.agent.points`) keeps one :class:`Debouncer` per point
that has debounce or a flap guard configured, and feeds it every poll after the
alert rule has judged the value::

    verdict = debouncer.observe(raw_code, raw_str, polled_at_s)
    # store/publish verdict.effective_code / effective_str as the point's alert;
    # send the point whenever the effective level changed OR verdict.events is
    # not empty (pending/flapping changes are part of what the NODE shows);
    # journal/log every verdict.events item (kinds below);
    # the wire's optional 7th point item is verdict.wire_map(raw_code, raw_str).

Every setting is off by default and then the point behaves exactly as in the
seed: ``effective == raw`` on every poll (and the Monitor need not even keep a
Debouncer: :attr:`DebounceSettings.enabled` says whether one is needed).

Evaluation happens on poll times only (``polled_at_s``, the agent's clock):
every poll counts, including those a DELTA later collapses, and both hubs of a
pair see the same effective levels. A poll stamped earlier than the previous
one counts as taken at the previous one's time (time never runs backwards
here). STALE is never debounced: it is the hub's judgement (not refreshed in
time) and the agent never sees it. Should a raw STALE code (50) ever come in
(a user subclass with that code), it is passed through untouched and leaves
the debounce state as it was.

Pipeline (each stage passes its input through when its settings are off)::

    raw --clip--> M-of-N filter --> hold timers --> flap guard --> effective
                   (m_of_n)        (for_s,          (flap_window_s,
                                    clear_for_s)     flap_start, flap_stop)

* **Normal levels.** Every level at or below GREEN (NoAlert 0, GREEN 10, a
  user's level 5) is *normal*: the stages work on ``max(raw, GREEN)``, so a
  move between normal levels is never delayed (NoAlert -> GREEN is not a
  problem to confirm), and while a rise is held back the point shows the last
  normal level it had (NoAlert before its first normal poll: a point that
  starts RED with ``for_s`` set is NoAlert, pending RED, until RED has held).
* **M-of-N** (``m_of_n = (M, N)``): the filtered level is the highest level
  that at least M of the last N polls reach, where a poll is *bad* for level L
  when its raw level is >= L. So a level is raised by M bad polls out of the
  last N, and it is left once fewer than M of the last N polls still reach it
  (after N - M + 1 good polls): an intermittent fault stays up instead of
  flickering. M = N is "N in a row"; with fewer than M polls seen, the
  filtered level is normal.
* **Hold timers** act on the filtered level. ``for_s``: a higher level must
  have held (every poll at or above it) for ``for_s`` seconds before the level
  rises to it; the level rises to the highest level that has held that long,
  so escalating while pending needs ``for_s`` at the new level (ORANGE since
  t0, RED since t1: ORANGE at t0 + for_s, RED at t1 + for_s). ``clear_for_s``:
  a lower level must have held (every poll at or below it) for
  ``clear_for_s`` seconds before the level falls to it. 0 = off = at once.
* **How for_s and m_of_n combine**: in that order, as two stages. M-of-N
  decides which level a window of polls is at; ``for_s``/``clear_for_s``
  require that *filtered* level to hold. ``m_of_n = (3, 5), for_s = 60``
  means "RED once at least 3 of every 5 polls have been RED for a minute"; a
  lone good poll in the minute does not restart the timer.
* **Flap guard** (on when ``flap_window_s > 0``): counts the changes of the
  debounced level (the output of the stages above, before the guard) within
  the last ``flap_window_s`` seconds. Flapping starts when the count goes
  *above* ``flap_start`` and stops when it is *at or below* ``flap_stop``
  (hysteresis). While flapping, the effective level is held at the worst
  level the debounced level had within the window (counting the level in
  force when the window began), so the display does not flicker and nothing
  bad is hidden. When flapping stops, the current level is sent even if it
  equals the held one (nagioscore#91): the ``flapping_stop`` event carries it.
* **Pending** (``Verdict.pending``) is the move the debounce is holding back:
  ``(level, since)`` with ``level`` above the debounced level for a rise
  (the highest level seen in the M-of-N window, else the filtered level) and
  below it for a fall (the lowest), ``since`` the first poll from which that
  level has been pending without a break. Rises take precedence when both
  are pending. It says nothing about the flap guard (that is
  ``Verdict.flapping``).

Events (``Verdict.events``, to journal and log; ``old``/``new`` are level codes):

=================  =====================================================================
kind               when
=================  =====================================================================
``pending``        a move starts being held back, or its level changes (old: effective, new: pending level)
``discarded``      a pending level is given up before it was reached: the glitch is over (new: that level)
``flapping_start`` the change count went above ``flap_start`` (new: the held level)
``flapping_stop``  the count fell to ``flap_stop`` or below (old: held level, new: current level)
=================  =====================================================================

Every pending level ends in a raise (the debounced level reaches it) or a
``discarded`` event, or it is still pending.

Settings come from decorator keyword arguments or TOML tables
(:meth:`DebounceSettings.from_mapping`): every bad value is reported on its
own line (``for_s: expected a number of seconds >= 0, got 'fast'``), all of
them at once, in a :class:`DebounceSettingsError`.

An agent restart need not lose pending timers: :meth:`Debouncer.snapshot`
gives a JSON-able state and :meth:`Debouncer.restore` resumes from it (the
agent's outbox can keep it; a snapshot taken under other settings is
dropped, since its timers meant something else).

Hand-written, on purpose: the rules above are specific to gsmon (no library
offers M-of-N, hold timers and a flap guard over ordered alert codes), and the
state per point is a few small lists, updated in O(distinct levels) per poll.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, NamedTuple

from gsmon.common import protocol as proto
from gsmon.common.alerts import STALE_ALERTCODE, GreenAlert

__all__ = [
    "DEBOUNCE_KEYS",
    "NORMAL_CEILING",
    "DebounceEvent",
    "DebounceSettings",
    "DebounceSettingsError",
    "Debouncer",
    "Flapping",
    "Pending",
    "Verdict",
]

#: The highest *normal* level: moves at or below it are never held back.
NORMAL_CEILING: Final = GreenAlert.alertcode

_MAX_N: Final = 10_000  # an M-of-N window longer than this is a typo, and memory per point
_SNAPSHOT_VERSION: Final = 1

#: Every key :meth:`DebounceSettings.from_mapping` accepts.
DEBOUNCE_KEYS: Final = ("for_s", "clear_for_s", "m_of_n", "flap_window_s", "flap_start", "flap_stop")

_UP: Final = 1
_DOWN: Final = -1


class DebounceSettingsError(ValueError):
    """Debounce settings that cannot be used; ``problems`` holds one line per bad value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problems))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_describe(item) for item in value) + "]"
    return repr(value)


def _seconds_problem(key: str, value: object) -> str | None:
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) < 0:  # type: ignore[arg-type]
        return f"{key}: expected a number of seconds >= 0 (0 = off), got {_describe(value)}"
    return None


def _count_problem(key: str, value: object, minimum: int) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        return f"{key}: expected a whole number >= {minimum}, got {_describe(value)}"
    return None


@dataclass(frozen=True, slots=True)
class DebounceSettings:
    """Debounce and flap-guard settings of one point; all off by default (see the module docstring).

    Attributes:
        for_s: Seconds a higher level must hold before the level rises to it (0: at once).
        clear_for_s: Seconds a lower level must hold before the level falls to it (0: at once).
        m_of_n: ``(M, N)``: a level counts when at least M of the last N polls reach it (None: off).
        flap_window_s: Window of the flap guard in seconds (0: no flap guard).
        flap_start: Flapping starts when the window holds more than this many level changes.
        flap_stop: Flapping stops when it holds this many or fewer (below ``flap_start``).
    """

    for_s: float = 0.0
    clear_for_s: float = 0.0
    m_of_n: tuple[int, int] | None = None
    flap_window_s: float = 0.0
    flap_start: int = 6
    flap_stop: int = 2

    def __post_init__(self) -> None:
        problems = _problems(
            {
                "for_s": self.for_s,
                "clear_for_s": self.clear_for_s,
                "m_of_n": self.m_of_n,
                "flap_window_s": self.flap_window_s,
                "flap_start": self.flap_start,
                "flap_stop": self.flap_stop,
            }
        )
        if problems:
            raise DebounceSettingsError(problems)
        # Normalise what the checks accepted: an [M, N] list from TOML becomes a tuple.
        if self.m_of_n is not None:
            object.__setattr__(self, "m_of_n", (int(self.m_of_n[0]), int(self.m_of_n[1])))

    @property
    def enabled(self) -> bool:
        """Whether any rule is on (else the point needs no Debouncer: effective == raw)."""
        return bool(self.for_s or self.clear_for_s or self.m_of_n is not None or self.flap_window_s)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> DebounceSettings:
        """Settings from decorator keyword arguments or a TOML table.

        Raises :class:`DebounceSettingsError` listing every problem, one line
        each: unknown keys (with the known ones), bad values, and flap-guard
        counts given without ``flap_window_s``.
        """
        problems = [
            f"{key}: not a debounce setting (known: {', '.join(DEBOUNCE_KEYS)})"
            for key in values
            if key not in DEBOUNCE_KEYS
        ]
        known = {key: value for key, value in values.items() if key in DEBOUNCE_KEYS}
        problems += _problems(known)
        window = known.get("flap_window_s", 0.0)
        if _is_number(window) and not window:
            problems += [
                f"{key}: needs flap_window_s > 0 (without a window there is no flap guard)"
                for key in ("flap_start", "flap_stop")
                if key in known
            ]
        if problems:
            raise DebounceSettingsError(problems)
        m_of_n = known.get("m_of_n")
        return cls(
            for_s=float(known.get("for_s", 0.0)),  # type: ignore[arg-type]
            clear_for_s=float(known.get("clear_for_s", 0.0)),  # type: ignore[arg-type]
            m_of_n=None if m_of_n is None else (m_of_n[0], m_of_n[1]),  # type: ignore[index]
            flap_window_s=float(window),  # type: ignore[arg-type]
            flap_start=known.get("flap_start", 6),  # type: ignore[arg-type]
            flap_stop=known.get("flap_stop", 2),  # type: ignore[arg-type]
        )


def _problems(values: Mapping[str, object]) -> list[str]:
    """One line per bad value among the keys present in ``values``."""
    problems: list[str] = []
    for key in ("for_s", "clear_for_s", "flap_window_s"):
        if key in values:
            problem = _seconds_problem(key, values[key])
            if problem:
                problems.append(problem)
    if "m_of_n" in values and values["m_of_n"] is not None:
        pair = values["m_of_n"]
        valid = (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(item, int) and not isinstance(item, bool) for item in pair)
            and 1 <= pair[0] <= pair[1] <= _MAX_N
        )
        if not valid:
            problems.append(f"m_of_n: expected [M, N] with 1 <= M <= N <= {_MAX_N}, got {_describe(pair)}")
    start_problem = stop_problem = None
    if "flap_start" in values:
        start_problem = _count_problem("flap_start", values["flap_start"], 1)
        if start_problem:
            problems.append(start_problem)
    if "flap_stop" in values:
        stop_problem = _count_problem("flap_stop", values["flap_stop"], 0)
        if stop_problem:
            problems.append(stop_problem)
    if not start_problem and not stop_problem:
        start = values.get("flap_start", 6)
        stop = values.get("flap_stop", 2)
        assert isinstance(start, int)
        assert isinstance(stop, int)
        if stop >= start:
            problems.append(
                f"flap_stop: must be below flap_start ({start}) so that flapping has hysteresis, got {stop}"
            )
    return problems


class Pending(NamedTuple):
    """A level move held back: to ``level``, pending since ``since_s`` (poll time)."""

    level: int
    since_s: float


class Flapping(NamedTuple):
    """The flap guard holds the level: flapping since ``since_s``, ``changes`` in the window now."""

    since_s: float
    changes: int


@dataclass(frozen=True, slots=True)
class DebounceEvent:
    """Something to journal and log (see the module docstring for the kinds)."""

    kind: str
    polled_at_s: float
    old: int
    new: int
    since_s: float | None = None
    changes: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one poll comes to: the effective level and why it may differ from the raw one."""

    effective_code: int
    effective_str: str
    pending: Pending | None
    flapping: Flapping | None
    events: tuple[DebounceEvent, ...]

    def wire_map(self, raw_code: int, raw_str: str) -> dict[str, Any]:
        """The optional 7th item of a point entry (:func:`gsmon.common.protocol.point_debounce_map`)."""
        return proto.point_debounce_map(
            raw_code,
            raw_str,
            None if self.pending is None else (self.pending.level, self.pending.since_s),
            None if self.flapping is None else (self.flapping.since_s, self.flapping.changes),
        )


class _Runs:
    """For a series of levels: since when it has stayed on one side of each level.

    Rising: ``since(L)`` is the first sample from which every sample was >= L
    (None when the latest sample is below L). Falling is the mirror (<= L).
    A stack of ``[level, since]`` entries, one per distinct "record" level of
    the current run: levels increase (rising) or decrease (falling) towards
    the top, and so do their since times. An update costs O(distinct levels).
    """

    __slots__ = ("entries", "rising")

    def __init__(self, rising: bool, entries: list[list[float]] | None = None) -> None:
        self.rising = rising
        self.entries: list[list[float]] = entries if entries is not None else []

    def update(self, level: int, at_s: float) -> None:
        entries = self.entries
        broken_since = None
        if self.rising:
            while entries and entries[-1][0] > level:
                broken_since = entries.pop()[1]
            if not entries or entries[-1][0] < level:
                # The popped runs were above `level`, so the series has been >= level since the lowest of them began.
                entries.append([level, at_s if broken_since is None else broken_since])
        else:
            while entries and entries[-1][0] < level:
                broken_since = entries.pop()[1]
            if not entries or entries[-1][0] > level:
                entries.append([level, at_s if broken_since is None else broken_since])

    def since(self, level: int) -> float | None:
        if self.rising:
            for entry_level, since in self.entries:
                if entry_level >= level:
                    return since
        else:
            for entry_level, since in self.entries:
                if entry_level <= level:
                    return since
        return None

    def clear(self) -> None:
        self.entries.clear()


class Debouncer:
    """The debounce state of one point (see the module docstring for every rule)."""

    __slots__ = (
        "_changes",
        "_d",
        "_down",
        "_e",
        "_flapping_since",
        "_labels",
        "_last_s",
        "_normal_code",
        "_normal_str",
        "_pend_runs",
        "_pending",
        "_pending_code",
        "_up",
        "_window",
        "_window_counts",
        "settings",
    )

    def __init__(self, settings: DebounceSettings | None = None) -> None:
        self.settings = settings if settings is not None else DebounceSettings()
        self._last_s = -math.inf
        self._labels: dict[int, str] = {}  # label of each level above normal, as last reported
        self._normal_code = 0  # the last normal raw level (what a held-back point shows)
        self._normal_str = ""
        m_of_n = self.settings.m_of_n
        self._window: deque[int] = deque(maxlen=m_of_n[1] if m_of_n else 1)
        self._window_counts: dict[int, int] = {}  # how many polls of the window are at each level
        self._up = _Runs(rising=True)
        self._down = _Runs(rising=False)
        self._d = NORMAL_CEILING  # the debounced level (clipped), before the flap guard
        self._e = NORMAL_CEILING  # the effective level (clipped)
        self._pending: tuple[int, int, float] | None = None  # (direction, clipped level, since)
        self._pending_code: int | None = None  # the pending level as last reported
        self._pend_runs = _Runs(rising=True)
        self._changes: deque[tuple[float, int, int]] = deque()  # (poll time, old, new) of debounced changes
        self._flapping_since: float | None = None

    @property
    def effective(self) -> tuple[int, str]:
        """The effective ``(code, label)`` after the last poll."""
        return self._code_str(self._e)

    @property
    def debounced(self) -> tuple[int, str]:
        """The level before the flap guard (what the point would show without it)."""
        return self._code_str(self._d)

    def _code_str(self, clipped: int) -> tuple[int, str]:
        if clipped > NORMAL_CEILING:
            return clipped, self._labels.get(clipped, "")
        return self._normal_code, self._normal_str

    def observe(self, raw_code: int, raw_str: str, polled_at_s: float) -> Verdict:
        """Take one poll's raw level and return its verdict."""
        settings = self.settings
        if raw_code == STALE_ALERTCODE:
            return Verdict(raw_code, raw_str, None, None, ())  # never debounced, state untouched
        if not settings.enabled:
            return Verdict(raw_code, raw_str, None, None, ())
        at_s = polled_at_s if polled_at_s > self._last_s else self._last_s
        self._last_s = at_s
        if raw_code > NORMAL_CEILING:
            self._labels[raw_code] = raw_str
            clipped = raw_code
        else:
            self._normal_code, self._normal_str = raw_code, raw_str
            clipped = NORMAL_CEILING

        # 1. M-of-N: the highest level at least M of the last N polls reach (the M-th highest).
        m_of_n = settings.m_of_n
        if m_of_n is None:
            filtered = window_max = window_min = clipped
        else:
            filtered, window_max, window_min = self._filter(clipped, m_of_n[0])

        # 2. Hold timers on the filtered level.
        previous_d = debounced = self._d
        up, down = self._up, self._down
        up.update(filtered, at_s)
        down.update(filtered, at_s)
        if filtered > debounced:
            for level, since in reversed(up.entries):  # highest first: rise to the highest level held long enough
                if level <= debounced:
                    break
                if at_s - since >= settings.for_s:
                    debounced = int(level)
                    break
        elif filtered < debounced:
            for level, since in reversed(down.entries):  # lowest first
                if level >= debounced:
                    break
                if at_s - since >= settings.clear_for_s:
                    debounced = int(level)
                    break
        self._d = debounced

        # 3. Flap guard on the debounced level's changes.
        events: list[DebounceEvent] = []
        flapping: Flapping | None = None
        effective = debounced
        if settings.flap_window_s:
            changes = self._changes
            if debounced != previous_d:
                changes.append((at_s, previous_d, debounced))
            cutoff = at_s - settings.flap_window_s
            while changes and changes[0][0] <= cutoff:
                changes.popleft()
            count = len(changes)
            # The worst level within the window: the one in force when it began, and every one since.
            worst = max(changes[0][1], *(new for _, _, new in changes)) if changes else debounced
            previous_e = self._e
            if self._flapping_since is None:
                if count > settings.flap_start:
                    self._flapping_since = at_s
                    effective = worst
                    events.append(
                        DebounceEvent(
                            "flapping_start",
                            at_s,
                            self._code_str(previous_e)[0],
                            self._code_str(effective)[0],
                            since_s=at_s,
                            changes=count,
                        )
                    )
            elif count <= settings.flap_stop:
                since = self._flapping_since
                self._flapping_since = None
                events.append(
                    DebounceEvent(
                        "flapping_stop",
                        at_s,
                        self._code_str(previous_e)[0],
                        self._code_str(debounced)[0],
                        since_s=since,
                        changes=count,
                    )
                )
            else:
                effective = worst
            if self._flapping_since is not None:
                flapping = Flapping(self._flapping_since, count)
        self._e = effective
        effective_code, effective_str = self._code_str(effective)

        # 4. Pending: the move the debounce holds back, and how the previous one ended.
        new_pending: tuple[int, int] | None = None
        rising_evidence = window_max  # the filtered level itself without M-of-N
        falling_evidence = min(filtered, window_min)
        if rising_evidence > debounced:
            new_pending = (_UP, rising_evidence)
        elif falling_evidence < debounced:
            new_pending = (_DOWN, falling_evidence)
        previous = self._pending
        previous_code = self._pending_code
        if previous is not None:
            direction, level, _ = previous
            over = (
                new_pending is None
                or new_pending[0] != direction
                or (direction == _UP and new_pending[1] < level)
                or (direction == _DOWN and new_pending[1] > level)
            )
            if over:
                reached = debounced >= level if direction == _UP else debounced <= level
                if not reached:
                    assert previous_code is not None
                    events.append(DebounceEvent("discarded", at_s, effective_code, previous_code))  # as announced
        pending: Pending | None = None
        if new_pending is None:
            self._pending = None
            self._pend_runs.clear()
        else:
            direction, level = new_pending
            runs = self._pend_runs
            if previous is None or previous[0] != direction:
                runs.rising = direction == _UP
                runs.clear()
            runs.update(level, at_s)
            pending_since = runs.since(level)
            assert pending_since is not None
            self._pending = (direction, level, pending_since)
            pending = Pending(self._code_str(level)[0], pending_since)
            # Announced when new, and when its level changes: escalated, lowered, or (a fall to normal)
            # the normal level it falls to changed (NoAlert -> GREEN).
            if previous is None or (previous[0], previous[1]) != new_pending or previous_code != pending.level:
                events.append(DebounceEvent("pending", at_s, effective_code, pending.level, since_s=pending_since))
        self._pending_code = None if pending is None else pending.level
        return Verdict(effective_code, effective_str, pending, flapping, tuple(events))

    def _filter(self, clipped: int, needed: int) -> tuple[int, int, int]:
        """Add a poll to the M-of-N window; return (the M-th highest level, the highest, the lowest)."""
        window, counts = self._window, self._window_counts
        if len(window) == window.maxlen:
            gone = window[0]
            left = counts[gone] - 1
            if left:
                counts[gone] = left
            else:
                del counts[gone]
        window.append(clipped)
        counts[clipped] = counts.get(clipped, 0) + 1
        levels = sorted(counts, reverse=True)  # a handful of distinct levels, however long the window
        filtered = NORMAL_CEILING
        reached = 0
        for level in levels:
            reached += counts[level]
            if reached >= needed:
                filtered = level
                break
        return filtered, levels[0], levels[-1]

    # -- restart ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (for the agent's outbox: pending timers survive a restart)."""
        return {
            "version": _SNAPSHOT_VERSION,
            "settings": _settings_json(self.settings),
            "last_s": None if self._last_s == -math.inf else self._last_s,
            "labels": [[code, label] for code, label in self._labels.items()],
            "normal": [self._normal_code, self._normal_str],
            "window": list(self._window),
            "up": [list(entry) for entry in self._up.entries],
            "down": [list(entry) for entry in self._down.entries],
            "d": self._d,
            "e": self._e,
            "pending": None if self._pending is None else list(self._pending),
            "pending_code": self._pending_code,
            "pend_runs": [self._pend_runs.rising, [list(entry) for entry in self._pend_runs.entries]],
            "changes": [list(change) for change in self._changes],
            "flapping_since": self._flapping_since,
        }

    @classmethod
    def restore(cls, settings: DebounceSettings, snapshot: Mapping[str, Any] | None) -> Debouncer:
        """A Debouncer that continues from ``snapshot``; a fresh one when there
        is none, or it was taken under other settings or another format."""
        debouncer = cls(settings)
        if (
            not snapshot
            or snapshot.get("version") != _SNAPSHOT_VERSION
            or snapshot.get("settings") != _settings_json(settings)
        ):
            return debouncer
        last_s = snapshot["last_s"]
        debouncer._last_s = -math.inf if last_s is None else float(last_s)
        debouncer._labels = {int(code): str(label) for code, label in snapshot["labels"]}
        debouncer._normal_code, debouncer._normal_str = int(snapshot["normal"][0]), str(snapshot["normal"][1])
        for level in snapshot["window"]:
            debouncer._window.append(int(level))
            debouncer._window_counts[int(level)] = debouncer._window_counts.get(int(level), 0) + 1
        debouncer._up = _Runs(True, [[int(level), float(since)] for level, since in snapshot["up"]])
        debouncer._down = _Runs(False, [[int(level), float(since)] for level, since in snapshot["down"]])
        debouncer._d = int(snapshot["d"])
        debouncer._e = int(snapshot["e"])
        pending = snapshot["pending"]
        debouncer._pending = None if pending is None else (int(pending[0]), int(pending[1]), float(pending[2]))
        code = snapshot["pending_code"]
        debouncer._pending_code = None if code is None else int(code)
        rising, entries = snapshot["pend_runs"]
        debouncer._pend_runs = _Runs(bool(rising), [[int(level), float(since)] for level, since in entries])
        debouncer._changes = deque((float(at), int(old), int(new)) for at, old, new in snapshot["changes"])
        since = snapshot["flapping_since"]
        debouncer._flapping_since = None if since is None else float(since)
        return debouncer


def _settings_json(settings: DebounceSettings) -> dict[str, Any]:
    data = asdict(settings)
    data["m_of_n"] = None if settings.m_of_n is None else list(settings.m_of_n)
    return data
