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

Modules: core (which updates become rows), policy (save policies, retention,
the TOML file), store (schema, migrations, partitions), writer (batched
commits), maintenance (roll-ups, pruning), query (``answer``), values (typed
values as a number column plus exact msgpack), times (durations, moments,
ISO 8601), transfer (export/import), output (table/CSV/JSON views), service
(the history service on the hub's query socket), main (the process loop and
the command lines).
"""
