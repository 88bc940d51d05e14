"""Two real hubs linked as a pair (issue 17 section 2), one agent publishing to both.

* an ack on A shows on B within 1 s, on the same alarm id;
* SIGKILL the sending hub while a point goes RED: exactly one notification
  reaches the HTTP sink, none repeated after the survivor takes over;
* a shelf made on one hub is the same shelf on the other; the link over CURVE.

On ipc endpoints, so they run without root too. The same pair on hosts of its
own (network namespaces), with the partition a real cable pulled between them,
is test_hub_pair_netns.py.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from harness import HERE, Hub, Processes, gsmon_cli, wait_until
from test_notify import received

from gsmon.common.client import Subscriber
from gsmon.common.commands import send_command

MOUNT = "GS1/ups"
POWER = f"{MOUNT}/Power"
PEER_TIMEOUT_S = "2"


def _set(file: Path, value: Any, alert: str) -> None:
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps([value, alert]))
    tmp.replace(file)


def _query_endpoints(tmp_path: Path) -> tuple[str, str]:
    """Each hub must know its peer's query endpoint before either starts: ipc paths in the test's own
    folder (never a pre-picked TCP port)."""
    return f"ipc://{tmp_path}/hub-a.query", f"ipc://{tmp_path}/hub-b.query"


def _pair(procs: Processes, tmp_path: Path) -> tuple[Hub, Hub]:
    """Hubs ``hub-a`` and ``hub-b``, each with the other's query endpoint as its peer."""
    query_a, query_b = _query_endpoints(tmp_path)
    a = procs.hub("--peer", query_b, "--hub-id", "hub-a",
                  "--peer-timeout-s", PEER_TIMEOUT_S, query=query_a, name="hub-a")  # fmt: skip
    b = procs.hub("--peer", query_a, "--hub-id", "hub-b",
                  "--peer-timeout-s", PEER_TIMEOUT_S, query=query_b, name="hub-b")  # fmt: skip
    return a, b


def _status(hub: Hub, check: list[list[Any]] | None = None) -> dict[str, Any]:
    reply = send_command(hub.query, "pair_status", {"check": check or []}, timeout_s=5.0)
    assert reply.ok, reply.message
    return dict(reply.result)


def _alarms(hub: Hub) -> list[dict[str, Any]]:
    reply = send_command(hub.query, "alarms", {"prefix": POWER}, timeout_s=5.0)
    assert reply.ok, reply.message
    return list(reply.result["alarms"])


def test_an_ack_on_one_hub_shows_on_the_other_within_a_second_on_the_same_alarm_id(
    procs: Processes, tmp_path: Path
) -> None:
    a, b = _pair(procs, tmp_path)
    wait_until(lambda: _status(a)["peer_live"] and _status(b)["peer_live"], what="the two hubs linked")
    assert _status(a)["sender"] is True
    assert _status(b)["sender"] is False  # the lowest hub id sends
    power = tmp_path / "power.json"
    _set(power, 230.0, "GREEN")
    procs.agent([a, b], "ant1", {"points": [{"name": "Power", "file": str(power), "dt": 0.1}]}, mount=MOUNT)
    _set(power, 0.0, "RED")
    [on_a] = wait_until(lambda: _alarms(a), what="the alarm on A")
    [on_b] = wait_until(lambda: _alarms(b), what="the alarm on B")
    assert on_a["id"] == on_b["id"]
    assert on_a["raised_at"] == on_b["raised_at"]

    reply = send_command(a.query, "ack", {"ids": [on_a["id"]], "comment": "on it"}, user="tester")
    assert reply.ok, reply.message
    acked_at = time.monotonic()
    assert reply.result["acked"] == [on_a["id"]]
    acked = wait_until(lambda: [x for x in _alarms(b) if x["state"] == "active_acked"], timeout_s=5.0,
                       interval_s=0.02, what="the ack on B")  # fmt: skip
    took_s = time.monotonic() - acked_at
    assert took_s < 1.0, f"the ack took {took_s:.3f} s to reach B"
    assert acked[0]["id"] == on_a["id"]
    assert acked[0]["ack_comment"] == "on it"
    assert acked[0]["acked_user"] == "tester"

    # The link as hub points (B: live, standby; one op of A's applied).
    got = gsmon_cli("get", "_hub/pair", "--hub", b.query, "--json")
    assert got.returncode == 0, got.stderr
    tree = json.loads(got.stdout)
    pair_points = {path: node["value"] for path, node in tree.items() if isinstance(node, dict)}
    assert pair_points["_hub/pair/peer_live"] is True
    assert pair_points["_hub/pair/sender"] is False
    assert pair_points["_hub/pair/applied"] >= 1

    # And back the other way: an unack on B shows on A.
    reply = send_command(b.query, "unack", {"ids": [on_a["id"]]})
    assert reply.ok, reply.message
    wait_until(lambda: _alarms(a)[0]["state"] == "active_unacked", timeout_s=2.0, what="the unack on A")


