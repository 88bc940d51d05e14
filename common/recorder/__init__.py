"""``gsmon recorder``, ``gsmon history``, ``gsmon context``: value history on a real database.

::

    hub --NODEs--> Subscriber(s) --changes--> RecorderCore ---rows, events---> Writer thread ---> Store
    (live tree)    (client.py: one per        (core.py, pure: takes `now`;     (writer.py: one     (store.py:
                   followed prefix, plus      policies from policy.py;         transaction per     SQLAlchemy Core,
                   _hub/contexts/ for         gaps on resyncs and on           commit interval,    SQLite WAL or
                   passes)                    restarts; contexts)              coverage moved in   PostgreSQL by
                                                   |                           the same one)       month partitions)
                                                   |                                                    |
                  hub query socket <--COMMAND "history"-- service.py (register_service,   Maintenance thread
                  (forwarded from any client)   --COMMAND_RESULT--> answers with          (maintenance.py: roll-ups,
                                                                    query.answer)          retention, pruning)

    gsmon history PATH --db/--state-dir   -> query.answer(store, ...)      (local store, read directly)
    gsmon history PATH --hub ENDPOINT     -> COMMAND "history" via the hub (no database credentials)
    gsmon history export/import           -> transfer.py (JSON lines)
    gsmon context start/stop --hub        -> COMMAND context_start/context_stop (the hub owns live contexts)
    gsmon context start/stop --db         -> an offline context interval in the store

Modules:

* :mod:`~gsmon.common.recorder.core` -- which updates become rows (pure, takes ``now``)
* :mod:`~gsmon.common.recorder.policy` -- save policies, retention, the TOML file
* :mod:`~gsmon.common.recorder.store` -- schema, migrations, partitions
* :mod:`~gsmon.common.recorder.writer` -- batched commits, one transaction per interval
* :mod:`~gsmon.common.recorder.maintenance` -- roll-ups, pruning
* :mod:`~gsmon.common.recorder.query` -- ``answer``, the one query code path
* :mod:`~gsmon.common.recorder.values` -- typed values as a number column plus exact msgpack
* :mod:`~gsmon.common.recorder.times` -- durations, moments, ISO 8601
* :mod:`~gsmon.common.recorder.transfer` -- export/import (JSON lines)
* :mod:`~gsmon.common.recorder.output` -- table, CSV and JSON views of an answer
* :mod:`~gsmon.common.recorder.service` -- the history service on the hub's query socket
* :mod:`~gsmon.common.recorder.main` -- ``gsmon recorder``: the process loop
* :mod:`~gsmon.common.recorder.commands` -- ``gsmon history`` and ``gsmon context``
"""
