"""The periodic sweep: take back expired leases and find pending mail no task holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from crm.models import OutgoingDelivery

from ... import conf, dispatch
from ...models import Email, EmailStatus
from ...selectors import delivery_by
from ..leases import leases_revoke_expired


@dataclass(frozen=True)
class SweepResult:
    requeued_expired: list[int]
    due_pending: list[int]


def delivery_sweep(*, limit: int = 1000) -> SweepResult:
    """Return expired leases to ``pending_send`` and list the pending emails to re-enqueue.

    Expired leases are revoked (``leases_revoke_expired``). Due ``pending_send`` emails
    of worker senders that no task seems to hold (due for longer than
    ``CRM_SWEEP_PENDING_AFTER_SECONDS``, or never given a due time) are listed with
    the re-queued ones, and their due time is moved to now so that the next sweep
    leaves them to the task it is about to publish.
    """
    requeued = leases_revoke_expired(limit=limit)
    now = timezone.now()
    stale_before = now - timedelta(seconds=conf.sweep_pending_after_seconds())
    worker_sender = delivery_by(OutgoingDelivery.WORKER)
    due = list(
        Email.objects.filter(worker_sender, status=EmailStatus.PENDING_SEND)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=stale_before))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if due:
        # Push the due time forward so the next sweep leaves them to the task a while.
        Email.objects.filter(pk__in=due, status=EmailStatus.PENDING_SEND).update(
            next_attempt_at=now
        )
    worker_requeued = list(
        Email.objects.filter(worker_sender, pk__in=requeued).values_list("pk", flat=True)
    )
    return SweepResult(
        requeued_expired=requeued, due_pending=sorted(set(due) | set(worker_requeued))
    )


def delivery_sweep_and_enqueue() -> SweepResult:
    """``delivery_sweep``, then publish its due emails as a few chunk tasks (a backlog
    is not one task per email)."""
    result = delivery_sweep()
    size = conf.bulk_chunk_size()
    for start in range(0, len(result.due_pending), size):
        dispatch.deliver_chunk_now(result.due_pending[start : start + size])
    return result
