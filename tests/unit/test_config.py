"""Shared TOML config helpers: typed readers, unknown keys, endpoints, and every error message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gsmon.common.config import REQUIRED, ConfigError, Section, check_endpoint, load_toml, parse_toml

FILE = "/etc/gsmon/test.toml"


def section(text: str) -> Section:
    return parse_toml(text, FILE)


def error_of(text: str, read: Any) -> str:
    """The message of the ConfigError raised by ``read(root)`` on ``text``."""
    with pytest.raises(ConfigError) as caught:
        read(section(text))
    return str(caught.value)


class TestLoading:
    def test_reads_a_file(self, tmp_path: Path) -> None:
        """A file is parsed; its folder is the base for relative paths."""
        path = tmp_path / "a.toml"
        path.write_text('x = 1\n[t]\nkey = "k.pem"\n', encoding="utf-8")
        root = load_toml(path)
        assert root.file == str(path)
        assert root.integer("x") == 1
        assert root.section("t").file_path("key") == tmp_path / "k.pem"
        root.finish()

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is named, with the reason."""
        path = tmp_path / "nope.toml"
        with pytest.raises(ConfigError) as caught:
            load_toml(path)
        assert str(caught.value) == f"{path}: cannot read the configuration: no such file"
        assert caught.value.file == str(path)
        assert isinstance(caught.value.__cause__, FileNotFoundError)

    def test_unreadable_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file that cannot be read says why (simulated: the tests may run as root, who reads anything)."""
        path = tmp_path / "secret.toml"
        path.write_text("x = 1\n", encoding="utf-8")

        def denied(self: Path) -> bytes:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_bytes", denied)
        with pytest.raises(ConfigError) as caught:
            load_toml(path)
        assert str(caught.value) == f"{path}: cannot read the configuration: Permission denied"
        assert isinstance(caught.value.__cause__, PermissionError)

    def test_directory_instead_of_file(self, tmp_path: Path) -> None:
        """A directory is not a configuration file (also how an unreadable path looks to root)."""
        with pytest.raises(ConfigError) as caught:
            load_toml(tmp_path)
        assert str(caught.value) == f"{tmp_path}: cannot read the configuration: it is a directory, not a file"

    def test_syntax_error_gives_the_line(self, tmp_path: Path) -> None:
        """A TOML syntax error names the line and column."""
        path = tmp_path / "bad.toml"
        path.write_text("[agent]\nname = \n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_toml(path)
        assert str(caught.value) == f"{path}: line 2, column 8: invalid TOML: Invalid value"
        assert caught.value.__cause__ is not None

    def test_syntax_error_at_end_of_document(self) -> None:
        """Errors tomllib reports at the end of the text are located too."""
        with pytest.raises(ConfigError) as caught:
            parse_toml('x = "unterminated', FILE)
        assert str(caught.value) == f"{FILE}: end of document: invalid TOML: Unterminated string"

    def test_duplicate_key_is_a_syntax_error(self) -> None:
        """TOML itself refuses a key given twice."""
        with pytest.raises(ConfigError, match=re.escape(f"{FILE}: line 2, column 4: invalid TOML: Cannot overwrite")):
            parse_toml("a=1\na=2\n", FILE)

    def test_not_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are reported with their line."""
        path = tmp_path / "latin1.toml"
        path.write_bytes(b'a = 1\nname = "caf\xe9"\n')
        with pytest.raises(ConfigError) as caught:
            load_toml(path)
        assert str(caught.value) == f"{path}: line 2: invalid TOML: the file is not UTF-8 text"


