"""``GET /metrics``: the live tree in Prometheus's text format, built at scrape time. Pure but for the clock.

Two parts, because of what each costs (figures from bench/web_bench.py, see bench/RESULTS.md):

* **prometheus_client** (the Prometheus project's own Python client) keeps
  the content type and renders the bridge's own, few families -- the hub's
  counters, ``gsmon_web_*`` and ``gsmon_metrics_truncated`` -- through a
  custom collector (:class:`BridgeCollector`) on a fresh ``CollectorRegistry``
  per scrape and ``generate_latest``. For every sample, ``generate_latest``
  sorts the label names, escapes every label name and value, and formats the
  line: for the tree's 100,337 series of bench/web_bench.py that was
  0.67-1.04 s per scrape on this project's 2 shared cores (issue 16; 1.04 s
  at load 6), against 0.03-0.04 s for plain f-strings of the same lines, a
  ratio of 21 -- too close to the 1 s target and to Prometheus's default
  scrape timeout on a busy machine.
* **The tree's families** are written here with the same rules (label names
  sorted, label values escaped: ``\\`` -> ``\\\\``, ``"`` -> ``\\"``, newline
  -> ``\\n``; values as ``floatToGoString`` spells them; HELP and TYPE lines
  as ``generate_latest`` writes them), but through a cache: each entry of
  the bridge's core carries its :class:`SeriesPrefixes` -- every series'
  metric name and escaped label set up to the value, made once. A scrape
  then only formats values (alert codes and 0/1 from a table) and joins
  strings. The cache follows the node's labels (path, kind, agent): the
  core hands an entry's prefixes on to the node's next version only when
  they still :meth:`~SeriesPrefixes.fits` it (a value update keeps them, a
  new agent or kind makes new ones), and a removed node's prefixes go with
  its entry. The alarm series' ``state`` label is formatted per scrape (few
  nodes have an open alarm). The result parses, with prometheus_client's own
  parser, to the same families and samples as the library-only rendering
  (:func:`render_metrics_reference`, kept as the definition of the output:
  the unit tests compare the two on awkward names, and the bench times
  both); today it is byte for byte the same. Measured at load 5.6 on the same
  100,337 series: the first scrape (making every prefix) 0.15 s, the next
  after 10,000 value updates 0.08 s (ratio 2.1 to the f-strings), the
  library-only rendering 0.80 s in the same run; at load 7-8, 0.24 s warm
  and 0.39 s cold against 1.24 s. What is left is mostly ``repr`` of the
  ages and values (the same 17-digit values as before).

No sample carries a timestamp (exposed timestamps break Prometheus's
staleness handling).

Families (``path`` is the gsmon path verbatim; no label name ever comes from
what an agent sends, so an agent cannot blow up the label set)::

    gsmon_alert_level{path,kind,agent}       the node's alert code (STALE = 50 when stale)
    gsmon_attention_level{path}              the hub's attention (worst unacked, unshelved alarm
                                             level below; the node's level before the hub sends it)
    gsmon_value{path,agent}                  points with an int, float or bool value
    gsmon_stale{path}                        1 when the node is STALE
    gsmon_age_seconds{path}                  points: seconds since the hub received the value
    gsmon_alarm_open{path,state,shelved}     1 per node with an open alarm (its state)
    gsmon_agent_up{agent}                    1 live, 0 silent or in conflict (from _hub/agents/<name>)
    gsmon_hub_<name>                         the hub's own counters (its numeric _hub/<name> points;
                                             a name ending in _s ends in _seconds here)
    gsmon_web_hub_connected                  1 while the bridge follows the hub
    gsmon_web_clients                        WebSocket clients following the tree
    gsmon_web_updates                        node updates the bridge has taken in (a running count)
    gsmon_metrics_truncated                  1 when max_series cut this scrape short

``?prefix=GS1/`` (segment-aware) and ``?min_level=ORANGE`` (a code or a
level name) select the nodes; ``max_series`` (default 100,000) caps the node
series of one scrape, and ``gsmon_metrics_truncated`` says when it did.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gsmon.common.watch.model import Node
from gsmon.common.web.core import Entry

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_SERIES",
    "BridgeCollector",
    "BridgeFacts",
    "SeriesPrefixes",
    "TreeCollector",
    "escape_label_value",
    "render_metrics",
    "render_metrics_reference",
]

DEFAULT_MAX_SERIES: Final = 100_000
#: The classic text format (what ``generate_latest`` writes; Prometheus 2.x reads it).
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
HUB_ROOT: Final = "_hub"
_HUB_AGENT: Final = "_hub"
_AGENTS: Final = "_hub/agents/"
# A hub point becomes part of a metric name only when its name is already a valid, plain one.
_PLAIN_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,62}")

#: prometheus_client's own spelling of a sample value ("1.0", "NaN", "+Inf", "1.2345678901234567e+19"), typed.
_go_float: Final[Callable[[float], str]] = floatToGoString

# The tree's families: name, HELP text, label names (both renderings use these, in this order).
_ALERT: Final = (
    "gsmon_alert_level",
    "Alert code of the node (0 none, 10 GREEN, 20 ORANGE, 30 RED, 50 STALE, 100 CRITICAL)",
    ["path", "kind", "agent"],
)
_ATTENTION: Final = (
    "gsmon_attention_level",
    "Worst level of unacknowledged, unshelved alarms at or below the node",
    ["path"],
)
_VALUE: Final = ("gsmon_value", "Value of a numeric or boolean point", ["path", "agent"])
_STALE: Final = ("gsmon_stale", "1 when the node is STALE", ["path"])
_AGE: Final = ("gsmon_age_seconds", "Seconds since the hub received the point's value", ["path"])
_ALARM: Final = ("gsmon_alarm_open", "1 per node with an open alarm, by alarm state", ["path", "state", "shelved"])
_AGENT_UP: Final = ("gsmon_agent_up", "1 when the agent is live, 0 when silent", ["agent"])
_TREE_FAMILIES: Final = (_ALERT, _ATTENTION, _VALUE, _STALE, _AGE, _ALARM, _AGENT_UP)


@dataclass(frozen=True, slots=True)
class BridgeFacts:
    """What the bridge says about itself at scrape time."""

    hub_time_s: float  # the hub's wall clock now (ages use it)
    hub_connected: bool
    clients: int
    updates_total: int


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        return number if not math.isnan(number) else math.nan
    return None


def _hub_metric(path: str) -> tuple[str, str] | None:
    """``(metric name, own name)`` of a plain ``_hub/<name>`` point's family, else None."""
    own = path.removeprefix(f"{HUB_ROOT}/")
    if own == path or not _PLAIN_NAME.fullmatch(own):
        return None
    # Prometheus spells units out ("uptime_s" -> "uptime_seconds"; promtool says so).
    return f"gsmon_hub_{own[:-2] + '_seconds' if own.endswith('_s') else own}", own


