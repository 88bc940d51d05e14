"""gsmon wire protocol, version 1.4 -- this docstring is the specification.

Every byte that crosses a gsmon socket is msgpack. This module is the only one
that packs or unpacks it: its msgspec structs are the schema below (see
Decoding untrusted bytes), with one encoder per payload (:func:`encode` for
envelopes, :class:`NodeEncoder` for NODE payloads, :func:`encode_hub_heartbeat`)
and one decoder per stream (:func:`decode` for the agent and query sockets,
:func:`decode_hub_message` for the subscriber socket). The protocol version
moves independently of the package version.

Sockets
=======
::

    agent XPUB --connect--> hub SUB (bind, "agents")      envelopes: STATE, DELTA, HEARTBEAT, BYE, TRANSITIONS
    hub XPUB (bind, "subscribers") --> subscriber SUB     [topic, payload] frames: NODE, NODES (1.4), HUB_HEARTBEAT
    client DEALER --connect--> hub ROUTER (bind, "query") envelopes: HELLO, SNAPSHOT_REQUEST, COMMAND
                                                          replies: INFO, SNAPSHOT_CHUNK, SNAPSHOT_END, ERROR,
                                                                   COMMAND_RESULT
    hub DEALER --connect--> peer hub ROUTER ("query")     PAIR_SYNC; reply PAIR_SYNC_REPLY (1.3, Hub pairs)

Every message on the agent and query sockets is ONE frame holding an envelope.
Hub-to-subscriber messages are TWO frames: the node's path as a UTF-8 topic
(so plain ZeroMQ prefix subscription selects a subtree: ``GS1/Antenna2/``),
then a payload that is a plain msgpack map any language can read; or (1.4,
NODES) a prefix's control topic, then an array of ``[path, payload]`` pairs:
the same NODEs, one message per hub turn instead of one per NODE.

Envelope
========
A msgpack array, version first, so a decoder can refuse a foreign major
version before it interprets anything else::

    [major, minor, kind, sender, epoch, seq, sent_ns, body]

=========  ========  ==========================================================
field      type      meaning
=========  ========  ==========================================================
major      uint      1. A different major is refused.
minor      uint      1. A higher minor is accepted: unknown body keys and
                     extra trailing array items are ignored. (1.1 added
                     COMMAND/COMMAND_RESULT and NODE keys; a 1.0 peer
                     still reads everything it knows.)
kind       uint      a :class:`MsgKind`
sender     str       agent name (agents), client id (clients), "hub" (replies)
epoch      uint63    random id of the sender's incarnation (changes on restart)
seq        uint64    per sender, epoch *and connection*: +1 per message
sent_ns    int       sender's wall clock, ns since the Unix epoch
body       map       kind-specific, below; unknown keys ignored
=========  ========  ==========================================================

Sequence numbers: an agent's first message on each hub connection has seq 1 (+1
per message); a client's first request on each query connection carries
seq 1 (+1 per request) and the client's random non-zero epoch, drawn once
per incarnation (the hub does not check a client's seq, so any start is
accepted). ``request_id`` is apart from seq: the client's own number for a
request, echoed in every reply to it, by which it tells a late reply to an
earlier request from the current one (the project's client counts 1, 2,
3 ... over its lifetime, across connections). The hub's replies on one
query connection (one ROUTER identity) count 1, 2, 3... of their own,
separately for every connection. (The hub remembers the counters of its
65,536 most recently answered connections; a connection idle past that
starts at 1 again.)

Integers for foreign clients: ``sent_ns`` must be packed as a msgpack
*integer*: JavaScript's ``Date.now() * 1e6`` is a double and is refused (use
``BigInt(Date.now()) * 1000000n``). Epochs and seqs go beyond 2^53, where a
JavaScript number loses digits: read them as BigInt (e.g. msgpack-javascript's
``useBigInt64``) and compare them exactly.

Point entry (in STATE and DELTA)
--------------------------------
An array ``[path, value, alertcode, alertstr, polled_at_s, dt_s]``:
``path`` (str) is the point's path *inside the agent* (its parents and name,
``Antenna/Azimuth``), the hub prefixes the agent's mount; ``value`` any value
below; ``alertcode`` (int) and ``alertstr`` (str) the level the monitor
function returned; ``polled_at_s`` (float) the agent's wall-clock time of the
poll; ``dt_s`` (float or nil) the poll interval, nil for one-shot points.

An optional 7th item, a map, is sent only for a point with debounce or a
flap guard configured (so plain points keep their exact 6-item bytes); then
``alertcode``/``alertstr`` are the *effective* level (after debounce):

============  =====================  =========================================================
key           type                   meaning
============  =====================  =========================================================
``raw``       int                    the level the monitor function (and threshold) gave this poll
``raw_str``   str                    its label
``pending``   map or nil             a move debounce holds back: ``{"level": int, "since": float}``
                                     (``since``: agent wall-clock seconds of the first poll at it)
``flapping``  map or nil             the flap guard holds the level: ``{"since": float, "changes": int}``
                                     (level changes within the flap window now)
============  =====================  =========================================================

Unknown keys in this map are ignored; any trailing items after it too (and
a 7th item that is not a map). A map with a missing or mistyped ``raw``,
``pending`` or ``flapping`` makes the message invalid (:class:`ProtocolError`).

Agent -> hub
------------
==========  ===  ================================================================
kind        id   body
==========  ===  ================================================================
STATE        1   ``mount`` str, ``heartbeat_s`` float, ``points`` [entry...],
                 ``parents`` [path...] (every parent, so childless ones exist),
                 ``part`` uint, ``parts`` uint: a full state may be split in
                 parts (each at most :data:`MAX_POINTS_PER_MESSAGE` points);
                 the last part has ``part == parts - 1``. (1.3) ``unpolled``
                 [path...], left out when empty: points the agent has but
                 has not polled yet (no entry to send). The hub keeps such a
                 point as it is (it is not "unlisted", so neither removed
                 nor its alarm closed); its own deadline still makes it STALE.
                 (1.3) ``orphans`` [map...], a site hub's only (see
                 Hub-of-hubs, Orphaned alarms). (1.3) ``pair``
                 [str, str|nil], a site hub of a pair's only (see
                 Hub-of-hubs, A site that is a pair).
DELTA        2   ``points`` [entry...]: points polled since the last flush,
                 latest poll per point only. (1.3) ``orphans`` as in STATE.
HEARTBEAT    3   ``mount`` str, ``heartbeat_s`` float, ``points`` uint (how many
                 points the agent has). (1.3) ``pair`` as in STATE.
BYE          4   (empty) the agent stops cleanly: the hub marks it silent now.
TRANSITIONS  5   (1.3) outbox entries the hub asked for (see Outbox and replay):
                 ``outbox_id`` uint, ``first`` uint, ``last`` uint (the tseqs
                 this message covers), ``done`` bool (the last message of the
                 answer), ``transitions`` [item...], ``lost`` [from, to] | nil.
                 (1.3) ``live`` uint, left out in a replay: these are live
                 transitions (see Live transitions), the value is the seq of
                 the first message of their flush.
==========  ===  ================================================================

Kinds 6 to 9 are reserved (agent -> hub, issue 17). STATE, DELTA and HEARTBEAT
may carry three more keys (1.3), all three or none (one without the others,
or ``tseq_tail > tseq_head + 1``, makes the message invalid): ``outbox_id``
uint (random, non-zero, made once per outbox: it changes only when the
agent's outbox is started afresh), ``tseq_tail`` uint (the oldest tseq the
outbox still holds; ``tseq_head + 1`` when empty), ``tseq_head`` uint (the
last tseq it gave, 0 before the first). An agent without an outbox (1.2, or
``[outbox] enabled = false``) sends none of them and is never replayed. The
agent reads the mark *before* it takes the points of the message: every
transition up to ``tseq_head`` is reflected in this message or an earlier one.
(1.3, exact marks) An agent reads the ``tseq_head`` of a STATE or DELTA at
the instant it takes the message's points (under the lock its outbox records
take), so such a message reflects no transition after its head either: a
transition recorded between the mark and the points would be shown by the
STATE but outside the replay its head closes, and journaled by nobody. The
hub's exactly-once rules (Live transitions) rely on it; with an agent that
does not (earlier 1.3 builds) a transition recorded in that instant may be
journaled twice or not at all. The field is unchanged: no version gate.

Outbox and replay (1.3)
-----------------------
An agent numbers every effective-level transition of its points (the level
it publishes, after debounce: a TRANSITIONS item of kind ``level``) and every
debounce ``pending``/``discarded`` event with ``tseq`` 1, 2, 3 ... per outbox
(never reused; it survives agent restarts when the outbox is on disk), and
keeps them for a bounded time and number (the agent's ``[outbox]``: 7 days,
100,000 entries by default). A point's first level ever is not a transition;
its first level after an agent restart is one when it differs from the level
the outbox last knew.

TRANSITIONS item: an array ``[tseq, kind, path, time, old, new, value,
alertstr]``: ``tseq`` uint, ``kind`` "level" | "pending" | "discarded",
``path`` str (inside the agent, as in point entries), ``time`` float (the
poll's wall time, finite), ``old`` int | nil (the level before), ``new`` int
(the level after; for ``pending`` the level held back, for ``discarded`` the
one given up), ``value`` any (the point's value then; nil for events),
``alertstr`` str (the label of ``new``). Items are in increasing tseq order
within ``first..last``; at most :data:`MAX_TRANSITIONS_PER_MESSAGE` (1,000)
items and about :data:`MAX_TRANSITIONS_BYTES` (1 MiB) per message; a
receiver refuses a message with more, with items out of order or out of the
range, or ``first > last + 1`` (ProtocolError: counted and dropped).

Replay back-channel (hub -> agent, like RESYNC): the hub subscribes, then
unsubscribes, on its agents socket the topic ``REPLAY_TOPIC_PREFIX + agent
name + NUL + "<first>-<last>"`` (decimal ASCII, e.g.
``\x00replay/rack1\x0015-42``). It means: this hub has every entry before
``first`` (the agent may drop them once every configured hub said so), and
asks for ``first..last``; ``last < first`` only confirms. The agent answers
on the link it came from with TRANSITIONS covering ``first..min(last,
tseq_head)``, in order, paced to at most 5,000 entries a second, the last
one ``done``; entries it no longer holds (below its ``tseq_tail``) are
reported in the first message's ``lost``. A new request replaces one in
progress. TRANSITIONS take the link's next ``seq`` like every message.

Hub rules (:mod:`gsmon.hub.replay`; only a hub with a state store replays):
the hub keeps per agent the last tseq it has (``have``; stored with the
journal rows it accounts for, so a restarted hub knows it) and follows
``tseq_head`` while it hears the agent seq after seq ((1.3, live
transitions) a head counts once the next message is heard in order, not at
another part of the same DELTA: a flush's live TRANSITIONS follow its
DELTAs, and a lost one must leave its entries to the replay). After a break (a seq
gap, a new agent epoch, its own restart) the resync STATE's head ``H``
closes it: when ``have < H`` it asks for ``have+1 .. H`` (again after 5 s
without progress). Replayed entries are journaled with their original
``time`` and ``replayed`` true and feed the alarm book as they would have
live (a latched RED that came and went is an ``rtn_unacked`` alarm); an
entry at or below ``have`` is never applied twice. Entries below
``tseq_tail`` that it did not have are journaled once as
``lost_transitions`` (on the mount, ``value`` [from, to]). A completed replay
adds one ``replayed`` entry on the mount (``new``: the mount's level now),
on which notifiers send one summary per agent. An agent or outbox id the hub
has no record of is followed from its head (not replayed); when an agent's
outbox id changes (or its head goes below ``have``) in the middle of a
replay, the entries the hub got are journaled and the rest of the range it
asked for is journaled as ``lost_transitions``. The hub confirms
what it has at most once a minute per agent, and with every request (each
such subscription reaches every connected agent).

Live transitions (1.3): a DELTA carries each point's latest poll only, so
a point that went RED and back to GREEN between two flushes shows no change,
and a point that went GREEN -> RED -> ORANGE shows GREEN -> ORANGE. A hub
that journals transitions keeps the topic :data:`LIVE_TOPIC`
(``\x00outbox-live``) subscribed on its agents socket. An agent with an
outbox that sees that subscription on a link (and until it sees it
unsubscribed) sends that link, after the DELTAs of every flush that had
transitions, TRANSITIONS with ``live`` set: they cover ``first..last``, every
entry recorded since the previous flush (the window; several messages of at
most :data:`MAX_TRANSITIONS_PER_MESSAGE` entries of it each, ``done`` true
on each, and about :data:`MAX_TRANSITIONS_BYTES` of listed entries), and
list only the entries the flush's DELTAs cannot show (the
*folded* ones); an entry of ``first..last`` that is not listed is reflected
in those DELTAs. The agent takes the window and the DELTA's points at one
instant, so per point: one ``level`` entry in the window is reflected; of
two or more, all but the last are folded, and the last too when the point
is back at the level it had before the window (the DELTA shows no change);
the same for ``pending``/``discarded`` entries (one reflected, of more all
but the last folded). ``live`` is the seq of the flush's first message, so
a hub knows whether it heard every DELTA the unlisted entries are reflected
in. Agents and hubs before this (1.2, or 1.3 without it) neither send nor
ask for them: such a hub sees a blip only in a replay.

Hub rules for live transitions: the listed entries are journaled and fed to
the alarm book at once like replayed ones (original ``time``; a blip to RED
latches its alarm) but as live entries (``replayed`` false: they are live, a
flush late, and notified like any), then the alarms of their points follow
the points' live levels again. Each entry (agent, tseq) is journaled
exactly once: while the hub hears the agent seq after seq, its ``have``
follows the heads and the live transitions; after a break it remembers the
tseqs it journaled live and drops them from the replay that closes the
break: the listed entries, and the unlisted ones only when it heard every
message from seq ``live`` on, the flush began after the resync STATE that
closed the last break, and the entry is above that STATE's head (in a break
the hub's level of a point may be stale -- it missed a change -- so a DELTA
that shows the level it had journals nothing, and its entry must be
replayed). And each level change (or debounce ``pending``/``discarded``
event, from the point's debounce map) of a point that the hub journaled live in
the break -- from a DELTA after the gap, the resync STATE, or a message
heard in order just before the gap whose head no later message confirmed
(its live TRANSITIONS was lost) -- stands for one replayed entry of that
point (of that kind) to that level, matched from the point's last replayed entry backwards:
those are not journaled again, the others are (this needs no live
transitions). Messages heard in order after the closing STATE show changes
above the replay's range: they stand for none, even while the replay runs;
changes journaled in a second break that opens before the replay completes
wait for the STATE that closes that one. A hub that restarts (a crash
especially) may journal again some entries of a break under way and of the
last message before it (a head counts from the next message), never none:
what it journaled live there is not stored, and the ``have`` it stores stays
below the replayed entries it holds for that matching. A TRANSITIONS (live or
replayed) takes the link's seq like every message: the hub counts it in its
seq order.

When to send: STATE when the agent's XPUB sees a hub's subscription (so a hub
that (re)starts is refilled at once), when a hub asks for it (below), and
every ``state_interval_s``; DELTA every flush interval (milliseconds) when
something was polled; HEARTBEAT when nothing else was sent for
``heartbeat_s``. Any message counts as a heartbeat.

Resync back-channel: a hub that sees a ``seq`` gap (or a DELTA from an epoch it
has no STATE for) subscribes, then unsubscribes, the topic
``RESYNC_TOPIC_PREFIX + agent name``. The agent's XPUB sees that subscription
and answers with a full STATE. Subscriptions travel to every connected agent,
so each agent checks the name. A hub also asks an agent it hears again after a
silence. It does not ask when the message after the gap or the silence is the
first part of a STATE (``part`` 0): that STATE refills the agent already, and a
request costs one subscription and one unsubscription at every connected agent
(a restarted hub asking each of N agents sends 2 N x N frames). A gap before
a later part still asks.

Hub-of-hubs (1.3)
-----------------
A *site hub* started with ``--upstream ENDPOINT --upstream-mount GS1``
publishes its tree to a *central hub* exactly as an agent does: its XPUB
connects to the central hub's agents socket (with keys: under its own agent
key, granted the name and the mount like any agent), and it sends STATE
when it sees the central hub's subscription or resync request and every
``state_interval_s``, DELTAs, HEARTBEATs and BYE, by the rules above. Its
``sender`` is its upstream name (``upstream_name``, default: the last
segment of the mount), its ``mount`` the upstream mount. A hub that knows
nothing of 1.3 sees an ordinary agent whose point levels already include
the site's STALE.

Each hub has a *hub id* (``hub_id``, default ``<host name>:<agents
port>``), unique in the federation.

(1.3) A site under a central pair. ``--upstream`` may be repeated
(``upstream = ["tcp://ca:7761", "tcp://cb:7761"]``; one string is one
central hub): the site hub then publishes to every hub given as an agent
does to ``hubs = [A, B]`` ("Hub pairs"), with one *upstream link* per
central hub -- its own XPUB and connection, its own ``seq`` (1, 2, 3 ...
per link), a STATE on that hub's subscription or resync request to that
hub only, a HEARTBEAT when that link was sent nothing for ``heartbeat_s``,
a BYE on each at stop -- and the same DELTA entries on every link (made
once). The sender, mount, key, prefixes, minimum level and coalescing are
the same for every link (a central pair shares its keys: one
``upstream_key`` and one ``upstream_hub_key``). Duplicate endpoints and an
empty list are configuration errors. A central hub sees an ordinary site;
both hubs of the pair therefore build the site's subtree from the same
entries, and each judges the site's link on its own (one centre's death
costs the other nothing). A STATE sent to one link only must not change
what the DELTAs leave out on the others: a point whose STATE entry differs
from what the site's DELTAs last said of it goes again in the next DELTA
entry whatever ``upstream_min_level``, with its ``since``, so every centre
converges on the site's state. Routed commands arrive on the link of the
central hub that routed them (each centre subscribes its ROUTE topics on
its own agents socket), and their UPSTREAM_RESULT goes on that link only,
numbered in its ``seq``: the ``route_id``s of two centres are each
centre's own numbers and may be equal. An ack routed down by one centre is
applied at the site; the other centre shows it through the site's relayed
entries (the point's ``alarm`` map, typically within one coalescing
interval) under the same proxy id ("Proxy ids of a pair"); it is not an op
of the asking centre's pair log. The site hub shows its links as points
``_hub/upstream/<n>/endpoint`` (str), ``connected`` (bool; ORANGE when
false), ``bytes_sent`` and ``messages_dropped``, ``n`` = 1, 2 ... in the
order given; ``_hub/upstream_connected`` (true while every link is
connected; ORANGE otherwise), ``_hub/upstream_bytes_sent`` and
``_hub/upstream_messages_dropped`` (all links) are as for one link.

(1.3) A site that is a pair. The two hubs of a site pair (``--peer`` each
other, "Hub pairs"; every agent publishes to both) may both relay upstream
with the same ``--upstream`` list, ``upstream_mount`` and ``upstream_name``:
the site then reaches each central hub as ONE site, relayed by one site hub
(*followed*) while the other is its *standby*. Each such site hub says so in
every STATE (each part) and HEARTBEAT it sends upstream, body key ``pair``:
``[hub, peer]``, ``hub`` its own hub id of the pair (1 to 256 characters),
``peer`` its peer's, or nil until it has heard its peer (a first start).
``hub`` equal to ``peer`` makes the message invalid. Both site hubs derive
the same alarm ids (Alarm ids of a pair) and share their ops, so they relay
the same tree. A hub without ``--peer`` never sends the key.

Two incarnations of one sender (two epochs) *declare one pair* when both
declare ``pair``, their ``hub`` differ, and each one's ``peer`` is nil or the
other's ``hub``; and they declare the same ``mount``. The central hub
(rules):

* it follows the incarnation it applies, as for any agent (the first it
  heard a STATE of). A message of another epoch whose STATE or HEARTBEAT
  declares one pair with the followed one's latest declaration makes that
  incarnation the standby (replacing any earlier standby); from then on its
  messages (every kind, by epoch) are *heard*, not applied: the time and
  seq of the latest are kept, nothing else, and none is a conflict, a
  restart, a seq gap or a resync request. A STATE or HEARTBEAT of the
  standby that no longer declares one pair ends the standby (the message is
  then handled as any other epoch's: a conflict, a restart); its BYE ends
  it. A new epoch with the followed one's own ``hub`` is a restart of the
  followed site hub, as for any agent;
* when the followed incarnation is silent (nothing heard for
  ``agent_liveness`` of its heartbeats) while the standby was heard within
  ``agent_liveness`` of the standby's heartbeats, or when it sends BYE
  while the standby is so heard, the central hub follows the standby
  instead, at once: the site is never silent (no STALE, no silence alarm, no
  notification), the previously followed incarnation becomes the standby
  (its later messages heard, not applied; after its BYE there is no
  standby until one declares the pair), the standby's next seq is the
  one after the last it heard from it, and the central hub asks for a STATE
  (resync) at once, whatever it asked just before; that STATE refills the
  site (a point it does not list goes after ``removal_grace_s``, as after
  any STATE). Until it arrives the site's values are the last applied;
* when both are silent the site is silent as any agent (one alarm on the
  mount, reason ``agent silent``); whichever site hub speaks first after
  that is followed (as a return from silence: a resync, the alarm back to
  normal);
* ``_hub/agents/<sender>`` reads ``live`` (GREEN) as for any live agent, and
  ``_hub/site_pairs/<sender>`` (str; while the followed incarnation
  declares ``pair``) reads ``following site hub H, standby S live`` (GREEN),
  or ``... standby S silent`` / ``following site hub H, no standby heard``
  (ORANGE: the site has lost its redundancy, one failure from silent), H and
  S hub ids; ``_hub/standby_switches`` counts the switches;
* routed commands (below) carry ``to``: the followed site hub's ``hub``.
  Both site hubs see the route (both are connected publishers with that
  sender): a site hub of a pair takes only a route whose ``to`` is absent or
  its own ``hub``, and drops the others (counted, not answered: its peer
  answers), so a command is applied once, by the followed site hub, whose
  pair log passes the change to its peer ("Hub pairs": which commands are
  ops). The UPSTREAM_RESULT of the standby is never applied. A route sent
  to the followed site hub just before it died is answered by nobody: the
  asker gets ``unreachable`` (no answer within 5 s) and may ask again.
  With keys, both site hubs publish under the site's one agent key (the
  allow-list grants a name to one key), as the hubs of a central pair share
  theirs: a sealed route opens at both, and ``to`` says which one acts.

A central hub without this (1.2, or 1.3 before it) ignores ``pair``, as any
unknown body key, and sees two processes claiming one agent name (a
conflict, one followed until it is silent): such a site pair keeps one
centre per site hub instead, each site hub with its own ``--upstream``.
Two site hubs that do not declare one pair (no ``pair``, another peer, the
same ``hub``) are two processes claiming one name, as before.

Relayed entries. The site hub sends each of its points (never its own
``_hub/`` points) as a point entry whose ``path`` is the point's path in
the site's tree (the central hub prefixes the mount, so ``rack1/cpu``
under the mount ``GS1`` is ``GS1/rack1/cpu``); ``value`` and
``polled_at_s`` as the site has them; ``alertcode``/``alertstr`` the
point's level *as the site shows it* (STALE included); ``dt_s`` nil (the
central hub does not judge a relayed point overdue: the site does, and says
so in ``stale``); and always the 7th map, with the debounce keys above
(``raw`` the monitor's own level, or the reported one for a point without
debounce) plus these relay keys:

============  ==================  ==========================================================
key           type                meaning
============  ==================  ==========================================================
``agent``     str                 the point's owner as the site hub shows it (``rack1``; a
                                  point relayed again keeps its ``GS1:rack1``)
``via``       [str]               hub ids the entry passed, the site hub nearest the agent
                                  first, the sender last (1 to :data:`MAX_RELAY_VIA`)
``stale``     bool                the point is STALE at the site
``dt``        float|nil           the point's poll interval
``reported``  int                 the level the agent last reported (the site's
                                  ``reported_alert``, else the level itself)
``alarm``     map|nil             the site's open alarm on the point: ``id`` (the site
                                  hub's alarm id), ``state``, ``max_level``; nil: none.
                                  While the point's agent is silent at the site, its
                                  agent-silent alarm (which sits on the agent's mount
                                  there, not relayed) unless the point's own alarm
                                  needs attention: every point of the agent carries
                                  it, so the centre counts the silence and can ack it
``since``     float|nil           (1.3) the point's NODE ``since`` at the site (wall
                                  seconds its current level began); nil: the site has no
                                  alarm layer (nothing judged, NODE ``since`` absent).
                                  Absent from a DELTA's entry: unchanged since the
                                  point's previous entry (below)
``shelf``     int|nil             (1.3) the site's shelf in force over the point (its
                                  NODE ``shelf_id``, the site's id); nil: none
============  ==================  ==========================================================

A sender leaves out every key at its default: ``raw_str`` "", ``pending``
and ``flapping`` nil, ``stale`` false, ``dt`` nil, ``reported`` = ``raw``,
``alarm``, ``since`` and ``shelf`` nil (``raw``, ``agent`` and ``via`` are
always there). ``since`` changes only with the level or the staleness,
so a sender puts it in every STATE entry (when known) but in a DELTA entry
only when it differs from the one the point's previous entry said; a
receiver keeps a relayed point's ``since`` from entry to entry while a
DELTA's entry leaves it out (a lost DELTA is a seq gap, and the resync
STATE carries it again). A point relayed again keeps the ``since`` and
``shelf`` it came with (they are the site's, the hub nearest the agent). A map with
``via`` must have the others right where present, or the message is invalid.
The central hub (rules):

* it drops every relayed entry whose ``via`` holds its own hub id (a loop)
  or more than :data:`MAX_RELAY_DEPTH` ids (too deep), and counts them
  (``_hub/relay_loops_dropped``, ``_hub/relay_too_deep``). A sender cannot
  know every hub above it, so this receiver's rule is what makes a cycle
  impossible;
* it shows a relayed point with ``stale`` as the entry says (its NODE
  ``stale``), ``agent`` as ``<sender>:<agent>`` (``GS1:rack1``), ``dt``
  from the map, ``reported_alert`` from ``reported``, the ``alarm`` map as
  relayed (its ``id`` the hub's proxy, below), and the NODE key ``via`` (1.3, the
  entry's list); it opens no alarm of its own for a relayed point (alarm
  state stays with the hub nearest the agent) and recomputes its parents;
* (1.3) attention: a hub with the alarm layer shows a relayed point with
  NODE ``since`` as relayed, ``shelf_id`` = the relayed ``shelf``, and
  ``attention`` = the relayed alarm's ``max_level`` while its ``state`` is
  ``active_unacked`` or ``rtn_unacked`` and ``shelf`` is nil (0 otherwise:
  as the site computes it). Its parents count relayed points like their
  own: ``attention`` is the worst of both, ``unacked_below`` counts each
  relayed alarm with attention, ``shelved_below`` each relayed point with
  a ``shelf``. The hub's own shelves do not cover a site's alarms (shelve
  below the mount: the command is routed to the site); a shelf of the
  mount covers the site's silence alarm only. While the site is silent its
  relayed points count for nothing (the silence alarm on the mount stands
  for them, as an agent's silence does for its points) until the site's
  entries arrive again, and their ``since`` is when the silence began (they
  are STALE since then); a removed point counts for nothing;
* the site hub as a whole is an agent: when its link is lost (nothing heard
  for ``agent_liveness`` heartbeats) every point under its mount turns
  STALE with ONE alarm on the mount (reason ``agent silent``: the site's
  silence, journaled ``agent_silent`` with the site's name) and so one
  notification; when it is heard again the central hub asks for a STATE
  (resync), which refills every point, and the alarm returns to normal.

What a site sends (``[upstream]`` settings): only points under
``upstream_prefixes`` (site paths; default all); a point below
``upstream_min_level`` (default 0) is sent in STATEs and whenever its
level, staleness or alarm changes, but its value-only changes are not;
and at most one DELTA entry per point per ``upstream_coalesce_ms`` (default
1000; 0: every change): a change within the interval waits for its end and
the point's latest state goes then. A point the site no longer has leaves
the central hub with the next STATE (sent at once after a removal).

(1.3) Orphaned alarms. A latched alarm outlives its point (an ``rtn_unacked``
alarm whose point was removed: its agent stopped publishing it, or
``forget``): the site still lists it and counts it in the attention of the
point's parents, but no relayed entry carries it. Nor does one carry an
agent-silent alarm once its agent is heard again (latched, unacked: its
points carry it only during the silence). So the site sends its *orphans*
-- its open alarms (not ``cleared``) that no relayed entry carries: those
whose path is not a point it has, and the agent-silent alarms of agents
that are not silent, under ``upstream_prefixes`` -- as the body key
``orphans`` of STATE and DELTA: an array of at most
:data:`MAX_RELAYED_ORPHANS` maps (the lowest ids when there are more), each

============  ==========  ==========================================================
key           type        meaning
============  ==========  ==========================================================
``path``      str         the alarm's path in the sender's tree (as a point entry's,
                          the receiver prefixes the mount)
``id``        uint        the sender's id of the alarm (a relayed-on one: the
                          sender's proxy, as in an entry's ``alarm``)
``agent``     str         its owner as the sender shows it (as an entry's ``agent``)
``via``       [str]       hub ids it passed, as an entry's ``via``
``state``     str         ``active_unacked``, ``active_acked`` or ``rtn_unacked``
``level``     int         its current level at the sender
``max_level`` int         its ``max_level``
``shelf``     int|nil     the sender's shelf covering it; left out when nil
============  ==========  ==========================================================

Rules: ``orphans`` is always the sender's *whole* set and replaces the one
sent before. A STATE carries it in its last part (``part == parts - 1``;
absent there: none); a DELTA carries it only when the set changed since
the message that last carried it (absent: unchanged), at most once per
``upstream_coalesce_ms`` (the latest set wins), and a DELTA may carry it
with no points. A lost DELTA is a seq gap: the resync STATE carries the set
again. A hub without this (1.2, or 1.3 before it) ignores the key, as any
unknown body key, and a site without it sends none. The receiver applies
the loop guard to each (drops one whose ``via`` holds its own id or more
than :data:`MAX_RELAY_DEPTH` ids, counted with the entries), and treats the
rest as its own alarms of removed points and its own agent-silent alarms:
``attention`` and ``unacked_below`` of the node at the orphan's path (a
mount, for a silence) and of its ancestors count it -- an orphaned point
alarm has no node of its own, as at the site -- at ``max_level`` while its
``state`` is ``active_unacked`` or ``rtn_unacked`` and ``shelf`` is nil --
except while a relayed point of that site at the same path still carries
the same alarm (a point the centre has not removed yet: counted once). A
receiver drops (and counts) an orphan whose path is not a valid point path,
and takes them from a site only (an agent whose entries carry the relay
keys): an agent's alarms are the receiver's own to judge. It shows under the
hub's proxy id (in a routed ``alarms`` listing, from the site's book as
before; an ``ack`` of it is routed down and applied at the site, whose next
set leaves it out, and so it leaves the centre). While the site is silent
its orphans count for nothing (the silence alarm on the mount stands for
them), are last-known alarms (see Last-known alarms: summaries) and count
again when its STATE arrives; they go when the site is forgotten. A hub
that is itself a site relays its live sites' orphans on, as it relays their
entries: path under their mount, its proxy id, ``agent`` as it shows the
owner (``GS1:rack1``), its hub id appended to ``via``.

Routed commands. Alarm state stays with the hub nearest the agent; a hub
routes these COMMANDs down to the site hub they concern, which applies them
(the asking hub never does):

* ``ack`` and ``unack`` by their ``ids``. A relayed alarm shows at a hub (in
  its NODE ``alarm`` map, and in a routed ``alarms`` listing) under a *proxy
  id* of that hub's own, in ``[PROXY_BASE, PROXY_END)`` (2^48 to 2^52, which
  no counting alarm book reaches, below a pair's derived ids), so an id names one alarm of one site, never one of the
  hub's own that has the same number at the site. (1.3) A hub with a state
  store keeps its proxies across its restarts: each is stored before any
  message shows it, so an id read before a restart names the same alarm of
  the same site after it, and an id once given is never given to another
  (without a store: while it runs). An unknown proxy id is refused, reason
  ``"unknown"``. All ids of one command must be one site's (else
  ``"bad-args"``, (1.3) with ``groups``: [[uint...]...], the ids as they
  group -- the hub's own first, then each site's -- so that a client acking
  a merged listing, or a subtree above several mounts, sends one command
  per group); ids outside that range are the hub's own alarms (a site's
  silence among them) and are acked there as before. ``seen`` keys are
  proxies too; the result's ``acked`` and ``skipped`` ids are the proxies
  (the ids the command named).

  (1.3) Proxy ids of a pair. A single hub counts its proxies from
  ``PROXY_BASE`` (below ``PROXY_DERIVED_BASE`` = 2^50). A hub of a pair
  (``--peer``) derives them instead, so that both centres of a pair fed by
  the same site (or by the two hubs of a site pair, which share alarm ids and
  the ``upstream_name``) show a site's alarm under one id, and an id an
  operator read on one centre names that alarm on the other:
  ``PROXY_DERIVED_BASE + h mod (PROXY_END - PROXY_DERIVED_BASE)``, ``h`` the
  first 8 bytes of BLAKE2b (digest size 8), big-endian, of the UTF-8 text
  ``proxy`` NUL the site's agent name (as the centre knows the site, its
  ``sender``) NUL the site's alarm id in decimal. An id already taken here
  (by another site alarm's proxy, or by a stored row) moves to the next free
  one, wrapping within the derived range -- as for a pair's own alarm ids:
  with 3 * 2^50 numbers and at most 10^6 proxies kept, the chance that any
  two collide is about 1 in 7,000 even at that bound, and only when two do
  may the centres disagree on those two alarms (each takes the next free one
  in the order it saw them). The value says which rule made a stored id, so the
  rules meet cleanly: a hub that becomes one of a pair keeps every counter
  id it stored (an ack by it still reaches that alarm, answered under that
  id), but shows the derived one from then on; a hub that leaves its pair
  shows the derived ids it stored, and counts on from its highest counter
  id. A routed command is not an op of the asking centre's pair log (the
  site is the authority, and its entries go to both centres): an ack by a
  proxy id on one centre goes down to the site once, and the other centre
  shows the site's alarm acked under the same id when the site's entries, or
  its listing, say so. When the site is itself a pair (each site hub under
  one centre, or both under the same centres: A site that is a pair, where
  only the followed site hub acts), the site hub that applied it passes it
  to the other as an op of the site pair's log ("Hub pairs": which commands
  are ops), which the other centre then shows.
* ``shelve`` by its ``prefix``, ``unshelve`` by a ``path`` arg (1.3, any path
  below the shelf's prefix; shelf ids are the site's, as a routed ``shelves``
  lists them), when the prefix or path lies strictly below a site's mount (the
  mount itself is the asking hub's: a shelf of ``GS1`` covers its own alarm
  for the site's silence).
* ``alarms`` and ``shelves`` by their ``prefix`` (or ``path``) at or below a
  site's mount: the site's list (alarm ids as proxies).
* (1.3) ``alarms`` whose prefix lies above one or more site mounts (the
  empty prefix included): ONE list of the network below the prefix. The hub
  lists its own book (its agents' alarms, its sites' silence alarms) and
  routes ``alarms`` with the prefix ``""`` and the same ``states`` and
  ``limit`` to every site whose mount lies under the prefix (the outermost
  ones: a site lists what lies below it by this same rule, so a chain
  lists it all), at once; each site's alarms join the list with paths and
  ids as above (full path under the mount, proxy ids, every other field as
  the site has it: ``state``, ``acked_by``, ``ack_comment``, ``raised_at``,
  ``level_since``...; a latched alarm whose point the site removed
  included). The list is sorted by id and cut at ``limit``; ``merged``
  names the mounts whose lists it holds (a site's own ``merged`` put under
  its mount), ``unreached`` each site it holds nothing of, with the reason:
  silent here (not asked: ``nothing heard from site hub GS1 for N s``),
  refused (the site's message), or no answer within
  :data:`LISTING_TIMEOUT_S` (3 s, shorter than a client's usual 5 s:
  ``no answer from site hub GS1 within 3 s``); a site's own ``unreached``
  join, under its mount. A hub asked by the hub above gives its sites at
  most half the time left before the routed command's ``deadline``. The
  listing is ``ok`` whatever the sites did.
* (1.3) Last-known alarms. For each site it names in ``unreached`` (silent,
  mute or refusing), the hub lists that site's alarms as it last knew them,
  each such row with two more keys: ``last_known`` true, and ``as_of``
  float (the hub's wall seconds when it last heard the site); a row from a
  kept listing has ``listed_at`` float too (wall seconds that listing was
  asked). They are never current: a client must show them apart (``gsmon
  alarms`` marks them ``last known HH:MM``) and must not offer them as
  actionable; an ``ack``/``unack`` of their ids goes the usual way and is
  refused ``"unreachable"`` while the site is silent (never applied at the
  asking hub alone). Where they come from: (a) the site's part of the last
  merged listing the hub gathered (every field, alarms of removed points
  included), kept in memory -- one per site, at most 10,000 rows, dropped
  when the site is forgotten, none after the hub restarts -- only from a
  listing that asked every open state (``states`` absent, or naming
  ``active_unacked``, ``active_acked`` and ``rtn_unacked``) and whose site
  part was not cut at ``limit``; only its open rows are kept; (b) the
  relayed points' alarm summaries in the tree (``alarm``: ``id``,
  ``state``, ``max_level``), heard up to ``as_of``, hence newer than (a):
  a kept row whose id a point's summary carries takes the summary's
  ``state`` and ``max_level`` (a changed state drops ``acked_by``,
  ``acked_user``, ``acked_via``, ``acked_at``, ``ack_comment``, now
  unknown, and sets ``acked`` = state is ``active_acked``; a changed level
  drops ``max_level_str``); a kept row whose ``path`` is a relayed point
  that now carries no alarm is left out (it ended); an alarm the
  summaries carry that no kept row has is a row of its own: ``id``,
  ``path`` (the path all the points carrying it share: the point's own, or
  the site agent's for its silence there), ``agent`` (the site's name for
  the agent), ``state``, ``level`` and ``level_str`` (the worst of those
  points, as relayed), ``max_level``, ``acked``, ``shelved`` and
  ``shelf_id`` (the relayed ``shelf``), and for one point ``value`` and
  ``level_since`` (the relayed ``since``); it has no ``listed_at``. (1.3)
  The site's orphans as last heard (see Orphaned alarms) are summaries too,
  each of its own alarm: a kept row with its id takes its ``state`` and
  ``max_level`` as above; one no kept row has is a row with ``id``,
  ``path`` (under the mount), ``agent``, ``state``, ``level`` and
  ``level_str`` (the level's label), ``max_level``, ``acked``, ``shelved``
  and ``shelf_id``, and no ``value`` or ``level_since``. Rows
  follow the ``states`` asked (default: the open ones) and count towards
  ``limit`` like any. A row a site itself sent as last known (a chain)
  keeps its ``as_of`` and ``listed_at``. The answer's ``message`` ends
  ``, N last-known alarms of theirs listed`` when there are any.

The mount is stripped from ``path``/``prefix`` on the way down, and put back
in front of every ``path`` and ``prefix`` in the ``result``; the answer is the
site's COMMAND_RESULT (``ok``, ``message``, ``result``). The role is checked at
the hub that was asked; the site hub journals the command with ``by`` = the
asker's ``by`` + ``@`` + the asking hub's id (``ops@central``), ``user`` and
``via`` as given. In a chain each hub routes on by the same rules. When the
site is silent at the asking hub the command fails at once: ``ok`` false,
message ``GS1 unreachable: nothing heard from site hub GS1 for N s``, reason
``"unreachable"``; when no answer arrives within 5 s, the same reason
(``GS1 unreachable: no answer from site hub GS1 within 5 s``).

How: the central hub subscribes, then unsubscribes, on its agents socket the
topic ``ROUTE_TOPIC_PREFIX + sender + NUL + map`` (msgpack map, at most
:data:`MAX_ROUTE_BYTES`): ``route_id`` uint (the central hub's own number),
``command`` str, ``args`` map (mount already stripped), ``user`` str|nil,
``by`` str, ``hub`` str (the asking hub's id), ``role`` ("viewer", "operator", "admin": the asker's),
``deadline`` float (central wall seconds after which the site must not
apply it: a command that arrives late after its failure was reported is
dropped), (1.3) ``to`` str, only for a site that is a pair: the hub id of
the site hub that must act (see A site that is a pair). The site hub's XPUB sees ``0x01`` + that topic (like RESYNC and
NOTICE, every connected agent sees it and checks the name), runs the command
(which may route it further down) and answers on the upstream link it came
on (a site under a central pair: that centre's link only):

===============  ===  ================================================================
kind             id   body
===============  ===  ================================================================
UPSTREAM_RESULT   7   ``route_id`` uint, ``ok`` bool, ``message`` str, ``result`` any
                      (as COMMAND_RESULT); numbered in the link's ``seq`` like every
                      agent message. (Kinds 5 and 6 are reserved.)
===============  ===  ================================================================

Sealed routes (1.3). Because every publisher connected to the central hub
sees every subscription, a central hub with keys never sends the map in the
clear: the topic is ``ROUTE_TOPIC_PREFIX + sender + NUL + 0xC1 + nonce +
box``, where ``0xC1`` (:data:`SEALED_ROUTE_MARK`, a byte msgpack never
uses) marks it sealed, ``nonce`` is 24 random bytes and ``box`` is NaCl's
``crypto_box(map, nonce, site public key, central secret key)``
(Curve25519-XSalsa20-Poly1305, libsodium's ``crypto_box_easy``: the 16-byte
tag first), with the same Curve25519 keys as CURVE (Z85-decoded): the
central hub's server secret key, and the public key the site's latest
message came with. The site opens it with its agent secret key and the
central hub's public key (``crypto_box_open_easy``). A site hub with keys
takes only sealed routes and one without keys only plain ones; a box that
does not open (altered, or sealed to another key) is counted and dropped.
Only the named site can read it, and only the central hub can have made it.


Client <-> hub (query socket)
-----------------------------
=================  ===  ======================================================
kind               id   body
=================  ===  ======================================================
HELLO              10   ``request_id`` uint
SNAPSHOT_REQUEST   11   ``request_id`` uint, ``prefix`` str (see Prefixes)
COMMAND            12   ``request_id`` uint, ``command`` str, ``args`` map,
                        ``user`` str|nil (who asks, for the hub's log)
INFO               20   ``request_id``, ``endpoints`` {"agents", "subscribers",
                        "query": str}, ``heartbeat_s`` float, ``version`` str,
                        ``heartbeat_topic`` bin (minor 1; the heartbeat topic of
                        the asking key's read scope, see below; absent:
                        :data:`HUB_HEARTBEAT_TOPIC`), ``nodes`` bool (1.4;
                        present and true: the hub publishes NODES, below)
SNAPSHOT_CHUNK     21   ``request_id``, ``nodes`` [[path, node payload]...]
SNAPSHOT_END       22   ``request_id``, ``seq`` uint (the hub's seq when the
                        snapshot started, see Snapshots), ``count`` uint (nodes sent),
                        ``published`` uint (hub's publish counter for this
                        prefix, see HUB_HEARTBEAT)
ERROR              23   ``request_id``, ``message`` str
COMMAND_RESULT     24   ``request_id``, ``ok`` bool, ``message`` str (one line
                        for a person), ``result`` any (a value, below)
PAIR_SYNC          30   (1.3) a hub of a pair to its peer: ``request_id``,
                        ``hub_id``, ``head``, ``seen``, ``ops``, ``digest``,
                        ``full``, ``notifying`` (see Hub pairs)
PAIR_SYNC_REPLY    31   (1.3) the peer's answer: the same keys, about itself
=================  ===  ======================================================

(Kinds 30-39 are the hub pair's.)

Replies carry the hub's epoch in the envelope.

When ERROR is sent: the hub answers ERROR (with the request's
``request_id``) when it refuses a request for the sender's key (``not allowed
for this key``), when it has too many snapshots outstanding (``busy,
retry``), when a well-formed message is not a request (``STATE is not a
request I answer``), and when a request does not decode: a foreign major
version, an unknown kind, a missing or mistyped field (a missing ``prefix``,
a float ``sent_ns``...). The ``message`` of the last starts with
``malformed request:`` and says what is wrong. Its ``request_id`` is the
request's when that is a uint, 0 when the frame is an envelope (an array of
8 or more items whose 8th is a map) without a usable one (negative, missing,
not an int). A request sent with a leading empty frame (a REQ socket's
delimiter) gets that ERROR in the same framing: use a DEALER and send the
envelope as the only frame. A frame that is not even an envelope (not
msgpack, not an array...) gets no reply: a client that hears nothing within
its timeout should check what it sends. COMMANDs are answered with
COMMAND_RESULT, never ERROR, once they decode.

Snapshot framing: the hub sends the nodes in SNAPSHOT_CHUNKs of at most
2,000 nodes each (the hub's ``chunk_nodes``; a client must accept any
number, and chunks may be smaller), then one SNAPSHOT_END whose ``count`` is
the number of nodes sent in all the chunks. An empty snapshot (nothing
under the prefix) is a SNAPSHOT_END with ``count`` 0 and no chunk. The
client must check ``count`` against the nodes it received (every item of
every chunk, removals and items it cannot decode too): the hub drops a
reply when that client's queue is full (it never blocks on a slow client),
so a lower number means a chunk was lost, and the client throws the
snapshot away and asks again.

Snapshots (the ZeroMQ guide's Clone pattern, made safe for a snapshot the hub
sends over several loop turns): a client subscribes first, then asks for the
snapshot. ``SNAPSHOT_END.seq`` is the hub's seq when the snapshot *started*;
every node payload in the chunks carries its own ``seq`` (that of its last
change), which may be greater when the node changed while the snapshot was
being sent. The client keeps the seq of every node it holds and applies a
NODE only if its ``seq`` is greater than both ``SNAPSHOT_END.seq`` and the
seq it holds for that path (a removal too). Every NODE whose seq is greater
than ``SNAPSHOT_END.seq`` counts towards the gap check (HUB_HEARTBEAT), applied
or not. The hub bounds the work it spends on snapshots per loop turn and
answers them round-robin, so that agents' updates keep flowing; each client
identity (its CURVE key, else its connection) may have at most a few
snapshots outstanding: beyond that the request is answered at once with
ERROR ``busy, retry`` (ask again when the earlier ones have ended).

Commands: a COMMAND names an operation from the hub's table, with its
arguments; the hub answers one COMMAND_RESULT. Each command requires a role
of the sender's key when the hub uses keys (without keys, anyone who can reach
the query socket may): ``admin`` is a subscriber grant with ``admin = true``
or the hub's own key pair. A refused, unknown or failed command has ``ok``
false, a message saying why, and ``result`` ``{"reason": ...}``:
``"forbidden"`` (the key lacks the role), ``"unknown-command"``,
``"bad-args"``, or the command's own; nothing was changed then. With keys, a
snapshot is allowed exactly when a subscription to the same prefix would be.
Commands:

==========  =======  ==========================================================
command     role     args -> result
==========  =======  ==========================================================
forget      admin    ``{"agent": NAME}``: remove a silent agent and all its
                     points now (NODE removals follow). A live agent is
                     refused (``result`` ``{"reason": "live"}``), as is an
                     unknown one (``{"reason": "unknown"}``). An agent whose
                     key is no longer granted counts as silent: the hub drops
                     its messages. On success ``{"agent": NAME, "points": n}``.
                     Journaled (kind ``forget``).
whoami      viewer   ``{}`` -> ``{"role": "viewer"|"operator"|"admin", "by":
                     key name | "anonymous@<ip>"}`` (1.2)
alarms      viewer   ``{prefix?, states?: [state...], limit?}`` ->
                     ``{"alarms": [alarm...]}`` every alarm under the prefix
                     that is not cleared (shelved ones too), by id;
                     ``states`` filters (naming ``cleared`` adds the cleared
                     ones the hub keeps). alarm = every field of an alarm:
                     ``id`` (uint, never reused), ``path``, ``agent``,
                     ``reason`` ("level", "overdue", "agent silent"),
                     ``state`` (active_unacked, active_acked, rtn_unacked,
                     cleared), ``level``, ``level_str``, ``max_level``,
                     ``max_level_str``, ``latch``, ``raised_at``,
                     ``raise_level``, ``raise_value``, ``value``,
                     ``level_since``, ``rtn_at``, ``acked_by`` (key name),
                     ``acked_user``, ``acked_via``, ``acked_at``,
                     ``ack_comment``, ``shelf_id``, ``cleared_at``,
                     ``cleared_by``, ``cleared_user``, ``cleared_reason``,
                     ``acked`` bool, ``shelved`` bool. (1.2)
                     (1.3) at a hub with site hubs under the prefix, the
                     list holds their alarms too (see Hub-of-hubs, Routed
                     commands), and ``merged``: [str], the mounts whose
                     lists it holds; ``unreached``: [{``path`` (the mount),
                     ``site`` (its sender name), ``reason`` str}], the sites
                     it could not ask (absent: none), each one's alarms
                     as the hub last knew them listed with ``last_known``
                     true and ``as_of`` (see Hub-of-hubs, Last-known
                     alarms). Both absent: no site below the prefix.
shelves     viewer   ``{prefix?, all?: bool}`` -> ``{"shelves": [shelf...]}``
                     in force or scheduled (``all``: the ended ones kept too);
                     shelf = ``id``, ``prefix``, ``mode`` (timed,
                     until_normal, scheduled), ``starts_at``, ``ends_at``,
                     ``comment``, ``by``, ``user``, ``via``, ``created_at``,
                     ``ended_at``, ``end_reason`` (expired, normal,
                     unshelved, expired_during_downtime), ``ended_by``,
                     ``ended_user``. (1.2)
journal     viewer   ``{after_id: uint, prefix?, limit? (<= 10000), since?:
                     wall seconds, newest?: bool}`` -> ``{"entries":
                     [entry...], "last_id": uint}``: entries with id >
                     after_id, oldest first; read again from ``last_id`` to
                     get each entry exactly once (ids are persistent and
                     increasing, across restarts). ``newest: true`` returns
                     the newest ``limit`` matching entries instead of the
                     oldest (still oldest first): a view's latest entries.
                     entry = ``id``, ``time`` (source time: the poll's for
                     level changes), ``hub_time``, ``path``, ``kind``,
                     ``old``, ``new`` (level codes), ``value``, ``agent``,
                     ``user``, ``by``, ``via``, ``comment``, ``alarm_id``,
                     ``shelf_id`` (the shelf covering it then), ``replayed``.
                     Kinds: level, stale, fresh, removed, agent_silent,
                     agent_back, alarm_raised, alarm_escalated, alarm_rtn,
                     alarm_cleared, ack, unack, shelf_created, shelf_ended,
                     shelf_ended_still_active, forget, context_start,
                     context_stop, flapping_start, flapping_stop, pending,
                     discarded; (1.3) lost_transitions, replayed (see
                     Outbox and replay; replayed entries have ``replayed``
                     true). (1.2) A ``stale`` entry with comment
                     ``unlisted`` (1.3): the point's agent (restarted) no
                     longer lists it; it is removed after the hub's removal
                     grace and opens no alarm (not overdue); its ``removed``
                     entry follows, and an open alarm on it is then cleared
                     (reason ``removed``) unless it latched unacknowledged.
ack         operator ``{ids: [uint], comment?, via?, seen?: {id: max_level}}``
                     -> ``{"acked": [id...], "skipped": [{id, reason}...]}``:
                     acknowledges exactly those ids (never "everything under
                     a prefix": an alarm raised after the operator looked is
                     never acked); an id whose max_level rose above its
                     ``seen`` level is skipped ("escalated since it was
                     listed"), as are unknown, cleared and already acked ones.
                     ``ack {ids: []}`` checks the role and changes nothing.
unack       operator ``{ids: [uint], comment?}`` -> same shape as ack (1.2)
shelve      operator ``{prefix, mode, duration_s? | ends_at?, starts_at?,
                     comment (required, <= 500 chars)}`` -> ``{"shelf":
                     shelf}``. Operators: at most the hub's max_shelve_s (24 h)
                     from the start, until_normal capped at it; admins: no
                     limit. Refused over the limit with reason "forbidden".
unshelve    operator ``{id, comment?}`` -> ``{"shelf": shelf}`` (ended now)
context_    operator ``{kind, prefix, id: str|int}`` -> ``{"context": {kind,
start                prefix, id, by, user, at}}``: stored, journaled, and
                     published as the point ``_hub/contexts/<kind>/<prefix>``
                     whose value is the id (within a heartbeat). (1.2)
context_    operator ``{kind, prefix}`` -> ``{"context": ...}``: the point is
stop                 removed; reason "unknown" when none is active.
clear       admin    ``{ids: [uint], comment?}`` -> ``{"cleared": [id...],
                     "skipped": [{id, reason}...]}`` (1.2)
register_   service  ``{service: "history"}`` -> ``{"service": ...}``: this
service              connection answers that service's commands from now on
                     (without keys anyone; with keys a grant listing the
                     service, ``services = ["history"]``). (1.2)
history     viewer   anything: forwarded to the registered history service
                     with the hub's own request id and ``args.by`` set to the
                     asker; its COMMAND_RESULT is relayed back under the
                     asker's request id. None registered: ok false, reason
                     "no history service"; no answer in 30 s: reason
                     "timeout". (1.2)
report_     viewer   ``{points: {name: [value, level]}, ttl_s, client?,
health               final?}`` -> ``{"prefix": "_hub/clients/<name>"}``: a
                     client's own health (the recorder's lag, the notifier's
                     failed deliveries) shown as hub points
                     ``_hub/clients/<name>/<point>``, plus ``reporting``
                     (true, GREEN). ``name`` is the caller's key name with
                     keys (never another's), else ``client`` (a valid name).
                     1 to 64 points; a name is 1 to 3 path segments (the
                     first not ``reporting``); value: int, bool, finite float or text
                     <= 200 characters; level: 0, 10, 20, 30 or 100. A
                     report lasts ``ttl_s`` (0 < ttl_s <= 3600): without a
                     new one, the figures go and ``reporting`` turns false
                     at RED (an alarm, like a silent agent). ``final: true``
                     removes the subtree (a clean stop). Reports are not
                     stored: a restarted hub shows them at the next
                     report. (1.3)
==========  =======  ==========================================================

Every command records who did it: ``by`` (the key's name; without keys
``anonymous@<peer ip>``), ``user`` (the COMMAND's ``user``: the end user a
client forwards), ``via`` (``args.via``, e.g. "web"), the hub's time, and the
comment. Roles (1.2): a subscriber grant's ``role`` (viewer, operator,
admin; absent: viewer, or admin with ``admin = true``); the hub's own key
pair and every caller of a hub without keys are admins. A command's effects
are stored (the hub's state store) before its COMMAND_RESULT is sent, and
before the NODEs they change are published. Any other ``result`` reason:
``"unknown"`` (no such alarm, shelf or context), ``"no-state"`` (the hub
runs without a state store).

Hub pairs (1.3)
---------------
Two hubs run as a pair (``gsmon hub --peer QUERY_ENDPOINT --hub-id ID``;
``[pair]`` ``peer``, ``peer_key``, ``hub_id``, ``peer_timeout_s`` in the hub
config): every agent publishes to both (``hub = [A, B]``), so both build the
same tree, and they share what operators do and what was notified.

The link: each hub connects a DEALER to its peer's query ROUTER (with keys:
CURVE with its own hub key pair as the client pair and the peer's public key,
``--peer-key FILE``, as the server key; the peer's allow-list must grant that
key as a subscriber listing the service ``pair``: ``services = ["pair"]``,
else PAIR_SYNC is answered ERROR ``PAIR_SYNC needs a key granted the service
'pair'``). Without keys, whoever reaches the query socket may link (as with
commands). A hub sends PAIR_SYNC every 0.25 s, and at once after an operator
action; the peer answers PAIR_SYNC_REPLY. Both directions run at once (each
hub's DEALER), and each message carries ops, so an ack on A shows on B within
one exchange (under 1 s).

Hub id: 1 to 64 of ``A-Z a-z 0-9 - _ .``; given, or made (``hub-`` + 8 hex
digits) and kept in the state directory (``pair.db``). The two must differ;
a PAIR_SYNC with the receiver's own id, or from a third id once the peer's is
known, is answered ERROR and changes nothing.

Body of PAIR_SYNC and PAIR_SYNC_REPLY:

=============  ===============  ===============================================
key            type             meaning
=============  ===============  ===============================================
request_id     uint             the sender's number (a reply echoes it)
hub_id         str              the sending hub's id
head           uint             the seq of the sender's own newest op (0: none)
seen           uint             the highest seq of the *receiver's* ops the
                                sender holds with none missing below it
ops            [op...]          at most :data:`MAX_PAIR_OPS_PER_MESSAGE` (500)
digest         [uint, uint]|nil (ops held, sum of the ops' key hashes mod
                                2**64), every 30 s; else nil or absent
full           bool             ``ops`` is part of the sender's whole retained
                                log (a full exchange); absent: false
notifying      bool             the sender is the pair's notification sender
                                now; absent: false
=============  ===============  ===============================================

An op is ``[origin, seq, kind, at, args]``: ``origin`` the hub id where the
operator acted, ``seq`` (uint >= 1) per origin, +1 per op, never reused
(kept in ``pair.db``); ``kind`` one of the kinds below; ``at`` float, the
origin's wall clock; ``args`` a map. The key of an op is ``(origin, seq)``; its
hash is the first 8 bytes of BLAKE2b (digest size 8) of ``origin`` UTF-8, a
NUL byte, then ``seq`` in decimal ASCII, read as a big-endian uint64.

==========  =====================================================================
kind        args (every kind also ``by``, ``user``, ``via``, ``comment``: who acted)
==========  =====================================================================
ack         ``ids`` [uint]: the alarms the origin acknowledged
unack       ``ids`` [uint]
clear       ``ids`` [uint]
shelve      ``id`` (the shelf's id, kept on both hubs), ``prefix``, ``mode``,
            ``starts_at``, ``ends_at``
unshelve    ``id``
forget      ``agent``
delivered   ``keys`` [[receiver str, alarm_id uint, kind str]...]: the origin's
            notifier delivered these (see Notifications of a pair)
==========  =====================================================================

Which commands are ops: every one that changed something where it ran -- an
operator's on the query socket, and (1.3) one a central hub routed down to
this hub (a site hub of a pair: the op's ``by`` is the routed ``by`` with
``@`` + the asking hub's id), so the other site hub, and the centre above it,
show it too. A command this hub routed down to a site is not an op here: the
site applies it and relays the result (see Proxy ids of a pair), so the ids
of an ``ack`` op are never proxies.

Rules. Ops are applied once: a receiver keeps every op key it holds and
skips one it holds already (and one of the peer's at or below its ``seen``,
outside a full exchange). It applies the peer's ops in seq order; an op after
a gap is dropped (it comes again). Each message carries the sender's ops
after the receiver's last ``seen``, so ops lost with a link, or sent to a dead
peer, go again when the link returns. An op naming what the receiver does not
know yet (an alarm its agent's message has not raised there yet, a shelf to
end it does not have, a forget of an agent still live there) is retried for
60 s, then given up (counted). Applying an op does what the command does, as
an admin, with the origin's ``by``/``user``/``via``/``comment`` and ``at`` as
the time; it journals the same entries, so the journal reads alike on both
hubs. The peer is live while a valid message from it came within
``peer_timeout_s`` (default 15 s). Digest: when a digest arrives and the
cursors agree (its ``seen`` is the receiver's ``head`` and its ``head`` the
receiver's ``seen``) but the digests differ, or whenever ``seen`` is above the
receiver's ``head`` (the receiver lost ops of its own, e.g. its state was
restored from an older copy), the receiver starts a full exchange: it sends
its whole retained log (the last 50,000 ops, both origins) with ``full`` true,
in as many messages as it takes. A receiver of a full exchange applies every
op it does not hold (gaps allowed; its own ops with seq above its ``head``
too, its ``head`` then moving up) and answers with a full exchange of its own
unless it started one within 5 s.

Each hub of a pair shows its link as points ``_hub/pair/...``: ``peer_live``
(bool; RED when false), ``sender`` (bool), ``head``, ``seen``, and the counts
``applied``, ``duplicates``, ``gaps``, ``deferred``, ``expired``,
``full_exchanges``, ``digest_mismatches``, ``bad_messages``.

Alarm ids of a pair: both hubs derive an alarm's id from what both see, so an
id names the same alarm on both: ``2**52 + h mod 2**52``, ``h`` the first 8
bytes of BLAKE2b (digest size 8), big-endian, of the UTF-8 text ``alarm``
NUL path NUL reason NUL time, where time is Python's ``repr`` of the float
source time of the raise (the agent's ``polled_at``; for an overdue alarm the
``since`` of the level it interrupted; for an agent-silent alarm the reason
is ``agent silent`` NUL agent name and the time the agent's last level change
the hub saw). A shelf made on a hub of a pair gets ``shelf`` NUL prefix NUL by
NUL wall time the same way; a replicated shelf keeps its origin's id. An id
already taken moves to the next free one. Ids stay uints below 2**53 (exact in
JavaScript); a single hub keeps its counter (1, 2, 3...), and stored counter
ids stay valid when a hub becomes one of a pair. A site's alarms relayed to a
pair of central hubs get derived proxy ids the same way (``proxy`` NUL site
NUL the site's id: "Routed commands", "Proxy ids of a pair").

Notifications of a pair: the *sender* is the hub whose peer is not live, or
whose ``hub_id`` is the lower (byte order) of the two: exactly one while they
hear each other, both during a partition. Each hub's notifier follows its own
hub and asks it, before delivering, COMMAND ``pair_status`` ``{"check":
[key...]}`` (viewer) -> ``{"hub_id", "peer_id", "peer_live", "sender",
"delivered": [bool per key]}``; a message's keys are ``[receiver, alarm_id,
kind]`` for each of its alarm ids and kinds (alarm id 0 and ``kind:path``
without alarm ids). A message all of whose keys are marked is not sent (it
was, by the other notifier); otherwise only the sender's notifier delivers,
the other holds it. After a delivery the notifier sends COMMAND ``pair_mark``
``{"keys": [key...]}`` (at most 1,000 keys; an operator's key, or one granted
``services = ["notify"]``; -> ``{"marked": n}``), which its hub stores and
sends to its peer as a ``delivered`` op. So when the sender dies, the other
hub becomes the sender after ``peer_timeout_s`` and its notifier sends what no
mark covers: nothing lost, nothing repeated -- except a message delivered in
the instant before its hub died, before the mark left it (sent again: a repeat,
never a loss). During a partition each notifier sends on its own: at most
twice. A hub that is not one of a pair answers ``pair_status`` with reason
``unknown-command``, and its notifier sends everything, as before 1.3.

History service (the hub side is its ``register_service`` and forwarding,
:mod:`gsmon.hub.queries`): ``gsmon recorder`` connects a DEALER to
the query socket and sends COMMAND ``register_service`` ``{"service":
"history"}`` (allowed without keys, or for a key whose grant lists the
service); it repeats it when the hub's epoch changes and every 30 s (a
DEALER that reconnected has a new identity at the hub's ROUTER, so it must
register again). The hub forwards each COMMAND ``history`` to it with the
hub's own request id (the recorder answers with the id it received) and
``args.by`` added, and relays the COMMAND_RESULT as the table above says. Args
of ``history`` (times: float seconds since the Unix epoch, UTC):

* ``{"query": "history", "path", "from"?, "to"?, "limit"?}`` (``query``
  defaults to ``"history"``; ``to`` defaults to now, ``from`` to one hour
  before ``to``) -> ``{"path", "from", "to", "samples": [{"t", "value",
  "level", "context", "stale"}...], "gaps": [{"from", "to", "reason"}...],
  "truncated": bool}``; ``value`` is the point's own typed value (see Values).
* the same with ``"buckets": N`` or ``"every": seconds`` -> ``{"path",
  "from", "to", "buckets": [{"from", "to", "min", "max", "avg", "count",
  "first", "last"}...], "gaps": [...], "source": "raw"|"rollups"}``: ``count``
  0 with nulls is no data (a gap is never a flat line); ``count`` 0 with a
  value is that value held from before.
* ``{"path", "context": ID}``: ``from``/``to`` of context interval ID.
* ``{"path": PREFIX, "at": t}`` -> ``{"prefix", "at", "points": {path:
  {"t", "value", "level", "context", "stale"}}, "gaps": [...]}``.
* ``{"query": "contexts", "prefix"?, "from"?, "to"?}`` -> ``{"contexts":
  [{"kind", "prefix", "context", "from", "to" (null: active), "source":
  "tree"|"offline"}...]}``.
* ``{"query": "status"}`` -> the recorder's figures: ``lag_s``,
  ``lag_max_s``, ``rows_per_s``, ``queued_rows``, ``rows_committed``,
  ``gaps``, ``errors``, ``points``, ``contexts``; (1.3) ``behind_s``: the
  largest, over the last 5 s, of how long before the recorder read an
  update the hub had received it (what waits in its socket; ``lag_s`` runs
  from the recorder's receipt to the commit).

Refusals from the recorder: ``{"reason": "bad-args"|"unknown-path"|
"unknown-context"|"unknown-command"|"store-error"}`` with a one-line message.
Contexts live in the tree as points ``_hub/contexts/<kind>/<prefix path>``
whose value is the context id; the recorder follows them and every row it
writes under the prefix carries the id.

Prefixes (snapshots, ``gsmon get``/``watch``, subscriber grants, the
Subscriber) name whole path segments: ``GS1/Antenna1`` is that node and its
subtree, never its sibling ``GS1/Antenna10``, nor ``_hub/agents_live`` for
``_hub/agents``; a trailing ``/`` (``GS1/Antenna1/``) means only the subtree
below it; the empty prefix is the whole tree
(:func:`gsmon.common.names.path_in_prefix`). The hub answers snapshots by this
rule. A ZeroMQ subscription matches raw bytes, so the topic ``GS1/Antenna1``
also delivers ``GS1/Antenna10/...``: the subscriber drops what the rule does
not select (after counting it for the gap check: the hub's ``published``
counter for a prefix counts by bytes, as ZeroMQ delivers).

Hub -> subscribers
------------------
NODE: topic = the node's path; payload map:

================  =========  =================================================
key               type       meaning
================  =========  =================================================
v                 uint       protocol major (1)
epoch             uint63     the hub's incarnation
seq               uint64     global sequence number of this change (+1 per
                             NODE); in a snapshot, that of the node's last
                             change
kind              str        "point", "parent" or "removed"
alert             int        effective alert code (a stale point shows at
                             least STALE; a parent shows its worst child)
alertstr          str        label of ``alert`` (below)
stale             bool       not refreshed in time, its agent went silent, or
                             its agent's latest full STATE no longer lists it
value             any        points only (nil otherwise)
agent             str|nil    owning agent (points)
polled_at         float|nil  agent's wall-clock time of the poll
received_at       float|nil  hub's wall-clock time of receipt
dt                float|nil  poll interval of the point
reported_alert    int        (1.1) points: the alert code the agent last
                             reported, when the hub shows another (a STALE
                             point that was RED has 30 here); absent when it
                             is ``alert`` itself, and for parents
liveness_unknown  bool       (1.1) present and true while the hub cannot
                             vouch for this node's freshness: it is behind
                             that agent's messages by more than a
                             heartbeat, or it has just resumed from a
                             pause (SIGSTOP, a VM freeze); absent means
                             false. A parent says so when any child does.
                             Such a node's GREEN is not known to be current.
since             float      (1.2) wall seconds: when the node's current
                             level began (points: the poll that set it, or
                             the hub's judgement for STALE; parents: when
                             their current worst level began; the hub's own
                             ``_hub/...`` points too, from 1.3)
attention         int        (1.2) the worst level among unacknowledged,
                             unshelved alarms at or below the node (an
                             rtn_unacked alarm counts at its max_level);
                             absent: 0 when the payload has ``since``, else
                             not judged (below). Views colour and sort by it.
alarm             map        (1.2) points with an open alarm, and mounts with
                             an agent-silent alarm: ``id``, ``state``,
                             ``level``, ``max_level``, ``latch``, ``reason``,
                             ``raised_at``, ``rtn_at``, ``acked_by``,
                             ``acked_at``, ``ack_comment``, ``shelf_id``;
                             absent: none
shelf_id          int        (1.2) points under a shelf in force: its id
shelved_below     int        (1.2) parents: shelved points at or below
unacked_below     int        (1.2) unacknowledged unshelved alarms at or below
raw_alert         int        (1.2) points whose latest entry had the
                             optional 7th item (debounce or a flap guard):
                             its ``raw`` level, the monitor's own before
                             debounce; ``alert`` is then the effective one
pending           map        (1.2) points: the entry's ``pending``
                             ``{"level": int, "since": float}`` (agent wall
                             seconds), while a move is held back
flapping          map        (1.2) points: the entry's ``flapping``
                             ``{"since": float, "changes": int}``, while the
                             flap guard holds the level
via               [str]      (1.3) points relayed by a site hub: the hub ids
                             the entry passed (see Hub-of-hubs); their
                             ``alarm`` map is then the site's summary,
                             ``id``, ``state``, ``max_level``, its ``id`` a
                             proxy id of this hub's (< 2^53, safe in JSON)
================  =========  =================================================

The hub relays these three as the agent's latest entry has them (only the
keys above; absent: no debounce, nothing pending, not flapping), with or
without its alarm layer; a later entry without the 7th item removes them.

Every 1.2 key is left out at its default (absent = 0 or nil), so old clients
see the same payloads and ignore the keys they do not know. How a client
tells 0 from "not judged": a hub with the alarm layer (it has a state store)
sends ``since`` on every parent and on every point of an agent, so there an
absent ``attention``, ``shelved_below`` or ``unacked_below`` is 0; a payload
without ``since`` comes from a hub without the layer (or from a 1.1 hub): its
attention is not judged and views fall back to the node's level. (A hub
without the layer still relays ``raw_alert``, ``pending`` and ``flapping``.)
The hub's own ``_hub/...`` points open no alarms and cannot be acknowledged
or shelved; a 1.2 hub sent them without ``since`` (not judged, as above).
From 1.3 they carry ``since`` like every point, and ``attention`` equal to
their ``alert`` (absent when 0), so a view colours and sorts them by their
level, old clients included; they carry no ``alarm``.

A ``point``'s ``alertstr`` is the label its agent sent with ``alert``, except
that a built-in code (:mod:`gsmon.common.alerts`: 0, 10, 20, 30, 50, 100)
always carries its built-in label; a ``parent``'s is the label of the child it
rolls up from (for a built-in code, the built-in label). So no agent can
relabel a level outside its own points.

A ``removed`` payload says the node is gone (a removal is sent for each
node of a removed subtree): ``kind`` "removed", ``alert`` 0, ``alertstr``
"", ``stale`` false, ``value``, ``agent``, ``polled_at``, ``received_at``
and ``dt`` nil, no ``reported_alert`` or ``liveness_unknown``; only
``epoch`` and ``seq`` carry meaning.

NODES (1.4): the NODEs under one followed prefix, in batches. Topic
:func:`nodes_topic` ``(P)``: :data:`NODES_TOPIC_PREFIX` (the 7 bytes
``00 6e 6f 64 65 73 2f``, NUL then ASCII ``nodes/``), the prefix ``P`` in
UTF-8, then a NUL byte (so no prefix's topic is a byte-prefix of another's:
a subscription to it receives exactly ``P``'s batches). Payload: a msgpack
array of ``[path str, NODE payload map]`` pairs (the items of a
SNAPSHOT_CHUNK's ``nodes``), in ``seq`` order: every NODE the hub publishes
in one turn whose path starts with ``P``'s bytes -- exactly what a plain
subscription to ``P`` delivers in that turn, the same payloads. A turn's
NODEs for ``P`` are cut into several NODES messages of at most
:data:`MAX_NODES_PER_BATCH` pairs (and, but for a single larger node, about
:data:`MAX_NODES_BATCH_BYTES` of payloads), sent in order; a turn without any
sends none. Each pair counts as one NODE everywhere (``seq``, the prefix
rule, the ``published`` counter, which one prefix has however it is
followed). A reader decodes each pair by the NODE rules; a pair that is not
a valid NODE is dropped (and not counted: the gap check then asks for a
snapshot), the rest of the batch is kept; a payload that is no such array is
dropped whole. Why: at 100,000 NODEs a second, two frames per NODE cost the
hub a sixth of its loop and a reader half of its read path (bench/RESULTS.md).

HUB_HEARTBEAT: topic :data:`HUB_HEARTBEAT_TOPIC`, the 14 bytes
``00 68 75 62 2f 68 65 61 72 74 62 65 61 74`` (a NUL byte, which no path can
hold, then ASCII ``hub/heartbeat``), or a scope's topic (below); payload map ``v``,
``epoch``, ``seq`` (last NODE seq), ``interval_s``, ``sent_at`` (float),
``published`` {prefix: uint}, ``complete`` bool (minor 1; sent only when
false: the hub counts at most ``max_published_prefixes`` prefixes, and
past that some followed prefix has no counter, so a prefix missing from
``published`` proves nothing), and ``batched`` [str] (1.4; the prefixes the
hub publishes NODES for, within the heartbeat's scope; absent: none).

Gap detection with prefix filters: a subscriber following prefix ``P`` cannot
use ``seq`` contiguity, since it sees only the NODEs under ``P``. Instead the
hub counts, for every prefix some subscriber follows, how many NODEs it has
published under it (``published``). Frames on one connection arrive in order,
so when a heartbeat arrives the subscriber must have received exactly
``published[P] - SNAPSHOT_END.published`` NODEs since its snapshot; any other
number means messages were dropped (slow subscriber, high-water mark) or the
hub's counter restarted, and the subscriber re-snapshots. Count only NODEs
whose ``seq`` is greater than ``SNAPSHOT_END.seq`` (applied or not), and
ignore a heartbeat whose ``seq`` is below ``SNAPSHOT_END.seq``: it was sent
before the snapshot started and can arrive after SNAPSHOT_END, since the two
travel on different connections. A new ``epoch`` also means a re-snapshot.
A prefix missing from ``published`` (in a heartbeat not older than the
snapshot, without ``complete`` false) means the hub no longer counts, nor
publishes, it for this client: the client re-subscribes and re-snapshots
(Subscribing, step 4). When heartbeats stop (none for 3 x ``interval_s``,
the project's client's bound; a NODE read after the first heartbeat counts
as a sign of life too, since a client reading behind the stream meets the
next heartbeat only after the NODEs queued before it), the client treats the hub as unreachable: it
shows its data as of unknown freshness, keeps its subscriptions (ZeroMQ
reconnects by itself) and, when heartbeats come back, re-snapshots if the
``epoch`` is new or the count does not match. The hub sends a heartbeat immediately when it sees a new
subscription to the heartbeat topic, which a client uses to know its prefix
subscription is active before it asks for a snapshot.

Subscribing (rules of the hub's subscriber socket; minor 1)
-----------------------------------------------------------
A subscriber sends ZeroMQ subscriptions (``0x01`` + topic) and
cancellations (``0x00`` + topic) only; anything else upstream is refused.
The hub applies a subscription only within the sender's read grant (with
keys) and its caps, and may set one aside when another peer's junk made it
unsure which connection the subscription came from. So a client:

1. subscribes its prefix, then its heartbeat topic (INFO ``heartbeat_topic``);
2. until a heartbeat on that topic arrives whose ``published`` lists the
   prefix (or says ``complete`` false), sends both again every second, each
   as a cancellation followed by a subscription (a plain ZeroMQ SUB sends a
   repeated subscription but cancels only the last one);
3. then asks for the snapshot (above);
4. whenever a heartbeat newer than its snapshot (``seq`` at least the
   snapshot's) does not list the prefix, treats it as a gap: it subscribes
   again as in 1-2 and then takes a new snapshot. (Whatever the hub no longer
   counts it does not publish either: without this rule such a client would
   silently freeze.)

NODES (1.4). A client of a hub whose INFO says ``nodes`` may follow its
prefix ``P`` in batches: in step 1 it subscribes :func:`nodes_topic` ``(P)``
instead of ``P``; in steps 2 and 4 it reads ``batched`` instead of
``published`` (the counter may exist for another client's plain
subscription: only ``batched`` says the hub makes batches of ``P``), and
counts for the gap check as before, one per pair. The hub takes NODES
subscriptions of at most :data:`MAX_NODES_PREFIXES` (64) distinct prefixes
(each costs it a pass over every turn's NODEs); past that it refuses new
ones, and a client whose NODES subscription awaits confirmation while 3
heartbeats on its topic come without listing it in ``batched`` cancels it
and follows ``P`` plainly (heartbeats, not time: a client waiting for a hub
that is down keeps asking for batches). A NODES subscription is granted
exactly as ``P``'s plain one (read grants, caps). A client subscribed to
``""`` plainly receives every topic, NODES of other clients' prefixes
included: it ignores a topic that is neither its heartbeat topic nor a path
(a leading NUL), and counts none of it.

Read scopes and heartbeat topics: with keys, a subscriber grant limited to
some prefixes is a *scope* with its own heartbeat topic,
:data:`SCOPE_HEARTBEAT_PREFIX` + the grant's name (UTF-8) + NUL (so that no
scope's topic is a byte-prefix of another's); full-access keys, and every
client of a hub without keys, use :data:`HUB_HEARTBEAT_TOPIC`. A limited key
may subscribe to its own scope's topic and to no other control topic (a
topic starting with NUL) but (1.4) the NODES topics of prefixes its grant
allows; a full-access key to :data:`HUB_HEARTBEAT_TOPIC` and any NODES topic.
Each heartbeat's ``published`` and ``batched`` hold only the prefixes its
scope may read, so a key never learns what others follow outside its grant.
(A client of minor 0 with a limited key, which subscribes to
:data:`HUB_HEARTBEAT_TOPIC`, gets no heartbeat: it must be updated.)

Clients of a hub pair (1.3)
---------------------------
Agents publish to both hubs of a pair (an agent's ``hubs = [A, B]``), so
each hub builds the same tree; but the two hubs are independent for a
client: each has its own ``epoch``, its own NODE ``seq`` and publish
counters, and its own journal ids. A client given both query endpoints
(gsmon's syntax: one setting, the two joined by a comma,
``tcp://a:7763,tcp://b:7763``; for ``--hub``, ``GSMON_HUB``, a client file's
``hub`` (which may also be an array) and the recorder's and notifier's
``hub``) follows these rules:

1. To connect, it tries the endpoints in the order given and uses the
   first that answers (HELLO, then the Subscribing steps and a snapshot).
2. It judges the hub it uses lost when nothing came from it for 3 x that
   hub's ``interval_s`` (the single-hub bound above: no heartbeat, and no
   NODE either once a heartbeat was heard -- a client reading behind the
   stream meets the next heartbeat only after the NODEs queued before it),
   or when a request with a deadline to it (a snapshot, a journal page) got
   no answer.
3. Then it connects to the other hub anew (HELLO, subscriptions, a fresh
   snapshot) and applies nothing of that hub's before its own SNAPSHOT_END:
   a seq or a publish counter of one hub means nothing at the other, so the
   seq and gap rules start again from the new snapshot. What the client
   showed is replaced by that snapshot (a view may keep showing the old
   nodes until it arrives). While the other does not answer either, it
   tries them in turn, at most once a second, and keeps its old sockets
   (a hub that comes back is heard on them).
4. No flapping: it stays with the hub it uses while that hub's heartbeats
   come, even when the one listed first comes back; it moves only by rule 2.
5. Views name the hub they use, and say the hub is lost (or that they are
   waiting for one) only when every hub of the pair is gone.
6. Commands (ack, shelve ...) go to the hub the client uses (a one-shot
   command: the first that answers); a command that got no answer in time
   is sent to the other, and a COMMAND_RESULT, ok or not, is final. Whether
   an operator action on one hub shows on the other is the pair link's
   business, not the client's.
7. A journal reader (the notifier) keeps a cursor per hub, since ids are
   each hub's own. On a hub it has not read yet it asks ``journal`` with
   ``since`` a few seconds before the source ``time`` of the newest entry
   it took from the other, and skips the entries it took already (the same
   kind, path, source time and new level).

Measured (bench/failover_bench.py, 1 s heartbeats): a Subscriber resumes on
the other hub 2 to 3 s after a SIGKILL of the one it used (3 missed 1 s
heartbeats counted from the last one heard, then a few ms to connect).

NOTICE back-channel (hub -> agent; minor 1)
-------------------------------------------
When the hub refuses an agent's messages (its key may not publish under that
name or mount, its mount or name is invalid, its points conflict with
another agent's...) it subscribes, then unsubscribes, on its agents socket
the topic ``NOTICE_TOPIC_PREFIX + agent name + NUL + reason``, the reason
being human-readable UTF-8 of at most :data:`MAX_NOTICE_REASON_BYTES` bytes
(cut at a character boundary), at most once per agent and reason every 10 s.
The agent's (verbose) XPUB sees ``0x01`` + that topic; an agent whose name
it is logs the reason (:func:`parse_notice`). Like RESYNC, the subscription
reaches every connected agent: each checks the name.

Values
======
Values keep their types end to end: nil, bool, int (64-bit), float (NaN and
+-inf too), str, bytes (msgpack bin), list (array), dict with str keys (map),
and two extension types::

    ext 1  datetime  UTF-8 ISO 8601 text, with its UTC offset when aware and
                     the IANA zone in brackets when it has one (RFC 9557):
                     "2026-11-28T12:00:00.500000+01:00[Europe/Oslo]"
    ext 2  tuple     a msgpack array, packed the same way

The datetime text is Python's ``isoformat()``: ``YYYY-MM-DDTHH:MM:SS``, then
a fraction only when there are microseconds (this side writes six digits,
``.500000``; a reader must accept 0 to 6), then ``+HH:MM`` (or ``-``) when
aware, then ``[Zone/Name]`` when the zone is an IANA one. A naive datetime
has no offset. A reader that does not know the zone keeps the offset.

``gsmon get --json`` (JSON has none of these types) maps bytes to base64
text, datetimes to the text above (zone brackets included), tuples to
arrays, NaN and +-inf to the strings "NaN", "Infinity", "-Infinity".

A msgpack timestamp (ext -1) from a foreign sender decodes as an aware UTC
datetime. Anything else (objects, sets, ints beyond 64 bits, dicts with
non-str keys, values nested deeper than :data:`MAX_VALUE_DEPTH`) is sent as
its ``str()`` by the agent -- never an error in the monitor loop -- and a value
whose packed point entry exceeds :data:`MAX_ENTRY_BYTES` is replaced by the
start of its text with a truncation mark.

Decoding untrusted bytes
========================
The schema above is written once, as msgspec ``Struct`` classes in this
module (``_Envelope``: an ``array_like`` struct whose ``body`` is kept as raw
bytes; one ``_...Body`` struct per kind, fields in wire order; ``_NodePayload``;
``_HubHeartbeatPayload``); the same structs pack the messages and validate
them. :func:`decode` checks the frame's size, decodes the envelope (header
types, major version), then the body with its kind's struct, in one shot per
frame with msgspec's typed decoder (a DELTA framed as gsmon agents frame it
takes both in one pass). A struct gives exact types (an int is never a bool;
a float field takes an int), ignores unknown keys and extra trailing items,
and an ext hook knows only ext 1 and 2 and bounds their nesting; map keys
must be str everywhere, values included. Every failure -- oversize frame,
bad msgpack, invalid UTF-8, deep nesting, wrong types, missing keys, unknown
kind, foreign major version -- raises :class:`ProtocolError` whose message
names the field (``body.points[3][2]: Expected `int`, got `bool```,
``body.prefix must be a str, got nothing (missing)``, ``not valid msgpack:
...``); callers count it and drop the frame. :func:`decode_hub_message` does
the same for the subscriber stream.

Libraries: msgspec (typed decoding and validation, and packing the structs)
and msgpack, the reference implementation, for packing point values (its
``default`` hook makes datetimes and tuples ext 1 and 2 and sanitises what
cannot be carried; those bytes are spliced into the structs as
``msgspec.Raw``). Nothing else in gsmon imports either for the wire.

Why not a DEALER/ROUTER link from agent to hub (as some projects do): with the
agent's XPUB connecting to the hub's SUB, the hub's subscription itself tells
every agent "a hub is (back) here", which is exactly when it must send its
full state; and a dead hub costs the agent nothing, since XPUB drops at its
high-water mark instead of blocking.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Generic, Literal, NamedTuple, TypeAlias, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgpack
import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "EXT_DATETIME",
    "EXT_TUPLE",
    "HUB_HEARTBEAT_TOPIC",
    "LISTING_TIMEOUT_S",
    "LIVE_TOPIC",
    "MAX_ENTRY_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_NODES_BATCH_BYTES",
    "MAX_NODES_PER_BATCH",
    "MAX_NODES_PREFIXES",
    "MAX_NOTICE_REASON_BYTES",
    "MAX_PAIR_OPS_PER_MESSAGE",
    "MAX_POINTS_PER_MESSAGE",
    "MAX_RELAYED_ORPHANS",
    "MAX_RELAY_DEPTH",
    "MAX_RELAY_VIA",
    "MAX_ROUTE_BYTES",
    "MAX_VALUE_DEPTH",
    "NODES_TOPIC_PREFIX",
    "NODE_PARENT",
    "NODE_POINT",
    "NODE_REMOVED",
    "NOTICE_TOPIC_PREFIX",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "PROXY_BASE",
    "PROXY_DERIVED_BASE",
    "PROXY_END",
    "REPLAY_TOPIC_PREFIX",
    "RESYNC_TOPIC_PREFIX",
    "ROUTE_TOPIC_PREFIX",
    "SCOPE_HEARTBEAT_PREFIX",
    "SEALED_ROUTE_MARK",
    "SEALED_ROUTE_OVERHEAD",
    "Bye",
    "Command",
    "CommandResult",
    "DebouncedEntry",
    "Delta",
    "Error",
    "Heartbeat",
    "Hello",
    "HubHeartbeat",
    "Info",
    "LeanNode",
    "Limits",
    "Message",
    "MsgKind",
    "NodeEncoder",
    "NodeUpdate",
    "OutboxMark",
    "PairOp",
    "PairSync",
    "PairSyncReply",
    "PointEntry",
    "ProtocolError",
    "RelayedOrphan",
    "SitePair",
    "SnapshotChunk",
    "SnapshotEnd",
    "SnapshotRequest",
    "State",
    "TransitionItem",
    "Transitions",
    "UpstreamResult",
    "debounced_entry",
    "decode",
    "decode_hub_message",
    "decode_lean_node",
    "decode_lean_nodes",
    "decode_node_message",
    "decode_node_payload",
    "decode_nodes",
    "encode",
    "encode_entries",
    "encode_hub_heartbeat",
    "encode_node",
    "encode_nodes",
    "encode_nodes_batches",
    "encode_snapshot_chunk",
    "is_heartbeat_topic",
    "node_payload",
    "nodes_prefix",
    "nodes_topic",
    "notice_prefix",
    "notice_topic",
    "pack_value",
    "parse_notice",
    "parse_replay",
    "parse_route",
    "point_debounce_map",
    "relay_keys_after",
    "relay_map",
    "replay_topic",
    "route_topic",
    "salvage_request_id",
    "scope_heartbeat_topic",
    "snapshot_item",
    "unpack_value",
]

PROTOCOL_MAJOR: Final = 1
PROTOCOL_MINOR: Final = 4  # 1.4: NODES, the subscriber stream in batches
# 1.3: client health reports; federation, hub pairs, agent outbox (issue 17)
# 1.2: the operator layer (NODE keys, operator commands; issue 13)

HUB_HEARTBEAT_TOPIC: Final = b"\x00hub/heartbeat"
# Per-scope heartbeats (a prefix-limited subscriber grant): prefix + grant name + NUL.
SCOPE_HEARTBEAT_PREFIX: Final = b"\x00hub/beat/"
# The hub tells an agent why it refuses its messages: prefix + agent name + NUL + reason.
NOTICE_TOPIC_PREFIX: Final = b"\x00notice/"
MAX_NOTICE_REASON_BYTES: Final = 200
RESYNC_TOPIC_PREFIX: Final = b"\x00resync/"
# (1.4) NODES: a prefix's NODEs in batches, topic = prefix + the followed prefix (UTF-8) + NUL.
NODES_TOPIC_PREFIX: Final = b"\x00nodes/"
MAX_NODES_PER_BATCH: Final = 1000  # (1.4) a NODES payload's nodes at most ...
# (1.4) ... and about this many bytes of NODE payloads: small, because the hub's send high-water mark counts
# messages, so that a stalled subscriber's queue of batches costs the hub a bounded memory (hub [limits]).
MAX_NODES_BATCH_BYTES: Final = 16 * 1024
# (1.4) Distinct prefixes a hub follows in NODES at most: each costs every turn a pass over its NODEs (a plain
# subscription is matched by libzmq's trie, in C, and has no such cap).
MAX_NODES_PREFIXES: Final = 64
# 1.3: the hub asks an agent for its outbox entries first..last: prefix + agent name + NUL + "first-last".
REPLAY_TOPIC_PREFIX: Final = b"\x00replay/"
# (1.3) A hub that journals live transitions keeps this subscribed on its agents socket (Live transitions).
LIVE_TOPIC: Final = b"\x00outbox-live"
MAX_TRANSITIONS_PER_MESSAGE: Final = 1000
MAX_TRANSITIONS_BYTES: Final = 1 << 20
ROUTE_TOPIC_PREFIX: Final = b"\x00route/"  # (1.3) routed commands, central hub -> site hub
MAX_ROUTE_BYTES: Final = 8192  # (1.3) a routed command's packed map at most
SEALED_ROUTE_MARK: Final = b"\xc1"  # (1.3) never a msgpack byte: what follows is nonce + box
SEALED_ROUTE_OVERHEAD: Final = 1 + 24 + 16  # (1.3) the mark, the nonce, the Poly1305 tag
MAX_RELAY_VIA: Final = 16  # (1.3) hub ids a relayed entry may list (hubs drop those beyond MAX_RELAY_DEPTH)
PROXY_BASE: Final = 1 << 48  # (1.3) relayed alarms' ids at a hub start here (an alarm book counts from 1)
PROXY_END: Final = 1 << 52  # (1.3) ... and stay below this (a hub pair's derived ids start here)
# (1.3) A hub of a pair derives its proxies in [PROXY_DERIVED_BASE, PROXY_END); a single hub counts below it.
PROXY_DERIVED_BASE: Final = 1 << 50
LISTING_TIMEOUT_S: Final = 3.0  # (1.3) a site's part of a merged alarms listing unanswered this long: unreached
MAX_RELAYED_ORPHANS: Final = 1000  # (1.3) a STATE's or DELTA's orphans at most (Orphaned alarms)
MAX_RELAY_DEPTH: Final = 4  # (1.3) hubs an entry may have passed; deeper ones are dropped (counted)

EXT_DATETIME: Final = 1
EXT_TUPLE: Final = 2

MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
MAX_POINTS_PER_MESSAGE: Final = 5000
MAX_ENTRY_BYTES: Final = 64 * 1024
MAX_VALUE_DEPTH: Final = 16
MAX_PAIR_OPS_PER_MESSAGE: Final = 500  # 1.3: ops in one PAIR_SYNC(_REPLY)
# Nesting the decoder accepts inside an ext payload (tuples of tuples...).
_MAX_EXT_DEPTH: Final = MAX_VALUE_DEPTH
_MAX_DATETIME_TEXT: Final = 112  # 42 for the longest isoformat() + [64-char zone]
_TRUNCATION_MARK: Final = "…[truncated]"


class ProtocolError(ValueError):
    """Bytes that are not a valid gsmon message.

    The message says what was wrong. Receivers count the frame as rejected,
    drop it and carry on; they never let it stop their loop.
    """


class MsgKind(IntEnum):
    """The ``kind`` field of an envelope."""

    STATE = 1
    DELTA = 2
    HEARTBEAT = 3
    BYE = 4
    TRANSITIONS = 5  # 1.3: the agent's outbox, replayed (kinds 6-9 are reserved)
    UPSTREAM_RESULT = 7  # (1.3) site hub -> central hub: the answer to a routed command
    HELLO = 10
    SNAPSHOT_REQUEST = 11
    COMMAND = 12
    INFO = 20
    SNAPSHOT_CHUNK = 21
    SNAPSHOT_END = 22
    ERROR = 23
    COMMAND_RESULT = 24
    PAIR_SYNC = 30  # 1.3: a hub of a pair -> its peer (query socket)
    PAIR_SYNC_REPLY = 31  # 1.3: the peer's answer


# The ``kind`` of a NODE payload (plain strings on the wire).
NODE_POINT: Final = "point"
NODE_PARENT: Final = "parent"
NODE_REMOVED: Final = "removed"


class PointEntry(NamedTuple):
    """One polled point, as agents send it."""

    path: str
    value: Any
    alertcode: int
    alertstr: str
    polled_at_s: float
    dt_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageHeader:
    sender: str
    epoch: int
    seq: int
    sent_ns: int
    minor: int = PROTOCOL_MINOR


class RelayedOrphan(NamedTuple):
    """(1.3) One of a site hub's orphaned alarms (spec: "Orphaned alarms"): an open alarm whose point the
    site no longer has. ``path`` is in the sender's tree (the receiver prefixes the mount)."""

    path: str
    id: int
    agent: str
    via: list[str]
    state: str
    level: int
    max_level: int
    shelf: int | None = None


