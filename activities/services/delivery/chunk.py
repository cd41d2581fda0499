"""Delivery by our workers: claim under a lease, hand the message over, record the outcome.

The claim is committed before any network call, and the attempt is recorded before
the message is handed over (``services.leases``), so a crash leaves a ``sending`` row
whose lease runs out and the sweep re-queues it with its Message-ID unchanged. A chunk
of emails shares one connection; each outcome is recorded on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db.models import F, prefetch_related_objects
from django.utils import timezone

from crm.models import OutgoingDelivery

from ... import conf, dispatch
from ...errors import AttachmentCorrupted, InvalidTransition, LeaseConflict
from ...mail import build_message, recipient_outcomes, refused_recipients
from ...models import Email, EmailStatus, EventKind
from ...selectors import delivery_by
from .. import ratelimit
from ..leases import claim_emails, email_record_failure, email_record_sent, email_release
from ..transitions import record_event
from .failures import SEND_ERRORS, PermanentFailure, classify_send_error, describe_error

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one delivery attempt."""

    outcome: str  # "sent", "retry", "failed", "skipped"
    email_id: int
    attempts: int = 0
    error: str = ""
    retry_in: float | None = None  # seconds until the email is due again ("retry")


def email_claim_for_delivery(*, email_id: int, owner: str) -> Email | None:
    """Claim one pending email for a worker: ``pending_send`` -> ``sending``.

    Returns ``None`` when the email is not due, not pending (already claimed, sent
    or canceled), or waits for an external sender. The claim and its attempt count
    are committed before the caller goes near the network.
    """
    claimed = _claim_for_chunk([email_id], owner)
    return claimed[0] if claimed else None


def email_deliver(
    *, email_id: int, owner: str, connection: BaseEmailBackend | None = None
) -> DeliveryResult:
    """Claim, build, send and record one email. Safe to call twice: the second does nothing."""
    email = email_claim_for_delivery(email_id=email_id, owner=owner)
    if email is None:
        return _not_claimed([email_id])[email_id]
    return _deliver_claimed(email, owner=owner, connection=connection)


def _not_claimed(email_ids: list[int]) -> dict[int, DeliveryResult]:
    """Why emails were not claimed: not due yet (``retry`` when due) or nothing to do."""
    now = timezone.now()
    due_later = {
        pk: due
        for pk, due in Email.objects.filter(
            pk__in=email_ids, status=EmailStatus.PENDING_SEND, next_attempt_at__gt=now
        ).values_list("pk", "next_attempt_at")
        if due is not None  # always, by the filter; for the type checker
    }
    return {
        pk: (
            DeliveryResult("retry", pk, retry_in=(due_later[pk] - now).total_seconds())
            if pk in due_later  # woke early: come back when due
            else DeliveryResult("skipped", pk)
        )
        for pk in email_ids
    }


def _deliver_claimed(
    email: Email, *, owner: str, connection: BaseEmailBackend | None = None
) -> DeliveryResult:
    """Build, send and record an email this caller has claimed."""
    token = email.lease_token
    try:
        message = build_message(email, connection=connection or get_connection())
    except AttachmentCorrupted as exc:  # nothing mends it but attaching the file again
        return _record_failure(email, token, owner, str(exc), True)
    except OSError as exc:  # storage could not be read: may work later
        return _record_failure(email, token, owner, f"could not read an attachment: {exc}", False)
    # Outside any transaction: the network call.
    try:
        message.send(fail_silently=False)
    except SEND_ERRORS as exc:
        permanent = classify_send_error(exc) is PermanentFailure
        return _record_failure(email, token, owner, describe_error(exc), permanent)
    provider_id = ""
    status = getattr(message, "anymail_status", None)
    if status is not None and getattr(status, "message_id", None):
        provider_id = str(status.message_id)
    try:
        email_record_sent(
            email=email,
            lease_token=token,
            owner=owner,
            refused=refused_recipients(message),
            recipients=recipient_outcomes(message, message_id=email.message_id),
            fetch=False,
        )
    except (LeaseConflict, InvalidTransition):
        _note_late_delivery(email, owner)
        return DeliveryResult("sent", email.pk, email.attempts, "lease lost before recording")
    if provider_id:
        record_event(
            email_id=email.pk,
            kind=EventKind.NOTE,
            actor_label=owner,
            reason=f"provider message id {provider_id}",
            data={"provider_message_id": provider_id},
        )
    return DeliveryResult("sent", email.pk, email.attempts)


# A worker sleeps for a rate-limited sender's next slot up to this long; a longer wait
# hands the rest of the chunk to a later task, so the worker is free meanwhile.
MAX_INLINE_WAIT_SECONDS = 2.0


# Emails of a sender without a rate are claimed this many at a time (one transaction),
# with their parties and attachments read in three queries, not per email. A worker that
# dies mid-batch leaves the untried rest in ``sending``; the sweep re-queues them flagged
# as possible duplicates (for those, a false alarm), so the batch stays small.
CLAIM_BATCH = 20


