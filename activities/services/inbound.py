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
from datetime import datetime, timedelta
from email import errors, policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesHeaderParser, BytesParser

import filetype
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from crm.models import Contact, EmailApproval, Organization, Queue, User

from .. import conf, dispatch
from ..addresses import check_display_name, check_header_value, parse_address
from ..errors import (
    ApplicationError,
    AttachmentCorrupted,
    AttachmentTooLarge,
    Conflict,
    EmptyAttachment,
    InvalidAddress,
    MessageHeld,
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
    InboundMessage,
    InboundStatus,
    PartyRole,
)
from ..policies import mailbox_blocked
from .attachments import safe_filename
from .blobs import blob_open_verified, blob_store
from .bounces import bounce_message_process
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
    content_id: str = ""


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
    bcc: Sequence[str] = (),
    message_id: str = "",
    in_reply_to: str = "",
    references: str = "",
    received_at: datetime | None = None,
    files: Sequence[ReceivedFile] = (),
    notes: Sequence[str] = (),
    reply_to: Sequence[str] = (),
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
    read), in the same transaction. ``bcc`` are the envelope recipients the headers do
    not name (an SMTP listener's RCPT TO), so a blind copy reaches its mailbox too.
    ``reply_to`` (the Reply-To addresses, where a reply goes) are kept as parties and
    route nothing.
    """
    sender = parse_address(from_address, label="from address")
    check_display_name(sender.name, label="from name")
    recipients = {
        PartyRole.TO: [parse_address(a, label="to address") for a in to],
        PartyRole.CC: [parse_address(a, label="cc address") for a in cc],
        PartyRole.BCC: [parse_address(a, label="bcc address") for a in bcc],
    }
    reply_addresses = [parse_address(a, label="reply-to address") for a in reply_to]
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
            parties.extend(
                EmailParty(
                    email=email,
                    role=PartyRole.REPLY_TO,
                    position=position,
                    address=address.address,
                    name=address.name,
                )
                for position, address in enumerate(reply_addresses)
            )
            EmailParty.objects.bulk_create(parties)
            ActivityMimeAttachment.objects.bulk_create(
                ActivityMimeAttachment(
                    email=email,
                    blob=file.blob,
                    filename=file.filename,
                    mime_type=file.mime_type,
                    content_id=file.content_id,
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


def _header(message: MIMEPart, name: str) -> str:
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
        files.append(
            ReceivedFile(
                blob=blob,
                filename=filename,
                mime_type=_sniffed_type(mime_type, data, filename, notes),
                content_id=_content_id(part),
            )
        )
    return files


def _content_id(part: MIMEPart) -> str:
    """The part's Content-ID without its angle brackets (``""`` when it has none)."""
    value = _header(part, "Content-ID")
    return value.strip().removeprefix("<").removesuffix(">").strip()[:255]


# What a sender may call a file that the bytes must then bear out: the types a browser
# or a reader's desktop opens on its own. Anything else is named what its sender said,
# and every attachment is served as a download, never shown (activities.downloads).
_CHECKED_TYPES = ("application/pdf", "image/", "audio/", "video/", "application/zip")
_EXECUTABLE_TYPES = {
    "application/x-msdownload",
    "application/x-executable",
    "application/x-elf",
    "application/x-mach-binary",
    "application/x-shockwave-flash",
}
OCTET_STREAM = "application/octet-stream"


def _sniffed_type(claimed: str, data: bytes, filename: str, notes: list[str]) -> str:
    """The MIME type a part is kept with: the claimed one unless its first bytes say
    otherwise (``filetype``'s magic numbers): an executable, or a PDF, image, sound,
    video or archive that is not one, becomes ``application/octet-stream``, named in a
    note."""
    found = filetype.guess_mime(data[:8192]) or ""
    claimed_checked = claimed.startswith(_CHECKED_TYPES)
    if found in _EXECUTABLE_TYPES or (claimed_checked and found != claimed):
        major = claimed.split("/")[0]
        if (
            found not in _EXECUTABLE_TYPES
            and major in ("image", "audio", "video")
            and found.split("/")[0] == major
        ):
            return found  # an image/jpeg called image/png: still the image it is
        notes.append(
            f"the part {filename!r} says it is {claimed} but its content is "
            f"{found or 'not that'}: it is kept as {OCTET_STREAM}"
        )
        return OCTET_STREAM
    return claimed


@dataclass
class _Read:
    """What a raw message says, as ``email_record_received`` takes it."""

    from_address: str
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    subject: str
    body_text: str
    body_html: str
    message_id: str
    in_reply_to: str
    references: str
    notes: list[str]
    message: EmailMessage
    bodies: list[MIMEPart]


class _Refused(Exception):
    """The message was read but cannot become an email: status ``refused``."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason, self.code = reason, code


def _read(raw: bytes) -> _Read:
    """Parse a raw message (the standard library, policy ``default``); ``_Refused``
    without a readable From address; any other exception is the parser's."""
    message = BytesParser(policy=policy.default).parsebytes(raw)  # an EmailMessage
    notes: list[str] = []
    senders = _addresses(message, "From", notes)
    if not senders:
        raise _Refused(
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
    message_id = _usable_message_id(_header(message, "Message-ID"), notes)
    in_reply_to = _header(message, "In-Reply-To")
    if len(in_reply_to) > 255:
        notes.append("the In-Reply-To header is over 255 characters and was left out")
        in_reply_to = ""
    if len(senders) > 1:
        notes.append(f"From names {len(senders)} addresses; the first is taken as the sender")
    return _Read(
        from_address=senders[0],
        to=_addresses(message, "To", notes),
        cc=_addresses(message, "Cc", notes),
        reply_to=_addresses(message, "Reply-To", notes),
        subject=_header(message, "Subject")[:SUBJECT_MAX_LENGTH],
        body_text=body_text,
        body_html=body_html,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=_header(message, "References"),
        notes=notes,
        message=message,
        bodies=bodies,
    )


def _usable_message_id(message_id: str, notes: list[str] | None = None) -> str:
    if len(message_id) > 255 or " " in message_id:
        if notes is not None:
            notes.append(f"the Message-ID was not usable and was left out: {message_id[:200]!r}")
        return ""
    return message_id


# Headers end within this many bytes in any message worth the name; the Message-ID is
# looked for there only (a duplicate found before anything is kept).
_HEAD_BYTES = 256 * 1024


def _quick_message_id(raw: bytes) -> str:
    """The Message-ID from the head of the raw message; ``""`` if there is none to read."""
    head = raw[:_HEAD_BYTES]
    end = min((i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0), default=-1)
    if end < 0:
        return ""
    try:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(head[:end] + b"\r\n\r\n")
    except Exception:  # the head is broken: the full read decides later
        return ""
    return _usable_message_id(_header(headers, "Message-ID"))


Mailbox = User | Queue


def _mailboxes(addresses: Sequence[str]) -> list[Mailbox]:
    found: list[Mailbox] = []
    for address in addresses:
        owner = inbound_mailbox_of(address)
        if owner is not None and owner not in found:
            found.append(owner)
    return found


def _blocked_reason(blocked: Sequence[Mailbox], org: Organization) -> str:
    names = []
    for mailbox in blocked:
        kind = "queue" if isinstance(mailbox, Queue) else "user"
        state = EmailApproval(mailbox.email_router_access_approval or "").label.lower()
        names.append(f"{mailbox.email} (the {kind} {mailbox.display_name}, {state})")
    return (
        "held for approval: addressed to "
        + ", ".join(names)
        + ", whose address is not approved; the organisation requires approval of "
        + ("queue" if isinstance(blocked[0], Queue) else "user")
        + " addresses before their mail is routed. Approving the address releases it."
    )


def _set_owner(message: InboundMessage, mailbox: Mailbox | None) -> None:
    message.owner_queue = mailbox if isinstance(mailbox, Queue) else None
    message.owner_user = mailbox if isinstance(mailbox, User) else None


def _finish(message: InboundMessage, **fields: object) -> InboundMessage:
    for name, value in fields.items():
        setattr(message, name, value)
    message.decided_at = timezone.now()
    message.reading_since = None
    message.save(
        update_fields=[
            *fields,
            "decided_at",
            "reading_since",
            "owner_user",
            "owner_queue",
            "from_address",
            "subject",
        ]
    )
    return message


# A read claimed this long ago and not finished is a crash: another may take it over.
READ_CLAIM_SECONDS = 600


# Reads of one message begun and never finished before it is given up as unreadable.
MAX_READ_ATTEMPTS = 3


def _claim(message: InboundMessage, wanted: Sequence[str]) -> bool:
    """Take the read of ``message`` (compare-and-swap): ``False`` when another process
    reads it now or it is no longer in a ``wanted`` status."""
    now = timezone.now()
    stale = now - timedelta(seconds=READ_CLAIM_SECONDS)
    taken = (
        InboundMessage.objects.filter(pk=message.pk, status__in=list(wanted))
        .filter(Q(reading_since__isnull=True) | Q(reading_since__lt=stale))
        .update(reading_since=now, status=InboundStatus.KEPT, read_attempts=F("read_attempts") + 1)
    )
    if taken:
        message.reading_since, message.status = now, InboundStatus.KEPT
        message.read_attempts = (
            InboundMessage.objects.filter(pk=message.pk)
            .values_list("read_attempts", flat=True)
            .get()
        )
    return bool(taken)


def _bounce_of(message: InboundMessage, raw: bytes) -> InboundMessage | None:
    """A bounce of mail sent from here (``bounce_message_process``: a DSN or a known
    non-standard one, found by VERP or the original's Message-ID) is finished as
    ``bounce``, its failures recorded on the email it answers; ``None`` for any other
    message. A detector failing on a hostile message is no bounce: the message is read
    as mail."""
    try:
        events = bounce_message_process(raw=raw, envelope_recipients=message.envelope_recipients)
    except DatabaseError:
        raise  # left ``kept``: the sweep reads it again
    except Exception as exc:  # noqa: BLE001  # whatever a hostile message makes the detector do
        logger.info("inbound message %s: the bounce detector failed: %r", message.pk, exc)
        return None
    if events is None:
        return None
    emails = sorted({event.email_id for event in events})
    return _finish(
        message,
        status=InboundStatus.BOUNCE,
        code="bounce",
        reason=(
            f"a bounce: {len(events)} delivery event(s) recorded on email "
            + ", ".join(f"#{pk}" for pk in emails)
            if events
            else "a bounce of no email of this application, or one recorded before"
        ),
    )


def _unparsable(
    message: InboundMessage, exc: Exception, *, message_id: str | None = None
) -> InboundMessage:
    """Finished as ``unparsable``, naming what the parser or the reading raised; with
    the Message-ID read so far, when there is one."""
    logger.warning("inbound message %s is unreadable: %r", message.pk, exc)
    fields: dict[str, object] = {"message_id": message_id} if message_id is not None else {}
    return _finish(
        message,
        status=InboundStatus.UNPARSABLE,
        code="unparsable",
        reason=f"the message could not be read: {type(exc).__name__}: {exc}"[:2000],
        **fields,
    )


def inbound_message_read(
    *, message: InboundMessage, release: bool = False, claimed: bool = False
) -> InboundMessage:
    """Read a kept raw message and decide what it becomes; return it with its status.

    ``stored`` (with its ``email``): recorded by ``email_record_received``, threaded,
    its parts in the blob store. ``blocked``: every mailbox it is for (To, Cc and the
    envelope recipients) that is known here waits for its address to be approved, so it
    is not routed; the first of them is its owner, and approving that address releases
    it. ``refused``: read, but it cannot be an email (no sender, an address or header
    the record refuses), with the reason and its code. ``unparsable``: the parser or
    the reading failed (broken MIME, a structure nested too deep, out of memory), with
    the exception named. Only a database error passes on: the message stays ``kept``
    and the sweep reads it again. ``release`` (an approval, or an approver's Release)
    reads a ``blocked`` message again; other statuses than ``kept`` are left as they are.
    The read is claimed first (``claimed``: by the caller, as a new row is), so two
    processes never record one message twice.
    """
    wanted = (InboundStatus.KEPT, InboundStatus.BLOCKED) if release else (InboundStatus.KEPT,)
    if not claimed and not _claim(message, wanted):
        message.refresh_from_db()
        return message
    if message.read_attempts > MAX_READ_ATTEMPTS:
        return _finish(
            message,
            status=InboundStatus.UNPARSABLE,
            code="read_abandoned",
            reason=f"reading it was begun {MAX_READ_ATTEMPTS} times and never finished "
            "(the process reading it stopped): it is not read again",
        )
    try:
        with blob_open_verified(blob=message.blob, label=f"inbound message #{message.pk}") as fh:
            raw = fh.read()
    except (FileNotFoundError, AttachmentCorrupted) as exc:
        return _finish(
            message,
            status=InboundStatus.UNPARSABLE,
            code="raw_unreadable",
            reason=f"the kept raw message cannot be read back: {exc}",
        )
    bounce = _bounce_of(message, raw)
    if bounce is not None:
        return bounce
    try:
        read = _read(raw)
    except _Refused as refused:
        return _finish(
            message, status=InboundStatus.REFUSED, code=refused.code, reason=refused.reason
        )
    except Exception as exc:  # noqa: BLE001  # whatever a hostile message makes the parser do
        return _unparsable(message, exc)
    if read.message_id and not message.message_id:
        message.message_id = read.message_id
    message.from_address = read.from_address[:320]
    message.subject = read.subject[:400]
    header_recipients = {a.lower() for a in read.to + read.cc}
    blind = [
        a
        for a in message.envelope_recipients
        if (parsed := _address_or_none(a)) and parsed not in header_recipients
    ]
    org = Organization.get()
    mailboxes = _mailboxes([*read.to, *read.cc, *blind])
    blocked = [m for m in mailboxes if mailbox_blocked(m, org)]
    if blocked and len(blocked) == len(mailboxes):
        _set_owner(message, blocked[0])
        return _finish(
            message,
            status=InboundStatus.BLOCKED,
            code="mailbox_not_approved",
            reason=_blocked_reason(blocked, org),
            message_id=message.message_id,
        )
    _set_owner(message, mailboxes[0] if mailboxes else None)
    try:
        files = _files_of(read.message, read.bodies, read.notes)
        email = email_record_received(
            from_address=read.from_address,
            to=read.to,
            cc=read.cc,
            bcc=blind,
            subject=read.subject,
            body_text=read.body_text,
            body_html=read.body_html,
            message_id=read.message_id,
            in_reply_to=read.in_reply_to,
            references=read.references,
            received_at=message.received_at,
            files=files,
            notes=read.notes,
            reply_to=read.reply_to,
        )
    except ApplicationError as exc:
        return _finish(
            message,
            status=InboundStatus.REFUSED,
            code=exc.code,
            reason=str(exc),
            message_id=message.message_id,
        )
    except (DatabaseError, OSError):
        raise  # the database or the storage away: left ``kept``, the sweep reads it again
    except Exception as exc:  # noqa: BLE001  # reading a part failed: the raw stays listed
        return _unparsable(message, exc, message_id=message.message_id)
    duplicate = email.created_at < message.received_at
    return _finish(
        message,
        status=InboundStatus.STORED,
        code="",
        email=email,
        message_id=message.message_id,
        reason=f"the same Message-ID was stored before as email #{email.pk}" if duplicate else "",
    )


def _address_or_none(address: str) -> str | None:
    try:
        return parse_address(address, label="recipient").address.lower()
    except (InvalidAddress, ValidationFailed):
        return None


ROUTE_MAX_LENGTH = 60


def inbound_message_receive(
    *, raw: bytes, route: str = "raw", recipients: Sequence[str] = ()
) -> InboundMessage:
    """Keep a raw message first, then read it (``inbound_message_read``); return its
    ``InboundMessage``, whose status says what became of it.

    Refused before anything is kept (``ValidationFailed``): a message over
    ``CRM_INBOUND_MAX_BYTES`` (``message_too_large``) or empty (``empty_message``).
    Then the raw bytes go to the blob store and their row is written, each in its own
    short transaction, before a byte is parsed: from there nothing is lost, whatever
    the parser meets. The same Message-ID kept before (a webhook retried, the same
    mail by two routes) keeps nothing again and returns the first row. ``route`` names
    where it came from (``smtp``, ``webhook:mailgun``, ``imap``, ``pop3``), and
    ``recipients`` the envelope's, when the route knows them. A message of more than
    ``CRM_INBOUND_INLINE_READ_PARTS`` parts is returned ``kept`` and read by a worker
    after the commit (the sweep reads it if that publish is lost).
    """
    limit = conf.inbound_max_bytes()
    if len(raw) > limit:
        raise ValidationFailed(
            f"the message is {len(raw):,} bytes, over the limit of {limit:,} bytes "
            f"(CRM_INBOUND_MAX_BYTES)",
            code="message_too_large",
        )
    message_id = _quick_message_id(raw)
    if message_id:
        first = InboundMessage.objects.filter(message_id=message_id).order_by("pk").first()
        if first is not None:
            return first
    now = timezone.now()
    deferred = _part_lines(raw) > conf.inbound_inline_read_parts()
    try:
        blob, _ = blob_store(source=raw, max_bytes=limit)
    except EmptyAttachment as exc:
        raise ValidationFailed("the message is empty (0 bytes)", code="empty_message") from exc
    kept = InboundMessage.objects.create(
        blob=blob,
        size=len(raw),
        route=route[:ROUTE_MAX_LENGTH],
        envelope_recipients=[str(r)[:320] for r in recipients][:100],
        message_id=message_id,
        received_at=now,
        reading_since=None if deferred else now,
        read_attempts=0 if deferred else 1,
    )
    if deferred:
        dispatch.read_inbound_after_commit(kept.pk)
        return kept
    return inbound_message_read(message=kept, claimed=True)


def inbound_message_read_by_id(*, message_id: int) -> str:
    """``inbound_message_read`` by the id a task carries; its status after (``gone``
    for a row that no longer exists)."""
    message = InboundMessage.objects.filter(pk=message_id).select_related("blob").first()
    if message is None:
        return "gone"
    return str(inbound_message_read(message=message).status)


def _part_lines(raw: bytes) -> int:
    """About how many MIME parts a raw message has: its lines that open with ``--``
    (each part follows a boundary line), counted without parsing."""
    return raw.count(b"\n--") + raw.startswith(b"--")


def inbound_message_store(
    *, raw: bytes, route: str = "raw", recipients: Sequence[str] = ()
) -> Email:
    """Receive a raw message (``inbound_message_receive``) and return its email.

    Each address of From/To/Cc is taken on its own (a header holding several gives
    several parties); the plain and HTML bodies are the message's own choice
    (``get_body``); every other leaf part, inline images included (with their
    Content-ID), becomes an attachment stored once in the blob store. What cannot be
    read (an address, a part over the size limit, parts beyond
    ``CRM_INBOUND_MAX_PARTS``) is left out and named in a note event of the email.

    Refused with the reason (``ValidationFailed``): a message over
    ``CRM_INBOUND_MAX_BYTES`` (nothing kept), or without a readable From address
    (``no_sender``; the raw is kept and listed as refused). A message kept but not
    recorded (blocked for an unapproved address, unreadable) raises ``MessageHeld``
    naming why; staff see it with the reason.
    """
    message = inbound_message_store_or_hold(raw=raw, route=route, recipients=recipients)
    if message.email is not None:
        return message.email
    raise MessageHeld(
        f"the message is kept as inbound message #{message.pk} ({message.status}): "
        f"{message.reason or 'not read yet'}",
        code=message.code or MessageHeld.code,
    )


def inbound_message_store_or_hold(
    *, raw: bytes, route: str = "raw", recipients: Sequence[str] = ()
) -> InboundMessage:
    """``inbound_message_receive`` for a route that answers a refusal in words: a message
    refused with a reason (no sender; its raw is kept and listed) raises
    ``ValidationFailed`` with that reason and code; stored, blocked and unreadable mail
    returns its row (accepted: staff see what was held)."""
    message = inbound_message_receive(raw=raw, route=route, recipients=recipients)
    if message.status == InboundStatus.REFUSED:
        raise ValidationFailed(message.reason, code=message.code or "refused")
    return message
