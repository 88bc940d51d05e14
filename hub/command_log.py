"""How loud the hub logs a command it answered: what changes something at INFO, reads and polls at DEBUG.

The query core (:mod:`gsmon.hub.queries`) logs one line per COMMAND, with who asked (the key's name and the
end user). An operator reading the hub's log wants the acks, shelves, clears and forgets in it, with who did
them; a notifier asks ``journal`` every poll and, on a hub pair, ``pair_status`` as often, and those lines
buried them (hundreds an hour per client). So:

* a command that failed or was refused: WARNING, whatever it is (someone tried, and was told why);
* a command in :data:`READS` that succeeded: DEBUG -- it reads, or it is a client's routine bookkeeping
  (``pair_mark``: the notifier's own delivery marks, one per message it sent, logged by the notifier);
* any other command that succeeded: INFO -- it changed the hub's state (ack, unack, clear, shelve, unshelve,
  context_start, context_stop, forget, and whatever is added without being listed here: a new command is
  loud until it is known to be quiet).

``register_service`` and ``report_health`` are not logged here: the query core says a new registration at
INFO and a renewed one at DEBUG itself, and reports are points, not log lines. Commands forwarded to a service
(``history``) are logged by the service.
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["READS", "command_level"]

#: Commands that change nothing an operator would look for in the log (tests/unit/test_command_log.py checks
#: that every command of the hub is either here or among the state-changing ones it lists).
READS: Final = frozenset({"whoami", "alarms", "shelves", "journal", "pair_status", "pair_mark"})


def command_level(command: str, ok: bool) -> int:
    """The logging level of the line that says the hub answered ``command`` (``ok``: it did what was asked)."""
    if not ok:
        return logging.WARNING
    return logging.DEBUG if command in READS else logging.INFO
