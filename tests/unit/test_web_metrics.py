"""/metrics (common/web/metrics.py): the cached rendering against prometheus_client's own, and the cache's life.

The reference is :func:`render_metrics_reference` (GaugeMetricFamily +
``generate_latest``, the library doing every escape); both outputs are read
back with prometheus_client's own text parser. No sockets, no sleeps.
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from web_support import NOW, Node

from gsmon.common.web.core import BridgeCore
from gsmon.common.web.metrics import (
    BridgeFacts,
    SeriesPrefixes,
    escape_label_value,
    render_metrics,
    render_metrics_reference,
)

FACTS = BridgeFacts(hub_time_s=NOW, hub_connected=True, clients=3, updates_total=42)

# Names a real tree should not hold (the hub refuses control characters) but /metrics must still write validly.
AWKWARD = (
    'GS1/a "quoted" name',
    "GS1/back\\slash\\",
    "GS1/new\nline",
    'GS1/all \\" of\n them \\n',
    "GS1/Ümlaut-Antenne/Δφ_°/温度 ☃",
    "GS1/trailing\\",
    'GS1/"',
)


def awkward_tree() -> dict[str, Node]:
    tree: dict[str, Node] = {"GS1": Node("GS1", kind="parent", value=None, agent=None)}
    values: list[Any] = [1.5, True, False, -3, 12345678901234567890, math.nan, math.inf, -math.inf, "text", None]
    for index, path in enumerate(AWKWARD):
        tree[path] = Node(
            path,
            alertcode=(10, 20, 30, 100, 0, 50, 10)[index],
            stale=index == 5,
            value=values[index % len(values)],
            agent=('agent "one"', "back\\slash", "néw\nline", "rack1", None, "r", "r")[index],
            received_at_s=None if index == 6 else NOW - index * 0.25,
            extra={
                "attention": 30 + index,
                "alarm": {
                    "id": index + 1,
                    "state": ("active_unacked", 'odd "state"\n', "cleared", "rtn_unacked")[index % 4],
                },
                **({"shelf_id": 9} if index == 3 else {}),
            },
        )
    for index, value in enumerate(values):
        path = f"GS1/values/v{index}"
        tree[path] = Node(path, value=value, alertcode=1234 + index)  # user alert codes too
    tree["GS1/values"] = Node("GS1/values", kind="parent", value=None, agent=None, received_at_s=None)
    tree['_hub/agents/agent "one"'] = Node('_hub/agents/agent "one"', agent="_hub", value="live")
    tree["_hub/agents/back\\slash"] = Node("_hub/agents/back\\slash", agent="_hub", value="silent")
    tree["_hub/uptime_s"] = Node("_hub/uptime_s", agent="_hub", value=12.5, alertcode=0)
    tree["_hub/conflicts"] = Node("_hub/conflicts", agent="_hub", value=3, alertcode=0)
    tree["_hub/Not Plain"] = Node("_hub/Not Plain", agent="_hub", value=1, alertcode=0)
    tree["_hub/flag"] = Node("_hub/flag", agent="_hub", value=True, alertcode=0)
    return tree


Sample = tuple[str, tuple[tuple[str, str], ...], str, Any]


def families(text: bytes) -> list[tuple[str, str, str, list[Sample]]]:
    """Every family as prometheus_client's parser reads it: name, help, type, samples (value as repr: NaN == NaN)."""
    return [
        (
            family.name,
            family.documentation,
            family.type,
            [(s.name, tuple(sorted(s.labels.items())), repr(s.value), s.timestamp) for s in family.samples],
        )
        for family in text_string_to_metric_families(text.decode())
    ]


def core_of(tree: dict[str, Node]) -> BridgeCore:
    core = BridgeCore()
    core.apply(tree, reset=True)
    return core


def test_awkward_names_parse_to_the_same_families_and_samples_as_the_library() -> None:
    core = core_of(awkward_tree())
    reference = families(render_metrics_reference(core.entries(), FACTS))
    assert families(render_metrics(core.entries(), FACTS)) == reference
    # And once more from the cache (the first call made it).
    assert families(render_metrics(core.entries(), FACTS)) == reference
    # The parser gives back the names exactly: the escaping is right, not just the same twice.
    by_name = {name: samples for name, _, _, samples in reference}
    alert_paths = {dict(labels)["path"] for _, labels, _, _ in by_name["gsmon_alert_level"]}
    assert set(AWKWARD) <= alert_paths
    agents = {dict(labels)["agent"] for _, labels, _, _ in by_name["gsmon_alert_level"]}
    assert {'agent "one"', "back\\slash", "néw\nline", ""} <= agents
    states = {dict(labels)["state"] for _, labels, _, _ in by_name["gsmon_alarm_open"]}
    assert states == {"active_unacked", 'odd "state"\n', "rtn_unacked"}
    assert {dict(labels)["agent"] for _, labels, _, _ in by_name["gsmon_agent_up"]} == {'agent "one"', "back\\slash"}
    assert "gsmon_hub_uptime_seconds" in by_name
    assert "gsmon_hub_conflicts" in by_name
    assert [value for _, _, value, _ in by_name["gsmon_web_clients"]] == ["3.0"]