@dataclass
class ChunkResult:
    """What became of a chunk: outcomes by kind, and what the caller must schedule.

    The caller publishes ``retries`` and ``rest`` through ``activities.dispatch``, which
    publishes a wait within the ETA horizon and leaves a longer one to the sweep (the
    emails' due time says when). ``deliver_chunk`` has marked the emails of the first
    kind as published for their due time, so the sweep does not publish them too.
    """

    outcomes: dict[str, int] = field(default_factory=dict)
    retries: list[tuple[int, float]] = field(default_factory=list)  # (email id, seconds)
    rest: list[int] = field(default_factory=list)  # not tried: deliver these later
    rest_in: float = 0.0  # seconds until ``rest`` may be tried

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def _senders_of(email_ids: list[int]) -> dict[int, tuple[str | None, int]]:
    """Each email's rate-limit key and its sender's rate, in one query."""
    rows = Email.objects.filter(pk__in=email_ids).values_list(
        "pk",
        "sender_queue_id",
        "sender_user_id",
        "sender_queue__send_rate_per_minute",
        "sender_user__send_rate_per_minute",
    )
    return {
        pk: (
            ratelimit.sender_key(queue_id=queue_id, user_id=user_id),
            (queue_rate if queue_id else user_rate) or 0,
        )
        for pk, queue_id, user_id, queue_rate, user_rate in rows
    }


def _claim_for_chunk(email_ids: list[int], owner: str) -> list[Email]:
    claimed = claim_emails(
        Email.objects.filter(delivery_by(OutgoingDelivery.WORKER), pk__in=email_ids),
        owner=owner,
        lease_seconds=conf.lease_seconds(),
        limit=len(email_ids),
    )
    prefetch_related_objects(claimed, "parties", "attachments__blob")
    order = {pk: i for i, pk in enumerate(email_ids)}
    return sorted(claimed, key=lambda email: order[email.pk])


def _due_for_task_in(seconds: float) -> datetime:
    """When emails handed to a task that runs in ``seconds`` are due: a second early, as
    the task may start a little before its countdown ends."""
    return timezone.now() + timedelta(seconds=max(seconds - 1, 0))


def _due_later(email_ids: list[int], seconds: float) -> None:
    """Emails handed to a later task are due then, so the sweep leaves them alone."""
    Email.objects.filter(pk__in=email_ids, status=EmailStatus.PENDING_SEND).update(
        next_attempt_at=_due_for_task_in(seconds)
    )


def _open(connection: BaseEmailBackend) -> None:
    """Open the backend's connection, so that the messages after it share it: a backend
    opened by its caller is not closed after each message. If it cannot be opened now,
    the send itself opens it and meets the error, which is recorded for that email."""
    try:
        connection.open()
    except SEND_ERRORS:
        pass


def deliver_chunk(
    *,
    email_ids: list[int],
    owner: str,
    connection: BaseEmailBackend | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_inline_wait: float = MAX_INLINE_WAIT_SECONDS,
    slice_seconds: float | None = None,
) -> ChunkResult:
    """Deliver emails in order over one connection, each outcome recorded on its own.

    Emails are claimed in batches (one at a time for a sender with a rate). The
    sender's rate holds across workers (``ratelimit.take_slot`` per message for a
    limited sender, once per chunk for the others, to see a pause). A temporary failure
    pauses the sender and stops the chunk: that email is retried after its backoff, and
    the rest (released if claimed) waits out the pause (``rest``/``rest_in``) without
    spending attempts. After ``slice_seconds`` (``CRM_TASK_SLICE_SECONDS``) the chunk
    stops before its next batch and hands the rest on (``rest_in`` 0), so a task stays
    well inside its time limits.
    """
    result = _deliver_chunk(
        email_ids=email_ids,
        owner=owner,
        connection=connection,
        sleep=sleep,
        max_inline_wait=max_inline_wait,
        deadline=time.monotonic()
        + (conf.task_slice_seconds() if slice_seconds is None else slice_seconds),
    )
    _mark_published(result)
    return result


def _mark_published(result: ChunkResult) -> None:
    """Mark the emails the caller will publish (a wait within the ETA horizon) as
    published for their due time; those beyond it stay unmarked for the sweep."""
    ids = [pk for pk, wait in result.retries if dispatch.within_horizon(countdown=wait)]
    if result.rest and dispatch.within_horizon(countdown=result.rest_in):
        ids += result.rest
    if ids:
        Email.objects.filter(pk__in=ids, status=EmailStatus.PENDING_SEND).update(
            task_published_for=F("next_attempt_at")
        )