def _hub_doc(own: str) -> str:
    return f"The hub's own {own} (its _hub/{own} point)"


# ----------------------------------------------------------------------
# The fast rendering of the tree


def escape_label_value(text: str) -> str:
    """A label value as the text format writes it between quotes (``generate_latest``'s rule, backslash first)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _header(name: str, doc: str) -> str:
    """The HELP and TYPE lines of a gauge, as ``generate_latest`` writes them."""
    help_text = doc.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} gauge\n"


_HEADERS: Final = tuple(_header(name, doc) for name, doc, _ in _TREE_FAMILIES)


class _ValueTexts(dict[float, str]):
    """``value -> floatToGoString(value) + newline``, filled as asked: alert codes and 0/1 repeat 100,000 times."""

    def __missing__(self, value: float) -> str:
        text = _go_float(value) + "\n"
        if len(self) < _MAX_VALUE_TEXTS:  # user alert codes are few; never let odd ones grow it without end
            self[value] = text
        return text


_MAX_VALUE_TEXTS: Final = 1_000
_VALUE_TEXTS: Final = _ValueTexts()
_ONE: Final = "1.0\n"
_ZERO: Final = "0.0\n"


@dataclass(frozen=True, slots=True)
class SeriesPrefixes:
    """Every series of one node up to its value: the metric name and the escaped label set, then a space.

    Made once per node and labels (:meth:`of`); kept on the core's entry while
    it :meth:`fits` the node's next versions.
    """

    path: str  # the labels these were made from (what fits() compares)
    kind: str
    agent: str
    alert: str
    attention: str
    stale: str
    value: str  # "" for a parent (parents have no value or age series)
    age: str
    path_label: str  # 'path="..."', the alarm series' first label
    agent_up: str | None  # for _hub/agents/<name>: gsmon_agent_up{agent="<name>"}
    hub_metric: tuple[str, str] | None  # for a plain _hub/<name> point: its family's name and <name>

    @classmethod
    def of(cls, node: Node) -> SeriesPrefixes:
        path = node.path
        kind = node.kind
        agent = node.agent or ""
        path_label = f'path="{escape_label_value(path)}"'
        agent_label = f'agent="{escape_label_value(agent)}"'
        point = kind == "point"
        agent_up: str | None = None
        hub_metric: tuple[str, str] | None = None
        if point and agent == _HUB_AGENT:
            if path.startswith(_AGENTS):
                agent_up = f'gsmon_agent_up{{agent="{escape_label_value(path[len(_AGENTS) :])}"}} '
            else:
                hub_metric = _hub_metric(path)
        return cls(
            path=path,
            kind=kind,
            agent=agent,
            alert=f'gsmon_alert_level{{{agent_label},kind="{escape_label_value(kind)}",{path_label}}} ',
            attention=f"gsmon_attention_level{{{path_label}}} ",
            stale=f"gsmon_stale{{{path_label}}} ",
            value=f"gsmon_value{{{agent_label},{path_label}}} " if point else "",
            age=f"gsmon_age_seconds{{{path_label}}} " if point else "",
            path_label=path_label,
            agent_up=agent_up,
            hub_metric=hub_metric,
        )

    def fits(self, node: Node) -> bool:
        """Whether these are still ``node``'s series (its labels are the ones they were made from)."""
        return node.path == self.path and node.kind == self.kind and (node.agent or "") == self.agent


