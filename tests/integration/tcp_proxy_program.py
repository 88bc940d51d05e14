"""A stream relay for the tests: what it carries is cut the moment it stops (a link between two hubs, say).

Usage: python tcp_proxy_program.py TARGET LISTEN

TARGET and LISTEN are ZeroMQ-style endpoints: ``ipc://PATH`` (a Unix socket,
what ZeroMQ's ipc transport is) or ``tcp://127.0.0.1:PORT`` (LISTEN may say
port 0: any free one). Prints ``READY proxy=<the endpoint it listens on>``;
each connection is relayed to TARGET byte for byte. SIGTERM closes every
connection at once and exits 0: a link cut. A new relay on the same ipc path
is the link back (the path is chosen by the test, so nothing is pre-picked).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

from gsmon.common.ready import ready_line


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _connect(endpoint: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if endpoint.startswith("ipc://"):
        return await asyncio.open_unix_connection(endpoint.removeprefix("ipc://"))
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("listen")
    args = parser.parse_args()
    writers: set[asyncio.StreamWriter] = set()
    tasks: set[asyncio.Task[None]] = set()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await _connect(args.target)
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

    if args.listen.startswith("ipc://"):
        path = args.listen.removeprefix("ipc://")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # the earlier relay's socket file: this one is the link back
        server = await asyncio.start_unix_server(relay, path)
        listening = args.listen
    else:
        host, _, port = args.listen.removeprefix("tcp://").rpartition(":")
        server = await asyncio.start_server(relay, host, int(port), reuse_address=True)
        listening = f"tcp://{host}:{server.sockets[0].getsockname()[1]}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(ready_line(proxy=listening), flush=True)
    await stop.wait()
    server.close()
    for writer in writers:
        writer.transport.abort()  # a cut, not a goodbye
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
