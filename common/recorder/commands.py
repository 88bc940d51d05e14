"""``gsmon history`` and ``gsmon context``: ask the history, tag passes.

::

    gsmon history GS1/Ant1/LNA/temp_celsius --since 6h [--buckets 500 | --every 1m] [--format table|json|csv]
    gsmon history GS1/Ant1/LNA/temp_celsius --context P123        # what it did during pass P123
    gsmon history GS1/ --at 2026-12-01T21:49:20Z                    # the tree as it was then
    gsmon history --contexts [PREFIX] --since 1d                    # the passes (context intervals)
    gsmon history export [PREFIX] [--from T --to T] -o FILE.jsonl   # JSON lines (see transfer.py)
    gsmon history import FILE.jsonl                                 # idempotent; roll-ups recomputed
    gsmon context start pass GS1 --id P123                          # through the hub (it owns live contexts)
    gsmon context stop pass GS1
    gsmon context start pass GS1 --id P123 --db URL [--at T]        # offline tagging straight into a store

Where: ``--db URL`` or ``--state-dir DIR`` read (and, for import and
offline contexts, write) a store directly; otherwise ``--hub
QUERY_ENDPOINT`` (default the local hub) asks the hub, which forwards
``history`` to the registered recorder (no database credentials needed;
CURVE keys with ``--key``/``--hub-key``). Times: ISO 8601 (UTC unless an
offset is given), ``now``, or how long ago (``6h``, ``2d``); ``--since D``
is ``--from D --to now``. Exit status: 0 answered, 1 no answer or refused
(the message says why), 2 bad usage.

A point whose whole path is ``export`` or ``import`` (a root point of that
name) is reached with a trailing ``/`` removed... it cannot be: the words are
taken as the subcommands, and such a root point would need a mount anyway.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from gsmon.common.client import DEFAULT_QUERY_ENDPOINT, HubUnavailableError
from gsmon.common.errors import EXIT_USAGE, GsmonError, UnavailableError, UsageError
from gsmon.common.keys import ClientKeys, KeyFileError
from gsmon.common.recorder.times import parse_duration, parse_moment

__all__ = ["add_parser", "run_context", "run_history"]


def _where_flags(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where the history is")
    where.add_argument("--db", metavar="URL", help="a history store's URL (sqlite:///FILE, postgresql+psycopg://...)")
    where.add_argument("--state-dir", metavar="DIR", help="the recorder's state folder (its history.db)")
    where.add_argument(
        "--hub", metavar="QUERY_ENDPOINT", help=f"ask through the hub (default {DEFAULT_QUERY_ENDPOINT})"
    )
    where.add_argument("--key", metavar="FILE", help="your secret key file (CURVE, with --hub-key)")
    where.add_argument("--hub-key", metavar="FILE", help="the hub's public key file")
    where.add_argument("--timeout-s", type=float, default=10.0, help="how long to wait for the hub (default 10)")


def add_parser(subparsers: Any, name: str, summary: str) -> None:
    """Register ``gsmon history`` or ``gsmon context`` (``name``) on the ``gsmon`` command's subparsers."""
    if name == "context":
        _add_context(subparsers, summary)
        return
    parser = subparsers.add_parser(
        "history", help=summary, description=summary + ".", epilog="Times: ISO 8601 UTC, 'now', or 6h/2d ago."
    )
    parser.add_argument("path", nargs="?", metavar="PATH", help="a point's path, PREFIX/ with --at, or export/import")
    parser.add_argument("file", nargs="?", metavar="FILE", help="import: the JSON lines file (- for stdin)")
    span = parser.add_argument_group("time range")
    span.add_argument("--since", metavar="DURATION", help="this long ago until now (default 1h)")
    span.add_argument("--from", dest="from_", metavar="TIME", help="start")
    span.add_argument("--to", metavar="TIME", help="end (default now)")
    span.add_argument("--at", metavar="TIME", help="the tree under PATH (a prefix) as it was at TIME")
    span.add_argument("--context", metavar="ID", help="the range of context (pass) ID")
    shape = parser.add_argument_group("shape")
    shape.add_argument("--buckets", type=int, metavar="N", help="N buckets with min/max/avg/count")
    shape.add_argument("--every", metavar="DURATION", help="buckets this wide (1m, 15m, 1h)")
    shape.add_argument("--limit", type=int, default=10_000, help="at most this many raw samples (default 10000)")
    shape.add_argument("--contexts", action="store_true", help="list the context intervals (passes) instead")
    shape.add_argument("--status", action="store_true", help="the recorder's own figures (through the hub)")
    shape.add_argument("--format", choices=("table", "json", "csv"), default="table")
    shape.add_argument("--json", action="store_true", help="same as --format json")
    shape.add_argument("-o", "--output", metavar="FILE", help="export: write here instead of stdout")
    _where_flags(parser)
    parser.set_defaults(handler=run_history)