def _notify_config(tmp_path: Path, http_at: str) -> Path:
    config = tmp_path / "notify.toml"
    config.write_text(
        f"""
[[receiver]]
name = "hook"
urls = ["{http_at.replace("http://", "json://")}/hook"]

[[route]]
prefix = "GS1"
min_level = "RED"
receivers = ["hook"]
"""
    )
    return config


FAST_NOTIFY = ["--group-wait-s", "0.5", "--group-interval-s", "1", "--startup-grace-s", "0", "--poll-s", "0.2"]


def _notifier(procs: Processes, hub: Hub, config: Path, state: Path, name: str) -> Any:
    process = procs.gsmon(name, "notify", "--hub", hub.query, "--config", str(config), "--state-dir", str(state),
                          *FAST_NOTIFY)  # fmt: skip
    process.wait_for_line("READY ")
    return process


def _titles(http: Any) -> list[str]:
    return [post["body"]["title"] for post in received(http, "POST")]


def _setup(procs: Processes, tmp_path: Path) -> tuple[Hub, Hub, Any, Path, Path]:
    http = procs.start("http", [sys.executable, str(HERE / "http_sink_program.py")])
    http_at = http.ready()["http"]
    a, b = _pair(procs, tmp_path)
    files = {name: tmp_path / f"{name}.json" for name in ("power", "fan")}
    for file in files.values():
        _set(file, 1.0, "GREEN")
    spec = {"points": [{"name": "Power", "file": str(files["power"]), "dt": 0.1},
                       {"name": "Fan", "file": str(files["fan"]), "dt": 0.1}]}  # fmt: skip
    procs.agent([a, b], "ant1", spec, mount=MOUNT)
    config = _notify_config(tmp_path, http_at)
    _notifier(procs, a, config, tmp_path / "notify-a", "notify-a")
    _notifier(procs, b, config, tmp_path / "notify-b", "notify-b")
    return a, b, http, files["power"], files["fan"]


def _raised(http: Any, point: str) -> int:
    return _titles(http).count(f"[gsmon] RAISED RED {MOUNT}/{point}")


def test_sigkill_of_the_sending_hub_loses_no_notification_and_repeats_none(procs: Processes, tmp_path: Path) -> None:
    """Under load (a second agent's 200 counters at 10 Hz into both hubs), with a client of both hubs: the
    client is on B within 5 s of A's SIGKILL, and every RED is notified exactly once."""
    a, b, http, power, fan = _setup(procs, tmp_path)
    load = {"points": [{"name": f"c{index}", "counter": True, "dt": 0.1} for index in range(200)]}
    procs.agent([a, b], "load", load, mount="GS1/load")
    wait_until(lambda: _status(a)["peer_live"] and _status(b)["peer_live"], what="the two hubs linked")
    with Subscriber(f"{a.query},{b.query}", MOUNT, timeout_s=5.0) as client:
        wait_until(lambda: client.poll(0.05) is not None and f"{MOUNT}/Fan" in client.tree, what="the client on A")
        assert client.hub == a.query

        _set(power, 0.0, "RED")  # both hubs raise it; only A's notifier sends, and marks it
        wait_until(lambda: _raised(http, "Power") >= 1, timeout_s=15, what="the first RED notified")
        [alarm] = _alarms(b)
        key = ["hook", alarm["id"], "alarm_raised"]
        wait_until(lambda: _status(b, [key])["delivered"] == [True], what="the delivery mark on B")

        _set(fan, 0.0, "RED")
        a.process.kill()  # while the Fan goes RED: A's notifier has not sent it (its group waits 0.5 s)
        killed = time.monotonic()

        def client_on_b() -> bool:
            client.poll(0.05)
            fan_node = client.tree.get(f"{MOUNT}/Fan")
            return client.hub == b.query and not client.hub_lost and fan_node is not None and fan_node.alertcode == 30

        wait_until(client_on_b, timeout_s=10, what="the client on B, the Fan RED there")
        assert time.monotonic() - killed <= 5.0, "the client took more than 5 s to fail over"
        wait_until(lambda: _status(b)["sender"], timeout_s=10, what="B to take over")
        wait_until(lambda: _raised(http, "Fan") >= 1, timeout_s=15, what="the RED during the takeover notified")
        # The survivor's notifier has had every journal entry and many polls since: nothing comes twice.
        settle_until = time.monotonic() + 3.0
        wait_until(lambda: time.monotonic() > settle_until, timeout_s=5, what="three more seconds of polls")
        assert _raised(http, "Power") == 1, _titles(http)
        assert _raised(http, "Fan") == 1, _titles(http)


