"""The hub's allow-list (gsmon.hub.auth): parsing, every error, the path rules, reloading. No sockets."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.public
import pytest
import zmq
from hypothesis import assume, given
from hypothesis import strategies as st
from zmq.utils import z85

from gsmon.common import keys, names
from gsmon.common.allowlist import AgentGrant, AllowList, AllowListError, SubscriberGrant
from gsmon.hub import auth
from gsmon.hub.auth import HubAuthenticator


def _fixed_public_key(seed: str) -> str:
    """A real CURVE public key (Z85) made from a fixed secret: parametrized test ids hold it, and they must
    be the same in every process (pytest-xdist's workers), so no random key."""
    secret = nacl.public.PrivateKey(hashlib.sha256(seed.encode()).digest())
    return z85.encode(bytes(secret.public_key)).decode("ascii")


KEY_A = _fixed_public_key("a")
KEY_B = _fixed_public_key("b")
KEY_S = _fixed_public_key("s")
KEY_T = _fixed_public_key("t")

EXAMPLE = f"""
[agents.ant1]
public_key = "{KEY_A}"
mounts = ["GS1/Antenna1"]

[agents."Rack 2"]
public_key = "{KEY_B}"
mounts = ["GS1/Rack2", "GS2"]

[subscribers.ops]
public_key = "{KEY_S}"
prefixes = ["GS1/"]

[subscribers.everything]
public_key = "{KEY_T}"
"""


@pytest.fixture
def example() -> AllowList:
    return AllowList.parse(EXAMPLE, "authorized.toml")


# -- parsing -------------------------------------------------------------------------------


def test_the_example_parses(example: AllowList) -> None:
    assert sorted(example.agents) == ["Rack 2", "ant1"]
    assert example.agents["Rack 2"].mounts == ("GS1/Rack2", "GS2")
    assert example.subscribers["ops"].prefixes == ("GS1/",)
    assert example.subscribers["everything"].prefixes is None
    assert len(example) == 4
    assert not example.is_empty
    assert AllowList.parse("", "x").is_empty


def test_lookups_by_key(example: AllowList) -> None:
    agent = example.agent_for_key(KEY_A)
    assert agent is not None
    assert agent.name == "ant1"
    assert example.agent_for_key(KEY_A.encode()) == agent  # ZAP hands keys over as bytes
    assert example.agent_for_key(KEY_S) is None  # a subscriber's key is no agent's
    assert example.subscriber_for_key(KEY_A) is None
    sub = example.subscriber_for_key(KEY_S)
    assert sub is not None
    assert sub.name == "ops"
    assert example.grant_for_key(keys.generate_key_pair().public_text) is None
    assert example.grant_for_key(None) is None
    assert example.grant_for_key(b"\xff" * 40) is None


def test_the_mappings_are_read_only(example: AllowList) -> None:
    with pytest.raises(TypeError):
        example.agents["x"] = example.agents["ant1"]  # type: ignore[index]


def _entry_error(text: str) -> str:
    with pytest.raises(AllowListError) as info:
        AllowList.parse(text, "/etc/gsmon/keys/authorized.toml")
    message = str(info.value)
    assert message.startswith("/etc/gsmon/keys/authorized.toml: ")
    return message


def agent(name: str = "ant1", key: str = KEY_A, mounts: str = '["GS1/Antenna1"]', extra: str = "") -> str:
    return f'[agents.{name}]\npublic_key = "{key}"\nmounts = {mounts}\n{extra}'


def subscriber(name: str = "ops", key: str = KEY_S, prefixes: str | None = None, extra: str = "") -> str:
    lines = f'[subscribers.{name}]\npublic_key = "{key}"\n'
    if prefixes is not None:
        lines += f"prefixes = {prefixes}\n"
    return lines + extra


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[agents.ant1\n", "not valid TOML"),
        ("[agent.ant1]\npublic_key = 'x'\n", "unknown top-level entries ['agent']"),
        ("title = 'x'\n", "unknown top-level entries ['title']"),
        ("agents = 3\n", "'agents' must be a table"),
        ("[agents]\nant1 = 3\n", "[agents.ant1]: must be a table"),
        (agent(extra="owner = 'me'\n"), "[agents.ant1]: unknown fields ['owner']"),
        # A misspelt 'prefixes' must not leave a subscriber allowed everything.
        (subscriber(extra="prefix = ['GS1/']\n"), "[subscribers.ops]: unknown fields ['prefix']"),
        ("[agents.ant1]\nmounts = ['GS1/A']\n", "[agents.ant1]: missing public_key"),
        (f"[agents.ant1]\npublic_key = '{KEY_A}'\n", "[agents.ant1]: missing mounts"),
        ("[subscribers.ops]\nprefixes = ['GS1/']\n", "[subscribers.ops]: missing public_key"),
        (agent(key="tooshort"), "[agents.ant1]: public_key must be 40 characters of Z85"),
        (agent(key="~" * 40), "[agents.ant1]: public_key must be 40 characters of Z85"),
        (agent(key="#" * 40), "[agents.ant1]: public_key is not valid Z85"),
        (agent(key="é" * 40), "non-ASCII"),
        ("[agents.ant1]\npublic_key = 42\nmounts = ['GS1/A']\n", "public_key must be a Z85 string"),
        (agent(mounts='"GS1/Antenna1"'), "[agents.ant1]: mounts must be a list"),
        (agent(mounts="[]"), "[agents.ant1]: mounts must be a non-empty list"),
        (agent(mounts='["_hub/x"]'), "[agents.ant1]: invalid mount path '_hub/x'"),
        (agent(mounts='["GS1//x"]'), "must not be empty"),
        (agent(mounts='["GS1/A\\u0007"]'), "control characters"),
        (agent(mounts="[3]"), "a path must be a str"),
        (agent(mounts='["GS1/A", "GS1/A"]'), "lists a path twice"),
        (agent(name='"a/b"'), "[agents.\"a/b\"]: invalid agent name 'a/b'"),
        (agent(name='" "'), "invalid agent name"),
        (subscriber(prefixes="[]"), "[subscribers.ops]: prefixes is empty"),
        (subscriber(prefixes='[""]'), "an empty prefix would grant everything"),
        (subscriber(prefixes='["/"]'), "an empty prefix would grant everything"),
        (subscriber(prefixes='"GS1/"'), "prefixes must be a list"),
        (subscriber(prefixes="[1]"), "prefixes must hold strings"),
        (subscriber(prefixes='["GS1//"]'), "invalid prefix"),
        (subscriber(prefixes='["GS1", "GS1/"]'), "twice"),
        (subscriber(name='"x\\ty"'), "invalid subscriber name"),
        (agent() + agent(name="ant2"), "[agents.ant2]: public_key " + KEY_A + " is already granted to 'ant1'"),
        (agent() + subscriber(key=KEY_A), "[subscribers.ops]: public_key " + KEY_A + " is already granted"),
        (agent(name="x") + subscriber(name="x"), "[subscribers.x]: the name 'x' is already used"),
    ],
)
def test_every_error_names_the_file_and_the_entry(text: str, expected: str) -> None:
    assert expected in _entry_error(text)


