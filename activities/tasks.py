"""Celery tasks: ids in, one service call, the retry policy here."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime

from celery import shared_task
from kombu.exceptions import OperationalError

from . import conf
from .services import blobs, bulk, delivery

logger = logging.getLogger(__name__)


def _owner(task) -> str:
    return f"worker:{task.request.hostname or socket.gethostname()}:{os.getpid()}:{task.request.id}"


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def deliver_email(self, email_id: int) -> str:
    result = delivery.deliver_chunk(email_ids=[email_id], owner=_owner(self))
    if result.rest or result.retries:  # the sender's rate, or try again after a backoff
        raise self.retry(countdown=result.rest_in if result.rest else result.retries[0][1])
    return next(iter(result.outcomes))


def enqueue_deliver_email(email_id: int, *, eta: datetime | None = None) -> None:
    """Enqueue delivery; if the broker cannot take it now, the sweep will."""
    try:
        deliver_email.apply_async((email_id,), eta=eta, retry=True)
    except OperationalError:
        logger.warning("broker unavailable; email %s will be picked up by the sweep", email_id)


@shared_task(acks_late=True)
def sweep_email_delivery() -> dict[str, int]:
    result = delivery.delivery_sweep()
    size = conf.bulk_chunk_size()
    for start in range(0, len(result.due_pending), size):  # a backlog: a few chunk tasks
        enqueue_deliver_email_chunk(result.due_pending[start : start + size])
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
    result = delivery.deliver_chunk(email_ids=email_ids, owner=_owner(self))
    for email_id, wait in result.retries:
        deliver_email.apply_async((email_id,), countdown=wait)
    if result.rest:  # the sender's rate or a slow-down: the rest goes later, untried
        deliver_email_chunk.apply_async((result.rest,), countdown=result.rest_in)
    return result.outcomes


def enqueue_deliver_email_chunk(email_ids: list[int]) -> None:
    try:
        deliver_email_chunk.apply_async((email_ids,), retry=True)
    except OperationalError:
        logger.warning(
            "broker unavailable; %s emails will be picked up by the sweep", len(email_ids)
        )
