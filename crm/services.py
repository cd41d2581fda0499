"""Writes to the CRM records. Rules that apply to them live here, once."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from common.errors import Conflict, PermissionDeniedError, ValidationFailed

from .models import Account, Contact, EmailApproval, Organization, Queue, Tag, User
from .signals import email_address_approved

APPROVE_PERMISSION = "crm.approve_email_address"

Mailbox = User | Queue
# A user or a queue, given and answered as the same type.
MailboxT = TypeVar("MailboxT", bound=Mailbox)


def _full_clean(obj: models.Model, exclude: list[str] | None = None) -> None:
    try:
        obj.full_clean(exclude=exclude)
    except ValidationError as exc:
        raise ValidationFailed(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()),
            extra={"errors": exc.message_dict},
        ) from exc


def _normalized(address: str | None) -> str:
    return (address or "").strip().lower()


def mailbox_save(*, obj: MailboxT, data: dict[str, Any] | None = None) -> MailboxT:
    """Create or update a user or queue, from ``data`` or from fields already set on ``obj``.

    A new or changed primary address (compared with what is stored) puts the address
    back to ``pending_approval``; an emptied one clears it. The approval itself is never
    taken from the caller: only ``email_address_approve``/``email_address_reject`` decide it.
    """
    stored = (
        type(obj)
        .objects.filter(pk=obj.pk)
        .values(
            "email",
            "email_router_access_approval",
            "email_approval_decided_by",
            "email_approval_decided_at",
        )
        .first()
        if obj.pk
        else None
    )
    for field, value in (data or {}).items():
        if field != "email_router_access_approval":
            setattr(obj, field, value)
    obj.email = (obj.email or "").strip()
    if stored is None or _normalized(stored["email"]) != _normalized(obj.email):
        obj.email_router_access_approval = (
            EmailApproval.PENDING if obj.email else EmailApproval.EMPTY
        )
        obj.email_approval_decided_by = None
        obj.email_approval_decided_at = None
    else:
        obj.email_router_access_approval = stored["email_router_access_approval"]
        obj.email_approval_decided_by_id = stored["email_approval_decided_by"]
        obj.email_approval_decided_at = stored["email_approval_decided_at"]
    _full_clean(obj, exclude=["password"] if isinstance(obj, User) else None)
    _save_unique(obj)
    return obj


def _save_unique(obj: models.Model) -> None:
    # full_clean checked uniqueness; a concurrent insert of the same value can still win.
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as exc:
        raise Conflict(
            f"another {obj._meta.verbose_name} with the same name or address was saved just now",
            code="duplicate",
        ) from exc


def require_staff(actor: User | None, what: str) -> None:
    """Refuse ``what`` to a non-staff actor; ``None`` is the system (commands, tasks)."""
    if actor is not None and not actor.is_staff:
        raise PermissionDeniedError(f"{what} needs a staff account (is_staff)")


def queue_create(
    *,
    name: str,
    email: str,
    outgoing_delivery: str = "worker",
    send_rate_per_minute: int = 0,
    members: list[User] | None = None,
    actor: User | None = None,
) -> Queue:
    """Create a queue (staff only); its address starts ``pending_approval``."""
    require_staff(actor, "creating a queue")
    with transaction.atomic():
        queue = mailbox_save(
            obj=Queue(),
            data={
                "name": name,
                "email": email,
                "outgoing_delivery": outgoing_delivery,
                "send_rate_per_minute": send_rate_per_minute,
            },
        )
        if members:
            queue.members.set(members)
    return queue


def queue_update(
    *,
    queue: Queue,
    data: dict[str, Any],
    members: Iterable[User] | None = None,
    actor: User | None = None,
) -> Queue:
    """Change a queue's fields (as ``mailbox_save``) and, when given, replace its members.

    Staff only."""
    require_staff(actor, "changing a queue")
    with transaction.atomic():
        mailbox_save(obj=queue, data=data)
        if members is not None:
            queue.members.set(list(members))
    return queue


def _delete(obj: models.Model) -> None:
    """Delete ``obj``; records that still need it (``on_delete=PROTECT``) make it a 409."""
    try:
        with transaction.atomic():
            obj.delete()
    except (models.ProtectedError, models.RestrictedError) as exc:
        related = (
            exc.protected_objects
            if isinstance(exc, models.ProtectedError)
            else exc.restricted_objects
        )
        counts = Counter(row._meta for row in related)
        uses = ", ".join(
            f"{n} {opts.verbose_name if n == 1 else opts.verbose_name_plural}"
            for opts, n in sorted(counts.items(), key=lambda item: item[0].label)
        )
        raise Conflict(
            f"{obj._meta.verbose_name} {obj} cannot be deleted: it is still used by {uses}",
            code="protected",
        ) from exc


def queue_delete(*, queue: Queue, actor: User | None = None) -> None:
    """Delete a queue (staff only); one that sent emails is kept (409, code ``protected``)."""
    require_staff(actor, "deleting a queue")
    _delete(queue)


def _decide(
    *, target: MailboxT, actor: User, decision: str, address: str | None = None
) -> MailboxT:
    if not actor.has_perm(APPROVE_PERMISSION):
        raise PermissionDeniedError(
            f"approving or rejecting email addresses needs the permission {APPROVE_PERMISSION}",
            code="permission_denied",
        )
    seen = target.email if address is None else address
    if not seen:
        raise ValidationFailed("there is no email address to approve or reject", code="no_address")
    # A decision is about the address the approver saw: if it changed since (which puts
    # it back to pending), nothing is written.
    decided = (
        type(target)
        .objects.filter(pk=target.pk, email=seen)
        .update(
            email_router_access_approval=decision,
            email_approval_decided_by=actor,
            email_approval_decided_at=timezone.now(),
        )
    )
    if not decided:
        current = type(target).objects.filter(pk=target.pk).values_list("email", flat=True).first()
        raise Conflict(
            f"the address is now {current or 'empty'}, not {seen}: look at it again before "
            "deciding",
            code="address_changed",
        )
    target.refresh_from_db()
    if decision == EmailApproval.APPROVED:
        email_address_approved.send(sender=type(target), mailbox=target)
    return target


def email_address_approve(*, target: MailboxT, actor: User, address: str | None = None) -> MailboxT:
    """Approve the primary address of a user or queue (needs crm.approve_email_address).

    ``address`` is the address the approver saw (default: ``target.email`` as loaded);
    if the stored one differs, nothing changes (``Conflict``, code ``address_changed``).
    Who decided and when are kept on the record; ``crm.signals.email_address_approved``
    is sent (activities releases the mail the address blocked).
    """
    return _decide(target=target, actor=actor, decision=EmailApproval.APPROVED, address=address)


def email_address_reject(*, target: MailboxT, actor: User, address: str | None = None) -> MailboxT:
    """Reject the primary address of a user or queue; as ``email_address_approve``."""
    return _decide(target=target, actor=actor, decision=EmailApproval.REJECTED, address=address)


def account_save(*, account: Account, data: dict[str, Any]) -> Account:
    """Create or update an account from ``data`` (validated by the model)."""
    for field, value in data.items():
        setattr(account, field, value)
    _full_clean(account)
    account.save()
    return account


def account_delete(*, account: Account) -> None:
    """Delete an account; its contacts stay, without an account."""
    _delete(account)


TAG_MAX_LENGTH = 50


def tags_named(names: Iterable[str]) -> list[Tag]:
    """The tags with these names, created when missing; an existing tag matches in any case."""
    wanted: dict[str, str] = {}
    errors = []
    for raw in names:
        name = (raw or "").strip()
        try:
            validate_slug(name)
        except ValidationError:
            errors.append(
                f"{raw!r} is not a tag name: use letters, digits, '-' and '_' (no spaces)"
            )
            continue
        if len(name) > TAG_MAX_LENGTH:
            errors.append(f"{name!r} is longer than {TAG_MAX_LENGTH} characters")
            continue
        wanted.setdefault(name.lower(), name)
    if errors:
        raise ValidationFailed("tags: " + " ".join(errors), extra={"errors": {"tags": errors}})
    tags = []
    for name in wanted.values():
        tag = Tag.objects.filter(name__iexact=name).order_by("pk").first()
        if tag is None:
            tag, _ = Tag.objects.get_or_create(name=name)
        tags.append(tag)
    return tags


def contact_save(
    *, contact: Contact, data: dict[str, Any], tags: Iterable[str] | None = None
) -> Contact:
    """Create or update a contact from ``data``; ``tags`` (names) replaces its tags when given.

    Tags are created on the fly (see ``tags_named``).
    """
    for field, value in data.items():
        setattr(contact, field, value)
    if contact.email:
        contact.email = contact.email.strip()
    _full_clean(contact)
    with transaction.atomic():
        tag_rows = tags_named(tags) if tags is not None else None
        contact.save()
        if tag_rows is not None:
            contact.tags.set(tag_rows)
    return contact


def contact_delete(*, contact: Contact) -> None:
    """Delete a contact; emails keep the address they were sent to."""
    _delete(contact)


# The organisation's settings that may be changed, in the order the API shows them.
ORGANIZATION_FIELDS = (
    "name",
    "require_approval_for_user_email",
    "require_approval_for_queue_email",
    "use_tracking_token",
    "tracking_token_prefix",
    "tracking_token_digits",
    "max_attachment_bytes",
)
TRACKING_PREFIX_RE = re.compile(r"[A-Za-z0-9_.#-]{1,20}")
MAX_ATTACHMENT_BYTES_CEILING = 1024**3


def _organization_errors(org: Organization) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not TRACKING_PREFIX_RE.fullmatch(org.tracking_token_prefix or ""):
        errors["tracking_token_prefix"] = [
            "use 1 to 20 letters, digits, '-', '_', '.' or '#' (no spaces or line breaks)"
        ]
    if not 1 <= org.tracking_token_digits <= 12:
        errors["tracking_token_digits"] = ["must be between 1 and 12"]
    if not 1 <= org.max_attachment_bytes <= MAX_ATTACHMENT_BYTES_CEILING:
        errors["max_attachment_bytes"] = [
            f"must be between 1 and {MAX_ATTACHMENT_BYTES_CEILING} bytes (1 GiB)"
        ]
    if not (org.name or "").strip():
        errors["name"] = ["must not be empty"]
    return errors


def organization_update(*, data: dict[str, Any], actor: User) -> Organization:
    """Change the organisation's settings (the single row); needs a staff account.

    Only the fields in ``ORGANIZATION_FIELDS`` may change. The tracking-token prefix
    goes into mail subjects, so it is a short word without spaces or line breaks.
    """
    require_staff(actor, "changing the organisation's settings")
    unknown = sorted(set(data) - set(ORGANIZATION_FIELDS))
    if unknown:
        raise ValidationFailed(f"these settings cannot be changed: {', '.join(unknown)}")
    Organization.get()
    with transaction.atomic():
        org = Organization.objects.select_for_update().get(pk=Organization.SINGLETON_ID)
        for field, value in data.items():
            setattr(org, field, value)
        errors = _organization_errors(org)
        if errors:
            raise ValidationFailed(
                "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()),
                extra={"errors": errors},
            )
        _full_clean(org)
        org.save()
    return org
