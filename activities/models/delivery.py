"""Delivery events: what a provider (or a bounce message) reported about one recipient.

``DeliveryState`` is the per-recipient state kept on ``EmailParty``; ``DELIVERY_RANK``
orders it, and a recipient's state only ever moves up that order (events arrive out of
order: a ``delivered`` after ``opened`` changes nothing). See docs/architecture.md.
"""

from __future__ import annotations

from django.db import models


class DeliveryState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    DEFERRED = "deferred", "Deferred"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    BOUNCED = "bounced", "Bounced"
    REJECTED = "rejected", "Rejected"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    COMPLAINED = "complained", "Complained"


# A recipient's state moves only to a higher rank. Opened and clicked imply delivered;
# a bounce may come after delivered (an asynchronous bounce) and outranks it; rejected
# (the provider would not send) is as final as bounced; an unsubscribe and a complaint
# are the recipient's last word. Equal ranks do not replace each other.
DELIVERY_RANK: dict[str, int] = {
    "": 0,
    DeliveryState.QUEUED: 10,
    DeliveryState.SENT: 20,
    DeliveryState.DEFERRED: 30,
    DeliveryState.DELIVERED: 40,
    DeliveryState.OPENED: 50,
    DeliveryState.CLICKED: 60,
    DeliveryState.BOUNCED: 70,
    DeliveryState.REJECTED: 70,
    DeliveryState.UNSUBSCRIBED: 80,
    DeliveryState.COMPLAINED: 90,
}


def states_below(state: str) -> list[str]:
    """The states (with "" for none yet) that ``state`` may replace."""
    rank = DELIVERY_RANK[state]
    return [s for s, r in DELIVERY_RANK.items() if r < rank]


class DeliveryEvent(models.Model):
    """One event as the provider reported it; unique per (provider, event id), so a
    webhook retried or posted twice is stored once."""

    email = models.ForeignKey(
        "activities.Email", on_delete=models.CASCADE, related_name="delivery_events"
    )
    party = models.ForeignKey(
        "activities.EmailParty",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="delivery_events",
    )
    provider = models.CharField(max_length=40, help_text="anymail's esp_name, or 'dsn'")
    event_id = models.CharField(max_length=255)
    # anymail's normalised event type (EventType): the states above, and events that
    # are not states (failed, autoresponded, subscribed, unknown, ...).
    event_type = models.CharField(max_length=20)
    # For a bounce: whether it is permanent (hard) or temporary (soft, kept as deferred).
    permanent = models.BooleanField(null=True, blank=True)
    occurred_at = models.DateTimeField(help_text="the provider's time of the event")
    recipient = models.CharField(max_length=320, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    reject_reason = models.CharField(max_length=20, blank=True)
    description = models.TextField(blank=True)
    mta_response = models.TextField(blank=True)
    raw = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "event_id"], name="delivery_event_unique_per_provider"
            ),
        ]
        indexes = [models.Index(fields=["email", "occurred_at"], name="delivery_event_email_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.recipient} ({self.provider})"
