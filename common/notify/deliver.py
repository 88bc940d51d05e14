"""Delivery of one message to one receiver: apprise URLs, or a local command.

Library choice: **apprise** (pip ``apprise``, BSD-2): one URL scheme for
about a hundred services (``mailto://``/``mailtos://`` email over SMTP,
``json://`` plain JSON webhooks, Slack, Matrix, ntfy, Telegram, ...), so a
receiver is a list of URLs and gsmon writes no per-service code. apprise's
``notify()`` is synchronous and returns False when any URL failed; the
failure text is taken from its log (captured per call). A local command gets
the message on stdin and ``{title}``, ``{receiver}``, ``{paths}`` filled into
its argv; a non-zero exit is a failure.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Final

from gsmon.common.notify.core import Message, Receiver

__all__ = ["deliver", "url_problem"]

COMMAND_TIMEOUT_S: Final = 30.0


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _apprise() -> ModuleType:
    """apprise, imported on first use (``gsmon --version`` stays instant)."""
    with _quiet():
        import apprise
    return apprise


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # apprise loads its plugins lazily, and one imports the stdlib's deprecated ``imghdr``, which
    # warns on Python 3.11-3.12: apprise's business, not the operator's.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*imghdr")
        yield


def url_problem(url: str) -> str | None:
    """None when apprise understands ``url``, else what is wrong with it."""
    apprise = _apprise()
    with _quiet():
        plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return f"apprise does not understand the URL {url!r} (see https://github.com/caronc/apprise/wiki)"
    return None


def deliver(receiver: Receiver, message: Message) -> tuple[bool, str | None]:
    """Send ``message`` to every URL and the command of ``receiver``; (ok, error line)."""
    errors: list[str] = []
    if receiver.urls:
        apprise = _apprise()
        sender = apprise.Apprise()
        with _quiet():
            for url in receiver.urls:
                sender.add(url)
        capture = _Capture()
        log = logging.getLogger("apprise")
        # apprise's own lines go into the one error line the caller logs, not onto stderr as well.
        propagate, level = log.propagate, log.level
        log.addHandler(capture)
        log.propagate = False
        log.setLevel(logging.WARNING)
        try:
            with _quiet():
                ok = bool(sender.notify(title=message.title, body=message.body))
        finally:
            log.removeHandler(capture)
            log.propagate, log.level = propagate, level
        if not ok:
            errors.append("; ".join(capture.lines[-3:]) or "apprise could not deliver")
    if receiver.command:
        fields = {"title": message.title, "receiver": receiver.name, "paths": " ".join(message.paths)}
        argv = [part.format(**fields) for part in receiver.command]
        try:
            done = subprocess.run(  # noqa: S603 - the operator's own configured command
                argv, input=message.body, text=True, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            errors.append(f"command {argv[0]}: {error}")
        else:
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or [""])[-1]
                errors.append(f"command {argv[0]} exited with {done.returncode}: {tail}")
    return (not errors), ("; ".join(errors) or None)
