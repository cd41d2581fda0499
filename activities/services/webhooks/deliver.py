"""POSTing an outbox event: one try, its log, the next try's time, and the sweep.

A try claims its event first (a compare-and-swap on the due time, committed before
any network call), so of two tasks holding the same event only one POSTs it; a worker
that dies mid-try leaves the event due again later, for the sweep. The body is signed
per Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``:
HMAC-SHA256 with the endpoint's secret, by the ``standardwebhooks`` package). Any 2xx
answer delivers the event; anything else (a 3xx too: a redirect is not followed, a
timeout, a refused target) is a failure, tried again after
``CRM_WEBHOOK_RETRY_SCHEDULE`` and abandoned after the last. After
``CRM_WEBHOOK_DISABLE_AFTER_FAILED_EVENTS`` events in a row abandoned, the endpoint is
disabled and staff are told (an ERROR log line and ``mail_admins``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import urllib3
from django.core.mail import mail_admins
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks import Webhook

from ... import conf, dispatch
from ...errors import WebhookTargetRefused
from ...models import (
    UNDELIVERED_STATES,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventState,
    WebhookEventType,
)
from .targets import Target, webhook_target_resolve

logger = logging.getLogger(__name__)

EXCERPT_BYTES = 1024
# A name's addresses a try connects to at most, each within the timeout (the budget).
MAX_ADDRESSES_TRIED = 3
USER_AGENT = "crm-email-activity-webhooks/1"


@dataclass(frozen=True)
class AttemptResult:
    """``outcome``: delivered, retry (``retry_in`` seconds), abandoned, or skipped (not
    due, or taken by another try)."""

    outcome: str
    retry_in: float | None = None
    delivery: WebhookDelivery | None = None


@dataclass(frozen=True)
class _Answer:
    status_code: int | None
    excerpt: str
    error: str


def webhook_body(event: WebhookEvent) -> str:
    """The exact text POSTed (and signed): the stored payload as compact JSON."""
    return json.dumps(event.payload, separators=(",", ":"), sort_keys=True)


def webhook_signed_headers(*, secret: str, message_id: str, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of one try, signed now."""
    now = datetime.now(tz=UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }


def _claim_hold_seconds() -> float:
    """How long a try may take before its event is due again (its worker died)."""
    return 2 * conf.webhook_timeout_seconds() + 30


def _post(target: Target, *, body: str, headers: dict[str, str]) -> _Answer:
    """POST to the checked addresses, the next one if one refuses the connection (a
    name with an IPv6 and an IPv4 address), never another one the name resolves to
    later. An error after the connection was made is the answer: no second POST."""
    addresses = target.addresses[:MAX_ADDRESSES_TRIED]
    for address in addresses[:-1]:
        try:
            return _post_to(address, target, body=body, headers=headers)
        except urllib3.exceptions.NewConnectionError:
            continue
    return _post_to(addresses[-1], target, body=body, headers=headers)


