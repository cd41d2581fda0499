from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class InboundStatus(models.TextChoices):
    # The raw is kept and has not been read yet (or reading it was cut short by a
    # crash: the sweep reads it again).
    KEPT = "kept", "Kept, not read yet"
    STORED = "stored", "Stored as an email"
    BLOCKED = "blocked", "Blocked: the mailbox's address is not approved"
    REFUSED = "refused", "Refused with a reason"
    UNPARSABLE = "unparsable", "Unreadable"
    # A bounce (a DSN, or a known non-standard one) of mail this application sent: its
    # failures are delivery events of the email it answers, it is no received email.
    BOUNCE = "bounce", "A bounce, recorded on the email it answers"


class InboundMessage(models.Model):
    """Every message accepted by a route (SMTP, a provider's webhook, a polled
    mailbox), its raw bytes kept in the blob store before anything is read from it:
    what becomes of it (an email, blocked, refused, unreadable) is its status, with
    the reason in words."""

    blob = models.ForeignKey(
        "activities.AttachmentBlob", on_delete=models.PROTECT, related_name="inbound_messages"
    )
    size = models.PositiveBigIntegerField()
    route = models.CharField(max_length=60)
    envelope_recipients = models.JSONField(default=list, blank=True)
    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    # What the staff lists show, once read (what could be read of it).
    from_address = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=400, blank=True)
    status = models.CharField(
        max_length=12, choices=InboundStatus.choices, default=InboundStatus.KEPT, db_index=True
    )
    reason = models.TextField(blank=True)
    # The stable code of a refusal (``no_sender`` ...), as the error raised for it had.
    code = models.CharField(max_length=60, blank=True)
    email = models.ForeignKey(
        "activities.Email",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_messages",
    )
    # The mailbox it is for (the one that blocked it, for blocked mail), when known.
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    owner_queue = models.ForeignKey(
        "crm.Queue", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(db_index=True)
    # Set while one process reads it (a claim, compare-and-swap): a release and the
    # sweep never both record it; a claim older than the sweep's wait is a crash.
    reading_since = models.DateTimeField(null=True, blank=True)
    # Reads begun: one that never finishes (the process killed by what the message
    # made it do) is not begun a third time.
    read_attempts = models.PositiveSmallIntegerField(default=0)
    decided_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["status", "received_at"], name="inbound_status_received_idx")
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in InboundStatus]),
                name="inbound_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(owner_user__isnull=True) | Q(owner_queue__isnull=True),
                name="inbound_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"inbound #{self.pk} ({self.status}) {self.message_id or 'no Message-ID'}"

    @property
    def owner(self):
        return self.owner_queue or self.owner_user