# -- the publish rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "agent_name", "path", "allowed"),
    [
        (KEY_A, "ant1", "GS1/Antenna1", True),  # the mount itself
        (KEY_A, "ant1", "GS1/Antenna1/Azimuth", True),
        (KEY_A, "ant1", "GS1/Antenna1/Drive/Motor 2", True),
        (KEY_A, "ant1", "GS1/Antenna10", False),  # a sibling sharing a string prefix
        (KEY_A, "ant1", "GS1/Antenna10/Azimuth", False),
        (KEY_A, "ant1", "GS1", False),  # a parent of the mount
        (KEY_A, "ant1", "GS1/Antenna2/x", False),
        (KEY_A, "ant1", "_hub/agents/ant1", False),
        (KEY_A, "Rack 2", "GS1/Rack2/x", False),  # speaking for another agent
        (KEY_B, "ant1", "GS1/Antenna1/x", False),
        (KEY_B, "Rack 2", "GS2/anything", True),
        (KEY_S, "ops", "GS1/Antenna1", False),  # a subscriber's key
        (None, "ant1", "GS1/Antenna1", False),  # no User-Id: no ZAP vouched for it
        (KEY_A, "ant1", "GS1/Antenna1//x", False),  # invalid paths are never allowed
        (KEY_A, "ant1", "GS1/Antenna1/\x00", False),
        (KEY_A, "ant1", "GS1/Antenna1/", False),
    ],
)
def test_an_agent_key_publishes_only_under_its_own_name_and_mounts(
    example: AllowList, key: str | None, agent_name: str, path: str, allowed: bool
) -> None:
    """The hub's per-message rule: the key's agent grant, under its own name, at or below one of its mounts.

    Invalid paths never reach it (the decoder refuses them, :func:`names.check_path`)."""
    grant = example.agent_for_key(key)
    valid = True
    try:
        names.check_path(path)
    except names.InvalidNameError:
        valid = False
    assert (valid and grant is not None and grant.name == agent_name and grant.covers(path)) is allowed


