"""The libgs-compatible Monitor: the seed's examples and one regression test per defect of the original.

Threaded tests never sleep-and-hope: they wait for a condition with a deadline
(``wait_until``) and make functions hang with ``threading.Event``.
"""

from __future__ import annotations

import logging
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psutil
import pytest

from gsmon.agent import Alert, CriticalAlert, GreenAlert, Monitor, MonitorItem, NoAlert, OrangeAlert, RedAlert
from gsmon.agent.debounce import DebounceSettings, DebounceSettingsError
from gsmon.common.names import MAX_DEPTH, MAX_NAME_CHARS, InvalidNameError

MakeMonitor = Callable[..., Monitor]
WaitUntil = Callable[..., None]


class MaintenanceAlert(Alert):
    """A user-defined level between Green and Orange."""

    alertstr = "MAINT"
    alertcode = 15


class Calls:
    """Thread-safe record of the times a monitor function was entered."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self._lock = threading.Lock()

    def hit(self) -> int:
        with self._lock:
            self.starts.append(time.monotonic())
            return len(self.starts)

    @property
    def count(self) -> int:
        return len(self.starts)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An Event that hanging monitor functions wait on; always set at teardown so no thread lingers."""
    event = threading.Event()
    yield event
    event.set()


def steady(value: Any) -> Callable[[], Any]:
    def fn() -> Any:
        return value

    return fn


# ----------------------------------------------------------------------
# The seed's own docstring examples
# ----------------------------------------------------------------------


def test_seed_example_current_time(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """The seed's first example: a decorated current_time point is polled and printed."""
    mon = make_monitor()

    @mon.monitor()
    def current_time() -> datetime:
        return datetime.now(tz=UTC)

    mon.start()
    wait_until(lambda: mon["current_time"].value is not None)
    item = mon["current_time"]
    assert isinstance(item.value, datetime)
    assert item.alert == NoAlert.alertcode
    assert item.parent is None
    lines = str(mon).splitlines()
    assert lines[0] == " Monitor --- running"
    row = next(line for line in lines if line.startswith(" .current_time"))
    assert row[31:70].strip() == str(item.value)[:39]


def cpu_usage() -> Alert:
    """The seed's cpu_usage example, registered by both tests below (the point is named after it)."""
    value = psutil.cpu_percent()
    return RedAlert(value) if value > 50 else GreenAlert(value)


@pytest.mark.parametrize(("usage", "expected"), [(75.0, RedAlert), (12.5, GreenAlert)])
def test_seed_example_cpu_usage_both_branches(
    make_monitor: MakeMonitor, wait_until: WaitUntil, monkeypatch: pytest.MonkeyPatch, usage: float, expected: type
) -> None:
    """The seed's cpu_usage example returns Red above 50 % and Green otherwise."""
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: usage)
    mon = make_monitor()

    mon.monitor(dt=2)(cpu_usage)
    mon.start()
    wait_until(lambda: mon["cpu_usage"].value is not None)
    assert mon["cpu_usage"].value == usage
    assert mon["cpu_usage"].alert == expected.alertcode
    assert mon.alertcode == expected.alertcode
    assert f" Monitor ({expected.alertstr}) --- running" == str(mon).splitlines()[0]


def test_seed_example_cpu_usage_real_psutil(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """With the real (non-blocking) psutil.cpu_percent the point holds a percentage, Green or Red."""
    psutil.cpu_percent()  # prime the counter
    mon = make_monitor()

    mon.monitor(dt=2)(cpu_usage)
    mon.start()
    wait_until(lambda: mon["cpu_usage"].value is not None)
    item = mon["cpu_usage"]
    assert 0.0 <= item.value <= 100.0
    assert item.alert == (RedAlert.alertcode if item.value > 50 else GreenAlert.alertcode)


def test_seed_example_three_points_under_test(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """One function feeds "Point 1", "Point 2", "Point 3" under the parent "Test"."""
    mon = make_monitor()

    @mon.monitor(point=("Point 1", "Point 2", "Point 3"), dt=10, parent="Test")
    def monitoring_function() -> tuple[float, float, float]:
        return random.random(), random.random(), random.random()

    mon.start()
    wait_until(lambda: all(mon[p].value is not None for p in ("Point 1", "Point 2", "Point 3")))
    assert [item.name for item in mon.itertree()] == ["Test", "Point 1", "Point 2", "Point 3"]
    assert all(mon[p].parent == "Test" for p in ("Point 1", "Point 2", "Point 3"))
    assert all(0.0 <= mon[p].value < 1.0 for p in ("Point 1", "Point 2", "Point 3"))
    assert mon.keys() == ["Point 1", "Point 2", "Point 3"]
    assert mon["Test"].alert == 0
    lines = str(mon).splitlines()
    assert lines[3].rstrip() == " .Test"
    assert [line[:30].rstrip() for line in lines[4:]] == [" ..Point 1", " ..Point 2", " ..Point 3"]


# ----------------------------------------------------------------------
# Names
# ----------------------------------------------------------------------


def test_names_may_contain_spaces_and_unicode(make_monitor: MakeMonitor) -> None:
    """Spaces and non-ASCII text are fine in point and parent names."""
    mon = make_monitor()
    mon.register_monitor("Antenna 2 température", None, parent="Station Ω")
    assert "Antenna 2 température" in mon
    assert mon["Antenna 2 température"].parent == "Station Ω"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("a/b", "'/'"),
        ("line\nbreak", "control characters"),
        ("x" * (MAX_NAME_CHARS + 1), f"at most {MAX_NAME_CHARS}"),
        ("", "empty"),
    ],
)
def test_bad_point_name_refused_and_nothing_registered(make_monitor: MakeMonitor, bad: str, reason: str) -> None:
    """A bad name anywhere in a decorator's tuple is refused naming it and why; nothing is registered."""
    mon = make_monitor()
    decorate = mon.monitor(point=("good", bad), parent="Fresh parent")
    with pytest.raises(InvalidNameError) as info:
        decorate(steady((1, 2)))
    assert repr(bad) in str(info.value)
    assert reason in str(info.value)
    assert mon.keys() == []
    assert "Fresh parent" not in mon
    assert list(mon.itertree()) == []


