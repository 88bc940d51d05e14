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
  :class:`~gsmon.common.children.ChildFailedError`;
* :class:`BindError` (1 when the address is taken, else 2): a hub socket cannot
  listen at its endpoint, raised where the socket is bound.

This module imports nothing but the standard library, so every layer may use it.
"""

from __future__ import annotations

import errno
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
    """A socket cannot listen at its endpoint.

    ``role`` names the socket (``"agents"``, ``"subscribers"``, ``"query"``)
    so that a caller can name the setting that asked for it; ``endpoint`` is
    the endpoint as requested. An address already in use (another hub, or
    the previous one still closing) is worth a retry: exit status 1; any
    other reason (an address not on this machine, a bad interface) is the
    configuration's: 2.
    """

    def __init__(self, role: str, endpoint: str, reason: str, *, errno_value: int | None = None) -> None:
        self.role = role
        self.endpoint = endpoint
        self.reason = reason
        self.errno = errno_value
        self.in_use = errno_value == errno.EADDRINUSE
        self.exit_status = EXIT_UNAVAILABLE if self.in_use else EXIT_USAGE
        hint = "; is another hub running?" if self.in_use else ""
        super().__init__(f"cannot listen there: {reason}{hint}")
