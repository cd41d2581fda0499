"""``email.mime``: a whole RFC 5322 message, read with the standard library.

Genesys' Web Services document ``mime`` beside ``body`` as the body's MIME type
(``text/html``); clients also send the whole message there. A value that is a MIME
type is the first; anything else must be a message with headers and a body, and is
limited like inbound mail (``CRM_INBOUND_MAX_BYTES``, ``CRM_INBOUND_MAX_PARTS``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import errors as email_errors
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser

from activities import conf
from activities.addresses import OWNED_HEADER_PREFIXES, OWNED_HEADERS, Address

from .errors import InvalidParameter

MIME_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[\w.+-]+")
# The standard library's parser is lenient and raises late, from a header or a part
# read after parsing; these are what it raises on broken input.
_BROKEN = (email_errors.MessageError, ValueError, LookupError, IndexError, TypeError)


@dataclass
class Attachment:
    filename: str
    mime_type: str
    content: bytes


@dataclass
class Message:
    subject: str | None = None
    sender: str = ""
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    request_delivery_receipt: bool = False
    request_read_receipt: bool = False
    body_text: str | None = None
    body_html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)


def is_mime_type(value: str) -> bool:
    return MIME_TYPE.fullmatch(value.strip()) is not None


def _refused(reason: str) -> InvalidParameter:
    return InvalidParameter(f"email.mime: {reason}", field="mime")


def _addresses(message: EmailMessage, name: str) -> list[Address]:
    found: list[Address] = []
    for header in message.get_all(name, []):
        for address in getattr(header, "addresses", ()):
            if not address.addr_spec or address.addr_spec == "<>":
                raise _refused(f"the {name} header holds an entry without an address")
            found.append(Address(address=address.addr_spec, name=address.display_name or ""))
    return found


def _custom_headers(message: EmailMessage) -> list[dict[str, str]]:
    """The message's own headers (``X-Campaign``): those the application writes are read
    above where they mean something (Subject, addresses, Reply-To, receipts) and else
    left out (Date, Message-ID, MIME structure, tracing); the service checks the rest."""
    found = []
    for name, value in message.items():
        lowered = name.lower()
        if lowered in OWNED_HEADERS or lowered.startswith(OWNED_HEADER_PREFIXES):
            continue
        found.append({"name": name, "value": str(value)})
    return found


def _text(part: MIMEPart | None) -> str | None:
    if part is None:
        return None
    content = part.get_content()
    if not isinstance(content, str):
        return None
    if "\x00" in content:
        raise _refused("a text part holds NUL characters")
    return content


def read_message(text: str) -> Message:
    """The parts of a whole message that an email of ours holds; ``InvalidParameter``
    naming the cause for anything too large, too many parts or unreadable."""
    raw = text.encode("utf-8", errors="replace")
    limit = conf.inbound_max_bytes()
    if len(raw) > limit:
        raise _refused(f"the message is larger than {limit} bytes")
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    if b":" not in head.split(b"\n", 1)[0]:
        raise _refused(
            "neither a MIME type (text/html) nor a whole message (RFC 5322: header lines, "
            "a blank line, the body)"
        )
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)  # policy.default makes EmailMessage
        parts = 0
        for _ in message.walk():
            parts += 1
            if parts > conf.inbound_max_parts():
                raise _refused(f"the message has more than {conf.inbound_max_parts()} parts")
        senders = _addresses(message, "From")
        read = Message(
            subject=str(message["Subject"]) if message["Subject"] is not None else None,
            sender=senders[0].address if senders else "",
            to=_addresses(message, "To"),
            cc=_addresses(message, "Cc"),
            bcc=_addresses(message, "Bcc"),
            reply_to=_addresses(message, "Reply-To"),
            headers=_custom_headers(message),
            # The receipts go to the sender's address (the service's rule), whatever
            # address the message's own request names.
            request_delivery_receipt=message["Return-Receipt-To"] is not None,
            request_read_receipt=message["Disposition-Notification-To"] is not None,
            body_text=_text(message.get_body(("plain",))),
            body_html=_text(message.get_body(("html",))),
        )
        for part in message.iter_attachments():
            content = part.get_payload(decode=True)
            if not isinstance(content, bytes):  # an attached message/rfc822
                content = part.as_bytes()
            read.attachments.append(
                Attachment(
                    filename=part.get_filename() or "attachment",
                    mime_type=part.get_content_type(),
                    content=content,
                )
            )
    except _BROKEN as exc:
        raise _refused(f"the message cannot be read ({exc})") from exc
    return read
