from __future__ import annotations

from django.conf import settings
from django.db import models


class SuppressionReason(models.TextChoices):
    MANUAL = "manual", "Added by hand"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCE = "bounce", "Hard bounce"
    COMPLAINT = "complaint", "Spam complaint"


class SuppressedAddress(models.Model):
    """An address that must never get bulk mail, whichever contact carries it.

    Stored lower-cased (``services.suppression`` normalises), so the unique constraint
    and the per-chunk lookup of bulk jobs are case-insensitive.
    """

    address = models.CharField(max_length=320, unique=True)
    reason = models.CharField(
        max_length=20, choices=SuppressionReason.choices, default=SuppressionReason.MANUAL
    )
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]
        verbose_name = "suppressed address"
        verbose_name_plural = "suppression list"

    def __str__(self) -> str:
        return self.address