def _add_context(subparsers: Any, summary: str) -> None:
    context = subparsers.add_parser("context", help=summary, description=summary + ".")
    context.add_argument("action", choices=("start", "stop"))
    context.add_argument("kind", metavar="KIND", help="the kind of context, e.g. pass")
    context.add_argument("prefix", metavar="PREFIX", help="the subtree it applies to, e.g. GS1")
    context.add_argument("--id", dest="ident", metavar="ID", help="start: the context's id, e.g. P123")
    context.add_argument("--at", metavar="TIME", help="offline (--db/--state-dir): when (default now)")
    _where_flags(context)
    context.set_defaults(handler=run_context)


def _failure(prog: str, message: str, status: int = EXIT_USAGE) -> GsmonError:
    """The error that ends the command: :func:`gsmon.common.cli.main` prints it as one line
    (``gsmon history: export: <message>`` for ``prog`` "gsmon history export") and exits with ``status``."""
    action = prog.split(" ", 2)[2:]
    text = f"{action[0]}: {message}" if action and not message.startswith(action[0]) else message
    return UsageError(text) if status == EXIT_USAGE else UnavailableError(text)


def _local(args: argparse.Namespace) -> bool:
    return args.db is not None or args.state_dir is not None


def _open_store(args: argparse.Namespace) -> Any:
    from gsmon.common.recorder.main import store_url
    from gsmon.common.recorder.store import Store

    return Store.open(store_url(args.db, Path(args.state_dir) if args.state_dir else None))


def _curve(args: argparse.Namespace) -> ClientKeys | None:
    if (args.key is None) != (args.hub_key is None):
        raise ValueError("--key and --hub-key go together (your secret key and the hub's public key)")
    return ClientKeys.load(args.key, args.hub_key) if args.key is not None else None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _remote(args: argparse.Namespace, command: str, command_args: dict[str, Any]) -> tuple[bool, str, Any]:
    from gsmon.common.commands import send_command

    result = send_command(
        args.hub or DEFAULT_QUERY_ENDPOINT,
        command,
        command_args,
        curve=_curve(args),
        timeout_s=args.timeout_s,
        user=_user(),
    )
    return result.ok, result.message, result.result


def _query_args(args: argparse.Namespace, now: float) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if args.contexts:
        query["query"] = "contexts"
        query["prefix"] = args.path or ""
    elif args.status:
        return {"query": "status"}
    else:
        query["query"] = "history"
        query["path"] = args.path
    if args.at is not None:
        query["at"] = parse_moment(args.at, now)
        return query
    if args.context is not None:
        query["context"] = args.context
    elif args.since is not None:
        if args.from_ is not None:
            raise ValueError("give --since or --from, not both")
        query["from"] = now - parse_duration(args.since)
        query["to"] = now
    else:
        query["to"] = parse_moment(args.to, now) if args.to is not None else now
        query["from"] = parse_moment(args.from_, now) if args.from_ is not None else query["to"] - 3600.0
    if args.buckets is not None and args.every is not None:
        raise ValueError("give --buckets or --every, not both")
    if args.buckets is not None:
        query["buckets"] = args.buckets
    if args.every is not None:
        query["every"] = parse_duration(args.every)
    if not args.contexts:
        query["limit"] = args.limit
    return query


def run_history(args: argparse.Namespace) -> int:
    prog = "gsmon history"
    if args.path == "export":
        return _export(args)
    if args.path == "import":
        return _import(args)
    if args.file is not None:
        raise _failure(prog, f"unexpected argument {args.file!r} (only export/import take a FILE)")
    if args.path is None and not (args.contexts or args.status):
        raise _failure(prog, "which point? give its path (gsmon history PREFIX/ --at now lists what is recorded)")
    if _local(args) and args.hub is not None:
        raise _failure(prog, "give --db/--state-dir (a local store) or --hub, not both")
    if args.db is not None and args.state_dir is not None:
        raise _failure(prog, "give --db or --state-dir, not both")
    fmt = "json" if args.json else args.format
    now = time.time()
    try:
        query = _query_args(args, now)
    except ValueError as error:
        raise _failure(prog, str(error)) from error
    if _local(args):
        from gsmon.common.recorder.query import AnswerError, answer
        from gsmon.common.recorder.store import StoreError

        if args.status:
            raise _failure(prog, "--status asks the running recorder: use --hub")
        try:
            store = _open_store(args)
        except StoreError as error:
            raise _failure(prog, str(error), 1) from error
        try:
            result = answer(store, query.pop("query"), query, now=now)
        except AnswerError as error:
            raise _failure(prog, str(error), 1) from error
        finally:
            store.close()
    else:
        try:
            ok, message, result = _remote(args, "history", query)
        except (ValueError, KeyFileError) as error:
            raise _failure(prog, str(error)) from error
        except HubUnavailableError as error:
            raise _failure(prog, str(error), 1) from error
        if not ok:
            raise _failure(prog, f"refused: {message}", 1)
    if args.status:
        import json

        print(json.dumps(result, indent=2))
        return 0
    from gsmon.common.recorder.output import render

    sys.stdout.write(render(result, fmt))
    return 0