class TestReaders:
    def test_defaults_when_absent(self) -> None:
        """Absent keys give the default, of whatever type it is."""
        root = section("")
        assert root.string("s", "d") == "d"
        assert root.boolean("b", False) is False
        assert root.integer("i", 3) == 3
        assert root.number("n", None) is None
        assert root.seconds("t", 1.5) == 1.5
        assert root.strings("l", []) == []
        assert root.endpoint("e", "inproc://x") == "inproc://x"
        assert root.name("nm", None) is None
        assert root.file_path("p", None) is None
        root.finish()

    def test_values_when_present(self, tmp_path: Path) -> None:
        """Present keys are returned with the right Python type."""
        root = parse_toml(
            's = "x"\nb = true\ni = 7\nn = 2\nt = 0.5\nl = ["a", "b"]\nc = "info"\n'
            'e = "tcp://*:0"\nnm = "Rack 1"\nm = "GS1/Rack1"\np = "/abs/key"\nr = "rel/key"\n',
            FILE,
            tmp_path,
        )
        assert root.string("s") == "x"
        assert root.boolean("b") is True
        assert root.integer("i", minimum=0, maximum=10) == 7
        number = root.number("n")
        assert number == 2.0
        assert isinstance(number, float)
        assert root.seconds("t") == 0.5
        assert root.strings("l") == ["a", "b"]
        assert root.choice("c", ("DEBUG", "INFO"), upper=True) == "INFO"
        assert root.endpoint("e") == "tcp://*:0"
        assert root.name("nm") == "Rack 1"
        assert root.mount("m") == "GS1/Rack1"
        assert root.file_path("p") == Path("/abs/key")
        assert root.file_path("r") == tmp_path / "rel/key"
        root.finish()

    def test_required_key_missing(self) -> None:
        """A reader without default makes the key required."""
        assert error_of("[t]\n", lambda r: r.section("t").integer("workers", REQUIRED)) == (
            f"{FILE}: t.workers: missing; expected an integer"
        )

    @pytest.mark.parametrize(
        ("text", "read", "expected"),
        [
            (
                '[probes.cpu]\ndt_s = "fast"',
                lambda r: r.section("probes").section("cpu").seconds("dt_s"),
                "probes.cpu.dt_s: expected a positive number of seconds, got 'fast'",
            ),
            (
                "[probes.cpu]\ndt_s = 0",
                lambda r: r.section("probes").section("cpu").seconds("dt_s"),
                "probes.cpu.dt_s: expected a positive number of seconds, got 0",
            ),
            (
                "[probes.cpu]\ndt_s = -1.5",
                lambda r: r.section("probes").section("cpu").seconds("dt_s"),
                "probes.cpu.dt_s: expected a positive number of seconds, got -1.5",
            ),
            (
                "[probes.cpu]\ndt_s = true",
                lambda r: r.section("probes").section("cpu").seconds("dt_s"),
                "probes.cpu.dt_s: expected a positive number of seconds, got true",
            ),
            (
                "[probes.cpu]\ndt_s = nan",
                lambda r: r.section("probes").section("cpu").seconds("dt_s"),
                "probes.cpu.dt_s: expected a positive number of seconds, got nan",
            ),
            (
                "[probes.cpu]\ndt_s = inf",
                lambda r: r.section("probes").section("cpu").seconds("dt_s"),
                "probes.cpu.dt_s: expected a positive number of seconds, got inf",
            ),
            (
                "workers = 1.5",
                lambda r: r.integer("workers", minimum=1, maximum=1000),
                "workers: expected an integer from 1 to 1000, got 1.5",
            ),
            (
                "workers = 0",
                lambda r: r.integer("workers", minimum=1, maximum=1000),
                "workers: expected an integer from 1 to 1000, got 0",
            ),
            (
                "workers = -1",
                lambda r: r.integer("workers", minimum=1),
                "workers: expected an integer of at least 1, got -1",
            ),
            (
                "workers = 11",
                lambda r: r.integer("workers", maximum=10),
                "workers: expected an integer of at most 10, got 11",
            ),
            ('workers = "10"', lambda r: r.integer("workers"), "workers: expected an integer, got '10'"),
            ("h = -0.5", lambda r: r.number("h", minimum=0.0), "h: expected a number of at least 0, got -0.5"),
            ('flag = "yes"', lambda r: r.boolean("flag"), "flag: expected true or false, got 'yes'"),
            ("s = 1", lambda r: r.string("s"), "s: expected a non-empty string, got 1"),
            ('s = "  "', lambda r: r.string("s"), "s: expected a non-empty string, got '  '"),
            ("s = [1]", lambda r: r.string("s"), "s: expected a non-empty string, got an array"),
            ("[s]\nx = 1", lambda r: r.string("s"), "s: expected a non-empty string, got a table"),
            ("s = 1979-05-27", lambda r: r.string("s"), "s: expected a non-empty string, got a date"),
            (
                'level = "LOUD"',
                lambda r: r.choice("level", ("DEBUG", "INFO"), upper=True),
                "level: expected one of 'DEBUG', 'INFO', got 'LOUD'",
            ),
            (
                "level = 3",
                lambda r: r.choice("level", ("DEBUG", "INFO")),
                "level: expected one of 'DEBUG', 'INFO', got 3",
            ),
            ('l = "a"', lambda r: r.strings("l"), "l: expected an array of strings, got 'a'"),
            (
                "l = []",
                lambda r: r.strings("l", non_empty=True),
                "l: expected a non-empty array of strings, got an array",
            ),
            ('l = ["a", 2]', lambda r: r.strings("l"), "l[1]: expected a non-empty string, got 2"),
            (
                'l = ["a", "a"]',
                lambda r: r.strings("l"),
                "l[1]: expected no repeated entries, got 'a': it is listed twice",
            ),
            ("t = 1", lambda r: r.section("t"), "t: expected a table, got 1"),
            ("t = 1", lambda r: r.sections("t"), "t: expected an array of tables ([[t]]), got 1"),
            ("t = [1]", lambda r: r.sections("t"), "t[0]: expected a table, got 1"),
            ("p = 3", lambda r: r.file_path("p"), "p: expected a file path, got 3"),
            ('p = ""', lambda r: r.file_path("p"), "p: expected a file path, got ''"),
        ],
    )
    def test_wrong_type_or_range(self, text: str, read: Any, expected: str) -> None:
        """Each reader names the dotted key, what it expected and what it got."""
        assert error_of(text, read) == f"{FILE}: {expected}"

    def test_nested_array_of_tables_keys(self) -> None:
        """Keys inside [[arrays]] carry the index."""
        text = '[[probes.process]]\nname = "a"\n[[probes.process]]\nname = "b"\ndt_s = "x"\n'

        def read(root: Section) -> None:
            for table in root.section("probes").sections("process"):
                table.name("name")
                table.seconds("dt_s", 1.0)

        assert error_of(text, read) == f"{FILE}: probes.process[1].dt_s: expected a positive number of seconds, got 'x'"

    def test_error_attributes(self) -> None:
        """The file, key and detail are available separately."""
        with pytest.raises(ConfigError) as caught:
            section("x = 0").seconds("x")
        assert (caught.value.file, caught.value.key) == (FILE, "x")
        assert caught.value.detail == "expected a positive number of seconds, got 0"