def _post_to(address: str, target: Target, *, body: str, headers: dict[str, str]) -> _Answer:
    timeout = urllib3.Timeout(
        connect=conf.webhook_timeout_seconds(), read=conf.webhook_timeout_seconds()
    )
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            address, target.port, timeout=timeout, retries=False, maxsize=1
        )
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body.encode(),
            headers={
                **headers,
                "Host": target.host_header,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = response.read(EXCERPT_BYTES, decode_content=False)
        finally:
            response.release_conn()
    finally:
        pool.close()
    error = ""
    if 300 <= response.status < 400:
        location = response.headers.get("Location", "")
        error = f"redirect ({response.status}) to {location or 'nowhere'} not followed"[:500]
    elif not 200 <= response.status < 300:
        error = f"HTTP {response.status}"
    return _Answer(response.status, excerpt.decode("utf-8", "replace"), error)


def _try(event: WebhookEvent) -> _Answer:
    body = webhook_body(event)
    headers = webhook_signed_headers(
        secret=event.endpoint.secret, message_id=event.message_id, body=body
    )
    try:
        target = webhook_target_resolve(event.endpoint.url)
        return _post(target, body=body, headers=headers)
    except WebhookTargetRefused as exc:
        return _Answer(None, "", exc.message[:500])
    except urllib3.exceptions.HTTPError as exc:  # timeouts, refused connections, TLS
        return _Answer(None, "", f"{type(exc).__name__}: {exc}"[:500])
    except OSError as exc:
        return _Answer(None, "", f"{type(exc).__name__}: {exc}"[:500])


def webhook_delivery_attempt(*, event_id: int) -> AttemptResult:
    """Try to POST one outbox event now, if it is due, and record the outcome.

    Returns what became of it; ``retry_in`` says when the next try is due. A test event
    is tried once and never counts against its endpoint.
    """
    now = timezone.now()
    with transaction.atomic():
        claimed = WebhookEvent.objects.filter(
            pk=event_id, state__in=UNDELIVERED_STATES, next_attempt_at__lte=now
        ).update(
            attempts=F("attempts") + 1,
            next_attempt_at=now + timedelta(seconds=_claim_hold_seconds()),
        )
    if not claimed:
        return AttemptResult("skipped")
    event = WebhookEvent.objects.select_related("endpoint").get(pk=event_id)
    is_test = event.event_type == WebhookEventType.WEBHOOK_TEST
    if not event.endpoint.active and not is_test:
        WebhookEvent.objects.filter(pk=event_id).update(
            state=WebhookEventState.ABANDONED,
            abandoned_at=now,
            next_attempt_at=None,
            last_status="not sent: the endpoint is disabled",
        )
        return AttemptResult("abandoned")
    started = time.monotonic()
    answer = _try(event)
    latency_ms = int((time.monotonic() - started) * 1000)
    return _record(event, answer, latency_ms=latency_ms, is_test=is_test)


def _record(
    event: WebhookEvent, answer: _Answer, *, latency_ms: int, is_test: bool
) -> AttemptResult:
    now = timezone.now()
    ok = not answer.error and answer.status_code is not None
    status = f"HTTP {answer.status_code}" if ok else answer.error
    schedule = conf.webhook_retry_schedule()
    disabled = False
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            event=event,
            endpoint_id=event.endpoint_id,
            attempt=event.attempts,
            at=now,
            url=event.endpoint.url,
            ok=ok,
            status_code=answer.status_code,
            latency_ms=latency_ms,
            response_excerpt=answer.excerpt,
            error=answer.error,
        )
        events = WebhookEvent.objects.filter(pk=event.pk)
        endpoints = WebhookEndpoint.objects.filter(pk=event.endpoint_id)
        if ok:
            events.update(
                state=WebhookEventState.DELIVERED,
                delivered_at=now,
                next_attempt_at=None,
                last_status=status,
            )
            if not is_test:
                endpoints.update(failed_events_in_a_row=0, last_success_at=now)
            return AttemptResult("delivered", delivery=delivery)
        if not is_test:
            endpoints.update(last_failure_at=now, last_failure=status[:500])
        if not is_test and event.attempts <= len(schedule):
            wait = float(schedule[event.attempts - 1])
            events.update(
                state=WebhookEventState.FAILED,
                next_attempt_at=now + timedelta(seconds=wait),
                last_status=status,
            )
            return AttemptResult("retry", retry_in=wait, delivery=delivery)
        events.update(
            state=WebhookEventState.ABANDONED,
            abandoned_at=now,
            next_attempt_at=None,
            last_status=status,
        )
        if not is_test:
            endpoints.update(failed_events_in_a_row=F("failed_events_in_a_row") + 1)
            disabled = _disable_if_failing(event.endpoint_id, last=status, now=now)
    if disabled:
        transaction.on_commit(lambda: _notify_staff(event.endpoint_id))
    return AttemptResult("abandoned", delivery=delivery)


def _disable_if_failing(endpoint_id: int, *, last: str, now: datetime) -> bool:
    limit = conf.webhook_disable_after_failed_events()
    reason = (f"disabled after {limit} events in a row could not be delivered (the last: {last})")[
        :500
    ]
    return bool(
        WebhookEndpoint.objects.filter(
            pk=endpoint_id, active=True, failed_events_in_a_row__gte=limit
        ).update(active=False, disabled_at=now, disabled_reason=reason)
    )


def _notify_staff(endpoint_id: int) -> None:
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    message = (
        f"The webhook endpoint {endpoint.pk} ({endpoint.url}) was disabled: "
        f"{endpoint.disabled_reason}. Re-enable it in the admin (Webhook endpoints, "
        "action 'Re-enable') once the receiver answers again; 'Retry failed' sends what "
        "was abandoned."
    )
    logger.error(message, extra={"webhook_endpoint_id": endpoint.pk})
    mail_admins(f"Webhook endpoint {endpoint.pk} disabled", message, fail_silently=True)


def webhook_sweep(*, limit: int = 1000) -> list[int]:
    """Publish the undelivered events that are overdue: their task was never published
    (the broker was down), was lost, or died mid-try. Their due time moves to now, so
    the next sweep leaves them to the task published here for a while."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=conf.sweep_pending_after_seconds())
    ids = list(
        WebhookEvent.objects.filter(state__in=UNDELIVERED_STATES, next_attempt_at__lte=stale_before)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        WebhookEvent.objects.filter(pk__in=ids, state__in=UNDELIVERED_STATES).update(
            next_attempt_at=now
        )
        for pk in ids:
            dispatch.deliver_webhook_now(pk)
    return ids
