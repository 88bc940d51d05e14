"""Name and path rules: what a point, parent or mount may be called."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsmon.common import names
from gsmon.common.names import (
    MAX_DEPTH,
    MAX_NAME_CHARS,
    MAX_PATH_BYTES,
    SEPARATOR,
    InvalidNameError,
    check_mount,
    check_name,
    check_path,
    join,
    path_in_prefix,
    split,
)


@pytest.mark.parametrize(
    "name",
    ["Point 1", "cpu_usage", "Antenna 2", "température", "天线", "a", "x" * MAX_NAME_CHARS, "_private", " padded "],
)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    """Spaces, Unicode and names up to the cap are accepted and returned as given."""
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a/b", "'/'"),
        ("/", "'/'"),
        ("line\nbreak", "control characters"),
        ("tab\there", "control characters"),
        ("nul\x00", "control characters"),
        ("del\x7f", "control characters"),
        ("c1\x85", "control characters"),
        ("esc\x1b[31m", "control characters"),
        ("", "empty"),
        ("   ", "blank"),
        ("x" * (MAX_NAME_CHARS + 1), f"at most {MAX_NAME_CHARS}"),
        ("lone\ud800", "surrogate"),
    ],
)
def test_bad_names_are_refused_with_name_and_reason(name: str, reason: str) -> None:
    """A bad name raises InvalidNameError whose message quotes the name and says why."""
    with pytest.raises(InvalidNameError) as info:
        check_name(name, "point name")
    message = str(info.value)
    assert "point name" in message
    assert repr(name) in message
    assert reason in message


@pytest.mark.parametrize("name", [None, 3, b"bytes", ("a",)])
def test_non_str_names_are_refused(name: object) -> None:
    """Only str names are accepted; the error says which type was given."""
    with pytest.raises(InvalidNameError, match=type(name).__name__):
        check_name(name)


def test_invalid_name_error_is_a_value_error() -> None:
    """Callers catching ValueError also catch bad names."""
    assert issubclass(InvalidNameError, ValueError)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"), max_size=40))
def test_any_text_without_slash_or_controls_is_a_valid_name(name: str) -> None:
    """Every non-blank text free of '/' and control characters within the cap is a valid name."""
    if not name or name.isspace():
        with pytest.raises(InvalidNameError):
            check_name(name)
    else:
        assert check_name(name) == name


@given(st.text(max_size=20), st.sampled_from(["/", "\n", "\x00", "\x1f", "\x7f", "\x9f"]), st.text(max_size=20))
def test_any_name_with_a_forbidden_character_is_refused(prefix: str, bad: str, suffix: str) -> None:
    """A forbidden character anywhere in a name makes it invalid."""
    with pytest.raises(InvalidNameError):
        check_name(prefix + bad + suffix)


def test_split_and_join_round_trip() -> None:
    """join() and split() are inverse on valid paths; join skips empty parts."""
    assert split("GS1/Antenna 2/Azimuth") == ["GS1", "Antenna 2", "Azimuth"]
    assert join("GS1", "Antenna 2", "Azimuth") == "GS1/Antenna 2/Azimuth"
    assert join("", "GS1", "", "x") == "GS1/x"
    assert join("GS1/Antenna2", "Az") == "GS1/Antenna2/Az"
    assert SEPARATOR == "/"


def test_check_path_accepts_valid_paths() -> None:
    """A path of valid names within depth and byte caps is returned unchanged."""
    path = "/".join(f"level {i}" for i in range(MAX_DEPTH))
    assert check_path(path) == path
    assert check_path("single") == "single"


def test_check_path_caps_depth() -> None:
    """A path one level deeper than MAX_DEPTH is refused, saying how deep it is."""
    path = "/".join(["n"] * (MAX_DEPTH + 1))
    with pytest.raises(InvalidNameError, match=f"at most {MAX_DEPTH} levels deep"):
        check_path(path)


def test_check_path_caps_utf8_bytes() -> None:
    """A path longer than MAX_PATH_BYTES of UTF-8 is refused even if each name is fine."""
    name = "é" * 100  # 200 bytes each
    path = "/".join([name] * 6)
    assert len(path.encode()) > MAX_PATH_BYTES
    with pytest.raises(InvalidNameError, match=f"{MAX_PATH_BYTES} bytes"):
        check_path(path)


@pytest.mark.parametrize("path", ["", "/a", "a/", "a//b", "a/\tb", "a/ /b"])
def test_check_path_refuses_bad_segments(path: str) -> None:
    """Empty, blank or control-character segments make a path invalid and the error quotes it."""
    with pytest.raises(InvalidNameError) as info:
        check_path(path)
    assert repr(path) in str(info.value)


def test_check_path_refuses_non_str() -> None:
    """A path must be a str."""
    with pytest.raises(InvalidNameError, match="must be a str"):
        check_path(["a", "b"])


def test_check_mount_refuses_reserved_root() -> None:
    """Agents may not mount under a root starting with '_' (the hub's own points)."""
    assert check_mount("GS1/Antenna2") == "GS1/Antenna2"
    assert check_mount("GS1/_private") == "GS1/_private"
    with pytest.raises(InvalidNameError, match="reserved"):
        check_mount("_hub/agents")


def test_check_mount_applies_path_rules() -> None:
    """A mount path follows every path rule too."""
    with pytest.raises(InvalidNameError, match="mount path"):
        check_mount("GS1//x")


@pytest.mark.parametrize(
    ("path", "prefix", "selected"),
    [
        ("GS1/Antenna1", "GS1/Antenna1", True),
        ("GS1/Antenna1/Az", "GS1/Antenna1", True),
        ("GS1/Antenna10", "GS1/Antenna1", False),
        ("GS1/Antenna10/Az", "GS1/Antenna1", False),
        ("GS1/Antenna1", "GS1/Antenna1/", False),  # a trailing / is the subtree only
        ("GS1/Antenna1/Az", "GS1/Antenna1/", True),
        ("_hub/agents_live", "_hub/agents", False),
        ("_hub/agents/ant", "_hub/agents", True),
        ("_hub/agents", "_hub/agents", True),
        ("GS1", "", True),
        ("GS1", "GS", False),
        ("GS2/x", "GS1", False),
        ("GS1", "GS1/Antenna1", False),
    ],
)
def test_a_prefix_selects_whole_segments(path: str, prefix: str, selected: bool) -> None:
    """``A/B`` is that node and its subtree, never ``A/B2``; ``A/B/`` the subtree below it."""
    assert path_in_prefix(path, prefix) is selected


@given(st.lists(st.sampled_from(["a", "b", "ab", "é"]), min_size=1, max_size=4), st.integers(0, 4))
def test_a_prefix_selects_exactly_the_node_and_its_descendants(segments: list[str], cut: int) -> None:
    """For a prefix made of whole segments, selection is "equal, or a descendant" (with /: descendant only)."""
    path = SEPARATOR.join(segments)
    prefix_segments = segments[:cut] if cut else ["a"]
    prefix = SEPARATOR.join(prefix_segments)
    is_descendant = segments[: len(prefix_segments)] == prefix_segments and len(segments) > len(prefix_segments)
    assert path_in_prefix(path, prefix) is (is_descendant or path == prefix)
    assert path_in_prefix(path, prefix + SEPARATOR) is is_descendant


@pytest.mark.parametrize(
    ("host", "short", "fallback", "expected"),
    [
        ("gs1-hub.example.org", False, "agent", "gs1-hub.example.org"),
        ("gs1-hub.example.org", True, "recorder", "gs1-hub"),
        ("__odd/host\tname", False, "agent", "odd_host_name"),  # reserved "_" dropped, "/" and controls replaced
        ("___", False, "agent", "agent"),  # nothing left: the fallback
        ("_.example.org", True, "recorder", "recorder"),
    ],
)
def test_the_host_name_made_a_valid_name(
    monkeypatch: pytest.MonkeyPatch, host: str, short: bool, fallback: str, expected: str
) -> None:
    """One rule for the agent's default name and the recorder's defaults: always a valid agent name."""
    monkeypatch.setattr(names.socket, "gethostname", lambda: host)
    made = names.host_name_as_name(short=short, fallback=fallback)
    assert made == expected
    assert names.check_agent_name(made) == made
    if not short and fallback == "agent":
        assert names.default_agent_name() == expected
