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

from crm.models import Contact, Organization, OutgoingDelivery, Queue, User

from .. import conf, dispatch
from ..addresses import (
    Address,
    check_address,
    check_custom_headers,
    check_display_name,
    check_header_value,
    parse_address,
)
from ..errors import (
    InvalidAddress,
    InvalidTransition,
    NoRecipients,
    NotOutgoing,
    SenderNotAllowed,
)
from ..models import Direction, Email, EmailParty, EmailStatus, PartyRole, Priority, Template
from ..policies import (
    CANCELABLE_STATUSES,
    DELETE_ANY_PERMISSION,
    EDITABLE_STATUSES,
    UNDELETABLE_STATUSES,
    Sender,
    check_may_act,
    check_may_send_as,
    check_sender_approved,
    require_status,
)
from .attachments import attachments_copy
from .suppression import check_recipients_not_suppressed
from .templates import template_render
from .transitions import record_event, transition

SUBJECT_MAX_LENGTH = 400
RECIPIENT_ROLES = (PartyRole.TO, PartyRole.CC, PartyRole.BCC)

PartyInput = str | Contact | User | Queue | Address | dict[str, Any]


# --- parties --------------------------------------------------------------------


def _party_from_record(record: Contact | User | Queue, role: str) -> EmailParty:
    kind = type(record).__name__.lower()
    if not record.email:
        raise InvalidAddress(f"{kind} {record} has no email address", field=role)
    party = EmailParty(
        role=role,
        address=check_address(record.email, label=f"{role} address of {kind} {record}", field=role),
        name=check_display_name(
            getattr(record, "full_name", "") or getattr(record, "name", ""), field=role
        ),
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
            address=check_address(value.address, label=f"{role} address", field=role),
            name=check_display_name(value.name, field=role),
        )
    if isinstance(value, str):
        return resolve_party(parse_address(value, label=f"{role} address", field=role), role=role)
    if isinstance(value, dict):
        for kind, model in (("contact", Contact), ("user", User), ("queue", Queue)):
            ref = value.get(kind)
            if ref is None:
                continue
            record = ref if isinstance(ref, model) else model.objects.filter(pk=ref).first()
            if record is None:
                raise InvalidAddress(f"{role}: {kind} {ref} does not exist", field=role)
            party = _party_from_record(record, role)
            if value.get("address"):
                party.address = check_address(value["address"], label=f"{role} address", field=role)
            if value.get("name"):
                party.name = check_display_name(value["name"], field=role)
            return party
        if not value.get("address"):
            raise InvalidAddress(f"{role}: an address is required", field=role)
        return resolve_party(
            Address(address=str(value["address"]), name=str(value.get("name") or "")), role=role
        )
    raise InvalidAddress(f"{role}: cannot read a recipient from {value!r}", field=role)


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
    check_header_value(subject, label="subject", max_length=SUBJECT_MAX_LENGTH, field="subject")


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
    reply_to: Sequence[PartyInput] = (),
    headers: Sequence[Any] = (),
    request_delivery_receipt: bool = False,
    request_read_receipt: bool = False,
) -> Email:
    """Create an outgoing draft. ``sender`` defaults to the acting user.

    ``reply_to`` are the Reply-To addresses (parties, not recipients); ``headers`` the
    custom headers (``addresses.check_custom_headers``: a standard header the
    application writes is refused with ``InvalidHeader``); the two receipt flags ask
    for a delivery and a read receipt to the sender's address.

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
        check_header_value(references, label="References", field="in_reply_to")
    _check_content(subject)
    _check_reply_headers(in_reply_to=in_reply_to, tracking_token=tracking_token)
    checked_headers = check_custom_headers(list(headers))
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
            headers=checked_headers,
            request_delivery_receipt=request_delivery_receipt,
            request_read_receipt=request_read_receipt,
            created_by=actor,
            **_sender_fields(sender if sender is not None else actor),
            **_regarding_fields(regarding),
        )
        for role, values in (
            (PartyRole.TO, to),
            (PartyRole.CC, cc),
            (PartyRole.BCC, bcc),
            (PartyRole.REPLY_TO, reply_to),
        ):
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
    "headers",
    "request_delivery_receipt",
    "request_read_receipt",
}
# Parties an edit replaces, role by role.
EDITABLE_ROLES = (*RECIPIENT_ROLES, PartyRole.REPLY_TO)


def _check_reply_headers(*, in_reply_to: str = "", tracking_token: str = "") -> None:
    if in_reply_to:
        check_header_value(in_reply_to, label="In-Reply-To", max_length=255, field="in_reply_to")
    if tracking_token:
        check_header_value(
            tracking_token, label="tracking token", max_length=40, field="tracking_token"
        )


def email_update(*, email: Email, actor: User, **changes: Any) -> Email:
    """Edit a draft or failed email (any other status: ``InvalidTransition``).

    ``to``/``cc``/``bcc`` replace that role's recipients; ``sender`` and ``regarding``
    take records. The actor must be allowed to act for the current sender and, when
    ``sender`` changes, for the new one (``SenderNotAllowed``).
    """
    unknown = set(changes) - EDITABLE_FIELDS - {*EDITABLE_ROLES, "sender", "regarding"}
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    if "subject" in changes:
        _check_content(changes["subject"])
    _check_reply_headers(
        in_reply_to=changes.get("in_reply_to") or "",
        tracking_token=changes.get("tracking_token") or "",
    )
    if "headers" in changes:
        changes["headers"] = check_custom_headers(list(changes["headers"] or []))
    with transaction.atomic():
        locked = Email.objects.select_for_update().get(pk=email.pk)
        require_status(locked.status, EDITABLE_STATUSES, action="edit")
        if locked.direction != Direction.OUTGOING:
            raise NotOutgoing("only outgoing email can be edited")
        check_may_act(locked, actor)
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
        for role in EDITABLE_ROLES:
            if role in changes:
                _replace_parties(locked, role, changes[role])
        if "sender" in changes:
            _sync_from_party(locked)
    return locked


# --- the checks of send, in DESIGN.md's order -----------------------------------


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
        check_address(party.address, label=f"{party.role} address", field=party.role)
        check_display_name(party.name, label=f"{party.role} display name", field=party.role)
    _check_content(email.subject)
    sender = email.sender
    if sender is None:
        raise SenderNotAllowed("the email has no sender")
    check_address(
        sender.email or "",
        label=f"the sender's address ({sender.display_name})",
        field="sender",
    )
    check_display_name(sender.display_name, label="the sender's display name", field="sender")
    check_may_act(email, actor)
    check_sender_approved(sender, org)
    # Last, after DESIGN.md's checks: an address that hard-bounced or complained.
    check_recipients_not_suppressed(recipients)


def _tracked_subject(email: Email, org: Organization, token: str | None) -> tuple[str, str]:
    subject = email.subject
    token = (token or email.tracking_token or "").strip()
    if not org.use_tracking_token:
        return subject, token
    if not token:
        token = f"{org.tracking_token_prefix}:{email.pk:0{org.tracking_token_digits}d}"
    check_header_value(token, label="tracking token", max_length=40, field="tracking_token")
    if token not in subject:
        # A reply's subject quotes the token of the email it answers ("Re: Quote
        # CRM:0000002"); it is this email's own token that goes out, once.
        if org.tracking_token_prefix:
            other = re.compile(rf"\s*\b{re.escape(org.tracking_token_prefix)}:\d+\b")
            subject = other.sub("", subject).strip()
        subject = f"{subject} {token}" if subject else token
    check_header_value(
        subject,
        label="subject with its tracking token",
        max_length=SUBJECT_MAX_LENGTH,
        field="subject",
    )
    return subject, token


def email_send(
    *, email: Email, actor: User, issue_send: bool = True, tracking_token: str | None = None
) -> Email:
    """Send an email (``issue_send``) or mark it as sent without delivering it.

    With ``issue_send`` the email must pass, in order: outgoing and open status, at
    least one recipient, valid addresses and header values, a sender the actor may
    act for, an approved sender address where the organisation requires one, and no
    recipient suppressed for a hard bounce or a complaint. It then moves to
    ``pending_send`` with a fixed Message-ID and, when the organisation uses them,
    the tracking token in its subject; a worker delivers it after commit, or an
    external sender claims it (``outgoing_delivery: external``).
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
    by_worker = sender.outgoing_delivery == OutgoingDelivery.WORKER
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
                # Published for its due time now if that is within the ETA horizon;
                # a later one is left to the sweep, which publishes it in time.
                "task_published_for": (
                    due if by_worker and dispatch.within_horizon(eta=due) else None
                ),
                "lease_expires_at": None,
                "lease_owner": "",
            },
        )
        _sync_from_party(email)
        if by_worker:
            dispatch.deliver_email_after_commit(email.pk, eta=due if due > now else None)
    return email


