"""The bridge's aiohttp layer: routes, the WebSocket stream, sessions and the loop that feeds the core.

aiohttp (HTTP server, WebSocket and static files in one well-kept package on
asyncio; the pyzmq asyncio socket of the COMMAND client runs on the same loop)
moves bytes; everything decided about the tree is in
:class:`~gsmon.common.web.core.BridgeCore`, everything about who may do what
in :mod:`gsmon.common.web.auth`. One loop (:meth:`WebBridge.pump`) every
:data:`FLUSH_S`: take what the hub feed brought, give it to the core, send
each WebSocket client what the core returns for it.

Routes (JSON unless said; times ISO 8601 UTC; errors ``{"error": "one line"}``, under /api/ aiohttp's own
too: 404, 405, 413 for a body over 64 KiB)::

    GET  /                          the page (static/index.html); ?prefix=P ?kiosk=1
    GET  /static/...                its scripts, styles and vendored libraries
    GET  /api/v1/status             the status bar's facts
    GET  /api/v1/tree               ?prefix=P&min_level=L: {"prefix", "min_level", "status", "nodes": [node...]}
    GET  /api/v1/node               ?path=P: one node (404 when not in the tree)
    GET  /api/v1/ws                 WebSocket: send {"subscribe": P, "min_level": L}; receive a snapshot,
                                    then deltas and status messages (see gsmon.common.web.core); any other
                                    frame (not JSON, binary, no "subscribe", another key) gets one
                                    {"type": "error", "message"} and leaves the subscription as it was; a
                                    message over 64 KiB closes the socket (1009); another Origin: 403;
                                    at most one snapshot per 0.2 s per socket (of the latest subscription)
    GET  /api/v1/alarms             ?prefix&states=a,b&limit  -> the hub's "alarms" (the page's alarm table;
                                    the same ask of many pages shares one hub call: shared_calls.py)
    GET  /api/v1/shelves            ?prefix                   -> the hub's "shelves"
    GET  /api/v1/journal            ?after_id&prefix&limit&newest=1 -> the hub's "journal"
    GET  /api/v1/history            ?path&from&to&buckets     -> "history" (the recorder, through the hub)
    GET  /api/v1/session            {"user", "role", "csrf", "users_file"} (user null: not logged in)
    POST /api/v1/login              {"user", "password"} -> sets the session cookie
    POST /api/v1/logout             (from this bridge's own origin only, as the login)
    POST /api/v1/ack                {"ids": [int], "comment"?}
    POST /api/v1/unack              {"ids": [int], "comment"?}
    POST /api/v1/shelve             {"prefix", "mode", "duration_s"? | "ends_at"?, "starts_at"?, "comment"}
    POST /api/v1/unshelve           {"id"}
    GET  /metrics                   Prometheus text format (gsmon.common.web.metrics); ?prefix&min_level

Forwarded commands go to the hub as COMMANDs with ``args.via = "web"`` and
``user`` = the logged-in user (reads: the user when there is one); the
hub's COMMAND_RESULT comes back as ``{"ok", "message", "result"}`` with its
epoch-second times rendered ISO 8601 UTC. A refusal keeps the hub's words:
403 ``forbidden``, 400 ``bad-args``, 404 ``not-found``/``unknown-*``, 409
otherwise; 504 when the hub does not answer, 502 when it refuses the
bridge's key.

Writes: no session -> 401; no or wrong ``X-Gsmon-CSRF`` token, another
``Origin``, or a viewer -> 403; never a redirect (see auth.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

from aiohttp import WSMsgType, web

from gsmon.common.failover import HubChoice
from gsmon.common.gc_tuning import GcTuner
from gsmon.common.keys import ClientKeys
from gsmon.common.watch.feed import HubFeed
from gsmon.common.web.auth import (
    COOKIE_NAME,
    CSRF_HEADER,
    LoginThrottle,
    Session,
    SessionSigner,
    Users,
    origin_allowed,
)
from gsmon.common.web.core import BridgeCore
from gsmon.common.web.hub_commands import (
    VIA,
    CommandOutcome,
    HubCommandClient,
    HubCommandError,
    HubNoAnswerError,
)
from gsmon.common.web.main import DEFAULT_MAX_STREAMS
from gsmon.common.web.metrics import CONTENT_TYPE, DEFAULT_MAX_SERIES, BridgeFacts, render_metrics
from gsmon.common.web.nodes import iso_utc, parse_level, wall_of_iso
from gsmon.common.web.shared_calls import SharedCalls

__all__ = ["FLUSH_S", "MAX_QUEUED", "STATIC_DIR", "TIME_KEYS", "WebBridge", "WebSettings", "iso_times"]

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
#: How often the loop takes the feed's news and sends deltas (the page's latency floor).
FLUSH_S: Final = 0.05
#: Messages waiting for one slow WebSocket client; beyond, they are dropped and the client re-snapshots.
MAX_QUEUED: Final = 64
#: One client's snapshots come at most this often: a snapshot of a large tree takes the loop tens of ms,
#: and a client sending subscriptions in a loop must not stop it (those in between: the latest counts).
MIN_SUBSCRIBE_INTERVAL_S: Final = 0.2
MAX_BODY_BYTES: Final = 64 * 1024
#: The WebSocket close code of a stream whose session ended (private reads: a logout, or its expiry); the page
#: then asks for a login instead of reconnecting (app.js SESSION_ENDED).
SESSION_ENDED_CLOSE_CODE: Final = 4401
#: How often streams are checked for an expired session (private reads).
SESSION_CHECK_S: Final = 1.0
#: A stream refused at --max-streams is told to come back after this many seconds (Retry-After).
STREAM_RETRY_S: Final = 5
MAX_COMMENT_CHARS: Final = 500
#: Failed logins per user name before it must wait (argon2 is slow already; this bounds guessing).
MAX_FAILED_LOGINS: Final = 5
FAILED_LOGIN_WINDOW_S: Final = 60.0
#: Keys of the hub's and the recorder's results that hold epoch seconds (rendered ISO 8601 UTC here).
TIME_KEYS: Final = frozenset(
    {
        "t",
        "at",
        "from",
        "to",
        "time",
        "hub_time",
        "since",
        "raised_at",
        "rtn_at",
        "acked_at",
        "cleared_at",
        "starts_at",
        "ends_at",
        "created_at",
        "ended_at",
        "as_of",  # (a central hub's last-known alarms of a silent site, protocol 1.3)
        "level_since",  # (an alarm's: since when its level holds)
        "listed_at",
    }
)
_REASON_STATUS: Final = {"forbidden": 403, "bad-args": 400, "not-found": 404}
_dumps = partial(json.dumps, ensure_ascii=False, allow_nan=False)
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def iso_times(value: Any, key: str | None = None) -> Any:
    """``value`` with every number under a :data:`TIME_KEYS` key as ISO 8601 UTC text (recursively);
    other values made JSON-safe (NaN and the infinities as text, bytes as base64)."""
    from gsmon.common.web.nodes import jsonable

    if isinstance(value, dict):
        return {str(name): iso_times(item, str(name)) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [iso_times(item, key) for item in value]
    if key in TIME_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
        return iso_utc(float(value))
    return jsonable(value)


@dataclass(frozen=True, slots=True)
class WebSettings:
    """How ``gsmon web`` runs (see main.py for the flags)."""

    hub: str
    host: str = "127.0.0.1"
    port: int = 7764
    users_file: Path | None = None
    private_reads: bool = False
    behind_proxy: bool = False
    max_series: int = DEFAULT_MAX_SERIES
    max_streams: int = DEFAULT_MAX_STREAMS
    curve: ClientKeys | None = None
    timeout_s: float = 5.0
    flush_s: float = FLUSH_S


class BadRequestError(ValueError):
    """A request the bridge refuses as malformed (400, the message says why)."""


def _refusal_text(error: web.HTTPException, request: web.Request) -> str:
    """One line for an aiohttp refusal of an API request."""
    if error.status == 413:
        return f"the body is larger than {MAX_BODY_BYTES} bytes"
    if error.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    if error.status == 404:
        return f"no such API: {request.path} (see GET /api/v1/tree, /api/v1/status...)"
    return error.reason


def _expired(now: float, session: Session) -> bool:
    return session.expires_at <= now


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status, dumps=_dumps)


@dataclass(frozen=True, slots=True)
class _SharedRead:
    """A read that pages ask of the hub at once (the alarm listing): its command, args and end user."""

    command: str
    args_json: str
    user: str | None


@dataclass(eq=False)
class _Client:
    """One WebSocket connection: its queue of messages, drained by its own writer task."""

    client_id: int
    socket: web.WebSocketResponse
    #: The session it was opened with (private reads: the stream ends with it, at logout or expiry).
    session: Session | None = None
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUED))
    dropped: int = 0
    #: The latest subscription asked for and not yet answered (prefix, min_level), and its signal.
    wanted: tuple[str, int | None] | None = None
    asked: asyncio.Event = field(default_factory=asyncio.Event)


class WebBridge:
    """The ``gsmon web`` process: the hub feed, the core, the COMMAND client and the aiohttp app."""

    def __init__(
        self,
        settings: WebSettings,
        *,
        feed: HubFeed | None = None,
        commands: HubCommandClient | None = None,
        users: Users | None = None,
        gc_tuner: GcTuner | None = None,
    ) -> None:
        self.settings = settings
        # The garbage collector (gsmon.common.gc_tuning): given by `gsmon web` only, as the collector is the
        # whole process's; started at the first turn with a tree (the hub's snapshot is in).
        self.gc_tuner = gc_tuner
        self.core = BridgeCore(settings.hub)
        self.feed = feed or HubFeed(settings.hub, "", timeout_s=settings.timeout_s, curve=settings.curve)
        # One HubChoice for the feed and the commands: writes go to the hub the tree comes from (1.3).
        shared = getattr(self.feed, "choice", None)  # a stand-in feed (bench/web_bench.py) has none
        self.commands = commands or HubCommandClient(
            shared if isinstance(shared, HubChoice) else settings.hub,
            curve=settings.curve,
            timeout_s=settings.timeout_s,
        )
        self.users = users if users is not None else (Users(settings.users_file) if settings.users_file else None)
        self.signer = SessionSigner()
        #: Every open page asks for the alarm listing when its tree shows an alarm change: one hub call for all.
        self.shared_reads: SharedCalls[_SharedRead, CommandOutcome] = SharedCalls(self._shared_call)
        self._clients: dict[int, _Client] = {}
        self._client_ids = itertools.count(1)
        self.streams_refused = 0  # WebSockets refused at max_streams (the status says it)
        self._failed_logins = LoginThrottle(MAX_FAILED_LOGINS, FAILED_LOGIN_WINDOW_S)
        self.failure: BaseException | None = None
        #: Set when the bridge must end (the hub feed's thread failed): the process exits with status 1.
        self.done = asyncio.Event()
        self.app = self._make_app()

    # ------------------------------------------------------------------
    # The app

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._headers])
        app.router.add_get("/", self.page)
        app.router.add_get("/index.html", self.page)
        app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False, append_version=False)
        app.router.add_get("/api/v1/status", self.status)
        app.router.add_get("/api/v1/tree", self.tree)
        app.router.add_get("/api/v1/node", self.node)
        app.router.add_get("/api/v1/ws", self.stream)
        app.router.add_get("/api/v1/alarms", self.alarms)
        app.router.add_get("/api/v1/shelves", self.shelves)
        app.router.add_get("/api/v1/journal", self.journal)
        app.router.add_get("/api/v1/history", self.history)
        app.router.add_get("/api/v1/session", self.session_info)
        app.router.add_post("/api/v1/login", self.login)
        app.router.add_post("/api/v1/logout", self.logout)
        app.router.add_post("/api/v1/ack", partial(self._write, "ack", _ack_args))
        app.router.add_post("/api/v1/unack", partial(self._write, "unack", _ack_args))
        app.router.add_post("/api/v1/shelve", partial(self._write, "shelve", _shelve_args))
        app.router.add_post("/api/v1/unshelve", partial(self._write, "unshelve", _unshelve_args))
        app.router.add_get("/metrics", self.metrics)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._close_clients)  # before aiohttp waits for open handlers to end
        app.on_cleanup.append(self._stop)
        return app

    @web.middleware
    async def _headers(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except BadRequestError as error:
            response = _error(400, str(error))
        except web.HTTPException as error:
            # aiohttp's own refusals (413 body too large, 404, 405...) are plain text: under /api/ a script
            # reads {"error": ...} like every other answer, and every answer carries the headers below.
            if error.status < 400 or not (request.path.startswith("/api/") or request.path == "/metrics"):
                raise
            if error.content_type == "application/json":  # already ours (a read of private reads: 401)
                response = web.Response(status=error.status, text=error.text, content_type="application/json")
            else:
                response = _error(error.status, _refusal_text(error, request))
            if "Allow" in error.headers:  # (a 405 names the methods there are)
                response.headers["Allow"] = error.headers["Allow"]
        if not response.prepared:
            for name, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            if request.path.startswith("/api/") or request.path == "/" or request.path.endswith(".html"):
                response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def _start(self, app: web.Application) -> None:
        self.feed.start()
        self._pump_task = asyncio.get_running_loop().create_task(self.pump())

    async def _close_clients(self, app: web.Application) -> None:
        for client in list(self._clients.values()):
            await client.socket.close(code=1001, message=b"the bridge is stopping")

    async def _stop(self, app: web.Application) -> None:
        self._pump_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump_task
        await self.commands.close()
        await asyncio.get_running_loop().run_in_executor(None, self.feed.stop)

    # ------------------------------------------------------------------
    # The loop around the core

    def turn(self, now: float) -> None:
        """One turn: the feed's news into the core, the core's messages to the clients."""
        batch = self.feed.take()
        if batch.updates or batch.reset:
            self.core.apply(batch.updates, reset=batch.reset)
            gc_tuner = self.gc_tuner
            if gc_tuner is not None:
                if not gc_tuner.started:
                    gc_tuner.start(len(self.core))
                else:
                    gc_tuner.observe(len(self.core))  # a snapshot refill, new points: frozen too
        if batch.endpoint:
            self.core.endpoint = batch.endpoint  # the status names the hub used now (of a pair, 1.3)
        self.core.set_hub(batch.state, batch.reason, clock_offset_s=batch.clock_offset_s, last_update=batch.last_update)
        for client_id, messages in self.core.flush(now).items():
            client = self._clients.get(client_id)
            if client is None:
                continue
            for message in messages:
                try:
                    client.queue.put_nowait(message)
                except asyncio.QueueFull:
                    # Too slow a reader: forget what waits, skip a seq; its next message shows the gap
                    # and the page asks for a fresh snapshot (memory per client stays bounded).
                    while not client.queue.empty():
                        client.queue.get_nowait()
                    client.dropped += 1
                    self.core.gap(client_id)
                    break

    async def pump(self) -> None:
        checked = 0.0
        while True:
            if self.feed.failure is not None:
                self.failure = self.feed.failure
                log.error("the hub feed stopped: %s", self.failure)
                self.done.set()
                return
            now = time.time()
            self.turn(now)
            if self.settings.private_reads and now - checked >= SESSION_CHECK_S:
                checked = now
                await self._end_streams(partial(_expired, now), "the session expired")
            await asyncio.sleep(self.settings.flush_s)

    # ------------------------------------------------------------------
    # Who is asking

    def _session(self, request: web.Request) -> Session | None:
        if self.users is None:
            return None
        return self.signer.check(request.cookies.get(COOKIE_NAME), self.users, time.time())

    def _reader(self, request: web.Request) -> Session | None:
        """The session of a read; raises 401 when reads are private and there is none."""
        session = self._session(request)
        if self.settings.private_reads and session is None:
            raise web.HTTPUnauthorized(
                text=_dumps({"error": "log in first: this bridge serves reads to logged-in users only"}),
                content_type="application/json",
            )
        return session

    def _own_origin(self, request: web.Request) -> str:
        scheme, host = request.scheme, request.host
        if self.settings.behind_proxy:
            scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip() or scheme
            host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip() or host
        return f"{scheme}://{host}"

    def _secure(self, request: web.Request) -> bool:
        return self._own_origin(request).startswith("https://")

    # ------------------------------------------------------------------
    # Reads

    async def page(self, request: web.Request) -> web.StreamResponse:
        status = 200
        if self.settings.private_reads and self._session(request) is None:
            status = 401  # the same page: it shows the login form, and no data comes without a session
        response = web.FileResponse(STATIC_DIR / "index.html", status=status)
        response.content_type = "text/html"
        return response

    async def status(self, request: web.Request) -> web.Response:
        self._reader(request)
        return web.json_response(self._status(), dumps=_dumps)

    def _status(self) -> dict[str, Any]:
        body = self.core.status(time.time())
        body["clients"] = self.core.clients
        body["streams_refused"] = self.streams_refused
        return body

    async def tree(self, request: web.Request) -> web.Response:
        self._reader(request)
        prefix = request.query.get("prefix", "")
        min_level = _level(request.query.get("min_level"))
        nodes = self.core.tree(prefix, min_level)
        head = _dumps({"prefix": prefix, "min_level": min_level, "status": self._status()})
        return web.Response(text=f'{head[:-1]},"nodes":[{",".join(nodes)}]}}', content_type="application/json")

    async def node(self, request: web.Request) -> web.Response:
        self._reader(request)
        path = request.query.get("path", "")
        text = self.core.node(path)
        if text is None:
            return _error(404, f"no node {path!r} in the tree (is the path right, and the hub followed?)")
        return web.Response(text=text, content_type="application/json")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        session = self._reader(request)
        # A WebSocket is not bound by the same-origin policy, and a session cookie goes with it from any page
        # of the same site (another port of this host): a page of another origin may not follow the tree.
        if "Origin" in request.headers and not origin_allowed(request.headers, self._own_origin(request)):
            return _error(403, "a WebSocket from another site's page is refused")
        if len(self._clients) >= self.settings.max_streams:
            self.streams_refused += 1
            refused = _error(
                503,
                f"{len(self._clients)} live streams already, the bridge's limit (--max-streams): try again later",
                retry_after_s=STREAM_RETRY_S,
            )
            refused.headers["Retry-After"] = str(STREAM_RETRY_S)
            return refused
        socket = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_BODY_BYTES)
        await socket.prepare(request)
        client = _Client(next(self._client_ids), socket, session)
        self._clients[client.client_id] = client
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self._write_to(client))
        subscriber = loop.create_task(self._subscribe_for(client))
        try:
            async for message in socket:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue  # (aiohttp answers pings and closes itself)
                try:
                    prefix, min_level = _subscription(message.data if message.type == WSMsgType.TEXT else None)
                except BadRequestError as error:
                    # One error message per bad message; the subscription in force stays (and so its seq).
                    await client.queue.put(_dumps({"type": "error", "message": str(error)}))
                    continue
                client.wanted = (prefix, min_level)
                client.asked.set()
        finally:
            self.core.unsubscribe(client.client_id)
            self._clients.pop(client.client_id, None)
            for task in (subscriber, writer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return socket

    async def _subscribe_for(self, client: _Client) -> None:
        """Answer ``client``'s subscriptions: at once, then at most one snapshot per MIN_SUBSCRIBE_INTERVAL_S,
        of the latest one asked (the others are overtaken before they are answered)."""
        loop = asyncio.get_running_loop()
        answered_at = -math.inf
        while True:
            await client.asked.wait()
            wait_s = answered_at + MIN_SUBSCRIBE_INTERVAL_S - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            client.asked.clear()
            wanted, client.wanted = client.wanted, None
            if wanted is None:
                continue
            answered_at = loop.time()
            # A (re)subscription: what waits is of the old epoch, the snapshot starts the new one.
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait(self.core.subscribe(client.client_id, *wanted, time.time()))

    async def _write_to(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not client.socket.closed:
                await client.socket.send_str(await client.queue.get())

    async def alarms(self, request: web.Request) -> web.Response:
        session = self._reader(request)
        args: dict[str, Any] = {"prefix": request.query.get("prefix", "")}
        if states := request.query.get("states"):
            args["states"] = [state.strip() for state in states.split(",") if state.strip()]
        if "limit" in request.query:
            args["limit"] = _int(request.query["limit"], "limit")
        return await self._forward("alarms", args, session, shared=True)

    async def shelves(self, request: web.Request) -> web.Response:
        session = self._reader(request)
        args: dict[str, Any] = {}
        if "prefix" in request.query:
            args["prefix"] = request.query["prefix"]
        return await self._forward("shelves", args, session)

    async def journal(self, request: web.Request) -> web.Response:
        session = self._reader(request)
        args: dict[str, Any] = {"after_id": _int(request.query.get("after_id", "0"), "after_id")}
        if "prefix" in request.query:
            args["prefix"] = request.query["prefix"]
        if "limit" in request.query:
            args["limit"] = _int(request.query["limit"], "limit")
        if request.query.get("newest") in ("1", "true"):
            args["newest"] = True  # the latest entries, as the page's journal panel shows them
        return await self._forward("journal", args, session)

    async def history(self, request: web.Request) -> web.Response:
        session = self._reader(request)
        query = request.query
        path = query.get("path", "")
        if not path:
            raise BadRequestError("history needs ?path=A/POINT (and from, to: ISO 8601 times or epoch seconds)")
        args: dict[str, Any] = {"path": path}
        for name in ("from", "to"):
            if name in query:
                args[name] = _time(query[name], name)
        if "buckets" in query:
            args["buckets"] = _int(query["buckets"], "buckets")
        if "limit" in query:
            args["limit"] = _int(query["limit"], "limit")
        return await self._forward("history", args, session)

    async def metrics(self, request: web.Request) -> web.Response:
        # Never behind a login: Prometheus scrapes without one (put the bridge behind a proxy to restrict it).
        prefix = request.query.get("prefix", "")
        min_level = _level(request.query.get("min_level"))
        entries = self.core.entries(prefix, min_level)
        facts = BridgeFacts(
            hub_time_s=self.core.hub_time(time.time()),
            hub_connected=self.core.hub_state == "connected",
            clients=self.core.clients,
            updates_total=self.core.updates_applied,
        )
        # Off the loop: 100,000 series still take 0.1-0.2 s to format (metrics.py), and more on a busy machine.
        body = await asyncio.get_running_loop().run_in_executor(
            None, partial(render_metrics, entries, facts, max_series=self.settings.max_series)
        )
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    # ------------------------------------------------------------------
    # Sessions

    async def session_info(self, request: web.Request) -> web.Response:
        session = self._session(request)
        return web.json_response(
            {
                "user": None if session is None else session.user,
                "role": None if session is None else session.role,
                "csrf": None if session is None else session.csrf,
                "users_file": self.users is not None,
                "private_reads": self.settings.private_reads,
            },
            dumps=_dumps,
        )

    async def login(self, request: web.Request) -> web.Response:
        if not origin_allowed(request.headers, self._own_origin(request)):
            return _error(403, "a login from another site's page is refused")
        if self.users is None:
            return _error(401, "this bridge has no users: start it with --users FILE (gsmon web passwd makes one)")
        body = await _json_body(request)
        name, password = body.get("user"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            raise BadRequestError('send {"user": NAME, "password": PASSWORD}')
        if self._failed_logins.blocked(name, time.monotonic()):
            return _error(429, f"too many failed logins for {name!r:.80}: wait a minute and try again")
        # (as slow for a name that is not in the file: the answer's time does not tell who exists)
        user = await asyncio.get_running_loop().run_in_executor(None, self.users.check_password, name, password)
        if user is None:
            self._failed_logins.failed(name, time.monotonic())
            log.info("failed login for %r from %s", name[:80], request.remote)
            return _error(401, "wrong user name or password")
        self._failed_logins.succeeded(name)
        cookie, session = self.signer.issue(user, time.time())
        log.info("%s logged in (%s) from %s", user.name, user.role, request.remote)
        response = web.json_response({"user": session.user, "role": session.role, "csrf": session.csrf}, dumps=_dumps)
        response.set_cookie(
            COOKIE_NAME,
            cookie,
            max_age=int(self.signer.lifetime_s),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self._secure(request),
        )
        return response

    async def logout(self, request: web.Request) -> web.Response:
        # (a page of another origin on this host is same-site: its POST would carry the cookie)
        if not origin_allowed(request.headers, self._own_origin(request)):
            return _error(403, "a logout from another site's page is refused")
        session = self._session(request)
        if session is not None:
            self.signer.revoke(session, time.time())  # the cookie is refused from now on, wherever it is kept
            if self.settings.private_reads:
                await self._end_streams(lambda held: held.csrf == session.csrf, "logged out")
        response = web.json_response({"user": None}, dumps=_dumps)
        response.del_cookie(COOKIE_NAME, path="/")
        return response

    async def _end_streams(self, ends: Callable[[Session], bool], why: str) -> None:
        """Close the streams whose session ``ends`` (private reads: a stream is a read that needs one)."""
        for client in list(self._clients.values()):
            if client.session is not None and ends(client.session):
                await client.socket.close(code=SESSION_ENDED_CLOSE_CODE, message=why.encode())

    # ------------------------------------------------------------------
    # Writes and the hub

    async def _write(
        self, command: str, build: Callable[[dict[str, Any]], dict[str, Any]], request: web.Request
    ) -> web.Response:
        session = self._session(request)
        if session is None:
            return _error(401, "log in first: writes need a session")
        token = request.headers.get(CSRF_HEADER)
        if token is None or not _same_token(token, session.csrf):
            return _error(403, f"the {CSRF_HEADER} header is missing or wrong (reload the page)")
        if not origin_allowed(request.headers, self._own_origin(request)):
            return _error(403, "a write from another site's page is refused")
        if not session.may_act:
            return _error(403, f"{session.user} is a {session.role}: only an operator or an admin may {command}")
        args = build(await _json_body(request))
        log.info("%s (%s) asks the hub to %s %s", session.user, session.role, command, _dumps(args))
        return await self._forward(command, args, session)

    async def _shared_call(self, read: _SharedRead) -> CommandOutcome:
        return await self.commands.call(read.command, json.loads(read.args_json), user=read.user)

    async def _forward(
        self, command: str, args: dict[str, Any], session: Session | None, *, shared: bool = False
    ) -> web.Response:
        """``command`` to the hub, its answer as the HTTP response; ``shared``: a read asked with the same args
        for the same user while another is on its way shares the next call (see shared_calls.py)."""
        args["via"] = VIA
        user = None if session is None else session.user
        try:
            if shared:
                outcome = await self.shared_reads(_SharedRead(command, _dumps(args, sort_keys=True), user))
            else:
                outcome = await self.commands.call(command, args, user=user)
        except HubNoAnswerError as error:
            return _error(504, str(error))
        except HubCommandError as error:
            return _error(502, str(error))
        body = {"ok": outcome.ok, "message": outcome.message, "result": iso_times(outcome.result)}
        status = 200
        if not outcome.ok:
            reason = outcome.reason or ""
            status = _REASON_STATUS.get(reason, 404 if reason.startswith("unknown") else 409)
            body["error"] = outcome.message
        return web.json_response(body, status=status, dumps=_dumps)


# ----------------------------------------------------------------------
# Request parsing (one line for every mistake)


_SUBSCRIBE_HINT: Final = 'send {"subscribe": "PREFIX", "min_level": LEVEL or null}'
_SUBSCRIBE_KEYS: Final = frozenset({"subscribe", "min_level"})


def _subscription(text: str | None) -> tuple[str, int | None]:
    """A WebSocket client's message (None: a binary frame) -> (prefix, min_level); BadRequestError says why not."""
    if text is None:
        raise BadRequestError(f"binary frames are not understood: {_SUBSCRIBE_HINT} as a text frame")
    try:
        wanted = json.loads(text)
    except ValueError as error:
        raise BadRequestError(f"not JSON ({error}): {_SUBSCRIBE_HINT}") from None
    if not isinstance(wanted, dict) or not isinstance(wanted.get("subscribe"), str):
        raise BadRequestError(_SUBSCRIBE_HINT)
    unknown = sorted(str(key) for key in wanted if key not in _SUBSCRIBE_KEYS)
    if unknown:
        raise BadRequestError(f"unknown key(s) {', '.join(unknown)[:80]}: {_SUBSCRIBE_HINT}")
    return wanted["subscribe"], _level(wanted.get("min_level"))


