"""A client's own health as COMMAND ``report_health`` carries it (protocol: report_health).

The recorder (its lag) and the notifier (its failing receivers) report their
figures to the hub the same way: a level per figure that is worse the higher
the figure is, and a time to live of a few report periods, after which the
hub turns the client's ``reporting`` point RED (a client that stopped
reporting is itself an alarm). A clean stop sends ``final``.
"""

from __future__ import annotations

from typing import Any, Final

from gsmon.common.alerts import GreenAlert, OrangeAlert, RedAlert

__all__ = ["TTL_REPORTS", "final_args", "report_args", "rising_level"]

# Reports a client may miss before the hub says it stopped reporting (one lost
# report, or a slow turn, is no alarm).
TTL_REPORTS: Final = 3


def rising_level(value: float, orange_from: float, red_from: float) -> int:
    """GREEN below ``orange_from``, ORANGE from it, RED from ``red_from``: the level of a figure that is
    worse the higher it is (a lag in seconds, failures in a row)."""
    if value >= red_from:
        return RedAlert.alertcode
    if value >= orange_from:
        return OrangeAlert.alertcode
    return GreenAlert.alertcode


def report_args(client: str, points: dict[str, list[Any]], every_s: float) -> dict[str, Any]:
    """The ``report_health`` args of ``points`` (``name -> [value, level]``) from a client that reports
    every ``every_s`` seconds."""
    return {"client": client, "points": points, "ttl_s": TTL_REPORTS * every_s}


def final_args(client: str) -> dict[str, Any]:
    """The ``report_health`` args of a clean stop: the hub removes the client's figures."""
    return {"client": client, "final": True}