def _prefixes(entry: Entry) -> SeriesPrefixes:
    prefixes = entry.series
    if prefixes is None:
        # Written from the scrape's thread while the loop may replace the entry: a plain slot store,
        # and the worst a race can do is make the same prefixes twice.
        prefixes = entry.series = SeriesPrefixes.of(entry.node)
    return prefixes


@dataclass(slots=True)
class _TreeText:
    text: str
    hub_own: list[tuple[str, str, float]]  # (family name, own name, value) of the hub's counters
    truncated: bool


def _render_tree(entries: Sequence[Entry], hub_time_s: float, max_series: int) -> _TreeText:
    alert: list[str] = []
    attention: list[str] = []
    value: list[str] = []
    stale: list[str] = []
    age: list[str] = []
    alarm: list[str] = []
    agent_up: list[str] = []
    hub_own: list[tuple[str, str, float]] = []
    texts = _VALUE_TEXTS
    series = 0
    truncated = False
    for entry in entries:
        if series >= max_series:
            truncated = True
            break
        node = entry.node
        prefixes = entry.series
        if prefixes is None:
            prefixes = _prefixes(entry)
        alert.append(prefixes.alert + texts[node.alertcode])
        attention.append(prefixes.attention + texts[entry.attention])
        stale.append(prefixes.stale + (_ONE if node.stale else _ZERO))
        series += 3
        if entry.is_point:
            number = _number(node.value)
            if number is not None:
                value.append(prefixes.value + _go_float(number) + "\n")
                series += 1
            received = node.received_at_s
            if received is not None:
                age.append(prefixes.age + _go_float(max(0.0, hub_time_s - received)) + "\n")
                series += 1
            if prefixes.agent_up is not None:
                agent_up.append(prefixes.agent_up + (_ONE if node.value == "live" else _ZERO))
                series += 1
            elif prefixes.hub_metric is not None and number is not None and not isinstance(node.value, bool):
                hub_own.append((*prefixes.hub_metric, number))
                series += 1
        summary = entry.extras.alarm
        if summary is not None and summary.state != "cleared":
            shelved = entry.extras.shelf_id is not None or summary.shelf_id is not None
            alarm.append(
                f'gsmon_alarm_open{{{prefixes.path_label},shelved="{"true" if shelved else "false"}",'
                f'state="{escape_label_value(summary.state)}"}} 1.0\n'
            )
            series += 1
    parts: list[str] = []
    for header, lines in zip(_HEADERS, (alert, attention, value, stale, age, alarm, agent_up), strict=True):
        parts.append(header)
        parts.extend(lines)
    return _TreeText("".join(parts), hub_own, truncated)


