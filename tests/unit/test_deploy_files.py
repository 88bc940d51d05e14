"""deploy/: systemd units, example configurations, container files and the documented commands.

No Docker engine and no running systemd are needed: the unit files are parsed
(and checked with ``systemd-analyze`` where it is installed), the examples are
loaded with the real loaders, and every ``gsmon`` command shown in the READMEs
and the container files is parsed by the real command-line parser.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from gsmon.agent.config import AgentConfig, load_agent_config
from gsmon.common.cli import build_parser
from gsmon.hub.config import load_hub_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
EXAMPLES = DEPLOY / "examples"
UNITS = {"hub": DEPLOY / "systemd" / "gsmon-hub.service", "agent": DEPLOY / "systemd" / "gsmon-agent.service"}
AGENT_EXAMPLES = ("agent-antenna.toml", "agent-rack.toml")
# The parents the built-in probes declare (see gsmon.agent.probes); modules add their own.
PROBE_PARENTS = {"CPU", "Memory", "Disk", "Network", "Sensors", "System", "Processes"}
SHELL_FENCES = ("```sh", "```bash", "```shell")

Unit = dict[str, dict[str, list[str]]]


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------


def parse_unit(path: Path) -> Unit:
    """A systemd unit file as {section: {key: [every value, in order]}} (keys may repeat)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: keep each setting on one line"
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"{path.name}:{number}: a setting outside any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{number}: not a key=value line: {line!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def last(unit: Unit, section: str, key: str) -> str:
    """The effective value of a setting (the last assignment wins); fails when it is missing."""
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def words(unit: Unit, section: str, key: str) -> list[str]:
    """Every word assigned to a list setting over all its lines."""
    return [word for value in unit.get(section, {}).get(key, []) for word in value.split()]