@pytest.mark.parametrize("bad", ["x/y", "tab\there"])
def test_bad_parent_name_refused_and_nothing_registered(make_monitor: MakeMonitor, bad: str) -> None:
    """A bad parent name is refused (naming it) and neither the point nor the parent is registered."""
    mon = make_monitor()
    with pytest.raises(InvalidNameError, match="parent name"):
        mon.monitor(point="p", parent=bad)(steady(1))
    with pytest.raises(InvalidNameError, match="parent name"):
        mon.register_parent(bad)
    with pytest.raises(InvalidNameError, match="parent name"):
        mon.register_parent("ok", parent=bad)
    assert mon.keys() == []
    assert list(mon.itertree()) == []


def test_depth_cap_refuses_too_deep_point_naming_it(make_monitor: MakeMonitor) -> None:
    """A point nested deeper than MAX_DEPTH is refused with an error naming it; nothing is added."""
    mon = make_monitor()
    parent = None
    for level in range(MAX_DEPTH - 1):
        mon.register_parent(f"L{level}", parent)
        parent = f"L{level}"
    mon.register_monitor("deepest allowed", None, parent=parent)  # depth == MAX_DEPTH
    mon.register_parent(f"L{MAX_DEPTH - 1}", parent)  # a parent at MAX_DEPTH is allowed too
    with pytest.raises(ValueError, match="too deep") as info:
        mon.register_monitor("one too deep", None, parent=f"L{MAX_DEPTH - 1}")
    assert "'one too deep'" in str(info.value)
    with pytest.raises(ValueError, match="too deep") as info:
        mon.register_parent("deep parent", f"L{MAX_DEPTH - 1}")
    assert "'deep parent'" in str(info.value)
    assert "one too deep" not in mon
    assert "deep parent" not in mon


def test_depth_cap_also_holds_when_reparenting(make_monitor: MakeMonitor) -> None:
    """Moving a parent (with its subtree) under a deep branch cannot exceed MAX_DEPTH."""
    mon = make_monitor()
    parent = None
    for level in range(MAX_DEPTH - 2):
        mon.register_parent(f"L{level}", parent)
        parent = f"L{level}"
    mon.register_parent("Branch")
    mon.register_monitor("leaf", None, parent="Branch")
    # Branch would sit at MAX_DEPTH - 1 and its leaf at MAX_DEPTH: allowed.
    mon.register_parent("Branch", parent)
    assert mon["Branch"].parent == parent
    mon.register_parent("Branch")  # back to the top
    mon.register_parent("Sub", "Branch")
    mon.register_monitor("deep leaf", None, parent="Sub")
    with pytest.raises(ValueError, match="too deep"):
        mon.register_parent("Branch", parent)  # deep leaf would be at MAX_DEPTH + 1
    assert mon["Branch"].parent is None


# ----------------------------------------------------------------------
# Regression tests, one per defect of the original
# ----------------------------------------------------------------------


def test_python3_only_no_dot_next_basestring_or_undefined_error(
    make_monitor: MakeMonitor, wait_until: WaitUntil
) -> None:
    """Generators are advanced with next() (no .next()), str(item) needs no basestring, duplicates raise ValueError."""

    class OnlyDunderNext:
        """An iterator with __next__ only, as Python 3 defines them."""

        def __iter__(self) -> OnlyDunderNext:
            return self

        def __next__(self) -> tuple[float, None, Alert]:
            return time.time(), None, GreenAlert("py3")

    mon = make_monitor(tick=0.01)
    mon.register_monitor("py3", OnlyDunderNext(), dt=0.05)
    mon.start()
    wait_until(lambda: mon["py3"].value == "py3")
    assert "'py3'" in str(mon["py3"])
    with pytest.raises(ValueError, match="already exists"):  # the original raised NameError (undefined Error)
        mon.register_monitor("py3", OnlyDunderNext())


def test_duplicate_point_names_raise_value_error(make_monitor: MakeMonitor) -> None:
    """Registering a point name twice raises ValueError naming it; the first point stays."""
    mon = make_monitor()
    mon.monitor(point="dup")(steady(1))
    with pytest.raises(ValueError, match="'dup' already exists"):
        mon.monitor(point="dup")(steady(2))
    with pytest.raises(ValueError, match="'dup' already exists"):
        mon.register_monitor("dup", None)
    assert mon.keys() == ["dup"]


def test_duplicate_between_points_and_parents_raises(make_monitor: MakeMonitor) -> None:
    """A point cannot take a parent's name, a parent cannot take a point's name, nor sit under a point."""
    mon = make_monitor()
    mon.register_parent("Antenna")
    mon.monitor(point="Azimuth", parent="Antenna")(steady(1))
    with pytest.raises(ValueError, match="'Antenna' already exists"):
        mon.monitor(point="Antenna")(steady(1))
    with pytest.raises(ValueError, match="'Azimuth' is already a monitor point"):
        mon.register_parent("Azimuth")
    with pytest.raises(ValueError, match="'Azimuth' is a monitor point and cannot be a parent"):
        mon.monitor(point="x", parent="Azimuth")(steady(1))
    with pytest.raises(ValueError, match="cannot be a parent"):
        mon.register_parent("Sub", "Azimuth")
    assert mon.keys() == ["Azimuth"]
    assert "Sub" not in mon
    assert "x" not in mon


def test_duplicate_dependents_raise_and_decorator_registers_nothing(make_monitor: MakeMonitor) -> None:
    """A tuple of points clashing with an existing name (or repeating itself) registers none of them."""
    mon = make_monitor()
    mon.monitor(point="Point 2")(steady(1))
    with pytest.raises(ValueError, match="'Point 2' already exists"):
        mon.monitor(point=("Point 1", "Point 2", "Point 3"), parent="New")(steady((1, 2, 3)))
    with pytest.raises(ValueError, match="repeat"):
        mon.monitor(point=("a", "b", "a"))(steady((1, 2, 3)))
    assert mon.keys() == ["Point 2"]
    assert "New" not in mon
    assert "Point 1" not in mon


def test_duplicate_of_a_declared_dependent_raises(make_monitor: MakeMonitor) -> None:
    """A name declared as another function's dependent cannot be taken by a new point, parent or dependent."""
    mon = make_monitor()
    gen = mon.to_gen_in_executor(steady((1, 2)), ("main", "dep"))
    mon.register_monitor("main", gen, dependents=("dep",))
    with pytest.raises(ValueError, match="'dep'"):
        mon.monitor(point="dep")(steady(3))
    with pytest.raises(ValueError, match="'dep'"):
        mon.register_monitor("dep", mon.to_gen_in_executor(steady(3), ("dep",)))
    with pytest.raises(ValueError, match="'dep'"):
        mon.register_parent("dep")
    with pytest.raises(ValueError, match="'dep'"):
        mon.register_monitor("other", mon.to_gen_in_executor(steady((1, 2)), ("other", "dep")), dependents=("dep",))
    mon.register_monitor("dep", None)  # the one legitimate way: the dependent itself, fed by main
    assert mon.keys() == ["main", "dep"]


