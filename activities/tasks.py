"""Celery tasks: ids in, one service call, the retry policy here."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime

from celery import shared_task
from django.core.mail import get_connection
from kombu.exceptions import OperationalError

from .services import blobs, bulk, delivery

logger = logging.getLogger(__name__)


def _owner(task) -> str:
    return f"worker:{task.request.hostname or socket.gethostname()}:{os.getpid()}:{task.request.id}"


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def deliver_email(self, email_id: int) -> str:
    result = delivery.email_deliver(email_id=email_id, owner=_owner(self))
    if result.outcome == "retry":
        raise self.retry(countdown=result.retry_in)
    return result.outcome


def enqueue_deliver_email(email_id: int, *, eta: datetime | None = None) -> None:
    """Enqueue delivery; if the broker cannot take it now, the sweep will."""
    try:
        deliver_email.apply_async((email_id,), eta=eta, retry=True)
    except OperationalError:
        logger.warning("broker unavailable; email %s will be picked up by the sweep", email_id)


@shared_task(acks_late=True)
def sweep_email_delivery() -> dict[str, int]:
    result = delivery.delivery_sweep()
    for email_id in result.due_pending:
        enqueue_deliver_email(email_id)
    jobs = bulk.bulk_sends_to_resume()
    for job_id in jobs:
        enqueue_bulk_send_run(job_id)
    return {
        "requeued_expired": len(result.requeued_expired),
        "enqueued": len(result.due_pending),
        "bulk_jobs_resumed": len(jobs),
    }


@shared_task(acks_late=True)
def collect_orphan_blobs() -> int:
    return blobs.blob_collect_garbage()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_bulk_send(self, job_id: int) -> str:
    return bulk.bulk_send_run(job_id=job_id).status


def enqueue_bulk_send_run(job_id: int) -> None:
    try:
        run_bulk_send.apply_async((job_id,), retry=True)
    except OperationalError:
        logger.warning("broker unavailable; bulk job %s will be resumed by the sweep", job_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def deliver_email_chunk(self, email_ids: list[int]) -> dict[str, int]:
    """Deliver a chunk of emails over one connection; each outcome is recorded apart."""
    outcomes: dict[str, int] = {}
    connection = get_connection()
    try:
        for email_id in email_ids:
            result = delivery.email_deliver(
                email_id=email_id, owner=_owner(self), connection=connection
            )
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
            if result.outcome == "retry":
                # The connection may be what failed: the next email opens a fresh one.
                connection.close()
                deliver_email.apply_async((email_id,), countdown=result.retry_in)
    finally:
        connection.close()
    return outcomes


def enqueue_deliver_email_chunk(email_ids: list[int]) -> None:
    try:
        deliver_email_chunk.apply_async((email_ids,), retry=True)
    except OperationalError:
        logger.warning(
            "broker unavailable; %s emails will be picked up by the sweep", len(email_ids)
        )