def email_mark_as_sent(*, email: Email, actor: User) -> Email:
    """Record a draft or failed email as sent without delivering anything."""
    email = Email.objects.select_related("sender_user", "sender_queue").get(pk=email.pk)
    if email.direction != Direction.OUTGOING:
        raise NotOutgoing("only outgoing email can be marked as sent; this one is incoming")
    require_status(email.status, EDITABLE_STATUSES, action="mark as sent")
    check_may_act(email, actor)
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
    check_may_act(email, actor)
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
            check_may_act(locked, actor)
        locked.delete()


# What a templated email takes besides its template, regarding record and parties.
TEMPLATE_OPTIONS = {"reply_to", "headers", "request_delivery_receipt", "request_read_receipt"}


def email_create_from_template(
    *,
    template: Template,
    actor: User,
    regarding: models.Model | None,
    sender: Sender | None = None,
    to: Sequence[PartyInput] = (),
    cc: Sequence[PartyInput] = (),
    bcc: Sequence[PartyInput] = (),
    **options: Any,
) -> Email:
    """Create a draft rendered from ``template`` for ``regarding``.

    The template's attachments are linked to the same blobs: no bytes are copied. With
    no ``to``, a contact (or user) that the email is regarding is the recipient.
    ``options`` are ``email_create``'s ``reply_to``, ``headers`` and receipt flags.
    """
    unknown = set(options) - TEMPLATE_OPTIONS
    if unknown:
        raise ValueError(f"not an option of a templated email: {', '.join(sorted(unknown))}")
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
            **options,
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
    **options: Any,
) -> Email:
    """Create from a template and send in one step; on any refusal nothing is kept.

    ``options`` as for ``email_create_from_template``."""
    with transaction.atomic():
        email = email_create_from_template(
            template=template,
            actor=actor,
            regarding=regarding,
            sender=sender,
            to=to,
            cc=cc,
            bcc=bcc,
            **options,
        )
        return email_send(email=email, actor=actor)
