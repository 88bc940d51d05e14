"""A TCP relay for the tests: what it carries is cut the moment it stops (a link between two hubs, say).

Usage: python tcp_proxy_program.py TARGET_HOST:PORT [--port N]

Listens on 127.0.0.1 (port N, default any free one) and prints ``READY
proxy=tcp://127.0.0.1:<port>``; each connection is relayed to TARGET byte for
byte. SIGTERM closes every connection at once and exits 0: a link cut. A new
relay on the same port is the link back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from gsmon.common.ready import ready_line


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    writers: set[asyncio.StreamWriter] = set()
    tasks: set[asyncio.Task[None]] = set()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        writers.update((writer, upstream_writer))
        for task in (
            asyncio.create_task(_pump(reader, upstream_writer)),
            asyncio.create_task(_pump(upstream_reader, writer)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(relay, "127.0.0.1", args.port, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(ready_line(proxy=f"tcp://127.0.0.1:{bound}"), flush=True)
    await stop.wait()
    server.close()
    for writer in writers:
        writer.transport.abort()  # a cut, not a goodbye
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
