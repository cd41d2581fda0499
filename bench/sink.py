"""The SMTP sink of W2 and L1: accepts every message, counts them and their Message-IDs.

Run as its own process (``python -m bench.sink``) so that it never competes with the
process being measured for the GIL. It is aiosmtpd's ``SMTP`` protocol (EHLO, MAIL,
RCPT, DATA, RSET, NOOP, QUIT as usual) with one change: the DATA reader takes the body
in large reads instead of line by line. Stock aiosmtpd tops out near 100 messages/s
for 143 KB messages on a 2-core machine, below what the code under test can do
(BENCH.md); this reader does not.

A small line-based control server answers ``STATS`` (a JSON line: received, unique,
duplicates, bytes), ``IDS`` (a JSON line: each Message-ID and how often it came) and
``RESET``. On start the process prints one line:
``READY <smtp port> <control port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import sys
from collections import Counter
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

END = b"\r\n.\r\n"
READ_SIZE = 256 * 1024
MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*?)\r?$", re.IGNORECASE | re.MULTILINE)


class Tally:
    def __init__(self) -> None:
        self.ids: Counter[bytes] = Counter()
        self.received = 0
        self.bytes = 0
        self.without_id = 0

    def add(self, content: bytes) -> None:
        self.received += 1
        self.bytes += len(content)
        head = content.split(b"\r\n\r\n", 1)[0]
        match = MESSAGE_ID.search(head)
        if match:
            self.ids[match.group(1).strip()] += 1
        else:
            self.without_id += 1

    def stats(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "unique": len(self.ids),
            "duplicates": sum(n - 1 for n in self.ids.values() if n > 1),
            "without_message_id": self.without_id,
            "bytes": self.bytes,
        }

    def reset(self) -> None:
        self.__init__()


class CountingHandler:
    def __init__(self, tally: Tally):
        self.tally = tally

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.tally.add(envelope.original_content or b"")
        return "250 OK: queued"


def unstuff(data: bytes) -> bytes:
    """RFC 5321 4.5.2: a line that starts with a dot lost its first dot."""
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n")


class ChunkedDataSMTP(SMTP):
    """aiosmtpd's server with a DATA reader that reads the body in large chunks."""

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        buffer = bytearray()
        # The terminator is CRLF . CRLF, or ". CRLF" alone for an empty body.
        searched = 0
        while True:
            if buffer.startswith(b".\r\n"):
                body, rest = b"", bytes(buffer[3:])
                break
            at = buffer.find(END, max(searched - len(END), 0))
            if at >= 0:
                body, rest = bytes(buffer[: at + 2]), bytes(buffer[at + len(END) :])
                break
            searched = len(buffer)
            chunk = await self._reader.read(READ_SIZE)
            if not chunk:  # the client went away mid-message
                return
            buffer += chunk
        if rest:
            # A client that pipelines past the end of DATA (smtplib and Django do not):
            # give the bytes back to the stream for the command loop.
            self._reader._buffer[:0] = rest  # type: ignore[attr-defined]
        content = unstuff(body)
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status if isinstance(status, str) else "250 OK")


async def _control(tally: Tally, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    try:
        while line := await reader.readline():
            command = line.strip().upper()
            if command == b"STATS":
                writer.write(json.dumps(tally.stats()).encode() + b"\n")
            elif command == b"IDS":
                ids = {k.decode(errors="replace"): v for k, v in tally.ids.items()}
                writer.write(json.dumps(ids).encode() + b"\n")
            elif command == b"RESET":
                tally.reset()
                writer.write(b"OK\n")
            else:
                writer.write(b"ERR unknown command\n")
            await writer.drain()
    finally:
        writer.close()


async def serve(port: int, control_port: int) -> None:
    tally = Tally()
    handler = CountingHandler(tally)
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(
        lambda: ChunkedDataSMTP(
            handler, hostname="bench-sink", data_size_limit=None, ident="bench-sink"
        ),
        "127.0.0.1",
        port,
        reuse_address=True,
    )
    control = await asyncio.start_server(
        lambda r, w: _control(tally, r, w), "127.0.0.1", control_port
    )
    smtp_port = smtp.sockets[0].getsockname()[1]
    ctl_port = control.sockets[0].getsockname()[1]
    print(f"READY {smtp_port} {ctl_port}", flush=True)
    async with smtp, control:
        await asyncio.gather(smtp.serve_forever(), control.serve_forever())


class SinkClient:
    """Talks to a running sink's control port."""

    def __init__(self, control_port: int):
        self.control_port = control_port

    def _ask(self, command: str) -> bytes:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as s:
            s.sendall(command.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        return answer.strip()

    def stats(self) -> dict[str, Any]:
        return json.loads(self._ask("STATS"))

    def message_ids(self) -> dict[str, int]:
        """Every Message-ID the sink received, with how many times."""
        return json.loads(self._ask("IDS"))

    def reset(self) -> None:
        if self._ask("RESET") != b"OK":
            raise RuntimeError("the sink did not reset")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The benchmark's counting SMTP sink")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port, args.control_port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