class OutboxMark(NamedTuple):
    """What an agent's outbox holds (1.3; STATE, DELTA and HEARTBEAT carry it): its id, the oldest tseq
    it still holds (``head + 1`` when empty) and the last tseq it gave."""

    outbox_id: int
    tail: int
    head: int


class SitePair(NamedTuple):
    """(1.3) What a site hub of a pair says of itself on its upstream link (spec: "A site that is a pair"):
    its own pair hub id, and its peer's (None until it has heard its peer)."""

    hub: str
    peer: str | None


class TransitionItem(NamedTuple):
    """One outbox entry in a TRANSITIONS message (1.3)."""

    tseq: int
    kind: str  # "level", "pending" or "discarded"
    path: str  # inside the agent
    time: float  # the poll's wall time
    old: int | None
    new: int
    value: Any
    alertstr: str


@dataclass(frozen=True, slots=True, kw_only=True)
class State(_MessageHeader):
    """An agent's full tree (or one part of it)."""

    kind: ClassVar[MsgKind] = MsgKind.STATE
    mount: str
    heartbeat_s: float
    points: list[PointEntry]
    parents: list[str] = field(default_factory=list)
    part: int = 0
    parts: int = 1
    outbox: OutboxMark | None = None  # 1.3
    unpolled: list[str] = field(default_factory=list)  # 1.3: points the agent has but has not polled yet
    orphans: list[RelayedOrphan] | None = None  # 1.3: a site hub's orphaned alarms (the last part's: all of them)
    pair: SitePair | None = None  # 1.3: a site hub of a pair says so (spec: "A site that is a pair")


