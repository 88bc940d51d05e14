"""gsmon hub: merges every agent's points into one live tree and serves it.

Pipeline of the hub process (one loop thread around pure cores)::

    agents --(SUB)--> server: decode --> HubState (tree, liveness, STALE) --> drain --> subscribers (XPUB)
                                              |
                                              +--> AlarmBook (alarms, shelves, attention)   [not wired yet]
                                                      --> StateStore.write_turn (SQLite, once per turn,
                                                          before the turn is published)    [not wired yet]

* :mod:`~gsmon.hub.server` -- the event loop and its sockets
* :mod:`~gsmon.hub.state` -- the tree, liveness and staleness (pure, takes ``now``)
* :mod:`~gsmon.hub.alarms` -- alarm instances, shelves, attention, operator commands (pure)
* :mod:`~gsmon.hub.journal` -- the state store: alarms, shelves and the journal in SQLite
* :mod:`~gsmon.hub.auth`, :mod:`~gsmon.hub.subscriptions`, :mod:`~gsmon.hub.config` -- keys, grants, settings
"""
