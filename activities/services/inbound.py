"""Recording received mail: the one way an incoming message becomes an ``Email``.

A raw message (RFC 5322 bytes, as a mailbox, an SMTP listener or a provider's raw
webhook gives it) goes through ``inbound_message_store``, which parses it with the
standard library's ``email`` package (policy ``default``) and calls
``email_record_received`` with what it read. Callers that already hold the parts (the
demo data, a provider's parsed webhook) call ``email_record_received`` directly.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import errors, policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from crm.models import Contact, Organization, Queue, User

from .. import conf
from ..addresses import check_display_name, check_header_value, parse_address
from ..errors import (
    AttachmentTooLarge,
    Conflict,
    EmptyAttachment,
    InvalidAddress,
    ValidationFailed,
)
from ..models import (
    ActivityMimeAttachment,
    AttachmentBlob,
    Direction,
    Email,
    EmailParty,
    EmailState,
    EmailStatus,
    EventKind,
    PartyRole,
)
from ..policies import mailbox_blocked
from .attachments import safe_filename
from .blobs import blob_store
from .emails import SUBJECT_MAX_LENGTH
from .transitions import record_event
from .webhooks import webhook_email_received

logger = logging.getLogger(__name__)

INBOUND_ACTOR = "inbound"


@dataclass(frozen=True)
class ReceivedFile:
    """A part of a received message, already in the blob store."""

    blob: AttachmentBlob
    filename: str
    mime_type: str


def _owner_of(address: str) -> User | Queue | None:
    """The queue or user whose primary address this is (queues first: shared boxes)."""
    lowered = address.lower()
    queue = Queue.objects.annotate(e=Lower("email")).filter(e=lowered).first()
    if queue is not None:
        return queue
    return User.objects.annotate(e=Lower("email")).filter(e=lowered, is_active=True).first()


def inbound_mailbox_of(address: str) -> User | Queue | None:
    """The queue or active user that receives mail at ``address`` here, if any: what an
    SMTP listener accepts recipients for."""
    try:
        parsed = parse_address(address, label="recipient")
    except (InvalidAddress, ValidationFailed):
        return None
    return _owner_of(parsed.address)


def _original_of(
    *, subject: str, in_reply_to: str, references: str, org: Organization
) -> Email | None:
    """The email this one answers: by tracking token in the subject, else by
    In-Reply-To, else by the newest of References that we know."""
    if org.use_tracking_token and org.tracking_token_prefix:
        pattern = rf"{re.escape(org.tracking_token_prefix)}:\d+"
        for token in re.findall(pattern, subject):
            original = Email.objects.filter(
                tracking_token=token, direction=Direction.OUTGOING
            ).first()
            if original is not None:
                return original
    if in_reply_to:
        original = Email.objects.filter(message_id=in_reply_to).first()
        if original is not None:
            return original
    for message_id in reversed(references.split()):
        original = Email.objects.filter(message_id=message_id).first()
        if original is not None:
            return original
    return None


def _already_received(message_id: str) -> Email | None:
    """The received email of this Message-ID, if one was recorded."""
    if not message_id:
        return None
    return Email.objects.filter(message_id=message_id, direction=Direction.INCOMING).first()


def email_record_received(
    *,
    from_address: str,
    to: Sequence[str],
    subject: str = "",
    body_html: str = "",
    body_text: str = "",
    cc: Sequence[str] = (),
    message_id: str = "",
    in_reply_to: str = "",
    references: str = "",
    received_at: datetime | None = None,
    files: Sequence[ReceivedFile] = (),
    notes: Sequence[str] = (),
) -> Email:
    """Record an incoming message as a ``received`` email and return it.

    Addresses are parsed strictly (``"Name <addr>"`` or bare) and header values may
    not hold CR, LF or NUL (``InvalidAddress`` / ``InvalidHeader``; nothing is
    written). Each recipient address that belongs to a queue or user becomes a party
    linked to it, so its members see the mail, unless the organisation requires
    approval for that kind of mailbox and its address is not approved: then the
    party keeps only the address (the mail is kept but not routed) and a note event
    says why. The sender is linked to the contact with that address, which also
    becomes the regarding record. The original is found by the tracking token in the
    subject, else by In-Reply-To, and becomes ``parent``. The same Message-ID
    received twice returns the first email and writes nothing; the Message-ID of one of
    our outgoing emails is refused (``Conflict``). ``files`` (already in the blob
    store) become its attachments and ``notes`` its note events (what could not be
    read), in the same transaction.
    """
    sender = parse_address(from_address, label="from address")
    check_display_name(sender.name, label="from name")
    recipients = {
        PartyRole.TO: [parse_address(a, label="to address") for a in to],
        PartyRole.CC: [parse_address(a, label="cc address") for a in cc],
    }
    check_header_value(subject, label="subject", max_length=SUBJECT_MAX_LENGTH)
    for value, field in (
        (message_id, "Message-ID"),
        (in_reply_to, "In-Reply-To"),
        (references, "References"),
    ):
        check_header_value(value, label=field, max_length=None if field == "References" else 255)
    first = _already_received(message_id)
    if first is not None:
        return first
    org = Organization.get()
    contact = Contact.objects.annotate(e=Lower("email")).filter(e=sender.address.lower()).first()
    parent = _original_of(subject=subject, in_reply_to=in_reply_to, references=references, org=org)
    # The thread's record wins; else the contact who wrote.
    regarding_type: ContentType | None = None
    regarding_id: int | None = None
    if parent is not None and parent.regarding_type_id:
        regarding_type, regarding_id = parent.regarding_type, parent.regarding_id
    elif contact is not None:
        regarding_type, regarding_id = ContentType.objects.get_for_model(Contact), contact.pk
    blocked: list[str] = []
    try:
        with transaction.atomic():
            email = Email.objects.create(
                subject=subject,
                body_html=body_html,
                body_text=body_text,
                direction=Direction.INCOMING,
                status=EmailStatus.RECEIVED,
                state=EmailState.COMPLETED,
                from_address=sender.address,
                from_name=sender.name,
                message_id=message_id,
                in_reply_to=in_reply_to,
                references=references,
                parent=parent,
                received_at=received_at or timezone.now(),
                regarding_type=regarding_type,
                regarding_id=regarding_id,
            )
            parties = [
                EmailParty(
                    email=email,
                    role=PartyRole.FROM,
                    address=sender.address,
                    name=sender.name,
                    contact=contact,
                )
            ]
            for role, addresses in recipients.items():
                for position, address in enumerate(addresses):
                    party = EmailParty(
                        email=email,
                        role=role,
                        position=position,
                        address=address.address,
                        name=address.name,
                    )
                    owner = _owner_of(address.address)
                    if owner is not None and mailbox_blocked(owner, org):
                        blocked.append(f"{address.address} ({owner.display_name})")
                    elif isinstance(owner, Queue):
                        party.queue = owner
                    elif isinstance(owner, User):
                        party.user = owner
                    parties.append(party)
            EmailParty.objects.bulk_create(parties)
            ActivityMimeAttachment.objects.bulk_create(
                ActivityMimeAttachment(
                    email=email,
                    blob=file.blob,
                    filename=file.filename,
                    mime_type=file.mime_type,
                    position=position,
                )
                for position, file in enumerate(files)
            )
            record_event(
                email_id=email.pk,
                kind=EventKind.STATUS,
                to_status=EmailStatus.RECEIVED,
                actor_label=INBOUND_ACTOR,
                reason="received" + (f" in reply to #{parent.pk}" if parent else ""),
            )
            if blocked:
                record_event(
                    email_id=email.pk,
                    kind=EventKind.NOTE,
                    actor_label=INBOUND_ACTOR,
                    reason="kept but not routed to "
                    + ", ".join(blocked)
                    + ": the address is not approved",
                )
            for note in notes:
                record_event(
                    email_id=email.pk, kind=EventKind.NOTE, actor_label=INBOUND_ACTOR, reason=note
                )
            webhook_email_received(email_id=email.pk)
    except IntegrityError as exc:
        # The same Message-ID recorded just now by a concurrent delivery of the webhook,
        # or (a loop) the Message-ID of one of our own outgoing emails.
        first = Email.objects.filter(message_id=message_id).first()
        if first is None:
            raise
        if first.direction == Direction.INCOMING:
            return first
        raise Conflict(
            f"the Message-ID {message_id} is that of outgoing email #{first.pk}",
            code="duplicate_message_id",
        ) from exc
    return email


# --- raw messages -----------------------------------------------------------------------

_ONE_LINE = re.compile(r"[\r\n\x00]+")


def _clean(value: str) -> str:
    """One line of real text: the parser keeps undecodable 8-bit bytes as surrogates,
    read here as UTF-8, else as Windows-1252 (what unlabelled 8-bit headers mostly are)."""
    raw = value.encode("utf-8", errors="surrogateescape")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return _ONE_LINE.sub(" ", text).strip()


def _header(message: EmailMessage, name: str) -> str:
    """A header's decoded value on one line; ``""`` when absent or unreadable."""
    try:
        value = message.get(name)
    except Exception:  # the policy's parser meets every kind of broken header
        return ""
    return _clean(str(value)) if value is not None else ""