def test_failed_registration_leaves_no_parent_behind(make_monitor: MakeMonitor) -> None:
    """A registration refused for a bad argument does not create its parent either."""
    mon = make_monitor()
    with pytest.raises(TypeError, match="gen must be a generator"):
        mon.register_monitor("p", 42, parent="Orphan")
    with pytest.raises(TypeError, match="alert_exc"):
        mon.register_monitor("p", None, parent="Orphan", alert_exc=RedAlert("x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        mon.monitor(point="p", parent="Orphan", timeout=0)(steady(1))
    with pytest.raises(ValueError, match="cycle"):
        mon.register_parent("Self", "Self")
    assert list(mon.itertree()) == []


def test_parents_carry_worst_alert_of_children(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """mon["Antenna"].alert is its worst child's code, through nested parents, and follows recoveries."""
    mon = make_monitor(tick=0.01)
    state: dict[str, Alert] = {"Azimuth": GreenAlert(1.0), "Elevation": OrangeAlert(2.0), "Power": GreenAlert("ok")}
    mon.register_parent("Antenna", "Station")
    mon.register_parent("Drive", "Antenna")
    for name, parent in (("Azimuth", "Drive"), ("Elevation", "Drive"), ("Power", "Antenna")):
        mon.monitor(point=name, parent=parent, dt=0)(lambda name=name: state[name])
    mon.start()
    wait_until(lambda: mon["Station"].alert == OrangeAlert.alertcode)
    assert mon["Drive"].alert == OrangeAlert.alertcode
    assert mon["Antenna"].alert == OrangeAlert.alertcode
    state["Azimuth"] = CriticalAlert(-1)
    wait_until(lambda: mon["Station"].alert == CriticalAlert.alertcode)
    assert mon["Antenna"].alert == CriticalAlert.alertcode
    assert mon["Drive"].alert == CriticalAlert.alertcode
    state["Azimuth"] = GreenAlert(1.0)
    state["Elevation"] = GreenAlert(2.0)
    wait_until(lambda: mon["Station"].alert == GreenAlert.alertcode)
    assert mon["Antenna"].alert == GreenAlert.alertcode
    assert mon.alertcode == GreenAlert.alertcode


def test_alertcode_is_worst_over_all_points_zero_when_empty(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """alertcode is 0 for an empty monitor and otherwise the worst code of any point, nested or top level."""
    mon = make_monitor(tick=0.01)
    assert mon.alertcode == 0
    mon.register_parent("Empty parent")
    assert mon.alertcode == 0
    mon.monitor(point="top", dt=0)(steady(OrangeAlert(1)))
    mon.monitor(point="nested", parent="Deep", dt=0)(steady(GreenAlert(1)))
    mon.start()
    wait_until(lambda: mon["top"].alert is not None and mon["nested"].alert is not None)
    assert mon.alertcode == OrangeAlert.alertcode


def test_print_and_itertree_work_when_empty(make_monitor: MakeMonitor) -> None:
    """An empty monitor prints its header and itertree() yields nothing (the original raised)."""
    mon = make_monitor()
    lines = str(mon).splitlines()
    assert lines[0] == " Monitor --- not running"
    assert lines[1].split() == ["Name", "Value", "Alert", "Last", "polled"]
    assert len(lines) == 3
    assert list(mon.itertree()) == []
    assert list(mon) == []
    assert mon.keys() == []
    mon.start()
    assert str(mon).splitlines()[0] == " Monitor --- running"


def test_print_and_itertree_work_with_childless_parents(make_monitor: MakeMonitor) -> None:
    """Childless parents (nested too) are listed and printed with a blank value and no alert."""
    mon = make_monitor()
    mon.register_parent("Lonely")
    mon.register_parent("Inner", "Outer")
    assert [(i.name, i.parent, i.value, i.alert) for i in mon.itertree()] == [
        ("Lonely", None, None, 0),
        ("Outer", None, None, 0),
        ("Inner", "Outer", None, 0),
    ]
    assert list(mon.itertree("Inner")) == []
    lines = str(mon).splitlines()
    assert lines[3:] == [" .Lonely", " .Outer", " ..Inner"]


def test_change_logging_compares_each_point_with_itself(
    make_monitor: MakeMonitor, wait_until: WaitUntil, caplog: pytest.LogCaptureFixture
) -> None:
    """For a multi-point function a value is logged only when *that* point's value changed."""
    caplog.set_level(logging.DEBUG, logger="gsmon.agent")
    calls = Calls()

    def three() -> tuple[int, int, int]:
        return (1, 2, 3) if calls.hit() == 1 else (1, 5, 3)

    mon = make_monitor(tick=0.01)
    mon.monitor(point=("Point 1", "Point 2", "Point 3"), dt=0, loglvl_values=logging.INFO)(three)
    mon.start()
    wait_until(lambda: calls.count >= 4)
    mon.stop()
    values = [r.getMessage() for r in caplog.records if r.getMessage().startswith("value ")]
    assert values.count('value "Point 1" --> 1') == 1
    assert values.count('value "Point 2" --> 2') == 1
    assert values.count('value "Point 2" --> 5') == 1
    assert values.count('value "Point 3" --> 3') == 1
    assert len(values) == 4
    assert all(r.levelno == logging.INFO for r in caplog.records if r.getMessage().startswith("value "))


def test_alert_logging_per_point_above_threshold(
    make_monitor: MakeMonitor, wait_until: WaitUntil, caplog: pytest.LogCaptureFixture
) -> None:
    """Alert changes are logged per point, only when the old or new level reaches logthr_alerts."""
    caplog.set_level(logging.DEBUG, logger="gsmon.agent")
    calls = Calls()

    def pair() -> tuple[Alert, Alert]:
        n = calls.hit()
        return (GreenAlert(n), RedAlert(n)) if n == 1 else (OrangeAlert(n), GreenAlert(n))

    mon = make_monitor(tick=0.01)
    mon.monitor(point=("calm", "alarm"), dt=0, loglvl_alerts=logging.WARNING)(pair)
    mon.start()
    wait_until(lambda: calls.count >= 3)
    mon.stop()
    alerts = [r for r in caplog.records if r.getMessage().startswith("alert ")]
    messages = [r.getMessage() for r in alerts]
    assert messages == ['alert "alarm" unset --> RED (value 1)', 'alert "alarm" RED --> GREEN (value 2)']
    assert all(r.levelno == logging.WARNING for r in alerts)


def test_reads_while_polling_are_thread_safe(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """Hammering mon[...], print(mon), list(mon) and itertree() while 40 points poll raises nothing and every
    snapshot is consistent (each parent is the worst of its children)."""
    mon = make_monitor(tick=0.005, workers=4)
    levels = [NoAlert, GreenAlert, OrangeAlert, RedAlert, CriticalAlert, MaintenanceAlert]
    polls = Calls()
    names = []
    for i in range(40):
        parent = f"Rack {i % 4}" if i % 5 else None
        name = f"point {i}"
        names.append(name)
        if parent is not None:
            mon.register_parent(parent, "Site" if i % 2 else None)

        def fn() -> Alert:
            polls.hit()
            return random.choice(levels)(random.random())

        mon.monitor(point=name, parent=parent, dt=0)(fn)
    errors: list[BaseException] = []
    done = threading.Event()

    def check_snapshot() -> None:
        items = list(mon.itertree())
        by_name = {item.name: item for item in items}
        for item in items:
            kids = [k for k in items if k.parent == item.name]
            if item.name not in names:
                assert item.alert == max([0, *(k.alert or 0 for k in kids)]), item
            elif item.parent is not None:
                assert item.parent in by_name

    def reader(kind: int) -> None:
        try:
            while not done.is_set():
                if kind == 0:
                    item = mon[random.choice(names)]
                    assert item.name in names
                    mon["Site"]
                elif kind == 1:
                    assert str(mon).count("\n") == 3 + len(names) + 5
                elif kind == 2:
                    assert len(list(mon)) == len(names)
                else:
                    check_snapshot()
        except BaseException as error:
            errors.append(error)

    readers = [threading.Thread(target=reader, args=(k % 4,)) for k in range(8)]
    mon.start()
    for thread in readers:
        thread.start()
    try:
        wait_until(lambda: polls.count >= 2000 or bool(errors), timeout_s=15)
    finally:
        done.set()
        for thread in readers:
            thread.join()
    assert errors == []


def test_stop_returns_promptly_while_a_function_hangs(
    make_monitor: MakeMonitor, wait_until: WaitUntil, release: threading.Event
) -> None:
    """stop() returns at once even while a monitor function is stuck; a second stop() is harmless."""
    entered = threading.Event()

    def hang() -> str:
        entered.set()
        release.wait(10)
        return "done"

    mon = make_monitor()
    mon.monitor(point="hang")(hang)
    mon.start()
    wait_until(entered.is_set)
    began = time.monotonic()
    mon.stop()
    assert time.monotonic() - began < 0.5
    assert not mon.running
    mon.stop()
    assert not mon.running


def test_stop_before_start_and_restart(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """stop() on a never-started monitor is harmless, and a stopped monitor can start again."""
    calls = Calls()
    mon = make_monitor(tick=0.01)
    mon.stop()
    mon.monitor(point="p", dt=0.02)(calls.hit)
    mon.start()
    wait_until(lambda: calls.count >= 2)
    mon.stop()
    after_stop = calls.count
    mon.start()
    wait_until(lambda: calls.count >= after_stop + 2)
    assert mon.running


def test_start_twice_is_harmless(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """A second start() starts no second scheduler: a one-shot point still runs exactly once."""
    calls = Calls()
    ticker = Calls()
    mon = make_monitor(tick=0.01, workers=2)
    mon.monitor(point="once", dt=None)(calls.hit)
    mon.monitor(point="ticker", dt=0.01)(ticker.hit)
    mon.start()
    mon.start()
    schedulers = [t for t in threading.enumerate() if t.name == "gsmon-scheduler"]
    wait_until(lambda: ticker.count >= 10)
    assert calls.count == 1
    assert len([t for t in threading.enumerate() if t.name == "gsmon-scheduler"]) == len(schedulers)
    assert mon.running


def test_decorated_function_stays_callable(make_monitor: MakeMonitor) -> None:
    """The decorator returns the function itself, still callable with its arguments."""
    mon = make_monitor()

    def add(a: int = 1, b: int = 2) -> int:
        return a + b

    decorated = mon.monitor(point="sum")(add)
    assert decorated is add
    assert decorated() == 3
    assert decorated(5, b=6) == 11


def test_callbacks_get_alert_exc_error_on_exceptions(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """A callback of a raising function gets the exception and alert_exc("ERROR Type: msg"), not NoAlert(None)."""
    seen: list[tuple[str, float, BaseException | None, Alert]] = []
    mon = make_monitor()

    @mon.callback()
    def record(name: str, tstamp: float, exc: BaseException | None, ret: Alert) -> None:
        seen.append((name, tstamp, exc, ret))

    @mon.monitor(point="broken", dt=None, alert_exc=RedAlert)
    def broken() -> float:
        return 1 / 0

    before = time.time()
    mon.start()
    wait_until(lambda: bool(seen))
    name, tstamp, exc, ret = seen[0]
    assert name == "broken"
    assert isinstance(exc, ZeroDivisionError)
    assert type(ret) is RedAlert
    assert ret.val == "ERROR ZeroDivisionError: division by zero"
    assert before <= tstamp <= time.time()


def test_callbacks_get_one_call_per_point_with_its_own_alert(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """For a multi-point function each point's callback gets that point's own Alert."""
    seen: dict[str, Alert] = {}
    mon = make_monitor()
    mon.add_callback(lambda name, tstamp, exc, ret: seen.__setitem__(name, ret))
    mon.monitor(point=("a", "b"), dt=None)(steady((GreenAlert(1), 2)))
    mon.start()
    wait_until(lambda: len(seen) == 2)
    assert seen == {"a": GreenAlert(1), "b": NoAlert(2)}


def test_failing_callback_is_logged_and_polling_goes_on(
    make_monitor: MakeMonitor, wait_until: WaitUntil, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in a callback is logged and neither stops polling nor other callbacks."""
    good = Calls()

    def bad(*_: Any) -> None:
        raise RuntimeError("callback broke")

    mon = make_monitor(tick=0.01)
    mon.add_callback(bad)
    mon.add_callback(lambda *_: good.hit())
    mon.monitor(point="p", dt=0.01)(steady(1))
    mon.start()
    wait_until(lambda: good.count >= 3)
    assert any("callback broke" in r.getMessage() for r in caplog.records)


def test_dt_none_polls_once(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """dt=None polls the function exactly once."""
    once, ticker = Calls(), Calls()
    mon = make_monitor(tick=0.01, workers=2)
    mon.monitor(point="once", dt=None)(once.hit)
    mon.monitor(point="ticker", dt=0.01)(ticker.hit)
    mon.start()
    wait_until(lambda: ticker.count >= 15)
    assert once.count == 1
    assert mon["once"].value == 1


def test_dt_zero_polls_every_tick(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """dt=0 polls once per tick."""
    calls = Calls()
    mon = make_monitor(tick=0.02, default_dt=1000)
    mon.monitor(point="fast", dt=0)(calls.hit)
    mon.start()
    wait_until(lambda: calls.count >= 8)
    intervals = [b - a for a, b in zip(calls.starts, calls.starts[1:], strict=False)]
    assert statistics.median(intervals) == pytest.approx(0.02, abs=0.01)


@pytest.mark.parametrize("dt", ["unset", -1, -5.0])
def test_unset_or_negative_dt_uses_default_dt(make_monitor: MakeMonitor, wait_until: WaitUntil, dt: Any) -> None:
    """A point without dt (or a negative one) polls every default_dt, not once and not every tick."""
    kwargs = {} if dt == "unset" else {"dt": dt}
    fast, slow, ticker = Calls(), Calls(), Calls()
    quick = make_monitor(tick=0.01, default_dt=0.02)
    quick.monitor(point="p", **kwargs)(fast.hit)
    quick.start()
    wait_until(lambda: fast.count >= 4)  # repeats at the (short) default
    lazy = make_monitor(tick=0.01, default_dt=1000, workers=2)
    lazy.monitor(point="p", **kwargs)(slow.hit)
    lazy.monitor(point="ticker", dt=0.01)(ticker.hit)
    lazy.start()
    wait_until(lambda: ticker.count >= 10)
    assert slow.count == 1  # polled at start, next due 1000 s later


@pytest.mark.parametrize("dt", [float("nan"), "10", True])
def test_nonsense_dt_is_refused(make_monitor: MakeMonitor, dt: Any) -> None:
    """dt must be a real number of seconds or None."""
    mon = make_monitor()
    with pytest.raises((TypeError, ValueError), match="dt"):
        mon.monitor(point="p", dt=dt)(steady(1))
    assert mon.keys() == []


def test_raising_function_gives_error_value_with_alert_exc(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """A function that raises sets the value "ERROR <Type>: <message>" with the alert_exc level."""
    mon = make_monitor()

    def boom() -> None:
        raise KeyError("antenna")

    def oops() -> None:
        raise ValueError("bad reading")

    mon.monitor(point="plain", dt=None)(oops)
    mon.monitor(point="critical", dt=None, alert_exc=CriticalAlert)(boom)
    mon.start()
    wait_until(lambda: mon["plain"].value is not None and mon["critical"].value is not None)
    assert mon["plain"].value == "ERROR ValueError: bad reading"
    assert mon["plain"].alert == NoAlert.alertcode
    assert mon["critical"].value == "ERROR KeyError: 'antenna'"
    assert mon["critical"].alert == CriticalAlert.alertcode
    assert mon.alertcode == CriticalAlert.alertcode


@pytest.mark.parametrize(("result", "got"), [((1, 2), "got 2"), ((1, 2, 3, 4), "got 4"), (7, "got a int")])
def test_wrong_number_of_values_is_an_error(
    make_monitor: MakeMonitor, wait_until: WaitUntil, result: Any, got: str
) -> None:
    """A tuple of 3 points fed the wrong number of values shows the error on every point."""
    mon = make_monitor()
    mon.monitor(point=("a", "b", "c"), dt=None, alert_exc=OrangeAlert)(steady(result))
    mon.start()
    wait_until(lambda: all(mon[p].value is not None for p in "abc"))
    for name in "abc":
        assert mon[name].value.startswith("ERROR ValueError: expected ")
        assert got in mon[name].value
        assert mon[name].alert == OrangeAlert.alertcode


def test_timeout_reports_error_others_keep_cadence_and_no_resubmit(
    make_monitor: MakeMonitor, wait_until: WaitUntil, release: threading.Event
) -> None:
    """A function still running after its timeout shows an error once per run, is not started again until it
    returns, and other points keep polling meanwhile."""
    hang_calls, ticker = Calls(), Calls()
    timeouts: list[Alert] = []

    def hang() -> str:
        if hang_calls.hit() == 1:
            release.wait(10)
            return "late"
        return "ok"

    mon = make_monitor(tick=0.01, workers=3)
    mon.add_callback(lambda name, t, exc, ret: timeouts.append(ret) if isinstance(exc, TimeoutError) else None)
    mon.monitor(point="hang", dt=0.02, timeout=0.1, alert_exc=RedAlert)(hang)
    mon.monitor(point="ticker", dt=0.01)(ticker.hit)
    mon.start()
    wait_until(lambda: str(mon["hang"].value).startswith("ERROR TimeoutError"))
    assert mon["hang"].alert == RedAlert.alertcode
    assert "0.1" in mon["hang"].value
    during = ticker.count
    wait_until(lambda: ticker.count >= during + 30, timeout_s=3)  # >= 0.3 s: three more timeouts' worth
    assert hang_calls.count == 1  # never submitted again while it hangs
    assert len(timeouts) == 1  # reported once for this run
    assert type(timeouts[0]) is RedAlert
    # The other point's 10 ms cadence beside the hanging one: on a fake clock in
    # test_scheduler.py (test_a_hanging_job_times_out_once_while_others_keep_their_cadence).
    release.set()
    wait_until(lambda: hang_calls.count >= 2)
    wait_until(lambda: mon["hang"].value == "ok")
    assert mon["hang"].alert == NoAlert.alertcode


def test_handmade_generator_with_original_contract(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """A hand-made generator yielding None until ready, then (tstamp, exc, ret), still feeds its point."""
    made: list[int] = []

    def legacy() -> Iterator[tuple[float, BaseException | None, Alert] | None]:
        n = 0
        while True:
            yield None
            yield None
            n += 1
            made.append(n)
            if n == 2:
                yield time.time(), RuntimeError("sensor offline"), NoAlert(None)
            else:
                yield time.time(), None, OrangeAlert(n)

    mon = make_monitor(tick=0.005)
    mon.register_monitor("legacy", legacy(), dt=0.02, parent="Old", alert_exc=RedAlert)
    mon.start()
    wait_until(lambda: mon["legacy"].value == 1)
    assert mon["legacy"].alert == OrangeAlert.alertcode
    assert mon["Old"].alert == OrangeAlert.alertcode
    wait_until(lambda: mon["legacy"].value == "ERROR RuntimeError: sensor offline")
    assert mon["legacy"].alert == RedAlert.alertcode
    wait_until(lambda: mon["legacy"].value == 3)


def test_handmade_generator_with_dependents(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """The original's low-level way to feed several points: dependents= plus gen=None registrations."""

    def legacy() -> Iterator[tuple[float, None, tuple[Alert, Alert]] | None]:
        while True:
            yield None
            yield time.time(), None, (GreenAlert("x"), RedAlert("y"))

    mon = make_monitor(tick=0.005)
    mon.register_monitor("x", legacy(), dt=0.02, dependents=("y",))
    mon.register_monitor("y", None)
    mon.start()
    wait_until(lambda: mon["y"].value == "y")
    assert mon["x"].value == "x"
    assert mon["y"].alert == RedAlert.alertcode


def test_dependent_registered_by_hand_reports_its_real_poll_interval(
    make_monitor: MakeMonitor, wait_until: WaitUntil
) -> None:
    """A dependent fed by another point's function tells publishers that function's dt, not default_dt
    (or the hub would call it stale between two polls)."""
    mon = make_monitor(default_dt=10)
    gen = mon.to_gen_in_executor(steady((1, 2)), ("main", "dep"))
    mon.register_monitor("main", gen, dt=60, dependents=("dep",))
    mon.register_monitor("dep", None)
    mon.start()
    wait_until(lambda: mon["dep"].value == 2)
    with mon.locked():
        entries, _ = mon.point_table.full_state()  # what the publisher sends in STATE
    assert {e.path: e.dt_s for e in entries} == {"main": 60.0, "dep": 60.0}


def test_exhausted_generator_is_retired(
    make_monitor: MakeMonitor, wait_until: WaitUntil, caplog: pytest.LogCaptureFixture
) -> None:
    """A hand-made generator that ends keeps its last value and is not polled again (a warning says so)."""

    def short() -> Iterator[tuple[float, None, Alert]]:
        yield time.time(), None, GreenAlert("only")

    mon = make_monitor(tick=0.005)
    mon.register_monitor("short", short(), dt=0.01)
    mon.start()
    wait_until(lambda: any("exhausted" in r.getMessage() for r in caplog.records))
    assert mon["short"].value == "only"


def test_to_gen_in_executor_follows_original_contract(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """next() on to_gen_in_executor's generator gives None until the call is done, then (tstamp, exc, ret)."""
    mon = make_monitor()
    gate = threading.Event()

    def measured(scale: int) -> tuple[int, Alert]:
        gate.wait(5)
        return 2 * scale, RedAlert(3 * scale)

    gen = mon.to_gen_in_executor(measured, ("a", "b"), 7)
    assert next(gen) is None
    assert next(gen) is None
    gate.set()
    results: list[Any] = []
    wait_until(lambda: results.append(next(gen)) or results[-1] is not None)
    tstamp, exc, ret = results[-1]
    assert exc is None
    assert ret == (NoAlert(14), RedAlert(21))
    assert tstamp <= time.time()

    failing = mon.to_gen_in_executor(lambda: 1 / 0, ("z",))
    results.clear()
    wait_until(lambda: results.append(next(failing)) or results[-1] is not None)
    _, exc, ret = results[-1]
    assert isinstance(exc, ZeroDivisionError)
    assert ret is None


def test_to_gen_in_executor_registered_like_the_original_decorator(
    make_monitor: MakeMonitor, wait_until: WaitUntil
) -> None:
    """register_monitor(name, to_gen_in_executor(fn, names, *args), dependents=...) polls fn with its args."""
    mon = make_monitor()
    gen = mon.to_gen_in_executor(lambda x, y=0: (x, y), ("first", "second"), 4, y=9)
    mon.register_monitor("first", gen, dependents=("second",), parent="Legacy")
    mon.register_monitor("second", None, parent="Legacy")
    mon.start()
    wait_until(lambda: mon["second"].value == 9)
    assert mon["first"].value == 4


def test_to_gen_in_executor_requires_tuple_of_names(make_monitor: MakeMonitor) -> None:
    """point_names must be a non-empty tuple, as in the original."""
    mon = make_monitor()
    with pytest.raises(TypeError, match="tuple"):
        mon.to_gen_in_executor(steady(1), "a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tuple"):
        mon.to_gen_in_executor(steady(1), ())


def test_register_parent_nesting_and_reparenting(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """Parents nest (unknown ones are created at the top), and re-registering moves a subtree; rollup follows."""
    mon = make_monitor(tick=0.01)
    mon.register_parent("Child", "Middle")
    mon.register_parent("Middle", "Top")
    mon.monitor(point="alarm", parent="Child", dt=0)(steady(RedAlert(1)))
    mon.register_parent("Other")
    mon.start()
    wait_until(lambda: mon["Top"].alert == RedAlert.alertcode)
    assert [(i.name, i.parent) for i in mon.itertree()] == [
        ("Other", None),
        ("Top", None),
        ("Middle", "Top"),
        ("Child", "Middle"),
        ("alarm", "Child"),
    ]
    mon.register_parent("Middle", "Other")
    assert mon["Middle"].parent == "Other"
    assert mon["Other"].alert == RedAlert.alertcode
    assert mon["Top"].alert == 0
    assert [i.name for i in mon.itertree("Other")] == ["Middle", "Child", "alarm"]
    lines = str(mon).splitlines()
    assert [line.split()[0] for line in lines[3:]] == [".Other", "..Middle", "...Child", "....alarm", ".Top"]
    mon.register_parent("Middle", "Other")  # same place again: no change
    assert mon["Middle"].parent == "Other"
    with pytest.raises(ValueError, match="cycle"):
        mon.register_parent("Other", "Child")
    assert mon["Other"].parent is None


def test_monitor_item_access(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """mon[name] is a MonitorItem readable by attribute, index and item["field"], with keys() and items()."""
    mon = make_monitor()
    mon.monitor(point="temp", parent="Rack", dt=None)(steady(OrangeAlert(41.5)))
    mon.start()
    wait_until(lambda: mon["temp"].value is not None)
    item = mon["temp"]
    assert isinstance(item, MonitorItem)
    assert (item.name, item.value, item.alert, item.parent) == ("temp", 41.5, 20, "Rack")
    assert item[0] == "temp"
    assert item[1] == 41.5
    assert item["alert"] == 20
    assert item["parent"] == "Rack"
    assert item.keys() == ("name", "value", "alert", "parent", "age")
    assert dict(item.items())["value"] == 41.5
    assert item.age is not None
    assert 0 <= item.age < 5
    with pytest.raises(KeyError):
        item["nope"]
    parent = mon["Rack"]
    assert (parent.name, parent.value, parent.alert, parent.parent, parent.age) == ("Rack", None, 20, None, None)
    with pytest.raises(KeyError, match="nope"):
        mon["nope"]


def test_age_grows_between_polls(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """An item's age counts up from its last poll; an unpolled point has no age and no value."""
    mon = make_monitor()
    mon.register_monitor("never", None)
    assert mon["never"] == MonitorItem("never", None, None, None, None)
    mon.monitor(point="once", dt=None)(steady(1))
    mon.start()
    wait_until(lambda: mon["once"].age is not None)
    first = mon["once"].age
    assert first is not None
    wait_until(lambda: (mon["once"].age or 0) > first)


def test_keys_names_iteration_and_membership(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """keys()/names() list points (not parents) in registration order; iteration yields (name, value, alert, age)."""
    mon = make_monitor()
    mon.monitor(point="b", parent="P", dt=None)(steady(GreenAlert(2)))
    mon.monitor(point="a", dt=None)(steady(1))
    assert mon.keys() == ["b", "a"]
    assert mon.names() == ["b", "a"]
    assert len(mon) == 2
    assert "P" in mon
    assert "a" in mon
    assert "zz" not in mon
    mon.start()
    wait_until(lambda: all(row[1] is not None for row in mon))
    rows = list(mon)
    assert [(n, v, a) for n, v, a, _ in rows] == [("b", 2, 10), ("a", 1, 0)]
    assert all(age is not None and age >= 0 for *_, age in rows)
    assert repr(mon) == "<Monitor 2 points, running>"


def test_itertree_of_a_branch(make_monitor: MakeMonitor) -> None:
    """itertree(parent) yields only that branch, depth first, sorted; unknown or point names raise KeyError."""
    mon = make_monitor()
    mon.register_parent("B", "A")
    mon.register_monitor("b2", None, parent="B")
    mon.register_monitor("b1", None, parent="B")
    mon.register_monitor("a1", None, parent="A")
    mon.register_monitor("top", None)
    assert [i.name for i in mon.itertree()] == ["A", "B", "b1", "b2", "a1", "top"]
    assert [i.name for i in mon.itertree("A")] == ["B", "b1", "b2", "a1"]
    assert [i.name for i in mon.itertree("B")] == ["b1", "b2"]
    with pytest.raises(KeyError):
        list(mon.itertree("nope"))
    with pytest.raises(KeyError):
        list(mon.itertree("top"))


def test_print_shows_indented_table(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """print(mon) shows the title with the worst level and the indented Name/Value/Alert/Last polled table."""
    mon = make_monitor()
    mon.monitor(point="Azimuth", parent="Antenna", dt=None)(steady(GreenAlert(182.5)))
    mon.monitor(point="Elevation", parent="Antenna", dt=None)(steady(RedAlert(-3.1)))
    mon.monitor(point="Uptime", dt=None)(steady(12))
    mon.start()
    wait_until(lambda: all(row[1] is not None for row in mon))
    lines = str(mon).splitlines()
    assert lines[0] == " Monitor (RED) --- running"
    assert lines[1] == " Name                          Value                                   Alert     Last polled"
    assert lines[2] == " " + "-" * 29 + " " + "-" * 39 + " " + "-" * 9 + " " + "-" * 15
    assert lines[3] == " .Antenna                                                              RED"
    assert lines[4].startswith(" ..Azimuth                     182.5                                   GREEN     0.")
    assert lines[5].startswith(" ..Elevation                   -3.1                                    RED       0.")
    assert lines[6].startswith(" .Uptime                       12                                                0.")
    assert len(lines) == 7


def test_user_alert_subclass_works_everywhere(make_monitor: MakeMonitor, wait_until: WaitUntil) -> None:
    """A user Alert subclass rolls up to parents, shows its label in print(mon) and via alertstr()."""
    mon = make_monitor()
    assert mon.alertstr(15) == ""
    mon.monitor(point="service", parent="Site", dt=None)(steady(MaintenanceAlert("weekly")))
    mon.monitor(point="ok", parent="Site", dt=None)(steady(GreenAlert(1)))
    mon.start()
    wait_until(lambda: mon["service"].alert is not None and mon["ok"].alert is not None)
    assert mon["service"].alert == 15
    assert mon["Site"].alert == 15
    assert mon.alertcode == 15
    assert mon.alertstr(15) == "MAINT"
    assert mon.alertstr(30) == "RED"
    assert mon.alertstr(None) == ""
    lines = str(mon).splitlines()
    assert lines[0] == " Monitor (MAINT) --- running"
    assert lines[3].split() == [".Site", "MAINT"]
    assert lines[5].split()[:3] == ["..service", "weekly", "MAINT"]


def test_positional_register_arguments_as_in_the_original(make_monitor: MakeMonitor) -> None:
    """monitor(point, dt, parent) accepts register_monitor's arguments positionally."""
    mon = make_monitor()
    mon.monitor("p", 5, "Group")(steady(1))
    assert mon["p"].parent == "Group"


def test_monitor_refuses_name_gen_dependents_kwargs(make_monitor: MakeMonitor) -> None:
    """monitor() does not take name, gen or dependents (they come from the function)."""
    mon = make_monitor()
    for banned in ("name", "gen", "dependents"):
        with pytest.raises(TypeError, match=banned):
            mon.monitor(**{banned: None})


@pytest.mark.parametrize(
    "kwargs",
    [{"workers": 0}, {"tick": 0}, {"tick": -1}, {"default_dt": 0}, {"default_dt": -3}, {"default_timeout": 0}],
)
def test_constructor_validates_arguments(kwargs: dict[str, Any]) -> None:
    """Nonsense workers, tick, default_dt or default_timeout are refused."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Monitor(**kwargs)


def test_start_in_subprocess_is_refused(make_monitor: MakeMonitor) -> None:
    """start(subprocess=True) raises instead of silently polling where nobody can read."""
    mon = make_monitor()
    with pytest.raises(ValueError, match="subprocess"):
        mon.start(subprocess=True)
    assert not mon.running


def test_context_manager_starts_and_stops(wait_until: WaitUntil) -> None:
    """`with Monitor() as mon` starts polling and stops it on exit."""
    calls = Calls()
    with Monitor(tick=0.01) as mon:
        mon.monitor(point="p", dt=0.01)(calls.hit)
        assert mon.running
        wait_until(lambda: calls.count >= 2)
    assert not mon.running


def test_tick_callback_runs_every_tick_and_survives_errors(
    wait_until: WaitUntil, caplog: pytest.LogCaptureFixture
) -> None:
    """tick_cb is called with the monitor every tick; an exception in it is logged, not fatal."""
    ticks: list[Monitor] = []

    def tick_cb(mon: Monitor) -> None:
        ticks.append(mon)
        if len(ticks) == 2:
            raise RuntimeError("tick broke")

    mon = Monitor(tick=0.01, tick_cb=tick_cb)
    mon.start()
    try:
        wait_until(lambda: len(ticks) >= 5)
    finally:
        mon.stop()
    assert all(t is mon for t in ticks)
    assert any("tick broke" in r.getMessage() for r in caplog.records)


def test_late_timeout_never_overwrites_the_result_of_the_run_it_was_for() -> None:
    """A timeout handled after its run finished is dropped: the real result stays."""
    mon = Monitor()
    mon.register_monitor("once", mon.to_gen_in_executor(lambda: 5, ("once",)), dt=None)
    job = mon.point_table.points["once"].job
    assert job is not None
    job.running, job.run_id = True, 1  # as the scheduler leaves a started run
    mon._complete(job, time.time(), None, (NoAlert(5),))
    mon._report_timeout(job, 1)  # the scheduler popped the TIMEOUT just before the run ended
    assert mon["once"].value == 5
    assert not job.running


def test_point_whose_path_would_exceed_the_byte_cap_is_refused() -> None:
    """Names and depth within their caps can still add up to a path over 1024 bytes: refused, nothing created."""
    mon = Monitor()
    parent = None
    for level in range(8):
        name = "P" * 120 + str(level)
        mon.register_parent(name, parent)
        parent = name
    with pytest.raises(InvalidNameError, match="longer than 1024 bytes"):
        mon.monitor(point="x" * 100, parent=parent)(lambda: 1)
    assert "x" * 100 not in mon


def test_debounce_keywords_give_the_point_a_debouncer_plain_points_none() -> None:
    """@mon.monitor(for_s=..., clear_for_s=..., m_of_n=..., flap_...) configures the point's debounce;
    register_monitor takes the same; points without them keep none (the seed's behaviour)."""
    mon = Monitor()
    mon.monitor(point="temp", dt=2, for_s=10, clear_for_s=30, m_of_n=(3, 5))(lambda: 1)
    mon.register_monitor(
        "link", mon.to_gen_in_executor(lambda: 1, ("link",)), flap_window_s=60, flap_start=4, flap_stop=1
    )
    mon.monitor(point="plain")(lambda: 1)
    points = mon.point_table.points
    assert points["temp"].debouncer is not None
    assert points["temp"].debouncer.settings == DebounceSettings(for_s=10.0, clear_for_s=30.0, m_of_n=(3, 5))
    assert points["link"].debouncer is not None
    assert points["link"].debouncer.settings == DebounceSettings(flap_window_s=60.0, flap_start=4, flap_stop=1)
    assert points["plain"].debouncer is None


def test_bad_debounce_keywords_raise_one_line_per_problem_and_register_nothing() -> None:
    mon = Monitor()
    with pytest.raises(DebounceSettingsError) as raised:  # a ValueError
        mon.monitor(point="temp", for_s="fast", m_of_n=(5, 3), flap_stop=1)(lambda: 1)
    assert str(raised.value).splitlines() == [
        "for_s: expected a number of seconds >= 0 (0 = off), got 'fast'",
        "m_of_n: expected [M, N] with 1 <= M <= N <= 10000, got [5, 3]",
        "flap_stop: needs flap_window_s > 0 (without a window there is no flap guard)",
    ]
    assert isinstance(raised.value, ValueError)
    assert "temp" not in mon
    with pytest.raises(TypeError):
        mon.monitor(point="temp", for_seconds=3)(lambda: 1)  # a typo is still a TypeError


def test_debounced_point_shows_and_calls_back_with_the_effective_level(
    make_monitor: MakeMonitor, wait_until: WaitUntil
) -> None:
    """A point RED on every poll with for_s=3600 stays at its effective level (NoAlert: never normal yet,
    RED pending) in mon[...], the rollup and the callbacks; the publisher entry says raw RED, pending."""
    seen: list[int] = []
    mon = make_monitor(tick=0.01)
    mon.add_callback(lambda name, t, exc, ret: seen.append(ret.alertcode))
    mon.monitor(point="temp", dt=0.01, parent="Rack", for_s=3600)(lambda: RedAlert(99))
    mon.start()
    wait_until(lambda: len(seen) >= 3)
    mon.stop()
    assert set(seen) == {NoAlert.alertcode}
    assert mon["temp"].alert == NoAlert.alertcode
    assert mon["temp"].value == 99
    assert mon["Rack"].alert == NoAlert.alertcode
    entries, _ = mon.point_table.full_state()
    (entry,) = entries
    assert entry.alertcode == NoAlert.alertcode
    assert entry.debounce["raw"] == RedAlert.alertcode  # type: ignore[attr-defined]
    assert entry.debounce["pending"]["level"] == RedAlert.alertcode  # type: ignore[attr-defined]
