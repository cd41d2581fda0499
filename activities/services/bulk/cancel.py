"""Canceling a bulk job: no more emails written, the unclaimed ones withdrawn."""

from __future__ import annotations

from django.db import models, transaction
from django.utils import timezone

from crm.models import User

from ...errors import InvalidTransition
from ...eventlog import email_events_logged
from ...models import BulkSend, BulkSendStatus, Email, EmailEvent, EmailStatus, EventKind
from ...policies import check_may_send_as
from ..webhooks import webhook_bulk_send_progress, webhook_email_status_changed


def bulk_send_cancel(*, job: BulkSend, actor: User, reason: str = "") -> BulkSend:
    """Stop a queued or running job (or a completed one whose emails are still being
    delivered) and withdraw its emails that nobody has claimed.

    Emails already claimed (``sending``) or sent are not touched. After this returns,
    the job writes no more emails: each chunk re-checks the status in its transaction.
    """
    if actor is not None and not actor.is_staff:
        sender = job.sender
        if job.created_by_id != actor.pk and sender is not None:
            check_may_send_as(actor, sender)
    now = timezone.now()
    still_delivering = models.Exists(
        Email.objects.filter(bulk_send=models.OuterRef("pk"), status=EmailStatus.PENDING_SEND)
    )
    with transaction.atomic():
        # A job whose emails are all written (completed) may still be delivering them,
        # for a long time at a send rate: canceling it withdraws what is still pending.
        changed = (
            BulkSend.objects.filter(pk=job.pk)
            .filter(
                models.Q(status__in=[BulkSendStatus.QUEUED, BulkSendStatus.RUNNING])
                | models.Q(still_delivering, status=BulkSendStatus.COMPLETED)
            )
            .update(status=BulkSendStatus.CANCELED, canceled_at=now, finished_at=now)
        )
        if not changed:
            current = BulkSend.objects.values_list("status", flat=True).get(pk=job.pk)
            raise InvalidTransition(f"cannot cancel a bulk job that is {current}", status=current)
        # Locked, so that a claimer (which skips locked rows) cannot take one meanwhile.
        withdrawn_ids = list(
            Email.objects.select_for_update()
            .filter(bulk_send=job, status=EmailStatus.PENDING_SEND)
            .values_list("pk", flat=True)
        )
        Email.objects.filter(pk__in=withdrawn_ids).update(
            status=EmailStatus.CANCELED,
            state="canceled",
            canceled_at=now,
            modified_at=now,
            next_attempt_at=None,
        )
        EmailEvent.objects.bulk_create(
            EmailEvent(
                email_id=email_id,
                kind=EventKind.STATUS,
                from_status=EmailStatus.PENDING_SEND,
                to_status=EmailStatus.CANCELED,
                actor=actor,
                actor_label=actor.get_username() if actor else "",
                reason=reason or f"bulk job {job.pk} canceled",
            )
            for email_id in withdrawn_ids
        )
        email_events_logged(
            withdrawn_ids,
            kind=EventKind.STATUS,
            from_status=EmailStatus.PENDING_SEND,
            to_status=EmailStatus.CANCELED,
            reason=reason or f"bulk job {job.pk} canceled",
            actor_label=actor.get_username() if actor else "",
        )
        webhook_email_status_changed(
            email_ids=withdrawn_ids,
            from_status=EmailStatus.PENDING_SEND,
            to_status=EmailStatus.CANCELED,
            reason=reason or f"bulk job {job.pk} canceled",
            at=now,
        )
        webhook_bulk_send_progress(job_id=job.pk)
    return BulkSend.objects.get(pk=job.pk)