@dataclass(frozen=True, slots=True, kw_only=True)
class Delta(_MessageHeader):
    """Points polled since the agent's last flush."""

    kind: ClassVar[MsgKind] = MsgKind.DELTA
    points: list[PointEntry]
    outbox: OutboxMark | None = None  # 1.3
    orphans: list[RelayedOrphan] | None = None  # 1.3: a site hub's orphaned alarms, when they changed (None: unchanged)


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(_MessageHeader):
    """The agent is alive and has nothing else to say."""

    kind: ClassVar[MsgKind] = MsgKind.HEARTBEAT
    mount: str
    heartbeat_s: float
    point_count: int
    outbox: OutboxMark | None = None  # 1.3
    pair: SitePair | None = None  # 1.3, as in State


@dataclass(frozen=True, slots=True, kw_only=True)
class Transitions(_MessageHeader):
    """Outbox entries ``first..last`` an agent replays to a hub that asked for them (1.3)."""

    kind: ClassVar[MsgKind] = MsgKind.TRANSITIONS
    outbox_id: int
    first: int
    last: int
    done: bool
    transitions: list[TransitionItem]
    lost: tuple[int, int] | None = None
    live: int | None = None  # (1.3) live transitions (not a replay): the seq of their flush's first message


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye(_MessageHeader):
    """The agent is stopping cleanly."""

    kind: ClassVar[MsgKind] = MsgKind.BYE


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(_MessageHeader):
    """A client asks the hub for its endpoints and settings."""

    kind: ClassVar[MsgKind] = MsgKind.HELLO
    request_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotRequest(_MessageHeader):
    """A client asks for every node whose path starts with ``prefix``."""

    kind: ClassVar[MsgKind] = MsgKind.SNAPSHOT_REQUEST
    request_id: int
    prefix: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Command(_MessageHeader):
    """A client asks the hub to do something (see the commands table)."""

    kind: ClassVar[MsgKind] = MsgKind.COMMAND
    request_id: int
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    user: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Info(_MessageHeader):
    """The hub's answer to HELLO."""

    kind: ClassVar[MsgKind] = MsgKind.INFO
    request_id: int
    endpoints: dict[str, str]
    heartbeat_s: float
    version: str
    # The heartbeat topic of the asking key's read scope (minor >= 1; None: HUB_HEARTBEAT_TOPIC).
    heartbeat_topic: bytes | None = None
    # (1.4) The hub publishes NODES batches to a subscription of nodes_topic(prefix).
    nodes: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotChunk(_MessageHeader):
    """Part of a snapshot: ``(path, node payload map)`` pairs."""

    kind: ClassVar[MsgKind] = MsgKind.SNAPSHOT_CHUNK
    request_id: int
    nodes: list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotEnd(_MessageHeader):
    """The last message of a snapshot."""

    kind: ClassVar[MsgKind] = MsgKind.SNAPSHOT_END
    request_id: int
    seq_at: int
    count: int
    published: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(_MessageHeader):
    """The hub refuses a request."""

    kind: ClassVar[MsgKind] = MsgKind.ERROR
    request_id: int
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResult(_MessageHeader):
    """The hub's answer to a COMMAND: done (``ok``) or refused, and why."""

    kind: ClassVar[MsgKind] = MsgKind.COMMAND_RESULT
    request_id: int
    ok: bool
    message: str
    result: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamResult(_MessageHeader):
    """(1.3) A site hub's answer, on its upstream link, to a command the central hub routed down."""

    kind: ClassVar[MsgKind] = MsgKind.UPSTREAM_RESULT
    route_id: int
    ok: bool
    message: str
    result: Any = None


