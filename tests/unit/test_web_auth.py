"""The bridge's users file, sessions and CSRF/origin rules (common/web/auth.py): pure, no sockets."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from gsmon.common.config import ConfigError
from gsmon.common.web.auth import LoginThrottle, SessionSigner, Users, origin_allowed, set_user

NOW = 1_764_700_000.0


def test_set_user_writes_argon2_hashes_0600_and_keeps_roles(tmp_path: Path) -> None:
    users_file = tmp_path / "users.toml"
    user, new = set_user(users_file, "alice", "s3cret", "operator")
    assert new
    assert user.role == "operator"
    text = users_file.read_text()
    assert "$argon2id$" in text
    assert "s3cret" not in text
    assert stat.S_IMODE(os.stat(users_file).st_mode) == 0o600
    again, new = set_user(users_file, "alice", "other", None)  # a new password keeps the role
    assert not new
    assert again.role == "operator"
    set_user(users_file, "bob", "pw", None)
    users = Users(users_file)
    bob, alice = users.get("bob"), users.get("alice")
    assert bob is not None
    assert bob.role == "viewer"
    assert alice is not None
    assert alice.verify("other")
    assert not alice.verify("s3cret")
    assert not alice.verify("")


def test_a_plain_text_password_in_the_file_is_refused(tmp_path: Path) -> None:
    users_file = tmp_path / "users.toml"
    users_file.write_text('[users."eve"]\nrole = "admin"\npassword = "plain"\n')
    with pytest.raises(ConfigError, match="Argon2"):
        Users(users_file)


def test_session_cookie_round_trip_forgery_expiry_and_password_change(tmp_path: Path) -> None:
    users_file = tmp_path / "users.toml"
    user, _ = set_user(users_file, "alice", "pw", "operator")
    users = Users(users_file, recheck_s=0.0)
    signer = SessionSigner()
    cookie, session = signer.issue(user, NOW)
    checked = signer.check(cookie, users, NOW + 10)
    assert checked is not None
    assert checked.user == "alice"
    assert checked.csrf == session.csrf
    assert checked.may_act
    body, signature = cookie.split(".")
    assert signer.check(f"{body}x.{signature}", users, NOW) is None  # tampered
    assert SessionSigner().check(cookie, users, NOW) is None  # another bridge's key
    assert signer.check(cookie, users, NOW + signer.lifetime_s + 1) is None  # expired
    os.utime(users_file, ns=(1, 1))  # make sure the change is seen even within one mtime tick
    set_user(users_file, "alice", "new password", None)
    assert signer.check(cookie, users, NOW + 10) is None  # the password changed: the old session ends


def test_a_logged_out_session_is_refused_until_it_would_have_expired(tmp_path: Path) -> None:
    """A cookie is signed, not stored: revoke() remembers it; another session of the same user lives on."""
    users_file = tmp_path / "users.toml"
    user, _ = set_user(users_file, "alice", "pw", "operator")
    users = Users(users_file, recheck_s=0.0)
    signer = SessionSigner(lifetime_s=100.0)
    cookie, session = signer.issue(user, NOW)
    other, _ = signer.issue(user, NOW + 1)
    signer.revoke(session, NOW + 5)
    assert signer.check(cookie, users, NOW + 6) is None
    assert signer.check(other, users, NOW + 6) is not None
    later, later_session = signer.issue(user, NOW + 200)
    signer.revoke(later_session, NOW + 201)  # the first one expired meanwhile: forgotten, the new one kept
    assert len(signer._revoked) == 1
    assert signer.check(later, users, NOW + 202) is None


def test_role_change_applies_to_a_live_session(tmp_path: Path) -> None:
    users_file = tmp_path / "users.toml"
    user, _ = set_user(users_file, "carol", "pw", "operator")
    users = Users(users_file, recheck_s=0.0)
    signer = SessionSigner()
    cookie, _ = signer.issue(user, NOW)
    text = users_file.read_text().replace('role = "operator"', 'role = "viewer"')
    users_file.write_text(text + "\n")
    session = signer.check(cookie, users, NOW)
    assert session is not None
    assert session.role == "viewer"
    assert not session.may_act


def test_origin_rules() -> None:
    own = "http://127.0.0.1:7764"
    assert origin_allowed({"Origin": own}, own)
    assert not origin_allowed({"Origin": "http://evil.example"}, own)
    assert origin_allowed({"Referer": own + "/?prefix=GS1"}, own)
    assert not origin_allowed({"Referer": "http://evil.example/x"}, own)
    assert not origin_allowed({"Origin": own, "Sec-Fetch-Site": "cross-site"}, own)
    assert origin_allowed({}, own)  # no Origin nor Referer (a script): the CSRF token alone decides


def test_login_throttle_blocks_a_name_after_its_failures_and_forgets_old_names() -> None:
    throttle = LoginThrottle(3, 60.0, max_names=100)
    for at in (0.0, 1.0):
        throttle.failed("otto", NOW + at)
    assert not throttle.blocked("otto", NOW + 2)
    throttle.failed("otto", NOW + 2)
    assert throttle.blocked("otto", NOW + 3)
    assert not throttle.blocked("vera", NOW + 3)  # per name
    assert not throttle.blocked("otto", NOW + 61)  # the first failure is out of the window
    throttle.succeeded("otto")
    assert not throttle.blocked("otto", NOW + 3)
    # A stream of made-up names: the memory stays bounded, and a name's window ends its entry.
    for index in range(1_000):
        throttle.failed(f"guess{index}", NOW + 100 + index * 0.01)
    assert len(throttle) <= 100
    throttle.failed("otto", NOW + 1_000)
    assert len(throttle) == 1  # every guess is older than the window


def test_check_password_verifies_a_hash_for_unknown_names_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown name or wrong password: None either way, and a hash is checked either way (the time taken
    must not tell which names exist)."""
    from gsmon.common.web import auth

    users_file = tmp_path / "users.toml"
    set_user(users_file, "alice", "pw", "operator")
    users = Users(users_file)
    checked: list[str] = []

    class Counting:
        """The module's hasher, counting what it verifies (PasswordHasher's own attributes are read-only)."""

        def __init__(self, real: Any) -> None:
            self.real = real

        def verify(self, hashed: str, password: str) -> bool:
            checked.append(hashed)
            return bool(self.real.verify(hashed, password))

        def hash(self, password: str) -> str:
            return str(self.real.hash(password))

    monkeypatch.setattr(auth, "_hasher", Counting(auth._hasher))
    found = users.check_password("alice", "pw")
    assert found is not None
    assert found.name == "alice"
    assert users.check_password("alice", "nope") is None
    assert users.check_password("mallory", "pw") is None
    assert len(checked) == 3
    assert checked[2].startswith("$argon2id$")
    assert checked[2] not in checked[:2]
