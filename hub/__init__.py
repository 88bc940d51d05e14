"""gsmon hub: merges every agent's points into one live tree and serves it.

Pipeline of the hub process (one loop thread, :mod:`~gsmon.hub.server`, around pure cores)::

    agents --(SUB, auth: sender key)--> decode --> HubState.apply: tree, liveness, STALE  (state.py)
                                                      |   level changes
                                                      v
                                                  AlarmBook: alarms, shelves, attention  (alarms.py)
                                                      |   records + journal of the turn
                                                      v
                     StateStore.write_turn: one SQLite transaction, BEFORE the turn is published  (journal.py)
                                                      |
                                                      v
                     HubState.drain --> NODEs, heartbeats --(XPUB)--> subscribers
                                             ^
    subscribers --(XPUB subscriptions)--> SubscriptionLedger: grants, caps, counters  (subscriptions.py)
    clients --(ROUTER query)--> QueryCore: INFO, snapshots in slices, COMMANDs  (queries.py)
                                     `--> operator commands: ack, shelve, journal...  (operator.py)
                                              --> AlarmBook, then stored before the reply
                                     `--> report_health: clients' own figures  (client_health.py)
                                              --> shown as _hub/clients/<name>/... points
    peer hub <--(DEALER; its ROUTER query)--> PairCore: op log, digest, sender  (pair.py, pair_link.py)
                                              --> the peer's acks, shelves, forgets, delivery marks applied here

Time is the loop's observed clock (:mod:`~gsmon.hub.clock`: pauses of the
process left out), passed to every core as ``now``.

* :mod:`~gsmon.hub.main` -- ``gsmon hub``: configuration, bind, the ready line, signals
* :mod:`~gsmon.hub.config` -- hub.toml: schema, defaults and loader (no sockets: ``--check-config`` needs none)
* :mod:`~gsmon.hub.server` -- the event loop and its sockets
* :mod:`~gsmon.hub.state` -- the tree, liveness and staleness (pure, takes ``now``)
* :mod:`~gsmon.hub.alert_log` -- the ``gsmon.hub.alerts`` channel: transitions, rate limited; returns summed up
* :mod:`~gsmon.hub.alarms` -- alarm instances, shelves, attention (pure)
* :mod:`~gsmon.hub.journal` -- the state store: alarms, shelves and the journal in SQLite
* :mod:`~gsmon.hub.queries` -- answers on the query socket: INFO, snapshot slices, commands (pure)
* :mod:`~gsmon.hub.operator` -- the operator commands behind the query socket (pure)
* :mod:`~gsmon.hub.command_log` -- how loud a command is logged: changes at INFO, reads and polls at DEBUG
* :mod:`~gsmon.hub.replay` -- each agent's outbox followed: replay requests, replayed transitions (pure)
* :mod:`~gsmon.hub.client_health` -- health points the clients report (recorder lag, notifier deliveries) (pure)
* :mod:`~gsmon.hub.subscriptions` -- who follows what: the alignment guard, the ledger, publish counters (pure)
* :mod:`~gsmon.hub.auth` -- the ZAP authenticator and the per-message sender-key check (the rules are
  :mod:`gsmon.common.allowlist`)
* :mod:`~gsmon.hub.clock` -- the loop's observed time (pure)
* :mod:`~gsmon.hub.upstream` -- hub-of-hubs, a site hub's links to its central hub(s): what to send (pure core)
  and one XPUB per central hub
* :mod:`~gsmon.hub.relay` -- hub-of-hubs, the central side: the loop guard, commands routed to sites (pure)
* :mod:`~gsmon.hub.sealed` -- routed commands sealed to their site hub with keys (crypto_box; pure)
* :mod:`~gsmon.hub.pair` -- a hub pair's op log, digest and notification sender (pure)
* :mod:`~gsmon.hub.pair_link` -- the pair's peer link, its store (pair.db) and commands

The hub never imports the agent: they meet only on the wire, :mod:`gsmon.common.protocol`.
"""
