"""`gsmon web`'s command line (common/web/main.py): the default address, --listen's forms, the flags. Pure."""

from __future__ import annotations

import argparse

import pytest

from gsmon.common.web.main import DEFAULT_LISTEN, add_parser, parse_listen, run_passwd, run_web


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gsmon")
    add_parser(parser.add_subparsers())
    return parser.parse_args(list(argv))


def test_the_default_is_loopback_port_7764_and_every_flag_of_the_issue_is_there() -> None:
    args = _parse("web", "--hub", "tcp://127.0.0.1:7763")
    assert DEFAULT_LISTEN == "127.0.0.1:7764"
    assert args.listen == DEFAULT_LISTEN
    assert args.handler is run_web
    assert (args.users, args.private_reads, args.behind_proxy, args.max_series) == (None, False, False, 100_000)
    args = _parse("web", "--listen", "127.0.0.1:0", "--users", "u.toml", "--private-reads", "--max-series", "5")
    assert (args.listen, args.users, args.private_reads, args.max_series) == ("127.0.0.1:0", "u.toml", True, 5)
    passwd = _parse("web", "passwd", "alice", "--users", "u.toml", "--role", "operator")
    assert (passwd.handler, passwd.name, passwd.users, passwd.role) == (run_passwd, "alice", "u.toml", "operator")
    with pytest.raises(SystemExit):
        _parse("web", "passwd", "alice", "--users", "u.toml", "--role", "root")


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("127.0.0.1:7764", ("127.0.0.1", 7764)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:8080", ("::1", 8080)),
        ("localhost:9", ("localhost", 9)),
    ],
    ids=["default", "port-0", "ipv6", "name"],
)
def test_parse_listen(text: str, wanted: tuple[str, int]) -> None:
    assert parse_listen(text) == wanted


@pytest.mark.parametrize(
    "text", ["7764", ":7764", "127.0.0.1:http", "127.0.0.1:70000"], ids=["no-host", "empty-host", "word", "big"]
)
def test_parse_listen_refuses_with_one_line(text: str) -> None:
    with pytest.raises(ValueError, match="--listen") as refused:
        parse_listen(text)
    assert "\n" not in str(refused.value)
