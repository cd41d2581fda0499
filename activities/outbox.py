"""Reading the outbox folder that ``activities.mail.OutboxBackend`` writes.

A message is named by its file name alone, and a name is only used when it is in the
folder's own listing: nothing a request sends can point outside the folder (no ``..``,
no absolute path, no link to follow). The list reads each file's headers only, so a
folder of large messages lists as quickly as one of small ones.
"""

from __future__ import annotations

import email.policy
import os
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string

from .mail import OutboxBackend

# The backend writes this line before the message: the envelope recipients (Bcc too).
ENVELOPE_HEADER = "X-Outbox-Envelope-To"
# Headers end long before this in any message the backend writes; a file without a
# blank line in its first bytes is listed with what could be read.
HEADER_LIMIT = 256 * 1024


def outbox_enabled() -> bool:
    """Whether mail goes to the outbox folder (the embedded default)."""
    try:
        backend = import_string(settings.EMAIL_BACKEND)
    except ImportError:
        return False
    return isinstance(backend, type) and issubclass(backend, OutboxBackend)


def mail_destination() -> str:
    """Where mail goes when it is not the outbox, in words for the page."""
    backend = settings.EMAIL_BACKEND
    if backend.endswith(("smtp.EmailBackend", "mail.SMTPBackend")):
        security = " over TLS" if settings.EMAIL_USE_TLS or settings.EMAIL_USE_SSL else ""
        return f"the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT}{security}"
    if backend.startswith("anymail."):
        return f"a mail provider, through django-anymail ({backend})"
    if backend.endswith("locmem.EmailBackend"):
        return "Django's in-memory test outbox (nothing is kept)"
    if backend.endswith("console.EmailBackend"):
        return "the web process's console output"
    return f"the mail backend {backend}"


def outbox_dir() -> Path:
    return Path(settings.OUTBOX_DIR)


def message_names() -> list[str]:
    """The messages in the folder, newest first (names start with the time written)."""
    try:
        with os.scandir(outbox_dir()) as entries:
            names = [
                entry.name
                for entry in entries
                if entry.name.endswith(".eml")
                and not entry.name.startswith(".")
                and entry.is_file(follow_symlinks=False)
            ]
    except FileNotFoundError:
        return []
    return sorted(names, reverse=True)


def message_path(name: str) -> Path | None:
    """The file of the message ``name``, or None when the folder has no such message."""
    if name not in message_names():
        return None
    return outbox_dir() / name


@dataclass(frozen=True)
class Summary:
    name: str
    date: datetime | None
    date_text: str
    sender: str
    to: str
    subject: str
    size: int


def _header(message, name: str) -> str:
    try:
        return str(message.get(name) or "")
    except (ValueError, TypeError, IndexError):  # a header the parser chokes on: show it raw
        raw = (value for key, value in message.raw_items() if key.lower() == name.lower())
        return str(next(raw, ""))


def _date(text: str) -> datetime | None:
    try:
        return parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError, IndexError):
        return None


def summary(name: str) -> Summary:
    """Date, From, To and Subject of a message, read from its headers only."""
    path = outbox_dir() / name
    with path.open("rb") as fh:
        head = fh.read(HEADER_LIMIT)
        size = os.fstat(fh.fileno()).st_size
    end = head.find(b"\r\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
    if end >= 0:
        head = head[: end + 2]
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(head)
    date_text = _header(headers, "Date")
    return Summary(
        name=name,
        date=_date(date_text),
        date_text=date_text,
        sender=_header(headers, "From"),
        to=_header(headers, "To") or _header(headers, ENVELOPE_HEADER),
        subject=_header(headers, "Subject"),
        size=size,
    )


# The headers shown above the body, in the order a mail program shows them.
SHOWN_HEADERS = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "X-Priority",
    "Importance",
)


@dataclass(frozen=True)
class Part:
    index: int  # the part's place in ``message.walk()``: the download URL's number
    content_type: str
    filename: str
    size: int


@dataclass
class Opened:
    name: str
    message: EmailMessage
    headers: list[tuple[str, str]]
    all_headers: list[tuple[str, str]]
    envelope_to: str
    date: datetime | None
    html: str
    text: str
    parts: list[Part]


def _text_of(part) -> str:
    try:
        return part.get_content()
    except (LookupError, ValueError, AssertionError):  # an unknown or lying charset
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace")


def _payload(part) -> bytes:
    return part.get_payload(decode=True) or b""


def open_message(path: Path) -> Opened:
    """The whole message: headers, its HTML and text bodies, and every leaf part."""
    with path.open("rb") as fh:
        message = BytesParser(policy=email.policy.default).parse(fh)
    html = text = ""
    parts: list[Part] = []
    for index, part in enumerate(message.walk()):
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        content_type = part.get_content_type()
        if disposition != "attachment":
            # The first HTML and the first plain-text part are the bodies; others list.
            if content_type == "text/html" and not html:
                html = _text_of(part)
                continue
            if content_type == "text/plain" and not text:
                text = _text_of(part)
                continue
        parts.append(
            Part(
                index=index,
                content_type=content_type,
                filename=part.get_filename() or "",
                size=len(_payload(part)),
            )
        )
    shown = [(h, _header(message, h)) for h in SHOWN_HEADERS if h in message]
    try:
        every = [(key, str(value)) for key, value in message.items()]
    except (ValueError, TypeError, IndexError):
        every = [(key, str(value)) for key, value in message.raw_items()]
    return Opened(
        name=path.name,
        message=message,
        headers=shown,
        all_headers=every,
        envelope_to=_header(message, ENVELOPE_HEADER),
        date=_date(_header(message, "Date")),
        html=html,
        text=text,
        parts=parts,
    )


def message_part(message: EmailMessage, index: int):
    """The leaf part at ``index`` of ``message.walk()``, or None."""
    for n, part in enumerate(message.walk()):
        if n == index:
            return None if part.is_multipart() else part
    return None


def part_bytes(part) -> bytes:
    return _payload(part)
