"""A real SMTP server for tests (aiosmtpd), recording every message it accepts."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

# RFC 3461's RCPT parameters, which aiosmtpd does not implement (it answers 555).
_DSN_PARAMS = ("NOTIFY=", "ORCPT=")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple | None = None  # the client's (host, port): one per SMTP connection

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


@dataclass
class RecordingHandler:
    messages: list[Received] = field(default_factory=list)
    # Addresses answered with a permanent 550 at RCPT TO.
    reject_recipients: set[str] = field(default_factory=set)
    # Answer the next N DATA commands with a transient 451.
    fail_data_times: int = 0
    # Offer the DSN extension (RFC 3461) at EHLO and record each recipient's NOTIFY=.
    offer_dsn: bool = False
    dsn_notify: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.offer_dsn:
            return [*responses[:-1], "250-DSN", responses[-1]]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject_recipients:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.fail_data_times > 0:
                self.fail_data_times -= 1
                return "451 4.3.0 Try again later"
            self.messages.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    bytes(envelope.content),
                    tuple(session.peer) if session.peer else None,
                )
            )
        return "250 Message accepted for delivery"


class _DSNSMTP(SMTP):
    """aiosmtpd's server taking RFC 3461's RCPT parameters when its handler offers DSN."""

    async def smtp_RCPT(self, arg):
        handler = self.event_handler
        if arg and getattr(handler, "offer_dsn", False):
            words = arg.split()
            dsn = [w for w in words[1:] if w.upper().startswith(_DSN_PARAMS)]
            if dsn:
                arg = " ".join([words[0], *[w for w in words[1:] if w not in dsn]])
                address = words[0].partition(":")[2].strip("<>")
                notify = [w.partition("=")[2] for w in dsn if w.upper().startswith("NOTIFY=")]
                handler.dsn_notify[address.lower()] = notify[0] if notify else ""
        return await super().smtp_RCPT(arg)


class _Controller(Controller):
    def factory(self):
        return _DSNSMTP(self.handler, **self.SMTP_kwargs)


class SMTPServer:
    """Start with ``start()``; ``port`` is fixed at creation so it can be down, then up."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.handler = RecordingHandler()
        self.controller: Controller | None = None

    def start(self) -> SMTPServer:
        self.controller = _Controller(
            self.handler, hostname="127.0.0.1", port=self.port, data_size_limit=50 * 1024 * 1024
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def email_url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"