@dataclass(frozen=True, slots=True)
class PairOp:
    """One entry of a hub pair's op log (spec: "Hub pairs"): keyed by ``(origin, seq)``."""

    origin: str  # hub_id of the hub where the operator acted
    seq: int  # per origin, from 1, +1 per op, never reused
    kind: str  # ack, unack, shelve, unshelve, clear, forget, delivered
    at: float  # the origin's wall clock when it happened
    args: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class PairSync(_MessageHeader):
    """A hub of a pair tells its peer what it has (and asks for what it lacks)."""

    kind: ClassVar[MsgKind] = MsgKind.PAIR_SYNC
    request_id: int
    hub_id: str
    head: int  # the last seq of this hub's own ops
    seen: int  # the highest seq of the peer's ops this hub holds with none missing below
    ops: list[PairOp] = field(default_factory=list)
    digest: tuple[int, int] | None = None  # (ops held, sum of their keys' hashes mod 2**64), every digest_s
    full: bool = False  # the ops are this hub's whole retained log (a full exchange)
    notifying: bool = False  # this hub sends the pair's notifications now


@dataclass(frozen=True, slots=True, kw_only=True)
class PairSyncReply(PairSync):
    """The peer's answer to PAIR_SYNC: the same fields, about itself."""

    kind: ClassVar[MsgKind] = MsgKind.PAIR_SYNC_REPLY


