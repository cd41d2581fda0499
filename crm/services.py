"""Writes to the CRM records. Rules that apply to them live here, once."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .errors import PermissionDeniedError, ValidationFailed
from .models import EmailApproval, Queue, User

APPROVE_PERMISSION = "crm.approve_email_address"

Mailbox = User | Queue


def _full_clean(obj: Mailbox, exclude: list[str] | None = None) -> None:
    try:
        obj.full_clean(exclude=exclude)
    except ValidationError as exc:
        raise ValidationFailed(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()),
            extra={"errors": exc.message_dict},
        ) from exc


def _normalized(address: str | None) -> str:
    return (address or "").strip().lower()


def mailbox_save(*, obj: Mailbox, data: dict[str, Any] | None = None) -> Mailbox:
    """Create or update a user or queue, from ``data`` or from fields already set on ``obj``.

    A new or changed primary address (compared with what is stored) puts the address
    back to ``pending_approval``; an emptied one clears it. The approval itself is never
    taken from the caller: only ``email_address_approve``/``email_address_reject`` decide it.
    """
    stored = (
        type(obj).objects.filter(pk=obj.pk).values("email", "email_router_access_approval").first()
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
    else:
        obj.email_router_access_approval = stored["email_router_access_approval"]
    _full_clean(obj, exclude=["password"] if isinstance(obj, User) else None)
    with transaction.atomic():
        obj.save()
    return obj


def queue_create(
    *,
    name: str,
    email: str,
    outgoing_delivery: str = "worker",
    members: list[User] | None = None,
) -> Queue:
    queue = mailbox_save(
        obj=Queue(), data={"name": name, "email": email, "outgoing_delivery": outgoing_delivery}
    )
    if members:
        queue.members.set(members)
    return queue


def _decide(*, target: Mailbox, actor: User, decision: str) -> Mailbox:
    if not actor.has_perm(APPROVE_PERMISSION):
        raise PermissionDeniedError(
            f"approving or rejecting email addresses needs the permission {APPROVE_PERMISSION}",
            code="permission_denied",
        )
    if not target.email:
        raise ValidationFailed("there is no email address to approve or reject", code="no_address")
    type(target).objects.filter(pk=target.pk).update(email_router_access_approval=decision)
    target.email_router_access_approval = decision
    return target


def email_address_approve(*, target: Mailbox, actor: User) -> Mailbox:
    """Approve the primary address of a user or queue (needs crm.approve_email_address)."""
    return _decide(target=target, actor=actor, decision=EmailApproval.APPROVED)


def email_address_reject(*, target: Mailbox, actor: User) -> Mailbox:
    """Reject the primary address of a user or queue (needs crm.approve_email_address)."""
    return _decide(target=target, actor=actor, decision=EmailApproval.REJECTED)
