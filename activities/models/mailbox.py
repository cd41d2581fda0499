"""Mailboxes the application polls over IMAP or POP3 for a queue or a user, and what it
keeps of each poll (``services.mailboxes``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class MailboxProtocol(models.TextChoices):
    IMAP = "imap", "IMAP"
    POP3 = "pop3", "POP3"


class MailboxSecurity(models.TextChoices):
    TLS = "tls", "TLS (implicit, port 993 / 995)"
    STARTTLS = "starttls", "STARTTLS (port 143 / 110)"
    NONE = "none", "None (plain text: loopback, or CRM_MAILBOX_ALLOW_PLAIN)"


class MailboxAfterStore(models.TextChoices):
    """What is done on the server to a message once it is stored."""

    MARK_SEEN = "mark_seen", "Mark it \\Seen (IMAP)"
    MOVE = "move", "Move it to a folder (IMAP)"
    DELETE = "delete", "Delete it (IMAP, POP3)"
    KEEP = "keep", "Keep it and remember its UIDL (POP3)"


AFTER_STORE_OF_PROTOCOL = {
    MailboxProtocol.IMAP: (
        MailboxAfterStore.MARK_SEEN,
        MailboxAfterStore.MOVE,
        MailboxAfterStore.DELETE,
    ),
    MailboxProtocol.POP3: (MailboxAfterStore.DELETE, MailboxAfterStore.KEEP),
}


class PolledMailbox(models.Model):
    """A queue's or a user's mailbox on an IMAP or POP3 server, polled for received mail.

    ``secret_sealed`` holds the password encrypted (``activities.secrets``), never the
    password itself. IMAP tracking: the folder's ``uidvalidity`` and ``last_uid``, the
    highest UID taken (stored or refused); a new UIDVALIDITY starts over. POP3 tracking:
    a ``PolledMessage`` per UIDL taken.
    """

    queue = models.ForeignKey(
        "crm.Queue",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="polled_mailboxes",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="polled_mailboxes",
    )
    protocol = models.CharField(
        max_length=4, choices=MailboxProtocol.choices, default=MailboxProtocol.IMAP
    )
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(help_text="993 for IMAP over TLS, 995 for POP3 over TLS")
    security = models.CharField(
        max_length=8, choices=MailboxSecurity.choices, default=MailboxSecurity.TLS
    )
    username = models.CharField(max_length=320)
    secret_sealed = models.TextField(blank=True, editable=False)
    folder = models.CharField(max_length=200, default="INBOX", help_text="IMAP only")
    after_store = models.CharField(
        max_length=10, choices=MailboxAfterStore.choices, default=MailboxAfterStore.MARK_SEEN
    )
    move_to = models.CharField(
        max_length=200, blank=True, help_text="the IMAP folder stored messages are moved to"
    )
    enabled = models.BooleanField(default=True)
    # Tracking.
    uidvalidity = models.BigIntegerField(null=True, blank=True, editable=False)
    last_uid = models.BigIntegerField(default=0, editable=False)
    # What the polls did; last_error is the last connection, login or storage failure
    # (cleared by a poll that gets through), last_refusal the last message refused.
    last_polled_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_refusal = models.TextField(blank=True, editable=False)
    stored_count = models.PositiveIntegerField(default=0, editable=False)
    refused_count = models.PositiveIntegerField(default=0, editable=False)
    # One poll at a time: a poll holds the mailbox until this time (a lease).
    poll_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = "polled mailbox"
        verbose_name_plural = "polled mailboxes"
        constraints = [
            models.CheckConstraint(
                condition=(Q(queue__isnull=False) & Q(user__isnull=True))
                | (Q(queue__isnull=True) & Q(user__isnull=False)),
                name="polledmailbox_one_owner",
                violation_error_message="choose a queue or a user, exactly one",
            ),
            models.CheckConstraint(
                condition=Q(port__gte=1, port__lte=65535),
                name="polledmailbox_port_valid",
                violation_error_message="the port is between 1 and 65535",
            ),
            models.CheckConstraint(
                condition=(
                    Q(protocol=MailboxProtocol.IMAP)
                    & Q(after_store__in=AFTER_STORE_OF_PROTOCOL[MailboxProtocol.IMAP])
                )
                | (
                    Q(protocol=MailboxProtocol.POP3)
                    & Q(after_store__in=AFTER_STORE_OF_PROTOCOL[MailboxProtocol.POP3])
                ),
                name="polledmailbox_after_store_of_protocol",
                violation_error_message=(
                    "IMAP marks \\Seen, moves or deletes a stored message; POP3 deletes it "
                    "or keeps it"
                ),
            ),
            models.CheckConstraint(
                condition=~Q(after_store=MailboxAfterStore.MOVE) | ~Q(move_to=""),
                name="polledmailbox_move_has_folder",
                violation_error_message="name the folder to move stored messages to",
            ),
            models.CheckConstraint(
                condition=Q(security__in=[s.value for s in MailboxSecurity]),
                name="polledmailbox_security_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.username}@{self.host} ({self.get_protocol_display()})"

    @property
    def owner(self):
        return self.queue if self.queue_id else self.user


class PolledMessageOutcome(models.TextChoices):
    STORED = "stored", "Stored"
    DUPLICATE = "duplicate", "Stored before"
    REFUSED = "refused", "Refused"


class PolledMessage(models.Model):
    """A message taken from a polled mailbox: a POP3 UIDL, or (until its after-store
    step is done on the server) an IMAP UID of the current UIDVALIDITY.

    Written in the same transaction as the email it became, so a message stored is never
    stored again whatever happens after; ``done`` once the server did the after-store
    step (deleted, moved, marked). IMAP rows are removed once done (``last_uid`` covers
    them); POP3 rows stay while the message is on the server.
    """

    mailbox = models.ForeignKey(PolledMailbox, on_delete=models.CASCADE, related_name="messages")
    uid = models.CharField(max_length=70)
    outcome = models.CharField(max_length=10, choices=PolledMessageOutcome.choices)
    email = models.ForeignKey(
        "activities.Email", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    done = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "uid"], name="polledmessage_uid_unique")
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.uid} {self.outcome}"
