"""``gsmon web``: the station in a browser, and in Prometheus (a subscriber of the hub; the hub stays HTTP-free).

::

    hub SUB/query --> HubFeed (thread: Subscriber, coalesced) --> BridgeCore (pure: tree, views, deltas)
                                                                    |            |             |
                               browser <-- WebSocket snapshot/deltas+            |             |
                               browser <-- JSON API (tree, node, status) --------+             |
                               Prometheus <-- /metrics (render_metrics at scrape time) --------+
    browser --POST (session + CSRF + role)--> HubCommandClient --COMMAND--> hub --COMMAND_RESULT--> browser
                                              (ack, unack, shelve, unshelve, alarms, shelves, journal, history)

Modules, one concern each:

* :mod:`~gsmon.common.web.core` -- :class:`BridgeCore`, the pure core: the
  live tree, per-client subscriptions, deltas with epoch and seq, the status.
* :mod:`~gsmon.common.web.nodes` -- a node as JSON (exact values, ISO 8601 UTC).
* :mod:`~gsmon.common.web.auth` -- the users file (Argon2id), signed session
  cookies, CSRF and origin checks, roles.
* :mod:`~gsmon.common.web.hub_commands` -- COMMANDs to the hub on an asyncio DEALER.
* :mod:`~gsmon.common.web.shared_calls` -- one hub call for the same read of many pages
  (the alarm listing every page asks on each alarm change), never an answer read before the ask.
* :mod:`~gsmon.common.web.metrics` -- /metrics: the tree via cached series prefixes, the rest via prometheus_client.
* :mod:`~gsmon.common.web.app` -- the aiohttp routes and the loop around the core.
* :mod:`~gsmon.common.web.main` -- ``gsmon web`` and ``gsmon web passwd``.
* ``static/`` -- the page (no build step): index.html, app.js, app.css, and
  vendor/uplot (uPlot 1.6.32, MIT, with its licence) for the history chart. Its alarm table is the
  hub's alarm listing (``/api/v1/alarms``: latched alarms of removed points, a site's ack details,
  the sites a central hub could not ask), the tree's rows when the hub does not answer it.

Libraries: aiohttp (HTTP, WebSocket and static files in one maintained
asyncio package; the ZeroMQ asyncio socket shares its loop), argon2-cffi
(password hashes), prometheus_client (the exposition format, escaping
included). The hub feed is the terminal view's :class:`~gsmon.common.watch.feed.HubFeed`.
"""
