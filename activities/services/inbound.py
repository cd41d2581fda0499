"""Recording received mail: the one way an incoming message becomes an ``Email``.

Webhooks, IMAP polling and the demo data call ``email_record_received``; the message
is already parsed by then (addresses, subject, bodies, threading headers).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from crm.models import Contact, Organization, Queue, User

from ..addresses import check_display_name, check_header_value, parse_address
from ..errors import Conflict
from ..models import Direction, Email, EmailParty, EmailState, EmailStatus, EventKind, PartyRole
from ..policies import mailbox_blocked
from .emails import SUBJECT_MAX_LENGTH
from .transitions import record_event

INBOUND_ACTOR = "inbound"


def _owner_of(address: str) -> User | Queue | None:
    """The queue or user whose primary address this is (queues first: shared boxes)."""
    lowered = address.lower()
    queue = Queue.objects.annotate(e=Lower("email")).filter(e=lowered).first()
    if queue is not None:
        return queue
    return User.objects.annotate(e=Lower("email")).filter(e=lowered, is_active=True).first()


def _original_of(*, subject: str, in_reply_to: str, org: Organization) -> Email | None:
    """The email this one answers: by tracking token in the subject, else by In-Reply-To."""
    if org.use_tracking_token and org.tracking_token_prefix:
        pattern = rf"{re.escape(org.tracking_token_prefix)}:\d+"
        for token in re.findall(pattern, subject):
            original = Email.objects.filter(
                tracking_token=token, direction=Direction.OUTGOING
            ).first()
            if original is not None:
                return original
    if in_reply_to:
        return Email.objects.filter(message_id=in_reply_to).first()
    return None


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
    our outgoing emails is refused (``Conflict``).
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
    if message_id:
        first = Email.objects.filter(message_id=message_id).first()
        if first is not None and first.direction == Direction.INCOMING:
            return first
    org = Organization.get()
    contact = Contact.objects.annotate(e=Lower("email")).filter(e=sender.address.lower()).first()
    parent = _original_of(subject=subject, in_reply_to=in_reply_to, org=org)
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
