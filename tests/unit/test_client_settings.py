"""Client settings (flags > variables > user file > host file), flag overlays, the --check line, and
where agents find their hub: pure lookups, no sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsmon.agent.config import read_agent_config
from gsmon.agent.monitor import Monitor
from gsmon.agent.thresholds import Threshold, unmatched_thresholds
from gsmon.common.client import NodeState
from gsmon.common.client_settings import agent_environment, client_files, resolve_client_settings
from gsmon.common.config import ConfigError, Section, parse_toml, with_overrides
from gsmon.common.views import CHECK_CRITICAL, CHECK_OK, CHECK_UNKNOWN, CHECK_WARNING, check_result
from gsmon.hub.config import read_hub_config

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ----------------------------------------------------------------------
# resolve_client_settings
# ----------------------------------------------------------------------


def test_defaults_without_anything() -> None:
    settings = resolve_client_settings(environ={}, files=())
    assert (settings.hub, settings.key, settings.hub_key) == ("tcp://127.0.0.1:7763", None, None)
    assert settings.hub_origin == "default"


def test_each_setting_takes_the_first_source_that_has_it(tmp_path: Path) -> None:
    """Flags over variables over the user's file over the host's file, one setting at a time."""
    user = write(tmp_path / "user" / "client.toml", 'hub = "tcp://user:7763"\nkey = "u.key_secret"\n')
    host = write(
        tmp_path / "etc" / "client.toml", 'hub = "tcp://host:7763"\nkey = "h.key_secret"\nhub_key = "hub.key"\n'
    )
    settings = resolve_client_settings(environ={}, files=(user, host))
    assert settings.hub == "tcp://user:7763"
    assert settings.key == user.parent / "u.key_secret", "relative to the file's own folder"
    assert settings.hub_key == host.parent / "hub.key", "a key the user's file lacks comes from the host's"
    assert settings.hub_key_origin == f"{host}: hub_key"
    env = {"GSMON_HUB": "tcp://env:7763", "GSMON_HUB_KEY": "env/hub.key"}
    settings = resolve_client_settings(environ=env, files=(user, host))
    assert (settings.hub, settings.hub_key, settings.hub_origin) == ("tcp://env:7763", Path("env/hub.key"), "GSMON_HUB")
    settings = resolve_client_settings("tcp://flag:7763", environ=env, files=(user, host))
    assert (settings.hub, settings.hub_origin) == ("tcp://flag:7763", "--hub")


def test_empty_variables_count_as_unset(tmp_path: Path) -> None:
    settings = resolve_client_settings(environ={"GSMON_HUB": "", "GSMON_KEY": ""}, files=())
    assert settings.hub == "tcp://127.0.0.1:7763"


def test_the_user_file_is_under_xdg_config_home_or_dot_config() -> None:
    assert client_files({"XDG_CONFIG_HOME": "/x/cfg", "HOME": "/home/u"})[0] == Path("/x/cfg/gsmon/client.toml")
    assert client_files({"HOME": "/home/u"})[0] == Path("/home/u/.config/gsmon/client.toml")
    assert client_files({"XDG_CONFIG_HOME": "relative", "HOME": "/home/u"})[0] == Path(
        "/home/u/.config/gsmon/client.toml"
    ), "a relative XDG_CONFIG_HOME is ignored, as the XDG spec says"
    assert client_files({})[1] == Path("/etc/gsmon/client.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hub = 7763\n", "hub: expected an endpoint to connect to"),
        ('hub = "tcp://hub"\n', "hub: expected an endpoint to connect to (tcp://host:port with port 1-65535"),
        ('hubb = "tcp://hub:7763"\n', "hubb: unknown key; allowed keys here: hub, hub_key, key"),
        ('key = ""\n', "key: expected a file path, got ''"),
        ("hub = \n", "invalid TOML"),
    ],
)
def test_a_bad_file_is_one_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    bad = write(tmp_path / "client.toml", text)
    with pytest.raises(ConfigError) as error:
        resolve_client_settings(environ={}, files=(bad,))
    assert str(error.value).startswith(f"{bad}: ")
    assert message in str(error.value)


def test_a_bad_variable_names_the_variable() -> None:
    with pytest.raises(ConfigError) as error:
        resolve_client_settings(environ={"GSMON_HUB": "hub:7763"}, files=())
    assert str(error.value).startswith("GSMON_HUB: expected the hub's query endpoint")


def test_key_and_hub_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        resolve_client_settings(key="ops.key_secret", environ={}, files=())
    assert str(error.value).startswith("--key: the hub's public key is missing: --key and --hub-key go together")
    with pytest.raises(ConfigError) as error:
        resolve_client_settings(environ={"GSMON_HUB_KEY": "hub.key"}, files=())
    assert str(error.value).startswith("GSMON_HUB_KEY: a key is missing")
    # One from a flag and one from a variable make a pair.
    settings = resolve_client_settings(key="ops.key_secret", environ={"GSMON_HUB_KEY": "hub.key"}, files=())
    assert (settings.key_origin, settings.hub_key_origin) == ("--key", "GSMON_HUB_KEY")


def test_a_missing_file_is_no_error(tmp_path: Path) -> None:
    assert resolve_client_settings(environ={}, files=(tmp_path / "absent.toml",)).hub_origin == "default"


# ----------------------------------------------------------------------
# Agents: GSMON_AGENT_HUB and the key variables
# ----------------------------------------------------------------------


def test_agent_environment() -> None:
    env = agent_environment({"GSMON_AGENT_HUB": "tcp://hub:7761", "GSMON_KEY": "a.key_secret", "GSMON_HUB_KEY": "h"})
    assert (env.hub, env.key, env.hub_key) == ("tcp://hub:7761", Path("a.key_secret"), Path("h"))
    with pytest.raises(ConfigError, match=r"^GSMON_AGENT_HUB: expected the hub's agents endpoint"):
        agent_environment({"GSMON_AGENT_HUB": "tcp://*:7761"})
    with pytest.raises(ConfigError, match=r"^GSMON_KEY: GSMON_HUB_KEY is not set"):
        agent_environment({"GSMON_KEY": "a.key_secret"})


def test_agent_config_takes_the_environment_only_where_nothing_else_says(tmp_path: Path) -> None:
    """GSMON_AGENT_HUB fills in for a missing --hub and hubs key; a flag or the file wins over it."""
    env = {"GSMON_AGENT_HUB": "tcp://env:7761", "GSMON_KEY": "env.key_secret", "GSMON_HUB_KEY": "env-hub.key"}
    config = read_agent_config(None, {}, env)
    assert config.agent.hubs == ("tcp://env:7761",)
    assert config.where("agent.hubs") == "GSMON_AGENT_HUB"
    assert config.agent.security is not None
    assert config.agent.security.secret_key_file == Path("env.key_secret")
    in_file = write(tmp_path / "a.toml", '[agent]\nhubs = ["tcp://file:7761"]\n')
    assert read_agent_config(in_file, {}, env).agent.hubs == ("tcp://file:7761",)
    flags = {"agent.hubs": (["tcp://flag:7761"], "--hub")}
    assert read_agent_config(in_file, flags, env).agent.hubs == ("tcp://flag:7761",)
    keyed = write(
        tmp_path / "k.toml", '[agent.security]\nhub_public_key_file = "hub.key"\nsecret_key_file = "me.key_secret"\n'
    )
    security = read_agent_config(keyed, {}, env).agent.security
    assert security is not None
    assert security.secret_key_file == tmp_path / "me.key_secret"


def test_monitor_without_hub_publishes_to_gsmon_agent_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GSMON_AGENT_HUB", raising=False)
    monkeypatch.delenv("GSMON_KEY", raising=False)
    monkeypatch.delenv("GSMON_HUB_KEY", raising=False)
    assert Monitor().publisher is None
    monkeypatch.setenv("GSMON_AGENT_HUB", "tcp://127.0.0.1:7761")
    mon = Monitor(agent="app", mount="Lab/App")
    assert mon.publisher is not None
    assert mon.publisher.hubs == ["tcp://127.0.0.1:7761"]
    assert mon.publisher.mount == "Lab/App"
    assert Monitor(hub="tcp://127.0.0.1:9999", agent="x").publisher.hubs == ["tcp://127.0.0.1:9999"]  # type: ignore[union-attr]
    monkeypatch.setenv("GSMON_AGENT_HUB", "nowhere")
    with pytest.raises(ValueError, match=r"^GSMON_AGENT_HUB: "):
        Monitor(agent="app")
    monkeypatch.setenv("GSMON_AGENT_HUB", "tcp://127.0.0.1:7761")
    monkeypatch.setenv("GSMON_KEY", "/nonexistent/app.key_secret")
    monkeypatch.setenv("GSMON_HUB_KEY", "/nonexistent/hub.key")
    with pytest.raises(ValueError, match=r"^GSMON_KEY: secret key file /nonexistent/app.key_secret does not exist"):
        Monitor(agent="app")


# ----------------------------------------------------------------------
# Flags laid over the file: one validation, errors name the flag
# ----------------------------------------------------------------------


def test_overrides_are_checked_by_the_keys_rules_and_named_by_their_flag() -> None:
    root = with_overrides(
        parse_toml("[liveness]\nstale_factor = 3\n", "h.toml"), {"liveness.agent_liveness": (0.5, "--x")}
    )
    table = root.section("liveness")
    assert table.number("stale_factor", 1.0) == 3.0
    with pytest.raises(ConfigError) as error:
        table.number("agent_liveness", 3.0, minimum=1.0, maximum=1000.0)
    assert str(error.value) == "--x: expected a number from 1 to 1000, got 0.5"


def test_overrides_leave_the_original_alone_and_list_items_keep_their_flag() -> None:
    original = parse_toml('[agent]\nhubs = ["tcp://a:1"]\n', "a.toml")
    root = with_overrides(
        original, {"agent.hubs": (["tcp://b:2", "nonsense"], "--hub"), "agent.name": (None, "--name")}
    )
    agent = root.section("agent")
    with pytest.raises(ConfigError) as error:
        agent.endpoints("hubs", connect=True)
    assert str(error.value).startswith("--hub: expected an endpoint to connect to")
    assert "name" not in agent, "a flag not given changes nothing"
    assert original.section("agent").endpoints("hubs", connect=True) == ["tcp://a:1"]


def test_a_flags_relative_path_is_relative_to_the_current_folder(tmp_path: Path) -> None:
    root = with_overrides(
        Section({}, str(tmp_path / "etc" / "a.toml")),
        {"security.keys_dir": ("keys", "--keys")},
    )
    assert root.section("security").file_path("keys_dir") == Path("keys")
    assert (
        Section({"keys_dir": "keys"}, str(tmp_path / "etc" / "a.toml")).file_path("keys_dir")
        == tmp_path / "etc" / "keys"
    )


def test_hub_flags_use_the_same_rules_as_the_file(tmp_path: Path) -> None:
    in_file = write(tmp_path / "h.toml", "[liveness]\nagent_liveness = 0.5\n")
    with pytest.raises(ConfigError) as from_file:
        read_hub_config(in_file)
    with pytest.raises(ConfigError) as from_flag:
        read_hub_config(None, {"liveness.agent_liveness": (0.5, "--agent-liveness")})
    assert str(from_file.value) == f"{in_file}: liveness.agent_liveness: expected a number from 1 to 1000, got 0.5"
    assert str(from_flag.value) == "--agent-liveness: expected a number from 1 to 1000, got 0.5"
    config = read_hub_config(in_file, {"liveness.agent_liveness": (4.0, "--agent-liveness")})
    assert config.settings.agent_liveness == 4.0
    assert config.where("liveness.agent_liveness") == "--agent-liveness"
    assert config.where("hub.agents") == f"{in_file}: hub.agents"


def test_flag_names_are_the_key_names_and_old_spellings_still_work() -> None:
    from gsmon.common.cli import build_parser
    from gsmon.common.config import flag_overrides

    parser = build_parser()
    new = flag_overrides(parser.parse_args(["hub", "--agent-retention-s", "5", "--keys-dir", "k"]))
    old = flag_overrides(parser.parse_args(["hub", "--retention-s", "5", "--keys", "k"]))
    assert {key: value for key, (value, _) in new.items()} == {key: value for key, (value, _) in old.items()}
    assert new["retention.agent_retention_s"] == (5.0, "--agent-retention-s")
    assert old["retention.agent_retention_s"] == (5.0, "--retention-s")
    agent = flag_overrides(parser.parse_args(["agent", "--hub", "tcp://a:1", "--hub", "tcp://b:2", "--key", "k"]))
    assert agent["agent.hubs"] == (["tcp://a:1", "tcp://b:2"], "--hub")
    assert agent["agent.security.secret_key_file"] == ("k", "--key")
    assert flag_overrides(parser.parse_args(["agent", "--secret-key-file", "k"]))["agent.security.secret_key_file"] == (
        "k",
        "--secret-key-file",
    )


# ----------------------------------------------------------------------
# gsmon get --check (the pure part)
# ----------------------------------------------------------------------


def node(path: str, code: int, *, stale: bool = False, kind: str = "point", label: str = "") -> NodeState:
    return NodeState(path, kind, code, label, stale, 1.0, "a", None, None, None, 1)


def tree(*nodes: NodeState) -> dict[str, NodeState]:
    return {each.path: each for each in nodes}


@pytest.mark.parametrize(
    ("codes", "status"),
    [
        ((10, 10, 0), CHECK_OK),
        ((10, 15), CHECK_OK),  # a user level below ORANGE
        ((10, 20), CHECK_WARNING),
        ((10, 25), CHECK_WARNING),  # a user level between ORANGE and RED
        ((10, 30), CHECK_CRITICAL),
        ((10, 100), CHECK_CRITICAL),
        ((10, 50), CHECK_CRITICAL),  # STALE
    ],
)
def test_check_status_follows_the_worst_level(codes: tuple[int, ...], status: int) -> None:
    nodes = [node(f"GS1/p{index}", code) for index, code in enumerate(codes)]
    assert check_result("GS1/", tree(node("GS1", max(codes), kind="parent"), *nodes))[0] == status


def test_check_line_counts_points_with_perfdata() -> None:
    status, line = check_result(
        "GS1/",
        tree(
            node("GS1", 100, kind="parent"),
            node("GS1/a", 100, label="CRITICAL"),
            node("GS1/b", 30, label="RED"),
            node("GS1/c", 50, stale=True, label="STALE"),
            node("GS1/d", 20, label="ORANGE"),
            node("GS1/e", 20, label="ORANGE"),
            node("GS1/f", 20, label="ORANGE"),
            node("GS1/g", 10, label="GREEN"),
        ),
    )
    assert status == CHECK_CRITICAL
    assert line == (
        "GSMON CRITICAL - 2 critical, 1 stale, 3 warning under GS1/ (worst GS1/a CRITICAL) | points=7;;;0 "
        "green=1;;;0 orange=3;0;;0 red=1;;0;0 stale=1;;0;0 critical=1;;0;0 unjudged=0;;;0"
    )


def test_check_of_nothing_is_unknown() -> None:
    assert check_result("GS1/", {}) == (CHECK_UNKNOWN, "GSMON UNKNOWN - nothing under GS1/")
    assert check_result("", {})[1] == "GSMON UNKNOWN - nothing in the whole tree"


def test_a_stale_point_is_critical_whatever_its_code() -> None:
    status, line = check_result("GS1/", tree(node("GS1/a", 10, stale=True, label="GREEN")))
    assert status == CHECK_CRITICAL
    assert "1 stale under GS1/ (worst GS1/a STALE)" in line


# ----------------------------------------------------------------------
# Thresholds that match nothing; the shipped example configurations
# ----------------------------------------------------------------------


def test_unmatched_thresholds() -> None:
    thresholds = [
        Threshold("CPU/cpu_total_percent", red=90),
        Threshold("CPU/cpu_totl", red=90),
        Threshold("*_temp_c", red=80),
    ]
    paths = ["CPU/cpu_total_percent", "Memory/memory_used_percent"]
    assert unmatched_thresholds(thresholds, paths) == [1, 2]
    assert unmatched_thresholds(thresholds, [*paths, "Sensors/core_temp_c"]) == [1]
    assert unmatched_thresholds([], paths) == []


@pytest.mark.parametrize(
    ("package", "shipped", "example"),
    [("hub", "example-hub.toml", "hub.toml"), ("agent", "example-agent.toml", "agent-rack.toml")],
)
def test_the_shipped_example_configs_are_the_deploy_examples(package: str, shipped: str, example: str) -> None:
    """What `gsmon hub|agent --print-example-config` prints is deploy/examples/…, byte for byte."""
    assert (REPO / package / shipped).read_bytes() == (REPO / "deploy" / "examples" / example).read_bytes()


def test_print_example_config(capsys: pytest.CaptureFixture[str]) -> None:
    from gsmon.common.cli import main

    for command, example in (("hub", "hub.toml"), ("agent", "agent-rack.toml")):
        assert main([command, "--print-example-config"]) == 0
        assert capsys.readouterr().out == (REPO / "deploy" / "examples" / example).read_text()


def test_a_hub_pair_comes_from_the_flag_the_variable_or_a_file(tmp_path: Path) -> None:
    """Issue 17 (1.3): a hub pair is one setting, two endpoints joined by a comma (a file may use an array)."""
    pair = "tcp://10.0.0.1:7763,tcp://10.0.0.2:7763"
    assert resolve_client_settings(pair, environ={}, files=()).hub == pair
    assert resolve_client_settings(environ={"GSMON_HUB": pair.replace(",", ", ")}, files=()).hub == pair
    text = tmp_path / "client.toml"
    text.write_text(f'hub = "{pair}"\n')
    assert resolve_client_settings(environ={}, files=(text,)).hub == pair
    array = tmp_path / "array.toml"
    array.write_text('hub = ["tcp://10.0.0.1:7763", "tcp://10.0.0.2:7763"]\n')
    assert resolve_client_settings(environ={}, files=(array,)).hub == pair
    with pytest.raises(ConfigError, match=r"--hub: .*endpoint 2 of 2 is empty"):
        resolve_client_settings("tcp://10.0.0.1:7763,", environ={}, files=())
    twice = tmp_path / "twice.toml"
    twice.write_text('hub = ["tcp://10.0.0.1:7763", "tcp://10.0.0.1:7763"]\n')
    with pytest.raises(ConfigError, match="listed twice"):
        resolve_client_settings(environ={}, files=(twice,))
