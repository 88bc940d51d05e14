"""Key files (gsmon.common.keys) and the ``gsmon keys`` command, in temporary folders (no sockets)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth
from hypothesis import given
from hypothesis import strategies as st
from zmq.utils import z85

from gsmon.common import keys
from gsmon.common.allowlist import AllowList
from gsmon.common.cli import main
from gsmon.common.keys import KeyFileError, KeyPair


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """Run with umask 0, so that any mode looser than asked would show: the modes must come from the code."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def private(tmp_path: Path) -> Path:
    """A 0700 folder to put secrets in."""
    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    return folder


# -- creating ------------------------------------------------------------------------


@pytest.mark.usefixtures("umask_zero")
def test_created_files_are_0600_and_folders_0700_whatever_the_umask(tmp_path: Path) -> None:
    """Modes come from os.open/mkdir themselves, so even umask 0 gives 0600 files in 0700 folders."""
    folder = tmp_path / "a" / "b" / "keys"
    pair, public_path, secret_path = keys.create_key_pair(folder, "ant1", {"name": "ant1"})
    assert (public_path, secret_path) == (folder / "ant1.key", folder / "ant1.key_secret")
    assert mode(public_path) == 0o600
    assert mode(secret_path) == 0o600
    for created in (tmp_path / "a", tmp_path / "a" / "b", folder):
        assert mode(created) == 0o700
    assert keys.load_key_pair(secret_path) == pair


