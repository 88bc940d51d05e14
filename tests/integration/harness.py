"""Real processes for integration tests: start, read their ready line, reap.

Every child is started through a :class:`Processes` registry owned by a
fixture, so it is terminated (SIGTERM, then SIGKILL) and reaped even when the
test fails, and the test fails when a child ends otherwise than it said
(:meth:`Processes.reap`). The child type and the registry are
:mod:`gsmon.common.children`, which ``gsmon demo`` and the benchmarks use
too. Children bind port 0 and print their real endpoints on a ready line
(:mod:`gsmon.common.ready`); tests read them from there and never choose
ports themselves. Waiting is always "poll a condition until a deadline",
never a bare sleep.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from gsmon.common.children import Child, Children
from gsmon.common.names import path_in_prefix

HERE = Path(__file__).resolve().parent
AGENT_PROGRAM = HERE / "agent_program.py"
DIE_WITH_PARENT = HERE / "die_with_parent.py"
SUBSCRIBER_PROGRAM = HERE / "subscriber_program.py"

# Fast timings so that liveness tests take seconds, not minutes.
FAST_HUB_ARGS = [
    "--heartbeat-s",
    "0.2",
    "--agent-liveness",
    "3",
    "--stale-factor",
    "3",
    "--stale-slack-s",
    "0.5",
    "--removal-grace-s",
    "1.0",
]

STDERR_TAIL_LINES: Final = 40  # of a child's stderr, in a failure's message

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.05, what: str = "") -> T:
    """Call ``predicate`` until it returns something truthy; return it. Fails
    the test with ``what`` when ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what or predicate!r}")
        time.sleep(interval_s)


def polled(subscriber: Any, timeout_s: float = 0.05) -> bool:
    """Let a Subscriber take in what arrived, then answer True, so that
    ``wait_until(lambda: polled(sub) and condition)`` re-checks the condition
    on fresh data every turn."""
    subscriber.poll(timeout_s)
    return True


def wait_until_gone(subscriber: Any, prefix: str, timeout_s: float = 10.0, what: str = "") -> None:
    """Poll ``subscriber`` until no node at or below ``prefix`` (segment by segment: ``A/B`` is not
    ``A/B2``) is left in its tree, e.g. a stopped client's ``_hub/clients/<name>`` figures."""
    wait_until(
        lambda: polled(subscriber) and not any(path_in_prefix(path, prefix) for path in subscriber.tree),
        timeout_s=timeout_s,
        what=what or f"every node under {prefix} to leave the tree",
    )


def tree_digest(tree: Mapping[str, Any]) -> str:
    """A digest of a Subscriber's tree (path, kind, value, alert, stale of every
    node), so that two processes can compare their views in one short line."""
    digest = hashlib.sha256()
    for path in sorted(tree):
        node = tree[path]
        digest.update(repr((path, node.kind, node.value, node.alertcode, node.stale)).encode())
    return digest.hexdigest()[:16]


