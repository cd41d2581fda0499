"""Building MIME messages from emails, and the outbox mail backend."""

from __future__ import annotations

import base64
import os
import smtplib
import threading
import uuid
from collections import OrderedDict
from email.mime.base import MIMEBase
from email.utils import parseaddr
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as DjangoSMTPBackend
from django.core.mail.message import sanitize_address
from django.utils import timezone

from .links import bounce_address, unsubscribe_url
from .models import (
    ActivityMimeAttachment,
    AttachmentBlob,
    DeliveryState,
    Email,
    PartyRole,
    Priority,
)
from .storage import read_verified

# 57 raw bytes make one 76-character base64 line; read in multiples of that.
_B64_LINE = 57
_READ_CHUNK = _B64_LINE * 1024


def _encode_blob(blob: AttachmentBlob, *, label: str) -> str:
    """Base64 of the blob's bytes in 76-column lines, read from storage in chunks and
    checked against the blob's size and SHA-256 (``read_verified``): a corrupted blob
    raises ``AttachmentCorrupted`` naming ``label``, and nothing of it is used."""
    lines: list[str] = []
    pending = b""
    for chunk in read_verified(
        default_storage,
        blob.file.name,
        size=blob.size,
        sha256=blob.sha256,
        label=label,
        chunk_size=_READ_CHUNK,
    ):
        pending += chunk
        whole = len(pending) - len(pending) % _B64_LINE
        for i in range(0, whole, _B64_LINE):
            lines.append(base64.b64encode(pending[i : i + _B64_LINE]).decode("ascii"))
        pending = pending[whole:]
    if pending:
        lines.append(base64.b64encode(pending).decode("ascii"))
    return "\n".join(lines) + "\n" if lines else ""


