"""Notifications to integrators: their endpoints, the outbox of events, each attempt.

An event is written to the outbox (``WebhookEvent``, one row per endpoint) in the
transaction of the change it reports, and delivered from there by a worker; every
attempt is logged (``WebhookDelivery``). See ``services.webhooks``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class WebhookEventType(models.TextChoices):
    EMAIL_STATUS_CHANGED = "email.status_changed", "Email status changed"
    EMAIL_DELIVERY_EVENT = "email.delivery_event", "Delivery event of a recipient"
    EMAIL_RECEIVED = "email.received", "Inbound mail received"
    BULK_SEND_PROGRESS = "bulk_send.progress", "Bulk job progress"
    # Sent by the "send test event" action only; no endpoint subscribes to it.
    WEBHOOK_TEST = "webhook.test", "Test event"


# The types an endpoint may subscribe to.
SUBSCRIBABLE_EVENT_TYPES: tuple[str, ...] = tuple(
    value for value in WebhookEventType.values if value != WebhookEventType.WEBHOOK_TEST
)


class WebhookFormat(models.TextChoices):
    STANDARD = "standard", "Standard Webhooks JSON ({type, timestamp, data})"
    GENESYS = "genesys", "Genesys Cloud StatusChange (EmailStateChangeMessage)"


# What an endpoint's history sets (never its owner): read-only in the admin and the API.
ENDPOINT_STATE_FIELDS = (
    "disabled_at",
    "disabled_reason",
    "failed_events_in_a_row",
    "last_success_at",
    "last_failure_at",
    "last_failure",
    "created_by",
    "created_at",
)


class WebhookEndpoint(models.Model):
    """An integrator's URL, the events it wants, and the secret its notifications are
    signed with (Standard Webhooks, ``whsec_`` + base64; shown once, on create)."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list)
    format = models.CharField(
        max_length=10, choices=WebhookFormat.choices, default=WebhookFormat.STANDARD
    )
    secret = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    # Events abandoned in a row (every try failed); a delivered event resets it.
    failed_events_in_a_row = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_failure = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.url


class WebhookEventState(models.TextChoices):
    PENDING = "pending", "Pending"
    FAILED = "failed", "Failed, will be tried again"
    DELIVERED = "delivered", "Delivered"
    ABANDONED = "abandoned", "Abandoned"


# The states whose events are still to be delivered.
UNDELIVERED_STATES = (WebhookEventState.PENDING, WebhookEventState.FAILED)


class WebhookEvent(models.Model):
    """The outbox: one notification for one endpoint, with the exact body it sends."""

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=40, choices=WebhookEventType.choices)
    # The Standard Webhooks ``webhook-id``: the same on every try, so a receiver can
    # drop a copy.
    message_id = models.CharField(max_length=40, unique=True)
    payload = models.JSONField()
    state = models.CharField(
        max_length=10, choices=WebhookEventState.choices, default=WebhookEventState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # When the next try is due; while one runs, when it is taken to have died.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    abandoned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="webhookevent_due")]
        verbose_name = "webhook event"

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id}"


class WebhookDelivery(models.Model):
    """One attempt to POST an event: the answer, how long it took, or the error."""

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    attempt = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now, db_index=True)
    url = models.URLField(max_length=2000)
    ok = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event_id} #{self.attempt}: {self.status_code or self.error}"
