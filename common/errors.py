"""The one error base of gsmon, and the exit status each kind of error maps to.

Every error an operator can act on derives from :class:`GsmonError`; its
message is one line saying what is wrong and what to do, and its
``exit_status`` says how the ``gsmon`` command ends. They are handled in one
place, :func:`gsmon.common.cli.main`, which prints ``gsmon <command>:
<message>`` on stderr and exits with that status -- no command prints or maps
them itself. Exit statuses, as shells and service managers read them:

====  ==================  =============================================================
0     done                (also: a long-running command stopped by Ctrl-C or SIGTERM)
1     unavailable         the request was fine, but a peer or resource said no now: the
                          hub does not answer, a port is taken, ``gsmon keys`` refuses
                          to overwrite; trying again later (or after a fix) may work
2     usage or config     a flag, an argument, a configuration or key file is wrong:
                          fix the command line or the file
130   interrupted         Ctrl-C (128 + SIGINT) cut a one-shot command short
====  ==================  =============================================================

The library's own errors keep their more precise types (and their builtin
bases: :class:`~gsmon.common.names.InvalidNameError` is still a
``ValueError``, :class:`~gsmon.common.client.HubUnavailableError` a
``ConnectionError``), so programs using gsmon as a library catch what they
caught before:

* :class:`UsageError` (2): :class:`~gsmon.common.config.ConfigError`,
  :class:`~gsmon.common.keys.KeyFileError`,
  :class:`~gsmon.common.keys.CurveUnavailableError`,
  :class:`~gsmon.common.allowlist.AllowListError`,
  :class:`~gsmon.common.names.InvalidNameError`;
* :class:`UnavailableError` (1): :class:`~gsmon.common.client.HubUnavailableError`
  and its subclasses, ``gsmon demo``'s
  :class:`~gsmon.common.children.ChildFailedError`, the stores that cannot be
  opened (the hub's :class:`~gsmon.hub.journal.StoreError`, the recorder's
  :class:`~gsmon.common.recorder.store.StoreError`);
* :class:`BindError` (1 when the address is taken, else 2): a socket of the
  hub or of ``gsmon web`` cannot listen at its endpoint, raised where the
  socket is bound, from the errno (naming the socket and the endpoint).

This module imports nothing but the standard library, so every layer may use it.
"""

from __future__ import annotations

import errno
import os
from typing import Final

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "BindError",
    "GsmonError",
    "UnavailableError",
    "UsageError",
]

EXIT_OK: Final = 0
EXIT_UNAVAILABLE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


class GsmonError(Exception):
    """An error whose message is meant for the operator, as it is (no traceback).

    ``exit_status`` is the status ``gsmon`` exits with when the error ends a
    command (see the table in the module docstring).
    """

    exit_status: int = EXIT_UNAVAILABLE

    def at(self, where: str) -> GsmonError:
        """This error as met at ``where`` (the flag or file key that led to it): the message starts with
        ``where``, the exit status is the same. For the command's message only: the copy is a plain
        :class:`GsmonError`, so raise it ``from`` the original."""
        located = GsmonError(f"{where}: {self}")
        located.exit_status = self.exit_status
        return located


class UsageError(GsmonError):
    """A flag, argument, configuration or key file that cannot be used as it is: fix it and run again."""

    exit_status = EXIT_USAGE


class UnavailableError(GsmonError):
    """The request is fine, but a peer or a resource refuses or does not answer now."""

    exit_status = EXIT_UNAVAILABLE


class BindError(GsmonError):
    """A socket cannot listen at its endpoint: the message names the socket, the endpoint and what to do.

    ``role`` names the socket (the hub's ``"agents"``, ``"subscribers"``,
    ``"query"``; ``gsmon web``'s ``"HTTP"``), ``endpoint`` is the endpoint as
    requested, ``process`` what normally holds such a port (``"hub"``), and
    ``setting`` the flag or file key that asked for the endpoint, named in the
    advice (:meth:`naming` adds it where it is known). The reason is the
    system's, from ``errno_value`` (``reason`` when there is none)::

        cannot bind the query socket to tcp://127.0.0.1:7763: address already in use;
        stop the other hub or choose another endpoint with --query

    An address already in use (another hub, or the previous one still
    closing) is worth a retry: exit status 1; any other reason (an address
    not on this machine, a bad interface) is the configuration's: 2. The
    error is built from the errno where the socket is bound, never by
    matching a library's message text.
    """

    def __init__(
        self,
        role: str,
        endpoint: str,
        *,
        errno_value: int | None = None,
        reason: str | None = None,
        process: str = "hub",
        setting: str | None = None,
    ) -> None:
        self.role = role
        self.endpoint = endpoint
        self.errno = errno_value
        self.process = process
        self.setting = setting
        if reason is None:
            reason = os.strerror(errno_value) if errno_value is not None else "unknown error"
        self.reason = reason[:1].lower() + reason[1:]  # "Address already in use" -> in the middle of a line
        self.in_use = errno_value == errno.EADDRINUSE
        self.exit_status = EXIT_UNAVAILABLE if self.in_use else EXIT_USAGE
        super().__init__(f"cannot bind the {role} socket to {endpoint}: {self.reason}{self._advice()}")

    def _advice(self) -> str:
        if self.in_use and self.setting is not None:
            return f"; stop the other {self.process} or choose another endpoint with {self.setting}"
        if self.in_use:
            return f"; is another {self.process} running?"
        return f"; fix {self.setting}" if self.setting is not None else ""

    def naming(self, setting: str) -> BindError:
        """This error with the flag or file key that asked for the endpoint named in its advice."""
        return BindError(
            self.role,
            self.endpoint,
            errno_value=self.errno,
            reason=self.reason,
            process=self.process,
            setting=setting,
        )
