"""``watch_bench.py --trace``: what a slow key press of ``gsmon watch`` waited for.

The benchmark's key figure is one number per press (press to the moved
cursor's row drawn). This module records, on the same run, what happened
between: every span of the application's own work (the timer's tick and its
phases: take, apply, row build, sync, chrome; the key's action; Textual's
layout and paint), every pass of the garbage collector, the event loop's
stalls (a 2 ms sleep that came back late, with the main thread's CPU over the
stall: CPU ~ wall is work on the loop, CPU ~ 0 is a wait for the GIL or the
scheduler), and the feed thread's polls (changes decoded per poll and the
thread's CPU for it: the GIL it held). After the run it prints a summary per
kind of span and, for the slowest presses, the timeline of everything that
overlapped them.

The wrappers are set as instance attributes of the real objects (the app,
its model, its tree, the screen, the feed's Subscriber): nothing is replaced,
the work is the same work, timed.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bench._support import percentile

__all__ = ["Span", "Tracer"]

#: A loop sleep this much later than asked is a stall.
STALL_S: Final = 0.008
_TICK_S: Final = 0.002
SLOW_PRESSES: Final = 6


@dataclass(frozen=True)
class Span:
    kind: str
    start: float  # perf_counter
    end: float
    note: str = ""

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


def _thread_clock(thread: threading.Thread | None = None) -> Callable[[], float]:
    """The CPU clock of ``thread`` (default: the calling one), readable from any thread."""
    ident = (thread or threading.current_thread()).ident
    assert ident is not None
    clock_id = time.pthread_getcpuclockid(ident)
    return functools.partial(time.clock_gettime, clock_id)


@dataclass
class Tracer:
    spans: list[Span] = field(default_factory=list)
    presses: list[tuple[float, float]] = field(default_factory=list)  # (pressed, drawn) perf_counter
    windows: list[tuple[str, float, float]] = field(default_factory=list)  # (view, start, end) perf_counter
    heap: list[str] = field(default_factory=list)
    full_passes: list[str] = field(default_factory=list)
    _gc_started: dict[int, tuple[float, float]] = field(default_factory=dict)
    _stop: bool = False

    # --- recording

    def window(self, view: str, start: float, end: float) -> None:
        """A measurement window (the summary counts only what ran inside the windows)."""
        self.windows.append((view, start, end))
        self.heap.append(
            f"heap after the {view} window: {len(gc.get_objects(2)):,} objects in the oldest generation, "
            f"{gc.get_freeze_count():,} frozen, young {len(gc.get_objects(0)):,}/{len(gc.get_objects(1)):,}, "
            f"thresholds {gc.get_threshold()}"
        )

    def add(self, kind: str, start: float, end: float, note: str = "") -> None:
        self.spans.append(Span(kind, start, end, note))

    def wrap(self, owner: Any, attribute: str, kind: str, note: Callable[[Any, Any], str] | None = None) -> None:
        """Time every call of ``owner.attribute`` (``note(args, result)`` says something about it)."""
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = original(*args, **kwargs)
            self.add(kind, start, time.perf_counter(), note(args, result) if note else "")
            return result

        setattr(owner, attribute, timed)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        """A collector pass: in the thread that triggered it (the feed thread's passes hold the GIL too)."""
        generation = info["generation"]
        if phase == "start":
            self._gc_started[generation] = (time.perf_counter(), time.thread_time())
        else:
            started = self._gc_started.pop(generation, None)
            if started is not None:
                cpu_ms = (time.thread_time() - started[1]) * 1000
                where = threading.current_thread().name
                note = f"collected {info['collected']}, cpu {cpu_ms:.1f} ms, in {where}"
                self.add(f"gc{generation}", started[0], time.perf_counter(), note)
                if generation == 2:
                    self.full_passes.append(f"  full pass {(time.perf_counter() - started[0]) * 1000:.1f} ms: {note}")

    def attach(self, app: Any) -> None:
        """The app's own work and Textual's paint, and the collector."""
        self.wrap(app, "tick", "tick")
        self.wrap(app, "take", "take", lambda _a, batch: f"{len(batch.updates)} updates")
        self.wrap(app.model, "apply", "apply", lambda args, _r: f"{len(args[0])} updates")
        self.wrap(app.model, "_build", "build", lambda _a, _r: f"{len(app.model._rows or ())} rows")
        self.wrap(app.tree_view, "sync", "sync")
        self.wrap(app, "_draw_chrome", "chrome")
        self.wrap(app.tree_view, "action_move", "action")
        gc.callbacks.append(self._gc)

    def attach_screen(self, screen: Any) -> None:
        self.wrap(screen, "_compositor_refresh", "paint")
        self.wrap(screen, "_refresh_layout", "layout")
        self.wrap(
            screen._compositor,
            "update_widgets",
            "dirty",
            lambda args, _r: " ".join(sorted(str(w.id or type(w).__name__) for w in args[0])),
        )
        tree = screen.app.tree_view
        self.wrap(tree, "render_lines", "lines", lambda args, _r: f"{args[0].height} lines")

    async def cyclic_garbage(self, seconds: float) -> str:
        """What the collector frees that reference counting could not, made over ``seconds`` of the run
        (kinds, most first): what the full passes spend their time on."""
        gc.collect()
        await asyncio.sleep(seconds)
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            kinds: dict[str, int] = {}
            for thing in gc.garbage:
                name = f"{type(thing).__module__}.{type(thing).__qualname__}"
                kinds[name] = kinds.get(name, 0) + 1
            total = len(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        top = sorted(kinds.items(), key=lambda item: -item[1])[:15]
        return f"cyclic garbage over {seconds:g} s: {total} objects; " + ", ".join(f"{k} {n}" for k, n in top)

    def detach(self) -> None:
        self._stop = True
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)

    async def watch_loop(self) -> None:
        """Sleep 2 ms again and again; a late wake-up is a stall of the loop (with the main thread's CPU in it)."""
        cpu = _thread_clock()
        while not self._stop:
            asked = time.perf_counter() + _TICK_S
            cpu0 = cpu()
            await asyncio.sleep(_TICK_S)
            woke = time.perf_counter()
            if woke - asked > STALL_S:
                self.add("stall", asked, woke, f"main cpu {(cpu() - cpu0) * 1000:.0f} ms")

    def subscriber_factory(self) -> Callable[..., Any]:
        """A factory for HubFeed: the real Subscriber, its polls timed (changes, and the feed thread's CPU)."""
        from gsmon.common.client import Subscriber

        tracer = self

        class TimedSubscriber(Subscriber):
            def poll(self, timeout_s: float = 0.0) -> list[Any]:
                cpu = time.thread_time()
                start = time.perf_counter()
                changes = super().poll(timeout_s)
                used = time.thread_time() - cpu
                if changes or used > 0.002:
                    tracer.add("feed", start, time.perf_counter(), f"{len(changes)} changes, cpu {used * 1000:.1f} ms")
                return changes

        return TimedSubscriber

    # --- reading

    def summary(self) -> str:
        lines: list[str] = []
        for view, start, end in self.windows:
            kinds: dict[str, list[float]] = {}
            for span in self.spans:
                if start <= span.start <= end:
                    kinds.setdefault(span.kind, []).append(span.ms)
            lines.append(f"trace, {view}: span durations in the window, ms (count, p50, p99, max, total per s)")
            for kind in sorted(kinds):
                values = sorted(kinds[kind])
                lines.append(
                    f"  {kind:8s} n={len(values):6d}  p50 {statistics.median(values):7.2f}  "
                    f"p99 {percentile(values, 0.99):7.2f}  max {values[-1]:7.2f}  "
                    f"total {sum(values) / (end - start):7.1f} ms/s"
                )
            presses = sorted((drawn - pressed) * 1000 for pressed, drawn in self.presses if start <= pressed <= end)
            if presses:
                lines.append(f"  key ms: p50 {statistics.median(presses):.1f}  max {presses[-1]:.1f}")
        return "\n".join(lines + self.heap + ["full collections (all, the snapshot's included):", *self.full_passes])

    def slow_presses(self, count: int = SLOW_PRESSES) -> str:
        lines: list[str] = []
        ordered = sorted(self.presses, key=lambda press: press[1] - press[0], reverse=True)
        for pressed, drawn in ordered[:count]:
            lines.append(f"press at {pressed:.3f}: drawn after {(drawn - pressed) * 1000:.1f} ms")
            lines.extend(self._timeline(pressed - 0.05, drawn, pressed))
        return "\n".join(lines)

    def _timeline(self, start: float, end: float, origin: float) -> Sequence[str]:
        inside = sorted(
            (span for span in self.spans if span.end >= start and span.start <= end and span.kind != "take"),
            key=lambda span: span.start,
        )
        return [
            f"    {(span.start - origin) * 1000:+8.1f} ms  {span.kind:7s} {span.ms:7.1f} ms  {span.note}"
            for span in inside
            if span.ms >= 0.5 or span.kind in ("action", "paint", "tick", "dirty", "lines")
        ]
