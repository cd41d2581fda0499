from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models

from .validators import validate_single_line


class EmailApproval(models.TextChoices):
    EMPTY = "", "Empty"
    APPROVED = "approved", "Approved"
    PENDING = "pending_approval", "Pending approval"
    REJECTED = "rejected", "Rejected"


class OutgoingDelivery(models.TextChoices):
    WORKER = "worker", "Worker (this application sends)"
    EXTERNAL = "external", "External send component (claim API)"


class Mailbox(models.Model):
    """What users and queues share as senders of mail."""

    email_router_access_approval = models.CharField(
        "email address approval",
        max_length=20,
        choices=EmailApproval.choices,
        default=EmailApproval.EMPTY,
        blank=True,
    )
    # Who last approved or rejected the address, and when; cleared when it changes.
    email_approval_decided_by = models.ForeignKey(
        "crm.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    email_approval_decided_at = models.DateTimeField(null=True, blank=True)
    outgoing_delivery = models.CharField(
        max_length=10, choices=OutgoingDelivery.choices, default=OutgoingDelivery.WORKER
    )
    send_rate_per_minute = models.PositiveIntegerField(
        "send rate (messages per minute)",
        default=0,
        help_text="At most this many messages a minute from this address, across all "
        "workers; 0 for no limit.",
    )

    class Meta:
        abstract = True

    @property
    def is_address_approved(self) -> bool:
        return self.email_router_access_approval == EmailApproval.APPROVED


class User(AbstractUser, Mailbox):
    first_name = models.CharField(
        "first name", max_length=150, blank=True, validators=[validate_single_line]
    )
    last_name = models.CharField(
        "last name", max_length=150, blank=True, validators=[validate_single_line]
    )

    class Meta:
        permissions = [("approve_email_address", "Can approve or reject email addresses")]

    def __str__(self) -> str:
        return self.get_username()

    @property
    def full_name(self) -> str:
        return self.get_full_name() or self.username

    @property
    def display_name(self) -> str:
        return self.full_name


class Queue(Mailbox):
    name = models.CharField(max_length=200, unique=True, validators=[validate_single_line])
    email = models.EmailField("primary email address", max_length=254, unique=True)
    members = models.ManyToManyField(User, related_name="queues", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @property
    def display_name(self) -> str:
        return self.name


class Organization(models.Model):
    """The organisation's settings: a single row, id 1 (see ``Organization.get``)."""

    SINGLETON_ID = 1

    name = models.CharField(max_length=200, default="Example Organisation")
    require_approval_for_user_email = models.BooleanField(default=True)
    require_approval_for_queue_email = models.BooleanField(default=True)
    use_tracking_token = models.BooleanField(default=True)
    tracking_token_prefix = models.CharField(max_length=20, default="CRM")
    tracking_token_digits = models.PositiveSmallIntegerField(default=7)
    max_attachment_bytes = models.PositiveBigIntegerField(default=25 * 1024 * 1024)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="organization_single_row"),
            models.CheckConstraint(
                condition=models.Q(tracking_token_digits__gte=1, tracking_token_digits__lte=12),
                name="organization_token_digits_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def get(cls) -> Organization:
        org, _ = cls.objects.get_or_create(pk=cls.SINGLETON_ID)
        return org


class Tag(models.Model):
    name = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    name = models.CharField(max_length=200, validators=[validate_single_line])
    email = models.EmailField(blank=True)
    city = models.CharField(max_length=100, blank=True)
    website = models.URLField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    first_name = models.CharField(max_length=100, blank=True, validators=[validate_single_line])
    last_name = models.CharField(max_length=100, validators=[validate_single_line])
    email = models.EmailField(blank=True, db_index=True)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    city = models.CharField(max_length=100, blank=True, db_index=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="contacts")
    do_not_email = models.BooleanField(default=False)
    do_not_bulk_email = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["last_name", "first_name", "id"]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