Message: TypeAlias = (
    State
    | Delta
    | Heartbeat
    | Bye
    | Transitions
    | Hello
    | SnapshotRequest
    | Command
    | Info
    | SnapshotChunk
    | SnapshotEnd
    | Error
    | CommandResult
    | UpstreamResult
    | PairSync
    | PairSyncReply
)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a decoder accepts; the hub may tighten these."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    max_points_per_message: int = MAX_POINTS_PER_MESSAGE
    max_parents_per_message: int = MAX_POINTS_PER_MESSAGE


DEFAULT_LIMITS: Final = Limits()


# ----------------------------------------------------------------------------
# Packing
# ----------------------------------------------------------------------------


def _datetime_text(value: dt.datetime) -> str:
    text = value.isoformat()
    zone = value.tzinfo
    key = getattr(zone, "key", None)  # ZoneInfo's IANA name
    if isinstance(key, str):
        text += f"[{key}]"
    return text


def _default(obj: Any) -> Any:
    """msgpack's fallback for what it cannot pack natively (strict_types=True
    sends subclasses here too): datetimes and tuples become our ext types,
    subclasses of plain types their base type, everything else its str()."""
    if isinstance(obj, dt.datetime):
        return msgpack.ExtType(EXT_DATETIME, _datetime_text(obj).encode())
    if isinstance(obj, tuple):
        return msgpack.ExtType(EXT_TUPLE, _pack_strict(list(obj)))
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj)
    if isinstance(obj, list):
        return list(obj)
    if isinstance(obj, dict):
        return dict(obj)
    return _safe_str(obj)  # a broken __str__ must not break the agent either


def _pack_strict(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_default, strict_types=True, use_bin_type=True, datetime=False)


_PACKERS: Final = threading.local()


def _pack_entry_items(items: list[Any]) -> bytes:
    """:func:`_pack_strict` through a Packer kept for the next entry: ``packb`` makes a Packer per call, which
    was most of the cost of packing a point entry. One per thread, out of its slot while in use (a value's
    ``__str__`` that packs again gets a fresh one). A Packer keeps its buffer at the largest size it needed:
    one that packed more than an entry may hold (a value yet to be truncated), or raised, is let go."""
    slot = _PACKERS.__dict__
    packer = slot.pop("packer", None)
    if packer is None:
        packer = msgpack.Packer(default=_default, strict_types=True, use_bin_type=True, datetime=False)
    packed: bytes = packer.pack(items)
    if len(packed) <= MAX_ENTRY_BYTES:
        slot["packer"] = packer
    return packed


def _pack_value(value: Any) -> bytes:
    """Pack any value as a point's value is packed: never raises (see :func:`pack_entry`)."""
    if isinstance(value, _CONTAINERS) and not _container_ok(value):
        value = _sanitise(value)
    try:
        return _pack_strict(value)
    except (TypeError, ValueError, OverflowError):
        return _pack_strict(_sanitise(value))