def _export(args: argparse.Namespace) -> int:
    prog = "gsmon history export"
    from gsmon.common.recorder.store import StoreError
    from gsmon.common.recorder.transfer import export_lines

    if not _local(args):
        raise _failure(prog, "export reads a store directly: give --db URL or --state-dir DIR")
    now = time.time()
    try:
        start = (
            parse_moment(args.from_, now) if args.from_ else (now - parse_duration(args.since) if args.since else None)
        )
        end = parse_moment(args.to, now) if args.to else None
    except ValueError as error:
        raise _failure(prog, str(error)) from error
    prefix = args.file or ""
    try:
        store = _open_store(args)
    except StoreError as error:
        raise _failure(prog, str(error), 1) from error
    count = 0
    try:
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
        try:
            for line in export_lines(
                store, prefix, None if start is None else round(start * 1e6), None if end is None else round(end * 1e6)
            ):
                out.write(line + "\n")
                count += 1
        finally:
            if out is not sys.stdout:
                out.close()
    except OSError as error:
        raise _failure(prog, f"cannot write {args.output}: {error.strerror or error}", 1) from error
    finally:
        store.close()
    print(f"exported {count - 1} records", file=sys.stderr)
    return 0


def _import(args: argparse.Namespace) -> int:
    prog = "gsmon history import"
    from gsmon.common.recorder.store import StoreError
    from gsmon.common.recorder.transfer import BadExportError, import_lines

    if not _local(args):
        raise _failure(prog, "import writes a store directly: give --db URL or --state-dir DIR")
    if args.file is None:
        raise _failure(prog, "which file? gsmon history import FILE.jsonl --db URL (- for stdin)")
    try:
        store = _open_store(args)
    except StoreError as error:
        raise _failure(prog, str(error), 1) from error
    try:
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        store.close()
        raise _failure(prog, f"cannot read {args.file}: {error.strerror or error}", 1) from error
    try:
        counts = import_lines(store, source)
    except BadExportError as error:
        raise _failure(prog, f"{args.file}: {error} (nothing after that line was imported)", 1) from error
    finally:
        if source is not sys.stdin:
            source.close()
        store.close()
    print(f"imported {counts['samples']} samples, {counts['gaps']} gaps, {counts['contexts']} contexts")
    return 0


def run_context(args: argparse.Namespace) -> int:
    prog = f"gsmon context {args.action}"
    from gsmon.common import names as naming

    if args.action == "start" and not args.ident:
        raise _failure(prog, "give the context's id: --id P123")
    body = args.prefix[:-1] if args.prefix.endswith("/") else args.prefix
    try:
        naming.check_name(args.kind, "context kind")
        naming.check_path(body, "prefix")
    except naming.InvalidNameError as error:
        raise _failure(prog, str(error)) from error
    if _local(args):
        from gsmon.common.recorder.store import StoreError

        try:
            when = parse_moment(args.at, time.time()) if args.at else time.time()
        except ValueError as error:
            raise _failure(prog, str(error)) from error
        try:
            store = _open_store(args)
        except StoreError as error:
            raise _failure(prog, str(error), 1) from error
        try:
            with store.begin(immediate=True) as conn:
                if args.action == "start":
                    store.start_context(conn, args.kind, args.prefix, args.ident, round(when * 1e6), "offline")
                    print(f"context {args.kind} {args.prefix} = {args.ident} from {_iso(when)} (offline, in the store)")
                else:
                    ended = store.end_context(conn, args.kind, args.prefix, round(when * 1e6))
                    if not ended:
                        raise _failure(prog, f"no open {args.kind} context for {args.prefix} in this store", 1)
                    print(f"context {args.kind} {args.prefix} ended at {_iso(when)}")
        finally:
            store.close()
        return 0
    if args.at is not None:
        raise _failure(prog, "--at is for offline tagging (--db/--state-dir); the hub starts contexts now")
    command_args: dict[str, Any] = {"kind": args.kind, "prefix": args.prefix}
    if args.action == "start":
        command_args["id"] = args.ident
    try:
        ok, message, _ = _remote(args, f"context_{args.action}", command_args)
    except (ValueError, KeyFileError) as error:
        raise _failure(prog, str(error)) from error
    except HubUnavailableError as error:
        raise _failure(prog, str(error), 1) from error
    if not ok:
        raise _failure(prog, f"the hub refused: {message}", 1)
    print(message)
    return 0


def _iso(seconds: float) -> str:
    from gsmon.common.recorder.times import iso

    return iso(seconds)
