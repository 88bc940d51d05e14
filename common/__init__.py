"""gsmon common: what the agent, the hub and the subscribers all need.

The layers point one way: agent -> hub -> subscribers, with ``common/``
shared below all of them. Nothing here imports :mod:`gsmon.agent` or
:mod:`gsmon.hub` (``tests/unit/test_layers.py`` checks it); the ``gsmon``
command names their command modules as strings, imported only when run.

The shared vocabulary (no ZeroMQ, no threads):

* :mod:`~gsmon.common.names` -- name, path, agent-name and mount rules; prefixes
* :mod:`~gsmon.common.alerts` -- the alert ladder (NoAlert ... STALE ... Critical)
* :mod:`~gsmon.common.tree` -- a tree with incremental worst-child rollup
* :mod:`~gsmon.common.units` -- values people can read (the unit comes from the point's name)
* :mod:`~gsmon.common.json_form` -- values and wall times as every JSON output writes them
* :mod:`~gsmon.common.errors` -- the one error base and the exit statuses
* :mod:`~gsmon.common.config` -- typed TOML readers whose errors name the file and key
* :mod:`~gsmon.common.endpoints` -- endpoints as text: the accepted forms, default ports
* :mod:`~gsmon.common.ready` -- the READY line every process prints once it serves
* :mod:`~gsmon.common.logs` -- logging setup: text or JSON lines
* :mod:`~gsmon.common.children` -- child processes: start, read the READY line, stop and reap, judge the exit
* :mod:`~gsmon.common.stopping` -- a stop request a signal handler can make safely (a flag, no lock)
* :mod:`~gsmon.common.gc_tuning` -- the garbage collector tuned for a big long-lived tree (hub, recorder, web)
* :mod:`~gsmon.common.version` -- the package version

The wire (every process speaks it):

* :mod:`~gsmon.common.protocol` -- the wire protocol; its docstring is the specification
* :mod:`~gsmon.common.transport` -- ZeroMQ socket setup, in one place
* :mod:`~gsmon.common.send_policy` -- what an agent (or a site hub upstream) sends to which hub, and when (pure)
* :mod:`~gsmon.common.keys` -- CURVE key files: create, load, put on sockets
* :mod:`~gsmon.common.allowlist` -- the hub's allow-list: which keys, which rights (the hub enforces it)

The subscriber side (everything that reads the hub's tree):

* :mod:`~gsmon.common.client` -- ``Subscriber``: follows a subtree over its sockets -- the start for
  any new client
* :mod:`~gsmon.common.clone` -- ``CloneCore``: the subscriber's sync rules, pure (snapshot chunks and
  their count, seq, epoch, gap repair, heartbeats, hub lost), shaped like ``HubState``; ``ClientEnvelope``:
  every client request's header (epoch, seq, request id)
* :mod:`~gsmon.common.health_report` -- a client's own health as ``report_health`` carries it (levels, ttl)
* :mod:`~gsmon.common.failover` -- ``HubChoice``: which hub of a pair a client uses and when it moves
  to the other, pure (takes ``now``)
* :mod:`~gsmon.common.client_settings` -- where a client finds its hub and keys (flags, variables, files)
* :mod:`~gsmon.common.views` -- ``gsmon get`` and the plain ``gsmon watch`` frames
* :mod:`~gsmon.common.render` -- the tree table of ``print(mon)``, ``gsmon get`` and ``gsmon watch``
* :mod:`~gsmon.common.watch` -- ``gsmon watch`` on a terminal (Textual): feed, view model, layout, app
* :mod:`~gsmon.common.web` -- ``gsmon web``: the tree in a browser (aiohttp) and in Prometheus
* :mod:`~gsmon.common.recorder` -- ``gsmon recorder``/``history``/``context``: value history in SQL
* :mod:`~gsmon.common.notify` -- ``gsmon notify``: email, webhooks and chat from the hub's journal
* :mod:`~gsmon.common.commands` -- ``gsmon forget`` and the client side of the COMMAND message
* :mod:`~gsmon.common.alarm_commands` -- the client side of the operator commands (alarms, ack, shelve...)
* :mod:`~gsmon.common.alarms_cli` -- ``gsmon alarms``, ``ack``, ``unack``, ``shelve``, ``shelves``, ``unshelve``,
  ``log``

The command line:

* :mod:`~gsmon.common.cli` -- the ``gsmon`` command: a table of subcommands imported only when used
* :mod:`~gsmon.common.keys_cli` -- ``gsmon keys``: create keys, keep the allow-list
* :mod:`~gsmon.common.demo` -- ``gsmon demo``: a hub, an agent and a live view on this machine
"""

from gsmon.common.version import __version__

__all__ = ["__version__"]
