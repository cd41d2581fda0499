"""Celery tasks: ids in, one service call, the retry policy here."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime

from celery import shared_task
from kombu.exceptions import OperationalError

from .services import blobs, delivery

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
    return {"requeued_expired": len(result.requeued_expired), "enqueued": len(result.due_pending)}


@shared_task(acks_late=True)
def collect_orphan_blobs() -> int:
    return blobs.blob_collect_garbage()
