"""`gsmon keys subscriber --admin`, `gsmon keys revoke --forget` and `gsmon forget` without a hub to talk to."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsmon.common import cli
from gsmon.common.allowlist import AllowList


@pytest.fixture
def hub_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "hub"
    assert cli.main(["keys", "init", str(folder)]) == 0
    for args in (
        ["keys", "agent", "ant1", "--mount", "GS1/Ant1"],
        ["keys", "subscriber", "ops"],
        ["keys", "subscriber", "root", "--admin"],
    ):
        assert cli.main([*args, "--hub-dir", str(folder), "--out", str(tmp_path / args[2])]) == 0
    return folder


def test_an_admin_subscriber_is_granted_and_listed(hub_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    allow = AllowList.load(hub_dir / "authorized.toml")
    assert (allow.subscribers["root"].admin, allow.subscribers["ops"].admin) == (True, False)
    capsys.readouterr()
    assert cli.main(["keys", "list", "--hub-dir", str(hub_dir)]) == 0
    listing = capsys.readouterr().out
    assert "root" in listing
    assert "everything, administrator" in listing
    assert listing.count("administrator") == 1


def test_revoke_forget_of_a_subscriber_is_bad_usage_and_changes_nothing(
    hub_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["keys", "revoke", "ops", "--hub-dir", str(hub_dir), "--forget"]) == 2
    assert "'ops' is a subscriber" in capsys.readouterr().err
    assert "ops" in AllowList.load(hub_dir / "authorized.toml").subscribers


def test_revoke_forget_without_a_reachable_hub_revokes_and_says_what_to_run_later(
    hub_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gsmon.common import commands

    real = commands.send_command
    monkeypatch.setattr(commands, "send_command", lambda *args, **kwargs: real(*args, **{**kwargs, "timeout_s": 0.3}))
    status = cli.main(["keys", "revoke", "ant1", "--hub-dir", str(hub_dir), "--forget", "--hub", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert status == 1
    assert "ant1" not in AllowList.load(hub_dir / "authorized.toml").agents  # revoked all the same
    assert "is revoked but not forgotten: no answer from the hub at tcp://127.0.0.1:9" in err
    assert f"gsmon forget ant1 --hub QUERY_ENDPOINT --key {hub_dir / 'hub.key_secret'}" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key", "x"], "--key and --hub-key go together"),
        (["--hub", "nope"], "bad endpoint"),
        (["--timeout-s", "0"], "--timeout-s must be positive"),
        (["--key", "/nonexistent.key_secret", "--hub-key", "/nonexistent.key"], "nonexistent"),
    ],
)
def test_forget_with_bad_flags_says_so_and_exits_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["forget", "ant1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("gsmon forget: ")
