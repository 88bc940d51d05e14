"""`gsmon web` attacked as a browser-less client would: every bad request gets one clear answer, the bridge serves on.

A real hub, agent and bridge. Malformed JSON, a body that is not an object, a body over 64 KiB, an unknown
API path and a wrong method each get one JSON ``{"error"}`` with their status (aiohttp's own refusals
included); bad WebSocket frames (not JSON, binary, no ``subscribe``, an unknown key) each get one
``{"type": "error"}`` message and leave the subscription as it was; a frame over 64 KiB closes the socket
with 1009; a flood of subscriptions gets few snapshots, of the latest; a WebSocket from another origin
is refused 403. Behind a TLS proxy (``--behind-proxy``) the
session cookie is ``Secure`` and the origin a write must come from is the public one. After each attack
the bridge still answers.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import Processes, wait_until
from test_web_browser import Bridge, make_user, start_bridge

PATH = "GS1/Rack1/Drive/az_deg"


def _request(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (a loopback URL the test made)
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def _json_error(answer: tuple[int, dict[str, str], bytes]) -> str:
    """The one line of a JSON error answer (its content type checked)."""
    _, headers, body = answer
    assert headers["Content-Type"].startswith("application/json"), (headers, body[:200])
    assert headers["X-Content-Type-Options"] == "nosniff"  # the bridge's headers on its refusals too
    message = json.loads(body)["error"]
    assert isinstance(message, str)
    assert message
    assert "\n" not in message
    return message


def _alive(bridge: Bridge) -> None:
    status, _, body = _request(bridge.url + "api/v1/status")
    assert status == 200
    assert json.loads(body)["state"] in ("connected", "waiting")


def _log_in(bridge: Bridge, headers: dict[str, str]) -> tuple[str, str, str]:
    """(cookie header, CSRF token, the raw Set-Cookie) of otto's login with ``headers``."""
    status, answer_headers, body = _request(
        bridge.url + "api/v1/login",
        data=json.dumps({"user": "otto", "password": "operator-pw"}).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    assert status == 200, body
    set_cookie = answer_headers["Set-Cookie"]
    return set_cookie.split(";")[0], json.loads(body)["csrf"], set_cookie


def _station(procs: Processes, tmp_path: Path, *extra: str) -> Bridge:
    hub = procs.hub()
    spec = {"parents": {"Drive": None}, "points": [{"name": "az_deg", "parent": "Drive", "value": 181.25, "dt": 0.2}]}
    procs.agent(hub, "rack1", spec, mount="GS1/Rack1")
    users_file = tmp_path / "users.toml"
    make_user(users_file, "otto", "operator-pw", "operator")
    bridge = start_bridge(procs, hub, "--users", str(users_file), *extra)
    # (--private-reads: the point is looked for with a session of its own, logged out again)
    session = _log_in(bridge, {"Origin": bridge.url.rstrip("/")}) if "--private-reads" in extra else None
    headers = {} if session is None else {"Cookie": session[0]}
    node = bridge.url + f"api/v1/node?path={PATH}"
    wait_until(lambda: _request(node, headers=headers)[0] == 200, what="the point at the bridge")
    return bridge


def test_bad_requests_get_one_json_error_each_and_the_bridge_serves_on(procs: Processes, tmp_path: Path) -> None:
    bridge = _station(procs, tmp_path)
    origin = bridge.url.rstrip("/")
    cookie, csrf, _ = _log_in(bridge, {"Origin": origin})
    write = {"Cookie": cookie, "Origin": origin, "X-Gsmon-CSRF": csrf, "Content-Type": "application/json"}
    ack = bridge.url + "api/v1/ack"
    for body, wanted in (
        (b'{"ids": [1', "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'{"ids": ["1"]}', "alarm id"),
        (b"x" * 70_000, "larger than 65536 bytes"),  # (small enough for the socket buffers: no broken pipe)
    ):
        answer = _request(ack, data=body, headers=write)
        assert answer[0] == (413 if len(body) > 65536 else 400), answer
        assert wanted in _json_error(answer)
        _alive(bridge)
    answer = _request(bridge.url + "api/v1/nothing")
    assert answer[0] == 404
    assert "/api/v1/nothing" in _json_error(answer)
    answer = _request(ack)  # GET on a write
    assert answer[0] == 405
    assert answer[1]["Allow"] == "POST"
    assert "GET" in _json_error(answer)
    # Nor may another page of this host log the user out (it is same-site: the cookie would go with it).
    answer = _request(bridge.url + "api/v1/logout", data=b"{}", headers={**write, "Origin": "http://127.0.0.1:1"})
    assert answer[0] == 403
    assert "Set-Cookie" not in answer[1]
    assert "another site" in _json_error(answer)
    # A forged write without a session is refused before its (huge) body is read: 401, never a redirect.
    answer = _request(ack, data=b"x" * 70_000, headers={"Content-Type": "application/json"})
    assert answer[0] == 401
    assert "log in" in _json_error(answer)
    _alive(bridge)
    assert bridge.process.stop() == 0, bridge.process.stderr()


async def _next_of(socket: aiohttp.ClientWebSocketResponse, kinds: set[str]) -> dict[str, Any]:
    """The next message of one of ``kinds`` (deltas and status messages of the subscription in between are
    skipped: they come every second whatever the client sends)."""
    while True:
        message = await socket.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        body: dict[str, Any] = json.loads(message.data)
        if body["type"] in kinds:
            return body
        assert body["type"] in ("delta", "status"), body


async def _websocket_attacks(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url + "api/v1/ws") as socket:
            await socket.send_str(json.dumps({"subscribe": "GS1/", "min_level": None}))
            snapshot = await _next_of(socket, {"snapshot", "error"})
            assert snapshot["type"] == "snapshot"
            assert PATH in {node["path"] for node in snapshot["nodes"]}
            epoch = snapshot["epoch"]
            frames: tuple[tuple[str | bytes, str], ...] = (
                ("hello", "not JSON"),
                ('{"ping": true}', '"subscribe"'),  # once this subscribed to the whole tree
                ('{"subscribe": 5}', '"subscribe"'),
                ('{"subscribe": "GS1/", "prefix": "x"}', "unknown key(s) prefix"),
                ('{"subscribe": "GS1/", "min_level": "PURPLE"}', "PURPLE"),
                (b"\x00\x01", "binary"),
            )
            for frame, wanted in frames:
                if isinstance(frame, bytes):
                    await socket.send_bytes(frame)
                else:
                    await socket.send_str(frame)
                answer = await _next_of(socket, {"snapshot", "error"})
                assert answer["type"] == "error", (frame, answer)
                assert wanted in answer["message"], (frame, answer)
                assert "epoch" not in answer
            # The subscription in force is the first one: its stream goes on in the same epoch.
            following = await _next_of(socket, {"delta", "status"})
            assert following["epoch"] == epoch
            await socket.send_str(json.dumps({"subscribe": "GS1/Rack1/Drive", "min_level": "GREEN"}))
            again = await _next_of(socket, {"snapshot", "error"})
            assert again["type"] == "snapshot"
            assert again["epoch"] != epoch
            # A flood of subscriptions: answered at most every 0.2 s, the latest one counts.
            for index in range(49):
                await socket.send_str(json.dumps({"subscribe": f"GS1/Rack1/Drive{'' if index % 2 else '/'}"}))
            last = "GS1/Rack1/"
            await socket.send_str(json.dumps({"subscribe": last}))
            snapshots = []
            while not snapshots or snapshots[-1]["prefix"] != last:
                snapshots.append(await _next_of(socket, {"snapshot"}))
            # Each snapshot made starts a new epoch (one counter for all, and this is the bridge's only client):
            # the epochs say how many snapshots the bridge made, sent or not.
            made = snapshots[-1]["epoch"] - again["epoch"]
            assert made <= 5, (made, [snap["prefix"] for snap in snapshots])
            await socket.send_str("x" * (128 * 1024))
            while (message := await socket.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
                pass  # (what the bridge sent before it read the frame)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
            assert socket.close_code == 1009  # message too big
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url + "api/v1/ws", origin="http://127.0.0.1:1")
        assert refused.value.status == 403
        async with session.ws_connect(url + "api/v1/ws", origin=url.rstrip("/")) as socket:
            await socket.send_str(json.dumps({"subscribe": ""}))
            assert (await _next_of(socket, {"snapshot", "error"}))["type"] == "snapshot"


def test_bad_websocket_frames_get_one_error_each_and_leave_the_subscription(procs: Processes, tmp_path: Path) -> None:
    bridge = _station(procs, tmp_path)
    asyncio.run(_websocket_attacks(bridge.url))
    _alive(bridge)
    assert bridge.process.stop() == 0, bridge.process.stderr()


def test_behind_a_tls_proxy_the_cookie_is_secure_and_writes_come_from_the_public_origin(
    procs: Processes, tmp_path: Path
) -> None:
    public = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gsmon.example.org"}
    bridge = _station(procs, tmp_path, "--behind-proxy")
    cookie, csrf, set_cookie = _log_in(bridge, {**public, "Origin": "https://gsmon.example.org"})
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
    assert {"secure", "httponly", "samesite"} <= attributes, set_cookie
    assert "samesite=strict" in set_cookie.lower()
    write = {"Cookie": cookie, "X-Gsmon-CSRF": csrf, "Content-Type": "application/json", **public}
    body = json.dumps({"ids": [424242]}).encode()
    # The bridge's own loopback address is not the origin its pages come from behind the proxy.
    refused = _request(bridge.url + "api/v1/ack", data=body, headers={**write, "Origin": bridge.url.rstrip("/")})
    assert refused[0] == 403
    assert "another site" in _json_error(refused)
    status, _, answer = _request(
        bridge.url + "api/v1/ack", data=body, headers={**write, "Origin": "https://gsmon.example.org"}
    )
    assert status == 200, answer  # the hub answers: alarm 424242 is unknown, skipped
    assert "424242" in json.loads(answer)["message"]
    assert bridge.process.stop() == 0, bridge.process.stderr()


def test_without_behind_proxy_forwarded_headers_are_not_trusted(procs: Processes, tmp_path: Path) -> None:
    bridge = _station(procs, tmp_path)
    _, _, set_cookie = _log_in(bridge, {"X-Forwarded-Proto": "https", "Origin": bridge.url.rstrip("/")})
    assert "secure" not in {part.strip().lower() for part in set_cookie.split(";")}, set_cookie
    assert bridge.process.stop() == 0, bridge.process.stderr()


async def _streams_past_the_cap(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        first = await session.ws_connect(url + "api/v1/ws")
        second = await session.ws_connect(url + "api/v1/ws")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url + "api/v1/ws")
        assert refused.value.status == 503
        async with session.get(url + "api/v1/ws") as answer:  # the same refusal, read as a plain request
            assert answer.status == 503
            assert answer.headers["Retry-After"] == "5"
            assert "--max-streams" in (await answer.json())["error"]
        await first.close()

        async def third_taken() -> bool:
            try:
                third = await session.ws_connect(url + "api/v1/ws")
            except aiohttp.WSServerHandshakeError:
                return False
            await third.send_str(json.dumps({"subscribe": ""}))
            assert (await _next_of(third, {"snapshot", "error"}))["type"] == "snapshot"
            await third.close()
            return True

        for _ in range(100):  # the bridge sees the close when its handler ends: a few loop turns
            if await third_taken():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("a stream was refused after one of the two closed")
        await second.close()


def test_streams_past_max_streams_are_refused_503_and_taken_again_when_one_closes(
    procs: Processes, tmp_path: Path
) -> None:
    """A loop of WebSocket connections cannot exhaust the bridge: past --max-streams each is refused with one
    JSON line (503), counted in the status; one that closes makes room."""
    bridge = _station(procs, tmp_path, "--max-streams", "2")
    asyncio.run(_streams_past_the_cap(bridge.url))
    status, _, body = _request(bridge.url + "api/v1/status")
    assert status == 200
    assert json.loads(body)["streams_refused"] >= 2
    _alive(bridge)
    assert bridge.process.stop() == 0, bridge.process.stderr()


async def _logged_out_stream(url: str, cookie: str) -> int:
    """The close code a private-reads stream opened with ``cookie`` gets when that session logs out elsewhere."""
    origin = url.rstrip("/")
    headers = {"Cookie": cookie, "Origin": origin}
    async with aiohttp.ClientSession() as session, session.ws_connect(url + "api/v1/ws", headers=headers) as socket:
        await socket.send_str(json.dumps({"subscribe": ""}))
        assert (await _next_of(socket, {"snapshot", "error"}))["type"] == "snapshot"
        # Another tab logs out: the same cookie, a POST from our own origin.
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(None, lambda: _request(url + "api/v1/logout", data=b"{}", headers=headers))
        assert answer[0] == 200
        while (message := await socket.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
            pass  # (deltas and statuses sent before the logout)
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        code: int = message.data  # the code of the close frame: what a browser's CloseEvent says
        return code


def test_a_logout_ends_the_session_everywhere_and_its_open_streams(procs: Processes, tmp_path: Path) -> None:
    """Under --private-reads a logout revokes the cookie (a copy kept elsewhere is refused 401 afterwards) and
    closes the streams opened with it (code 4401: the page asks for a login instead of reconnecting)."""
    bridge = _station(procs, tmp_path, "--private-reads")
    cookie, _, _ = _log_in(bridge, {"Origin": bridge.url.rstrip("/")})
    assert _request(bridge.url + "api/v1/tree", headers={"Cookie": cookie})[0] == 200
    assert asyncio.run(_logged_out_stream(bridge.url, cookie)) == 4401
    answer = _request(bridge.url + "api/v1/tree", headers={"Cookie": cookie})
    assert answer[0] == 401
    assert "log in" in _json_error(answer)
    again, _, _ = _log_in(bridge, {"Origin": bridge.url.rstrip("/")})  # a new login works
    assert _request(bridge.url + "api/v1/tree", headers={"Cookie": again})[0] == 200
    assert bridge.process.stop() == 0, bridge.process.stderr()
