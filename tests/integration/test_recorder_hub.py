"""The recorder with the hub's commands: history asked through the hub, and contexts (passes) from the tree.

The hub forwards COMMAND "history" to the recorder registered as the
"history" service, and publishes active contexts as points
``_hub/contexts/<kind>/<prefix>``; the recorder follows them live.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import Processes, gsmon_cli, polled, wait_until, wait_until_gone
from test_recorder import COUNT, SPEC, counts, history, recorder

from gsmon.common.client import Subscriber

MODE = "GS1/Ant1/Drive/mode"


def remote(query: str, *args: str) -> Any:
    result = gsmon_cli("history", *args, "--hub", query, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fast_pass_config(tmp_path: Path) -> Path:
    config = tmp_path / "recorder.toml"
    config.write_text('[[policy]]\npath = "**"\nsave_dt_s = 900\ncontext_save_dt_s = 1\n')
    return config


def test_history_through_the_hub_without_database_credentials(procs: Processes, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    hub = procs.hub()
    alone = gsmon_cli("history", COUNT, "--hub", hub.query)
    assert alone.returncode == 1
    assert "no history service" in alone.stderr
    procs.agent(hub, "ant1", SPEC, mount="GS1/Ant1")
    recorder(procs, hub, url, "GS1/")
    wait_until(lambda: len(counts(url)[0]) >= 10, timeout_s=30, what="rows to ask for")
    answer = wait_until(
        lambda: gsmon_cli("history", COUNT, "--since", "10m", "--hub", hub.query, "--json"),
        what="an answer through the hub",
    )
    assert answer.returncode == 0, answer.stderr
    through_hub = json.loads(answer.stdout)
    assert [s["value"] for s in through_hub["samples"]][:10] == counts(url)[0][:10]
    tree = remote(hub.query, "GS1/", "--at", "now")
    assert tree["points"][MODE]["value"] == "TRACK"
    status = gsmon_cli("history", "--status", "--hub", hub.query)
    assert status.returncode == 0, status.stderr
    assert "lag_s" in json.loads(status.stdout)
    unknown = gsmon_cli("history", "GS1/none", "--hub", hub.query)
    assert unknown.returncode == 1
    assert "no history of" in unknown.stderr


def test_a_pass_started_at_the_hub_tags_every_row_and_saves_faster(procs: Processes, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    hub = procs.hub()
    procs.agent(hub, "ant1", SPEC, mount="GS1/Ant1")
    recorder(procs, hub, url, "--config", str(fast_pass_config(tmp_path)), "GS1/")
    wait_until(lambda: len(counts(url)[0]) >= 5, timeout_s=30, what="rows before the pass")
    started = gsmon_cli("context", "start", "pass", "GS1", "--id", "P123", "--hub", hub.query)
    assert started.returncode == 0, started.stderr
    with Subscriber(hub.query, "_hub/contexts/") as sub:
        wait_until(
            lambda: polled(sub) and getattr(sub.tree.get("_hub/contexts/pass/GS1"), "value", None) == "P123",
            what="the context in the tree",
        )
    wait_until(
        lambda: len([s for s in history(url, MODE, "--since", "10m")["samples"] if s["context"] == "P123"]) >= 3,
        timeout_s=20,
        what="a heartbeat of the unchanged point every second in the pass",
    )
    stopped = gsmon_cli("context", "stop", "pass", "GS1", "--hub", hub.query)
    assert stopped.returncode == 0, stopped.stderr
    wait_until(
        lambda: history(url, "--contexts", "--since", "10m")["contexts"][0]["to"] is not None,
        what="the pass's end in the history",
    )
    during = history(url, COUNT, "--context", "P123")
    assert during["samples"]
    assert {s["context"] for s in during["samples"]} == {"P123"}
    passes = history(url, "--contexts", "--since", "10m")["contexts"]
    assert [(c["kind"], c["prefix"], c["context"], c["source"]) for c in passes] == [("pass", "GS1", "P123", "tree")]
    count_before = len(history(url, MODE, "--since", "10m")["samples"])
    wait_until(lambda: len(counts(url)[0]) >= len(during["samples"]) + 10, what="rows after the pass")
    # The rows written after the pass ended (a fixed "last 3 s" could still reach into the pass).
    ended = datetime.fromisoformat(passes[0]["to"])
    after = [s for s in history(url, COUNT, "--since", "10m")["samples"] if datetime.fromisoformat(s["t"]) > ended]
    assert after
    assert all(s["context"] is None for s in after)
    assert len(history(url, MODE, "--since", "10m")["samples"]) <= count_before + 1  # back to 900 s


def test_an_offline_context_tags_what_was_recorded_in_its_interval(procs: Processes, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    hub = procs.hub()
    procs.agent(hub, "ant1", SPEC, mount="GS1/Ant1")
    process = recorder(procs, hub, url, "GS1/")
    wait_until(lambda: len(counts(url)[0]) >= 30, timeout_s=30, what="rows to tag")
    assert process.stop() == 0
    samples = history(url, COUNT, "--since", "10m")["samples"]
    start, end = samples[5]["t"], samples[15]["t"]
    begun = gsmon_cli("context", "start", "pass", "GS1/Ant1", "--id", "OFF1", "--db", url, "--at", start)
    assert begun.returncode == 0, begun.stderr
    ended = gsmon_cli("context", "stop", "pass", "GS1/Ant1", "--db", url, "--at", end)
    assert ended.returncode == 0, ended.stderr
    tagged = [s["context"] for s in history(url, COUNT, "--since", "10m")["samples"]]
    assert tagged[:5] == [None] * 5
    assert tagged[5:15] == ["OFF1"] * 10
    assert tagged[15] is None
    during = history(url, COUNT, "--context", "OFF1")["samples"]
    assert [s["value"] for s in during] == [s["value"] for s in samples[5:15]]
    again = gsmon_cli("context", "stop", "pass", "GS1/Ant1", "--db", url)
    assert again.returncode == 1
    assert "no open pass context" in again.stderr


def test_the_recorders_lag_is_a_live_point_of_the_hubs_tree_until_it_stops(procs: Processes, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    hub = procs.hub()
    procs.agent(hub, "ant1", SPEC, mount="GS1/Ant1")
    process = recorder(procs, hub, url, "--no-serve-history", "GS1/")  # it reports even when not serving
    with Subscriber(hub.query, "_hub/clients/") as sub:
        wait_until(
            lambda: polled(sub) and "_hub/clients/recorder/lag_s" in sub.tree,
            timeout_s=30,
            what="the recorder's lag in the hub's tree",
        )
        lag = sub.tree["_hub/clients/recorder/lag_s"]
        assert isinstance(lag.value, float)
        assert lag.alertstr == "GREEN"
        assert sub.tree["_hub/clients/recorder/reporting"].value is True
        assert {"lag_max_s", "rows_per_s", "queued_rows", "gaps", "errors"} <= {
            path.rsplit("/", 1)[1] for path in sub.tree if path.startswith("_hub/clients/recorder/")
        }
        assert process.stop() == 0
        # A clean stop says so: its figures leave the tree instead of going stale.
        wait_until_gone(sub, "_hub/clients/recorder", timeout_s=15, what="the stopped recorder's figures to go")