def _addresses(message: EmailMessage, name: str, notes: list[str]) -> list[str]:
    """Each address of a header on its own (``"Name <addr>"``).

    Read from the header's source: the header parser leaves out what it cannot read
    (``a@x.org; b@x.org`` gives only the first), so a list split by semicolons is read
    piece by piece, and whatever is still left out is named in ``notes``: never a
    recipient dropped in silence."""
    kept: list[str] = []
    for source in (v for n, v in message.raw_items() if n.lower() == name.lower()):
        value = _clean(str(source))
        complete = True
        for piece in value.split(";") if ";" in value else [value]:
            try:
                header = policy.default.header_factory(name, piece)
                addresses = list(getattr(header, "addresses", ()))
            except Exception:
                complete, addresses = False, []
            else:
                if any(isinstance(d, errors.InvalidHeaderDefect) for d in header.defects):
                    complete = False
            for address in addresses:
                text = str(address)
                try:
                    parse_address(text, label=f"{name} address")
                except (InvalidAddress, ValidationFailed):
                    notes.append(f"an unreadable {name} address was left out: {text[:200]}")
                    continue
                kept.append(text)
        if not complete:
            notes.append(
                f"the {name} header was not read in full ({len(kept)} addresses taken): "
                f"{value[:300]}"
            )
    return kept