paths = st.lists(st.sampled_from(["a", "b", "ab", "a b", "ba", "aa"]), min_size=1, max_size=5).map("/".join)


@given(mount=paths, path=paths)
def test_publish_rule_is_segment_wise(mount: str, path: str) -> None:
    """Allowed exactly when the path's leading segments are the mount's segments -- never a string prefix."""
    allow_list = AllowList([AgentGrant("ag", KEY_A, (mount,))])
    expected = names.split(path)[: len(names.split(mount))] == names.split(mount)
    assert allow_list.agents["ag"].covers(path) is expected


# -- the subscribe rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "allowed"),
    [
        ("GS1/", True),
        ("GS1/Antenna1/", True),
        ("GS1/Ant", True),  # narrower than the grant: every match is still under GS1/
        ("GS1", False),  # would also match GS10/...
        ("GS", False),
        ("", False),  # everything
        ("GS10/", False),
        ("GS2/", False),
        (b"GS1/Antenna1", True),  # the raw XPUB subscription, as bytes
        (b"GS1/\xff", False),  # not UTF-8
    ],
)
def test_may_subscribe_with_a_grant(example: AllowList, prefix: str | bytes, allowed: bool) -> None:
    assert example.may_subscribe(KEY_S, prefix) is allowed


def test_may_subscribe_without_a_grant_is_everything(example: AllowList) -> None:
    assert example.may_subscribe(KEY_T, "")
    assert example.may_subscribe(KEY_T, "_hub/")
    assert not example.may_subscribe(KEY_A, "GS1/")  # an agent's key is not a subscriber's
    assert not example.may_subscribe(None, "GS1/")


def test_a_grant_without_slash_means_the_subtree() -> None:
    """``GS1/Antenna1`` as a grant is the subtree ``GS1/Antenna1/``: it never covers ``GS1/Antenna10``."""
    allow_list = AllowList(subscribers=[SubscriberGrant("ops", KEY_S, ("GS1/Antenna1",))])
    assert allow_list.subscribers["ops"].prefixes == ("GS1/Antenna1/",)
    assert allow_list.may_subscribe(KEY_S, "GS1/Antenna1/")
    assert not allow_list.may_subscribe(KEY_S, "GS1/Antenna1")
    assert not allow_list.may_subscribe(KEY_S, "GS1/Antenna10/")
    assert allow_list.may_subscribe(KEY_S, "GS1/Antenna1/Azimuth")
    assert not allow_list.may_subscribe(KEY_S, "GS1")  # its rollup also summarises other subtrees
    assert not allow_list.may_subscribe(KEY_A, "GS1/Antenna1/")


