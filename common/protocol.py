"""gsmon wire protocol, version 1.2 -- this docstring is the specification.

Every byte that crosses a gsmon socket is msgpack. This module is the only one
that packs or unpacks it: one encoder (:func:`encode`, :func:`encode_node`,
:func:`encode_hub_heartbeat`) and one decoder per stream (:func:`decode`,
:func:`decode_hub_message`). The protocol version moves independently of the
package version.

Sockets
=======
::

    agent XPUB --connect--> hub SUB (bind, "agents")      envelopes: STATE, DELTA, HEARTBEAT, BYE
    hub XPUB (bind, "subscribers") --> subscriber SUB     [topic, payload] frames: NODE, HUB_HEARTBEAT
    client DEALER --connect--> hub ROUTER (bind, "query") envelopes: HELLO, SNAPSHOT_REQUEST, COMMAND
                                                          replies: INFO, SNAPSHOT_CHUNK, SNAPSHOT_END, ERROR,
                                                                   COMMAND_RESULT

Every message on the agent and query sockets is ONE frame holding an envelope.
Hub-to-subscriber messages are TWO frames: the node's path as a UTF-8 topic
(so plain ZeroMQ prefix subscription selects a subtree: ``GS1/Antenna2/``),
then a payload that is a plain msgpack map any language can read.

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
                 the last part has ``part == parts - 1``.
DELTA        2   ``points`` [entry...]: points polled since the last flush,
                 latest poll per point only.
HEARTBEAT    3   ``mount`` str, ``heartbeat_s`` float, ``points`` uint (how many
                 points the agent has).
BYE          4   (empty) the agent stops cleanly: the hub marks it silent now.
==========  ===  ================================================================

When to send: STATE when the agent's XPUB sees a hub's subscription (so a hub
that (re)starts is refilled at once), when a hub asks for it (below), and
every ``state_interval_s``; DELTA every flush interval (milliseconds) when
something was polled; HEARTBEAT when nothing else was sent for
``heartbeat_s``. Any message counts as a heartbeat.

Resync back-channel: a hub that sees a ``seq`` gap (or a DELTA from an epoch it
has no STATE for) subscribes, then unsubscribes, the topic
``RESYNC_TOPIC_PREFIX + agent name``. The agent's XPUB sees that subscription
and answers with a full STATE. Subscriptions travel to every connected agent,
so each agent checks the name.

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
                        :data:`HUB_HEARTBEAT_TOPIC`)
SNAPSHOT_CHUNK     21   ``request_id``, ``nodes`` [[path, node payload]...]
SNAPSHOT_END       22   ``request_id``, ``seq`` uint (the hub's seq when the
                        snapshot started, see Snapshots), ``count`` uint (nodes sent),
                        ``published`` uint (hub's publish counter for this
                        prefix, see HUB_HEARTBEAT)
ERROR              23   ``request_id``, ``message`` str
COMMAND_RESULT     24   ``request_id``, ``ok`` bool, ``message`` str (one line
                        for a person), ``result`` any (a value, below)
=================  ===  ======================================================

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
                     discarded. (1.2)
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
  ``gaps``, ``errors``, ``points``, ``contexts``.

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
                             their current worst level began)
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
================  =========  =================================================

The hub relays these three as the agent's latest entry has them (only the
keys above; absent: no debounce, nothing pending, not flapping), with or
without its alarm layer; a later entry without the 7th item removes them.

Every 1.2 key is left out at its default (absent = 0 or nil), so old clients
see the same payloads and ignore the keys they do not know. How a client
tells 0 from "not judged": a hub with the alarm layer (it has a state store)
sends ``since`` on every parent and on every point of an agent, so there an
absent ``attention``, ``shelved_below`` or ``unacked_below`` is 0; a payload
without ``since`` comes from a hub without the layer (or from a 1.1 hub), or
is one of the hub's own ``_hub/...`` points (they open no alarms): its
attention is not judged and views fall back to the node's level. (A hub
without the layer still relays ``raw_alert``, ``pending`` and ``flapping``.)

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

HUB_HEARTBEAT: topic :data:`HUB_HEARTBEAT_TOPIC`, the 14 bytes
``00 68 75 62 2f 68 65 61 72 74 62 65 61 74`` (a NUL byte, which no path can
hold, then ASCII ``hub/heartbeat``), or a scope's topic (below); payload map ``v``,
``epoch``, ``seq`` (last NODE seq), ``interval_s``, ``sent_at`` (float),
``published`` {prefix: uint}, and ``complete`` bool (minor 1; sent only when
false: the hub counts at most ``max_published_prefixes`` prefixes, and
past that some followed prefix has no counter, so a prefix missing from
``published`` proves nothing).

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
the project's client's bound), the client treats the hub as unreachable: it
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

Read scopes and heartbeat topics: with keys, a subscriber grant limited to
some prefixes is a *scope* with its own heartbeat topic,
:data:`SCOPE_HEARTBEAT_PREFIX` + the grant's name (UTF-8) + NUL (so that no
scope's topic is a byte-prefix of another's); full-access keys, and every
client of a hub without keys, use :data:`HUB_HEARTBEAT_TOPIC`. A limited key
may subscribe to its own scope's topic and to no other control topic (a
topic starting with NUL); a full-access key to :data:`HUB_HEARTBEAT_TOPIC`.
Each heartbeat's ``published`` holds only the prefixes its scope may read,
so a key never learns what others follow outside its grant. (A client of
minor 0 with a limited key, which subscribes to :data:`HUB_HEARTBEAT_TOPIC`,
gets no heartbeat: it must be updated.)

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
:func:`decode` unpacks each frame in one shot (``msgpack.unpackb``: no
streaming unpacker is ever reused after an error) with its buffer limited to
the frame's size, strict str map keys, and an ext hook that knows only ext 1
and 2 and bounds their nesting. It then validates the schema of the kind
named in the envelope. Every failure -- oversize frame, bad msgpack, invalid
UTF-8, deep nesting, wrong types, missing keys, unknown kind, foreign major
version -- raises :class:`ProtocolError` with a message saying what was wrong;
callers count it and drop the frame. (A DELTA whose values are all plain
scalars is first offered to msgspec's typed one-shot decoder, which accepts
exactly such frames and yields the same message; whatever it does not accept
takes the path above. Encoding is unaffected: the same bytes either way.)

Libraries: msgpack (the reference implementation) for the general decoder
and the values' ext types; msgspec (a hard dependency) for the hot paths:
typed DELTA decoding and NODE payload encoding, 2-3 times faster than
msgpack with dicts (bench/RESULTS.md).

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
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Annotated, Any, ClassVar, Final, Literal, NamedTuple, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgpack
import msgspec

__all__ = [
    "EXT_DATETIME",
    "EXT_TUPLE",
    "HUB_HEARTBEAT_TOPIC",
    "MAX_ENTRY_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_NOTICE_REASON_BYTES",
    "MAX_POINTS_PER_MESSAGE",
    "MAX_VALUE_DEPTH",
    "NODE_PARENT",
    "NODE_POINT",
    "NODE_REMOVED",
    "NOTICE_TOPIC_PREFIX",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "RESYNC_TOPIC_PREFIX",
    "SCOPE_HEARTBEAT_PREFIX",
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
    "Limits",
    "Message",
    "MsgKind",
    "NodeEncoder",
    "NodeUpdate",
    "PointEntry",
    "ProtocolError",
    "SnapshotChunk",
    "SnapshotEnd",
    "SnapshotRequest",
    "State",
    "debounced_entry",
    "decode",
    "decode_hub_message",
    "decode_node_payload",
    "encode",
    "encode_hub_heartbeat",
    "encode_node",
    "encode_snapshot_chunk",
    "is_heartbeat_topic",
    "node_payload",
    "notice_prefix",
    "notice_topic",
    "parse_notice",
    "point_debounce_map",
    "salvage_request_id",
    "scope_heartbeat_topic",
    "snapshot_item",
]

PROTOCOL_MAJOR: Final = 1
PROTOCOL_MINOR: Final = 2  # 1.2: the operator layer (NODE keys, operator commands; issue 13)

HUB_HEARTBEAT_TOPIC: Final = b"\x00hub/heartbeat"
# Per-scope heartbeats (a prefix-limited subscriber grant): prefix + grant name + NUL.
SCOPE_HEARTBEAT_PREFIX: Final = b"\x00hub/beat/"
# The hub tells an agent why it refuses its messages: prefix + agent name + NUL + reason.
NOTICE_TOPIC_PREFIX: Final = b"\x00notice/"
MAX_NOTICE_REASON_BYTES: Final = 200
RESYNC_TOPIC_PREFIX: Final = b"\x00resync/"

EXT_DATETIME: Final = 1
EXT_TUPLE: Final = 2

MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
MAX_POINTS_PER_MESSAGE: Final = 5000
MAX_ENTRY_BYTES: Final = 64 * 1024
MAX_VALUE_DEPTH: Final = 16
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
    HELLO = 10
    SNAPSHOT_REQUEST = 11
    COMMAND = 12
    INFO = 20
    SNAPSHOT_CHUNK = 21
    SNAPSHOT_END = 22
    ERROR = 23
    COMMAND_RESULT = 24


# The ``kind`` of a NODE payload (plain strings on the wire).
NODE_POINT: Final = "point"
NODE_PARENT: Final = "parent"
NODE_REMOVED: Final = "removed"
_NODE_KINDS: Final = frozenset({NODE_POINT, NODE_PARENT, NODE_REMOVED})


class PointEntry(NamedTuple):
    """One polled point, as agents send it."""

    path: str
    value: Any
    alertcode: int
    alertstr: str
    polled_at_s: float
    dt_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Envelope:
    sender: str
    epoch: int
    seq: int
    sent_ns: int
    minor: int = PROTOCOL_MINOR


@dataclass(frozen=True, slots=True, kw_only=True)
class State(_Envelope):
    """An agent's full tree (or one part of it)."""

    kind: ClassVar[MsgKind] = MsgKind.STATE
    mount: str
    heartbeat_s: float
    points: list[PointEntry]
    parents: list[str] = field(default_factory=list)
    part: int = 0
    parts: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Delta(_Envelope):
    """Points polled since the agent's last flush."""

    kind: ClassVar[MsgKind] = MsgKind.DELTA
    points: list[PointEntry]


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(_Envelope):
    """The agent is alive and has nothing else to say."""

    kind: ClassVar[MsgKind] = MsgKind.HEARTBEAT
    mount: str
    heartbeat_s: float
    point_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye(_Envelope):
    """The agent is stopping cleanly."""

    kind: ClassVar[MsgKind] = MsgKind.BYE


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(_Envelope):
    """A client asks the hub for its endpoints and settings."""

    kind: ClassVar[MsgKind] = MsgKind.HELLO
    request_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotRequest(_Envelope):
    """A client asks for every node whose path starts with ``prefix``."""

    kind: ClassVar[MsgKind] = MsgKind.SNAPSHOT_REQUEST
    request_id: int
    prefix: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Command(_Envelope):
    """A client asks the hub to do something (see the commands table)."""

    kind: ClassVar[MsgKind] = MsgKind.COMMAND
    request_id: int
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    user: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Info(_Envelope):
    """The hub's answer to HELLO."""

    kind: ClassVar[MsgKind] = MsgKind.INFO
    request_id: int
    endpoints: dict[str, str]
    heartbeat_s: float
    version: str
    # The heartbeat topic of the asking key's read scope (minor >= 1; None: HUB_HEARTBEAT_TOPIC).
    heartbeat_topic: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotChunk(_Envelope):
    """Part of a snapshot: ``(path, node payload map)`` pairs."""

    kind: ClassVar[MsgKind] = MsgKind.SNAPSHOT_CHUNK
    request_id: int
    nodes: list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotEnd(_Envelope):
    """The last message of a snapshot."""

    kind: ClassVar[MsgKind] = MsgKind.SNAPSHOT_END
    request_id: int
    seq_at: int
    count: int
    published: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(_Envelope):
    """The hub refuses a request."""

    kind: ClassVar[MsgKind] = MsgKind.ERROR
    request_id: int
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResult(_Envelope):
    """The hub's answer to a COMMAND: done (``ok``) or refused, and why."""

    kind: ClassVar[MsgKind] = MsgKind.COMMAND_RESULT
    request_id: int
    ok: bool
    message: str
    result: Any = None


