"""notify.toml and the flags: every bad input is one line naming the key, the value and what is wanted."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsmon.common.config import ConfigError
from gsmon.common.notify.config import parse_route_flag, read_notify_config
from gsmon.common.notify.deliver import url_problem

GOOD = """
[notify]
hub = "tcp://127.0.0.1:7763"
group_wait_s = 2
repeat_s = 600

[[receiver]]
name = "ops"
urls = ["json://127.0.0.1:8080/hook"]

[[route]]
prefix = "GS1/"
min_level = "red"
receivers = ["ops"]
continue = true

[[guidance]]
prefix = "GS1/ups"
text = "Check the breaker."
"""


def read(tmp_path: Path, text: str, *routes: str) -> object:
    path = tmp_path / "notify.toml"
    path.write_text(text)
    return read_notify_config(str(path), {}, list(routes), check_url=url_problem)


def test_a_good_file_is_read(tmp_path: Path) -> None:
    config = read(tmp_path, GOOD, "GS2:ORANGE:json://h/x")
    settings = config.settings  # type: ignore[attr-defined]
    assert settings.group_wait_s == 2.0
    assert settings.repeat_s == 600.0
    assert [(r.prefix, r.min_level, r.receivers, r.continue_) for r in settings.routes] == [
        ("GS1/", 30, ("ops",), True),
        ("GS2", 20, ("route1",), False),
    ]
    assert settings.receivers["route1"].urls == ("json://h/x",)
    assert settings.guidance[0].text == "Check the breaker."


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('min_level = "red"', 'min_level = "PURPLE"'), "route[0].min_level: expected a level"),
        (('receivers = ["ops"]', 'receivers = ["nobody"]'), "route[0].receivers[0]: expected a [[receiver]] name"),
        (("group_wait_s = 2", "group_wait_s = -1"), "notify.group_wait_s: expected a number"),
        (("repeat_s = 600", 'repeat_s = "often"'), "notify.repeat_s: expected a positive number of seconds"),
        (('urls = ["json://127.0.0.1:8080/hook"]', 'urls = ["nonsense"]'), "apprise does not understand"),
        (("continue = true", "continu = true"), "continu"),
        (('hub = "tcp://127.0.0.1:7763"', 'hub = "http://x"'), "notify.hub"),
    ],
)
def test_each_bad_input_is_one_line(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert change[0] in GOOD
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, GOOD.replace(*change))
    text = str(caught.value)
    assert "\n" not in text
    assert expected in text
    assert text.startswith(str(tmp_path / "notify.toml"))


def test_a_receiver_needs_somewhere_to_send(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"receiver\[0\]: receiver 'x' needs urls"):
        read(tmp_path, '[[receiver]]\nname = "x"\n')


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("GS1:RED", "expected PREFIX:LEVEL:URL"),
        ("GS1:HOT:json://h", "expected a level"),
    ],
)
def test_bad_route_flags(flag: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        parse_route_flag(flag)


def test_route_flag_keeps_colons_of_the_url() -> None:
    assert parse_route_flag(":STALE:mailto://u:p@h:25") == ("", 50, "mailto://u:p@h:25")


def test_the_deploy_example_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "notify.toml"
    config = read_notify_config(str(example), {}, [], check_url=url_problem)
    assert [r.receivers for r in config.settings.routes] == [("pager", "ops"), ("ops",)]