topic_text = st.text(alphabet="ab /", max_size=8)


@given(grant=paths, tail=topic_text, cut=st.integers(min_value=0, max_value=30), rest=topic_text)
def test_subscribe_rule_no_leak_and_no_more_than_needed(grant: str, tail: str, cut: int, rest: str) -> None:
    """A prefix cut from ``grant + "/" + tail`` is allowed exactly when it keeps the whole ``grant/``;
    and an allowed prefix never matches a topic outside the grant, whatever follows it."""
    allow_list = AllowList(subscribers=[SubscriberGrant("ops", KEY_S, (grant,))])
    prefix = (grant + "/" + tail)[:cut]
    allowed = allow_list.may_subscribe(KEY_S, prefix)
    assert allowed is (len(prefix) > len(grant))
    if allowed:
        assert allow_list.may_subscribe(KEY_S, prefix + rest)


@given(grant=paths, other=paths, rest=topic_text)
def test_a_prefix_outside_the_grant_is_refused(grant: str, other: str, rest: str) -> None:
    topic = other + "/" + rest
    # Outside: neither the granted node itself (grant "ab/ab", other "ab", rest "ab")
    # nor anything under it.
    assume(not (topic + "/").startswith(grant + "/"))
    allow_list = AllowList(subscribers=[SubscriberGrant("ops", KEY_S, (grant,))])
    assert not allow_list.may_subscribe(KEY_S, topic)


# -- writing -------------------------------------------------------------------------------


def test_dumps_round_trips(example: AllowList) -> None:
    assert AllowList.parse(example.dumps(), "x") == example


name_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"), min_size=1, max_size=20
).filter(lambda s: not s.isspace())


@given(agent_name=name_text, sub_name=name_text, mount=name_text)
def test_dumps_round_trips_any_valid_name(agent_name: str, sub_name: str, mount: str) -> None:
    """Quotes, backslashes, spaces and non-ASCII names survive the TOML written by dumps()."""
    # An agent name may not start with "_" (reserved for the hub: names.check_agent_name); a mount neither.
    assume(agent_name != sub_name and not agent_name.startswith("_") and not mount.startswith("_"))
    original = AllowList([AgentGrant(agent_name, KEY_A, (mount,))], [SubscriberGrant(sub_name, KEY_S, (mount + "/x",))])
    assert AllowList.parse(original.dumps(), "x") == original


def test_with_grant_and_without(example: AllowList) -> None:
    new_key = keys.generate_key_pair().public_text
    bigger = example.with_grant(AgentGrant("ant3", new_key, ("GS1/Antenna3",)))
    assert "ant3" in bigger.agents
    assert "ant3" not in example.agents  # lists are immutable
    with pytest.raises(AllowListError, match="already used"):
        bigger.with_grant(SubscriberGrant("ant3", keys.generate_key_pair().public_text))
    smaller = bigger.without("ops").without("ant3")
    assert sorted([*smaller.agents, *smaller.subscribers]) == ["Rack 2", "ant1", "everything"]
    with pytest.raises(KeyError):
        smaller.without("ops")


# -- loading the file -------------------------------------------------------------------------


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    return folder