Message: TypeAlias = (
    State
    | Delta
    | Heartbeat
    | Bye
    | Hello
    | SnapshotRequest
    | Command
    | Info
    | SnapshotChunk
    | SnapshotEnd
    | Error
    | CommandResult
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


def debounced_entry(entry: PointEntry, debounce: dict[str, Any]) -> DebouncedEntry:
    """``entry`` with the debounce map (:func:`point_debounce_map`) as its 7th item on the wire."""
    made = DebouncedEntry(*entry)
    made.debounce = debounce
    return made


def pack_entry(entry: PointEntry) -> bytes:
    """Pack one point entry; never raises for any value.

    Fast path: msgpack packs it as it is. Otherwise (an int beyond 64 bits, a
    lone surrogate, nesting too deep...) the value is sanitised. An entry still
    larger than :data:`MAX_ENTRY_BYTES` gets a truncated text value.
    """
    value = entry.value
    if isinstance(value, _CONTAINERS) and not _container_ok(value):
        value = _sanitise(value)
    items = [entry.path, value, entry.alertcode, entry.alertstr, entry.polled_at_s, entry.dt_s]
    if type(entry) is DebouncedEntry:
        items.append(entry.debounce)
    try:
        packed = _pack_strict(items)
    except (TypeError, ValueError, OverflowError):
        items[1] = _sanitise(value)
        packed = _pack_strict(items)
    if len(packed) > MAX_ENTRY_BYTES:
        # Cut in UTF-8 bytes, not characters: 32 Ki emoji would still be 128 KiB.
        keep = MAX_ENTRY_BYTES // 2
        items[1] = _safe_str(items[1]).encode()[:keep].decode("utf-8", "ignore") + _TRUNCATION_MARK
        packed = _pack_strict(items)
    return packed


def _array(packed_items: list[bytes]) -> bytes:
    """A msgpack array from already-packed items (arrays are header + items)."""
    count = len(packed_items)
    if count < 16:
        header = bytes((0x90 | count,))
    elif count < 1 << 16:
        header = b"\xdc" + count.to_bytes(2, "big")
    else:
        header = b"\xdd" + count.to_bytes(4, "big")
    return header + b"".join(packed_items)


class _Raw:
    """Bytes that are already msgpack, to splice into a body."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _pack_body(body: dict[str, Any]) -> bytes:
    """Pack a body map whose values may be :class:`_Raw` (spliced as they are)."""
    count = len(body)
    parts = [bytes((0x80 | count,))] if count < 16 else [b"\xde" + count.to_bytes(2, "big")]
    for key, value in body.items():
        parts.append(_pack_strict(key))
        parts.append(value.data if isinstance(value, _Raw) else _pack_strict(value))
    return b"".join(parts)


def _body_of(msg: Message) -> dict[str, Any]:
    if isinstance(msg, State):
        return {
            "mount": msg.mount,
            "heartbeat_s": msg.heartbeat_s,
            "points": _Raw(_array([pack_entry(entry) for entry in msg.points])),
            "parents": msg.parents,
            "part": msg.part,
            "parts": msg.parts,
        }
    if isinstance(msg, Delta):
        return {"points": _Raw(_array([pack_entry(entry) for entry in msg.points]))}
    if isinstance(msg, Heartbeat):
        return {"mount": msg.mount, "heartbeat_s": msg.heartbeat_s, "points": msg.point_count}
    if isinstance(msg, Bye):
        return {}
    if isinstance(msg, Hello):
        return {"request_id": msg.request_id}
    if isinstance(msg, SnapshotRequest):
        return {"request_id": msg.request_id, "prefix": msg.prefix}
    if isinstance(msg, Command):
        return {"request_id": msg.request_id, "command": msg.command, "args": msg.args, "user": msg.user}
    if isinstance(msg, Info):
        return {
            "request_id": msg.request_id,
            "endpoints": msg.endpoints,
            "heartbeat_s": msg.heartbeat_s,
            "version": msg.version,
            **({} if msg.heartbeat_topic is None else {"heartbeat_topic": msg.heartbeat_topic}),
        }
    if isinstance(msg, SnapshotChunk):
        items = [snapshot_item(path, _pack_strict(payload)) for path, payload in msg.nodes]
        return {"request_id": msg.request_id, "nodes": _Raw(_array(items))}
    if isinstance(msg, SnapshotEnd):
        return {"request_id": msg.request_id, "seq": msg.seq_at, "count": msg.count, "published": msg.published}
    if isinstance(msg, Error):
        return {"request_id": msg.request_id, "message": msg.message}
    if isinstance(msg, CommandResult):
        return {
            "request_id": msg.request_id,
            "ok": msg.ok,
            "message": msg.message,
            "result": _Raw(_pack_value(msg.result)),
        }
    raise TypeError(f"not a gsmon message: {msg!r}")


def _envelope(minor: int, kind: MsgKind, sender: str, epoch: int, seq: int, sent_ns: int, body: bytes) -> bytes:
    head = _pack_strict([PROTOCOL_MAJOR, minor, int(kind), sender, epoch, seq, sent_ns])
    # The envelope is an 8-item array: reuse the 7-item header's bytes and
    # change its array marker (fixarray 0x97 -> 0x98), then append the body.
    return b"\x98" + head[1:] + body


def encode(msg: Message) -> bytes:
    """Pack a message into one envelope frame."""
    return _envelope(msg.minor, msg.kind, msg.sender, msg.epoch, msg.seq, msg.sent_ns, _pack_body(_body_of(msg)))


def snapshot_item(path: str, payload: bytes) -> bytes:
    """One ``[path, payload]`` item of SNAPSHOT_CHUNK ``nodes``, from a NODE payload already packed
    (the hub keeps each node's payload bytes; they are spliced in, never unpacked and repacked)."""
    encoded = path.encode()
    size = len(encoded)
    if size < 32:
        head = bytes((0xA0 | size,))
    elif size < 256:
        head = b"\xd9" + bytes((size,))
    else:
        head = b"\xda" + size.to_bytes(2, "big")
    return b"\x92" + head + encoded + payload


def encode_snapshot_chunk(
    *, sender: str, epoch: int, seq: int, sent_ns: int, request_id: int, items: list[bytes], minor: int = PROTOCOL_MINOR
) -> bytes:
    """A SNAPSHOT_CHUNK from :func:`snapshot_item` items: the same bytes :func:`encode` gives for those nodes."""
    body = _pack_body({"request_id": request_id, "nodes": _Raw(_array(items))})
    return _envelope(minor, MsgKind.SNAPSHOT_CHUNK, sender, epoch, seq, sent_ns, body)


# ----------------------------------------------------------------------------
# Hub -> subscriber payloads
# ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeUpdate:
    """A NODE message as a subscriber sees it."""

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
# A payload without any 1.1/1.2 key has this many keys (v, epoch, seq, kind, alert, alertstr, stale, value,
# agent, polled_at, received_at, dt): only a longer one is searched for operator keys.
_PLAIN_NODE_KEYS: Final = 12


def _operator_keys(payload: dict[str, Any]) -> dict[str, Any] | None:
    if len(payload) <= _PLAIN_NODE_KEYS:
        return None
    found: dict[str, Any] = {key: payload[key] for key in NODE_OPERATOR_KEYS if key in payload}
    return found or None


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
    """Pack a NODE payload map (``extra``: the 1.2 operator keys, see NODE payload)."""
    payload = {
        "v": PROTOCOL_MAJOR,
        "epoch": epoch,
        "seq": seq,
        "kind": kind,
        "alert": alertcode,
        "alertstr": alertstr,
        "stale": stale,
        "value": value,
        "agent": agent,
        "polled_at": polled_at_s,
        "received_at": received_at_s,
        "dt": dt_s,
    }
    # 1.1 keys, only when they say something: most payloads stay as small as 1.0's.
    if reported_alert is not None:
        payload["reported_alert"] = reported_alert
    if liveness_unknown:
        payload["liveness_unknown"] = True
    if extra:
        payload.update(extra)
    if isinstance(value, list | tuple | dict) and not _container_ok(value):
        payload["value"] = _sanitise(value)
    try:
        return _pack_strict(payload)
    except (TypeError, ValueError, OverflowError):
        payload["value"] = _sanitise(value)
        return _pack_strict(payload)


#: NODE keys of minor 2 (the operator layer), in wire order; each is left out at its default (0 or nil).
NODE_EXTRA_KEYS: Final = (
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

# Value types that pack as they are (never sanitised), and that msgpack and
# msgspec pack to the same bytes: the fast paths' values.
_PLAIN_TYPES: Final = frozenset({type(None), bool, int, float, str, bytes})


class _NodeStruct(msgspec.Struct, gc=False, omit_defaults=True):
    """A NODE payload for msgspec: fields in wire order, so it packs as the
    same map as node_payload's dict (checked in tests/unit/test_hub_fast_paths.py)."""

    v: int
    epoch: int
    seq: int
    kind: str
    alert: int
    alertstr: str
    stale: bool
    value: Any
    agent: str | None
    polled_at: float | None
    received_at: float | None
    dt: float | None
    reported_alert: int | None = None  # the defaults are left out, as node_payload leaves them out
    liveness_unknown: bool = False


class NodeEncoder:
    """NODE payloads of one hub, byte for byte what :func:`node_payload` packs.

    The hub packs one payload per published update, so this skips what
    :func:`node_payload` spends on generality: keyword arguments, a new
    msgpack packer per call, the container checks for plain values; and it
    packs with msgspec (a struct instead of a dict: 0.65 against 1.5 us).
    Anything but a plain value (containers, datetimes, subclasses, values
    that fail to pack) goes through :func:`node_payload` itself. Not
    thread-safe: one per hub loop.
    """

    __slots__ = ("_encode", "epoch")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch  # the hub's, in every payload
        self._encode = msgspec.msgpack.Encoder().encode

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
        if type(value) in _PLAIN_TYPES:
            try:
                if not extra:  # the operator keys take node_payload's dict (below)
                    return self._encode(
                        _NodeStruct(
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
                            reported_alert,
                            liveness_unknown,
                        )
                    )
            except (TypeError, ValueError, OverflowError):
                pass  # an int beyond 64 bits, a lone surrogate...: node_payload sanitises it
        return node_payload(
            epoch=self.epoch,
            seq=seq,
            kind=NODE_POINT,
            alertcode=alertcode,
            alertstr=alertstr,
            stale=stale,
            value=value,
            agent=agent,
            polled_at_s=polled_at_s,
            received_at_s=received_at_s,
            dt_s=dt_s,
            reported_alert=reported_alert,
            liveness_unknown=liveness_unknown,
            extra=extra,
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
        return self._other(seq, NODE_PARENT, alertcode, alertstr, stale, liveness_unknown, extra)

    def removed(self, seq: int) -> bytes:
        """A ``removed`` payload."""
        return self._other(seq, NODE_REMOVED, 0, "", False, False)

    def _other(
        self,
        seq: int,
        kind: str,
        alertcode: int,
        alertstr: str,
        stale: bool,
        unknown: bool,
        extra: dict[str, Any] | None = None,
    ) -> bytes:
        if extra:
            return node_payload(
                epoch=self.epoch,
                seq=seq,
                kind=kind,
                alertcode=alertcode,
                alertstr=alertstr,
                stale=stale,
                liveness_unknown=unknown,
                extra=extra,
            )
        return self._encode(
            _NodeStruct(
                PROTOCOL_MAJOR,
                self.epoch,
                seq,
                kind,
                alertcode,
                alertstr,
                stale,
                None,
                None,
                None,
                None,
                None,
                None,
                unknown,
            )
        )


def encode_node(update: NodeUpdate) -> tuple[bytes, bytes]:
    """The two frames ``[topic, payload]`` of a NODE message."""
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
    )
    return update.path.encode(), payload


def encode_hub_heartbeat(beat: HubHeartbeat, topic: bytes = HUB_HEARTBEAT_TOPIC) -> tuple[bytes, bytes]:
    """The two frames ``[topic, payload]`` of a HUB_HEARTBEAT message (on ``topic``: the full or a scope's)."""
    payload = _pack_strict(
        {
            "v": PROTOCOL_MAJOR,
            "epoch": beat.epoch,
            "seq": beat.seq,
            "interval_s": beat.interval_s,
            "sent_at": beat.sent_at_s,
            "published": beat.published,
            **({} if beat.complete else {"complete": False}),
        }
    )
    return topic, payload


def scope_heartbeat_topic(grant_name: str) -> bytes:
    """The heartbeat topic of a prefix-limited subscriber grant (no scope's topic is a byte-prefix of another's)."""
    return SCOPE_HEARTBEAT_PREFIX + grant_name.encode() + b"\x00"


def is_heartbeat_topic(topic: bytes) -> bool:
    """Whether ``topic`` is a hub heartbeat topic (the full one or a scope's)."""
    return topic == HUB_HEARTBEAT_TOPIC or (topic.startswith(SCOPE_HEARTBEAT_PREFIX) and topic.endswith(b"\x00"))


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


def _ext_hook_at(depth: int) -> Any:
    def hook(code: int, data: bytes) -> Any:
        if code == EXT_DATETIME:
            return _parse_datetime(data)
        if code == EXT_TUPLE:
            if depth >= _MAX_EXT_DEPTH:
                raise ValueError("tuples nested too deep")
            items = msgpack.unpackb(
                data,
                raw=False,
                strict_map_key=True,
                timestamp=3,
                ext_hook=_ext_hook_at(depth + 1),
            )
            if not isinstance(items, list):
                raise ValueError("tuple ext does not hold an array")
            return tuple(items)
        raise ValueError(f"unknown msgpack ext type {code}")

    return hook


_EXT_HOOK: Final = _ext_hook_at(0)


# isinstance() with a tuple: an inline `A | B` builds a union object at every
# call, which costs more than the test itself on the per-message paths.
_BUFFERS: Final = (bytes, bytearray, memoryview)
_CONTAINERS: Final = (list, tuple, dict)
_NUMBERS: Final = (int, float)


def _unpack(data: bytes, max_bytes: int) -> Any:
    if not isinstance(data, _BUFFERS):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    size = len(data)
    if size > max_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit of {max_bytes}")
    if size == 0:
        raise ProtocolError("empty frame")
    try:
        # One shot (its array/map/str limits derive from the frame size), str
        # map keys only: see the module docstring and msgpack's advisories
        # (never reuse an Unpacker after an error).
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            timestamp=3,
            ext_hook=_EXT_HOOK,
        )
    except Exception as error:  # msgpack raises many types, see its docs
        detail = str(error) or "malformed data"
        raise ProtocolError(f"not valid msgpack: {type(error).__name__}: {detail}") from error


def _heartbeat_topic(body: dict[str, Any]) -> bytes | None:
    topic = body.get("heartbeat_topic")
    if topic is None:
        return None
    _need(isinstance(topic, bytes) and is_heartbeat_topic(topic), "body.heartbeat_topic must be a heartbeat topic")
    assert isinstance(topic, bytes)
    return topic


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ProtocolError(what)


# The checks below run for every message the hub receives: each error text is
# only formatted once its check has failed.


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"body.{key} must be a str, got {type(value).__name__}")
    return value


def _uint(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise ProtocolError(f"body.{key} must be an unsigned int, got {value!r:.40}")
    return value


def _seconds(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    if not (isinstance(value, _NUMBERS) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise ProtocolError(f"body.{key} must be a positive number of seconds, got {value!r:.40}")
    return float(value)


def _list(body: dict[str, Any], key: str, limit: int) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list):
        raise ProtocolError(f"body.{key} must be an array, got {type(value).__name__}")
    if len(value) > limit:
        raise ProtocolError(f"body.{key} has {len(value)} items, more than the limit of {limit}")
    return value


def _points(body: dict[str, Any], limits: Limits) -> list[PointEntry]:
    entries = _list(body, "points", limits.max_points_per_message)
    points: list[PointEntry] = []
    append = points.append
    for item in entries:
        # Fast path (the hub decodes every point of every agent here): an
        # entry as gsmon agents send it, 6 items of the exact types, becomes a
        # PointEntry without its Python-level __new__. msgpack only produces
        # exact built-in types (and datetime/tuple from ext), so `type(x) is
        # int` is the general path's "int but not bool", and so on.
        if type(item) is list and len(item) == 6:
            path, _, code, label, polled_at, period = item
            if (
                type(path) is str
                and type(code) is int
                and type(label) is str
                and type(polled_at) is float
                and (period is None or type(period) is float)
            ):
                append(_new_tuple(PointEntry, item))
                continue
        append(_point(len(points), item))
    return points


_new_tuple: Final = tuple.__new__


def _point(index: int, item: Any) -> PointEntry:
    """Validate one point entry (any valid form: int times, trailing items)."""
    if not (isinstance(item, list) and len(item) >= 6):
        raise ProtocolError(f"body.points[{index}] must be an array of 6 items")
    path, value, code, label, polled_at, period = item[:6]
    if not (
        isinstance(path, str)
        and isinstance(code, int)
        and not isinstance(code, bool)
        and isinstance(label, str)
        and isinstance(polled_at, int | float)
        and not isinstance(polled_at, bool)
        and (period is None or (isinstance(period, int | float) and not isinstance(period, bool)))
    ):
        raise ProtocolError(
            f"body.points[{index}] must be [path str, value, alertcode int, alertstr str, "
            f"polled_at_s number, dt_s number|nil], got types "
            f"{[type(part).__name__ for part in item[:6]]}"
        )
    entry = PointEntry(path, value, code, label, float(polled_at), None if period is None else float(period))
    if len(item) > 6 and type(item[6]) is dict:
        return debounced_entry(entry, _debounce_map(index, item[6]))
    return entry


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
    return point_debounce_map(raw, raw_str, held, flaps)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_KINDS: Final = {kind.value: kind for kind in MsgKind}

# A DELTA from a gsmon agent starts with fixarray(8), major 1, any minor below 128 (one byte), kind 2.
_DELTA_HEAD: Final = bytes((0x98, PROTOCOL_MAJOR))
_DELTA_KIND: Final = int(MsgKind.DELTA)

_UInt: TypeAlias = Annotated[int, msgspec.Meta(ge=0)]


class _DeltaBody(msgspec.Struct, gc=False):
    points: list[PointEntry]  # decoded straight into PointEntry, by its annotations


class _DeltaEnvelope(msgspec.Struct, array_like=True, gc=False):
    major: Literal[1]
    minor: _UInt
    kind: Literal[2]
    sender: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    epoch: _UInt
    seq: _UInt
    sent_ns: int
    body: _DeltaBody


_decode_delta_envelope = msgspec.msgpack.Decoder(_DeltaEnvelope).decode


def _fast_delta(data: bytes, limits: Limits) -> Delta | None:
    """The usual DELTA decoded by msgspec's typed decoder, or None to take the general path.

    Only a DELTA whose every value is a plain scalar is answered here: for
    those, msgspec's checks (exact types, UTF-8, ints into float fields,
    extra envelope items and unknown body keys ignored, the last of duplicate
    keys) give what the general path gives. Anything msgspec refuses, and
    every container or ext value, goes the general way, which decides and
    words the error (tests/unit/test_hub_fast_paths.py compares the two).
    """
    try:
        envelope = _decode_delta_envelope(data)
    except Exception:  # DecodeError, ValidationError, UnicodeDecodeError...: let the general path say what
        return None
    points = envelope.body.points
    if len(points) > limits.max_points_per_message:
        return None
    plain = _PLAIN_TYPES
    for entry in points:
        if type(entry[1]) not in plain:
            return None
    return Delta(
        sender=envelope.sender,
        epoch=envelope.epoch,
        seq=envelope.seq,
        sent_ns=envelope.sent_ns,
        minor=envelope.minor,
        points=points,
    )


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Decode one envelope frame; raise :class:`ProtocolError` on anything wrong."""
    if (
        type(data) is bytes
        and data[:2] == _DELTA_HEAD
        and len(data) > 3
        and data[2] < 0x80
        and data[3] == _DELTA_KIND
        and len(data) <= limits.max_frame_bytes
        and (delta := _fast_delta(data, limits)) is not None
    ):
        return delta  # the hub's most frequent message, about half the time (bench/RESULTS.md)
    envelope = _unpack(data, limits.max_frame_bytes)
    if not isinstance(envelope, list) or len(envelope) < 8:
        raise ProtocolError("an envelope must be an array of 8 items")
    major, minor, kind_code, sender, epoch, seq, sent_ns, body = envelope[:8]
    if type(major) is not int or major != PROTOCOL_MAJOR:
        raise ProtocolError(
            f"protocol major version {major!r:.20} is not supported (this side speaks {PROTOCOL_MAJOR})"
        )
    header = {"minor": minor, "sender": sender, "epoch": epoch, "seq": seq, "sent_ns": sent_ns}
    # One combined test for the usual, valid header (msgpack only makes exact
    # built-in types, so `type(x) is int` means "int but not bool"); the
    # detailed checks below run, in their order, only to say what is wrong.
    if not (
        type(minor) is int
        and type(epoch) is int
        and type(seq) is int
        and type(sent_ns) is int
        and minor >= 0
        and epoch >= 0
        and seq >= 0
        and type(sender) is str
        and 0 < len(sender) <= 256
        and type(body) is dict
    ):
        for key in ("minor", "epoch", "seq"):
            value = header[key]
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ProtocolError(f"envelope {key} must be an unsigned int, got {value!r:.40}")
        if not (isinstance(sent_ns, int) and not isinstance(sent_ns, bool)):
            raise ProtocolError(f"envelope sent_ns must be an int, got {sent_ns!r:.40}")
        if not isinstance(sender, str) or not sender or len(sender) > 256:
            raise ProtocolError(f"envelope sender must be a non-empty str, got {sender!r:.40}")
        if not isinstance(body, dict):
            raise ProtocolError(f"envelope body must be a map, got {type(body).__name__}")
    # A dict lookup rather than MsgKind(...): the same answer, a fraction of
    # the time. The type test first: MsgKind(True) and MsgKind(1.0) would both be STATE.
    kind = _KINDS.get(kind_code) if type(kind_code) is int else None
    if kind is None:
        raise ProtocolError(f"unknown message kind {kind_code!r:.20}")

    if kind is MsgKind.STATE:
        parents = _list(body, "parents", limits.max_parents_per_message) if "parents" in body else []
        for index, parent in enumerate(parents):
            if not isinstance(parent, str):
                raise ProtocolError(f"body.parents[{index}] must be a str")
        part = _uint(body, "part") if "part" in body else 0
        parts = _uint(body, "parts") if "parts" in body else 1
        _need(part < parts, f"body.part {part} must be below body.parts {parts}")
        return State(
            **header,
            mount=_str(body, "mount"),
            heartbeat_s=_seconds(body, "heartbeat_s"),
            points=_points(body, limits),
            parents=parents,
            part=part,
            parts=parts,
        )
    if kind is MsgKind.DELTA:
        return Delta(**header, points=_points(body, limits))
    if kind is MsgKind.HEARTBEAT:
        return Heartbeat(
            **header,
            mount=_str(body, "mount"),
            heartbeat_s=_seconds(body, "heartbeat_s"),
            point_count=_uint(body, "points"),
        )
    if kind is MsgKind.BYE:
        return Bye(**header)
    if kind is MsgKind.HELLO:
        return Hello(**header, request_id=_uint(body, "request_id"))
    if kind is MsgKind.SNAPSHOT_REQUEST:
        return SnapshotRequest(**header, request_id=_uint(body, "request_id"), prefix=_str(body, "prefix"))
    if kind is MsgKind.COMMAND:
        args = body.get("args", {})
        _need(isinstance(args, dict), "body.args must be a map")
        user = body.get("user")
        _need(user is None or isinstance(user, str), "body.user must be a str or nil")
        return Command(
            **header, request_id=_uint(body, "request_id"), command=_str(body, "command"), args=args, user=user
        )
    if kind is MsgKind.COMMAND_RESULT:
        ok = body.get("ok")
        _need(isinstance(ok, bool), "body.ok must be a bool")
        return CommandResult(
            **header,
            request_id=_uint(body, "request_id"),
            ok=bool(ok),
            message=_str(body, "message"),
            result=body.get("result"),
        )
    if kind is MsgKind.INFO:
        endpoints = body.get("endpoints")
        _need(
            isinstance(endpoints, dict)
            and all(isinstance(v, str) for v in endpoints.values())
            and all(isinstance(endpoints.get(k), str) for k in ("agents", "subscribers", "query")),
            "body.endpoints must map agents, subscribers and query to endpoint strings",
        )
        assert isinstance(endpoints, dict)
        return Info(
            **header,
            request_id=_uint(body, "request_id"),
            endpoints=endpoints,
            heartbeat_s=_seconds(body, "heartbeat_s"),
            version=_str(body, "version"),
            heartbeat_topic=_heartbeat_topic(body),
        )
    if kind is MsgKind.SNAPSHOT_CHUNK:
        raw_nodes = _list(body, "nodes", 1 << 24)
        nodes = []
        for index, item in enumerate(raw_nodes):
            if not (
                isinstance(item, list) and len(item) >= 2 and isinstance(item[0], str) and isinstance(item[1], dict)
            ):
                raise ProtocolError(f"body.nodes[{index}] must be [path str, payload map]")
            nodes.append((item[0], item[1]))
        return SnapshotChunk(**header, request_id=_uint(body, "request_id"), nodes=nodes)
    if kind is MsgKind.SNAPSHOT_END:
        return SnapshotEnd(
            **header,
            request_id=_uint(body, "request_id"),
            seq_at=_uint(body, "seq"),
            count=_uint(body, "count"),
            published=_uint(body, "published"),
        )
    assert kind is MsgKind.ERROR
    return Error(**header, request_id=_uint(body, "request_id"), message=_str(body, "message"))


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


def decode_node_payload(path: str, payload: Any) -> NodeUpdate:
    """Validate a NODE payload map (already unpacked) for ``path``."""
    if type(payload) is dict:
        # Fast path (a snapshot of 100,000 nodes comes through here): a payload
        # as the hub packs it, every field of the exact type; anything else
        # gets the checks below, which say what is wrong.
        get = payload.get
        kind, epoch, seq, code = get("kind"), get("epoch"), get("seq"), get("alert")
        label, stale, polled, received, period = (
            get("alertstr"),
            get("stale"),
            get("polled_at"),
            get("received_at"),
            get("dt"),
        )
        reported, unknown = get("reported_alert"), get("liveness_unknown", False)
        if (
            type(kind) is str
            and kind in _NODE_KINDS
            and type(epoch) is int
            and type(seq) is int
            and type(code) is int
            and type(label) is str
            and type(stale) is bool
            and (polled is None or type(polled) is float)
            and (received is None or type(received) is float)
            and (period is None or type(period) is float)
            and (reported is None or type(reported) is int)
            and type(unknown) is bool
        ):
            agent = get("agent")
            agent = agent if type(agent) is str else None
            return NodeUpdate(
                path,
                epoch,
                seq,
                kind,
                code,
                label,
                stale,
                get("value"),
                agent,
                polled,
                received,
                period,
                reported,
                unknown,
                _operator_keys(payload),
            )
    if not isinstance(payload, dict):
        raise ProtocolError(f"node payload for {path!r} must be a map")
    kind = payload.get("kind")
    # A str first: `in` on a frozenset would raise TypeError for a list or map.
    if not isinstance(kind, str) or kind not in _NODE_KINDS:
        raise ProtocolError(f"node payload kind must be one of {sorted(_NODE_KINDS)}, got {kind!r:.20}")
    epoch, seq, code = payload.get("epoch"), payload.get("seq"), payload.get("alert")
    label, stale = payload.get("alertstr"), payload.get("stale")
    for name, value in (("epoch", epoch), ("seq", seq), ("alert", code)):
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ProtocolError(f"node payload {name} must be an int, got {value!r:.40}")
    if not isinstance(label, str) or not isinstance(stale, bool):
        raise ProtocolError("node payload alertstr must be a str and stale a bool")
    agent = payload.get("agent")
    times = [payload.get("polled_at"), payload.get("received_at"), payload.get("dt")]
    for value in times:
        if value is not None and not (isinstance(value, _NUMBERS) and not isinstance(value, bool)):
            raise ProtocolError(f"node payload times must be numbers or nil, got {value!r:.40}")
    # 1.1 keys: absent (a 1.0 hub) means "not known" and "vouched for".
    reported, unknown = payload.get("reported_alert"), payload.get("liveness_unknown", False)
    if reported is not None and not (isinstance(reported, int) and not isinstance(reported, bool)):
        raise ProtocolError(f"node payload reported_alert must be an int or nil, got {reported!r:.40}")
    if not isinstance(unknown, bool):
        raise ProtocolError(f"node payload liveness_unknown must be a bool, got {unknown!r:.40}")
    assert isinstance(epoch, int)
    assert isinstance(seq, int)
    assert isinstance(code, int)
    polled_at, received_at, period = (None if value is None else float(value) for value in times)
    return NodeUpdate(
        path,
        epoch,
        seq,
        str(kind),
        code,
        label,
        stale,
        payload.get("value"),
        agent if isinstance(agent, str) else None,
        polled_at,
        received_at,
        period,
        reported,
        unknown,
        _operator_keys(payload),
    )


def decode_hub_message(topic: bytes, payload: bytes, max_bytes: int = MAX_FRAME_BYTES) -> NodeUpdate | HubHeartbeat:
    """Decode a ``[topic, payload]`` message from the hub's subscriber socket."""
    data = _unpack(payload, max_bytes)
    if is_heartbeat_topic(topic):
        if not isinstance(data, dict):
            raise ProtocolError("hub heartbeat payload must be a map")
        published = data.get("published")
        if not (
            isinstance(published, dict)
            and all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in published.items())
        ):
            raise ProtocolError("hub heartbeat published must map str prefixes to counts")
        epoch, seq = data.get("epoch"), data.get("seq")
        interval, sent_at = data.get("interval_s"), data.get("sent_at")
        if not (type(epoch) is int and type(seq) is int):
            raise ProtocolError("hub heartbeat epoch and seq must be ints")
        # interval_s sets the subscriber's liveness deadline: 0 or NaN would make the hub look lost forever.
        if not (
            isinstance(interval, int | float)
            and not isinstance(interval, bool)
            and 0 < interval < math.inf
            and isinstance(sent_at, int | float)
            and not isinstance(sent_at, bool)
        ):
            raise ProtocolError("hub heartbeat interval_s must be a positive number and sent_at a number")
        complete = data.get("complete", True)
        return HubHeartbeat(epoch, seq, float(interval), float(sent_at), published, complete is not False)
    try:
        path = topic.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(f"topic is not UTF-8: {error}") from error
    return decode_node_payload(path, data)
