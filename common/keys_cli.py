"""``gsmon keys``: create CURVE keys and keep the hub's allow-list.

On the hub's machine::

    gsmon keys init /etc/gsmon/keys                       # hub.key, hub.key_secret, authorized.toml
    gsmon keys agent ant1 --mount GS1/Antenna1 --hub-dir /etc/gsmon/keys --out ./ant1-keys
    gsmon keys subscriber ops --prefix GS1/ --hub-dir /etc/gsmon/keys --out ./ops-keys
    gsmon keys subscriber admin --admin --hub-dir /etc/gsmon/keys --out ./admin-keys   # may run gsmon forget
    gsmon keys list --hub-dir /etc/gsmon/keys
    gsmon keys revoke ant1 --hub-dir /etc/gsmon/keys
    gsmon keys revoke ant1 --hub-dir /etc/gsmon/keys --forget [--hub tcp://127.0.0.1:7763]  # and gsmon forget

``agent`` and ``subscriber`` write ``NAME.key``, ``NAME.key_secret`` and a
copy of the hub's public key ``hub.key`` into OUTDIR: move that folder to the
client's host (``scp -rp``) and delete it here. To keep a secret key from ever
leaving its host, run ``gsmon keys pair NAME --out DIR`` there instead and
register only its public key: ``gsmon keys agent NAME ... --public-key NAME.key``.

Every file is created 0600 in 0700 folders; ``authorized.toml`` is replaced
atomically (the hub polls it) under a lock on the keys folder, so two
operators cannot lose each other's changes. Exit status: 0 done, 1 refused
(a name or key already present, unsafe permissions, missing files...),
2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gsmon.common.allowlist import (
    ALLOW_LIST_FILE,
    HUB_KEY_NAME,
    AgentGrant,
    AllowList,
    AllowListError,
    SubscriberGrant,
)
from gsmon.common.errors import UnavailableError, UsageError
from gsmon.common.keys import (
    ClientKeys,
    CurveUnavailableError,
    KeyFileError,
    KeyPair,
    create_key_pair,
    ensure_private_dir,
    generate_key_pair,
    load_public_key,
    public_key_path,
    replace_private_file,
    secret_key_path,
    write_key_pair,
    write_private_file,
    write_public_key,
)
from gsmon.common.names import check_name

__all__ = ["add_parser"]


class _RefusedError(UnavailableError):
    """An operation the operator asked for but that cannot be done as things are: exit status 1."""


def add_parser(subparsers: Any, name: str, summary: str) -> None:
    """Register ``gsmon keys`` and its actions on the ``gsmon`` command's subparsers."""
    parser = subparsers.add_parser(
        name,
        help=summary,
        description="Create CURVE key pairs with safe permissions and manage the hub's allow-list (authorized.toml).",
    )
    parser.set_defaults(handler=lambda _args: _missing_action(parser))
    actions = parser.add_subparsers(title="actions", metavar="ACTION")

    init = actions.add_parser("init", help="create the hub's key pair and an empty allow-list in DIR")
    init.add_argument("dir", metavar="DIR", type=Path, help="the hub's keys folder (created 0700)")
    init.set_defaults(handler=_guarded(_init))

    for role, help_text in (
        ("agent", "create an agent's key pair and allow it to publish under its mounts"),
        ("subscriber", "create a subscriber's key pair and allow it to read (some prefixes of) the tree"),
    ):
        action = actions.add_parser(role, help=help_text, description=help_text)
        action.add_argument("name", metavar="NAME", help=f"the {role}'s name")
        if role == "agent":
            action.add_argument(
                "--mount",
                dest="mounts",
                action="append",
                required=True,
                metavar="PATH",
                help="a path the agent may publish at or below (repeat for several)",
            )
        else:
            action.add_argument(
                "--prefix",
                dest="prefixes",
                action="append",
                metavar="P",
                help="a subtree the subscriber may read (repeat for several; none = everything)",
            )
            action.add_argument(
                "--admin",
                action="store_true",
                help="also allow administrators' commands (gsmon forget) with this key",
            )
            action.add_argument(
                "--role",
                dest="key_role",
                choices=("viewer", "operator", "admin"),
                default=None,
                help="what the key may do: viewer reads (default), operator acks/shelves, admin everything",
            )
            action.add_argument(
                "--service",
                dest="services",
                action="append",
                metavar="NAME",
                help="a service the key may register as on the hub (e.g. history, for gsmon recorder)",
            )
        _add_hub_dir(action)
        target = action.add_mutually_exclusive_group(required=True)
        target.add_argument(
            "--out", type=Path, metavar="OUTDIR", help="write the new pair and the hub's public key here"
        )
        target.add_argument(
            "--public-key",
            type=Path,
            metavar="FILE",
            help="register an existing public key (made with 'gsmon keys pair' on the client's host)",
        )
        action.set_defaults(handler=_guarded(_grant), role=role)

    revoke = actions.add_parser("revoke", help="remove an agent or subscriber from the allow-list")
    revoke.add_argument("name", metavar="NAME")
    _add_hub_dir(revoke)
    revoke.add_argument(
        "--forget",
        action="store_true",
        help="an agent: then also remove it and all its points from the running hub now (gsmon forget), "
        "as the hub's own key from --hub-dir",
    )
    revoke.add_argument(
        "--hub",
        metavar="QUERY_ENDPOINT",
        default="tcp://127.0.0.1:7763",
        help="with --forget: the hub's query endpoint (default %(default)s)",
    )
    revoke.set_defaults(handler=_guarded(_revoke))

    listing = actions.add_parser("list", help="show the hub's public key and the allow-list")
    _add_hub_dir(listing)
    listing.set_defaults(handler=_guarded(_list))

    pair = actions.add_parser("pair", help="create a key pair on this host (register its .key on the hub)")
    pair.add_argument("name", metavar="NAME")
    pair.add_argument("--out", type=Path, required=True, metavar="OUTDIR", help="folder for NAME.key(_secret)")
    pair.set_defaults(handler=_guarded(_pair))


