"""The periodic sweep: take back expired leases, find pending mail no task holds, and
publish the mail that comes within the ETA horizon."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby

from django.db.models import F, Q
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
    # (email id, due time): pending emails that came within the ETA horizon and have no
    # task for that due time yet; published with it as their ETA.
    coming_due: list[tuple[int, datetime]] = field(default_factory=list)


def delivery_sweep(*, limit: int = 1000) -> SweepResult:
    """Return expired leases to ``pending_send`` and list the pending emails to publish.

    Expired leases are revoked (``leases_revoke_expired``). Due ``pending_send`` emails
    of worker senders that no task seems to hold (due for longer than
    ``CRM_SWEEP_PENDING_AFTER_SECONDS``, or never given a due time) are listed with
    the re-queued ones, and their due time is moved to now so that the next sweep
    leaves them to the task it is about to publish.

    Emails due later, within the ETA horizon, whose due time no task was published for
    (``task_published_for``: a scheduled email, a retry or a sender's pause that lay
    beyond the horizon) are listed in ``coming_due`` and marked as published for it, so
    the next sweep does not publish them again.
    """
    requeued = leases_revoke_expired(limit=limit)
    now = timezone.now()
    stale_before = now - timedelta(seconds=conf.sweep_pending_after_seconds())
    worker_sender = delivery_by(OutgoingDelivery.WORKER)
    pending = Email.objects.filter(worker_sender, status=EmailStatus.PENDING_SEND)
    due = list(
        pending.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=stale_before))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if due:
        # Push the due time forward so the next sweep leaves them to the task a while.
        Email.objects.filter(pk__in=due, status=EmailStatus.PENDING_SEND).update(
            next_attempt_at=now, task_published_for=now
        )
    horizon = now + timedelta(seconds=conf.eta_horizon_seconds())
    coming_due: list[tuple[int, datetime]] = [
        (pk, due)  # due is never None here (the filter on it), as the type cannot tell
        for pk, due in pending.filter(next_attempt_at__gt=now, next_attempt_at__lte=horizon)
        .filter(Q(task_published_for__isnull=True) | ~Q(task_published_for=F("next_attempt_at")))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", "next_attempt_at")[:limit]
        if due is not None
    ]
    if coming_due:
        Email.objects.filter(
            pk__in=[pk for pk, _ in coming_due], status=EmailStatus.PENDING_SEND
        ).update(task_published_for=F("next_attempt_at"))
    worker_requeued = list(
        Email.objects.filter(worker_sender, pk__in=requeued).values_list("pk", flat=True)
    )
    return SweepResult(
        requeued_expired=requeued,
        due_pending=sorted(set(due) | set(worker_requeued)),
        coming_due=coming_due,
    )


def delivery_sweep_and_enqueue() -> SweepResult:
    """``delivery_sweep``, then publish its due emails as a few chunk tasks (a backlog
    is not one task per email), and its emails coming due as chunk tasks with their due
    time as ETA (those due at the same moment together: a paused sender's rest)."""
    result = delivery_sweep()
    size = conf.bulk_chunk_size()
    for start in range(0, len(result.due_pending), size):
        dispatch.deliver_chunk_now(result.due_pending[start : start + size])
    for eta, rows in groupby(result.coming_due, key=lambda row: row[1]):
        ids = [pk for pk, _ in rows]
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            if not dispatch.deliver_chunk_at(chunk, eta=eta):
                # Not published (the broker is down): the next sweep tries again.
                Email.objects.filter(pk__in=chunk, task_published_for=eta).update(
                    task_published_for=None
                )
    return result