def test_a_shelf_made_on_one_hub_is_the_same_shelf_on_the_other_and_ends_on_both(
    procs: Processes, tmp_path: Path
) -> None:
    a, b = _pair(procs, tmp_path)
    wait_until(lambda: _status(a)["peer_live"] and _status(b)["peer_live"], what="the two hubs linked")
    reply = send_command(b.query, "shelve", {"prefix": "GS1/ups", "mode": "timed", "duration_s": 600,
                                             "comment": "UPS swap"}, user="tester")  # fmt: skip
    assert reply.ok, reply.message
    shelf = reply.result["shelf"]

    def shelves(hub: Hub) -> list[dict[str, Any]]:
        return list(send_command(hub.query, "shelves", {}).result["shelves"])

    [copy] = wait_until(lambda: shelves(a), timeout_s=2.0, what="the shelf on A")
    assert (copy["id"], copy["prefix"], copy["comment"], copy["by"]) == (
        shelf["id"],
        "GS1/ups",
        "UPS swap",
        shelf["by"],
    )
    assert copy["ends_at"] == shelf["ends_at"]
    assert send_command(a.query, "unshelve", {"id": shelf["id"]}).ok
    wait_until(lambda: not shelves(b), timeout_s=2.0, what="the shelf ended on B")


def test_with_keys_the_hubs_link_over_curve_when_each_grants_the_others_key_the_pair_service(
    procs: Processes, tmp_path: Path
) -> None:
    from gsmon.common.keys import ClientKeys, load_key_pair, load_public_key

    dirs = {name: tmp_path / name for name in ("a", "b")}
    for folder in dirs.values():
        assert gsmon_cli("keys", "init", str(folder)).returncode == 0
    for me, peer in (("a", "b"), ("b", "a")):  # each hub grants the other's hub key the service "pair"
        granted = gsmon_cli("keys", "subscriber", f"hub-{peer}", "--service", "pair", "--hub-dir", str(dirs[me]),
                            "--public-key", str(dirs[peer] / "hub.key"))  # fmt: skip
        assert granted.returncode == 0, granted.stderr
    query_a, query_b = _query_endpoints(tmp_path)
    hubs = {}
    for me, peer, query, peer_query in (("a", "b", query_a, query_b), ("b", "a", query_b, query_a)):
        hubs[me] = procs.hub("--keys", str(dirs[me]), "--peer", peer_query,
                             "--peer-key", str(dirs[peer] / "hub.key"), "--hub-id", f"hub-{me}",
                             query=query, name=f"hub-{me}")  # fmt: skip
    # The hubs' own key pairs are administrators on their own hubs (the test asks with them).
    curve = {me: ClientKeys(load_key_pair(dirs[me] / "hub.key_secret"), load_public_key(dirs[me] / "hub.key"))
             for me in dirs}  # fmt: skip

    def status(me: str) -> dict[str, Any]:
        reply = send_command(hubs[me].query, "pair_status", {}, curve=curve[me])
        assert reply.ok, reply.message
        return dict(reply.result)

    wait_until(lambda: status("a")["peer_live"] and status("b")["peer_live"], what="the hubs linked over CURVE")
    assert (status("a")["peer_id"], status("b")["peer_id"]) == ("hub-b", "hub-a")
    args = {"prefix": "GS1", "mode": "timed", "duration_s": 60, "comment": "over CURVE"}
    made = send_command(hubs["a"].query, "shelve", args, curve=curve["a"])
    assert made.ok, made.message

    def shelves_on_b() -> list[Any]:
        return list(send_command(hubs["b"].query, "shelves", {}, curve=curve["b"]).result["shelves"])

    [copy] = wait_until(shelves_on_b, timeout_s=2.0, what="the shelf on B")
    assert copy["id"] == made.result["shelf"]["id"]
