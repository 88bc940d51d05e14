"""The notifier of a hub of a pair (issue 17 section 2): send only as the pair's sender, and only what no hub sent.

Each hub of a pair has its own notifier, following its own hub's journal.
Both build the same messages (the hubs journal the same alarms, under the same
ids), but only the hub that is the pair's *sender* (the lowest live hub id;
both during a partition) lets its notifier deliver. Before delivering, a
notifier asks its hub (COMMAND ``pair_status`` ``{"check": keys}``) whether it
is the sender and which of the due messages' keys either hub has marked
delivered; after a delivery it marks them (COMMAND ``pair_mark``), and the
hub replicates the marks to its peer. So a standby notifier holds its
messages, drops each one the sender marked, and sends the rest once its hub
becomes the sender (the peer unheard for ``peer_timeout_s``): nothing lost,
nothing repeated (but a message delivered in the instant before the sender
died, unmarked, which goes again: a repeat rather than a loss).

A hub that is not one of a pair answers ``pair_status`` with reason
``unknown-command``: the notifier then sends everything itself, as before.

A message's keys: ``[receiver, alarm_id, kind]`` for every alarm id and kind it
carries (alarm id 0 and ``kind:path`` for a message without alarm ids, such as
a silent agent with no alarm). The two notifiers may group events differently
(their group timers start when each read the entry); a message is taken as
sent when every one of its keys is marked.
"""

from __future__ import annotations

from typing import Any

from gsmon.common.notify.core import Message

__all__ = ["message_keys", "sent_by_peer"]


def message_keys(message: Message) -> list[list[Any]]:
    """The delivery marks a message stands for (see the module docstring)."""
    kinds = message.kinds or ["message"]
    if message.alarm_ids:
        return [[message.receiver, alarm_id, kind] for alarm_id in message.alarm_ids for kind in kinds]
    return [[message.receiver, 0, f"{kind}:{path}"] for kind in kinds for path in message.paths or [""]]


def sent_by_peer(keys: list[list[Any]], delivered: list[bool]) -> bool:
    """Whether every key of a message is marked delivered (``delivered``: the hub's answer, key by key)."""
    return bool(keys) and len(delivered) == len(keys) and all(delivered)