def gsmon_cli(*args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run one short-lived ``gsmon`` command (``keys ...``, or one that must fail) to completion."""
    return subprocess.run(
        [sys.executable, "-m", "gsmon.common.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@dataclass(frozen=True)
class KeySet:
    """Keys made with the real ``gsmon keys`` command: the hub's folder and one folder per client.

    Layout under ``root``: ``hub/`` (hub.key_secret, hub.key, authorized.toml),
    ``<client>/`` (<client>.key_secret and a copy of hub.key) for each granted
    client and each stranger (a pair the hub does not list), and ``otherhub/``
    (another hub's keys, for a client holding the wrong hub key).
    """

    root: Path

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    @property
    def hub_public(self) -> Path:
        return self.hub_dir / "hub.key"

    @property
    def other_hub_public(self) -> Path:
        return self.root / "otherhub" / "hub.key"

    def secret(self, name: str) -> Path:
        return self.root / name / f"{name}.key_secret"

    def copy(self, dest: Path) -> KeySet:
        """A private copy (modes kept), for a test that changes the allow-list."""
        shutil.copytree(self.root, dest)
        return KeySet(dest)


def make_keys(
    root: Path,
    agents: Mapping[str, Sequence[str]],
    subscribers: Mapping[str, Sequence[str] | None],
    strangers: Sequence[str] = (),
) -> KeySet:
    """Run ``gsmon keys init/agent/subscriber/pair`` to build a :class:`KeySet`."""
    keys = KeySet(root)
    commands = [["keys", "init", str(keys.hub_dir)], ["keys", "init", str(root / "otherhub")]]
    for name, mounts in agents.items():
        mount_args = [arg for mount in mounts for arg in ("--mount", mount)]
        commands.append(["keys", "agent", name, *mount_args, "--hub-dir", str(keys.hub_dir), "--out", str(root / name)])
    for name, prefixes in subscribers.items():
        prefix_args = [arg for prefix in prefixes or () for arg in ("--prefix", prefix)]
        commands.append(
            ["keys", "subscriber", name, *prefix_args, "--hub-dir", str(keys.hub_dir), "--out", str(root / name)]
        )
    commands += [["keys", "pair", name, "--out", str(root / name)] for name in strangers]
    for command in commands:
        result = gsmon_cli(*command)
        assert result.returncode == 0, f"gsmon {' '.join(command)}: {result.stderr}"
    for name in strangers:  # a stranger holds the right hub key, but the hub does not know its own
        shutil.copy2(keys.hub_public, root / name / "hub.key")
    return keys


class Process(Child):
    """A child of a test (:class:`gsmon.common.children.Child`): stdout lines collected by a reader thread,
    stderr in a file of the test's log folder, started through die_with_parent.py."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        child_env = dict(os.environ, PYTHONUNBUFFERED="1")
        if env:
            child_env.update(env)
        super().__init__(
            name,
            # Through die_with_parent.py: even a test run killed outright (no
            # fixture teardown) leaves no orphan hub or agent behind.
            [sys.executable, str(DIE_WITH_PARENT), str(os.getpid()), *argv],
            env=child_env,
            stderr_path=log_dir / f"{name}-{time.monotonic_ns()}.stderr",
            tail_lines=STDERR_TAIL_LINES,
        )
        self.argv = list(argv)  # the test's command line, without the wrapper


@dataclass
class Hub:
    process: Process
    agents: str
    subscribers: str
    query: str
    ready_line: str


@dataclass
class Processes:
    """Starts children for one test and reaps all of them at the end (a
    :class:`gsmon.common.children.Children` registry of :class:`Process`).

    :meth:`reap` fails the test when a child did not end with status 0 (what
    every gsmon program and test helper gives on SIGTERM) or printed a Python
    traceback, unless the test said otherwise for it: ``child.expect_exit(1)``,
    ``child.expect_exit(signal.SIGKILL)``; ``child.kill()`` declares the
    SIGKILL it sends.
    """

    log_dir: Path
    registry: Children = field(default_factory=Children)

    @property
    def children(self) -> list[Child]:
        return self.registry.children

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Process:
        process = Process(name, argv, self.log_dir, env)
        self.registry.add(process)
        return process

    def gsmon(self, name: str, *args: str, env: dict[str, str] | None = None) -> Process:
        if args[:1] == ("agent",) and not any(arg == "--state-dir" or arg.startswith("--state-dir=") for arg in args):
            # Each agent its own outbox (never the user's default state directory), kept with the test's logs.
            args = (*args, "--state-dir", str(self.log_dir / f"agent-state-{name}-{len(self.children)}"))
        return self.start(name, [sys.executable, "-m", "gsmon.common.cli", *args], env)

    def hub(
        self,
        *extra: str,
        agents: str = "tcp://127.0.0.1:0",
        subscribers: str = "tcp://127.0.0.1:0",
        query: str = "tcp://127.0.0.1:0",
        name: str = "hub",
        fast: bool = True,
    ) -> Hub:
        args = ["hub", "--agents", agents, "--subscribers", subscribers, "--query", query]
        args += FAST_HUB_ARGS if fast else []
        if not any(arg == "--state-dir" or arg.startswith("--state-dir=") for arg in extra):
            # Each hub its own state store (never the user's default one), kept with the test's logs.
            args += ["--state-dir", str(self.log_dir / f"state-{name}-{len(self.children)}")]
        process = self.gsmon(name, *args, *extra)
        fields = process.ready()
        return Hub(process, fields["agents"], fields["subscribers"], fields["query"], process.wait_for_ready())

    def agent(
        self,
        hub: Hub | Sequence[Hub],
        name: str,
        spec: dict[str, Any],
        mount: str | None = None,
        heartbeat_s: float = 0.2,
        key: Path | None = None,
        hub_key: Path | None = None,
    ) -> Process:
        hubs = [hub] if isinstance(hub, Hub) else list(hub)
        argv = [sys.executable, str(AGENT_PROGRAM), "--name", name, "--spec", json.dumps(spec)]
        argv += ["--heartbeat-s", str(heartbeat_s)]
        for each in hubs:
            argv += ["--hub", each.agents]
        if mount is not None:
            argv += ["--mount", mount]
        if key is not None and hub_key is not None:
            argv += ["--key", str(key), "--hub-key", str(hub_key)]
        process = self.start(f"agent-{name}", argv)
        process.wait_for_ready()
        return process

    def subscriber(
        self,
        hub: Hub,
        prefix: str = "",
        *,
        name: str = "subscriber",
        rcvhwm: int | None = None,
        watch: str | None = None,
        key: Path | None = None,
        hub_key: Path | None = None,
    ) -> Process:
        """A subscriber process (subscriber_program.py), returned once its first snapshot is loaded."""
        argv = [sys.executable, str(SUBSCRIBER_PROGRAM), "--hub", hub.query, "--prefix", prefix]
        if rcvhwm is not None:
            argv += ["--rcvhwm", str(rcvhwm)]
        if watch is not None:
            argv += ["--watch", watch]
        if key is not None and hub_key is not None:
            argv += ["--key", str(key), "--hub-key", str(hub_key)]
        process = self.start(name, argv)
        process.wait_for_ready()
        return process

    def reap(self) -> None:
        """Stop every child (newest first, whatever happens to the others), then fail with one paragraph per
        child that did not end as expected: its name, its status and the tail of its stderr."""
        problems = self.registry.reap()
        if problems:
            raise AssertionError("\n\n".join(problems))

    def stderr_report(self) -> str:
        return "\n".join(
            f"--- {child.name} (pid {child.pid}) stderr ---\n{child.stderr()[-4000:]}" for child in self.children
        )
