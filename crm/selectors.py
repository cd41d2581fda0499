"""Reads of the CRM records for the staff pages."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import EmailApproval, Queue, User


def users_for_approval(*, include_decided: bool = False) -> QuerySet[User]:
    """Users whose primary address waits for a decision; with ``include_decided``,
    every user that has an address (approved and rejected ones too)."""
    users = User.objects.exclude(email="")
    if not include_decided:
        users = users.filter(email_router_access_approval=EmailApproval.PENDING)
    return users.select_related("email_approval_decided_by").order_by(
        "last_name", "first_name", "username"
    )


def queues_for_approval(*, include_decided: bool = False) -> QuerySet[Queue]:
    """Queues whose primary address waits for a decision (as ``users_for_approval``)."""
    queues = Queue.objects.exclude(email="")
    if not include_decided:
        queues = queues.filter(email_router_access_approval=EmailApproval.PENDING)
    return (
        queues.select_related("email_approval_decided_by")
        .prefetch_related("members")
        .order_by("name")
    )