class BridgeCollector(Collector):
    """The families that are not one series per node: the hub's counters, the bridge's own, the truncation."""

    def __init__(self, hub_own: Sequence[tuple[str, str, float]], facts: BridgeFacts, *, truncated: bool) -> None:
        self._hub_own = hub_own
        self._facts = facts
        self.truncated = truncated

    def collect(self) -> Iterator[Metric]:
        for name, own, number in self._hub_own:
            family = GaugeMetricFamily(name, _hub_doc(own))
            family.add_metric([], number)
            yield family
        yield from _bridge_families(self._facts, truncated=self.truncated)


def _bridge_families(facts: BridgeFacts, *, truncated: bool) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "gsmon_web_hub_connected", "1 while the bridge follows the hub", value=1.0 if facts.hub_connected else 0.0
    )
    yield GaugeMetricFamily("gsmon_web_clients", "WebSocket clients of the bridge", value=float(facts.clients))
    yield GaugeMetricFamily(
        "gsmon_web_updates",
        "Node updates the bridge has taken in (a running count)",
        value=float(facts.updates_total),
    )
    yield GaugeMetricFamily(
        "gsmon_metrics_truncated", "1 when max_series cut this scrape short", value=1.0 if truncated else 0.0
    )


def render_metrics(entries: Sequence[Entry], facts: BridgeFacts, *, max_series: int = DEFAULT_MAX_SERIES) -> bytes:
    """The text exposition of ``entries`` (call it off the event loop for a large tree)."""
    tree = _render_tree(entries, facts.hub_time_s, max_series)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BridgeCollector(tree.hub_own, facts, truncated=tree.truncated))
    return tree.text.encode() + generate_latest(registry)


# ----------------------------------------------------------------------
# The library-only rendering: the definition of the output (tests and bench)


class TreeCollector(Collector):
    """Every family over ``entries`` as ``GaugeMetricFamily`` objects: what :func:`render_metrics` must equal."""

    def __init__(self, entries: Sequence[Entry], facts: BridgeFacts, *, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self._entries = entries
        self._facts = facts
        self._max_series = max_series
        self.truncated = False

    def collect(self) -> Iterator[Metric]:
        facts = self._facts
        alert, attention, value, stale, age, alarm, agent_up = (
            GaugeMetricFamily(name, doc, labels=labels) for name, doc, labels in _TREE_FAMILIES
        )
        hub_own: list[Metric] = []
        series = 0
        cap = self._max_series
        for entry in self._entries:
            if series >= cap:
                self.truncated = True
                break
            node = entry.node
            path = node.path
            agent = node.agent or ""
            alert.add_metric([path, node.kind, agent], float(node.alertcode))
            attention.add_metric([path], float(entry.attention))
            stale.add_metric([path], 1.0 if node.stale else 0.0)
            series += 3
            if entry.is_point:
                number = _number(node.value)
                if number is not None:
                    value.add_metric([path, agent], number)
                    series += 1
                if node.received_at_s is not None:
                    age.add_metric([path], max(0.0, facts.hub_time_s - node.received_at_s))
                    series += 1
                if agent == _HUB_AGENT and path.startswith(_AGENTS):
                    name = path[len(_AGENTS) :]
                    agent_up.add_metric([name], 1.0 if node.value == "live" else 0.0)
                    series += 1
                elif agent == _HUB_AGENT and number is not None and not isinstance(node.value, bool):
                    metric = _hub_metric(path)
                    if metric is not None:
                        family = GaugeMetricFamily(metric[0], _hub_doc(metric[1]))
                        family.add_metric([], number)
                        hub_own.append(family)
                        series += 1
            summary = entry.extras.alarm
            if summary is not None and summary.state != "cleared":
                shelved = entry.extras.shelf_id is not None or summary.shelf_id is not None
                alarm.add_metric([path, summary.state, "true" if shelved else "false"], 1.0)
                series += 1
        yield from (alert, attention, value, stale, age, alarm, agent_up)
        yield from hub_own
        yield from _bridge_families(facts, truncated=self.truncated)


def render_metrics_reference(
    entries: Sequence[Entry], facts: BridgeFacts, *, max_series: int = DEFAULT_MAX_SERIES
) -> bytes:
    """The same exposition through prometheus_client alone (0.7-1 s for 100,000 series: not served)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TreeCollector(entries, facts, max_series=max_series))
    return generate_latest(registry)
