"""Celery tasks: ids in, one service call, the retry policy here.

Nothing imports this module: services publish these tasks by name through
``activities.dispatch``, and Celery's autodiscovery registers them.

Every task has a soft and a hard time limit: ``CELERY_TASK_SOFT_TIME_LIMIT`` and
``CELERY_TASK_TIME_LIMIT`` unless it sets its own (below them). Nothing here catches
``SoftTimeLimitExceeded``: a delivery cut short leaves its rows as a crash would, the
claimed ones under their lease and the rest pending, for the sweep.
"""

from __future__ import annotations

import os
import socket

from celery import shared_task
from django.conf import settings

from . import dispatch
from .services.blobs import blob_collect_garbage
from .services.bulk import bulk_send_run, bulk_sends_to_resume
from .services.delivery import deliver_chunk, delivery_sweep_and_enqueue
from .services.inbound import inbound_message_read_by_id
from .services.inbound_release import inbound_release_for, inbound_sweep
from .services.mailboxes import mailboxes_poll_all
from .services.webhooks import webhook_delivery_attempt, webhook_sweep


def _owner(task) -> str:
    return f"worker:{task.request.hostname or socket.gethostname()}:{os.getpid()}:{task.request.id}"


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def deliver_email(self, email_id: int) -> str:
    result = deliver_chunk(email_ids=[email_id], owner=_owner(self))
    if result.rest or result.retries:  # the sender's rate, or try again after a backoff
        countdown = dispatch.retry_countdown(
            result.rest_in if result.rest else result.retries[0][1]
        )
        if countdown is not None:
            raise self.retry(countdown=countdown)
        # Beyond the ETA horizon: the email's due time says when; the sweep publishes it.
        return "left to the sweep"
    return next(iter(result.outcomes))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def deliver_email_chunk(self, email_ids: list[int]) -> dict[str, int]:
    """Deliver a chunk of emails over one connection; each outcome is recorded apart."""
    result = deliver_chunk(email_ids=email_ids, owner=_owner(self))
    for email_id, wait in result.retries:
        dispatch.deliver_email_later(email_id, countdown=wait)
    if result.rest:  # the sender's rate or a slow-down: the rest goes later, untried
        dispatch.deliver_chunk_later(result.rest, countdown=result.rest_in)
    return result.outcomes


# The sweep runs every CRM_SWEEP_INTERVAL seconds and does a bounded amount of work: one
# that takes minutes is stuck on something (a lock), and the next sweep should start.
SWEEP_SOFT_TIME_LIMIT = min(60.0, settings.CELERY_TASK_SOFT_TIME_LIMIT)
SWEEP_TIME_LIMIT = min(75.0, settings.CELERY_TASK_TIME_LIMIT)


@shared_task(acks_late=True, soft_time_limit=SWEEP_SOFT_TIME_LIMIT, time_limit=SWEEP_TIME_LIMIT)
def sweep_email_delivery() -> dict[str, int]:
    result = delivery_sweep_and_enqueue()
    jobs = bulk_sends_to_resume()
    for job_id in jobs:
        dispatch.run_bulk_send_now(job_id)
    inbound = inbound_sweep()
    webhook_events = webhook_sweep()
    return {
        **{f"inbound_{status}": n for status, n in inbound.statuses.items()},
        "requeued_expired": len(result.requeued_expired),
        "enqueued": len(result.due_pending),
        "published_coming_due": len(result.coming_due),
        "bulk_jobs_resumed": len(jobs),
        "webhook_events_published": len(webhook_events),
    }


@shared_task(acks_late=True)
def collect_orphan_blobs() -> dict[str, int | bool]:
    """The full collection: unreferenced blobs and orphan files (``manage.py collect_blobs``
    runs the same by hand, or as a dry run)."""
    return blob_collect_garbage().as_dict()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_bulk_send(self, job_id: int) -> str:
    return bulk_send_run(job_id=job_id).status


@shared_task(acks_late=True)
def poll_mailboxes() -> dict[str, int]:
    """Every enabled polled mailbox once (beat, every CRM_MAILBOX_POLL_INTERVAL seconds).
    No retry here: a mailbox that failed is polled again by the next beat."""
    results = mailboxes_poll_all()
    return {
        "mailboxes": len(results),
        "stored": sum(r.stored for r in results),
        "duplicates": sum(r.duplicates for r in results),
        "refused": sum(r.refused for r in results),
        "failed": sum(1 for r in results if r.error),
        "busy": sum(1 for r in results if r.busy),
    }


@shared_task(acks_late=True, reject_on_worker_lost=True)
def release_inbound(kind: str, pk: int) -> dict[str, int]:
    """Release the blocked mail of a mailbox whose address was approved."""
    done = inbound_release_for(kind=kind, pk=pk)
    return {**done.statuses, "parties_routed": done.parties_routed}


@shared_task(acks_late=True, reject_on_worker_lost=True)
def read_inbound(message_id: int) -> str:
    """Read a kept inbound message too large to read where it arrived."""
    return inbound_message_read_by_id(message_id=message_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def deliver_webhook(self, event_id: int) -> str:
    """POST one outbox event; after a failure, Celery's retry at the event's next due
    time (beyond the ETA horizon the sweep publishes it when it is due)."""
    result = webhook_delivery_attempt(event_id=event_id)
    if result.retry_in is not None:
        countdown = dispatch.retry_countdown(result.retry_in)
        if countdown is not None:
            raise self.retry(countdown=countdown)
        return "left to the sweep"
    return result.outcome
