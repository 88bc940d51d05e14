"""``gsmon agent``: the standalone agent process beside a rack or a controller.

It runs a Monitor with the built-in psutil probes, the thresholds and the user
monitor modules of its configuration file, publishes to its hub(s), prints
one line ``READY agent=<name> mount=<mount> hubs=<endpoint,...>`` once it runs,
and stops cleanly on SIGTERM or SIGINT (exit status 0). Command-line flags
set the configuration key of the same name, laid over the file before it is
checked (an error names the flag); a bad file or flag gets one clear message
and exit status 2. ``--check-config`` does everything but connect and run;
``--print-example-config`` prints a commented example configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gsmon.common import logs
from gsmon.common.config import add_key_flag, flag_overrides
from gsmon.common.stopping import StopFlag

if TYPE_CHECKING:
    from gsmon.agent.config import AgentConfig
    from gsmon.agent.monitor import Monitor

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


EXAMPLE_CONFIG = "example-agent.toml"

# (flag names: the first matches the key, the others are older spellings), dotted key, type, metavar, help.
_KEY_FLAGS: tuple[tuple[tuple[str, ...], str, type[float] | type[int] | None, str | None, str], ...] = (
    (("--name",), "agent.name", None, None, "agent name (default: the host name)"),
    (("--mount",), "agent.mount", None, "PATH", "where the agent's points appear in the tree (default: its name)"),
    (
        ("--secret-key-file", "--key"),
        "agent.security.secret_key_file",
        None,
        "FILE",
        "this agent's secret key file (CURVE; with --hub-key)",
    ),
    (
        ("--hub-public-key-file", "--hub-key"),
        "agent.security.hub_public_key_file",
        None,
        "FILE",
        "the hub's public key file (CURVE; with --key)",
    ),
    (
        ("--heartbeat-interval-s", "--heartbeat-s"),
        "agent.heartbeat_interval_s",
        float,
        "SECONDS",
        "heartbeat interval when idle (default 1)",
    ),
    (
        ("--flush-interval-s",),
        "agent.flush_interval_s",
        float,
        "SECONDS",
        "how often changed points are sent (default 0.05)",
    ),
    (
        ("--state-interval-s",),
        "agent.state_interval_s",
        float,
        "SECONDS",
        "period of the full-state message (default 30)",
    ),
    (("--workers",), "agent.workers", int, "N", "threads running monitor functions (default 10)"),
    (
        ("--state-dir",),
        "agent.state_dir",
        None,
        "DIR",
        "where the outbox of transitions is kept (default /var/lib/gsmon if writable, else "
        "$XDG_STATE_HOME/gsmon; '' keeps it in memory only)",
    ),
    (
        ("--default-dt-s",),
        "agent.default_dt_s",
        float,
        "SECONDS",
        "poll interval of module points declared without dt (default 10)",
    ),
    (
        ("--default-timeout-s",),
        "agent.default_timeout_s",
        float,
        "SECONDS",
        "a monitor function still running after this long is reported as an error (default 10)",
    ),
    (("--log-level",), "logging.level", None, "LEVEL", f"one of {', '.join(logs.LEVELS)} (default INFO)"),
    (("--log-format",), "logging.format", None, "FORMAT", f"one of {', '.join(logs.FORMATS)} (default text)"),
)


def add_parser(subparsers: Any, name: str, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description="Run a standalone agent. Every flag sets the configuration key of the same name and "
        "overrides --config; without --hub or a hubs key, GSMON_AGENT_HUB names the hub (and GSMON_KEY, "
        "GSMON_HUB_KEY its keys).",
        epilog="Every configuration key, with an example: gsmon agent --print-example-config",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="agent configuration (TOML); see gsmon agent --print-example-config"
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the configuration, flags, keys, modules and thresholds without connecting anywhere: "
        "print 'config OK: ...' and exit 0, or one line saying what is wrong and exit 2",
    )
    parser.add_argument(
        "--print-example-config",
        action="store_true",
        help="print a commented example configuration (a rack host: probes, process checks, thresholds) and exit",
    )
    add_key_flag(
        parser,
        "--hub",
        key="agent.hubs",
        repeat=True,
        metavar="ENDPOINT",
        help="hub agents endpoint, e.g. tcp://hub:7761 (repeat for several hubs; default $GSMON_AGENT_HUB, "
        "else tcp://127.0.0.1:7761)",
    )
    for names, key, value_type, metavar, text in _KEY_FLAGS:
        add_key_flag(parser, *names, key=key, type=value_type, metavar=metavar, help=text)
    parser.set_defaults(handler=run)


def example_config() -> str:
    """The example configuration shipped with the package (deploy/examples/agent-rack.toml in the sources)."""
    return resources.files("gsmon.agent").joinpath(EXAMPLE_CONFIG).read_text(encoding="utf-8")


def point_paths(mon: Monitor) -> list[str]:
    """Every point's path inside the agent (what thresholds match), from the Monitor's public tree."""
    parents = {item.name: item.parent for item in mon.itertree()}
    paths = []
    for name in mon.names():
        segments = [name]
        parent = parents.get(name)
        while parent is not None:
            segments.append(parent)
            parent = parents.get(parent)
        paths.append("/".join(reversed(segments)))
    return paths


def warn_unmatched_thresholds(config: AgentConfig, paths: list[str]) -> int:
    """Log a WARNING for every configured threshold that matches none of ``paths``; return how many."""
    from gsmon.agent.thresholds import unmatched_thresholds

    unmatched = unmatched_thresholds(config.thresholds, paths)
    examples = ", ".join(sorted(paths)[:3]) or "none"
    for index in unmatched:
        log.warning(
            "%s: %r matches no point of this agent, so it judges nothing (the agent has %d points, e.g. %s); "
            "check the pattern",
            config.where(f"thresholds[{index}].point"),
            config.thresholds[index].point,
            len(paths),
            examples,
        )
    return len(unmatched)


def _outbox_words(config: AgentConfig) -> str:
    """How ``--check-config`` describes the outbox; UsageError when its folder cannot be written."""
    from gsmon.agent.outbox import outbox_file

    if not config.outbox.enabled:
        return "no outbox"
    state_dir = _outbox_dir(config)
    if state_dir is None:
        return "outbox in memory"
    return f"outbox {outbox_file(state_dir, config.agent.name)}"


def _outbox_dir(config: AgentConfig) -> Path | None:
    """Where the outbox goes: the state directory; a default one that cannot be written gives a WARNING and
    None (in memory: the agent runs anyway), one that was asked for a UsageError."""
    from gsmon.agent.config import writable_folder
    from gsmon.common.errors import UsageError

    state_dir = config.agent.state_dir
    if state_dir is None:
        return None
    folder = writable_folder(state_dir)
    if folder is None:
        return state_dir
    if config.agent.state_dir_given:
        raise UsageError(
            f"{config.where('agent.state_dir')}: {folder} is not writable, so the outbox cannot be kept in "
            f"{state_dir}: give --state-dir a writable folder (or state_dir = '' to keep it in memory)"
        )
    log.warning(
        "no writable state directory (%s is not writable): the outbox of transitions is kept in memory only, "
        "and a restart of this agent forgets what a hub that is down has not had yet; give --state-dir",
        folder,
    )
    return None


def run(args: argparse.Namespace) -> int:
    """``gsmon agent``; its errors (status 2, each naming its flag, variable or file key) end the command in
    :func:`gsmon.common.cli.main`."""
    from gsmon.agent.config import DebounceRule, read_agent_config
    from gsmon.agent.modules import load_modules
    from gsmon.agent.monitor import Monitor
    from gsmon.agent.outbox import OutboxSettings
    from gsmon.agent.probes import register_probes
    from gsmon.agent.publisher import PublisherSettings
    from gsmon.agent.thresholds import ThresholdRule
    from gsmon.common.errors import UsageError
    from gsmon.common.keys import ClientKeys, KeyFileError, load_key_pair, load_public_key
    from gsmon.common.ready import ready_line

    if args.print_example_config:
        sys.stdout.write(example_config())
        return 0
    config = read_agent_config(args.config, flag_overrides(args))
    settings = config.agent
    curve = None
    if settings.security is not None:
        secret_where = config.where("agent.security.secret_key_file")
        public_where = config.where("agent.security.hub_public_key_file")
        try:
            pair = load_key_pair(settings.security.secret_key_file)
        except KeyFileError as error:
            raise error.at(secret_where) from error
        try:
            curve = ClientKeys(pair, load_public_key(settings.security.hub_public_key_file))
        except KeyFileError as error:
            raise error.at(public_where) from error
    logs.configure(config.logging.level, config.logging.format)
    alerts_level = None if config.logging.alerts == "OFF" else logging.getLevelName(config.logging.alerts)

    try:
        mon = Monitor(
            workers=settings.workers,
            default_dt=settings.default_dt_s,
            default_timeout=settings.default_timeout_s,
            hub=list(settings.hubs),
            agent=settings.name,
            mount=settings.mount,
            publisher=PublisherSettings(
                flush_interval_s=settings.flush_interval_s,
                heartbeat_interval_s=settings.heartbeat_interval_s,
                state_interval_s=settings.state_interval_s,
            ),
            curve=curve,
            # Alert transitions visible at the agent's usual log level (see [logging] alerts).
            loglvl_alerts=alerts_level,
            logthr_alerts=config.logging.alert_threshold,
            # The outbox (protocol 1.3): a hub that was down asks for the transitions it missed.
            state_dir=_outbox_dir(config) if config.outbox.enabled and not args.check_config else None,
            # (--check-config never opens it: a running agent holds it, see agent/outbox.py.)
            outbox=OutboxSettings(config.outbox.max_age_days, config.outbox.max_entries)
            if config.outbox.enabled and not args.check_config
            else False,
        )
    except ValueError as error:  # names the flags and the file already checked; a last line of defence
        raise UsageError(str(error)) from error
    if config.debounce:  # before any point is registered: each takes its [[debounce]] table at once
        mon.set_debounce_rule(DebounceRule(config.debounce))
    probes = register_probes(mon, config.probes, source=config.source)
    mon.set_alert_rule(ThresholdRule([*config.thresholds, *probes.default_thresholds]))
    load_modules(mon, config.modules, source=config.source)
    # The points are known now (probes and modules declared theirs): a threshold that names none is a typo.
    unmatched = warn_unmatched_thresholds(config, point_paths(mon))
    if args.check_config:
        keys = "keys " + str(settings.security.secret_key_file) if settings.security is not None else "no keys"
        keys += "; " + _outbox_words(config)
        warned = f"; {unmatched} threshold(s) match no point (see the warnings above)" if unmatched else ""
        print(
            f"config OK: {config.source}: agent={settings.name} mount={settings.mount} "
            f"hubs={','.join(settings.hubs)}; {len(mon)} points, {len(config.thresholds)} thresholds, "
            f"{len(config.modules)} modules; {keys}{warned}"
        )
        return 0

    stop = StopFlag().set_on_signals()  # not an Event: see common/stopping.py (SIGTERM was once ignored)
    probes.wait_for_first_rates()  # the first poll then gives every rate a value
    mon.start()
    print(ready_line(agent=settings.name, mount=settings.mount, hubs=",".join(settings.hubs)), flush=True)
    log.info("agent %s publishing %d points under %s", settings.name, len(mon), settings.mount)
    stop.wait()
    mon.stop()
    log.info("agent stopped")
    return 0
