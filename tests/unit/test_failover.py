"""The failover core (gsmon.common.failover.HubChoice): which hub of a pair a client uses. No sockets, no sleeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsmon.common.clone import CloneCore
from gsmon.common.config import ConfigError
from gsmon.common.endpoints import hub_list_problem, split_hubs
from gsmon.common.failover import HubChoice
from gsmon.common.notify.config import read_notify_config
from gsmon.common.recorder.policy import read_recorder_config
from gsmon.common.web.hub_commands import HubCommandClient

A = "tcp://10.0.0.1:7763"
B = "tcp://10.0.0.2:7763"


def test_a_pair_is_written_with_a_comma_and_a_single_endpoint_still_works() -> None:
    assert split_hubs(f"{A},{B}") == (A, B)
    assert split_hubs(f"{A} , {B}") == (A, B)
    assert split_hubs(A) == (A,)
    assert HubChoice(f"{A},{B}").endpoints == (A, B)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"{A},", "endpoint 2 of 2 is empty"),
        (f"{A},{A}", "listed twice"),
        (f"{A},tcp://b", "endpoint 2 of 2 ('tcp://b'): no port"),
        ("nonsense", "no transport"),
    ],
)
def test_a_bad_hub_setting_says_what_is_wrong(text: str, says: str) -> None:
    problem = hub_list_problem(text)
    assert problem is not None
    assert says in problem
    with pytest.raises(ValueError, match=r"bad (hub endpoint\(s\)|endpoint) "):
        split_hubs(text)


def test_connecting_tries_the_current_hub_first_then_the_others() -> None:
    choice = HubChoice((A, B))
    assert choice.order() == (A, B)
    choice.connected(B, now=0.0)  # A did not answer, B did: the hub that answers is used
    assert choice.current == B
    assert choice.order() == (B, A)
    assert choice.switches == 0  # the first connection is not a move
    assert choice.describe() == f"{B} (pair: {A})"


def test_three_missed_heartbeats_make_the_other_hub_due() -> None:
    choice = HubChoice((A, B))
    choice.connected(A, now=0.0)
    choice.tick(now=3.0, last_heartbeat=0.5, interval_s=1.0)  # 2.5 s: not yet lost
    assert not choice.lost
    assert choice.due(3.0) is None
    choice.tick(now=3.6, last_heartbeat=0.5, interval_s=1.0)  # 3.1 s without one
    assert choice.lost
    assert choice.lost_at == pytest.approx(3.5)
    assert not choice.all_lost  # B has not been tried: the views do not say "hub lost" yet
    assert choice.due(3.6) == B
    choice.connected(B, now=3.7)
    assert choice.current == B
    assert choice.switches == 1
    assert choice.last_failover_s == pytest.approx(0.2)
    assert not choice.lost
    assert choice.due(3.7) is None


def test_the_interval_comes_from_the_hub() -> None:
    choice = HubChoice((A, B))
    choice.connected(A, now=0.0)
    choice.tick(now=10.0, last_heartbeat=5.0, interval_s=2.0)  # 5 s < 3 x 2 s
    assert not choice.lost
    choice.tick(now=11.5, last_heartbeat=5.0, interval_s=2.0)
    assert choice.lost


def test_a_failed_query_makes_the_other_hub_due_at_once() -> None:
    choice = HubChoice((A, B))
    choice.connected(A, now=0.0)
    choice.tick(now=1.0, last_heartbeat=0.9, interval_s=1.0)
    choice.query_failed(now=1.0)
    assert choice.due(1.0) == B


def test_no_flapping_the_preferred_hub_coming_back_changes_nothing() -> None:
    choice = HubChoice((A, B))
    choice.connected(A, now=0.0)
    choice.tick(now=4.0, last_heartbeat=0.0, interval_s=1.0)
    choice.connected(B, now=4.1)
    # A is back and would answer; B's heartbeats keep coming: the client stays on B.
    for now in (5.0, 10.0, 100.0):
        choice.tick(now=now, last_heartbeat=now - 0.5, interval_s=1.0)
        assert choice.due(now) is None
    assert choice.current == B
    assert choice.switches == 1
    # B dies: back to A, by the same rule.
    choice.tick(now=104.0, last_heartbeat=100.0, interval_s=1.0)
    assert choice.due(104.0) == A


def test_both_gone_is_hub_lost_and_attempts_are_spaced() -> None:
    choice = HubChoice((A, B), retry_s=1.0)
    choice.connected(A, now=0.0)
    choice.tick(now=4.0, last_heartbeat=0.0, interval_s=1.0)
    assert choice.due(4.0) == B
    choice.attempt_failed(B, now=4.5)
    assert choice.all_lost  # now the views say "hub lost"
    assert choice.due(5.0) is None  # not before retry_s
    assert choice.next_due() == pytest.approx(5.5)
    assert choice.due(5.5) == B
    # A comes back first (its heartbeats resume on the old sockets): the client stays with A.
    choice.tick(now=6.0, last_heartbeat=5.9, interval_s=1.0)
    assert not choice.lost
    assert not choice.all_lost
    assert choice.due(6.0) is None
    assert choice.current == A
    assert choice.switches == 0


def test_three_hubs_are_tried_round_robin() -> None:
    c = "tcp://10.0.0.3:7763"
    choice = HubChoice((A, B, c), retry_s=0.5)
    choice.connected(A, now=0.0)
    choice.query_failed(now=1.0)
    assert choice.due(1.0) == B
    choice.attempt_failed(B, now=1.0)
    assert not choice.all_lost
    assert choice.due(1.5) == c
    choice.attempt_failed(c, now=1.5)
    assert choice.all_lost
    assert choice.due(2.0) == B


def test_a_single_hub_never_fails_over() -> None:
    choice = HubChoice(A)
    choice.connected(A, now=0.0)
    choice.tick(now=100.0, last_heartbeat=0.0, interval_s=1.0)
    assert choice.lost
    assert choice.due(100.0) is None
    assert choice.next_due() is None
    assert choice.all_lost  # nothing else to try: the one hub gone is every hub gone


def test_an_endpoint_not_given_is_refused() -> None:
    choice = HubChoice((A, B))
    with pytest.raises(ValueError, match="is not one of"):
        choice.connected("tcp://10.9.9.9:7763", now=0.0)
    with pytest.raises(ValueError, match="listed twice"):
        HubChoice((A, A))


def test_a_forked_clone_applies_nothing_of_the_other_hub_before_its_snapshot() -> None:
    """The sync state is the hub's own: the fork keeps the view, never the epoch, seqs or counters."""
    core = CloneCore("GS1/", "client-1", 7)
    core.epoch = 111
    fork = core.fork()
    assert fork.epoch is None
    assert fork.wants_snapshot
    assert fork.tree == core.tree
    assert fork.prefix == core.prefix
    assert fork.client_epoch == core.client_epoch
    first = core.hello(0.0).request_id
    assert fork.hello(0.0).request_id == first + 1  # request ids go on counting over the client's life


def test_the_recorder_and_the_notifier_take_a_pair_in_their_files_and_flags(tmp_path: Path) -> None:
    pair = f"{A},{B}"
    recorder = tmp_path / "recorder.toml"
    recorder.write_text(f'[recorder]\nhub = ["{A}", "{B}"]\n')
    assert read_recorder_config(recorder).hub == pair
    assert read_recorder_config(None, {"recorder.hub": (pair, "--hub")}).hub == pair
    notify = tmp_path / "notify.toml"
    notify.write_text(f'[notify]\nhub = "{A}, {B}"\n')
    assert read_notify_config(str(notify), {}, []).hub == pair
    with pytest.raises(ConfigError, match=r"--hub: .*listed twice"):
        read_notify_config(None, {"notify.hub": (f"{A},{A}", "--hub")}, [])


def test_commands_go_to_the_hub_the_view_uses() -> None:
    """The web bridge's command client and a one-shot sender share the view's HubChoice: the current hub first."""
    choice = HubChoice((A, B))
    client = HubCommandClient(choice)
    assert client.hub == A
    choice.connected(B, now=5.0)  # the feed moved to B
    assert client.hub == B
    assert choice.order() == (B, A)  # what send_command tries, in turn
