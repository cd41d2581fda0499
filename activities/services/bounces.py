"""Bounce messages on the SMTP path, where no provider reports back.

``bounce_message_process`` recognises a bounce with flufl.bounce (RFC 3464 DSNs and the
common non-standard formats: Exim, qmail, Postfix, Microsoft, Yahoo, ...), finds the
email it answers, by VERP (the envelope sender ``links.bounce_address`` the message
went out with) or by the original Message-ID (the DSN's ``message/rfc822`` or
``text/rfc822-headers`` part, or the copy a non-standard bounce quotes), and records a
delivery event per failed recipient through ``delivery_event_record``: ``bounced``
(permanent: suppresses the address like a provider's hard bounce) or ``deferred``
(flufl's temporary failures, a DSN's ``Action: delayed``).

Hook, for the inbound store: mail addressed to the bounce address (``CRM_BOUNCE_DOMAIN``)
and any message this recognises must be offered here first. ``None`` means "not a
bounce": store it as ordinary received mail. A list (possibly empty: a bounce of a
message not ours, or one processed before) means it was a bounce and is handled:
do not store it as received mail.
"""

from __future__ import annotations

import email as email_package
import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from itertools import islice

from flufl.bounce import all_failures

from .. import conf
from ..links import email_id_of_bounce_address
from ..models import DeliveryEvent, Direction, Email
from .delivery_events import delivery_event_record

logger = logging.getLogger(__name__)

PROVIDER = "dsn"
# A bounce's copy of the original is looked at only this far (headers are at its top).
QUOTED_COPY_CHARS = 64 * 1024
# Headers a bounce can carry the address it was delivered to in (the VERP address).
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To")


def _as_text(payload: object) -> str:
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    return payload if isinstance(payload, str) else ""


def _original_message_id(message: Message) -> str:
    """The Message-ID of the message a bounce answers: the DSN's copy of it
    (``message/rfc822``) or of its headers (``text/rfc822-headers``), else the first
    Message-ID header quoted in a text part (qmail, Exim and others quote the copy)."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            copy = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(copy, Message) and copy.get("Message-ID"):
                return str(copy["Message-ID"]).strip()
        elif kind == "text/rfc822-headers":
            text = _as_text(part.get_payload(decode=True))[:QUOTED_COPY_CHARS]
            found = HeaderParser().parsestr(text).get("Message-ID")
            if found:
                return str(found).strip()
    for part in message.walk():
        if part.get_content_maintype() != "text":
            continue
        text = _as_text(part.get_payload(decode=True))[:QUOTED_COPY_CHARS]
        for line in text.splitlines():
            name, colon, value = line.strip().partition(":")
            if colon and name.lower() == "message-id" and "<" in value:
                return value.strip()
    return ""


def _diagnostics(message: Message) -> dict[str, dict[str, str]]:
    """Per failed recipient of a DSN (lower-cased): its Action, Status and
    Diagnostic-Code, to say what the receiving server answered."""
    found: dict[str, dict[str, str]] = {}
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status" or not part.is_multipart():
            continue
        for block in part.get_payload():
            if not isinstance(block, Message):
                continue
            recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            address = recipient.partition(";")[2].strip().strip("<>").lower()
            if address:
                found[address] = {
                    key: str(block.get(header) or "").strip()
                    for key, header in (
                        ("action", "Action"),
                        ("status", "Status"),
                        ("diagnostic", "Diagnostic-Code"),
                    )
                }
    return found


def _verp_email(message: Message, envelope_recipients: Iterable[str]) -> Email | None:
    addresses = list(envelope_recipients)
    for header in RECIPIENT_HEADERS:
        addresses += [a for _, a in getaddresses([str(v) for v in message.get_all(header, [])])]
    for address in addresses:
        email_id = email_id_of_bounce_address(address)
        if email_id is not None:
            return Email.objects.filter(pk=email_id, direction=Direction.OUTGOING).first()
    return None


def _when(message: Message) -> datetime | None:
    try:
        return parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
    except (TypeError, ValueError, IndexError):
        return None


def bounce_message_process(
    *, raw: bytes, envelope_recipients: Iterable[str] = ()
) -> list[DeliveryEvent] | None:
    """Recognise ``raw`` as a bounce and record its failures on the email it answers.

    ``envelope_recipients`` are the addresses the bounce was delivered to (RCPT TO),
    where the VERP address is when no header repeats it. Returns ``None`` when ``raw``
    is not a bounce, else the delivery events recorded now (none for a bounce of a
    message that is not ours, or one already processed: a DSN delivered twice adds
    nothing, the event id being its Message-ID and the recipient). A message over
    ``CRM_INBOUND_MAX_BYTES`` or of more than ``CRM_INBOUND_MAX_PARTS`` parts is not
    read (``None``).
    """
    if len(raw) > conf.inbound_max_bytes():
        return None
    message = email_package.message_from_bytes(raw)
    # A bounce has a few parts; a message of many is not read (the detectors walk them).
    if sum(1 for _ in islice(message.walk(), conf.inbound_max_parts() + 1)) > (
        conf.inbound_max_parts()
    ):
        return None
    try:
        temporary, permanent = all_failures(message)
    except (ValueError, TypeError, LookupError, AttributeError) as exc:  # broken MIME
        logger.info("could not scan a message for bounces: %s", exc)
        return None
    if not temporary and not permanent:
        return None
    original_id = _original_message_id(message)
    email = _verp_email(message, envelope_recipients)
    if email is None and original_id:
        bare = original_id.strip("<>")
        email = Email.objects.filter(
            message_id__in=[f"<{bare}>", bare], direction=Direction.OUTGOING
        ).first()
    if email is None:
        logger.info(
            "a bounce for %s answers no email of ours (Message-ID %r)",
            ", ".join(sorted(a.decode() for a in permanent | temporary)),
            original_id,
        )
        return []
    dsn_id = str(message.get("Message-ID") or "").strip()
    if not dsn_id:
        dsn_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    diagnostics = _diagnostics(message)
    occurred_at = _when(message)
    recorded: list[DeliveryEvent] = []
    failures = [(a, True) for a in sorted(permanent)] + [
        (a, False) for a in sorted(temporary - permanent)
    ]
    for encoded, is_permanent in failures:
        address = encoded.decode("ascii")
        detail = diagnostics.get(address.lower(), {})
        result = delivery_event_record(
            provider=PROVIDER,
            event_type="bounced" if is_permanent else "deferred",
            message_id=email.message_id,
            recipient=address,
            occurred_at=occurred_at,
            event_id=f"{dsn_id}|{address.lower()}",
            reject_reason="bounced" if is_permanent else "",
            permanent=is_permanent if is_permanent else None,
            description=detail.get("diagnostic", "")
            or ("permanent failure" if is_permanent else "delivery delayed"),
            mta_response=detail.get("status", ""),
            raw={
                "dsn_message_id": dsn_id,
                "original_message_id": original_id,
                "subject": str(message.get("Subject") or "")[:200],
                "from": str(message.get("From") or "")[:200],
                **({"dsn": detail} if detail else {}),
            },
            email=email,
        )
        if result is not None and result.created:
            recorded.append(result.event)
    return recorded