def _same_token(given: str, expected: str) -> bool:
    import hmac

    return hmac.compare_digest(given.encode(), expected.encode())


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequestError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


def _level(text: object) -> int | None:
    try:
        return parse_level(text if isinstance(text, str | int) or text is None else str(text))
    except ValueError as error:
        raise BadRequestError(str(error)) from None


def _int(text: object, name: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    try:
        return int(str(text))
    except ValueError:
        raise BadRequestError(f"{name} must be a whole number, got {str(text)!r:.40}") from None


def _time(text: object, name: str) -> float:
    """An ISO 8601 time or epoch seconds -> epoch seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        number = float(text)
    else:
        try:
            number = float(str(text))
        except ValueError:
            try:
                number = wall_of_iso(str(text))
            except ValueError as error:
                raise BadRequestError(f"{name}: {error}") from None
    if not math.isfinite(number):
        raise BadRequestError(f"{name} must be a finite time")
    return number


def _comment(body: dict[str, Any], *, required: bool) -> str | None:
    comment = body.get("comment")
    if comment is None or comment == "":
        if required:
            raise BadRequestError("a comment is required (why, for the next shift)")
        return None
    if not isinstance(comment, str):
        raise BadRequestError("comment must be text")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise BadRequestError(f"a comment is at most {MAX_COMMENT_CHARS} characters, this one has {len(comment)}")
    if required and not comment:
        raise BadRequestError("a comment is required (why, for the next shift)")
    return comment


def _ack_args(body: dict[str, Any]) -> dict[str, Any]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise BadRequestError('send {"ids": [alarm id, ...], "comment": "..."}: the ids of the alarms you saw')
    args: dict[str, Any] = {"ids": ids}
    comment = _comment(body, required=False)
    if comment is not None:
        args["comment"] = comment
    return args


SHELVE_MODES: Final = ("timed", "until_normal", "scheduled")


def _shelve_args(body: dict[str, Any]) -> dict[str, Any]:
    prefix = body.get("prefix")
    if not isinstance(prefix, str) or not prefix:
        raise BadRequestError("shelve needs a prefix (a path, or a subtree such as GS1/Rack1/)")
    mode = body.get("mode", "timed")
    if mode not in SHELVE_MODES:
        raise BadRequestError(f"mode must be one of {', '.join(SHELVE_MODES)}, got {str(mode)!r:.40}")
    args: dict[str, Any] = {"prefix": prefix, "mode": mode, "comment": _comment(body, required=True)}
    if "duration_s" in body:
        duration = body["duration_s"]
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not duration > 0:
            raise BadRequestError("duration_s must be a positive number of seconds")
        args["duration_s"] = float(duration)
    for name in ("ends_at", "starts_at"):
        if body.get(name) is not None:
            args[name] = _time(body[name], name)
    if mode == "timed" and "duration_s" not in args and "ends_at" not in args:
        raise BadRequestError("a timed shelf needs duration_s or ends_at")
    if mode == "scheduled" and ("starts_at" not in args or "ends_at" not in args):
        raise BadRequestError("a scheduled shelf needs starts_at and ends_at")
    return args


def _unshelve_args(body: dict[str, Any]) -> dict[str, Any]:
    shelf_id = body.get("id")
    if not isinstance(shelf_id, int) or isinstance(shelf_id, bool):
        raise BadRequestError('send {"id": SHELF_ID}')
    args: dict[str, Any] = {"id": shelf_id}
    comment = _comment(body, required=False)
    if comment is not None:
        args["comment"] = comment
    return args