class TestUnknownKeys:
    def test_unknown_key_lists_the_allowed_ones(self) -> None:
        """A misspelt key is reported with the keys allowed in that table."""
        root = section("[agent]\nnmae = 'x'\nworkers = 3\n")
        agent = root.section("agent")
        agent.name("name", None)
        agent.integer("workers", 10)
        agent.seconds("default_dt_s", 10.0)
        with pytest.raises(ConfigError) as caught:
            root.finish()
        assert str(caught.value) == f"{FILE}: agent.nmae: unknown key; allowed keys here: default_dt_s, name, workers"

    def test_unknown_top_level_table(self) -> None:
        """An unknown table at the top is an unknown key of the root."""
        root = section("[agnet]\nname = 'x'\n")
        root.section("agent")
        root.strings("modules", [])
        with pytest.raises(ConfigError) as caught:
            root.finish()
        assert str(caught.value) == f"{FILE}: agnet: unknown key; allowed keys here: agent, modules"

    def test_unknown_key_in_array_of_tables(self) -> None:
        """Tables of an array are checked too, with their index."""
        root = section("[[thresholds]]\npoint = 'x'\n[[thresholds]]\npoint = 'y'\nredd = 1\n")
        for table in root.sections("thresholds"):
            table.string("point")
            table.number("red", None)
        with pytest.raises(
            ConfigError, match=re.escape("thresholds[1].redd: unknown key; allowed keys here: point, red")
        ):
            root.finish()

    def test_nothing_read_means_nothing_allowed(self) -> None:
        """A table whose reader reads no keys allows none."""
        root = section("[empty]\nx = 1\n")
        root.section("empty")
        with pytest.raises(ConfigError, match=re.escape("empty.x: unknown key; allowed keys here: none")):
            root.finish()

    def test_known_keys_pass(self) -> None:
        """When every key was read, finish() is silent."""
        root = section("a = 1\n[t]\nb = 2\n")
        root.integer("a")
        root.section("t").integer("b")
        root.finish()
        assert "a" in root
        assert root.keys() == ["a", "t"]


