"""Administrators: `admin = true` subscribers of the allow-list, and the hub's own key pair."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from gsmon.common import keys
from gsmon.common.allowlist import AllowList, AllowListError, SubscriberGrant
from gsmon.hub import auth
from gsmon.hub.auth import HubAuthenticator

KEY_ROOT = keys.generate_key_pair().public_text
KEY_OPS = keys.generate_key_pair().public_text

TEXT = f"""
[subscribers.root]
public_key = "{KEY_ROOT}"
admin = true

[subscribers.ops]
public_key = "{KEY_OPS}"
prefixes = ["GS1/"]
admin = false
"""


def test_admin_is_read_written_and_defaults_to_false() -> None:
    allow = AllowList.parse(TEXT)
    assert allow.subscribers["root"].admin is True
    assert allow.subscribers["ops"].admin is False
    assert allow.subscribers["root"].prefixes is None
    assert AllowList.parse(allow.dumps()) == allow
    assert "admin = true" in allow.dumps()
    body = [line for line in allow.dumps().splitlines() if not line.startswith("#")]
    assert body.count("admin = true") == 1  # root's; ops (false) writes none
    plain = AllowList.parse(f'[subscribers.x]\npublic_key = "{KEY_OPS}"\n')
    assert plain.subscribers["x"].admin is False


@pytest.mark.parametrize("value", ['"yes"', "1", "[true]"])
def test_admin_must_be_a_boolean(value: str) -> None:
    with pytest.raises(AllowListError, match=r"\[subscribers.x\]: admin must be true or false"):
        AllowList.parse(f'[subscribers.x]\npublic_key = "{KEY_OPS}"\nadmin = {value}\n')


def test_agents_have_no_admin_field() -> None:
    text = f'[agents.a]\npublic_key = "{KEY_OPS}"\nmounts = ["GS1"]\nadmin = true\n'
    with pytest.raises(AllowListError, match="unknown fields \\['admin'\\]"):
        AllowList.parse(text)


def test_a_grant_made_in_code_checks_admin_too() -> None:
    with pytest.raises(AllowListError, match="admin must be"):
        SubscriberGrant("x", KEY_OPS, admin="true")  # type: ignore[arg-type]


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx = zmq.Context()
    yield ctx
    ctx.term()


def test_the_hubs_own_key_may_handshake_on_the_subscriber_sockets_only(
    context: zmq.Context[Any], tmp_path: Path
) -> None:
    """The hub's own key pair is an administrator (gsmon keys revoke --forget runs on the hub's machine)."""
    path = tmp_path / "authorized.toml"
    path.write_text(TEXT)
    path.chmod(0o600)
    tmp_path.chmod(0o700)
    server = keys.generate_key_pair()
    hub = HubAuthenticator(context, server, path, settle_s=0.0)
    assert hub.reload_if_changed()
    provider = auth._AllowListProvider(hub)
    assert provider.callback(auth.SUBSCRIBERS_DOMAIN, server.public)
    assert not provider.callback(auth.AGENTS_DOMAIN, server.public)  # it publishes nothing
    assert not provider.callback(auth.SUBSCRIBERS_DOMAIN, keys.generate_key_pair().public)
