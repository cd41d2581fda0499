"""Writes and transitions of the email activity. Views, admin, API and tasks call these."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from email.utils import make_msgid
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone

from crm.models import Contact, EmailApproval, Organization, OutgoingDelivery, Queue, User

from .. import conf
from ..errors import (
    InvalidAddress,
    InvalidTransition,
    NoRecipients,
    NotOutgoing,
    SenderNotAllowed,
    SenderNotApproved,
)
from ..models import Direction, Email, EmailParty, EmailStatus, PartyRole, Priority, Template
from .addresses import (
    Address,
    check_address,
    check_display_name,
    check_header_value,
    parse_address,
)
from .transitions import record_event, require_status, transition

SEND_AS_ANY_PERMISSION = "activities.send_as_any_sender"
EDITABLE_STATUSES = (EmailStatus.DRAFT, EmailStatus.FAILED)
CANCELABLE_STATUSES = (EmailStatus.DRAFT, EmailStatus.PENDING_SEND)
# A worker or an external sender may hold these: deleting would race the delivery.
UNDELETABLE_STATUSES = (EmailStatus.PENDING_SEND, EmailStatus.SENDING)
DELETE_ANY_PERMISSION = "activities.delete_email"
SUBJECT_MAX_LENGTH = 400
RECIPIENT_ROLES = (PartyRole.TO, PartyRole.CC, PartyRole.BCC)

Sender = User | Queue
PartyInput = str | Contact | User | Queue | Address | dict[str, Any]


# --- parties --------------------------------------------------------------------


def _party_from_record(record: Contact | User | Queue, role: str) -> EmailParty:
    kind = type(record).__name__.lower()
    if not record.email:
        raise InvalidAddress(f"{kind} {record} has no email address")
    party = EmailParty(
        role=role,
        address=check_address(record.email, field=f"{role} address of {kind} {record}"),
        name=check_display_name(getattr(record, "full_name", "") or getattr(record, "name", "")),
    )
    setattr(party, kind, record)
    return party


def resolve_party(value: PartyInput, *, role: str) -> EmailParty:
    """Turn one recipient as given (record, address string, dict) into an unsaved party."""
    if isinstance(value, Contact | User | Queue):
        return _party_from_record(value, role)
    if isinstance(value, Address):
        return EmailParty(
            role=role,
            address=check_address(value.address, field=f"{role} address"),
            name=check_display_name(value.name),
        )
    if isinstance(value, str):
        return resolve_party(parse_address(value, field=f"{role} address"), role=role)
    if isinstance(value, dict):
        for kind, model in (("contact", Contact), ("user", User), ("queue", Queue)):
            ref = value.get(kind)
            if ref is None:
                continue
            record = ref if isinstance(ref, model) else model.objects.filter(pk=ref).first()
            if record is None:
                raise InvalidAddress(f"{role}: {kind} {ref} does not exist")
            party = _party_from_record(record, role)
            if value.get("address"):
                party.address = check_address(value["address"], field=f"{role} address")
            if value.get("name"):
                party.name = check_display_name(value["name"])
            return party
        if not value.get("address"):
            raise InvalidAddress(f"{role}: an address is required")
        return resolve_party(
            Address(address=str(value["address"]), name=str(value.get("name") or "")), role=role
        )
    raise InvalidAddress(f"{role}: cannot read a recipient from {value!r}")


def _replace_parties(email: Email, role: str, values: Iterable[PartyInput]) -> None:
    parties = [resolve_party(v, role=role) for v in values]
    email.parties.filter(role=role).delete()
    for position, party in enumerate(parties):
        party.email = email
        party.position = position
    EmailParty.objects.bulk_create(parties)


def _sync_from_party(email: Email) -> None:
    email.parties.filter(role=PartyRole.FROM).delete()
    sender = email.sender
    if sender is not None and sender.email:
        party = EmailParty(email=email, role=PartyRole.FROM, address=sender.email)
        party.name = sender.display_name
        setattr(party, "queue" if isinstance(sender, Queue) else "user", sender)
        party.save()


# --- create and edit ------------------------------------------------------------


def _regarding_fields(regarding: models.Model | None) -> dict[str, Any]:
    if regarding is None:
        return {"regarding_type": None, "regarding_id": None}
    return {
        "regarding_type": ContentType.objects.get_for_model(regarding),
        "regarding_id": regarding.pk,
    }


def _sender_fields(sender: Sender | None) -> dict[str, Any]:
    if isinstance(sender, Queue):
        return {"sender_queue": sender, "sender_user": None}
    return {"sender_user": sender, "sender_queue": None}


def _check_content(subject: str) -> None:
    check_header_value(subject, field="subject", max_length=SUBJECT_MAX_LENGTH)


def email_create(
    *,
    actor: User,
    sender: Sender | None = None,
    subject: str = "",
    body_html: str = "",
    body_text: str = "",
    to: Sequence[PartyInput] = (),
    cc: Sequence[PartyInput] = (),
    bcc: Sequence[PartyInput] = (),
    regarding: models.Model | None = None,
    priority: str = Priority.NORMAL,
    template: Template | None = None,
    in_reply_to: str = "",
    tracking_token: str = "",
    scheduled_at: datetime | None = None,
    parent: Email | None = None,
) -> Email:
    """Create an outgoing draft. ``sender`` defaults to the acting user.

    The actor must be allowed to send as ``sender`` (``SenderNotAllowed``, as at send).
    Every address and header value is checked first; on any refusal nothing is written.
    A reply names the email it answers as ``parent``: unless ``in_reply_to`` is given,
    it becomes the parent's Message-ID, and the parent's References are carried on
    (delivery adds In-Reply-To to them), so the receiver threads the reply.
    """
    references = ""
    if parent is not None:
        in_reply_to = in_reply_to or parent.message_id
        references = " ".join(parent.references.split())
        check_header_value(references, field="References")
    _check_content(subject)
    _check_reply_headers(in_reply_to=in_reply_to, tracking_token=tracking_token)
    if sender is not None:
        check_may_send_as(actor, sender)
    with transaction.atomic():
        email = Email.objects.create(
            subject=subject,
            body_html=body_html,
            body_text=body_text,
            direction=Direction.OUTGOING,
            status=EmailStatus.DRAFT,
            priority=priority,
            template=template,
            in_reply_to=in_reply_to,
            references=references,
            parent=parent,
            tracking_token=tracking_token,
            scheduled_at=scheduled_at,
            created_by=actor,
            **_sender_fields(sender if sender is not None else actor),
            **_regarding_fields(regarding),
        )
        for role, values in ((PartyRole.TO, to), (PartyRole.CC, cc), (PartyRole.BCC, bcc)):
            _replace_parties(email, role, values)
        _sync_from_party(email)
        record_event(
            email_id=email.pk,
            kind="status",
            to_status=EmailStatus.DRAFT,
            actor=actor,
            reason="created",
        )
    return email


EDITABLE_FIELDS = {
    "subject",
    "body_html",
    "body_text",
    "priority",
    "scheduled_at",
    "template",
    "in_reply_to",
    "tracking_token",
}


def _check_reply_headers(*, in_reply_to: str = "", tracking_token: str = "") -> None:
    if in_reply_to:
        check_header_value(in_reply_to, field="In-Reply-To", max_length=255)
    if tracking_token:
        check_header_value(tracking_token, field="tracking token", max_length=40)


def email_update(*, email: Email, actor: User, **changes: Any) -> Email:
    """Edit a draft or failed email (any other status: ``InvalidTransition``).

    ``to``/``cc``/``bcc`` replace that role's recipients; ``sender`` and ``regarding``
    take records. The actor must be allowed to act for the current sender and, when
    ``sender`` changes, for the new one (``SenderNotAllowed``).
    """
    unknown = set(changes) - EDITABLE_FIELDS - {"to", "cc", "bcc", "sender", "regarding"}
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    if "subject" in changes:
        _check_content(changes["subject"])
    _check_reply_headers(
        in_reply_to=changes.get("in_reply_to") or "",
        tracking_token=changes.get("tracking_token") or "",
    )
    with transaction.atomic():
        locked = Email.objects.select_for_update().get(pk=email.pk)
        require_status(locked.status, EDITABLE_STATUSES, action="edit")
        if locked.direction != Direction.OUTGOING:
            raise NotOutgoing("only outgoing email can be edited")
        _check_may_act(locked, actor)
        if changes.get("sender") is not None:
            check_may_send_as(actor, changes["sender"])
        fields = {k: v for k, v in changes.items() if k in EDITABLE_FIELDS}
        if "sender" in changes:
            fields.update(_sender_fields(changes["sender"]))
        if "regarding" in changes:
            fields.update(_regarding_fields(changes["regarding"]))
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save()
        for role in RECIPIENT_ROLES:
            if role in changes:
                _replace_parties(locked, role, changes[role])
        if "sender" in changes:
            _sync_from_party(locked)
    return locked


# --- the checks of send, in DESIGN.md's order -----------------------------------


def _may_send_as(actor: User, sender: Sender) -> bool:
    if actor.has_perm(SEND_AS_ANY_PERMISSION):
        return True
    if isinstance(sender, Queue):
        return sender.members.filter(pk=actor.pk).exists()
    return sender.pk == actor.pk


def _check_may_act(email: Email, actor: User) -> None:
    sender = email.sender
    if sender is None:
        raise SenderNotAllowed("the email has no sender")
    check_may_send_as(actor, sender)


def check_may_send_as(actor: User, sender: Sender) -> None:
    if not _may_send_as(actor, sender):
        if isinstance(sender, Queue):
            raise SenderNotAllowed(
                f"{actor.get_username()} is not a member of the queue {sender.name} "
                "and may not send as it"
            )
        raise SenderNotAllowed(
            f"{actor.get_username()} may not send as the user {sender.get_username()}"
        )


def sender_approval_required(sender: Sender, org: Organization) -> bool:
    """Whether ``org`` requires ``sender``'s address to be approved before mail is sent
    from it (one setting for user addresses, one for queue addresses)."""
    if isinstance(sender, Queue):
        return org.require_approval_for_queue_email
    return org.require_approval_for_user_email


def check_sender_approved(sender: Sender, org: Organization) -> None:
    kind = "queue" if isinstance(sender, Queue) else "user"
    required = sender_approval_required(sender, org)
    if required and sender.email_router_access_approval != EmailApproval.APPROVED:
        state = EmailApproval(sender.email_router_access_approval).label.lower()
        raise SenderNotApproved(
            f"sender address is not approved: the {kind} address {sender.email} is {state}; "
            "an administrator must approve it before mail can be sent from it"
        )


def check_sendable(email: Email, *, actor: User, org: Organization) -> None:
    """Raise the first refusal that stops ``email`` from being queued for delivery."""
    if email.direction != Direction.OUTGOING:
        raise NotOutgoing("only outgoing email can be sent; this one is incoming")
    require_status(email.status, EDITABLE_STATUSES, action="send")
    parties = list(email.parties.all())
    recipients = [p for p in parties if p.role in RECIPIENT_ROLES]
    if not recipients:
        raise NoRecipients("the email has no recipients: add at least one To, Cc or Bcc address")
    for party in recipients:
        check_address(party.address, field=f"{party.role} address")
        check_display_name(party.name, field=f"{party.role} display name")
    _check_content(email.subject)
    sender = email.sender
    if sender is None:
        raise SenderNotAllowed("the email has no sender")
    check_address(sender.email or "", field=f"the sender's address ({sender.display_name})")
    check_display_name(sender.display_name, field="the sender's display name")
    _check_may_act(email, actor)
    check_sender_approved(sender, org)


def _tracked_subject(email: Email, org: Organization, token: str | None) -> tuple[str, str]:
    subject = email.subject
    token = (token or email.tracking_token or "").strip()
    if not org.use_tracking_token:
        return subject, token
    if not token:
        token = f"{org.tracking_token_prefix}:{email.pk:0{org.tracking_token_digits}d}"
    check_header_value(token, field="tracking token", max_length=40)
    if token not in subject:
        # A reply's subject quotes the token of the email it answers ("Re: Quote
        # CRM:0000002"); it is this email's own token that goes out, once.
        if org.tracking_token_prefix:
            other = re.compile(rf"\s*\b{re.escape(org.tracking_token_prefix)}:\d+\b")
            subject = other.sub("", subject).strip()
        subject = f"{subject} {token}" if subject else token
    check_header_value(
        subject, field="subject with its tracking token", max_length=SUBJECT_MAX_LENGTH
    )
    return subject, token


def enqueue_delivery(email_id: int, *, eta: datetime | None = None) -> None:
    """Queue the delivery task once the current transaction commits."""
    from ..tasks import enqueue_deliver_email

    transaction.on_commit(lambda: enqueue_deliver_email(email_id, eta=eta))


def email_send(
    *, email: Email, actor: User, issue_send: bool = True, tracking_token: str | None = None
) -> Email:
    """Send an email (``issue_send``) or mark it as sent without delivering it.

    With ``issue_send`` the email must pass, in order: outgoing and open status, at
    least one recipient, valid addresses and header values, a sender the actor may
    act for, and an approved sender address where the organisation requires one.
    It then moves to ``pending_send`` with a fixed Message-ID and, when the
    organisation uses them, the tracking token in its subject; a worker delivers it
    after commit, or an external sender claims it (``outgoing_delivery: external``).
    Without ``issue_send`` it moves to ``sent`` and nothing is delivered.
    """
    email = Email.objects.select_related("sender_user", "sender_queue").get(pk=email.pk)
    if not issue_send:
        return email_mark_as_sent(email=email, actor=actor)
    org = Organization.get()
    check_sendable(email, actor=actor, org=org)
    subject, token = _tracked_subject(email, org, tracking_token)
    sender = email.sender
    now = timezone.now()
    due = email.scheduled_at if email.scheduled_at and email.scheduled_at > now else now
    with transaction.atomic():
        email = transition(
            email_id=email.pk,
            to=EmailStatus.PENDING_SEND,
            allowed_from=EDITABLE_STATUSES,
            action="send",
            actor=actor,
            reason="accepted for delivery",
            updates={
                "subject": subject,
                "tracking_token": token,
                "message_id": email.message_id or make_msgid(domain=conf.message_id_domain()),
                "from_address": sender.email,
                "from_name": sender.display_name,
                "attempts": 0,
                "last_error": "",
                "next_attempt_at": due,
                "lease_expires_at": None,
                "lease_owner": "",
            },
        )
        _sync_from_party(email)
        if sender.outgoing_delivery == OutgoingDelivery.WORKER:
            enqueue_delivery(email.pk, eta=due if due > now else None)
    return email


def email_mark_as_sent(*, email: Email, actor: User) -> Email:
    """Record a draft or failed email as sent without delivering anything."""
    email = Email.objects.select_related("sender_user", "sender_queue").get(pk=email.pk)
    if email.direction != Direction.OUTGOING:
        raise NotOutgoing("only outgoing email can be marked as sent; this one is incoming")
    require_status(email.status, EDITABLE_STATUSES, action="mark as sent")
    _check_may_act(email, actor)
    sender = email.sender
    return transition(
        email_id=email.pk,
        to=EmailStatus.SENT,
        allowed_from=EDITABLE_STATUSES,
        action="mark as sent",
        actor=actor,
        reason="marked as sent; nothing was delivered",
        updates={"from_address": sender.email or "", "from_name": sender.display_name},
    )


def email_cancel(*, email: Email, actor: User, reason: str = "") -> Email:
    """Withdraw a draft or an email waiting for delivery (``pending_send``)."""
    email = Email.objects.select_related("sender_user", "sender_queue").get(pk=email.pk)
    require_status(email.status, CANCELABLE_STATUSES, action="cancel")
    _check_may_act(email, actor)
    return transition(
        email_id=email.pk,
        to=EmailStatus.CANCELED,
        allowed_from=CANCELABLE_STATUSES,
        action="cancel",
        actor=actor,
        reason=reason or "canceled",
        updates={"lease_expires_at": None, "lease_owner": "", "next_attempt_at": None},
    )


def email_delete(*, email: Email, actor: User) -> None:
    """Delete an email with its parties, events and attachment links.

    Refused (``InvalidTransition``) while a worker or an external sender may hold it
    (``pending_send``, ``sending``): cancel it first. The actor must be allowed to act
    for the sender, or hold ``activities.delete_email`` (needed for an email without a
    sender). The blobs stay for the garbage collector.
    """
    with transaction.atomic():
        # Locked so that a concurrent claim cannot move it to sending under our feet.
        locked = (
            Email.objects.select_for_update(of=("self",))
            .select_related("sender_user", "sender_queue")
            .get(pk=email.pk)
        )
        if locked.status in UNDELETABLE_STATUSES:
            raise InvalidTransition(
                f"cannot delete an email whose status is {locked.status}: it is queued for "
                "or in delivery (cancel a pending email first)",
                status=locked.status,
            )
        if not actor.has_perm(DELETE_ANY_PERMISSION):
            _check_may_act(locked, actor)
        locked.delete()


def email_create_from_template(
    *,
    template: Template,
    actor: User,
    regarding: models.Model | None,
    sender: Sender | None = None,
    to: Sequence[PartyInput] = (),
    cc: Sequence[PartyInput] = (),
    bcc: Sequence[PartyInput] = (),
) -> Email:
    """Create a draft rendered from ``template`` for ``regarding``.

    The template's attachments are linked to the same blobs: no bytes are copied. With
    no ``to``, a contact (or user) that the email is regarding is the recipient.
    """
    from .attachments import attachments_copy
    from .templates import template_render

    sender = sender if sender is not None else actor
    rendered = template_render(template=template, regarding=regarding, sender=sender)
    if not to and isinstance(regarding, Contact | User):
        to = [regarding]
    with transaction.atomic():
        email = email_create(
            actor=actor,
            sender=sender,
            subject=rendered.subject,
            body_html=rendered.body_html,
            body_text=rendered.body_text,
            to=to,
            cc=cc,
            bcc=bcc,
            regarding=regarding,
            template=template,
        )
        attachments_copy(source=template, target=email)
    return email


def email_create_forward(
    *, original: Email, actor: User, attachment_ids: Collection[int] | None = None, **fields: Any
) -> Email:
    """Create a draft (``fields`` as for ``email_create``) that forwards ``original``.

    The original's attachments, or those whose ids are in ``attachment_ids``, are
    linked to the same blobs: no bytes are copied. The caller has checked that the
    actor may see ``original``. On any refusal nothing is written.
    """
    from .attachments import attachments_copy

    with transaction.atomic():
        email = email_create(actor=actor, **fields)
        attachments_copy(source=original, target=email, only=attachment_ids)
    return email


def email_send_from_template(
    *,
    template: Template,
    actor: User,
    regarding: models.Model | None,
    sender: Sender | None = None,
    to: Sequence[PartyInput] = (),
    cc: Sequence[PartyInput] = (),
    bcc: Sequence[PartyInput] = (),
) -> Email:
    """Create from a template and send in one step; on any refusal nothing is kept."""
    with transaction.atomic():
        email = email_create_from_template(
            template=template,
            actor=actor,
            regarding=regarding,
            sender=sender,
            to=to,
            cc=cc,
            bcc=bcc,
        )
        return email_send(email=email, actor=actor)