def parse_gsmon(argv: list[str]) -> tuple[int, str]:
    """Parse ``argv`` (the arguments after ``gsmon``) with the real parser: (exit status, output)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as stop:  # --help, --version, or a usage error
            return (stop.code if isinstance(stop.code, int) else 1), out.getvalue() + err.getvalue()
    if getattr(args, "handler", None) is None:
        return 2, "no command"
    return 0, ""


def shell_lines(markdown: Path) -> Iterator[tuple[int, str]]:
    """(line number, command) for every shell command shown in ``markdown``: lines
    of ```sh fences and of 4-space indented blocks, continuation lines joined."""
    fence: str | None = None
    pending = ""
    start = 0
    for number, raw in enumerate(markdown.read_text().splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped
            continue
        in_shell = fence is not None and fence.startswith(SHELL_FENCES)
        indented = fence is None and raw.startswith("    ") and stripped != ""
        if not (in_shell or indented):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        yield start, pending + stripped
        pending = ""


def gsmon_commands(command_line: str) -> Iterator[list[str]]:
    """The argument lists of the ``gsmon`` commands in one shell line
    (through ``sudo [-u USER]``, ``runuser -u USER --``, ``su -s SHELL USER -c '...'`` and
    ``docker|podman compose ... run [--rm] SERVICE``)."""
    tokens = shlex.split(command_line, comments=True)
    commands: list[list[str]] = [[]]
    redirected = False
    for token in tokens:
        if redirected:  # the file of a redirection is no argument
            redirected = False
        elif token in (">", ">>", "<", "2>"):
            redirected = True
        elif token in ("&&", "||", ";", "|"):
            commands.append([])
        else:
            commands[-1].append(token)
    for argv in commands:
        if argv[:1] == ["su"] and "-c" in argv:
            yield from gsmon_commands(argv[argv.index("-c") + 1])
            continue
        if argv[:1] == ["runuser"]:
            argv = argv[argv.index("--") + 1 :] if "--" in argv else argv[3:]
        if argv[:1] == ["sudo"]:
            argv = argv[1:]
            while argv and argv[0].startswith("-"):
                argv = argv[2:] if argv[0] in ("-u", "-g") else argv[1:]
        if argv[:1] in (["docker"], ["podman"], ["podman-compose"]) and "run" in argv:
            rest = argv[argv.index("run") + 1 :]
            while rest and rest[0].startswith("-"):
                rest = rest[1:]
            argv = rest[1:]  # after the service name
        if argv and (argv[0] == "gsmon" or argv[0].endswith("/bin/gsmon")):
            yield argv[1:]


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every gsmon command in README.md and deploy/README.md, as (where, arguments)."""
    return [
        (f"{markdown.relative_to(REPO)}:{number}", argv)
        for markdown in (REPO / "README.md", DEPLOY / "README.md")
        for number, line in shell_lines(markdown)
        for argv in gsmon_commands(line)
    ]


def subcommand_path(argv: list[str]) -> tuple[str, ...]:
    """``("keys", "agent")`` for ``keys agent ant2 --mount ...``; ``("hub",)`` for ``hub --config x``."""
    path: list[str] = []
    for token in argv:
        if token.startswith("-") or (path and path[0] != "keys") or len(path) == 2:
            break
        path.append(token)
    return tuple(path)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction of a Containerfile, continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, f"{path.name} ends in a continuation line"
    return instructions


def agent_example(name: str) -> AgentConfig:
    return load_agent_config(EXAMPLES / name)


# ----------------------------------------------------------------------
# systemd units
# ----------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_runs_the_right_command_as_gsmon_with_a_restart_policy(role: str) -> None:
    """Each unit runs `gsmon <role> --config /etc/gsmon/<role>.toml` as gsmon; restarts, but not on a bad config."""
    unit = parse_unit(UNITS[role])
    command = shlex.split(last(unit, "Service", "ExecStart"))
    assert command[0].endswith("/bin/gsmon")
    assert command[1:] == [role, "--config", f"/etc/gsmon/{role}.toml"]
    assert parse_gsmon(command[1:])[0] == 0
    assert last(unit, "Service", "User") == "gsmon"
    assert last(unit, "Service", "Group") == "gsmon"
    assert last(unit, "Service", "Restart") == "on-failure"
    assert "2" in words(unit, "Service", "RestartPreventExitStatus"), "exit status 2 (bad config) must not loop"
    assert "network-online.target" in words(unit, "Unit", "After")
    assert "network-online.target" in words(unit, "Unit", "Wants")
    assert last(unit, "Install", "WantedBy") == "multi-user.target"


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_is_sandboxed(role: str) -> None:
    """Both units carry the sandboxing the deployment promises, and write nowhere."""
    unit = parse_unit(UNITS[role])
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
    }.items():
        assert last(unit, "Service", key) == value, f"{key}={value} expected"
    assert last(unit, "Service", "ProtectHome") in ("yes", "read-only")
    assert set(words(unit, "Service", "RestrictAddressFamilies")) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    filters = unit["Service"]["SystemCallFilter"]
    assert filters[0] == "@system-service"
    assert all(value.startswith("~") for value in filters[1:]), "later filters may only take calls away"
    assert "ReadWritePaths" not in unit["Service"], "neither process writes files"


def test_agent_unit_keeps_what_the_probes_need() -> None:
    """The agent sees other users' processes (process checks) and /home's real file system (disk probe)."""
    unit = parse_unit(UNITS["agent"])
    assert "ProtectProc" not in unit["Service"], "ProtectProc=invisible would hide other users' processes"
    assert "ProcSubset" not in unit["Service"], "the probes read /proc/stat, /proc/meminfo, /proc/net/dev..."
    assert last(unit, "Service", "ProtectHome") == "read-only"
    assert "PrivateNetwork" not in unit["Service"], "the network probe measures the host's interfaces"
    text = UNITS["agent"].read_text()
    for relaxation in ("CAP_SYS_PTRACE", "PrivateDevices=no", "MemoryDenyWriteExecute=no", "ReadWritePaths="):
        assert relaxation in text, f"the agent unit's comments should say when to use {relaxation}"


def _verifiable_copies(tmp_path: Path) -> list[Path]:
    """The units with ExecStart pointing at an executable that exists here (verify checks it)."""
    gsmon = shutil.which("gsmon") or str(Path(sys.executable).with_name("gsmon"))
    copies = []
    for path in UNITS.values():
        copy = tmp_path / path.name
        copy.write_text(re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={gsmon}", path.read_text()))
        copies.append(copy)
    return copies


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd itself finds nothing wrong: no unknown key, no unparsable value."""
    copies = _verifiable_copies(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, copies)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == "", result.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_exposure_is_low_by_systemd_analyze_security(tmp_path: Path) -> None:
    """`systemd-analyze security --offline` rates both units 'OK' (exposure at most 2.0 of 10)."""
    for copy in _verifiable_copies(tmp_path):
        result = subprocess.run(
            ["systemd-analyze", "security", "--offline=true", "--threshold=20", str(copy)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        if "--offline" in result.stderr and "unrecognized" in result.stderr:
            pytest.skip("this systemd-analyze has no --offline")
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr


# ----------------------------------------------------------------------
# Example configurations
# ----------------------------------------------------------------------


def test_example_hub_config_loads_and_listens_with_keys() -> None:
    """hub.toml loads with the real loader, listens beyond loopback, and never without keys."""
    config = load_hub_config(EXAMPLES / "hub.toml")
    assert config.endpoints.agents == "tcp://0.0.0.0:7761"
    assert config.endpoints.subscribers == "tcp://0.0.0.0:7762"
    assert config.endpoints.query == "tcp://0.0.0.0:7763"
    assert config.keys_dir == EXAMPLES / "keys", "keys next to the file: /etc/gsmon/keys once installed"


@pytest.mark.parametrize("name", AGENT_EXAMPLES)
def test_example_agent_configs_load_with_keys_and_a_mount_under_the_station(name: str) -> None:
    """Each example agent config loads, has keys next to it and a mount under GS1/."""
    config = agent_example(name)
    assert config.agent.mount.startswith("GS1/")
    assert config.agent.hubs == ("tcp://10.10.0.1:7761",)
    assert config.agent.security is not None
    assert config.agent.security.hub_public_key_file == EXAMPLES / "keys" / "hub.key"
    assert config.agent.security.secret_key_file == EXAMPLES / "keys" / f"{config.agent.name}.key_secret"
    assert config.logging.alerts == "WARNING"


@pytest.mark.parametrize("name", AGENT_EXAMPLES)
def test_example_thresholds_name_points_that_exist(name: str) -> None:
    """Every [[thresholds]] pattern starts with a parent the probes or the loaded module declare."""
    config = agent_example(name)
    parents = set(PROBE_PARENTS)
    if config.modules:
        parents.add("Antenna")
    assert config.thresholds
    for threshold in config.thresholds:
        parent = threshold.point.split("/")[0]
        assert any(fnmatchcase(candidate, parent) for candidate in parents), threshold.point
    process_points = {
        f"Processes/{check.name}{suffix}"
        for check in config.probes.processes
        for suffix in ("", "_cpu_percent", "_rss_bytes")
    }
    for threshold in config.thresholds:
        if threshold.point.startswith("Processes/"):
            assert any(fnmatchcase(point, threshold.point) for point in process_points), threshold.point


def test_antenna_example_loads_the_module_next_to_it() -> None:
    """agent-antenna.toml names antenna_controller.py by a path relative to itself."""
    config = agent_example("agent-antenna.toml")
    assert config.modules == (str(EXAMPLES / "antenna_controller.py"),)
    assert Path(config.modules[0]).is_file()
    assert (config.agent.name, config.agent.mount) == ("ant2", "GS1/Antenna2")


def test_rack_example_has_process_checks_and_thresholds() -> None:
    """agent-rack.toml watches processes and judges CPU, memory and disks."""
    config = agent_example("agent-rack.toml")
    assert [check.name for check in config.probes.processes] == ["gpsd", "chronyd", "sdr_server"]
    points = {threshold.point for threshold in config.thresholds}
    assert {"CPU/cpu_total_percent", "Memory/memory_used_percent", "Disk/*_used_percent"} <= points
    assert config.logging.format == "json"


@pytest.mark.parametrize("name", AGENT_EXAMPLES)
def test_readme_grants_each_example_agent_its_mount(name: str) -> None:
    """deploy/README.md creates a key for each example agent, with that agent's name and mount."""
    config = agent_example(name)
    grants = {
        (argv[2], argv[argv.index("--mount") + 1])
        for _, argv in documented_commands()
        if argv[:2] == ["keys", "agent"] and "--mount" in argv
    }
    assert (config.agent.name, config.agent.mount) in grants


# ----------------------------------------------------------------------
# Documented commands
# ----------------------------------------------------------------------


def test_every_documented_gsmon_command_parses() -> None:
    """Every gsmon command in README.md and deploy/README.md uses real subcommands, flags and values."""
    commands = documented_commands()
    assert len(commands) >= 20, "the command extraction found too little; is the README format unchanged?"
    failures = []
    for where, argv in commands:
        status, output = parse_gsmon(argv)
        if status != 0:
            failures.append(f"{where}: gsmon {shlex.join(argv)}\n{output.strip()}")
    assert not failures, "\n\n".join(failures)


def test_the_walkthrough_needs_no_sudo() -> None:
    """deploy/README.md works on a host without sudo: root's shell, and runuser (or su -s) for the gsmon user."""
    commands = [line for _, line in shell_lines(DEPLOY / "README.md")]
    assert not [line for line in commands if re.search(r"(^|[;&|]\s*)sudo\b", line)]
    assert any(line.startswith("runuser -u gsmon -- gsmon keys init") for line in commands)
    assert list(gsmon_commands("su -s /bin/sh gsmon -c 'gsmon keys list --hub-dir /k'")) == [
        ["keys", "list", "--hub-dir", "/k"]
    ]


def test_documented_commands_cover_the_walkthrough() -> None:
    """The walk-through shows keys, the hub, the agent and both views, each with a working --help."""
    paths = {subcommand_path(argv) for _, argv in documented_commands()}
    expected = {
        ("keys", "init"),
        ("keys", "agent"),
        ("keys", "subscriber"),
        ("keys", "list"),
        ("keys", "revoke"),
        ("keys", "pair"),
        ("hub",),
        ("agent",),
        ("get",),
        ("watch",),
    }
    assert expected <= paths
    for path in sorted(expected):
        status, output = parse_gsmon([*path, "--help"])
        assert status == 0, (path, output)
        assert "usage: gsmon" in output, (path, output)


# ----------------------------------------------------------------------
# Container files
# ----------------------------------------------------------------------


def _json_array(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list), text
    assert all(isinstance(item, str) for item in value), text
    return value


def _healthcheck_from_containerfile() -> list[str]:
    (healthcheck,) = [
        args for keyword, args in dockerfile_instructions(DEPLOY / "Containerfile") if keyword == "HEALTHCHECK"
    ]
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options
    assert "--timeout=" in options
    return _json_array(command)


def _healthcheck_from_compose() -> list[str]:
    (line,) = [line for line in (DEPLOY / "compose.yaml").read_text().splitlines() if line.strip().startswith("test:")]
    test = _json_array(line.split(":", 1)[1].strip())
    assert test[0] == "CMD"
    return test[1:]


def test_containerfile_runs_the_hub_as_a_non_root_user_with_a_healthcheck() -> None:
    """The image: pinned bases, sources that exist, a non-root USER, the hub as CMD, keys volume, ports of hub.toml."""
    instructions = dockerfile_instructions(DEPLOY / "Containerfile")
    keywords = [keyword for keyword, _ in instructions]
    for keyword, args in instructions:
        if keyword == "FROM":
            image = args.split()[0]
            assert ":" in image.rsplit("/", 1)[-1], f"pin {image} to a version"
            assert not image.endswith(":latest"), f"pin {image} to a version"
        if keyword == "COPY" and "--from=" not in args:
            sources = [word for word in args.split() if not word.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
    user_at = max(index for index, keyword in enumerate(keywords) if keyword == "USER")
    assert instructions[user_at][1].split(":")[0] not in ("root", "0")
    (cmd,) = [args for keyword, args in instructions if keyword == "CMD"]
    assert keywords.index("CMD") > user_at
    argv = _json_array(cmd)
    assert argv == ["gsmon", "hub", "--config", "/etc/gsmon/hub.toml"]
    assert ("VOLUME", '["/etc/gsmon/keys"]') in instructions
    (expose,) = [args for keyword, args in instructions if keyword == "EXPOSE"]
    config = load_hub_config(EXAMPLES / "hub.toml")
    ports = {
        endpoint.rsplit(":", 1)[1]
        for endpoint in (config.endpoints.agents, config.endpoints.subscribers, config.endpoints.query)
    }
    assert set(expose.split()) == ports
    health = _healthcheck_from_containerfile()
    assert health[0] == "gsmon"
    assert parse_gsmon(health[1:])[0] == 0


def test_compose_file_runs_the_image_non_root_with_the_same_healthcheck() -> None:
    """compose.yaml: the hub service, non-root, read-only, keys volume, same ports on both sides, same healthcheck."""
    text = (DEPLOY / "compose.yaml").read_text()
    assert _healthcheck_from_compose() == _healthcheck_from_containerfile()
    assert re.search(r'(?m)^\s+user: "10001:10001"$', text)
    assert re.search(r"(?m)^\s+- gsmon-keys:/etc/gsmon/keys$", text)
    assert re.search(r"(?m)^\s+dockerfile: deploy/Containerfile$", text)
    for port in ("7761", "7762", "7763"):
        assert f'"{port}:{port}"' in text


def test_compose_file_is_yaml_with_that_service() -> None:
    """Where PyYAML is installed: compose.yaml parses, and says the same as the text checks."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (the compose text checks still ran)")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    hub = compose["services"]["hub"]
    assert hub["user"] == "10001:10001"
    assert hub["read_only"] is True
    assert hub["cap_drop"] == ["ALL"]
    assert hub["healthcheck"]["test"][1:] == _healthcheck_from_containerfile()
    assert parse_gsmon(hub["command"][1:])[0] == 0
    assert "gsmon-keys" in compose["volumes"]


# ----------------------------------------------------------------------
# What the READMEs promise
# ----------------------------------------------------------------------


def _python_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown.read_text(), flags=re.DOTALL)


def test_readme_publishing_example_runs_with_the_keys_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The "publishing from your own application" example: real API, keys made by the command the README
    shows, and an agent name and mount of its own (not the standalone agent's)."""
    from gsmon.common.cli import main

    (example,) = [block for block in _python_blocks(REPO / "README.md") if "ClientKeys.load" in block]
    readme = (REPO / "README.md").read_text()
    (grant,) = re.findall(r"`gsmon keys agent (ant1-controller [^`]*)`", readme)
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["keys", "init", str(tmp_path / "hub")]) == 0
        argv = shlex.split(grant.replace("/etc/gsmon/keys", str(tmp_path / "hub")))
        assert main(["keys", "agent", *argv]) == 0
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 -- the project's own README
    mon = namespace["mon"]
    from gsmon.agent import Monitor

    assert isinstance(mon, Monitor)
    assert mon.publisher is not None
    assert (mon.publisher.agent, mon.publisher.mount) == ("ant1-controller", "GS1/Antenna1/Controller")
    assert "GS1/Antenna1/Host" in readme, "the host's standalone agent is mounted beside it, not above it"


@pytest.mark.parametrize("markdown", ["README.md", "deploy/README.md"])
def test_readmes_say_what_happens_to_a_dead_agents_points(markdown: str) -> None:
    text = " ".join((REPO / markdown).read_text().split())
    assert "STALE" in text
    assert "agent_retention_s" in text
    assert "1 hour" in text
    assert "gsmon forget" in text


def test_help_points_at_documentation_the_installed_package_has() -> None:
    """No --help text sends an operator to a file of the source tree."""
    for command in (["hub"], ["agent"], ["get"], ["watch"], ["keys"], ["demo"]):
        status, output = parse_gsmon([*command, "--help"])
        assert status == 0, output
        assert "deploy/" not in output, (command, output)
        assert "examples/" not in output, (command, output)
    assert "--print-example-config" in parse_gsmon(["hub", "--help"])[1]
    assert "--print-example-config" in parse_gsmon(["agent", "--help"])[1]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    """The README's first command blocks are the demo and the test command, and .ci/run runs exactly
    that test command (tests/run, which installs what the suite needs and runs pytest)."""
    blocks = re.findall(r"^    (\S.*)$", (REPO / "README.md").read_text().split("\n---\n", 1)[0], flags=re.MULTILINE)
    assert len(blocks) == 2, blocks
    demo, test = blocks
    assert demo.startswith("python3 -m venv .venv && .venv/bin/pip install -q . && ")
    assert demo.endswith("gsmon demo")
    assert test == "sh tests/run"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == test, "the last line of .ci/run must be the README's test command"
    runner = (REPO / "tests" / "run").read_text()
    assert "apt-get update" in runner
    assert "exec .venv/bin/python -m pytest" in runner
