from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

from .delivery import DeliveryState


class EmailStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FAILED = "failed", "Failed"
    PENDING_SEND = "pending_send", "Pending send"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    RECEIVED = "received", "Received"
    COMPLETED = "completed", "Completed"
    CANCELED = "canceled", "Canceled"


class EmailState(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETED = "completed", "Completed"
    CANCELED = "canceled", "Canceled"


STATE_OF_STATUS: dict[str, str] = {
    EmailStatus.DRAFT: EmailState.OPEN,
    EmailStatus.FAILED: EmailState.OPEN,
    EmailStatus.PENDING_SEND: EmailState.COMPLETED,
    EmailStatus.SENDING: EmailState.COMPLETED,
    EmailStatus.SENT: EmailState.COMPLETED,
    EmailStatus.RECEIVED: EmailState.COMPLETED,
    EmailStatus.COMPLETED: EmailState.COMPLETED,
    EmailStatus.CANCELED: EmailState.CANCELED,
}


class Direction(models.TextChoices):
    OUTGOING = "outgoing", "Outgoing"
    INCOMING = "incoming", "Incoming"


class Priority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"


class Email(models.Model):
    subject = models.CharField(max_length=400, blank=True)
    body_html = models.TextField(blank=True)
    body_text = models.TextField(blank=True)
    direction = models.CharField(
        max_length=10, choices=Direction.choices, default=Direction.OUTGOING
    )
    status = models.CharField(
        max_length=20, choices=EmailStatus.choices, default=EmailStatus.DRAFT, db_index=True
    )
    state = models.CharField(max_length=10, choices=EmailState.choices, default=EmailState.OPEN)

    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sent_emails",
    )
    sender_queue = models.ForeignKey(
        "crm.Queue", null=True, blank=True, on_delete=models.PROTECT, related_name="emails"
    )
    # The address as sent, fixed when the email is accepted for delivery.
    from_address = models.CharField(max_length=320, blank=True)
    from_name = models.CharField(max_length=200, blank=True)

    regarding_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    regarding_id = models.PositiveBigIntegerField(null=True, blank=True)
    regarding = GenericForeignKey("regarding_type", "regarding_id")

    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    # Custom headers, as checked by ``addresses.check_custom_headers``: a list of
    # ``{"name": ..., "value": ...}``, written after the headers the application owns.
    headers = models.JSONField(default=list, blank=True)
    # Receipt requests to the sender's address: a delivery receipt (Return-Receipt-To, and
    # DSN NOTIFY=SUCCESS where the server offers DSN) and a read receipt (RFC 8098
    # Disposition-Notification-To).
    request_delivery_receipt = models.BooleanField(default=False)
    request_read_receipt = models.BooleanField(default=False)
    tracking_token = models.CharField(max_length=40, blank=True, db_index=True)
    message_id = models.CharField(max_length=255, blank=True)
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.TextField(blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    template = models.ForeignKey(
        "activities.Template",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="emails",
    )
    # For bulk mail: the job and the contact it was written for; (job, contact) is
    # unique, so a job that resumes never writes a contact's email twice.
    bulk_send = models.ForeignKey(
        "activities.BulkSend",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="emails",
    )
    bulk_contact = models.ForeignKey(
        "crm.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When the recipient followed this email's unsubscribe link (RFC 8058); set once.
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    possible_duplicate = models.BooleanField(default=False)
    # Fencing: every claim increments lease_token; writes that carry an older token
    # are refused, so a worker that wakes after its lease expired changes nothing.
    lease_token = models.PositiveBigIntegerField(default=0)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The due time (``next_attempt_at``) a delivery task was published for. A task is
    # published with an ETA only within the horizon (``activities.dispatch``); the sweep
    # publishes a row coming within it when this differs from its due time: once.
    task_published_for = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    modified_at = models.DateTimeField(auto_now=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("send_as_any_sender", "Can send email as any user or queue")]
        indexes = [
            models.Index(fields=["status", "lease_expires_at"], name="email_status_lease_idx"),
            models.Index(fields=["regarding_type", "regarding_id"], name="email_regarding_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(sender_user__isnull=True) | Q(sender_queue__isnull=True),
                name="email_one_sender",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in EmailStatus]), name="email_status_valid"
            ),
            models.UniqueConstraint(
                fields=["message_id"], condition=~Q(message_id=""), name="email_message_id_unique"
            ),
            models.UniqueConstraint(
                fields=["bulk_send", "bulk_contact"],
                condition=Q(bulk_send__isnull=False),
                name="email_bulk_send_contact_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject or '(no subject)'}"

    @property
    def sender(self):
        return self.sender_queue or self.sender_user

    @property
    def sender_kind(self) -> str | None:
        if self.sender_queue_id:
            return "queue"
        if self.sender_user_id:
            return "user"
        return None


class PartyRole(models.TextChoices):
    FROM = "from", "From"
    TO = "to", "To"
    CC = "cc", "Cc"
    BCC = "bcc", "Bcc"
    # Where replies go (the Reply-To header); not a recipient.
    REPLY_TO = "reply_to", "Reply-To"


class EmailParty(models.Model):
    """One sender or recipient of an email, with the address as sent."""

    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="parties")
    role = models.CharField(max_length=8, choices=PartyRole.choices)
    position = models.PositiveSmallIntegerField(default=0)
    address = models.CharField(max_length=320)
    name = models.CharField(max_length=200, blank=True)
    contact = models.ForeignKey(
        "crm.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="email_parties",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="email_parties",
    )
    queue = models.ForeignKey(
        "crm.Queue", null=True, blank=True, on_delete=models.SET_NULL, related_name="email_parties"
    )
    # Delivery, per recipient: the id the provider gave the message for this recipient
    # at send (our Message-ID on the SMTP path), and the state its events put it in
    # (``DeliveryState``; only ever up ``DELIVERY_RANK``), as of the provider's time.
    provider_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    delivery_state = models.CharField(
        max_length=20, choices=DeliveryState.choices, blank=True, db_index=True
    )
    delivery_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["email_id", "role", "position", "id"]
        verbose_name_plural = "email parties"
        indexes = [models.Index(fields=["address"], name="party_address_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(contact__isnull=True, user__isnull=True)
                    | Q(contact__isnull=True, queue__isnull=True)
                    | Q(user__isnull=True, queue__isnull=True)
                ),
                name="party_at_most_one_record",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.formatted}"

    @property
    def formatted(self) -> str:
        from email.utils import formataddr

        return formataddr((self.name, self.address)) if self.name else self.address

    @property
    def party_type(self) -> str:
        if self.contact_id:
            return "contact"
        if self.user_id:
            return "user"
        if self.queue_id:
            return "queue"
        return "address"


class EventKind(models.TextChoices):
    STATUS = "status", "Status change"
    ATTEMPT = "attempt", "Delivery attempt"
    DELIVERY = "delivery", "Delivery event"
    NOTE = "note", "Note"


class EmailEvent(models.Model):
    """What happened to an email: every status change, attempt and delivery event."""

    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=EventKind.choices, default=EventKind.STATUS)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        if self.kind == EventKind.STATUS:
            return f"{self.from_status or '-'} -> {self.to_status}"
        return f"{self.kind}: {self.reason}"