def _add_hub_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hub-dir", type=Path, required=True, metavar="DIR", help="the hub's keys folder (from 'gsmon keys init')"
    )


def _missing_action(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: an action is required (init, agent, subscriber, revoke, list, pair)", file=sys.stderr)
    return 2


def _guarded(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``action``, with the key files and the allow-list it works on as refusals.

    ``gsmon keys`` works *on* key files and the allow-list: one that is
    missing, unsafe or malformed is a reason to refuse (exit status 1, as for
    a file it will not overwrite), not a usage error as it is for the
    commands those files configure (status 2). Printing and exiting are
    :func:`gsmon.common.cli.main`'s.
    """

    @functools.wraps(action)
    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except (KeyFileError, AllowListError, CurveUnavailableError) as error:
            raise _RefusedError(str(error)) from error

    return run


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _client_name(name: str) -> str:
    """Check a client's name: a valid node name that can also name its key files and is not the hub's."""
    check_name(name, "name")
    if name.startswith(".") or not name.isprintable():
        raise UsageError(f"invalid name {name!r}: it names key files, so it must be printable and not start with '.'")
    if name == HUB_KEY_NAME:
        raise UsageError(f"the name {HUB_KEY_NAME!r} is the hub's own; choose another")
    return name


def _hub_dir(path: Path) -> Path:
    """Check that ``path`` is an initialised, private hub keys folder."""
    if not path.is_dir():
        raise _RefusedError(f"{path} is not a hub keys folder (create one with: gsmon keys init {path})")
    ensure_private_dir(path)  # exists, so this only checks it is 0700
    if not (path / ALLOW_LIST_FILE).exists():
        raise _RefusedError(f"{path / ALLOW_LIST_FILE} does not exist (create it with: gsmon keys init {path})")
    return path


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while reading, changing and writing its allow-list."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _save(allow_list: AllowList, hub_dir: Path) -> Path:
    return replace_private_file(hub_dir / ALLOW_LIST_FILE, allow_list.dumps().encode("utf-8"))


# -- actions ------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    folder = ensure_private_dir(args.dir)
    taken = [p for p in (f"{HUB_KEY_NAME}.key", f"{HUB_KEY_NAME}.key_secret", ALLOW_LIST_FILE) if (folder / p).exists()]
    if taken:
        raise _RefusedError(f"{folder} is already initialised ({', '.join(taken)} exist); refusing to overwrite")
    pair = generate_key_pair({"name": HUB_KEY_NAME, "role": "hub", "created": _now()})
    public_path, secret_path = write_key_pair(folder, HUB_KEY_NAME, pair)
    allow_path = write_private_file(folder / ALLOW_LIST_FILE, AllowList().dumps().encode("utf-8"))
    print(f"hub key pair:  {secret_path}  (stays on the hub)")
    print(f"hub public key: {public_path}  (hand this file to agents and subscribers)")
    print(f"allow-list:    {allow_path}  (empty: add clients with 'gsmon keys agent' / 'gsmon keys subscriber')")
    print(f"public key: {pair.public_text}")
    return 0


def _grant(args: argparse.Namespace) -> int:
    name = _client_name(args.name)
    role: str = args.role
    hub_dir = _hub_dir(args.hub_dir)
    hub_public = load_public_key(public_key_path(hub_dir, HUB_KEY_NAME))

    pair: KeyPair | None = None
    if args.public_key is not None:
        public = load_public_key(args.public_key)
    else:
        pair = generate_key_pair({"name": name, "role": role, "created": _now()})
        public = pair.public
    try:
        grant: AgentGrant | SubscriberGrant
        if role == "agent":
            grant = AgentGrant(name, public.decode("ascii"), tuple(args.mounts))
        else:
            grant = SubscriberGrant(
                name,
                public.decode("ascii"),
                None if args.prefixes is None else tuple(args.prefixes),
                admin=args.admin,
                role=args.key_role,
                services=tuple(args.services or ()),
            )
    except AllowListError as exc:
        raise UsageError(str(exc)) from None

    out_files: list[Path] = []
    out_dir: Path | None = None if pair is None else Path(args.out)
    if out_dir is not None and out_dir.exists() and os.path.realpath(out_dir) == os.path.realpath(hub_dir):
        raise _RefusedError("--out must not be the hub's keys folder: the client's secret key does not belong there")

    with _locked(hub_dir):
        current = AllowList.load(hub_dir / ALLOW_LIST_FILE)
        if name in current.agents or name in current.subscribers:
            raise _RefusedError(
                f"{name!r} is already in {hub_dir / ALLOW_LIST_FILE}; revoke it first to replace its key"
            )
        try:
            updated = current.with_grant(grant)
        except AllowListError as exc:
            raise _RefusedError(str(exc)) from None
        if pair is not None and out_dir is not None:
            # Only now that the grant is known to fit: a refused request leaves no folder behind.
            out_dir = ensure_private_dir(out_dir)
            targets = [
                public_key_path(out_dir, name),
                secret_key_path(out_dir, name),
                public_key_path(out_dir, HUB_KEY_NAME),
            ]
            existing = [str(t) for t in targets if t.exists() or t.is_symlink()]
            if existing:
                raise _RefusedError(f"refusing to overwrite {', '.join(existing)}")
            out_files.extend(write_key_pair(out_dir, name, pair))
        try:
            if out_dir is not None:
                out_files.append(write_public_key(targets[2], hub_public, {"name": HUB_KEY_NAME, "role": "hub"}))
            allow_path = _save(updated, hub_dir)
        except BaseException:
            # All or nothing: no key files for a client the allow-list does not know.
            for written in out_files:
                written.unlink(missing_ok=True)
            raise

    what = f"mounts {', '.join(grant.mounts)}" if isinstance(grant, AgentGrant) else _prefixes_text(grant)
    print(f"{role} {name!r} added to {allow_path} ({what})")
    print(f"public key: {grant.public_key}")
    if out_dir is not None:
        for path in out_files:
            print(f"wrote {path}")
        print(f"next: copy {out_dir} to the {role}'s host (scp -rp keeps the modes), then delete it here")
    print("a running hub picks the change up within a second")
    return 0


def _prefixes_text(grant: Any) -> str:
    text = "everything" if grant.prefixes is None else f"prefixes {', '.join(grant.prefixes)}"
    role = getattr(grant, "effective_role", None)
    if role == "admin":
        return text + ", administrator"  # the admin role and the older `admin = true` read the same
    if role is not None and role != "viewer":
        text += f", role {role}"
    return text


def _revoke(args: argparse.Namespace) -> int:
    hub_dir = _hub_dir(args.hub_dir)
    with _locked(hub_dir):
        current = AllowList.load(hub_dir / ALLOW_LIST_FILE)
        role = "agent" if args.name in current.agents else "subscriber"
        if args.forget and args.name in current.subscribers:
            raise UsageError(f"--forget removes an agent's points from the hub; {args.name!r} is a subscriber")
        try:
            updated = current.without(args.name)
        except KeyError:
            raise _RefusedError(f"no agent or subscriber named {args.name!r} in {hub_dir / ALLOW_LIST_FILE}") from None
        allow_path = _save(updated, hub_dir)
    print(f"{role} {args.name!r} removed from {allow_path}")
    print(
        "a running hub refuses new handshakes with that key and drops its messages within a second; "
        "delete its key files on its host"
    )
    if args.forget:
        _forget_revoked(args.name, args.hub, hub_dir)
    return 0


def _forget_revoked(name: str, hub: str, hub_dir: Path) -> None:
    """Forget a just-revoked agent on the running hub, as the hub's own key pair."""
    from gsmon.common.client import HubUnavailableError
    from gsmon.common.commands import forget_with_hub_keys
    from gsmon.common.endpoints import endpoint_problem

    problem = endpoint_problem(hub, connect=True)
    if problem is not None:
        raise UsageError(f"--hub {hub!r}: {problem}")
    curve = ClientKeys.load(secret_key_path(hub_dir, HUB_KEY_NAME), public_key_path(hub_dir, HUB_KEY_NAME))
    later = (
        f"once the hub is reachable: gsmon forget {name} --hub QUERY_ENDPOINT "
        f"--key {secret_key_path(hub_dir, HUB_KEY_NAME)} --hub-key {public_key_path(hub_dir, HUB_KEY_NAME)}"
    )
    try:
        done, message = forget_with_hub_keys(name, hub, curve)
    except HubUnavailableError as error:
        raise _RefusedError(f"{name!r} is revoked but not forgotten: {error}; {later}") from None
    if not done:
        raise _RefusedError(f"{name!r} is revoked but not forgotten: the hub at {hub} refused: {message}")
    print(f"the hub at {hub}: {message}")


def _list(args: argparse.Namespace) -> int:
    hub_dir = _hub_dir(args.hub_dir)
    try:
        hub_public = load_public_key(public_key_path(hub_dir, HUB_KEY_NAME)).decode("ascii")
    except KeyFileError as exc:
        hub_public = f"(unreadable: {exc})"
    allow_list = AllowList.load(hub_dir / ALLOW_LIST_FILE)
    print(f"hub public key: {hub_public}")
    print(f"agents ({len(allow_list.agents)}):")
    for agent in allow_list.agents.values():
        print(f"  {agent.name}  {agent.public_key}  mounts: {', '.join(agent.mounts)}")
    print(f"subscribers ({len(allow_list.subscribers)}):")
    for sub in allow_list.subscribers.values():
        print(f"  {sub.name}  {sub.public_key}  {_prefixes_text(sub)}")
    return 0


def _pair(args: argparse.Namespace) -> int:
    name = _client_name(args.name)
    pair, public_path, secret_path = create_key_pair(args.out, name, {"name": name, "created": _now()})
    print(f"wrote {secret_path} (stays on this host)")
    print(f"wrote {public_path}")
    print(f"register it on the hub: gsmon keys agent {name} --mount PATH --hub-dir DIR --public-key {public_path.name}")
    print(f"public key: {pair.public_text}")
    return 0
