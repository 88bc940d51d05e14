"""gsmon recorder as a real process between a real hub and a real agent, on SQLite and PostgreSQL.

What an operator relies on: every change is in the history, a restart of the
recorder or of the hub leaves an honest gap (never a flat line, never a
duplicate row), and ``gsmon history`` answers in table, CSV and exact JSON.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

from harness import Hub, Process, Processes, gsmon_cli, polled, wait_until

from gsmon.common.client import Subscriber
from gsmon.common.recorder.core import Why

SPEC = {
    "parents": {"Drive": None},
    "points": [
        {"name": "count", "parent": "Drive", "counter": True, "dt": 0.1},
        {"name": "mode", "parent": "Drive", "value": "TRACK", "dt": 0.2},
    ],
}
COUNT = "GS1/Ant1/Drive/count"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def recorder(procs: Processes, hub: Hub, url: str, *extra: str, name: str = "recorder") -> Process:
    process = procs.gsmon(name, "recorder", "--hub", hub.query, "--db", url, "--commit-interval-s", "0.1", *extra)
    process.wait_for_line("READY recorder", timeout_s=30)
    return process


def history(url: str, *args: str) -> Any:
    result = gsmon_cli("history", *args, "--db", url, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def counts(url: str) -> tuple[list[int], list[dict[str, Any]]]:
    answer = history(url, COUNT, "--since", "10m")
    return [sample["value"] for sample in answer["samples"]], answer["gaps"]


def hub_count(sub: Subscriber) -> int:
    node = sub.tree.get(COUNT)
    return int(node.value) if node is not None else 0


def test_records_the_live_tree_and_answers_in_json_csv_and_table(procs: Processes, history_url: str) -> None:
    hub = procs.hub()
    procs.agent(hub, "ant1", SPEC, mount="GS1/Ant1")
    recorder(procs, hub, history_url, "GS1/")
    # What the hub published, as a second subscriber saw it (the agent coalesces polls between two
    # sends under load, so "every poll" is not what the hub publishes; every published change is).
    published: set[int] = set()
    with Subscriber(hub.query, COUNT) as sub:

        def seen() -> int:
            for change in sub.poll(0.05):
                if change.new is not None:
                    published.add(int(change.new.value))
            return len(published)

        wait_until(lambda: seen() >= 20, timeout_s=30, what="20 published counter values")
        wait_until(lambda: counts(history_url)[0][-1] >= max(published), timeout_s=30, what="the recorder to catch up")
    values, gaps = counts(history_url)
    assert values == sorted(values)
    assert len(set(values)) == len(values)  # every value once, in order
    assert published - {min(published)} <= set(values)  # every change the hub published (after the first)
    assert gaps == []
    answer = history(history_url, COUNT, "--since", "10m")
    sample = answer["samples"][0]
    assert ISO.match(sample["t"])
    assert ISO.match(answer["from"])
    assert set(sample) >= {"t", "value", "level", "level_str", "context"}
    tree = history(history_url, "GS1/", "--at", "now")
    assert tree["points"]["GS1/Ant1/Drive/mode"]["value"] == "TRACK"
    assert "GS1/Ant1/Drive" not in tree["points"]  # parents are derived, not stored
    buckets = history(history_url, COUNT, "--since", "2m", "--buckets", "4")["buckets"]
    assert len(buckets) == 4
    assert sum(bucket["count"] for bucket in buckets) >= 20
    csv = gsmon_cli("history", COUNT, "--since", "10m", "--db", history_url, "--format", "csv")
    assert csv.returncode == 0
    assert csv.stdout.splitlines()[0].startswith("kind,t,")
    table = gsmon_cli("history", COUNT, "--since", "10m", "--db", history_url)
    assert table.returncode == 0
    assert COUNT in table.stdout.splitlines()[0]
    missing = gsmon_cli("history", "GS1/Ant1/Drive/nope", "--db", history_url)
    assert missing.returncode == 1
    assert len(missing.stderr.strip().splitlines()) == 1


def test_a_killed_recorder_restarts_with_an_honest_gap_and_no_duplicates(procs: Processes, history_url: str) -> None:
    hub = procs.hub()
    procs.agent(hub, "ant1", SPEC, mount="GS1/Ant1")
    first = recorder(procs, hub, history_url, "GS1/")
    wait_until(lambda: len(counts(history_url)[0]) >= 10, timeout_s=30, what="rows before the kill")
    with Subscriber(hub.query, "GS1/") as sub:
        first.kill()
        at_kill = wait_until(lambda: polled(sub) and hub_count(sub), what="the counter")
        wait_until(lambda: polled(sub) and hub_count(sub) >= at_kill + 15, what="15 polls while it is down")
    recorder(procs, hub, history_url, "GS1/", name="recorder-again")
    wait_until(lambda: counts(history_url)[0][-1] >= at_kill + 25, timeout_s=30, what="rows after the restart")
    values, gaps = counts(history_url)
    assert len(set(values)) == len(values)
    assert values == sorted(values)  # nothing written twice
    down = [gap for gap in gaps if gap["reason"] == "recorder down"]
    assert len(down) == 1
    missing = sorted(set(range(values[0], values[-1] + 1)) - set(values))
    assert missing, "values polled while the recorder was down cannot be in the history"
    # The gap covers every missing poll: what is not there is shown as not known.
    samples = history(history_url, COUNT, "--since", "10m")["samples"]
    last_before = max(s["t"] for s in samples if s["value"] < missing[0])
    first_after = min(s["t"] for s in samples if s["value"] > missing[-1])
    assert down[0]["from"] <= first_after
    assert down[0]["to"] >= last_before
    assert down[0]["from"] >= last_before  # and claims nothing the recorder did write


def test_a_restarted_hub_leaves_a_gap_and_recording_resumes(procs: Processes, history_url: str) -> None:
    hub = procs.hub()
    procs.agent(hub, "ant1", SPEC, mount="GS1/Ant1")
    recorder(procs, hub, history_url, "GS1/")
    wait_until(lambda: len(counts(history_url)[0]) >= 10, timeout_s=30, what="rows before the hub restart")
    hub.process.kill()
    again = procs.hub(agents=hub.agents, subscribers=hub.subscribers, query=hub.query, name="hub-again")
    with Subscriber(again.query, "GS1/") as sub:
        now_count = wait_until(lambda: polled(sub) and hub_count(sub), timeout_s=15, what="the refilled hub")
    wait_until(lambda: counts(history_url)[0][-1] >= now_count + 10, timeout_s=30, what="rows after the restart")
    values, gaps = counts(history_url)
    assert len(set(values)) == len(values)
    assert values == sorted(values)
    assert [gap["reason"] for gap in gaps] in (["hub restarted"], ["hub lost"])


def first_rows(url: str, path: str) -> int:
    """How many FIRST rows ``path`` has (one per run, plus one after each gap)."""
    import sqlalchemy as sa

    from gsmon.common.recorder.store import Store, paths, samples

    with Store.open(url) as store, store.read() as conn:
        query = (
            sa.select(sa.func.count())
            .select_from(samples.join(paths, paths.c.id == samples.c.path_id))
            .where(paths.c.path == path, samples.c.why == int(Why.FIRST))
        )
        return int(conn.execute(query).scalar() or 0)


def test_a_hub_heard_again_with_nothing_missed_leaves_no_gap_and_no_point_written_again(
    procs: Processes, history_url: str
) -> None:
    """A hub silent past its heartbeats (SIGSTOP) whose counts agree when it is back (nothing was published
    meanwhile): the recorder pauses and resumes; no gap, and no point gets a second FIRST row (the scale
    scenario's false losses -- heartbeats read late from a backlog -- used to write every point twice)."""
    hub = procs.hub()
    procs.agent(hub, "ant1", SPEC, mount="GS1/Ant1")
    process = recorder(procs, hub, history_url, "GS1/")
    wait_until(lambda: len(counts(history_url)[0]) >= 10, timeout_s=30, what="rows before the pause")
    hub.process.signal(signal.SIGSTOP)
    try:
        wait_until(lambda: "the hub is lost" in process.stderr(), timeout_s=20, what="the recorder to see it lost")
    finally:
        hub.process.signal(signal.SIGCONT)
    wait_until(lambda: "nothing missed" in process.stderr(), timeout_s=20, what="the recording to resume")
    before = counts(history_url)[0][-1]
    wait_until(lambda: counts(history_url)[0][-1] >= before + 10, timeout_s=30, what="rows after the pause")
    values, gaps = counts(history_url)
    assert gaps == []
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    assert first_rows(history_url, COUNT) == 1


def test_a_recorder_started_before_its_hub_waits_for_it(procs: Processes, history_url: str) -> None:
    first = procs.hub()
    first.process.kill()  # the endpoints are known and nothing answers on them: a hub not yet up
    early = procs.gsmon("recorder", "recorder", "--hub", first.query, "--db", history_url, "GS1/")
    wait_until(lambda: "waiting for the hub" in early.stderr(), timeout_s=30, what="the recorder's waiting line")
    assert early.popen.poll() is None  # it waits; it does not exit
    hub = procs.hub(agents=first.agents, subscribers=first.subscribers, query=first.query, name="hub-up")
    procs.agent(hub, "ant1", SPEC, mount="GS1/Ant1")
    early.wait_for_line("READY recorder", timeout_s=30)

    def rows() -> int:  # 0 until the point's first row is committed (history answers "no history of")
        answer = gsmon_cli("history", COUNT, "--since", "10m", "--db", history_url, "--json")
        return len(json.loads(answer.stdout)["samples"]) if answer.returncode == 0 else 0

    wait_until(lambda: rows() >= 5, timeout_s=30, what="rows once the hub is up")


def test_export_import_moves_the_history_between_backends(procs: Processes, history_url: str, tmp_path: Path) -> None:
    hub = procs.hub()
    procs.agent(hub, "ant1", SPEC, mount="GS1/Ant1")
    process = recorder(procs, hub, history_url, "GS1/")
    wait_until(lambda: len(counts(history_url)[0]) >= 10, timeout_s=30, what="rows to export")
    assert process.stop() == 0  # SIGTERM: commits what it holds and exits cleanly
    dump = tmp_path / "history.jsonl"
    exported = gsmon_cli("history", "export", "--db", history_url, "-o", str(dump))
    assert exported.returncode == 0, exported.stderr
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    imported = gsmon_cli("history", "import", str(dump), "--db", copy)
    assert imported.returncode == 0, imported.stderr
    for path in (COUNT, "GS1/Ant1/Drive/mode"):
        window = ("--from", "1h", "--to", "now")
        copied, original = history(copy, path, *window), history(history_url, path, *window)
        assert copied["samples"] == original["samples"]
        # The copy has the gaps; not the original's coverage (its recorder's own state), so not its tail.
        tail = "not recorded (the recorder is not running, or behind)"
        assert copied["gaps"] == [gap for gap in original["gaps"] if gap["reason"] != tail]
    broken = tmp_path / "broken.jsonl"
    broken.write_text("not json\n")
    refused = gsmon_cli("history", "import", str(broken), "--db", copy)
    assert refused.returncode == 1
    assert "line 1" in refused.stderr