def test_selection_and_series_cap_match_the_library() -> None:
    tree = awkward_tree() | {f"GS2/p{i}": Node(f"GS2/p{i}", alertcode=30 if i % 3 else 10) for i in range(60)}
    core = core_of(tree)
    for prefix, min_level in (("GS2", None), ("GS1/values", None), ("", 30), ("_hub", None), ("nothing", None)):
        entries = core.entries(prefix, min_level)
        assert families(render_metrics(entries, FACTS)) == families(render_metrics_reference(entries, FACTS))
    for cap in (1, 3, 4, 50, 10_000):
        fast = render_metrics(core.entries(), FACTS, max_series=cap)
        assert families(fast) == families(render_metrics_reference(core.entries(), FACTS, max_series=cap))
        assert (b"gsmon_metrics_truncated 1.0" in fast) == (cap < 10_000)


def test_output_is_byte_for_byte_the_library_output() -> None:
    """Not required by the format (the families' order is), but it shows nothing moved."""
    core = core_of(awkward_tree())
    assert render_metrics(core.entries(), FACTS) == render_metrics_reference(core.entries(), FACTS)


def test_escape_label_value_is_the_formats_rule() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert escape_label_value("\\n") == "\\\\n"  # backslash first: a literal backslash-n stays two characters
    assert escape_label_value("Δφ ☃") == "Δφ ☃"


def _series(core: BridgeCore, path: str) -> SeriesPrefixes | None:
    entry = core.entry(path)
    assert entry is not None
    return entry.series


def _samples(core: BridgeCore, name: str) -> dict[tuple[tuple[str, str], ...], str]:
    for family, _, _, samples in families(render_metrics(core.entries(), FACTS)):
        if family == name:
            return {labels: value for _, labels, value, _ in samples}
    raise AssertionError(f"no family {name}")


def test_a_value_update_keeps_the_prefixes_and_a_label_change_makes_new_ones() -> None:
    path = 'GS1/"p"'
    core = core_of({path: Node(path, value=1.0)})
    assert _series(core, path) is None  # made at the first scrape, not per update
    render_metrics(core.entries(), FACTS)
    first = _series(core, path)
    assert first is not None
    core.apply({path: Node(path, value=2.0, alertcode=30)})
    assert _series(core, path) is first
    assert _samples(core, "gsmon_value") == {(("agent", "rack1"), ("path", path)): "2.0"}
    assert _samples(core, "gsmon_alert_level") == {(("agent", "rack1"), ("kind", "point"), ("path", path)): "30.0"}

    core.apply({path: Node(path, value=3.0, agent="rack2")})  # another agent owns the path now
    assert _series(core, path) is None
    assert _samples(core, "gsmon_value") == {(("agent", "rack2"), ("path", path)): "3.0"}
    second = _series(core, path)
    assert second is not None
    assert second is not first

    core.apply({path: Node(path, kind="parent", value=None, agent="rack2")})  # a point became a parent
    assert _series(core, path) is None
    assert _samples(core, "gsmon_alert_level") == {(("agent", "rack2"), ("kind", "parent"), ("path", path)): "10.0"}
    assert _samples(core, "gsmon_value") == {}
    assert _samples(core, "gsmon_age_seconds") == {}


def test_a_removed_node_takes_its_prefixes_with_it() -> None:
    path = "GS1/gone"
    core = core_of({path: Node(path), "GS1/kept": Node("GS1/kept")})
    render_metrics(core.entries(), FACTS)
    old = _series(core, path)
    assert old is not None
    core.apply({path: None})
    assert core.entry(path) is None
    assert (("path", path),) not in _samples(core, "gsmon_stale")
    core.apply({path: Node(path, agent="rack9")})  # back, from another agent
    assert _series(core, path) is None
    assert _samples(core, "gsmon_value")[(("agent", "rack9"), ("path", path))] == "1.0"
    assert _series(core, path) is not old

    # A reset without the path removes it too (a new connection to the hub: what is not in it is gone).
    render_metrics(core.entries(), FACTS)
    core.apply({"GS1/kept": Node("GS1/kept")}, reset=True)
    assert core.entry(path) is None
    core.apply({path: Node(path, agent="rack9")})
    assert _series(core, path) is None


def test_prefixes_fit_only_their_own_labels() -> None:
    node = Node("GS1/x", agent="a")
    prefixes = SeriesPrefixes.of(node)
    assert prefixes.fits(Node("GS1/x", agent="a", value=99.0, alertcode=30, stale=True))
    assert not prefixes.fits(Node("GS1/y", agent="a"))
    assert not prefixes.fits(Node("GS1/x", agent="b"))
    assert not prefixes.fits(Node("GS1/x", agent=None))
    assert not prefixes.fits(Node("GS1/x", agent="a", kind="parent"))
