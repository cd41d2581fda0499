"""The SMTP listener for sites that point MX at the application (``manage.py
receive_mail``): aiosmtpd, accepting mail only for the addresses of known queues and
users, each message stored by ``inbound_message_store``.

The answers say what became of a message, so a sending server knows whether to keep
it: 250 once its raw bytes are kept (``inbound_message_receive``): stored as an email,
or stored before (the same Message-ID), or kept and listed for staff (blocked for an
unapproved address, unreadable); 550 for a recipient that is not a mailbox here and
552 over the size limit (both before anything is kept: the sender's server bounces
it); 554 for a message refused with a reason (no sender: its raw is kept and listed
too); and 451 when keeping failed for a reason that may pass (the database or the
storage away): the sender tries again later, so nothing is lost.
"""

from __future__ import annotations

import logging
from typing import Any

from aiosmtpd.controller import Controller
from asgiref.sync import sync_to_async
from django.db import connections

from . import conf
from .errors import ApplicationError
from .links import email_id_of_bounce_address
from .models import InboundStatus
from .services.inbound import inbound_mailbox_of, inbound_message_receive

logger = logging.getLogger(__name__)


# Each runs on asgiref's thread for sync code and closes that thread's connections when
# done, as a request does: none is left open between two messages (or after the last).


def _mailbox_known(address: str) -> bool:
    """A mailbox of a user or queue here, or the VERP bounce address of an email."""
    try:
        return (
            email_id_of_bounce_address(address) is not None
            or inbound_mailbox_of(address) is not None
        )
    finally:
        connections.close_all()


def _store(raw: bytes, recipients: list[str]) -> str:
    """The SMTP answer for a message: what became of it."""
    try:
        message = inbound_message_receive(raw=raw, route="smtp", recipients=recipients)
        if message.status == InboundStatus.REFUSED:
            return f"554 5.6.0 {message.reason[:400]}"
        if message.email_id is not None:
            return f"250 OK: stored as email {message.email_id}"
        return f"250 OK: kept as inbound message {message.pk} ({message.status})"
    finally:
        connections.close_all()


class InboundHandler:
    """aiosmtpd handler: RCPT checked against the mailboxes, DATA stored."""

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options) -> str:
        if not await sync_to_async(_mailbox_known, thread_sensitive=True)(address):
            return f"550 5.1.1 <{address}>: no mailbox of this application has that address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")
        try:
            answer = await sync_to_async(_store, thread_sensitive=True)(
                raw, list(envelope.rcpt_tos)
            )
        except ApplicationError as exc:
            logger.info("refused a received message from %s: %s", session.peer, exc)
            return f"554 5.6.0 {str(exc)[:400]}"
        except Exception:
            logger.exception("could not store a received message from %s", session.peer)
            return "451 4.3.0 the message could not be stored now; try again later"
        logger.info("received message from %s: %s", session.peer, answer)
        return answer


def inbound_controller(*, hostname: str, port: int, **options: Any) -> Controller:
    """A listener (``start()``, ``stop()``) on ``hostname:port`` with the size limit of
    ``CRM_INBOUND_MAX_BYTES``."""
    return Controller(
        InboundHandler(),
        hostname=hostname,
        port=port,
        data_size_limit=conf.inbound_max_bytes(),
        **options,
    )
