"""Enqueueing: the one way services hand work to the Celery workers.

Tasks are published *by name* once the current transaction commits (Zulip's
``queue_event_on_commit``), so a rolled-back request never sends and no service imports
``tasks.py``. A broker that cannot take a message now is not an error: every piece of
work published here is also found by the periodic sweep (``pending_send`` emails that
are due, jobs without a heartbeat), so it is logged and left to the sweep.

The ETA horizon: a task is published with an ETA or countdown at most
``CRM_ETA_HORIZON_SECONDS`` ahead. A worker holds a task with an ETA unacknowledged
until then, and a broker redelivers a message held longer than its visibility timeout
(Redis) or consumer timeout (RabbitMQ), again and again; the settings keep the horizon
well below both. A later publish is not made: the email stays ``pending_send`` with its
due time (``next_attempt_at``), and the sweep publishes it once it comes within the
horizon.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from . import conf

logger = logging.getLogger(__name__)

DELIVER_EMAIL = "activities.tasks.deliver_email"
DELIVER_EMAIL_CHUNK = "activities.tasks.deliver_email_chunk"
RUN_BULK_SEND = "activities.tasks.run_bulk_send"
RELEASE_INBOUND = "activities.tasks.release_inbound"
READ_INBOUND = "activities.tasks.read_inbound"
DELIVER_WEBHOOK = "activities.tasks.deliver_webhook"


@functools.cache
def _tasks_registered() -> None:
    """Let Celery's loader import the apps' ``tasks`` modules (its autodiscovery), so a
    name resolves to its task: then ``task_always_eager`` (in-process execution, the
    tests) runs it here, and routing and time limits are the task's own."""
    current_app.loader.import_default_modules()


def _delay(eta: datetime | None, countdown: float | None) -> float:
    """Seconds from now until a task published with ``eta`` or ``countdown`` is due."""
    if eta is not None:
        return (eta - timezone.now()).total_seconds()
    return countdown or 0.0


def within_horizon(*, eta: datetime | None = None, countdown: float | None = None) -> bool:
    """Whether a task due at ``eta`` (or in ``countdown`` seconds) may be published now."""
    return _delay(eta, countdown) <= conf.eta_horizon_seconds()


def retry_countdown(seconds: float) -> float | None:
    """The countdown of a task's own retry in ``seconds``: within the horizon as it is
    (so below the broker's redelivery limit), ``None`` beyond it (left to the sweep)."""
    return max(seconds, 0.0) if within_horizon(countdown=seconds) else None


def _publish(
    name: str, args: tuple[Any, ...], *, eta: datetime | None = None, countdown: float | None = None
) -> bool:
    """Publish now; ``False`` when the ETA lies beyond the horizon or the broker cannot
    take it (a warning): the sweep finds that work by its due time."""
    if not within_horizon(eta=eta, countdown=countdown):
        logger.info(
            "%s%s is due in %.0fs, beyond the ETA horizon: left to the sweep",
            name,
            args,
            _delay(eta, countdown),
        )
        return False
    _tasks_registered()
    try:
        current_app.signature(name, args=args).apply_async(
            eta=eta,
            countdown=countdown,  # type: ignore[arg-type]  # None is Celery's default; the stub says float
            retry=True,
        )
    except OperationalError as exc:  # kombu's wrapper of the transport's errors
        logger.warning(
            "broker unavailable (%s); %s%s is left to the sweep",
            exc or type(exc).__name__,
            name,
            args,
        )
        return False
    return True


def _after_commit(name: str, args: tuple[Any, ...], *, eta: datetime | None = None) -> None:
    transaction.on_commit(lambda: _publish(name, args, eta=eta))


def deliver_email_after_commit(email_id: int, *, eta: datetime | None = None) -> None:
    """Deliver one email once the transaction commits (at ``eta`` if given; an ``eta``
    beyond the horizon publishes nothing: the sweep will)."""
    _after_commit(DELIVER_EMAIL, (email_id,), eta=eta)


def deliver_chunk_after_commit(email_ids: list[int]) -> None:
    """Deliver emails over one connection once the transaction commits."""
    _after_commit(DELIVER_EMAIL_CHUNK, (list(email_ids),))


def run_bulk_send_after_commit(job_id: int) -> None:
    """Start (or resume) a bulk job's run once the transaction commits."""
    _after_commit(RUN_BULK_SEND, (job_id,))


def release_inbound_after_commit(kind: str, pk: int) -> None:
    """Release the blocked mail of a mailbox (``kind`` "user" or "queue") once the
    transaction that approved its address commits."""
    _after_commit(RELEASE_INBOUND, (kind, pk))


def read_inbound_after_commit(message_id: int) -> None:
    """Read a kept inbound message in a worker once the transaction commits."""
    _after_commit(READ_INBOUND, (message_id,))


def deliver_chunk_now(email_ids: list[int]) -> bool:
    """Publish a chunk outside any transaction (the sweep's backlog)."""
    return _publish(DELIVER_EMAIL_CHUNK, (list(email_ids),))


def deliver_chunk_at(email_ids: list[int], *, eta: datetime) -> bool:
    """Publish a chunk due at ``eta`` (the sweep: emails coming within the horizon)."""
    return _publish(DELIVER_EMAIL_CHUNK, (list(email_ids),), eta=eta)


def run_bulk_send_now(job_id: int) -> bool:
    return _publish(RUN_BULK_SEND, (job_id,))


def deliver_email_later(email_id: int, *, countdown: float) -> bool:
    """Try one email again in ``countdown`` seconds (a retry after a backoff); beyond
    the horizon nothing is published and the sweep takes it when it is due."""
    return _publish(DELIVER_EMAIL, (email_id,), countdown=countdown)


def deliver_chunk_later(email_ids: list[int], *, countdown: float) -> bool:
    """Hand the untried rest of a chunk to a later task (a sender's rate or pause, or
    the chunk's time slice spent); beyond the horizon it is left to the sweep."""
    return _publish(DELIVER_EMAIL_CHUNK, (list(email_ids),), countdown=countdown)


def deliver_webhooks_after_commit(event_ids: list[int]) -> None:
    """POST each outbox event once the transaction commits (one task per event, so
    each is retried on its own); what the broker does not take, the sweep resends."""
    ids = list(event_ids)
    transaction.on_commit(lambda: [_publish(DELIVER_WEBHOOK, (pk,)) for pk in ids])


def deliver_webhook_now(event_id: int) -> bool:
    """Publish one outbox event outside any transaction (the sweep, a retry by hand)."""
    return _publish(DELIVER_WEBHOOK, (event_id,))