class _EncodedBlobCache:
    """A small LRU of encoded attachment bodies, keyed by SHA-256.

    A content-addressed blob encodes to the same base64 every time, so many emails
    carrying one template attachment share one encoding. Bounded in bytes.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, blob: AttachmentBlob, *, label: str = "") -> tuple[str, bytes]:
        """The blob's base64 body with LF line ends (for the MIME part) and with CRLF
        line ends as bytes (written as is into the message: see ``message_bytes``).

        Read and verified on a miss (``label``, the attachment's file name, names it if
        its bytes are corrupted); a hit holds bytes that were verified when read."""
        with self._lock:
            if blob.sha256 in self._items:
                self._items.move_to_end(blob.sha256)
                return self._items[blob.sha256]
        text = _encode_blob(blob, label=label or blob.sha256)
        encoded = (text, text.replace("\n", "\r\n").encode("ascii"))
        size = len(encoded[0]) + len(encoded[1])
        if size <= self.max_bytes // 4:
            with self._lock:
                if blob.sha256 not in self._items:
                    self._items[blob.sha256] = encoded
                    self._size += size
                while self._size > self.max_bytes and self._items:
                    _, (dropped, dropped_crlf) = self._items.popitem(last=False)
                    self._size -= len(dropped) + len(dropped_crlf)
        return encoded

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


encoded_blobs = _EncodedBlobCache()


def attachment_part(attachment: ActivityMimeAttachment) -> MIMEBase:
    maintype, _, subtype = attachment.mime_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    text, crlf = encoded_blobs.get(attachment.blob, label=attachment.filename)
    part.set_payload(text)
    part.crm_encoded_crlf = crlf  # type: ignore[attr-defined]  # see message_bytes
    part["Content-Transfer-Encoding"] = "base64"
    filename: str | tuple[str, str, str] = attachment.filename
    try:
        attachment.filename.encode("ascii")
    except UnicodeEncodeError:
        filename = ("utf-8", "", attachment.filename)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


PRIORITY_HEADERS: dict[str, dict[str, str]] = {
    Priority.HIGH: {"X-Priority": "1 (Highest)", "Importance": "high"},
    Priority.LOW: {"X-Priority": "5 (Lowest)", "Importance": "low"},
}


def build_message(email: Email, *, connection=None) -> EmailMultiAlternatives:
    """The message exactly as it goes out: fixed Message-ID, both bodies, attachments.

    Bcc recipients are envelope recipients only; no Bcc header is written.
    """
    parties = list(email.parties.all())
    by_role: dict[str, list[str]] = {role: [] for role in PartyRole.values}
    for party in sorted(parties, key=lambda p: (p.role, p.position, p.pk or 0)):
        by_role[party.role].append(party.formatted)
    from_party = next((p for p in parties if p.role == PartyRole.FROM), None)
    from_email = from_party.formatted if from_party else email.from_address
    headers = {"Message-ID": email.message_id}
    if email.in_reply_to:
        headers["In-Reply-To"] = email.in_reply_to
        headers["References"] = (email.references + " " + email.in_reply_to).strip()
    headers.update(PRIORITY_HEADERS.get(email.priority, {}))
    # Receipts go to the sender's address (RFC 8098 for the read receipt; the delivery
    # receipt's header is the older convention, with DSN NOTIFY=SUCCESS on SMTP).
    receipt_to = from_party.address if from_party else parseaddr(from_email)[1]
    if email.request_read_receipt and receipt_to:
        headers["Disposition-Notification-To"] = receipt_to
    if email.request_delivery_receipt and receipt_to:
        headers["Return-Receipt-To"] = receipt_to
    if email.bulk_send_id:
        # RFC 2369 and RFC 8058: mail clients offer "unsubscribe" and POST to the link.
        headers["List-Unsubscribe"] = f"<{unsubscribe_url(email.pk)}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Custom headers were checked when set (addresses.check_custom_headers): none of
    # them is one the application writes, so they never replace the ones above.
    for header in email.headers or []:
        headers.setdefault(header["name"], header["value"])
    text = email.body_text
    if not text and email.body_html:
        from django.utils.html import strip_tags

        text = strip_tags(email.body_html)
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=text,
        from_email=from_email,
        to=by_role[PartyRole.TO],
        cc=by_role[PartyRole.CC],
        bcc=by_role[PartyRole.BCC],
        reply_to=by_role[PartyRole.REPLY_TO],
        headers=headers,
        connection=connection,
    )
    # The SMTP backend sends it from the email's bounce address (VERP), when one is set.
    message.crm_email_id = email.pk  # type: ignore[attr-defined]
    # The SMTP backend asks for a DSN on success too where the server offers DSN.
    message.crm_notify_success = email.request_delivery_receipt  # type: ignore[attr-defined]
    if email.body_html:
        message.attach_alternative(email.body_html, "text/html")
    for attachment in email.attachments.all():
        message.attach(attachment_part(attachment))
    return message


def message_bytes(message: EmailMessage) -> bytes:
    """The message as it goes on the wire (CRLF line ends).

    Python's generator writes a base64 body line by line, which for a 100 KB attachment
    costs more than everything else about a message. A part built by
    ``attachment_part`` carries its body already encoded with CRLF line ends (cached
    per blob), so it is flattened with a short placeholder that is then replaced by
    those bytes: the same output, without re-walking the attachment for every email.
    """
    mime = message.message()
    swaps: list[tuple[MIMEBase, str, str, bytes]] = []
    for part in mime.walk():
        crlf = getattr(part, "crm_encoded_crlf", None)
        if crlf is not None:
            token = f"crm-part-{uuid.uuid4().hex}"
            swaps.append((part, part.get_payload(), token, crlf))
            part.set_payload(token + "\n")
    try:
        data = mime.as_bytes(linesep="\r\n")
    finally:
        for part, payload, _, _ in swaps:
            part.set_payload(payload)
    for _, _, token, crlf in swaps:
        data = data.replace(token.encode("ascii") + b"\r\n", crlf, 1)
    return data


class OutboxBackend(BaseEmailBackend):
    """Writes each message to its own ``.eml`` file in ``settings.OUTBOX_DIR``.

    The embedded default's mail server: nothing leaves the machine, and the files
    open in any mail program. Files appear whole (written aside, then renamed).
    """

    def __init__(self, *args, outbox_dir: str | os.PathLike | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.outbox_dir = Path(outbox_dir or settings.OUTBOX_DIR)

    def send_messages(self, email_messages) -> int:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
            name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            tmp = self.outbox_dir / f".{name}.tmp"
            data = message_bytes(message)
            envelope = ", ".join(message.recipients()).encode()
            tmp.write_bytes(b"X-Outbox-Envelope-To: " + envelope + b"\r\n" + data)
            os.replace(tmp, self.outbox_dir / name)
            sent += 1
        return sent


class SMTPBackend(DjangoSMTPBackend):
    """Django's SMTP backend that keeps the recipients the server refused.

    ``smtplib.sendmail`` raises only when every recipient is refused; when some are
    accepted it returns the others, which Django drops. They are kept on the message
    as ``refused_recipients`` (``{address: (code, reply)}``) so that delivery can
    record them instead of losing them silently.

    With ``CRM_BOUNCE_DOMAIN`` set, a message built from an email goes out with its
    bounce address as the envelope sender (VERP, ``links.bounce_address``), so that a
    bounce names the email; the From header stays the sender's. An email that asks for
    a delivery receipt asks the server for a DSN on success (RFC 3461) where the server
    offers DSN.
    """

    def _send(self, email_message) -> bool:
        if not email_message.recipients():
            return False
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        email_id = getattr(email_message, "crm_email_id", None)
        envelope = bounce_address(email_id) if email_id else ""
        from_email = sanitize_address(envelope or email_message.from_email, encoding)
        recipients = [sanitize_address(addr, encoding) for addr in email_message.recipients()]
        assert self.connection is not None  # send_messages opened it before calling _send
        rcpt_options: list[str] = []
        try:
            if getattr(email_message, "crm_notify_success", False):
                # The server's extensions are known after EHLO, which sendmail would say.
                self.connection.ehlo_or_helo_if_needed()
                if self.connection.has_extn("dsn"):
                    # RFC 3461: a delivery receipt on success, and the usual bounce on failure.
                    rcpt_options = ["NOTIFY=SUCCESS,FAILURE,DELAY"]
            refused = self.connection.sendmail(
                from_email, recipients, message_bytes(email_message), rcpt_options=rcpt_options
            )
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        email_message.refused_recipients = refused or {}
        return True


def refused_recipients(message) -> dict[str, str]:
    """The recipients a server or provider refused while accepting the message for others."""
    refused: dict[str, str] = {}
    for address, (code, reply) in getattr(message, "refused_recipients", {}).items():
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        refused[address] = f"{code} {text}"
    status = getattr(message, "anymail_status", None)
    for address, recipient in (getattr(status, "recipients", None) or {}).items():
        if recipient.status in ("rejected", "invalid"):
            refused[address] = f"{recipient.status} by the provider"
    return refused


# anymail's recipient status at send (AnymailRecipientStatus.status) -> delivery state.
_SEND_STATUS_STATES = {
    "queued": DeliveryState.QUEUED,
    "scheduled": DeliveryState.QUEUED,
    "sent": DeliveryState.SENT,
    "rejected": DeliveryState.REJECTED,
    "invalid": DeliveryState.REJECTED,
    "failed": DeliveryState.REJECTED,
}


def recipient_outcomes(message, *, message_id: str) -> dict[str, tuple[str, str]]:
    """Each envelope recipient's (provider message id, delivery state) after a send.

    A provider through anymail gives each recipient its own id and status
    (``message.anymail_status.recipients``); the SMTP path has our Message-ID for all
    (a DSN names it), ``sent``, or ``rejected`` for a recipient the server refused.
    """
    status = getattr(message, "anymail_status", None)
    provider = getattr(status, "recipients", None) or {}
    if provider:
        return {
            address: (
                str(recipient.message_id or message_id),
                _SEND_STATUS_STATES.get(recipient.status or "", DeliveryState.SENT),
            )
            for address, recipient in provider.items()
        }
    refused = {address.lower() for address in getattr(message, "refused_recipients", {}) or {}}
    outcomes: dict[str, tuple[str, str]] = {}
    for formatted in message.recipients():
        address = parseaddr(formatted)[1] or formatted
        state = DeliveryState.REJECTED if address.lower() in refused else DeliveryState.SENT
        outcomes[address] = (message_id, state)
    return outcomes