def write(path: Path, text: str, file_mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(file_mode)
    return path


def test_load_reads_the_file_and_names_it(keys_dir: Path) -> None:
    path = write(keys_dir / "authorized.toml", EXAMPLE)
    assert AllowList.load(path) == AllowList.parse(EXAMPLE)
    write(path, agent(mounts="[]"))
    with pytest.raises(AllowListError, match=f"^{path}: \\[agents.ant1\\]"):
        AllowList.load(path)


def test_a_world_readable_allow_list_is_fine(keys_dir: Path) -> None:
    """It holds public keys only; what matters is who may *write* it."""
    assert len(AllowList.load(write(keys_dir / "authorized.toml", EXAMPLE, 0o644))) == 4


@pytest.mark.parametrize("file_mode", [0o620, 0o602, 0o666])
def test_an_allow_list_others_may_write_is_refused(keys_dir: Path, file_mode: int) -> None:
    path = write(keys_dir / "authorized.toml", EXAMPLE, file_mode)
    with pytest.raises(AllowListError, match=f"mode {file_mode:04o}.*chmod 600 {path}"):
        AllowList.load(path)


def test_an_allow_list_in_a_folder_others_may_write_is_refused(keys_dir: Path) -> None:
    path = write(keys_dir / "authorized.toml", EXAMPLE)
    keys_dir.chmod(0o777)
    with pytest.raises(AllowListError, match=f"chmod 700 {keys_dir}"):
        AllowList.load(path)


def test_missing_odd_and_binary_files_are_refused(keys_dir: Path) -> None:
    with pytest.raises(AllowListError, match=r"not found.*gsmon keys init"):
        AllowList.load(keys_dir / "authorized.toml")
    (keys_dir / "dir.toml").mkdir()
    with pytest.raises(AllowListError, match="not a regular file"):
        AllowList.load(keys_dir / "dir.toml")
    (keys_dir / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(AllowListError, match="not UTF-8"):
        AllowList.load(keys_dir / "bin.toml")


# -- reloading (HubAuthenticator, not started: no ZAP thread, no sockets) ------------------------


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx = zmq.Context()
    yield ctx
    ctx.term()


def authenticator(context: zmq.Context[Any], path: Path, settle_s: float = 0.0) -> HubAuthenticator:
    return HubAuthenticator(context, keys.generate_key_pair(), path, settle_s=settle_s)


def test_reload_applies_a_changed_file(context: zmq.Context[Any], keys_dir: Path) -> None:
    path = write(keys_dir / "authorized.toml", EXAMPLE)
    hub = authenticator(context, path)
    assert hub.reload_if_changed()
    assert hub.allow_list.agent_for_key(KEY_A) is not None
    assert not hub.reload_if_changed()  # nothing changed
    keys.replace_private_file(path, AllowList.parse(EXAMPLE).without("ant1").dumps().encode())
    assert hub.reload_if_changed()
    assert hub.allow_list.agent_for_key(KEY_A) is None


def test_a_bad_new_file_keeps_the_old_list_and_is_logged_once(
    context: zmq.Context[Any], keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(keys_dir / "authorized.toml", EXAMPLE)
    hub = authenticator(context, path)
    assert hub.reload_if_changed()
    before = hub.allow_list
    keys.replace_private_file(path, b"[agents.ant1\n")
    with caplog.at_level(logging.ERROR, logger="gsmon.hub.auth"):
        assert not hub.reload_if_changed()
        assert not hub.reload_if_changed()
    assert hub.allow_list is before
    assert "not valid TOML" in caplog.text
    assert len([r for r in caplog.records if "not reloaded" in r.getMessage()]) == 1
    path.unlink()  # a vanished file is an error too, not "nobody"
    assert not hub.reload_if_changed()
    assert hub.allow_list is before
    keys.replace_private_file(path, EXAMPLE.encode())
    assert hub.reload_if_changed()


def test_an_unsafe_new_file_keeps_the_old_list(
    context: zmq.Context[Any], keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(keys_dir / "authorized.toml", EXAMPLE)
    hub = authenticator(context, path)
    assert hub.reload_if_changed()
    path.chmod(0o666)
    with caplog.at_level(logging.ERROR, logger="gsmon.hub.auth"):
        assert not hub.reload_if_changed()
    assert "chmod 600" in caplog.text
    assert len(hub.allow_list) == 4


def test_an_empty_new_file_is_applied(context: zmq.Context[Any], keys_dir: Path) -> None:
    """Revoking the last key must take effect: empty is a valid list that denies everyone."""
    path = write(keys_dir / "authorized.toml", EXAMPLE)
    hub = authenticator(context, path)
    assert hub.reload_if_changed()
    keys.replace_private_file(path, AllowList().dumps().encode())
    assert hub.reload_if_changed()
    assert hub.allow_list.is_empty


def test_a_change_is_applied_once_the_file_has_settled(context: zmq.Context[Any], keys_dir: Path) -> None:
    """A file still being written (seen once, then changed again) is never applied half-way."""
    path = write(keys_dir / "authorized.toml", EXAMPLE)
    hub = authenticator(context, path, settle_s=0.5)
    assert not hub.reload_if_changed(now=100.0)  # first sight: wait
    assert not hub.reload_if_changed(now=100.4)
    assert hub.reload_if_changed(now=100.5)
    # Half a subscriber entry (its prefixes line not yet written) would read as "everything".
    keys.replace_private_file(path, (EXAMPLE + subscriber("late", keys.generate_key_pair().public_text)).encode())
    assert not hub.reload_if_changed(now=200.0)
    keys.replace_private_file(
        path, (EXAMPLE + subscriber("late", keys.generate_key_pair().public_text, '["GS9/"]')).encode()
    )
    assert not hub.reload_if_changed(now=200.3)  # changed again: the clock restarts
    assert not hub.reload_if_changed(now=200.6)
    assert hub.reload_if_changed(now=200.8)
    assert hub.allow_list.subscribers["late"].prefixes == ("GS9/",)


def test_start_refuses_without_curve(
    context: zmq.Context[Any], keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = authenticator(context, write(keys_dir / "authorized.toml", EXAMPLE))
    monkeypatch.setattr(zmq, "has", lambda capability: False)
    with pytest.raises(keys.CurveUnavailableError):
        hub.start()
    assert not hub.is_alive()


def test_start_refuses_an_empty_or_missing_list(context: zmq.Context[Any], keys_dir: Path) -> None:
    hub = authenticator(context, keys_dir / "authorized.toml")
    with pytest.raises(AllowListError, match="not found"):
        hub.start()
    write(keys_dir / "authorized.toml", AllowList().dumps())
    with pytest.raises(AllowListError, match="accept nobody"):
        hub.start()
    assert not hub.is_alive()


def test_from_keys_dir_refuses_an_unsafe_hub_key(context: zmq.Context[Any], keys_dir: Path) -> None:
    keys.create_key_pair(keys_dir, "hub")
    assert HubAuthenticator.from_keys_dir(context, keys_dir).server_public_key == keys.load_public_key(
        keys_dir / "hub.key"
    )
    os.chmod(keys_dir / "hub.key_secret", 0o644)
    with pytest.raises(keys.KeyFileError, match="chmod 600"):
        HubAuthenticator.from_keys_dir(context, keys_dir)


# -- the handshake decision and the per-message helpers -------------------------------------------


def test_the_provider_answers_by_domain_and_denies_on_error(
    context: zmq.Context[Any], keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = authenticator(context, write(keys_dir / "authorized.toml", EXAMPLE))
    assert hub.reload_if_changed()
    provider = auth._AllowListProvider(hub)
    assert provider.callback(auth.AGENTS_DOMAIN, KEY_A.encode())
    assert not provider.callback(auth.SUBSCRIBERS_DOMAIN, KEY_A.encode())  # right key, wrong socket
    assert provider.callback(auth.SUBSCRIBERS_DOMAIN, KEY_S.encode())
    assert not provider.callback(auth.AGENTS_DOMAIN, KEY_S.encode())
    assert not provider.callback(auth.AGENTS_DOMAIN, keys.generate_key_pair().public)
    assert (hub.accepted_handshakes, hub.denied_handshakes) == (2, 3)

    def broken(self: AllowList, key: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(AllowList, "agent_for_key", broken)
    assert not provider.callback(auth.AGENTS_DOMAIN, KEY_A.encode())  # denies, does not raise


def test_sender_key_is_none_without_zap() -> None:
    """A frame that no ZAP handler vouched for has no User-Id: unknown, so every may_* check denies."""
    frame = zmq.Frame(b"payload")
    assert auth.sender_key(frame) is None
