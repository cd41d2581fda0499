from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q


class BulkSendStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    CANCELED = "canceled", "Canceled"
    FAILED = "failed", "Failed"


class SkipReason(models.TextChoices):
    NO_ADDRESS = "no_address", "No address"
    DO_NOT_BULK_EMAIL = "do_not_bulk_email", "Do not bulk email"
    SUPPRESSED = "suppressed", "Suppressed"
    DUPLICATE_ADDRESS = "duplicate_address", "Duplicate address"


class BulkSend(models.Model):
    """A template sent to every contact a query selects (Dynamics' SendBulkMail).

    ``created`` counts the emails written; ``sent`` and ``failed`` are read from the
    emails themselves (``selectors.bulk_send_progress``), so they cannot drift.
    ``last_contact_id`` is the keyset cursor: a run that died resumes after it.
    """

    template = models.ForeignKey(
        "activities.Template", on_delete=models.PROTECT, related_name="bulk_sends"
    )
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sender_queue = models.ForeignKey(
        "crm.Queue", null=True, blank=True, on_delete=models.PROTECT, related_name="bulk_sends"
    )
    query = models.JSONField(default=dict, blank=True)
    regarding_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    regarding_id = models.PositiveBigIntegerField(null=True, blank=True)
    regarding = GenericForeignKey("regarding_type", "regarding_id")

    status = models.CharField(
        max_length=10, choices=BulkSendStatus.choices, default=BulkSendStatus.QUEUED, db_index=True
    )
    total = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    skipped_by_reason = models.JSONField(default=dict, blank=True)
    last_contact_id = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(sender_user__isnull=True) | Q(sender_queue__isnull=True),
                name="bulk_send_one_sender",
            ),
        ]

    def __str__(self) -> str:
        return f"Bulk send #{self.pk} ({self.template_id}, {self.status})"

    @property
    def sender(self):
        return self.sender_queue or self.sender_user