def _deliver_chunk(
    *,
    email_ids: list[int],
    owner: str,
    connection: BaseEmailBackend | None,
    sleep: Callable[[float], None],
    max_inline_wait: float,
    deadline: float,
) -> ChunkResult:
    result = ChunkResult()
    senders = _senders_of(email_ids)
    own_connection = connection is None
    connection = connection or get_connection()
    checked: set[str] = set()  # senders without a rate: pause already checked
    slowed: set[str] = set()
    position = 0
    try:
        while position < len(email_ids):
            if position and time.monotonic() >= deadline:  # the slice is spent
                result.rest, result.rest_in = email_ids[position:], 0.0
                _due_later(result.rest, 0.0)
                return result
            key, rate = senders.get(email_ids[position], (None, 0))
            while key and (rate or key not in checked):
                slot = ratelimit.take_slot(key, rate)
                checked.add(key)
                if slot.slowed:
                    slowed.add(key)
                if slot.wait <= 0:
                    break
                if slot.wait > max_inline_wait:
                    result.rest, result.rest_in = email_ids[position:], slot.wait
                    _due_later(result.rest, slot.wait)
                    return result
                sleep(slot.wait)
            # The batch: this email, and after it those of the same sender (no rate).
            end = position + 1
            while (
                not rate
                and end < len(email_ids)
                and end - position < CLAIM_BATCH
                and senders.get(email_ids[end], (None, 0)) == (key, 0)
            ):
                end += 1
            batch_ids = email_ids[position:end]
            claimed = _claim_for_chunk(batch_ids, owner)
            taken = {email.pk for email in claimed}
            for pk, skipped in _not_claimed([pk for pk in batch_ids if pk not in taken]).items():
                result.count(skipped.outcome)
                if skipped.outcome == "retry":
                    result.retries.append((pk, skipped.retry_in or 0.0))
            for index, email in enumerate(claimed):
                try:
                    _open(connection)
                    outcome = _deliver_claimed(email, owner=owner, connection=connection)
                except BaseException as exc:  # a time limit, a lost database, a bug
                    # This email's fate is unknown: it stays ``sending`` for the sweep.
                    # Those after it were never tried: give them back now, unflagged,
                    # rather than let their lease run out and flag them as duplicates.
                    _release_untried(claimed[index + 1 :], exc)
                    raise
                result.count(outcome.outcome)
                if outcome.outcome == "sent" and key in slowed:
                    ratelimit.recovered(key)
                    slowed.discard(key)
                if outcome.outcome != "retry":
                    continue
                result.retries.append((email.pk, outcome.retry_in or 0.0))
                if key:  # a temporary failure: the server asks us to wait
                    connection.close()  # the connection may be what failed
                    pause = ratelimit.slow_down(key, outcome.error)
                    untried = claimed[index + 1 :]
                    email_release(
                        emails=untried,
                        not_before=_due_for_task_in(pause),
                        reason=f"not tried: the sender is paused for {pause:.0f}s "
                        f"after a temporary failure ({outcome.error[:200]})",
                    )
                    result.rest = [e.pk for e in untried] + email_ids[end:]
                    result.rest_in = pause if result.rest else 0.0
                    _due_later(email_ids[end:], pause)
                    return result
            position = end
    finally:
        if own_connection or result.rest:
            connection.close()
    return result


def _release_untried(untried: list[Email], exc: BaseException) -> None:
    if not untried:
        return
    try:
        email_release(
            emails=untried,
            not_before=None,
            reason=f"not tried: the delivery task stopped ({describe_error(exc)[:200]})",
        )
    except Exception:  # the original error is what the caller must see
        logger.exception(
            "could not give back %s untried emails; their lease will run out", len(untried)
        )


def _record_failure(
    email: Email, token: int, owner: str, error: str, permanent: bool
) -> DeliveryResult:
    try:
        updated = email_record_failure(
            email=email, lease_token=token, owner=owner, error=error, permanent=permanent
        )
    except (LeaseConflict, InvalidTransition):
        logger.warning("email %s: failure not recorded, lease lost: %s", email.pk, error)
        return DeliveryResult("skipped", email.pk, email.attempts, error)
    if updated.status == EmailStatus.FAILED:
        return DeliveryResult("failed", email.pk, updated.attempts, error)
    due = updated.next_attempt_at  # set when an email goes back to pending_send
    wait = (due - timezone.now()).total_seconds() if due is not None else 0.0
    return DeliveryResult("retry", email.pk, updated.attempts, error, retry_in=max(wait, 0))


def _note_late_delivery(email: Email, owner: str) -> None:
    """The message went out after this worker's lease was taken over: say so, loudly."""
    Email.objects.filter(pk=email.pk).update(possible_duplicate=True)
    record_event(
        email_id=email.pk,
        kind=EventKind.NOTE,
        actor_label=owner,
        reason="handed to the mail server after the lease expired; a second copy is possible",
        data={"lease_token": email.lease_token},
    )