def _sanitise(value: Any, depth: int = 0) -> Any:
    """Turn what msgpack refused into what it accepts (slow path only)."""
    if depth >= MAX_VALUE_DEPTH:
        return _safe_str(value)
    if value is None or isinstance(value, bool | float | bytes):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, tuple):
        return tuple(_sanitise(item, depth + 1) for item in value)
    if isinstance(value, list):
        return [_sanitise(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return _safe_str(value)
        return {_sanitise(key, depth + 1): _sanitise(item, depth + 1) for key, item in value.items()}
    return _safe_str(value)


def _safe_str(value: Any) -> str:
    try:
        text = str(value)
    except Exception as error:  # a broken __str__ must not break the agent
        text = f"<unprintable {type(value).__name__}: {type(error).__name__}>"
    return text.encode("utf-8", "replace").decode("utf-8")


def _container_ok(value: Any) -> bool:
    """Whether a list/tuple/dict nests at most :data:`MAX_VALUE_DEPTH` deep
    and every dict key is a str (iterative: a hostile value cannot blow the
    stack)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | tuple):
            if depth >= MAX_VALUE_DEPTH:
                return False
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, dict):
            if depth >= MAX_VALUE_DEPTH or not all(isinstance(key, str) for key in item):
                return False
            stack.extend((child, depth + 1) for child in item.values())
    return True


class DebouncedEntry(PointEntry):
    """A :class:`PointEntry` sent with its optional 7th item (the spec's debounce map).

    The tuple keeps its 6 items (so it compares, and the hub decodes, as a
    PointEntry); ``debounce`` rides beside it and :func:`pack_entry` appends it.
    Made by :func:`debounced_entry`.
    """

    debounce: dict[str, Any]


def point_debounce_map(
    raw: int, raw_str: str, pending: tuple[int, float] | None, flapping: tuple[float, int] | None
) -> dict[str, Any]:
    """The optional 7th item of a point entry (spec: "Point entry"): raw level, pending ``(level,
    since)``, flapping ``(since, changes)``."""
    return {
        "raw": raw,
        "raw_str": raw_str,
        "pending": None if pending is None else {"level": pending[0], "since": pending[1]},
        "flapping": None if flapping is None else {"since": flapping[0], "changes": flapping[1]},
    }


# tuple.__new__ is what a NamedTuple's own __new__ calls, after a Python-level call that costs as much again
# (a relaying hub makes thousands of these a second).
_new_tuple: Final = tuple.__new__


def debounced_entry(entry: PointEntry, debounce: dict[str, Any]) -> DebouncedEntry:
    """``entry`` with the debounce map (:func:`point_debounce_map`) as its 7th item on the wire."""
    made: DebouncedEntry = _new_tuple(DebouncedEntry, entry)
    made.debounce = debounce
    return made


# Point values msgspec and msgpack (strict types) pack to the same bytes: exact scalar types only (a tuple,
# a datetime, an enum or a set would differ: msgpack gives them our ext types or their str()).
_PLAIN_VALUES: Final = frozenset({float, int, str, bool, type(None)})
_encode_plain: Final = msgspec.msgpack.Encoder().encode


def pack_entry(entry: PointEntry) -> bytes:
    """Pack one point entry; never raises for any value.

    Fast path: msgpack packs it as it is. Otherwise (an int beyond 64 bits, a
    lone surrogate, nesting too deep...) the value is sanitised. An entry still
    larger than :data:`MAX_ENTRY_BYTES` gets a truncated text value.
    """
    value = entry.value
    kind = type(entry)
    if type(value) in _PLAIN_VALUES and (kind is PointEntry or kind is DebouncedEntry):
        # The usual entry (a scalar value; a debounce or relay map of the spec's items, as this module and the
        # agent make them): msgspec writes the very bytes msgpack does, in a third of the time (every entry of
        # every STATE and DELTA, a relaying hub's thousands a second). What it refuses takes the path below.
        # (A tuple inside a map would pack as an array, not as our tuple ext: the spec's maps hold arrays.)
        try:
            packed = _encode_plain(entry if kind is PointEntry else (*entry, entry.debounce))  # type: ignore[attr-defined]
        except (TypeError, ValueError, OverflowError):
            pass
        else:
            if len(packed) <= MAX_ENTRY_BYTES:
                return packed
    if isinstance(value, _CONTAINERS) and not _container_ok(value):
        value = _sanitise(value)
    items = [entry.path, value, entry.alertcode, entry.alertstr, entry.polled_at_s, entry.dt_s]
    if type(entry) is DebouncedEntry:
        items.append(entry.debounce)
    try:
        packed = _pack_entry_items(items)
    except (TypeError, ValueError, OverflowError):
        items[1] = _sanitise(value)
        packed = _pack_strict(items)
    if len(packed) > MAX_ENTRY_BYTES:
        # Cut in UTF-8 bytes, not characters: 32 Ki emoji would still be 128 KiB.
        keep = MAX_ENTRY_BYTES // 2
        items[1] = _safe_str(items[1]).encode()[:keep].decode("utf-8", "ignore") + _TRUNCATION_MARK
        packed = _pack_strict(items)
    return packed


# ----------------------------------------------------------------------------
# The schema: one msgspec Struct per envelope and body, encoder and decoders
# ----------------------------------------------------------------------------
#
# Each wire map or array below is a Struct whose fields are the spec's keys in
# wire order: msgspec packs it (unset optional keys left out) and validates it
# on the way in (exact types: an int is never a bool, a float field takes an
# int; unknown keys and extra trailing array items ignored). Parts that hold
# arbitrary values (point values, command args and results) are packed by the
# value packer above and spliced in as ``msgspec.Raw``, so that datetimes and
# tuples become ext 1 and 2 and odd values are sanitised.

_UInt: TypeAlias = Annotated[int, msgspec.Meta(ge=0)]
_Seconds: TypeAlias = Annotated[float, msgspec.Meta(gt=0)]  # finite: checked after decoding (msgspec takes inf)
_Sender: TypeAlias = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]

_BodyT = TypeVar("_BodyT")


class _Envelope(msgspec.Struct, Generic[_BodyT], array_like=True, gc=False):
    """``[major, minor, kind, sender, epoch, seq, sent_ns, body]``; decoded with the body as ``msgspec.Raw``
    (validated by the kind's body struct next), packed with the body struct itself."""

    major: Literal[1]
    minor: _UInt
    kind: int
    sender: _Sender
    epoch: _UInt
    seq: _UInt
    sent_ns: int
    body: _BodyT


class _OrphanMap(msgspec.Struct, omit_defaults=True, gc=False):
    """(1.3) One relayed orphaned alarm (spec: "Orphaned alarms"); ``shelf`` left out when nil."""

    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    id: _UInt
    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    via: Annotated[list[_HubId], msgspec.Meta(min_length=1, max_length=MAX_RELAY_VIA)]
    state: Literal["active_unacked", "active_acked", "rtn_unacked"]
    level: int
    max_level: int
    shelf: int | None = None


_Orphans: TypeAlias = Annotated[list[_OrphanMap], msgspec.Meta(max_length=MAX_RELAYED_ORPHANS)]


class _StateBody(msgspec.Struct, gc=False):
    mount: str
    heartbeat_s: _Seconds
    points: list[PointEntry]  # decoded straight into PointEntry tuples, by its annotations
    parents: list[str] = []
    part: _UInt = 0
    parts: _UInt = 1
    # 1.3, the agent's outbox (all three or none; absent: an agent without one, never replayed)
    outbox_id: _UInt | UnsetType = UNSET
    tseq_tail: _UInt | UnsetType = UNSET
    tseq_head: _UInt | UnsetType = UNSET
    unpolled: list[str] | UnsetType = UNSET  # 1.3; left out when empty (the bytes of older agents)
    orphans: _Orphans | UnsetType = UNSET  # 1.3, a site hub's (spec: Orphaned alarms); left out: none
    pair: _SitePairBody | UnsetType = UNSET  # 1.3, a site hub of a pair (spec: A site that is a pair)


class _DeltaBody(msgspec.Struct, gc=False):
    points: list[PointEntry]
    outbox_id: _UInt | UnsetType = UNSET  # 1.3, as in _StateBody
    tseq_tail: _UInt | UnsetType = UNSET
    tseq_head: _UInt | UnsetType = UNSET
    orphans: _Orphans | UnsetType = UNSET  # 1.3, as in _StateBody; left out: unchanged


class _LooseEntry(msgspec.Struct, array_like=True, gc=False):
    """A point entry with its optional 7th item (or more): the same fields, trailing items ignored."""

    path: str
    value: Any
    alertcode: int
    alertstr: str
    polled_at_s: float
    dt_s: float | None
    debounce: Any = None  # the 7th item: a debounce/flap map (validated by _debounce_map), else ignored


class _LooseStateBody(_StateBody):
    points: list[_LooseEntry]  # type: ignore[assignment]


class _LooseDeltaBody(_DeltaBody):
    points: list[_LooseEntry]  # type: ignore[assignment]


# (1.3) Relayed entries (spec: "Relayed entries"), the 7th map validated by msgspec in C: a central hub reads
# thousands a second, and the loose path's checks in Python were most of its loop. Whatever these refuse
# takes the loose path, which words the error (or takes what they do not know: a map without ``via``).
_HubId: TypeAlias = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
# (1.3) ``pair`` of a site hub's STATE and HEARTBEAT: [its pair hub id, its peer's or nil].
_SitePairBody: TypeAlias = tuple[_HubId, _HubId | None]


class _PendingMap(msgspec.Struct, gc=False):
    level: int
    since: float


class _FlappingMap(msgspec.Struct, gc=False):
    since: float
    changes: int


class _AlarmSummary(msgspec.Struct, gc=False):
    id: int
    state: str
    max_level: int


class _RelayMap(msgspec.Struct, gc=False):
    raw: int
    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    via: Annotated[list[_HubId], msgspec.Meta(min_length=1, max_length=MAX_RELAY_VIA)]
    raw_str: str = ""
    pending: _PendingMap | None = None
    flapping: _FlappingMap | None = None
    stale: bool = False
    dt: _Seconds | None = None  # finite: checked in _relay_points
    reported: int | UnsetType = UNSET  # absent: raw
    alarm: _AlarmSummary | None = None
    since: float | UnsetType | None = UNSET  # absent from a DELTA's entry: unchanged (kept so)
    shelf: int | None = None


class _RelayEntry(msgspec.Struct, array_like=True, gc=False):
    path: str
    value: Any
    alertcode: int
    alertstr: str
    polled_at_s: float
    dt_s: float | None
    debounce: _RelayMap


class _RelayStateBody(_StateBody):
    points: list[_RelayEntry]  # type: ignore[assignment]


class _RelayDeltaBody(_DeltaBody):
    points: list[_RelayEntry]  # type: ignore[assignment]


class _HeartbeatBody(msgspec.Struct, gc=False):
    mount: str
    heartbeat_s: _Seconds
    point_count: _UInt = msgspec.field(name="points")
    outbox_id: _UInt | UnsetType = UNSET  # 1.3, as in _StateBody
    tseq_tail: _UInt | UnsetType = UNSET
    tseq_head: _UInt | UnsetType = UNSET
    pair: _SitePairBody | UnsetType = UNSET  # 1.3, as in _StateBody


class _TransitionItem(msgspec.Struct, array_like=True, gc=False):
    """``[tseq, kind, path, time, old, new, value, alertstr]`` (1.3); trailing items ignored."""

    tseq: _UInt
    kind: Literal["level", "pending", "discarded"]
    path: str
    time: float
    old: int | None
    new: int
    value: Any
    alertstr: str


class _TransitionsBody(msgspec.Struct, gc=False):
    outbox_id: _UInt
    first: _UInt
    last: _UInt
    done: bool
    transitions: list[_TransitionItem]
    lost: tuple[_UInt, _UInt] | None = None
    live: _UInt | UnsetType = UNSET  # (1.3) live transitions: the seq of their flush's first message


class _ByeBody(msgspec.Struct, gc=False):
    pass


class _HelloBody(msgspec.Struct, gc=False):
    request_id: _UInt


class _SnapshotRequestBody(msgspec.Struct, gc=False):
    request_id: _UInt
    prefix: str


class _CommandBody(msgspec.Struct, gc=False):
    request_id: _UInt
    command: str
    args: dict[str, Any] = {}
    user: str | None = None


class _InfoBody(msgspec.Struct, gc=False):
    request_id: _UInt
    endpoints: dict[str, str]
    heartbeat_s: _Seconds
    version: str
    heartbeat_topic: bytes | UnsetType | None = UNSET  # minor 1
    nodes: bool | UnsetType = UNSET  # (1.4) true: NODES batches are published


class _NodeItem(msgspec.Struct, array_like=True, gc=False):
    path: str
    payload: dict[str, Any]


class _SnapshotChunkBody(msgspec.Struct, gc=False):
    request_id: _UInt
    nodes: list[_NodeItem]


class _SnapshotEndBody(msgspec.Struct, gc=False):
    request_id: _UInt
    seq_at: _UInt = msgspec.field(name="seq")
    count: _UInt = msgspec.field(name="count")
    published: _UInt = msgspec.field(name="published")


class _ErrorBody(msgspec.Struct, gc=False):
    request_id: _UInt
    message: str


class _CommandResultBody(msgspec.Struct, gc=False):
    request_id: _UInt
    ok: bool
    message: str
    result: Any = None


class _UpstreamResultBody(msgspec.Struct, gc=False):
    route_id: _UInt
    ok: bool
    message: str
    result: Any = None


class _PairOpItem(msgspec.Struct, array_like=True, gc=False):
    origin: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    seq: Annotated[int, msgspec.Meta(ge=1)]
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    at: float
    args: dict[str, Any]


class _PairSyncBody(msgspec.Struct, gc=False):
    request_id: _UInt
    hub_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    head: _UInt
    seen: _UInt
    ops: Annotated[list[_PairOpItem], msgspec.Meta(max_length=MAX_PAIR_OPS_PER_MESSAGE)] = []
    digest: tuple[_UInt, _UInt] | None = None
    full: bool = False
    notifying: bool = False


_BODY_TYPES: Final[dict[MsgKind, type[msgspec.Struct]]] = {
    MsgKind.STATE: _StateBody,
    MsgKind.DELTA: _DeltaBody,
    MsgKind.HEARTBEAT: _HeartbeatBody,
    MsgKind.BYE: _ByeBody,
    MsgKind.TRANSITIONS: _TransitionsBody,
    MsgKind.HELLO: _HelloBody,
    MsgKind.SNAPSHOT_REQUEST: _SnapshotRequestBody,
    MsgKind.COMMAND: _CommandBody,
    MsgKind.INFO: _InfoBody,
    MsgKind.SNAPSHOT_CHUNK: _SnapshotChunkBody,
    MsgKind.SNAPSHOT_END: _SnapshotEndBody,
    MsgKind.ERROR: _ErrorBody,
    MsgKind.COMMAND_RESULT: _CommandResultBody,
    MsgKind.UPSTREAM_RESULT: _UpstreamResultBody,
    MsgKind.PAIR_SYNC: _PairSyncBody,
    MsgKind.PAIR_SYNC_REPLY: _PairSyncBody,
}


class _NodeFields(msgspec.Struct, gc=False):
    """A NODE payload's 1.0 and 1.1 keys, in wire order: the hub packs this struct. (msgspec sizes a
    struct's map header by its number of fields: up to 15 it writes the fixmap a map of the same keys
    gets, so the operator keys are not fields here; see NodeEncoder.) Every field has a default so
    that the decoder tells an absent key (UNSET) from a present one; the required ones are checked
    after decoding."""

    v: Any = PROTOCOL_MAJOR
    epoch: int | UnsetType = UNSET
    seq: int | UnsetType = UNSET
    kind: Literal["point", "parent", "removed"] | UnsetType = UNSET
    alert: int | UnsetType = UNSET
    alertstr: str | UnsetType = UNSET
    stale: bool | UnsetType = UNSET
    value: Any = None
    agent: Any = None  # a str; anything else reads as nil
    polled_at: float | None = None
    received_at: float | None = None
    dt: float | None = None
    reported_alert: int | UnsetType | None = UNSET  # 1.1: sent only when it differs from alert
    liveness_unknown: bool | UnsetType = UNSET  # 1.1: sent only when true


class _NodeFieldsSince(_NodeFields):
    """:class:`_NodeFields` and ``since``: the hub's usual payload when it has its alarm layer (``since``
    on every node, the other operator keys at their defaults, left out). Fifteen fields: still the
    fixmap header a map of the same keys gets, so the bytes are those of the general path."""

    since: float | UnsetType = UNSET


class _NodePayload(_NodeFields, kw_only=True):
    """A whole NODE payload: the 1.2 operator keys too (NODE_OPERATOR_KEYS), each taken as sent
    (its readers check it) and UNSET when absent, so that ``shelf_id: nil`` and no ``shelf_id`` differ."""

    since: Any = UNSET
    attention: Any = UNSET
    alarm: Any = UNSET
    shelf_id: Any = UNSET
    shelved_below: Any = UNSET
    unacked_below: Any = UNSET
    raw_alert: Any = UNSET
    pending: Any = UNSET
    flapping: Any = UNSET


class _HubHeartbeatPayload(msgspec.Struct, kw_only=True, gc=False):
    v: Any = PROTOCOL_MAJOR
    epoch: int
    seq: int
    interval_s: _Seconds
    sent_at: float
    published: dict[str, int]
    complete: Any = UNSET  # minor 1: sent (false) only when false; anything but false reads as true
    batched: list[str] | UnsetType = UNSET  # (1.4) the prefixes followed in NODES batches (absent: none)


_encode: Final = msgspec.msgpack.Encoder().encode


def _raw(packed: bytes) -> Any:
    """Bytes that are already msgpack, as a Struct field of any type (spliced in as they are)."""
    return msgspec.Raw(packed)


def _spliced(packed: Iterable[bytes]) -> Any:
    """Already packed items as an array's elements (msgspec writes the header and copies the bytes)."""
    return [msgspec.Raw(item) for item in packed]


def _packed(value: Any) -> Any:
    """A value as a Struct field: plain scalars as they are, anything else packed by the value packer."""
    return value if type(value) in _PLAIN_TYPES else msgspec.Raw(_pack_value(value))


def _mark(mark: OutboxMark | None) -> tuple[Any, Any, Any]:
    return (UNSET, UNSET, UNSET) if mark is None else (mark.outbox_id, mark.tail, mark.head)


def _orphan_maps(orphans: list[RelayedOrphan]) -> list[_OrphanMap]:
    return [_OrphanMap(*orphan) for orphan in orphans]  # type: ignore[arg-type]


def _orphans_of(body: Any) -> list[RelayedOrphan] | None:
    """(1.3) A STATE's or DELTA's orphans as :class:`RelayedOrphan` (None: the key was absent)."""
    maps = body.orphans
    if maps is UNSET:
        return None
    return [RelayedOrphan(o.path, o.id, o.agent, o.via, o.state, o.level, o.max_level, o.shelf) for o in maps]


def _site_pair(pair: tuple[str, str | None] | UnsetType) -> SitePair | None:
    """(1.3) A STATE's or HEARTBEAT's ``pair`` (None: absent). A site hub naming itself its own peer is invalid."""
    if pair is UNSET:
        return None
    hub, peer = pair
    if hub == peer:
        raise ProtocolError(f"body.pair names hub {hub!r:.80} as its own peer")
    return SitePair(hub, peer)


def _body_of(msg: Message, points: Any = None) -> msgspec.Struct:
    """``msg``'s body; ``points``: a STATE's or DELTA's entries already packed and spliced (else packed here)."""
    if isinstance(msg, State):
        if points is None:
            points = _spliced(pack_entry(entry) for entry in msg.points)
        return _StateBody(
            msg.mount,
            msg.heartbeat_s,
            points,
            msg.parents,
            msg.part,
            msg.parts,
            *_mark(msg.outbox),
            unpolled=msg.unpolled or UNSET,
            orphans=_orphan_maps(msg.orphans) if msg.orphans else UNSET,
            pair=UNSET if msg.pair is None else (msg.pair.hub, msg.pair.peer),
        )
    if isinstance(msg, Delta):
        orphans = UNSET if msg.orphans is None else _orphan_maps(msg.orphans)
        if points is None:
            points = _spliced(pack_entry(entry) for entry in msg.points)
        return _DeltaBody(points, *_mark(msg.outbox), orphans=orphans)
    if isinstance(msg, Heartbeat):
        pair = UNSET if msg.pair is None else (msg.pair.hub, msg.pair.peer)
        return _HeartbeatBody(msg.mount, msg.heartbeat_s, msg.point_count, *_mark(msg.outbox), pair=pair)
    if isinstance(msg, Bye):
        return _ByeBody()
    if isinstance(msg, Transitions):
        items = [
            _TransitionItem(t.tseq, t.kind, t.path, t.time, t.old, t.new, _packed(t.value), t.alertstr)  # type: ignore[arg-type]
            for t in msg.transitions
        ]
        live = UNSET if msg.live is None else msg.live
        return _TransitionsBody(msg.outbox_id, msg.first, msg.last, msg.done, items, msg.lost, live)
    if isinstance(msg, Hello):
        return _HelloBody(msg.request_id)
    if isinstance(msg, SnapshotRequest):
        return _SnapshotRequestBody(msg.request_id, msg.prefix)
    if isinstance(msg, Command):
        return _CommandBody(msg.request_id, msg.command, _raw(_pack_strict(msg.args)), msg.user)
    if isinstance(msg, Info):
        topic = UNSET if msg.heartbeat_topic is None else msg.heartbeat_topic
        return _InfoBody(msg.request_id, msg.endpoints, msg.heartbeat_s, msg.version, topic, msg.nodes or UNSET)
    if isinstance(msg, SnapshotChunk):
        nodes = _spliced(snapshot_item(path, _pack_strict(payload)) for path, payload in msg.nodes)
        return _SnapshotChunkBody(msg.request_id, nodes)
    if isinstance(msg, SnapshotEnd):
        return _SnapshotEndBody(msg.request_id, msg.seq_at, msg.count, msg.published)
    if isinstance(msg, Error):
        return _ErrorBody(msg.request_id, msg.message)
    if isinstance(msg, CommandResult):
        return _CommandResultBody(msg.request_id, msg.ok, msg.message, msgspec.Raw(_pack_value(msg.result)))
    if isinstance(msg, UpstreamResult):
        return _UpstreamResultBody(msg.route_id, msg.ok, msg.message, msgspec.Raw(_pack_value(msg.result)))
    if isinstance(msg, PairSync):
        ops = [_PairOpItem(op.origin, op.seq, op.kind, op.at, _raw(_pack_strict(op.args))) for op in msg.ops]
        return _PairSyncBody(msg.request_id, msg.hub_id, msg.head, msg.seen, ops, msg.digest, msg.full, msg.notifying)
    raise TypeError(f"not a gsmon message: {msg!r}")


def encode(msg: Message) -> bytes:
    """Pack a message into one envelope frame."""
    envelope = _Envelope(
        PROTOCOL_MAJOR, msg.minor, int(msg.kind), msg.sender, msg.epoch, msg.seq, msg.sent_ns, _body_of(msg)
    )
    return _encode(envelope)


def snapshot_item(path: str, payload: bytes) -> bytes:
    """One ``[path, payload]`` item of SNAPSHOT_CHUNK ``nodes``, from a NODE payload already packed
    (the hub keeps each node's payload bytes; they are spliced in, never unpacked and repacked)."""
    return _encode((path, msgspec.Raw(payload)))


def encode_entries(msg: State | Delta, packed: list[bytes]) -> bytes:
    """The bytes :func:`encode` gives for ``msg`` with its points already packed (``packed[i]`` is
    :func:`pack_entry` of ``msg.points[i]``): a site hub sending one batch to each hub of a central pair packs
    its entries once (hub/upstream.py)."""
    body = _body_of(msg, _spliced(packed))
    return _encode(
        _Envelope(PROTOCOL_MAJOR, msg.minor, int(msg.kind), msg.sender, msg.epoch, msg.seq, msg.sent_ns, body)
    )


def encode_snapshot_chunk(
    *, sender: str, epoch: int, seq: int, sent_ns: int, request_id: int, items: list[bytes], minor: int = PROTOCOL_MINOR
) -> bytes:
    """A SNAPSHOT_CHUNK from :func:`snapshot_item` items: the same bytes :func:`encode` gives for those nodes."""
    body = _SnapshotChunkBody(request_id, _spliced(items))
    return _encode(_Envelope(PROTOCOL_MAJOR, minor, int(MsgKind.SNAPSHOT_CHUNK), sender, epoch, seq, sent_ns, body))


# ----------------------------------------------------------------------------
# Hub -> subscriber payloads
# ----------------------------------------------------------------------------


class NodeUpdate(msgspec.Struct, frozen=True):
    """A NODE message as a subscriber sees it (a frozen Struct: a snapshot builds 100,000 of them, and a
    Struct is made in a tenth of a frozen dataclass's time)."""

    path: str
    epoch: int
    seq: int
    kind: str
    alertcode: int
    alertstr: str
    stale: bool
    value: Any = None
    agent: str | None = None
    polled_at_s: float | None = None
    received_at_s: float | None = None
    dt_s: float | None = None
    reported_alert: int | None = None  # 1.1: the agent's own last code, when not ``alertcode`` (points)
    liveness_unknown: bool = False  # 1.1: the hub cannot vouch for freshness now
    # 1.2: the operator layer's keys the payload holds (NODE_OPERATOR_KEYS), as sent; None: none of them.
    operator: dict[str, Any] | None = None


class LeanNode(msgspec.Struct, kw_only=True, gc=False):
    """A NODE as the lean subscriber keeps it (:func:`decode_lean_node`; the recorder's read path): the payload
    decoded straight into a NodeUpdate's attributes (same names, same values: ``alertcode`` is the wire's
    ``alert``, ``polled_at_s`` its ``polled_at``...), the operator keys as fields of their own (UNSET: absent;
    :attr:`operator` is NodeUpdate's dict of them). Building a NodeUpdate after the decode -- the checks, the
    operator dict, a second object -- cost twice the decode (bench/recorder_bench.py, read).

    Not frozen (the decode sets ``path`` from the topic) but to be treated as read-only; not tracked by the
    garbage collector (``gc=False``: what a decode makes holds no reference cycle), so 100,000 of them held
    cost no collection time. :meth:`to_update` / :meth:`from_update` convert to and from NodeUpdate."""

    if TYPE_CHECKING:
        path: str = ""
        agent: str | None = None
    else:
        # Not a payload key: set from the topic. Raw: a payload that has a "path" key (an unknown key, which a
        # NODE reader ignores) is skipped unread as _NodePayload skips it, whatever it holds.
        path: msgspec.Raw = msgspec.field(default="", name="path")
        agent: Any = None  # a str; anything else reads as nil (decode_lean_node)
    v: Any = PROTOCOL_MAJOR
    epoch: int
    seq: int
    kind: Literal["point", "parent", "removed"]
    alertcode: int = msgspec.field(name="alert")
    alertstr: str
    stale: bool
    value: Any = None
    polled_at_s: float | None = msgspec.field(default=None, name="polled_at")
    received_at_s: float | None = msgspec.field(default=None, name="received_at")
    dt_s: float | None = msgspec.field(default=None, name="dt")
    reported_alert: int | None = None
    liveness_unknown: bool = False
    since: Any = UNSET
    attention: Any = UNSET
    alarm: Any = UNSET
    shelf_id: Any = UNSET
    shelved_below: Any = UNSET
    unacked_below: Any = UNSET
    raw_alert: Any = UNSET
    pending: Any = UNSET
    flapping: Any = UNSET

    @property
    def operator(self) -> dict[str, Any] | None:
        """The operator keys the payload held, as :attr:`NodeUpdate.operator` (None: none of them)."""
        found = {key: item for key in NODE_OPERATOR_KEYS if (item := getattr(self, key)) is not UNSET}
        return found or None

    def to_update(self) -> NodeUpdate:
        """The same node as the NodeUpdate :func:`decode_node_message` makes of its frames."""
        return NodeUpdate(
            self.path,
            self.epoch,
            self.seq,
            self.kind,
            self.alertcode,
            self.alertstr,
            self.stale,
            self.value,
            self.agent,
            self.polled_at_s,
            self.received_at_s,
            self.dt_s,
            self.reported_alert,
            self.liveness_unknown,
            self.operator,
        )

    @classmethod
    def from_update(cls, update: NodeUpdate) -> LeanNode:
        """The LeanNode of a decoded NodeUpdate (its operator keys of NODE_OPERATOR_KEYS; a snapshot's nodes)."""
        operator = update.operator or {}
        return cls(
            path=update.path,
            epoch=update.epoch,
            seq=update.seq,
            kind=update.kind,  # type: ignore[arg-type]  # a decoded kind is one of the three
            alertcode=update.alertcode,
            alertstr=update.alertstr,
            stale=update.stale,
            value=update.value,
            agent=update.agent,
            polled_at_s=update.polled_at_s,
            received_at_s=update.received_at_s,
            dt_s=update.dt_s,
            reported_alert=update.reported_alert,
            liveness_unknown=update.liveness_unknown,
            **{key: item for key, item in operator.items() if key in _LEAN_OPERATOR_KEYS},
        )


#: The NODE keys of the operator layer (alarms, attention, shelves, debounce; design note ALARMS.md),
#: handed to subscribers as they come (NodeUpdate.operator): their readers check each one.
NODE_OPERATOR_KEYS: Final = (
    "since",
    "attention",
    "alarm",
    "shelf_id",
    "shelved_below",
    "unacked_below",
    "raw_alert",
    "pending",
    "flapping",
)


@dataclass(frozen=True, slots=True)
class HubHeartbeat:
    """A HUB_HEARTBEAT message."""

    epoch: int
    seq: int
    interval_s: float
    sent_at_s: float
    published: dict[str, int]
    # False when some followed prefix has no counter (the hub tracks at most
    # max_published_prefixes): a missing prefix then proves nothing.
    complete: bool = True
    # (1.4) The prefixes the hub publishes NODES batches for (within the heartbeat's scope).
    batched: tuple[str, ...] = ()


# Value types that pack as they are (never sanitised), and that msgspec and the
# value packer pack to the same bytes.
_PLAIN_TYPES: Final = frozenset({type(None), bool, int, float, str, bytes})

_NODE_FIELD_NAMES: Final = _NodeFields.__struct_fields__


class NodeEncoder:
    """The NODE payload encoder (the only one: :func:`node_payload` and :func:`encode_node` use it).

    It fills :class:`_NodeFields` (the 1.0/1.1 keys; a plain value as it is,
    any other packed by the value packer and spliced in) and packs it with
    msgspec; a payload with 1.2 operator keys (``extra``, in NODE_EXTRA_KEYS
    order) is packed as a map of the same fields followed by those keys.
    Holds the hub's epoch; one per hub loop.
    """

    __slots__ = ("epoch",)

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch  # the hub's, in every payload

    def point(
        self,
        seq: int,
        alertcode: int,
        alertstr: str,
        stale: bool,
        value: Any,
        agent: str | None,
        polled_at_s: float | None,
        received_at_s: float | None,
        dt_s: float | None,
        reported_alert: int | None = None,
        liveness_unknown: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> bytes:
        """A ``point`` payload (the arguments of :func:`node_payload`, in its order)."""
        since = _only_since(extra)
        if since is not None and type(value) in _PLAIN_TYPES:
            # The hub's usual payload, packed here: the call to payload() would add about a tenth, and a
            # map of the operator keys five times as much (nearly every node carries ``since`` alone).
            try:
                return _encode(
                    _NodeFieldsSince(
                        PROTOCOL_MAJOR,
                        self.epoch,
                        seq,
                        NODE_POINT,
                        alertcode,
                        alertstr,
                        stale,
                        value,
                        agent,
                        polled_at_s,
                        received_at_s,
                        dt_s,
                        UNSET if reported_alert is None else reported_alert,
                        True if liveness_unknown else UNSET,
                        since,
                    )
                )
            except (TypeError, ValueError, OverflowError):
                pass  # an int beyond 64 bits, a lone surrogate...: payload() sanitises the value
        return self.payload(
            seq,
            NODE_POINT,
            alertcode,
            alertstr,
            stale,
            value,
            agent,
            polled_at_s,
            received_at_s,
            dt_s,
            reported_alert,
            liveness_unknown,
            extra,
        )

    def parent(
        self,
        seq: int,
        alertcode: int,
        alertstr: str,
        stale: bool,
        liveness_unknown: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> bytes:
        """A ``parent`` payload."""
        since = _only_since(extra)
        if since is not None:  # as in point(): the usual payload without the call to payload()
            unknown = True if liveness_unknown else UNSET
            fields = _NodeFieldsSince(
                PROTOCOL_MAJOR, self.epoch, seq, NODE_PARENT, alertcode, alertstr, stale, None, None, None, None, None,
                UNSET, unknown, since,
            )  # fmt: skip
            return _encode(fields)
        return self.payload(
            seq, NODE_PARENT, alertcode, alertstr, stale, None, None, None, None, None, None, liveness_unknown, extra
        )

    def removed(self, seq: int) -> bytes:
        """A ``removed`` payload."""
        return self.payload(seq, NODE_REMOVED, 0, "", False, None, None, None, None, None, None, False, None)

    def payload(
        self,
        seq: int,
        kind: str,
        alertcode: int,
        alertstr: str,
        stale: bool,
        value: Any,
        agent: str | None,
        polled_at_s: float | None,
        received_at_s: float | None,
        dt_s: float | None,
        reported_alert: int | None,
        liveness_unknown: bool,
        extra: dict[str, Any] | None,
    ) -> bytes:
        """Any NODE payload (``reported_alert`` None and ``liveness_unknown`` false are left out)."""
        fields = _NodeFields(
            PROTOCOL_MAJOR,
            self.epoch,
            seq,
            kind,  # type: ignore[arg-type]  # one of the NODE_* kinds
            alertcode,
            alertstr,
            stale,
            value if type(value) in _PLAIN_TYPES else msgspec.Raw(_pack_value(value)),
            agent,
            polled_at_s,
            received_at_s,
            dt_s,
            UNSET if reported_alert is None else reported_alert,
            True if liveness_unknown else UNSET,
        )
        try:
            return _encode(fields) if not extra else _encode(_with_extra(fields, extra))
        except (TypeError, ValueError, OverflowError):
            if type(value) not in _PLAIN_TYPES:
                raise
            # A plain value msgpack cannot carry (an int beyond 64 bits, a lone surrogate): sanitised.
            fields.value = msgspec.Raw(_pack_value(value))
            return _encode(fields) if not extra else _encode(_with_extra(fields, extra))


def _only_since(extra: dict[str, Any] | None) -> Any:
    """``since`` when ``extra`` holds nothing else (UNSET when it is empty), else None: the general path."""
    if not extra:
        return UNSET
    if len(extra) == 1 and type(since := extra.get("since")) is float:
        return since
    return None


def _with_extra(fields: _NodeFields, extra: dict[str, Any]) -> dict[str, Any]:
    """The payload map: ``fields`` (unset ones left out), then the operator keys of ``extra``."""
    payload = {name: getattr(fields, name) for name in _NODE_FIELD_NAMES}
    if fields.reported_alert is UNSET:
        del payload["reported_alert"]
    if fields.liveness_unknown is UNSET:
        del payload["liveness_unknown"]
    for key, item in extra.items():
        payload[key] = _packed(item)
    return payload


def node_payload(
    *,
    epoch: int,
    seq: int,
    kind: str,
    alertcode: int,
    alertstr: str,
    stale: bool,
    value: Any = None,
    agent: str | None = None,
    polled_at_s: float | None = None,
    received_at_s: float | None = None,
    dt_s: float | None = None,
    reported_alert: int | None = None,
    liveness_unknown: bool = False,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """Pack a NODE payload map (``extra``: the 1.2 operator keys, see NODE payload), by :class:`NodeEncoder`."""
    return NodeEncoder(epoch).payload(
        seq,
        kind,
        alertcode,
        alertstr,
        stale,
        value,
        agent,
        polled_at_s,
        received_at_s,
        dt_s,
        reported_alert,
        liveness_unknown,
        extra,
    )


#: NODE keys of minor 2 (the operator layer), in wire order; each is left out at its default (0 or nil).
NODE_EXTRA_KEYS: Final = NODE_OPERATOR_KEYS


def encode_node(update: NodeUpdate) -> tuple[bytes, bytes]:
    """The two frames ``[topic, payload]`` of a NODE message (its operator keys as they are)."""
    payload = node_payload(
        epoch=update.epoch,
        seq=update.seq,
        kind=update.kind,
        alertcode=update.alertcode,
        alertstr=update.alertstr,
        stale=update.stale,
        value=update.value,
        agent=update.agent,
        polled_at_s=update.polled_at_s,
        received_at_s=update.received_at_s,
        dt_s=update.dt_s,
        reported_alert=update.reported_alert,
        liveness_unknown=update.liveness_unknown,
        extra=update.operator,
    )
    return update.path.encode(), payload


def encode_hub_heartbeat(beat: HubHeartbeat, topic: bytes = HUB_HEARTBEAT_TOPIC) -> tuple[bytes, bytes]:
    """The two frames ``[topic, payload]`` of a HUB_HEARTBEAT message (on ``topic``: the full or a scope's)."""
    payload = _HubHeartbeatPayload(
        epoch=beat.epoch,
        seq=beat.seq,
        interval_s=beat.interval_s,
        sent_at=beat.sent_at_s,
        published=beat.published,
        complete=UNSET if beat.complete else False,
        batched=list(beat.batched) if beat.batched else UNSET,
    )
    return topic, _encode(payload)


def scope_heartbeat_topic(grant_name: str) -> bytes:
    """The heartbeat topic of a prefix-limited subscriber grant (no scope's topic is a byte-prefix of another's)."""
    return SCOPE_HEARTBEAT_PREFIX + grant_name.encode() + b"\x00"


def is_heartbeat_topic(topic: bytes) -> bool:
    """Whether ``topic`` is a hub heartbeat topic (the full one or a scope's)."""
    return topic == HUB_HEARTBEAT_TOPIC or (topic.startswith(SCOPE_HEARTBEAT_PREFIX) and topic.endswith(b"\x00"))


def nodes_topic(prefix: str) -> bytes:
    """(1.4) The topic of ``prefix``'s NODES batches (NUL-ended: no prefix's topic is a byte-prefix of another's)."""
    return NODES_TOPIC_PREFIX + prefix.encode() + b"\x00"


def nodes_prefix(topic: bytes) -> str | None:
    """(1.4) The followed prefix of a NODES topic; None when ``topic`` is none (or its prefix is not UTF-8,
    or holds a NUL)."""
    if not (topic.startswith(NODES_TOPIC_PREFIX) and topic.endswith(b"\x00")) or len(topic) <= len(NODES_TOPIC_PREFIX):
        return None
    raw = topic[len(NODES_TOPIC_PREFIX) : -1]
    if b"\x00" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _str_head(size: int) -> bytes:
    """The msgpack header of a str of ``size`` bytes."""
    if size < 32:
        return bytes((0xA0 | size,))
    if size < 1 << 8:
        return b"\xd9" + size.to_bytes(1, "big")
    if size < 1 << 16:
        return b"\xda" + size.to_bytes(2, "big")
    return b"\xdb" + size.to_bytes(4, "big")


def _array_head(size: int) -> bytes:
    """The msgpack header of an array of ``size`` items."""
    if size < 16:
        return bytes((0x90 | size,))
    if size < 1 << 16:
        return b"\xdc" + size.to_bytes(2, "big")
    return b"\xdd" + size.to_bytes(4, "big")


# fixarray(2) + the str header, by path length: one lookup per node of a batch.
_ITEM_HEADS: Final = tuple(b"\x92" + _str_head(size) for size in range(256))


def encode_nodes_batches(
    items: Sequence[tuple[bytes, bytes]],
    most: int = MAX_NODES_PER_BATCH,
    budget_bytes: int = MAX_NODES_BATCH_BYTES,
) -> list[bytes]:
    """(1.4) :func:`encode_nodes` of ``items`` cut into batches of at most ``most`` pairs and about
    ``budget_bytes`` of NODE payloads (a batch ends before the payload that would pass it; one payload bigger
    than the budget goes alone): the hub's drain makes every NODES message with it. (Finding the cuts first and
    encoding each slice in encode_nodes' tight loop is faster than one pass that does both: measured.)"""
    batches: list[bytes] = []
    start = size = 0
    for index, (_, payload) in enumerate(items):
        size += len(payload)
        if index - start >= most or (size > budget_bytes and index > start):
            batches.append(encode_nodes(items[start:index]))
            start, size = index, len(payload)
    if start < len(items):
        batches.append(encode_nodes(items[start:]))
    return batches


def encode_nodes(items: Sequence[tuple[bytes, bytes]]) -> bytes:
    """(1.4) A NODES payload: the array of ``[path, NODE payload]`` of ``items``, each a UTF-8 path and a NODE
    payload already packed (spliced in as they are: the hub packs each NODE once for every stream)."""
    heads = _ITEM_HEADS
    parts = [_array_head(len(items))]
    append = parts.append
    for path, payload in items:
        size = len(path)
        append(heads[size] if size < 256 else b"\x92" + _str_head(size))
        append(path)
        append(payload)
    return b"".join(parts)


def notice_prefix(agent: str) -> bytes:
    """The start of every NOTICE topic for ``agent``."""
    return NOTICE_TOPIC_PREFIX + agent.encode() + b"\x00"


def notice_topic(agent: str, reason: str) -> bytes:
    """The NOTICE topic telling ``agent`` why the hub refuses its messages (reason cut to 200 UTF-8 bytes)."""
    cut = reason.encode()[:MAX_NOTICE_REASON_BYTES].decode("utf-8", "ignore")
    return notice_prefix(agent) + cut.encode()


def parse_notice(agent: str, subscription: bytes) -> str | None:
    """The hub's reason, if ``subscription`` (an XPUB frame: 0x01 + topic) is a NOTICE for ``agent``."""
    start = b"\x01" + notice_prefix(agent)
    if not subscription.startswith(start):
        return None
    return subscription[len(start) :].decode("utf-8", "replace")


# ----------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------

_DATETIME_TEXT: Final = re.compile(r"^([0-9T:.+\-]{10,42}Z?)(?:\[([A-Za-z0-9_+\-/]{1,64})\])?$")


def _parse_datetime(data: bytes) -> dt.datetime:
    if len(data) > _MAX_DATETIME_TEXT:
        raise ValueError("datetime text too long")
    match = _DATETIME_TEXT.match(data.decode("ascii"))
    if match is None:
        raise ValueError(f"bad datetime text {data[:40]!r}")
    value = dt.datetime.fromisoformat(match.group(1))
    zone_name = match.group(2)
    if zone_name is not None and value.tzinfo is not None:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            return value  # unknown zone here: the offset is still right
        return value.astimezone(zone)
    return value


def _ext_hook_at(depth: int) -> Callable[[int, memoryview], Any]:
    """msgspec's ext hook for values nested ``depth`` tuples deep: ext 1 and 2, nothing else."""
    inner: list[msgspec.msgpack.Decoder[Any]] = []  # made on first use (each level has its own)

    def hook(code: int, data: memoryview) -> Any:
        if code == EXT_DATETIME:
            return _parse_datetime(bytes(data))
        if code == EXT_TUPLE:
            if depth >= _MAX_EXT_DEPTH:
                raise ValueError("tuples nested too deep")
            if not inner:
                inner.append(msgspec.msgpack.Decoder(ext_hook=_ext_hook_at(depth + 1)))
            items = inner[0].decode(data)
            if type(items) is not list:
                raise ValueError("tuple ext does not hold an array")
            return tuple(items)
        raise ValueError(f"unknown msgpack ext type {code}")

    return hook


_EXT_HOOK: Final = _ext_hook_at(0)


def _decoder(kind: Any) -> Callable[[Any], Any]:
    return msgspec.msgpack.Decoder(kind, ext_hook=_EXT_HOOK).decode


_decode_envelope: Final = _decoder(_Envelope[msgspec.Raw])
_decode_delta_envelope: Final = _decoder(_Envelope[_DeltaBody])
# A DELTA from a gsmon agent starts with fixarray(8), major 1, any minor below 128 (one byte), kind 2.
_DELTA_HEAD: Final = bytes((0x98, PROTOCOL_MAJOR))
_DELTA_KIND: Final = int(MsgKind.DELTA)
_decode_any: Final = _decoder(Any)
_BODY_DECODERS: Final = {kind: _decoder(body) for kind, body in _BODY_TYPES.items()}
_decode_loose_state: Final = _decoder(_LooseStateBody)
_decode_loose_delta: Final = _decoder(_LooseDeltaBody)
_decode_relay_state: Final = _decoder(_RelayStateBody)
_decode_relay_delta: Final = _decoder(_RelayDeltaBody)
_decode_node: Final = _decoder(_NodePayload)
_decode_hub_heartbeat: Final = _decoder(_HubHeartbeatPayload)

# isinstance() with a tuple: an inline `A | B` builds a union object at every
# call, which costs more than the test itself on the per-message paths.
_BUFFERS: Final = (bytes, bytearray, memoryview)
_CONTAINERS: Final = (list, tuple, dict)
_CONTAINER_TYPES: Final = frozenset(_CONTAINERS)

# The errors msgspec raises for bytes that are not msgpack: DecodeError, an ext hook's ValueError, RecursionError
# (nesting deeper than the interpreter allows), and the limit errors of a hostile length header.
_MALFORMED: Final = (msgspec.DecodeError, ValueError, RecursionError, MemoryError, OverflowError)
_MALFORMED_OR_INVALID: Final = (msgspec.ValidationError, *_MALFORMED)


def _check_frame(data: Any, max_bytes: int) -> None:
    if not isinstance(data, _BUFFERS):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    size = len(data)
    if size > max_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit of {max_bytes}")
    if size == 0:
        raise ProtocolError("empty frame")


def _not_msgpack(error: BaseException) -> ProtocolError:
    if isinstance(error, RecursionError):
        return ProtocolError("not valid msgpack: nested too deep")
    detail = str(error) or "malformed data"
    return ProtocolError(f"not valid msgpack: {type(error).__name__}: {detail}")


def _str_keys(value: Any) -> bool:
    """Whether every map in ``value`` (a list, tuple or dict) has str keys only, as the spec requires
    (msgspec's untyped decoding takes any key; iterative: a hostile value cannot blow the stack)."""
    stack = [value]
    pop, extend, nested, str_only = stack.pop, stack.extend, _CONTAINER_TYPES, _STR_ONLY
    while stack:
        item = pop()
        if type(item) is dict:
            if not str_only.issuperset(map(type, item)):  # the type tests run in C, not per key in Python
                return False
            item = item.values()
        if not nested.isdisjoint(map(type, item)):
            extend(child for child in item if type(child) in nested)
    return True


_STR_ONLY: Final = frozenset({str})


def _need_str_keys(value: Any, where: str) -> None:
    if type(value) in _CONTAINER_TYPES and not _str_keys(value):
        raise ProtocolError(f"not valid msgpack: a map key in {where} is not a str (map keys must be str)")


def _unpack(data: bytes, max_bytes: int = MAX_FRAME_BYTES) -> Any:
    """Any msgpack frame as plain values (str map keys, the ext types of Values); ProtocolError if it is not."""
    _check_frame(data, max_bytes)
    try:
        value = _decode_any(data)
    except _MALFORMED as error:
        raise _not_msgpack(error) from error
    _need_str_keys(value, "the frame")
    return value


def pack_value(value: Any) -> bytes:
    """A point value packed as the protocol packs it (ext 1 and 2, sanitised; never raises)."""
    return _pack_value(value)


def unpack_value(data: bytes) -> Any:
    """The value :func:`pack_value` packed; :class:`ProtocolError` for bytes that are not a value."""
    return _unpack(data)


# msgspec's error messages end in the path of the bad part: "Expected `int`, got `str` - at `$.points[0][2]`",
# "Object missing required field `mount`", "Expected `str`, got `int` - at `key` in `$`".
_ERROR_PATH: Final = re.compile(r"^(?P<detail>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING_FIELD: Final = re.compile(r"^Object missing required field `(?P<field>[^`]*)`$")
_ENUM_VALUE: Final = re.compile(r"^Invalid enum value (?P<value>.*)$")
_HEADER_FIELDS: Final = ("major", "minor", "kind", "sender", "epoch", "seq", "sent_ns", "body")


def _where(error: msgspec.ValidationError) -> tuple[str, str, bool]:
    """``(detail, path, is_key)`` of a msgspec validation error; a missing field's name joins the path."""
    match = _ERROR_PATH.match(str(error))
    assert match is not None  # the pattern matches any text
    detail, path = match["detail"], match["path"] or ""
    missing = _MISSING_FIELD.match(detail)
    if missing is not None:
        return "is missing", f"{path}.{missing['field']}", False
    return detail, path, match["key"] is not None


def _malformed_value(detail: str, where: str) -> ProtocolError | None:
    """The error for a value msgspec decodes by itself and found malformed (a bad msgpack timestamp)."""
    if "MessagePack" in detail:
        return ProtocolError(f"not valid msgpack: {detail} (at {where})")
    return None


def _shape_error(data: bytes, what: str) -> ProtocolError:
    """The error for a frame whose top level is not the expected shape: unless it is not msgpack at all."""
    try:
        _unpack(data)
    except ProtocolError as error:
        return error
    return ProtocolError(what)


def _envelope_error(error: msgspec.ValidationError, data: bytes) -> ProtocolError:
    detail, path, is_key = _where(error)
    if not path or is_key:
        return _shape_error(data, f"an envelope must be an array of 8 items ({detail})")
    index = int(path[1 : path.index("]")])
    field = _HEADER_FIELDS[index]
    if field == "major":
        enum = _ENUM_VALUE.match(detail)
        shown = f"{enum['value']:.20}" if enum is not None else f"({detail})"
        return ProtocolError(f"protocol major version {shown} is not supported (this side speaks {PROTOCOL_MAJOR})")
    if field == "kind":
        return ProtocolError(f"unknown message kind ({detail})")
    if field == "sent_ns":
        return ProtocolError(f"envelope sent_ns must be an int: {detail}")
    if field == "sender":
        return ProtocolError(f"envelope sender must be a non-empty str of at most 256 characters: {detail}")
    return ProtocolError(f"envelope {field} must be an unsigned int: {detail}")


def _phrase(kind: msgspec.inspect.Type) -> str:
    """What a field of this schema type must be, in the spec's words."""
    inspect = msgspec.inspect
    if isinstance(kind, inspect.UnionType):
        return " or ".join(_phrase(member) for member in kind.types)
    if isinstance(kind, inspect.IntType):
        return "an unsigned int" if kind.ge == 0 else "an int"
    if isinstance(kind, inspect.FloatType):
        return "a positive number of seconds" if kind.gt == 0 else "a number"
    if isinstance(kind, inspect.LiteralType):
        return "one of " + ", ".join(repr(value) for value in kind.values)
    simple = {
        inspect.StrType: "a str",
        inspect.BoolType: "a bool",
        inspect.BytesType: "bytes",
        inspect.NoneType: "nil",
        inspect.DictType: "a map",
        inspect.ListType: "an array",
    }
    return simple.get(type(kind), "a valid value")


def _field_phrases(struct: type[msgspec.Struct]) -> dict[str, str]:
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    return {field.encode_name: _phrase(field.type) for field in info.fields}


_GOT: Final = re.compile(r", got (?P<got>.*)$")


def _must_be(phrases: dict[str, str], where: str, field: str, detail: str) -> ProtocolError:
    """``where.field must be <its type>, got <what came>`` for a top-level field of a schema struct."""
    if detail == "is missing":
        return ProtocolError(f"{where}{field} must be {phrases[field]}, got nothing (missing)")
    got, enum = _GOT.search(detail), _ENUM_VALUE.match(detail)
    if got is None and enum is None:  # a bound: "Expected `float` > 0.0"
        return ProtocolError(f"{where}{field} must be {phrases[field]} ({detail})")
    found = got["got"] if got is not None else enum["value"]  # type: ignore[index]
    return ProtocolError(f"{where}{field} must be {phrases[field]}, got {found}")


def _body_error(error: msgspec.ValidationError, data: bytes, kind: MsgKind) -> ProtocolError:
    detail, path, is_key = _where(error)
    if is_key:
        return _shape_error(data, f"body{path} has a map key that is not a str ({detail})")
    if not path:
        return _shape_error(data, f"envelope body must be a map ({detail})")
    malformed = _malformed_value(detail, f"body{path}")
    if malformed is not None:
        return malformed
    field = path[1:]
    phrases = _BODY_PHRASES[kind]
    if field in phrases:  # a top-level key: say what it must be
        return _must_be(phrases, "body.", field, detail)
    return ProtocolError(f"body{path}: {detail}")


def _payload_error(error: msgspec.ValidationError, what: str) -> ProtocolError:
    detail, path, is_key = _where(error)
    if is_key:
        return ProtocolError(f"not valid msgpack: a map key of the {what} is not a str ({detail})")
    if not path:
        return ProtocolError(f"{what} must be a map ({detail})")
    field = path.lstrip(".")
    malformed = _malformed_value(detail, f"{what} {field}")
    if malformed is not None:
        return malformed
    if what == "node payload" and field in ("polled_at", "received_at", "dt"):
        return ProtocolError(f"node payload times must be numbers or nil: {field} {detail}")
    phrases = _NODE_PHRASES if what == "node payload" else _HUB_HEARTBEAT_PHRASES
    if field in phrases:
        return _must_be(phrases, f"{what} ", field, detail)
    return ProtocolError(f"{what} {field}: {detail}")


def _seconds(value: float, where: str) -> float:
    if value == math.inf:  # msgspec's bound is gt=0: inf passes it, NaN does not
        raise ProtocolError(f"{where} must be a positive number of seconds, got inf")
    return value


def _points(entries: list[Any], limits: Limits, loose: bool) -> list[PointEntry]:
    if len(entries) > limits.max_points_per_message:
        raise ProtocolError(
            f"body.points has {len(entries)} items, more than the limit of {limits.max_points_per_message}"
        )
    if loose:  # entries with the optional 7th item, decoded as _LooseEntry: the six the hub reads + the map
        loose_entries = entries
        entries = []
        for index, item in enumerate(loose_entries):
            entry = PointEntry(item.path, item.value, item.alertcode, item.alertstr, item.polled_at_s, item.dt_s)
            if type(item.debounce) is dict:  # a 7th item that is not a map is ignored (spec: Point entry)
                entry = debounced_entry(entry, _debounce_map(index, item.debounce))
            entries.append(entry)
    nested = _CONTAINER_TYPES
    for index, entry in enumerate(entries):
        if type(entry[1]) in nested and not _str_keys(entry[1]):
            raise ProtocolError(f"not valid msgpack: a map key in body.points[{index}] is not a str")
    return entries


def _relay_body(kind: MsgKind, raw: msgspec.Raw) -> tuple[Any, list[PointEntry] | None]:
    """(1.3) A STATE or DELTA body whose every entry is relayed (spec: "Relayed entries"): (the body, its
    entries as :class:`DebouncedEntry` with the 7th map as :func:`_debounce_map` makes it), or (None, None)
    when it is not one, or not a valid one (then the loose path decides, and words what is wrong)."""
    try:
        body = (_decode_relay_state if kind is MsgKind.STATE else _decode_relay_delta)(raw)
    except _MALFORMED_OR_INVALID:
        return None, None
    points = _relay_points(body.points)
    return (None, None) if points is None else (body, points)


def _relay_points(items: list[_RelayEntry]) -> list[PointEntry] | None:
    """Typed relayed entries as the hub keeps them (the same dicts, keys and order as :func:`_debounce_map`);
    None when one has what the types cannot refuse (an infinite ``dt`` or ``since``)."""
    out: list[PointEntry] = []
    append, finite, made_entry, new = out.append, math.isfinite, DebouncedEntry, _new_tuple
    # The points of one agent at a site mostly carry equal maps (only their values changed): a map equal to
    # the entry before's (compared in C) is a copy of the dict made for it, not made again. Each entry has
    # its own top-level dict (a hub sets a kept ``since`` in it); what it holds is shared, and read only.
    last: _RelayMap | None = None
    last_made: dict[str, Any] = {}
    for item in items:
        relay = item.debounce
        if relay == last:
            entry = new(made_entry, (item.path, item.value, item.alertcode, item.alertstr, item.polled_at_s, item.dt_s))
            entry.debounce = last_made.copy()
            append(entry)
            continue
        dt_s, since, pending, flapping, alarm = relay.dt, relay.since, relay.pending, relay.flapping, relay.alarm
        if (dt_s is not None and dt_s == _INFINITY) or (type(since) is float and not finite(since)):
            return None
        reported = relay.reported
        made = {
            "raw": relay.raw,
            "raw_str": relay.raw_str,
            "pending": None if pending is None else {"level": pending.level, "since": pending.since},
            "flapping": None if flapping is None else {"since": flapping.since, "changes": flapping.changes},
            "agent": relay.agent,
            "via": relay.via,
            "stale": relay.stale,
            "dt": dt_s,
            "reported": relay.raw if reported is UNSET else reported,
            "alarm": None if alarm is None else {"id": alarm.id, "state": alarm.state, "max_level": alarm.max_level},
            "shelf": relay.shelf,
        }
        if since is not UNSET:
            made["since"] = since
        entry = new(made_entry, (item.path, item.value, item.alertcode, item.alertstr, item.polled_at_s, item.dt_s))
        entry.debounce = made
        append(entry)
        last, last_made = relay, made.copy()  # a copy: the hub may set since in this entry's own
    return out


_INFINITY: Final = math.inf


def _debounce_map(index: int, raw_map: dict[str, Any]) -> dict[str, Any]:
    """The 7th item of a point entry, validated and reduced to its known keys (spec: "Point entry")."""
    raw: Any = raw_map.get("raw")
    raw_str: Any = raw_map.get("raw_str", "")
    pending: Any = raw_map.get("pending")
    flapping: Any = raw_map.get("flapping")
    held: tuple[int, float] | None = None
    flaps: tuple[float, int] | None = None
    ok = _is_int(raw) and isinstance(raw_str, str)
    if ok and pending is not None:
        ok = isinstance(pending, dict) and _is_int(pending.get("level")) and _is_number(pending.get("since"))
        held = (pending["level"], float(pending["since"])) if ok else None
    if ok and flapping is not None:
        ok = isinstance(flapping, dict) and _is_number(flapping.get("since")) and _is_int(flapping.get("changes"))
        flaps = (float(flapping["since"]), flapping["changes"]) if ok else None
    if not ok:
        raise ProtocolError(
            f"body.points[{index}][6] must be a map {{raw: int, raw_str: str, pending: {{level: int, since: number}}"
            f"|nil, flapping: {{since: number, changes: int}}|nil}}, got {raw_map!r:.200}"
        )
    made = point_debounce_map(raw, raw_str, held, flaps)
    if "via" in raw_map:
        made.update(_relay_keys(index, raw_map))
    return made


def relay_map(
    debounce: dict[str, Any],
    agent: str,
    via: list[str],
    stale: bool,
    dt_s: float | None,
    reported: int,
    alarm: dict[str, Any] | None,
    since: float | None = None,
    shelf: int | None = None,
) -> dict[str, Any]:
    """(1.3) The 7th item of a relayed point entry (spec: "Relayed entries"): ``debounce``
    (:func:`point_debounce_map`) with the relay keys added, every key at its default left out
    (a WAN link carries thousands of these a second)."""
    made: dict[str, Any] = {"raw": debounce["raw"]}
    if debounce.get("raw_str"):
        made["raw_str"] = debounce["raw_str"]
    if debounce.get("pending") is not None:
        made["pending"] = debounce["pending"]
    if debounce.get("flapping") is not None:
        made["flapping"] = debounce["flapping"]
    return relay_keys_after(made, agent, via, stale, dt_s, reported, alarm, since, shelf)


def relay_keys_after(
    made: dict[str, Any],
    agent: str,
    via: list[str],
    stale: bool,
    dt_s: float | None,
    reported: int,
    alarm: dict[str, Any] | None,
    since: float | None,
    shelf: int | None,
) -> dict[str, Any]:
    """(1.3) :func:`relay_map`'s keys after the debounce ones (``made`` holds ``raw`` and those), in the
    spec's order, defaults left out: a site's point without debounce starts ``made`` from its own level
    (no debounce map to read it from) and ends it here, so both make the same bytes."""
    made["agent"] = agent
    made["via"] = via
    if stale:
        made["stale"] = True
    if dt_s is not None:
        made["dt"] = dt_s
    if reported != made["raw"]:
        made["reported"] = reported
    if alarm is not None:
        made["alarm"] = alarm
    if since is not None:
        made["since"] = since
    if shelf is not None:
        made["shelf"] = shelf
    return made


def _relay_keys(index: int, raw_map: dict[str, Any]) -> dict[str, Any]:
    """The relay keys of a 7th item (spec: "Relayed entries"), validated."""
    via: Any = raw_map.get("via")
    agent: Any = raw_map.get("agent")
    stale: Any = raw_map.get("stale", False)
    dt_s: Any = raw_map.get("dt")
    reported: Any = raw_map.get("reported", raw_map.get("raw"))
    alarm: Any = raw_map.get("alarm")
    since: Any = raw_map.get("since")
    shelf: Any = raw_map.get("shelf")
    ok = (
        isinstance(via, list)
        and 0 < len(via) <= MAX_RELAY_VIA
        and all(isinstance(hub, str) and 0 < len(hub) <= 256 for hub in via)
        and isinstance(agent, str)
        and 0 < len(agent) <= 1024
        and type(stale) is bool
        and (dt_s is None or (_is_number(dt_s) and 0 < dt_s < math.inf))
        and _is_int(reported)
        and (since is None or (_is_number(since) and math.isfinite(since)))
        and (shelf is None or _is_int(shelf))
    )
    summary: dict[str, Any] | None = None
    if ok and alarm is not None:
        ok = (
            isinstance(alarm, dict)
            and _is_int(alarm.get("id"))
            and isinstance(alarm.get("state"), str)
            and _is_int(alarm.get("max_level"))
        )
        if ok:
            summary = {"id": alarm["id"], "state": alarm["state"], "max_level": alarm["max_level"]}
    if not ok:
        raise ProtocolError(
            f"body.points[{index}][6] relay keys must be via: [str] (1 to {MAX_RELAY_VIA}), agent: str, stale: bool, "
            f"dt: positive number|nil, reported: int, alarm: {{id: int, state: str, max_level: int}}|nil, "
            f"since: number|nil, shelf: int|nil; got {raw_map!r:.200}"
        )
    return {
        "agent": agent,
        "via": list(via),
        "stale": stale,
        "dt": None if dt_s is None else float(dt_s),
        "reported": reported,
        "alarm": summary,
        "shelf": shelf,
        # Only when sent: absent from a DELTA's entry means "unchanged" (the receiver keeps the last one).
        **({} if "since" not in raw_map else {"since": None if since is None else float(since)}),
    }


def route_topic(agent: str, command: dict[str, Any], seal: Callable[[bytes], bytes] | None = None) -> bytes:
    """(1.3) The back-channel topic that routes ``command`` down to the site hub publishing as ``agent``;
    ``seal`` (with keys) turns the packed map into ``SEALED_ROUTE_MARK`` + nonce + box (spec: "Sealed
    routes")."""
    packed = _pack_strict(command)
    return ROUTE_TOPIC_PREFIX + agent.encode() + b"\x00" + (packed if seal is None else seal(packed))


def parse_route(
    agent: str, subscription: bytes, open_sealed: Callable[[bytes], bytes | None] | None = None
) -> dict[str, Any] | None:
    """A routed command (spec: "Routed commands") for ``agent`` in a frame its XPUB read, or None
    (another agent's, not a route, or malformed). With ``open_sealed`` (a site hub with keys) only a
    sealed route is taken, opened by it; without, only a plain one."""
    head = b"\x01" + ROUTE_TOPIC_PREFIX + agent.encode() + b"\x00"
    if not subscription.startswith(head):
        return None
    body = subscription[len(head) :]
    sealed = body[:1] == SEALED_ROUTE_MARK
    if sealed != (open_sealed is not None) or len(body) > MAX_ROUTE_BYTES + SEALED_ROUTE_OVERHEAD:
        return None  # a plain route to a site with keys, a sealed one to a site without: never taken
    if open_sealed is not None:
        opened = open_sealed(body[1:])
        if opened is None:
            return None
        body = opened
    try:
        command = _unpack(body, MAX_ROUTE_BYTES)
    except ProtocolError:
        return None
    if not (
        isinstance(command, dict)
        and _is_int(command.get("route_id"))
        and isinstance(command.get("command"), str)
        and isinstance(command.get("args"), dict)
        and _is_number(command.get("deadline"))
    ):
        return None
    return command


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Decode one envelope frame; raise :class:`ProtocolError` on anything wrong.

    The envelope struct first (header validated, the body kept as raw bytes),
    then the body with its kind's struct; a DELTA framed as gsmon agents frame
    it is tried in one pass of the same structs first.
    """
    if (
        type(data) is bytes
        and data[:2] == _DELTA_HEAD
        and len(data) > 3
        and data[2] < 0x80
        and data[3] == _DELTA_KIND
        and len(data) <= limits.max_frame_bytes
    ):
        # The hub's most frequent message, as gsmon agents frame it (fixarray 8, major 1, a one-byte
        # minor, kind 2): envelope and body in one pass of the same structs. Whatever that refuses,
        # and any DELTA with a container value (its map keys need the check in _points), takes the
        # two passes below, which say what is wrong (and read entries with a 7th item).
        try:
            delta = _decode_delta_envelope(data)
        except _MALFORMED_OR_INVALID:
            pass
        else:
            points = delta.body.points
            if len(points) <= limits.max_points_per_message:
                nested = _CONTAINER_TYPES
                for entry in points:
                    if type(entry[1]) in nested:
                        break
                else:
                    body = delta.body
                    return Delta(
                        sender=delta.sender,
                        epoch=delta.epoch,
                        seq=delta.seq,
                        sent_ns=delta.sent_ns,
                        minor=delta.minor,
                        points=points,
                        outbox=None if body.tseq_head is UNSET else _outbox_mark(body),
                        orphans=None if body.orphans is UNSET else _orphans_of(body),
                    )
    _check_frame(data, limits.max_frame_bytes)
    try:
        envelope = _decode_envelope(data)
    except msgspec.ValidationError as error:
        raise _envelope_error(error, data) from None
    except _MALFORMED as error:
        raise _not_msgpack(error) from error
    kind = _KINDS.get(envelope.kind)
    if kind is None:
        raise ProtocolError(f"unknown message kind {envelope.kind!r:.20}")
    raw = envelope.body
    loose = False
    relayed: list[PointEntry] | None = None
    try:
        try:
            body = _BODY_DECODERS[kind](raw)
        except msgspec.ValidationError:
            if kind not in _ENTRY_KINDS:
                raise
            # Perhaps entries with the optional 7th item (PointEntry takes exactly 6): a site hub's relayed
            # entries (every one with the relay map) in one typed pass, else the loose body reads them, and
            # words the error of anything else wrong.
            body, relayed = _relay_body(kind, raw)
            if relayed is None:
                body, loose = (_decode_loose_state if kind is MsgKind.STATE else _decode_loose_delta)(raw), True
    except msgspec.ValidationError as error:
        raise _body_error(error, data, kind) from None
    except _MALFORMED as error:
        raise _not_msgpack(error) from error
    header = _header_of(envelope)
    if kind is MsgKind.DELTA:  # the hub's most frequent message
        points = _points(body.points if relayed is None else relayed, limits, loose)
        return Delta(**header, points=points, outbox=_outbox_mark(body), orphans=_orphans_of(body))
    if kind is MsgKind.STATE:
        parents = body.parents
        if len(parents) > limits.max_parents_per_message:
            raise ProtocolError(
                f"body.parents has {len(parents)} items, more than the limit of {limits.max_parents_per_message}"
            )
        if body.part >= body.parts:
            raise ProtocolError(f"body.part {body.part} must be below body.parts {body.parts}")
        unpolled = [] if body.unpolled is UNSET else body.unpolled
        if len(unpolled) > limits.max_points_per_message:
            raise ProtocolError(
                f"body.unpolled has {len(unpolled)} items, more than the limit of {limits.max_points_per_message}"
            )
        return State(
            **header,
            mount=body.mount,
            heartbeat_s=_seconds(body.heartbeat_s, "body.heartbeat_s"),
            points=_points(body.points if relayed is None else relayed, limits, loose),
            parents=parents,
            part=body.part,
            parts=body.parts,
            unpolled=unpolled,
            outbox=_outbox_mark(body),
            orphans=_orphans_of(body),
            pair=_site_pair(body.pair),
        )
    if kind is MsgKind.HEARTBEAT:
        heartbeat_s = _seconds(body.heartbeat_s, "body.heartbeat_s")
        return Heartbeat(
            **header,
            mount=body.mount,
            heartbeat_s=heartbeat_s,
            point_count=body.point_count,
            outbox=_outbox_mark(body),
            pair=_site_pair(body.pair),
        )
    if kind is MsgKind.BYE:
        return Bye(**header)
    if kind is MsgKind.TRANSITIONS:
        return _transitions(header, body)
    if kind is MsgKind.HELLO:
        return Hello(**header, request_id=body.request_id)
    if kind is MsgKind.SNAPSHOT_REQUEST:
        return SnapshotRequest(**header, request_id=body.request_id, prefix=body.prefix)
    if kind is MsgKind.COMMAND:
        _need_str_keys(body.args, "body.args")
        return Command(**header, request_id=body.request_id, command=body.command, args=body.args, user=body.user)
    if kind is MsgKind.COMMAND_RESULT:
        _need_str_keys(body.result, "body.result")
        return CommandResult(**header, request_id=body.request_id, ok=body.ok, message=body.message, result=body.result)
    if kind is MsgKind.UPSTREAM_RESULT:
        _need_str_keys(body.result, "body.result")
        return UpstreamResult(**header, route_id=body.route_id, ok=body.ok, message=body.message, result=body.result)
    if kind is MsgKind.INFO:
        endpoints = body.endpoints
        if not all(key in endpoints for key in ("agents", "subscribers", "query")):
            raise ProtocolError("body.endpoints must map agents, subscribers and query to endpoint strings")
        topic = body.heartbeat_topic
        if topic is UNSET or topic is None:
            topic = None
        elif not is_heartbeat_topic(topic):
            raise ProtocolError("body.heartbeat_topic must be a heartbeat topic")
        return Info(
            **header,
            request_id=body.request_id,
            endpoints=endpoints,
            heartbeat_s=_seconds(body.heartbeat_s, "body.heartbeat_s"),
            version=body.version,
            heartbeat_topic=topic,
            nodes=body.nodes is True,
        )
    if kind is MsgKind.SNAPSHOT_CHUNK:
        nodes = [(item.path, item.payload) for item in body.nodes]
        nested = _CONTAINER_TYPES
        for index, (_, payload) in enumerate(nodes):
            # The payload's own keys are str (its struct says so); a value may hold maps (a snapshot of
            # 100,000 nodes comes through here: the type tests run in C).
            if not nested.isdisjoint(map(type, payload.values())) and not _str_keys(payload):
                raise ProtocolError(f"not valid msgpack: a map key in body.nodes[{index}] is not a str")
        return SnapshotChunk(**header, request_id=body.request_id, nodes=nodes)
    if kind is MsgKind.SNAPSHOT_END:
        return SnapshotEnd(
            **header, request_id=body.request_id, seq_at=body.seq_at, count=body.count, published=body.published
        )
    if kind is MsgKind.PAIR_SYNC or kind is MsgKind.PAIR_SYNC_REPLY:
        ops = []
        for index, item in enumerate(body.ops):
            _need_str_keys(item.args, f"body.ops[{index}].args")
            ops.append(PairOp(item.origin, item.seq, item.kind, item.at, item.args))
        made = PairSync if kind is MsgKind.PAIR_SYNC else PairSyncReply
        digest = None if body.digest is None else (body.digest[0], body.digest[1])
        return made(
            **header,
            request_id=body.request_id,
            hub_id=body.hub_id,
            head=body.head,
            seen=body.seen,
            ops=ops,
            digest=digest,
            full=body.full,
            notifying=body.notifying,
        )
    assert kind is MsgKind.ERROR
    return Error(**header, request_id=body.request_id, message=body.message)


def _outbox_mark(body: Any) -> OutboxMark | None:
    """The outbox fields of a STATE, DELTA or HEARTBEAT body (all three or none: ProtocolError)."""
    outbox_id, tail, head = body.outbox_id, body.tseq_tail, body.tseq_head
    if outbox_id is UNSET and tail is UNSET and head is UNSET:
        return None
    if outbox_id is UNSET or tail is UNSET or head is UNSET:
        raise ProtocolError("body.outbox_id, body.tseq_tail and body.tseq_head go together (all three or none)")
    if tail > head + 1:
        raise ProtocolError(f"body.tseq_tail {tail} must be at most body.tseq_head + 1 ({head + 1})")
    return OutboxMark(outbox_id, tail, head)


def _transitions(header: dict[str, Any], body: _TransitionsBody) -> Transitions:
    if body.first > body.last + 1:
        raise ProtocolError(f"body.first {body.first} must be at most body.last + 1 ({body.last + 1})")
    if len(body.transitions) > MAX_TRANSITIONS_PER_MESSAGE:
        raise ProtocolError(
            f"body.transitions has {len(body.transitions)} items, more than the limit of {MAX_TRANSITIONS_PER_MESSAGE}"
        )
    items: list[TransitionItem] = []
    previous = body.first - 1
    for index, item in enumerate(body.transitions):
        if not body.first <= item.tseq <= body.last or item.tseq <= previous:
            raise ProtocolError(
                f"body.transitions[{index}].tseq {item.tseq} must increase within body.first..body.last"
                f" ({body.first}..{body.last})"
            )
        if not math.isfinite(item.time):
            raise ProtocolError(f"body.transitions[{index}].time must be a finite number of wall seconds")
        _need_str_keys(item.value, f"body.transitions[{index}]")
        previous = item.tseq
        items.append(TransitionItem(*(getattr(item, name) for name in TransitionItem._fields)))
    lost = body.lost
    if lost is not None and lost[0] > lost[1]:
        raise ProtocolError(f"body.lost {list(lost)} must be [from, to] with from <= to")
    return Transitions(
        **header,
        outbox_id=body.outbox_id,
        first=body.first,
        last=body.last,
        done=body.done,
        transitions=items,
        lost=lost,
        live=None if body.live is UNSET else body.live,
    )


def replay_prefix(agent: str) -> bytes:
    """The start of every REPLAY topic for ``agent`` (1.3)."""
    return REPLAY_TOPIC_PREFIX + agent.encode() + b"\x00"


def replay_topic(agent: str, first: int, last: int) -> bytes:
    """The topic by which the hub asks ``agent`` for its outbox entries ``first..last`` (and confirms every
    entry before ``first``); ``last < first`` only confirms (1.3)."""
    return replay_prefix(agent) + f"{first}-{last}".encode()


_REPLAY_RANGE: Final = re.compile(rb"^([0-9]{1,20})-([0-9]{1,20})$")


def parse_replay(agent: str, subscription: bytes) -> tuple[int, int] | None:
    """``(first, last)`` if ``subscription`` (an XPUB frame: 0x01 + topic) is a REPLAY request for ``agent``."""
    start = b"\x01" + replay_prefix(agent)
    if not subscription.startswith(start):
        return None
    match = _REPLAY_RANGE.match(subscription[len(start) :])
    if match is None:
        return None
    first, last = int(match[1]), int(match[2])
    return (first, last) if first >= 1 and last < 1 << 63 else None


def _header_of(envelope: _Envelope[msgspec.Raw]) -> dict[str, Any]:
    return {
        "minor": envelope.minor,
        "sender": envelope.sender,
        "epoch": envelope.epoch,
        "seq": envelope.seq,
        "sent_ns": envelope.sent_ns,
    }


_KINDS: Final = {kind.value: kind for kind in MsgKind}
_BODY_PHRASES: Final = {kind: _field_phrases(body) for kind, body in _BODY_TYPES.items()}
_NODE_PHRASES: Final = _field_phrases(_NodePayload)
_HUB_HEARTBEAT_PHRASES: Final = _field_phrases(_HubHeartbeatPayload)
_ENTRY_KINDS: Final = (MsgKind.STATE, MsgKind.DELTA)


def salvage_request_id(data: bytes, max_bytes: int = MAX_FRAME_BYTES) -> int | None:
    """The ``request_id`` to answer a request that failed :func:`decode` with (protocol: When ERROR
    is sent): the body's when it is a uint, 0 when the frame is an envelope-shaped array (8 or more
    items, a map last of the eight) without a usable one, None when it is not even that (no reply)."""
    try:
        envelope = _unpack(data, max_bytes)
    except ProtocolError:
        return None
    if not isinstance(envelope, list) or len(envelope) < 8 or not isinstance(envelope[7], dict):
        return None
    request_id = envelope[7].get("request_id")
    if type(request_id) is int and 0 <= request_id < 1 << 64:
        return request_id
    return 0


def _node_update(path: str, node: _NodePayload) -> NodeUpdate:
    """The subscriber's view of a validated NODE payload (absent 1.1 keys: not known, and vouched for)."""
    epoch, seq, kind, code, label, stale = node.epoch, node.seq, node.kind, node.alert, node.alertstr, node.stale
    if epoch is UNSET or seq is UNSET or kind is UNSET or code is UNSET or label is UNSET or stale is UNSET:
        missing = [name for name in _NODE_REQUIRED if getattr(node, name) is UNSET]
        raise ProtocolError(f"node payload {missing[0]} is missing")
    value, agent, reported, unknown = node.value, node.agent, node.reported_alert, node.liveness_unknown
    if type(value) in _CONTAINER_TYPES and not _str_keys(value):
        raise ProtocolError(f"not valid msgpack: a map key in the value of {path!r:.80} is not a str")
    operator: dict[str, Any] | None
    since = node.since
    if (
        node.attention is UNSET
        and node.alarm is UNSET
        and node.shelf_id is UNSET
        and node.shelved_below is UNSET
        and node.unacked_below is UNSET
        and node.raw_alert is UNSET
        and node.pending is UNSET
        and node.flapping is UNSET
    ):
        # The usual payloads: no operator key, or a hub with its alarm layer's ``since`` alone.
        operator = None if since is UNSET else {"since": since}
    else:
        operator = {key: item for key in NODE_OPERATOR_KEYS if (item := getattr(node, key)) is not UNSET}
    if operator is not None:
        for key, item in operator.items():
            # (The message is formatted only when it is needed: per NODE it cost more than the decode.)
            if type(item) in _CONTAINER_TYPES and not _str_keys(item):
                raise ProtocolError(
                    f"not valid msgpack: a map key in the {key} of {path!r:.80} is not a str (map keys must be str)"
                )
    return NodeUpdate(
        path,
        epoch,
        seq,
        kind,
        code,
        label,
        stale,
        value,
        agent if type(agent) is str else None,
        node.polled_at,
        node.received_at,
        node.dt,
        None if reported is UNSET else reported,
        False if unknown is UNSET else unknown,
        operator,
    )


_NODE_REQUIRED: Final = ("kind", "epoch", "seq", "alert", "alertstr", "stale")


def decode_node_payload(path: str, payload: Any) -> NodeUpdate:
    """Validate a NODE payload map (already unpacked, e.g. from a SNAPSHOT_CHUNK) for ``path``."""
    try:
        node = msgspec.convert(payload, _NodePayload)
    except msgspec.ValidationError as error:
        raise _payload_error(error, "node payload") from None
    return _node_update(path, node)


def decode_node_message(topic: bytes, payload: bytes, max_bytes: int = MAX_FRAME_BYTES) -> NodeUpdate:
    """Decode a NODE ``[topic, payload]`` from the hub's subscriber socket, for a caller that has already
    told it from a heartbeat (:func:`is_heartbeat_topic` false): :func:`decode_hub_message`'s rules, its errors."""
    _check_frame(payload, max_bytes)
    try:
        node = _decode_node(payload)
    except msgspec.ValidationError as error:
        raise _shape_error(payload, str(_payload_error(error, "node payload"))) from None
    except _MALFORMED as error:
        raise _not_msgpack(error) from error
    try:
        path = topic.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(f"topic is not UTF-8: {error}") from error
    return _node_update(path, node)


_decode_lean: Final = _decoder(LeanNode)
_LEAN_OPERATOR_KEYS: Final = frozenset(NODE_OPERATOR_KEYS)


def decode_lean_node(topic: bytes, payload: bytes, max_bytes: int = MAX_FRAME_BYTES) -> LeanNode:
    """:func:`decode_node_message` into a :class:`LeanNode`: the same frames accepted, the same node, the same
    errors. The common case is decoded straight into the LeanNode and checked as _node_update checks it (required
    keys by msgspec, str map keys in ``value`` and the operator keys, ``agent`` a str or nil); anything else -- a
    frame that is not bytes or out of bounds, a payload msgspec refuses, a map key that is not a str, a topic that
    is not UTF-8 -- goes through decode_node_message, whose error (or, were it to accept it, node) is the answer."""
    if payload.__class__ is bytes and 0 < len(payload) <= max_bytes:
        try:
            node: LeanNode = _decode_lean(payload)
            node.path = topic.decode("utf-8")
        except (msgspec.ValidationError, UnicodeDecodeError, *_MALFORMED):
            pass
        else:
            if _lean_ok(node):
                return node
    return LeanNode.from_update(decode_node_message(topic, payload, max_bytes))


def _lean_ok(node: LeanNode) -> bool:
    """Whether a decoded LeanNode passes _node_update's checks (str map keys in ``value`` and the operator
    keys); then its ``agent`` is made a str or nil. The usual payload -- a plain value, no operator key but the
    alarm layer's ``since`` -- is told by a few identity tests, before any walk of a container."""
    nested = _CONTAINER_TYPES
    if not (
        type(node.value) not in nested
        and type(node.since) not in nested
        and node.attention is UNSET
        and node.alarm is UNSET
        and node.shelf_id is UNSET
        and node.shelved_below is UNSET
        and node.unacked_below is UNSET
        and node.raw_alert is UNSET
        and node.pending is UNSET
        and node.flapping is UNSET
    ) and not all(type(item) not in nested or _str_keys(item) for item in _lean_checked(node)):
        return False
    if type(node.agent) is not str:
        node.agent = None
    return True


def _lean_checked(node: LeanNode) -> tuple[Any, ...]:
    """The values whose map keys must be str (the value, the operator keys)."""
    return (node.value, *(getattr(node, key) for key in NODE_OPERATOR_KEYS))


class _LeanItem(msgspec.Struct, array_like=True, gc=False):
    """One ``[path, payload]`` item of a NODES payload, decoded (a struct: faster than a tuple, not GC-tracked)."""

    path: str
    node: LeanNode


_Decoded = TypeVar("_Decoded", NodeUpdate, LeanNode)
_decode_nodes_raw: Final = _decoder(list[tuple[str, msgspec.Raw]])
_decode_lean_items: Final = _decoder(list[_LeanItem])


def _nodes_items(payload: bytes, max_bytes: int) -> list[tuple[str, msgspec.Raw]]:
    """A NODES payload's ``[path, payload]`` items, each payload left packed; ProtocolError if it is none."""
    _check_frame(payload, max_bytes)
    try:
        items: list[tuple[str, msgspec.Raw]] = _decode_nodes_raw(payload)
    except msgspec.ValidationError as error:
        raise _shape_error(payload, f"NODES payload: {error}") from None
    except _MALFORMED as error:
        raise _not_msgpack(error) from error
    return items


def decode_nodes(payload: bytes, max_bytes: int = MAX_FRAME_BYTES) -> tuple[list[NodeUpdate], list[str]]:
    """(1.4) A NODES payload's nodes, in order, and why items were dropped (each item by
    :func:`decode_node_message`'s rules: an item that is not a valid NODE is left out, the rest kept);
    ProtocolError when the payload is no array of ``[path, payload]``."""
    return _each_item(payload, max_bytes, decode_node_message)


def _each_item(
    payload: bytes, max_bytes: int, decode: Callable[[bytes, bytes, int], _Decoded]
) -> tuple[list[_Decoded], list[str]]:
    """A NODES payload decoded item by item with ``decode`` (a NODE decoder of topic, payload, max_bytes): the
    nodes in order, and why the items left out were dropped."""
    nodes: list[_Decoded] = []
    dropped: list[str] = []
    for path, raw in _nodes_items(payload, max_bytes):
        try:
            nodes.append(decode(path.encode(), bytes(raw), max_bytes))
        except ProtocolError as error:
            dropped.append(f"{path!r:.80}: {error}")
    return nodes, dropped


def decode_lean_nodes(payload: bytes, max_bytes: int = MAX_FRAME_BYTES) -> tuple[list[LeanNode], list[str]]:
    """(1.4) :func:`decode_nodes` into LeanNodes (:func:`decode_lean_node`'s checks): the usual batch decoded
    in one call; one that msgspec refuses is taken item by item, so that one bad item costs only itself."""
    if payload.__class__ is bytes and 0 < len(payload) <= max_bytes:
        try:
            items: list[_LeanItem] = _decode_lean_items(payload)
        except (msgspec.ValidationError, *_MALFORMED):
            pass
        else:
            nodes: list[LeanNode] = []
            append = nodes.append
            for item in items:
                node = item.node
                node.path = item.path
                if not _lean_ok(node):
                    break  # a map key that is not a str: the item-by-item path says which, and drops it
                append(node)
            else:
                return nodes, []
    return _each_item(payload, max_bytes, decode_lean_node)


def decode_hub_message(topic: bytes, payload: bytes, max_bytes: int = MAX_FRAME_BYTES) -> NodeUpdate | HubHeartbeat:
    """Decode a ``[topic, payload]`` message from the hub's subscriber socket."""
    _check_frame(payload, max_bytes)
    heartbeat = is_heartbeat_topic(topic)
    try:
        if heartbeat:
            beat = _decode_hub_heartbeat(payload)
        else:
            node = _decode_node(payload)
    except msgspec.ValidationError as error:
        what = "hub heartbeat" if heartbeat else "node payload"
        found = _payload_error(error, what)
        raise _shape_error(payload, str(found)) from None
    except _MALFORMED as error:
        raise _not_msgpack(error) from error
    if heartbeat:
        # interval_s sets the subscriber's liveness deadline: 0 or NaN would make the hub look lost forever.
        interval_s = _seconds(beat.interval_s, "hub heartbeat interval_s")
        batched = () if beat.batched is UNSET else tuple(beat.batched)
        return HubHeartbeat(
            beat.epoch, beat.seq, interval_s, beat.sent_at, beat.published, beat.complete is not False, batched
        )
    try:
        path = topic.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(f"topic is not UTF-8: {error}") from error
    return _node_update(path, node)
