"""A real SMTP server (aiosmtpd) that prints every message it receives, for the notifier's tests.

Usage: python smtp_sink_program.py

Binds 127.0.0.1 port 0 and prints ``READY smtp=127.0.0.1:<port>``; then, for
every message accepted, one line ``MAIL <json>`` with ``from``, ``to``,
``subject`` and ``body`` (the text part, decoded). Ends on SIGTERM.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import signal
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from gsmon.common.ready import ready_line


class Printer:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        message = email.message_from_bytes(raw if isinstance(raw, bytes) else raw.encode(), policy=email.policy.default)
        part: Any = message.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        record = {"from": envelope.mail_from, "to": envelope.rcpt_tos, "subject": str(message["subject"]), "body": body}
        print("MAIL " + json.dumps(record), flush=True)
        return "250 Message accepted for delivery"


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Printer(), hostname="sink.test"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(ready_line(smtp=f"127.0.0.1:{port}"), flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