@pytest.mark.usefixtures("umask_zero")
def test_replace_private_file_is_0600_and_leaves_no_temporary_file(private: Path) -> None:
    target = private / "authorized.toml"
    target.write_text("old")
    target.chmod(0o644)
    keys.replace_private_file(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600
    assert sorted(p.name for p in private.iterdir()) == ["authorized.toml"]


def test_existing_files_are_never_overwritten(private: Path) -> None:
    pair, public_path, secret_path = keys.create_key_pair(private, "ant1")
    before = secret_path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        keys.create_key_pair(private, "ant1")
    with pytest.raises(KeyFileError, match="already exists"):
        keys.write_public_key(public_path, pair.public)
    assert secret_path.read_bytes() == before


def test_a_planted_symlink_is_not_followed(private: Path, tmp_path: Path) -> None:
    """O_EXCL refuses any existing name, so a symlink cannot redirect a secret elsewhere."""
    elsewhere = tmp_path / "elsewhere"
    (private / "ant1.key_secret").symlink_to(elsewhere)
    with pytest.raises(KeyFileError, match="already exists"):
        keys.write_private_file(private / "ant1.key_secret", b"secret")
    assert not elsewhere.exists()


def test_a_half_written_pair_is_removed(private: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the public file cannot be written the secret one is removed too: never half a pair."""

    def fail(*_args: object, **_kwargs: object) -> Path:
        raise KeyFileError("disk full")

    monkeypatch.setattr(keys, "write_public_key", fail)
    with pytest.raises(KeyFileError, match="disk full"):
        keys.write_key_pair(private, "ant1", keys.generate_key_pair())
    assert list(private.iterdir()) == []


@pytest.mark.parametrize("folder_mode", [0o755, 0o750, 0o701, 0o770])
def test_creating_in_a_loose_folder_is_refused(tmp_path: Path, folder_mode: int) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    folder.chmod(folder_mode)
    with pytest.raises(KeyFileError, match=r"chmod 700") as info:
        keys.create_key_pair(folder, "ant1")
    assert f"{folder_mode:04o}" in str(info.value)
    assert list(folder.iterdir()) == []


def test_a_file_in_the_way_of_a_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "keys").write_text("")
    with pytest.raises(KeyFileError, match="not a folder"):
        keys.ensure_private_dir(tmp_path / "keys")


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "nul\x00", "tab\t"])
def test_key_file_names_are_checked(private: Path, name: str) -> None:
    with pytest.raises(ValueError, match="cannot name a key file"):
        keys.secret_key_path(private, name)


# -- the zcert format --------------------------------------------------------------------


def test_pyzmq_reads_our_files(private: Path) -> None:
    """zmq.auth.load_certificate (pyzmq, czmq format) reads what we write."""
    pair, public_path, secret_path = keys.create_key_pair(private, "ant1", {"name": "ant1", "role": "agent"})
    assert zmq.auth.load_certificate(secret_path) == (pair.public, pair.secret)
    assert zmq.auth.load_certificate(public_path) == (pair.public, None)
    assert zmq.auth.load_certificates(private) == {pair.public: True}


def test_we_read_pyzmq_files(private: Path) -> None:
    """Files from zmq.auth.create_certificates load too (once their modes are made safe)."""
    public_path, secret_path = zmq.auth.create_certificates(private, "hub", {"site": "GS1"})
    Path(secret_path).chmod(0o600)
    public, secret = zmq.auth.load_certificate(secret_path)
    pair = keys.load_key_pair(secret_path)
    assert (pair.public, pair.secret) == (public, secret)
    assert pair.metadata == {"site": "GS1"}
    assert keys.load_public_key(public_path) == public


def test_metadata_round_trips(private: Path) -> None:
    metadata = {"name": "ant1", "role": "agent", "created": "2026-01-02T03:04:05Z", "note": "rack 3, shelf 'B'"}
    _, _, secret_path = keys.create_key_pair(private, "ant1", metadata)
    assert keys.load_key_pair(secret_path).metadata == metadata


@pytest.mark.parametrize(
    "metadata",
    [
        {"public-key-note": "x"},  # pyzmq would take this line as the public key
        {"secret-key": "x"},
        {"bad name": "x"},
        {"": "x"},
        {"name": 'a "quoted" value'},
        {"name": "two\nlines"},
        {"name": "x" * 300},
    ],
)
def test_unsafe_metadata_is_refused(metadata: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="metadata"):
        keys.generate_key_pair(metadata)


def test_repr_never_shows_the_secret() -> None:
    pair = keys.generate_key_pair()
    assert pair.secret.decode() not in repr(pair)
    assert pair.public.decode() in repr(pair)


def test_a_public_key_that_is_not_the_secrets_is_refused() -> None:
    one, other = keys.generate_key_pair(), keys.generate_key_pair()
    with pytest.raises(ValueError, match="does not belong"):
        KeyPair(other.public, one.secret)


@given(st.binary(min_size=32, max_size=32))
def test_every_32_byte_key_in_z85_is_accepted(raw: bytes) -> None:
    encoded = z85.encode(raw)
    assert keys.check_z85_key(encoded) == encoded
    assert keys.check_z85_key(encoded.decode()) == encoded


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("short", "40 characters"),
        ("x" * 41, "40 characters"),
        ("~" * 40, "40 characters"),  # not in the Z85 alphabet
        ("é" * 40, "non-ASCII"),
        ("#" * 40, "not valid Z85"),  # each group overflows 2**32
        (None, "must be a Z85 string"),
        (b"\x00" * 32, "40 characters"),  # raw bytes, not Z85
    ],
)
def test_malformed_keys_are_refused(key: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        keys.check_z85_key(key)


# -- loading: permissions and malformed files --------------------------------------------


@pytest.mark.parametrize("file_mode", [0o644, 0o640, 0o604, 0o660, 0o601])
def test_a_secret_others_can_access_is_refused_with_the_fix(private: Path, file_mode: int) -> None:
    _, _, secret_path = keys.create_key_pair(private, "ant1")
    secret_path.chmod(file_mode)
    with pytest.raises(KeyFileError) as info:
        keys.load_key_pair(secret_path)
    message = str(info.value)
    assert str(secret_path) in message
    assert f"mode {file_mode:04o}" in message
    assert f"chmod 600 {secret_path}" in message


@pytest.mark.parametrize("folder_mode", [0o755, 0o750, 0o711])
def test_a_secret_in_a_loose_folder_is_refused_with_the_fix(private: Path, folder_mode: int) -> None:
    _, _, secret_path = keys.create_key_pair(private, "ant1")
    private.chmod(folder_mode)
    with pytest.raises(KeyFileError) as info:
        keys.load_key_pair(secret_path)
    message = str(info.value)
    assert f"mode {folder_mode:04o}" in message
    assert f"chmod 700 {private}" in message


def test_a_symlink_into_a_loose_folder_is_refused(private: Path, tmp_path: Path) -> None:
    """The folder that really holds the secret counts, not only the folder of the link."""
    loose = tmp_path / "loose"
    _, _, secret_path = keys.create_key_pair(loose, "ant1")
    loose.chmod(0o755)
    link = private / "ant1.key_secret"
    link.symlink_to(secret_path)
    with pytest.raises(KeyFileError, match="chmod 700"):
        keys.load_key_pair(link)


def test_public_keys_load_from_shared_files(tmp_path: Path, private: Path) -> None:
    pair, public_path, _ = keys.create_key_pair(private, "hub")
    shared = tmp_path / "hub.key"
    shared.write_bytes(public_path.read_bytes())
    shared.chmod(0o644)
    assert keys.load_public_key(shared) == pair.public


def test_a_public_only_file_is_not_a_pair(private: Path) -> None:
    _, public_path, _ = keys.create_key_pair(private, "ant1")
    with pytest.raises(KeyFileError, match="only a public key"):
        keys.load_key_pair(public_path)


def test_a_pair_whose_halves_do_not_match_is_refused(private: Path) -> None:
    one, other = keys.generate_key_pair(), keys.generate_key_pair()
    text = f'curve\n    public-key = "{other.public_text}"\n    secret-key = "{one.secret.decode()}"\n'
    keys.write_private_file(private / "odd.key_secret", text.encode())
    with pytest.raises(KeyFileError, match="does not belong"):
        keys.load_key_pair(private / "odd.key_secret")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "no public-key"),
        (b"hello\n", "no public-key"),
        (b"metadata\n    public-key = 'x'\n", "no public-key"),  # in the wrong section
        (b'curve\n    public-key = "short"\n', "40 characters"),
        (b"curve\n    public-key\n", "expected 'name = value'"),
        (b'curve\n    public-key = "a"\n    public-key = "b"\n', "appears twice"),
        (b"\xff\xfe", "not UTF-8"),
        (b"#" * (65 * 1024), "larger than"),
    ],
)
def test_malformed_key_files_are_refused(private: Path, content: bytes, why: str) -> None:
    path = keys.write_private_file(private / "bad.key_secret", content)
    with pytest.raises(KeyFileError, match=why) as info:
        keys.load_key_pair(path)
    assert str(path) in str(info.value)


def test_missing_and_odd_files_are_reported(private: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        keys.load_key_pair(private / "nope.key_secret")
    with pytest.raises(KeyFileError, match="does not exist"):
        keys.load_public_key(private / "nope.key")
    (private / "dir.key").mkdir()
    with pytest.raises(KeyFileError, match="not a regular file"):
        keys.load_public_key(private / "dir.key")


def test_curve_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zmq, "has", lambda capability: False)
    with pytest.raises(keys.CurveUnavailableError, match="without CURVE"):
        keys.generate_key_pair()


# -- gsmon keys ----------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """Run ``gsmon keys ...`` in-process; return (status, stdout, stderr)."""
    try:
        status = main(["keys", *map(str, argv)])
    except SystemExit as exc:  # argparse's usage errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


@pytest.fixture
def hub_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    folder = tmp_path / "hub"
    status, _, err = run(capsys, "init", folder)
    assert status == 0, err
    return folder


def allow_list(hub_dir: Path) -> AllowList:
    return AllowList.load(hub_dir / "authorized.toml")


@pytest.mark.usefixtures("umask_zero")
def test_init_makes_the_hub_pair_and_an_empty_allow_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "hub"
    status, out, _ = run(capsys, "init", folder)
    assert status == 0
    assert mode(folder) == 0o700
    for name in ("hub.key", "hub.key_secret", "authorized.toml"):
        assert mode(folder / name) == 0o600
    pair = keys.load_key_pair(folder / "hub.key_secret")
    assert pair.metadata["role"] == "hub"
    assert pair.public_text in out
    assert allow_list(folder).is_empty


def test_init_refuses_to_overwrite_and_loose_folders(
    hub_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (hub_dir / "hub.key_secret").read_bytes()
    status, _, err = run(capsys, "init", hub_dir)
    assert status == 1
    assert "already initialised" in err
    assert (hub_dir / "hub.key_secret").read_bytes() == before
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o755)
    status, _, err = run(capsys, "init", loose)
    assert status == 1
    assert f"chmod 700 {loose}" in err


def test_agent_gets_a_pair_the_hub_key_and_a_grant(
    hub_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "ship" / "ant1"
    status, out, err = run(
        capsys,
        "agent",
        "ant1",
        "--mount",
        "GS1/Antenna1",
        "--mount",
        "GS1/Rack1",
        "--hub-dir",
        hub_dir,
        "--out",
        out_dir,
    )
    assert status == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["ant1.key", "ant1.key_secret", "hub.key"]
    assert all(mode(p) == 0o600 for p in out_dir.iterdir())
    assert mode(out_dir) == 0o700
    pair = keys.load_key_pair(out_dir / "ant1.key_secret")
    assert keys.load_public_key(out_dir / "hub.key") == keys.load_public_key(hub_dir / "hub.key")
    grant = allow_list(hub_dir).agent_for_key(pair.public)
    assert grant is not None
    assert (grant.name, grant.mounts) == ("ant1", ("GS1/Antenna1", "GS1/Rack1"))
    assert pair.public_text in out
    assert mode(hub_dir / "authorized.toml") == 0o600


def test_subscriber_with_and_without_prefixes(
    hub_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(
        capsys, "subscriber", "ops", "--prefix", "GS1", "--hub-dir", hub_dir, "--out", tmp_path / "ops"
    )
    assert status == 0, err
    status, _, err = run(capsys, "subscriber", "all", "--hub-dir", hub_dir, "--out", tmp_path / "all")
    assert status == 0, err
    listed = allow_list(hub_dir)
    assert listed.subscribers["ops"].prefixes == ("GS1/",)
    assert listed.subscribers["all"].prefixes is None
    status, out, _ = run(capsys, "list", "--hub-dir", hub_dir)
    assert status == 0
    assert "ops" in out
    assert "prefixes GS1/" in out
    assert "everything" in out


def test_a_key_made_on_the_client_host_can_be_registered(
    hub_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``keys pair`` + ``--public-key``: the secret never leaves the client's host."""
    status, _, err = run(capsys, "pair", "ant2", "--out", tmp_path / "on-ant2")
    assert status == 0, err
    public = tmp_path / "on-ant2" / "ant2.key"
    status, _, err = run(
        capsys, "agent", "ant2", "--mount", "GS1/Antenna2", "--hub-dir", hub_dir, "--public-key", public
    )
    assert status == 0, err
    grant = allow_list(hub_dir).agent_for_key(keys.load_public_key(public))
    assert grant is not None
    assert grant.name == "ant2"
    # The same key again, under another name: one key, one identity.
    status, _, err = run(capsys, "subscriber", "x", "--hub-dir", hub_dir, "--public-key", public)
    assert status == 1
    assert "already granted to 'ant2'" in err


def test_an_existing_name_is_refused_without_leaving_files(
    hub_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "agent", "ant1", "--mount", "GS1/A", "--hub-dir", hub_dir, "--out", tmp_path / "a")[0] == 0
    before = (hub_dir / "authorized.toml").read_bytes()
    for role_args in (["agent", "ant1", "--mount", "GS1/B"], ["subscriber", "ant1"]):
        status, _, err = run(capsys, *role_args, "--hub-dir", hub_dir, "--out", tmp_path / "b")
        assert status == 1
        assert "already in" in err
    assert not (tmp_path / "b").exists()
    assert (hub_dir / "authorized.toml").read_bytes() == before


def test_existing_key_files_in_outdir_are_refused(
    hub_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    assert run(capsys, "pair", "ant1", "--out", out_dir)[0] == 0
    status, _, err = run(capsys, "agent", "ant1", "--mount", "GS1/A", "--hub-dir", hub_dir, "--out", out_dir)
    assert status == 1
    assert "refusing to overwrite" in err
    assert allow_list(hub_dir).is_empty


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["agent", "ant1", "--mount", "_hub/x"], "reserved"),
        (["agent", "ant1", "--mount", "GS1//x"], "must not be empty"),
        (["agent", "a/b", "--mount", "GS1/x"], "must not contain '/'"),
        (["agent", "hub", "--mount", "GS1/x"], "the hub's own"),
        (["agent", ".ant", "--mount", "GS1/x"], "not start with '.'"),
        (["subscriber", "ops", "--prefix", ""], "empty prefix"),
        (["subscriber", "ops", "--prefix", "GS1\x01"], "control characters"),
    ],
)
def test_bad_arguments_exit_2(
    hub_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], why: str
) -> None:
    status, _, err = run(capsys, *args, "--hub-dir", hub_dir, "--out", tmp_path / "out")
    assert status == 2
    assert why in err
    assert not (tmp_path / "out").exists()
    assert allow_list(hub_dir).is_empty


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["agent", "ant1", "--hub-dir", "x", "--out", "y"],  # no --mount
        ["agent", "ant1", "--mount", "GS1/A", "--out", "y"],  # no --hub-dir
        ["agent", "ant1", "--mount", "GS1/A", "--hub-dir", "x"],  # neither --out nor --public-key
        ["agent", "ant1", "--mount", "GS1/A", "--hub-dir", "x", "--out", "y", "--public-key", "z"],
        ["revoke"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    status, _, err = run(capsys, *args)
    assert status == 2
    assert "usage:" in err


def test_out_must_not_be_the_hub_folder(hub_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "agent", "ant1", "--mount", "GS1/A", "--hub-dir", hub_dir, "--out", hub_dir)
    assert status == 1
    assert "must not be the hub's keys folder" in err


def test_an_uninitialised_or_unsafe_hub_dir_is_refused(
    hub_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "list", "--hub-dir", tmp_path / "nowhere")
    assert status == 1
    assert "gsmon keys init" in err
    (hub_dir / "authorized.toml").chmod(0o666)
    status, _, err = run(capsys, "list", "--hub-dir", hub_dir)
    assert status == 1
    assert "chmod 600" in err
    (hub_dir / "authorized.toml").chmod(0o600)
    hub_dir.chmod(0o755)
    status, _, err = run(capsys, "agent", "x", "--mount", "GS1/A", "--hub-dir", hub_dir, "--out", tmp_path / "x")
    assert status == 1
    assert f"chmod 700 {hub_dir}" in err


def test_revoke_removes_agents_and_subscribers(
    hub_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "agent", "ant1", "--mount", "GS1/A", "--hub-dir", hub_dir, "--out", tmp_path / "a")[0] == 0
    assert run(capsys, "subscriber", "ops", "--hub-dir", hub_dir, "--out", tmp_path / "o")[0] == 0
    status, out, _ = run(capsys, "revoke", "ant1", "--hub-dir", hub_dir)
    assert status == 0
    assert "agent 'ant1' removed" in out
    assert run(capsys, "revoke", "ops", "--hub-dir", hub_dir)[0] == 0
    assert allow_list(hub_dir).is_empty
    assert mode(hub_dir / "authorized.toml") == 0o600
    status, _, err = run(capsys, "revoke", "ops", "--hub-dir", hub_dir)
    assert status == 1
    assert "no agent or subscriber named 'ops'" in err


def test_concurrent_additions_are_not_lost(hub_dir: Path, tmp_path: Path) -> None:
    """The folder lock serialises read-modify-write, so parallel operators keep each other's grants."""
    statuses: list[int] = []

    def add(index: int) -> None:
        argv = ["keys", "pair", f"c{index}", "--out", str(tmp_path / f"c{index}")]
        assert main(argv) == 0
        public = tmp_path / f"c{index}" / f"c{index}.key"
        argv = ["keys", "agent", f"c{index}", "--mount", f"GS1/C{index}", "--hub-dir", str(hub_dir)]
        statuses.append(main([*argv, "--public-key", str(public)]))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [0] * 8
    assert sorted(allow_list(hub_dir).agents) == sorted(f"c{i}" for i in range(8))
