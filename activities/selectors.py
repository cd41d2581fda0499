"""Reads: who may see which emails, templates and attachments.

The visibility rule (docs/api.md): staff (``is_staff``) see every email. Anyone else
sees the emails they created or sent as themselves, the emails of the queues they are
a member of (sent as the queue, or with the queue among the parties), and the emails
on which they are a party themselves. Contacts and accounts have no owners, so
"regarding a record they can see" would be every record; it is not used.
"""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from crm.models import User

from .models import ActivityMimeAttachment, Email, EmailParty, Template


def emails_visible_to(user: User) -> QuerySet[Email]:
    emails = Email.objects.all()
    if not user.is_authenticated:
        return emails.none()
    if user.is_staff:
        return emails
    queue_ids = user.queues.values("pk")
    party_of = EmailParty.objects.filter(Q(user=user) | Q(queue__in=queue_ids)).values("email_id")
    return emails.filter(
        Q(sender_user=user)
        | Q(created_by=user)
        | Q(sender_queue__in=queue_ids)
        | Q(pk__in=party_of)
    )


def delivery_by(kind: str) -> Q:
    """Emails whose sender (the queue, else the user) delivers through ``kind``."""
    return Q(sender_queue__outgoing_delivery=kind) | Q(
        sender_queue__isnull=True, sender_user__outgoing_delivery=kind
    )


def email_list_queryset(qs: QuerySet[Email]) -> QuerySet[Email]:
    """Everything an email's representation needs, in a fixed number of queries."""
    return qs.select_related(
        "sender_user", "sender_queue", "regarding_type", "template"
    ).prefetch_related(
        Prefetch("parties", queryset=EmailParty.objects.order_by("role", "position", "id")),
        Prefetch(
            "attachments",
            queryset=ActivityMimeAttachment.objects.select_related("blob").order_by(
                "position", "id"
            ),
        ),
    )


def templates_visible_to(user: User) -> QuerySet[Template]:
    return Template.objects.all() if user.is_authenticated else Template.objects.none()


def attachments_visible_to(user: User) -> QuerySet[ActivityMimeAttachment]:
    """Attachments of templates, and of the emails the user may see."""
    if not user.is_authenticated:
        return ActivityMimeAttachment.objects.none()
    attachments = ActivityMimeAttachment.objects.select_related("blob")
    if user.is_staff:
        return attachments
    return attachments.filter(
        Q(template__isnull=False) | Q(email__in=emails_visible_to(user).values("pk"))
    )
