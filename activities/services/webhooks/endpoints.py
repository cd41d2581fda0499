"""Integrators' endpoints: create, change, rotate the secret, re-enable, retry, test.

Only staff manage endpoints (an endpoint receives every email's subject and
addresses). The URL is checked by the SSRF guard on every create and change.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from crm.models import User
from crm.services import require_staff

from ... import dispatch
from ...errors import ValidationFailed
from ...models import (
    SUBSCRIBABLE_EVENT_TYPES,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventState,
    WebhookEventType,
    WebhookFormat,
)
from .deliver import webhook_delivery_attempt
from .emit import new_message_id
from .payloads import webhook_payload
from .targets import webhook_url_check

SECRET_BYTES = 24
_FIELDS = ("url", "description", "event_types", "format", "active")


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _event_types(value: Iterable[str]) -> list[str]:
    types = list(dict.fromkeys(str(v) for v in value))
    unknown = [t for t in types if t not in SUBSCRIBABLE_EVENT_TYPES]
    if unknown:
        raise ValidationFailed(
            f"unknown event type {unknown[0]!r} (known: {', '.join(SUBSCRIBABLE_EVENT_TYPES)})",
            field="event_types",
        )
    if not types:
        raise ValidationFailed("choose at least one event type", field="event_types")
    return types


def _check(values: dict[str, Any]) -> dict[str, Any]:
    if "url" in values:
        values["url"] = webhook_url_check(str(values["url"]))
    if "event_types" in values:
        values["event_types"] = _event_types(values["event_types"])
    if "format" in values and values["format"] not in WebhookFormat.values:
        raise ValidationFailed(
            f"unknown format {values['format']!r} (known: {', '.join(WebhookFormat.values)})",
            field="format",
        )
    return values


def webhook_endpoint_create(
    *,
    actor: User | None,
    url: str,
    event_types: Iterable[str],
    description: str = "",
    format: str = WebhookFormat.STANDARD,
    active: bool = True,
) -> WebhookEndpoint:
    """A new endpoint with a new secret (its only showing is the caller's answer)."""
    require_staff(actor, "managing webhook endpoints")
    values = _check(
        {
            "url": url,
            "event_types": event_types,
            "description": description,
            "format": format,
            "active": active,
        }
    )
    return WebhookEndpoint.objects.create(
        **values,
        secret=new_secret(),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, actor: User | None, **changes: Any
) -> WebhookEndpoint:
    """Change an endpoint's URL, description, event types, format or active flag.
    Setting ``active`` on a disabled endpoint re-enables it (its counter reset)."""
    require_staff(actor, "managing webhook endpoints")
    unknown = set(changes) - set(_FIELDS)
    if unknown:
        raise ValidationFailed(f"cannot change {', '.join(sorted(unknown))} of an endpoint")
    values = _check(dict(changes))
    if values.get("active") and not endpoint.active:
        values.update(disabled_at=None, disabled_reason="", failed_events_in_a_row=0)
    for name, value in values.items():
        setattr(endpoint, name, value)
    endpoint.save()
    return endpoint


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint, actor: User | None) -> str:
    """Give the endpoint a new secret, returned once; the old one signs nothing more
    (a try already running finishes with it)."""
    require_staff(actor, "managing webhook endpoints")
    secret = new_secret()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=secret, modified_at=timezone.now())
    endpoint.secret = secret
    return secret


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: User | None) -> None:
    """Remove an endpoint with its outbox rows and its log."""
    require_staff(actor, "managing webhook endpoints")
    endpoint.delete()


def webhook_endpoints_reenable(*, endpoint_ids: Iterable[int], actor: User | None) -> int:
    """Make disabled endpoints active again; how many were disabled."""
    require_staff(actor, "managing webhook endpoints")
    return WebhookEndpoint.objects.filter(pk__in=list(endpoint_ids), active=False).update(
        active=True,
        disabled_at=None,
        disabled_reason="",
        failed_events_in_a_row=0,
        modified_at=timezone.now(),
    )


def webhook_events_retry(*, endpoint_ids: Iterable[int], actor: User | None) -> int:
    """Try the abandoned events of these endpoints again from the start (their test
    events aside); how many. Published after the commit."""
    require_staff(actor, "managing webhook endpoints")
    with transaction.atomic():
        rows = WebhookEvent.objects.filter(
            endpoint_id__in=list(endpoint_ids), state=WebhookEventState.ABANDONED
        ).exclude(event_type=WebhookEventType.WEBHOOK_TEST)
        ids = list(rows.values_list("pk", flat=True))
        WebhookEvent.objects.filter(pk__in=ids).update(
            state=WebhookEventState.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            abandoned_at=None,
            last_status="retried by hand",
        )
        dispatch.deliver_webhooks_after_commit(ids)
    return len(ids)


def webhook_test_send(*, endpoint: WebhookEndpoint, actor: User | None) -> WebhookDelivery:
    """POST a ``webhook.test`` event to the endpoint now (also a disabled one) and
    return the try's log row: the answer's status, latency and excerpt, or the error.
    Tried once; it does not count against the endpoint."""
    require_staff(actor, "managing webhook endpoints")
    now = timezone.now()
    data = {
        "endpoint": endpoint.pk,
        "message": "a test event: this endpoint receives notifications from the CRM",
        "requested_by": actor.get_username() if actor is not None else "",
    }
    event = WebhookEvent.objects.create(
        endpoint=endpoint,
        event_type=WebhookEventType.WEBHOOK_TEST,
        message_id=new_message_id(),
        payload=webhook_payload(
            format=endpoint.format, event_type=WebhookEventType.WEBHOOK_TEST, data=data, at=now
        ),
        next_attempt_at=now,
        created_at=now,
    )
    webhook_delivery_attempt(event_id=event.pk)
    return WebhookDelivery.objects.filter(event=event).latest("pk")
