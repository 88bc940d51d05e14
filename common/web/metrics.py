"""``GET /metrics``: the live tree in Prometheus's text format, built at scrape time. Pure but for the clock.

Built with ``prometheus_client`` (the Prometheus project's own Python client):
a *custom collector* (:class:`TreeCollector`) yields ``GaugeMetricFamily``
objects over a snapshot of the bridge's entries when Prometheus scrapes, so
updates cost nothing here, and the library does the text format's escaping
(a path with a quote, a backslash or a newline is still one valid label
value) -- see prometheus.github.io/client_python/collector/custom. Each
scrape gets a fresh ``CollectorRegistry`` holding only this collector, because
``?prefix=``/``?min_level=`` make every scrape its own selection. No sample
carries a timestamp (exposed timestamps break Prometheus's staleness handling).

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gsmon.common.web.core import Entry

__all__ = ["CONTENT_TYPE", "DEFAULT_MAX_SERIES", "BridgeFacts", "TreeCollector", "render_metrics"]

DEFAULT_MAX_SERIES: Final = 100_000
#: The classic text format (what ``generate_latest`` writes; Prometheus 2.x reads it).
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
HUB_ROOT: Final = "_hub"
_HUB_AGENT: Final = "_hub"
_AGENTS: Final = "_hub/agents/"
# A hub point becomes part of a metric name only when its name is already a valid, plain one.
_PLAIN_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,62}")


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


class TreeCollector(Collector):
    """Yields the families of the module docstring over ``entries`` (a snapshot: safe off the event loop)."""

    def __init__(self, entries: Sequence[Entry], facts: BridgeFacts, *, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self._entries = entries
        self._facts = facts
        self._max_series = max_series
        self.truncated = False

    def collect(self) -> Iterator[Metric]:
        facts = self._facts
        alert = GaugeMetricFamily(
            "gsmon_alert_level",
            "Alert code of the node (0 none, 10 GREEN, 20 ORANGE, 30 RED, 50 STALE, 100 CRITICAL)",
            labels=["path", "kind", "agent"],
        )
        attention = GaugeMetricFamily(
            "gsmon_attention_level",
            "Worst level of unacknowledged, unshelved alarms at or below the node",
            labels=["path"],
        )
        value = GaugeMetricFamily("gsmon_value", "Value of a numeric or boolean point", labels=["path", "agent"])
        stale = GaugeMetricFamily("gsmon_stale", "1 when the node is STALE", labels=["path"])
        age = GaugeMetricFamily(
            "gsmon_age_seconds", "Seconds since the hub received the point's value", labels=["path"]
        )
        alarm = GaugeMetricFamily(
            "gsmon_alarm_open", "1 per node with an open alarm, by alarm state", labels=["path", "state", "shelved"]
        )
        agent_up = GaugeMetricFamily("gsmon_agent_up", "1 when the agent is live, 0 when silent", labels=["agent"])
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
                    own = path.removeprefix(f"{HUB_ROOT}/")
                    if own != path and _PLAIN_NAME.fullmatch(own):
                        # Prometheus spells units out ("uptime_s" -> "uptime_seconds"; promtool says so).
                        metric = own[:-2] + "_seconds" if own.endswith("_s") else own
                        family = GaugeMetricFamily(f"gsmon_hub_{metric}", f"The hub's own {own} (its _hub/{own} point)")
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
            "gsmon_metrics_truncated", "1 when max_series cut this scrape short", value=1.0 if self.truncated else 0.0
        )


def render_metrics(entries: Sequence[Entry], facts: BridgeFacts, *, max_series: int = DEFAULT_MAX_SERIES) -> bytes:
    """The text exposition of ``entries`` (call it off the event loop for a large tree)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TreeCollector(entries, facts, max_series=max_series))
    return generate_latest(registry)
