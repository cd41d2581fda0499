"""Writing notifications to the outbox, in the transaction of the change they report.

A change that rolls back takes its outbox rows with it, so no endpoint hears of it; a
change that commits has its rows, which are POSTed by a task published after the
commit (``dispatch.deliver_webhooks_after_commit``) or, if the broker did not take the
task, by the sweep (``webhook_sweep``).

With no endpoint subscribed to an event type, an emit costs one query (the active
endpoints) and reads nothing else: the data of a notification is read only for
someone who wants it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from ... import dispatch
from ...models import (
    BulkSend,
    Email,
    EmailParty,
    PartyRole,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventState,
    WebhookEventType,
)
from ...selectors import bulk_send_progress
from .payloads import iso, webhook_payload

Data = dict[str, Any]


def new_message_id() -> str:
    """A Standard Webhooks message id (``webhook-id``), the same on every try."""
    return f"msg_{uuid.uuid4().hex}"


def webhook_endpoints_active() -> list[WebhookEndpoint]:
    """The active endpoints (one query): a caller that emits several events at once
    reads them once and passes them to each emit."""
    return list(WebhookEndpoint.objects.filter(active=True).only("pk", "format", "event_types"))


def webhook_endpoints_subscribed(
    event_type: str, endpoints: list[WebhookEndpoint] | None = None
) -> list[WebhookEndpoint]:
    """Of ``endpoints`` (default: the active ones), those that asked for ``event_type``."""
    # The list of types is filtered here, not in SQL: JSON containment has no lookup on
    # SQLite, and the endpoints of an installation are few.
    if endpoints is None:
        endpoints = webhook_endpoints_active()
    return [e for e in endpoints if event_type in (e.event_types or [])]


def webhook_event_emit(
    event_type: str,
    payload: Data | Callable[[], Iterable[Data]],
    *,
    at: datetime | None = None,
    endpoints: list[WebhookEndpoint] | None = None,
) -> list[WebhookEvent]:
    """Write one outbox row per subscribed active endpoint (per item of ``payload``).

    ``payload`` is the event's data, or a callable that reads the data of one or more
    events, called only when an endpoint is subscribed. ``endpoints``: the candidates
    (``webhook_endpoints_active()`` read once by a caller that emits several events;
    default: read now). The rows are written in the caller's transaction and published
    once it commits. Returns the rows written.
    """
    endpoints = webhook_endpoints_subscribed(event_type, endpoints)
    if not endpoints:
        return []
    items: list[Data] = [payload] if isinstance(payload, dict) else list(payload())
    if not items:
        return []
    now = timezone.now()
    at = at or now
    rows = [
        WebhookEvent(
            endpoint_id=endpoint.pk,
            event_type=event_type,
            message_id=new_message_id(),
            payload=webhook_payload(
                format=endpoint.format, event_type=event_type, data=data, at=at
            ),
            state=WebhookEventState.PENDING,
            next_attempt_at=now,
            created_at=now,
        )
        for data in items
        for endpoint in endpoints
    ]
    with transaction.atomic():
        created = WebhookEvent.objects.bulk_create(rows)
        dispatch.deliver_webhooks_after_commit([row.pk for row in created])
    return created


# --- the events of the email activity ---------------------------------------------------


def _email_data(email_ids: Iterable[int]) -> dict[int, Data]:
    """What a notification says about each email: enough to act on without a fetch."""
    parties = Prefetch(
        "parties",
        queryset=EmailParty.objects.filter(role__in=(PartyRole.TO, PartyRole.CC)).order_by(
            "role", "position", "pk"
        ),
    )
    data: dict[int, Data] = {}
    for email in Email.objects.filter(pk__in=list(email_ids)).prefetch_related(parties):
        data[email.pk] = {
            "id": email.pk,
            "subject": email.subject,
            "direction": email.direction,
            "status": email.status,
            "state": email.state,
            "from_address": email.from_address,
            "recipients": [p.address for p in email.parties.all() if p.role == PartyRole.TO],
            "cc": [p.address for p in email.parties.all() if p.role == PartyRole.CC],
            "message_id": email.message_id,
            "tracking_token": email.tracking_token,
            "bulk_send": email.bulk_send_id,
        }
    return data


def webhook_email_status_changed(
    *,
    email_ids: Iterable[int],
    from_status: str,
    to_status: str,
    reason: str = "",
    at: datetime | None = None,
    endpoints: list[WebhookEndpoint] | None = None,
) -> list[WebhookEvent]:
    """``email.status_changed`` for each email that moved from ``from_status`` (empty
    for a new email) to ``to_status``: ``{id, from, to, at, reason, subject, ...}``."""
    ids = list(email_ids)
    at = at or timezone.now()

    def read() -> list[Data]:
        emails = _email_data(ids)
        return [
            {
                **emails[pk],
                "from": str(from_status) or None,
                "to": str(to_status),
                "at": iso(at),
                "reason": reason,
            }
            for pk in ids
            if pk in emails
        ]

    return webhook_event_emit(
        WebhookEventType.EMAIL_STATUS_CHANGED, read, at=at, endpoints=endpoints
    )


def webhook_email_received(*, email_id: int) -> list[WebhookEvent]:
    """``email.received`` for an inbound email just stored."""

    def read() -> list[Data]:
        emails = _email_data([email_id])
        if email_id not in emails:
            return []
        received_at = Email.objects.values_list("received_at", flat=True).get(pk=email_id)
        return [{**emails[email_id], "at": iso(received_at or timezone.now())}]

    return webhook_event_emit(WebhookEventType.EMAIL_RECEIVED, read)


def webhook_delivery_event(
    *,
    email_id: int,
    recipient: str,
    event: str,
    at: datetime | None = None,
    provider: str = "",
    provider_event_id: str = "",
    description: str = "",
) -> list[WebhookEvent]:
    """``email.delivery_event``: what a provider (or a DSN) reported for one recipient
    of an email (``event``: queued, sent, deferred, delivered, bounced, rejected,
    complained, opened, clicked, unsubscribed). Call it where the event is recorded, in
    its transaction: ``{id, recipient, event, at, provider, provider_event_id,
    description, subject, ...}``."""
    at = at or timezone.now()

    def read() -> list[Data]:
        emails = _email_data([email_id])
        if email_id not in emails:
            return []
        return [
            {
                **emails[email_id],
                "recipient": recipient,
                "event": event,
                "at": iso(at),
                "provider": provider,
                "provider_event_id": provider_event_id,
                "description": description,
            }
        ]

    return webhook_event_emit(WebhookEventType.EMAIL_DELIVERY_EVENT, read, at=at)


def webhook_bulk_send_progress(
    *, job_id: int, endpoints: list[WebhookEndpoint] | None = None
) -> list[WebhookEvent]:
    """``bulk_send.progress``: a bulk job's counters as they are now (after a chunk, and
    when it ends): ``{id, status, total, created, sent, failed, canceled, skipped, ...}``."""

    def read() -> list[Data]:
        job = BulkSend.objects.filter(pk=job_id).first()
        if job is None:
            return []
        return [
            {
                "id": job.pk,
                "status": job.status,
                **bulk_send_progress(job),
                "started_at": iso(job.started_at),
                "finished_at": iso(job.finished_at),
                "error": job.error,
            }
        ]

    return webhook_event_emit(WebhookEventType.BULK_SEND_PROGRESS, read, endpoints=endpoints)
