"""An SMTP server whose DATA can be held, to catch a client in the middle of a send."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .smtp import RecordingHandler, SMTPServer


@dataclass
class BlockingHandler(RecordingHandler):
    """Holds the reply to the next ``block_data_times`` DATA commands until ``release``.

    The message is recorded first: the server has taken it but not yet said so, the
    moment at which a sender that loses its connection cannot know whether the mail
    went out (aiosmtpd drops a session whose client is gone, reply and all). The wait
    is a coroutine so that the server keeps serving other connections meanwhile.
    """

    block_data_times: int = 0
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    max_block_seconds: float = 60.0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            block = self.block_data_times > 0
            if block:
                self.block_data_times -= 1
        reply = await super().handle_DATA(server, session, envelope)
        if block:
            self.entered.set()
            deadline = time.monotonic() + self.max_block_seconds
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return reply


class BlockingSMTPServer(SMTPServer):
    def __init__(self, port: int | None = None, *, block_data_times: int = 1):
        super().__init__(port)
        self.handler = BlockingHandler(block_data_times=block_data_times)

    def stop(self) -> None:
        self.handler.release.set()  # a held session must not keep the server from stopping
        super().stop()


@dataclass
class MailGateHandler(RecordingHandler):
    """Lets ``open_for`` messages through, then holds every later ``MAIL FROM`` until
    ``release`` is set (for good: from then on nothing is held).

    A held client has not handed over any part of its message: a sender killed there
    cannot have delivered it, so a test can demand exactly one copy per message. While
    one client is held the server keeps serving others; ``held`` is set at the first hold.
    """

    open_for: int = 0
    passed: int = 0
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    max_block_seconds: float = 60.0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            hold = not self.release.is_set() and self.passed >= self.open_for
            if not hold:
                self.passed += 1
        if hold:
            self.held.set()
            deadline = time.monotonic() + self.max_block_seconds
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            with self.lock:
                self.passed += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


class MailGateSMTPServer(SMTPServer):
    def __init__(self, port: int | None = None, *, open_for: int = 0):
        super().__init__(port)
        self.handler = MailGateHandler(open_for=open_for)

    def stop(self) -> None:
        self.handler.release.set()
        super().stop()


@dataclass
class DataHookHandler(RecordingHandler):
    """Records every message; at the ``hook_at``-th DATA (counting from 1) calls
    ``hook(session)`` after recording it and before answering, then, if ``hold``, keeps
    the answer back until ``release``. Every DATA is answered after ``delay`` seconds.

    ``hook`` runs on the server's thread while the client waits for the answer: it may
    stop the client (``SIGSTOP``), so that the 250 that follows lands in the socket of a
    process that never reads it. ``entered`` is set once the hook has run.
    """

    hook_at: int = 0
    hook: Callable[[Any], None] | None = None
    hold: bool = False
    delay: float = 0.0
    data_count: int = 0
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    max_block_seconds: float = 60.0

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = await super().handle_DATA(server, session, envelope)
        with self.lock:
            self.data_count += 1
            hooked = self.data_count == self.hook_at
        if hooked:
            if self.hook is not None:
                self.hook(session)
            self.entered.set()
            deadline = time.monotonic() + self.max_block_seconds
            while self.hold and not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return reply


class DataHookSMTPServer(SMTPServer):
    def __init__(self, port: int | None = None, **options: Any):
        super().__init__(port)
        self.handler = DataHookHandler(**options)

    def stop(self) -> None:
        self.handler.release.set()
        super().stop()


@dataclass
class ClosingHandler(RecordingHandler):
    """Accepts the first ``accept_per_connection`` messages of each connection; the next
    one is answered ``421`` (service closing the transmission channel) and the
    connection is dropped, as a server does when it shuts down or limits the messages
    per connection. ``at`` is where: ``"MAIL"`` (the next ``MAIL FROM``) or ``"DATA"``
    (after the whole message came, instead of its 250: the message is not kept).
    ``cuts`` connections are cut so; after that every message is accepted (the server
    is back). ``cut`` is set at the first cut; ``refused`` holds the sender of each
    message refused with the 421.

    Either way the server has not taken the message and said so: a client that meets
    the 421 knows it, so one copy per message can be demanded.
    """

    accept_per_connection: int = 0
    cuts: int = 1
    at: str = "MAIL"
    accepted_on: dict[tuple, int] = field(default_factory=dict)  # peer -> messages taken
    refused: list[str] = field(default_factory=list)
    cut: threading.Event = field(default_factory=threading.Event)

    def _closing(self, session, envelope, stage: str) -> bool:
        if stage != self.at:
            return False
        with self.lock:
            close = (
                len(self.refused) < self.cuts
                and self.accepted_on.get(tuple(session.peer), 0) >= self.accept_per_connection
            )
            if close:
                self.refused.append(envelope.mail_from or "")
        return close

    async def _close(self, server) -> str:
        # As aiosmtpd's own QUIT does: reply, stop serving the session, close.
        await server.push("421 4.3.2 Service shutting down, closing transmission channel")
        server._handler_coroutine.cancel()
        server.transport.close()
        self.cut.set()
        return "421 4.3.2 Service shutting down"  # not sent: the channel is closed

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        if self._closing(session, envelope, "MAIL"):
            return await self._close(server)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self._closing(session, envelope, "DATA"):
            return await self._close(server)
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            with self.lock:
                peer = tuple(session.peer)
                self.accepted_on[peer] = self.accepted_on.get(peer, 0) + 1
        return reply


class ClosingSMTPServer(SMTPServer):
    def __init__(
        self,
        port: int | None = None,
        *,
        accept_per_connection: int,
        cuts: int = 1,
        at: str = "MAIL",
    ):
        super().__init__(port)
        self.handler = ClosingHandler(accept_per_connection=accept_per_connection, cuts=cuts, at=at)
