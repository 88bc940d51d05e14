"""A real HTTP server (aiohttp) that prints every JSON webhook it receives, for the notifier's tests.

Usage: python http_sink_program.py [--fail-first N] [--host ADDRESS]

Binds ADDRESS (default 127.0.0.1) port 0 and prints ``READY http=http://ADDRESS:<port>``
(``--host 0.0.0.0``: every address of its network namespace, for notifiers on other hosts);
then, for every POST, one line ``POST <json>`` with ``path``, ``body`` (the
decoded JSON) and ``from`` (the sender's address: which host sent it). With
``--fail-first N`` the first N requests get a 500
(printed as ``FAILED <n>``): a receiver that is down for a while.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from aiohttp import web

from gsmon.common.ready import ready_line


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    failures = {"left": args.fail_first, "count": 0}

    async def receive(request: web.Request) -> web.Response:
        text = await request.text()
        if failures["left"] > 0:
            failures["left"] -= 1
            failures["count"] += 1
            print(f"FAILED {failures['count']}", flush=True)
            return web.Response(status=500, text="down for the test")
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        print("POST " + json.dumps({"path": request.path, "body": body, "from": request.remote}), flush=True)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(ready_line(http=f"http://{args.host}:{port}"), flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