class TestEndpoints:
    @pytest.mark.parametrize(
        "endpoint",
        [
            "tcp://127.0.0.1:7761",
            "tcp://hub.example:7761",
            "tcp://*:7761",
            "tcp://*:*",
            "tcp://0.0.0.0:0",
            "tcp://[::1]:65535",
            "tcp://eth0:7761",
            "ipc:///run/gsmon/hub.sock",
            "ipc://@abstract",
            "inproc://hub",
        ],
    )
    def test_valid_bind_endpoints(self, endpoint: str) -> None:
        """tcp (port 0-65535 or *), ipc and inproc are accepted."""
        assert check_endpoint(endpoint) == endpoint

    @pytest.mark.parametrize(
        ("endpoint", "reason"),
        [
            ("hub:7761", "no transport (it must start with tcp://, ipc:// or inproc://)"),
            ("udp://hub:7761", "unknown transport 'udp' (use tcp, ipc or inproc)"),
            ("tcp://", "nothing after tcp://"),
            ("tcp://hub", "no port (tcp://host:port)"),
            ("tcp://:7761", "no host (tcp://host:port)"),
            ("tcp://hub:port", "port 'port' is not a number or '*'"),
            ("tcp://hub:65536", "port 65536 is out of range 0-65535"),
            ("tcp://hub:-1", "port '-1' is not a number or '*'"),
            ("tcp://hub name:1", "it contains spaces or control characters"),
            ("tcp://a/b:1", "host 'a/b' contains '/'"),
            ("tcp://[::1:7761", "unbalanced brackets in host '[::1'"),
        ],
    )
    def test_invalid_endpoints(self, endpoint: str, reason: str) -> None:
        """Each malformed endpoint gets a precise reason."""
        with pytest.raises(ValueError, match="^" + re.escape(reason) + "$"):
            check_endpoint(endpoint)

    @pytest.mark.parametrize(
        ("endpoint", "reason"),
        [
            ("tcp://*:7761", "host '*' can only be bound, not connected to"),
            ("tcp://hub:*", "port '*' can only be bound, not connected to"),
            ("tcp://hub:0", "port 0 is out of range 1-65535"),
        ],
    )
    def test_connect_endpoints_need_a_real_address(self, endpoint: str, reason: str) -> None:
        """What only makes sense for bind is refused for connect."""
        with pytest.raises(ValueError, match="^" + re.escape(reason) + "$"):
            check_endpoint(endpoint, connect=True)

    def test_bad_endpoint_in_a_file(self) -> None:
        """The reader's message has the key, the expectation and the reason."""
        assert error_of(
            '[agent]\nhubs = ["tcp://hub"]', lambda r: r.section("agent").endpoints("hubs", connect=True)
        ) == (
            f"{FILE}: agent.hubs[0]: expected an endpoint to connect to (tcp://host:port with port 1-65535, "
            "ipc://path or inproc://name), got 'tcp://hub': no port (tcp://host:port)"
        )

    def test_single_endpoint_reader(self) -> None:
        """endpoint() reports like endpoints() does."""
        assert error_of('bind = "tcp://hub:70000"', lambda r: r.endpoint("bind")) == (
            f"{FILE}: bind: expected an endpoint (tcp://host:port with port 0-65535 or '*', ipc://path or "
            "inproc://name), got 'tcp://hub:70000': port 70000 is out of range 0-65535"
        )

    def test_endpoint_list_shape(self) -> None:
        """An empty list, a non-list and repeats are refused."""
        assert error_of("hubs = []", lambda r: r.endpoints("hubs")) == (
            f"{FILE}: hubs: expected a non-empty array of endpoints, got an array"
        )
        assert error_of('hubs = "tcp://h:1"', lambda r: r.endpoints("hubs")) == (
            f"{FILE}: hubs: expected a non-empty array of endpoints, got 'tcp://h:1'"
        )
        assert error_of('hubs = ["tcp://h:1", "tcp://h:1"]', lambda r: r.endpoints("hubs")) == (
            f"{FILE}: hubs[1]: expected no repeated endpoints, got 'tcp://h:1': it is listed twice"
        )