def _body(message: EmailMessage, subtype: str) -> MIMEPart | None:
    try:
        return message.get_body(preferencelist=(subtype,))
    except Exception:  # a structure the walk of ``get_body`` trips on: no body of it
        return None


def _text_of(part: MIMEPart) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):  # an unknown or lying charset
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _files_of(
    message: EmailMessage, bodies: list[MIMEPart], notes: list[str]
) -> list[ReceivedFile]:
    """Every leaf part that is not a chosen body, stored once each in the blob store."""
    limit = Organization.get().max_attachment_bytes
    max_parts = conf.inbound_max_parts()
    files: list[ReceivedFile] = []
    leaves = [p for p in message.walk() if not p.is_multipart() and p not in bodies]
    for index, part in enumerate(leaves, start=1):
        if len(files) >= max_parts:
            notes.append(
                f"{len(leaves) - index + 1:,} more parts were not stored: a message keeps at "
                f"most {max_parts} (CRM_INBOUND_MAX_PARTS)"
            )
            break
        mime_type = part.get_content_type()
        try:
            filename = part.get_filename() or ""
        except Exception:
            filename = ""
        filename = safe_filename(
            filename or f"part-{index}{mimetypes.guess_extension(mime_type) or '.bin'}"
        )
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        try:
            blob, _ = blob_store(source=data, max_bytes=limit)
        except EmptyAttachment:
            notes.append(f"the part {filename!r} is empty and was not stored")
            continue
        except AttachmentTooLarge:
            notes.append(
                f"the part {filename!r} ({len(data):,} bytes) is over the attachment limit "
                f"of {limit:,} bytes and was not stored"
            )
            continue
        files.append(ReceivedFile(blob=blob, filename=filename, mime_type=mime_type))
    return files


def inbound_message_store(*, raw: bytes) -> Email:
    """Parse a raw message and record it as a received email (``email_record_received``).

    Each address of From/To/Cc is taken on its own (a header holding several gives
    several parties); the plain and HTML bodies are the message's own choice
    (``get_body``); every other leaf part, inline images included, becomes an
    attachment stored once in the blob store. What cannot be read (an address, a part
    over the size limit, parts beyond ``CRM_INBOUND_MAX_PARTS``) is left out and named
    in a note event of the email. A message over ``CRM_INBOUND_MAX_BYTES`` or without
    a readable From address is refused with the reason (``ValidationFailed``).
    """
    limit = conf.inbound_max_bytes()
    if len(raw) > limit:
        raise ValidationFailed(
            f"the message is {len(raw):,} bytes, over the limit of {limit:,} bytes "
            f"(CRM_INBOUND_MAX_BYTES)",
            code="message_too_large",
        )
    message = BytesParser(policy=policy.default).parsebytes(raw)  # an EmailMessage
    notes: list[str] = []
    senders = _addresses(message, "From", notes)
    if not senders:
        raise ValidationFailed(
            "the message has no readable From address" + (f" ({notes[0]})" if notes else ""),
            code="no_sender",
        )
    bodies = [part for part in (_body(message, "plain"), _body(message, "html")) if part]
    body_text = body_html = ""
    for part in bodies:
        if part.get_content_type() == "text/html":
            body_html = body_html or _text_of(part)
        else:
            body_text = body_text or _text_of(part)
    message_id = _header(message, "Message-ID")
    if len(message_id) > 255 or " " in message_id:
        notes.append(f"the Message-ID was not usable and was left out: {message_id[:200]!r}")
        message_id = ""
    in_reply_to = _header(message, "In-Reply-To")
    if len(in_reply_to) > 255:
        notes.append("the In-Reply-To header is over 255 characters and was left out")
        in_reply_to = ""
    subject = _header(message, "Subject")[:SUBJECT_MAX_LENGTH]
    if len(senders) > 1:
        notes.append(f"From names {len(senders)} addresses; the first is taken as the sender")
    first = _already_received(message_id)
    if first is not None:  # a webhook retried, or the same mail by two routes
        return first
    return email_record_received(
        from_address=senders[0],
        to=_addresses(message, "To", notes),
        cc=_addresses(message, "Cc", notes),
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=_header(message, "References"),
        files=_files_of(message, bodies, notes),
        notes=notes,
    )
