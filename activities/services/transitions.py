"""The one way an email changes status: a compare-and-swap that writes its event."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, overload

from django.db import transaction
from django.utils import timezone

from crm.models import User

from ..errors import InvalidTransition, LeaseConflict
from ..eventlog import email_events_logged
from ..models import STATE_OF_STATUS, Email, EmailEvent, EmailStatus, EventKind
from ..policies import require_status
from .webhooks import webhook_email_status_changed

TIMESTAMP_OF_STATUS: dict[str, str] = {
    EmailStatus.PENDING_SEND: "queued_at",
    EmailStatus.SENT: "sent_at",
    EmailStatus.FAILED: "failed_at",
    EmailStatus.RECEIVED: "received_at",
    EmailStatus.COMPLETED: "completed_at",
    EmailStatus.CANCELED: "canceled_at",
}


def record_event(
    *,
    email_id: int,
    kind: str,
    reason: str = "",
    actor: User | None = None,
    actor_label: str = "",
    from_status: str = "",
    to_status: str = "",
    data: dict[str, Any] | None = None,
) -> EmailEvent:
    event = EmailEvent.objects.create(
        email_id=email_id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor_label or (actor.get_username() if actor is not None else ""),
        reason=reason,
        data=data or {},
    )
    email_events_logged(
        [email_id],
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        actor_label=event.actor_label,
    )
    return event


# The email comes back unless ``fetch=False`` asks not to read it.
@overload
def transition(
    *,
    email_id: int,
    to: str,
    allowed_from: Iterable[str],
    action: str,
    actor: User | None = ...,
    actor_label: str = ...,
    reason: str = ...,
    updates: dict[str, Any] | None = ...,
    lease_token: int | None = ...,
    event_data: dict[str, Any] | None = ...,
    fetch: Literal[True] = ...,
) -> Email: ...


@overload
def transition(
    *,
    email_id: int,
    to: str,
    allowed_from: Iterable[str],
    action: str,
    actor: User | None = ...,
    actor_label: str = ...,
    reason: str = ...,
    updates: dict[str, Any] | None = ...,
    lease_token: int | None = ...,
    event_data: dict[str, Any] | None = ...,
    fetch: Literal[False],
) -> None: ...


@overload
def transition(
    *,
    email_id: int,
    to: str,
    allowed_from: Iterable[str],
    action: str,
    actor: User | None = ...,
    actor_label: str = ...,
    reason: str = ...,
    updates: dict[str, Any] | None = ...,
    lease_token: int | None = ...,
    event_data: dict[str, Any] | None = ...,
    fetch: bool,
) -> Email | None: ...


def transition(
    *,
    email_id: int,
    to: str,
    allowed_from: Iterable[str],
    action: str,
    actor: User | None = None,
    actor_label: str = "",
    reason: str = "",
    updates: dict[str, Any] | None = None,
    lease_token: int | None = None,
    event_data: dict[str, Any] | None = None,
    fetch: bool = True,
) -> Email | None:
    """Move an email to ``to`` if its status is one of ``allowed_from``.

    The write is conditional on the status (and on ``lease_token`` when given), so of
    two processes racing, exactly one wins; the loser gets ``InvalidTransition`` (or
    ``LeaseConflict``) and nothing changes. The event row is written in the same
    transaction as the status. With one allowed status the write is tried first and
    the row read only to explain a refusal (the delivery path makes many of these).
    Returns the email as it is now, unless ``fetch`` is false.
    """
    allowed = {str(s) for s in allowed_from}
    now = timezone.now()
    values: dict[str, Any] = {
        "status": to,
        "state": STATE_OF_STATUS[to],
        "modified_at": now,
        **(updates or {}),
    }
    if to in TIMESTAMP_OF_STATUS:
        values.setdefault(TIMESTAMP_OF_STATUS[to], now)
    with transaction.atomic():
        if len(allowed) == 1:
            status = next(iter(allowed))
        else:
            status = _check(email_id, allowed, action=action, lease_token=lease_token)
        conditions = {"pk": email_id, "status": status}
        if lease_token is not None:
            conditions["lease_token"] = lease_token
        if Email.objects.filter(**conditions).update(**values) != 1:
            if len(allowed) == 1:  # not read before the write: say now why it was refused
                _check(email_id, allowed, action=action, lease_token=lease_token)
            current = Email.objects.filter(pk=email_id).values_list("status", flat=True).first()
            raise InvalidTransition(
                f"cannot {action}: another process changed the email first (now {current})",
                status=current or "",
            )
        record_event(
            email_id=email_id,
            kind=EventKind.STATUS,
            from_status=status,
            to_status=to,
            actor=actor,
            actor_label=actor_label,
            reason=reason,
            data=event_data,
        )
        webhook_email_status_changed(
            email_ids=[email_id], from_status=status, to_status=to, reason=reason, at=now
        )
    if not fetch:
        return None
    return Email.objects.select_related("sender_user", "sender_queue").get(pk=email_id)


def _check(email_id: int, allowed: set[str], *, action: str, lease_token: int | None) -> str:
    """The email's status if ``action`` may go ahead; else the error that says why."""
    row = Email.objects.filter(pk=email_id).values_list("status", "lease_token").first()
    if row is None:
        raise Email.DoesNotExist(f"email {email_id} does not exist")
    status, current_token = row
    if lease_token is not None and current_token != lease_token:
        raise LeaseConflict(
            f"cannot {action}: the lease token is stale or foreign "
            "(the email was claimed again after this lease)",
            extra={"status": status},
        )
    require_status(status, allowed, action=action)
    return status