class TestNames:
    @pytest.mark.parametrize(
        ("text", "read", "expected"),
        [
            (
                'name = "a/b"',
                lambda r: r.name("name", what="agent name"),
                "name: expected a valid agent name, got 'a/b': "
                "a name must not contain '/' (it separates path segments)",
            ),
            (
                'name = "tab\\there"',
                lambda r: r.name("name"),
                "name: expected a valid name, got 'tab\\there': "
                "a name must not contain control characters (found '\\t')",
            ),
            (
                'name = ""',
                lambda r: r.name("name"),
                "name: expected a valid name, got '': a name must not be empty or blank",
            ),
            ("name = 5", lambda r: r.name("name"), "name: expected a valid name, got 5: a name must be a str, not int"),
            (
                'mount = "_hub/x"',
                lambda r: r.mount("mount"),
                "mount: expected a valid mount path, got '_hub/x': "
                "root names starting with '_' are reserved for the hub",
            ),
            (
                'mount = "GS1//x"',
                lambda r: r.mount("mount"),
                "mount: expected a valid mount path, got 'GS1//x': segment '': a name must not be empty or blank",
            ),
            (
                'p = "a/\\u0007"',
                lambda r: r.point_path("p", what="point path"),
                "p: expected a valid point path, got 'a/\\x07': segment '\\x07': a name must not contain control "
                "characters (found '\\x07')",
            ),
        ],
    )
    def test_bad_names_and_paths(self, text: str, read: Any, expected: str) -> None:
        """Names and paths follow gsmon.common.names; the rule broken is quoted."""
        assert error_of(text, read) == f"{FILE}: {expected}"


def test_a_pair_section_sets_the_peer_and_a_bad_hub_id_is_named() -> None:
    from gsmon.hub.config import parse_hub_config

    config = parse_hub_config('[pair]\npeer = "tcp://hub-b:7763"\nhub_id = "gs1-a"\npeer_timeout_s = 5\n')
    assert config.pair is not None
    assert (config.pair.peer, config.pair.hub_id, config.pair.settings.peer_timeout_s) == (
        "tcp://hub-b:7763",
        "gs1-a",
        5.0,
    )
    assert parse_hub_config("").pair is None
    with pytest.raises(ConfigError, match="hub id 'a b' must be 1 to 64 letters"):
        parse_hub_config('[pair]\npeer = "tcp://hub-b:7763"\nhub_id = "a b"\n')
    with pytest.raises(ConfigError, match=r"without pair\.peer"):
        parse_hub_config('[pair]\nhub_id = "gs1-a"\n')
