"""Leases: the one way an email is claimed for delivery and its outcome recorded.

Both delivery paths build on this module: our workers (``services.delivery``) and
external send components (``services.claim``, Dynamics' BackgroundSendEmail). Every
claim increments the email's ``lease_token`` (a fencing token) and records the attempt,
in one transaction that commits before the caller touches the network. On PostgreSQL
the candidates are locked with ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent
claimers take disjoint rows without waiting; elsewhere the conditional ``UPDATE ...
WHERE status = 'pending_send'`` decides. Each call tags its rows with an owner of its
own and reads back exactly those, so no email goes to two callers. Outcomes carry the
token they were given; a stale one changes nothing. An expired lease is revoked by the
sweep (its token moves on) and the email re-queued, flagged as a possible duplicate.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import Literal, TypeVar, overload

from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from .. import conf
from ..errors import InvalidTransition, LeaseConflict
from ..eventlog import email_events_logged
from ..models import Email, EmailEvent, EmailParty, EmailStatus, EventKind, PartyRole
from .transitions import transition
from .webhooks import webhook_email_status_changed

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A lost database connection (the server restarted, the connection cut by it or by the
# network) must not cost an outcome: the message is out, and an outcome not written
# leaves the lease to run out and the sweep to send the email again. Outcome writes are
# fenced by the lease token, so they are tried again on a new connection after these
# waits (about 8 s in all). The same goes for the other operational errors (a deadlock,
# a lock or statement time-out, SQLite's "database is locked"): trying again is safe,
# and Django may already have replaced the connection, so they are not told apart.
# Inside a caller's transaction nothing can be tried again: the error goes up as it is.
LOST_CONNECTION_WAITS = (0.1, 0.5, 2.0, 5.0)


def _despite_lost_connection(
    write: Callable[[], T], *, email_id: int, token: int, done_in: Iterable[str]
) -> T | None:
    """Run ``write``; on a lost connection, close it and run it again (a new one).

    A write whose commit went through just before the connection was lost is refused
    when tried again (the status moved on). If the email is now in one of ``done_in``
    under the same token, that was this write: nothing else moves it there without
    moving the token on, so it counts as done (``None`` is returned).
    """
    retried = False
    for wait in (*LOST_CONNECTION_WAITS, None):
        try:
            return write()
        except (LeaseConflict, InvalidTransition):
            if (
                retried
                and Email.objects.filter(
                    pk=email_id, lease_token=token, status__in=list(done_in)
                ).exists()
            ):
                return None
            raise
        except (OperationalError, InterfaceError) as exc:
            if wait is None or connection.in_atomic_block:
                raise
            logger.warning(
                "email %s: the database failed (%s); writing the outcome again on a new "
                "connection in %.1fs",
                email_id,
                exc,
                wait,
            )
            connection.close()
            time.sleep(wait)
            retried = True
    raise AssertionError("unreachable")


def due_now() -> Q:
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())


def claim_emails(
    candidates: QuerySet[Email], *, owner: str, lease_seconds: int, limit: int
) -> list[Email]:
    """Move up to ``limit`` of ``candidates`` from ``pending_send`` to ``sending``."""
    now = timezone.now()
    owner = f"{owner}:{uuid.uuid4().hex[:12]}"[:200]
    pending = candidates.filter(due_now(), status=EmailStatus.PENDING_SEND).order_by(
        "next_attempt_at", "pk"
    )
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            ids = list(
                pending.select_for_update(skip_locked=True, of=("self",)).values_list(
                    "pk", flat=True
                )[:limit]
            )
        else:
            ids = list(pending.values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        Email.objects.filter(pk__in=ids, status=EmailStatus.PENDING_SEND).update(
            status=EmailStatus.SENDING,
            lease_token=F("lease_token") + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=F("attempts") + 1,
            modified_at=now,
        )
        claimed = list(
            Email.objects.filter(pk__in=ids, status=EmailStatus.SENDING, lease_owner=owner)
            .select_related("sender_user", "sender_queue")
            .order_by("next_attempt_at", "pk")
        )
        EmailEvent.objects.bulk_create(
            EmailEvent(
                email_id=email.pk,
                kind=EventKind.STATUS,
                from_status=EmailStatus.PENDING_SEND,
                to_status=EmailStatus.SENDING,
                actor_label=owner,
                reason=f"claimed for delivery, attempt {email.attempts}",
                data={"lease_token": email.lease_token, "attempt": email.attempts},
            )
            for email in claimed
        )
        email_events_logged(
            [email.pk for email in claimed],
            kind=EventKind.STATUS,
            from_status=EmailStatus.PENDING_SEND,
            to_status=EmailStatus.SENDING,
            reason="claimed for delivery",
            actor_label=owner,
        )
        webhook_email_status_changed(
            email_ids=[email.pk for email in claimed],
            from_status=EmailStatus.PENDING_SEND,
            to_status=EmailStatus.SENDING,
            reason="claimed for delivery",
            at=now,
        )
    return claimed


@overload
def email_record_sent(
    *,
    email: Email,
    lease_token: int,
    owner: str,
    message_id: str = ...,
    refused: dict[str, str] | None = ...,
    recipients: dict[str, tuple[str, str]] | None = ...,
    fetch: Literal[True] = ...,
) -> Email: ...


@overload
def email_record_sent(
    *,
    email: Email,
    lease_token: int,
    owner: str,
    message_id: str = ...,
    refused: dict[str, str] | None = ...,
    recipients: dict[str, tuple[str, str]] | None = ...,
    fetch: Literal[False],
) -> None: ...


def email_record_sent(
    *,
    email: Email,
    lease_token: int,
    owner: str,
    message_id: str = "",
    refused: dict[str, str] | None = None,
    recipients: dict[str, tuple[str, str]] | None = None,
    fetch: bool = True,
) -> Email | None:
    """Record a message as handed over; ``refused`` lists recipients the server turned
    down while accepting it for the others (kept in ``last_error`` and the event).

    ``recipients`` (address -> (provider message id, delivery state), from
    ``mail.recipient_outcomes``) is written on the recipients in the same transaction
    as the status, so a provider's event for the message always finds its email."""
    updates = {
        "lease_expires_at": None,
        "lease_owner": "",
        "last_error": "",
        "next_attempt_at": None,
    }
    reason = "handed to the mail server"
    if refused:
        listing = "; ".join(f"{address}: {answer}" for address, answer in refused.items())
        updates["last_error"] = f"refused recipients: {listing}"[:2000]
        reason = f"handed to the mail server, which refused some recipients: {listing}"
    if message_id and not email.message_id:
        updates["message_id"] = message_id

    def write() -> Email | None:
        with transaction.atomic():
            recorded = transition(
                email_id=email.pk,
                to=EmailStatus.SENT,
                allowed_from=[EmailStatus.SENDING],
                action="record the email as sent",
                actor_label=owner,
                reason=reason,
                updates=updates,
                lease_token=lease_token,
                event_data={
                    "lease_token": lease_token,
                    **({"refused": refused} if refused else {}),
                },
                fetch=fetch,
            )
            if recipients:
                _record_recipient_outcomes(email, recipients)
            return recorded

    recorded = _despite_lost_connection(
        write,
        email_id=email.pk,
        token=lease_token,
        done_in=[EmailStatus.SENT],
    )
    if recorded is None and fetch:  # written by a try whose answer the lost connection ate
        return Email.objects.select_related("sender_user", "sender_queue").get(pk=email.pk)
    return recorded


def _record_recipient_outcomes(email: Email, recipients: dict[str, tuple[str, str]]) -> None:
    """Each recipient's provider message id and first delivery state, in one update."""
    by_address = {address.strip().lower(): outcome for address, outcome in recipients.items()}
    now = timezone.now()
    changed = []
    for party in email.parties.all():  # prefetched by the delivery path
        outcome = by_address.get(party.address.strip().lower())
        if outcome is None or party.role == PartyRole.FROM:
            continue
        party.provider_message_id, party.delivery_state = outcome[0][:255], outcome[1]
        party.delivery_updated_at = now
        changed.append(party)
    if changed:
        EmailParty.objects.bulk_update(
            changed, ["provider_message_id", "delivery_state", "delivery_updated_at"]
        )


def email_record_failure(
    *, email: Email, lease_token: int, owner: str, error: str, permanent: bool
) -> Email:
    """Record a failed attempt: ``failed`` if permanent or out of attempts, else back
    to ``pending_send`` to be retried after a backoff."""
    error = error[:2000]
    updates: dict[str, object] = {"last_error": error, "lease_expires_at": None, "lease_owner": ""}
    event_data = None
    if permanent or email.attempts >= conf.send_max_attempts():
        why = "permanent failure" if permanent else f"gave up after {email.attempts} attempts"
        to, reason = EmailStatus.FAILED, f"{why}: {error}"
        updates["next_attempt_at"] = None
    else:
        retry_in = conf.retry_backoff(email.attempts)
        to = EmailStatus.PENDING_SEND
        reason = f"attempt {email.attempts} failed, retrying in {retry_in}s: {error}"
        updates["next_attempt_at"] = timezone.now() + timedelta(seconds=retry_in)
        event_data = {"retry_in": retry_in}
    recorded = _despite_lost_connection(
        lambda: transition(
            email_id=email.pk,
            to=to,
            allowed_from=[EmailStatus.SENDING],
            action="record the failure of",
            actor_label=owner,
            reason=reason,
            updates=updates,
            lease_token=lease_token,
            event_data=event_data,
        ),
        email_id=email.pk,
        token=lease_token,
        done_in=[to],
    )
    if recorded is None:  # written by a try whose answer the lost connection ate
        return Email.objects.select_related("sender_user", "sender_queue").get(pk=email.pk)
    return recorded


def _release_one(email: Email, *, not_before: datetime | None, reason: str) -> None:
    transition(
        email_id=email.pk,
        to=EmailStatus.PENDING_SEND,
        allowed_from=[EmailStatus.SENDING],
        action="release",
        actor_label=email.lease_owner,
        reason=reason,
        updates={
            "attempts": F("attempts") - 1,
            "lease_expires_at": None,
            "lease_owner": "",
            "next_attempt_at": not_before,
        },
        lease_token=email.lease_token,
        fetch=False,
    )


def email_release(*, emails: list[Email], not_before: datetime | None, reason: str) -> None:
    """Give back emails claimed but not tried: ``pending_send`` again, the attempt the
    claim counted returned, due at ``not_before``. Fenced by each claim's token."""
    for email in emails:
        try:
            _despite_lost_connection(
                partial(_release_one, email, not_before=not_before, reason=reason),
                email_id=email.pk,
                token=email.lease_token,
                done_in=[EmailStatus.PENDING_SEND],
            )
        except (LeaseConflict, InvalidTransition):
            continue  # the lease was taken back meanwhile: the sweep has it


# An expired lease is revoked (its token moves on, so the late holder's report is refused
# as stale), and the email is flagged: the holder may have delivered it.
_REVOKE_EXPIRED_LEASE = {
    "lease_token": F("lease_token") + 1,
    "lease_expires_at": None,
    "lease_owner": "",
    "possible_duplicate": True,
}


def _give_up_after_expired_lease(email_id: int, token: int, attempts: int) -> None:
    """Every attempt ended without an outcome (each holder died or hung): stop trying."""
    try:
        transition(
            email_id=email_id,
            to=EmailStatus.FAILED,
            allowed_from=[EmailStatus.SENDING],
            action="give up on",
            actor_label="sweep",
            reason=(
                f"lease expired after {attempts} attempts without an outcome; gave up "
                "(the last attempt may have been delivered)"
            ),
            updates={
                **_REVOKE_EXPIRED_LEASE,
                "next_attempt_at": None,
                "last_error": f"no outcome reported for {attempts} attempts (lease expired)",
            },
            lease_token=token,
        )
    except (LeaseConflict, InvalidTransition):
        pass  # reported meanwhile


def leases_revoke_expired(*, limit: int = 1000) -> list[int]:
    """Take back the leases that ran out: ``sending`` -> ``pending_send`` (due now),
    or ``failed`` once the attempts are used up. Returns the re-queued ids.

    An expired lease means the worker or external caller died, or is too slow: the
    message may or may not have gone out, so the email is marked as a possible
    duplicate and keeps its Message-ID for receivers to drop a second copy. Revoking
    moves the token on, so the holder's late report is a ``LeaseConflict``.
    """
    now = timezone.now()
    expired = list(
        Email.objects.filter(status=EmailStatus.SENDING, lease_expires_at__lt=now).values_list(
            "pk", "lease_token", "attempts"
        )[:limit]
    )
    requeued = []
    for email_id, token, attempts in expired:
        if attempts >= conf.send_max_attempts():
            _give_up_after_expired_lease(email_id, token, attempts)
            continue
        try:
            transition(
                email_id=email_id,
                to=EmailStatus.PENDING_SEND,
                allowed_from=[EmailStatus.SENDING],
                action="re-queue",
                actor_label="sweep",
                reason="lease expired; re-queued with the same Message-ID (possible duplicate)",
                updates={**_REVOKE_EXPIRED_LEASE, "next_attempt_at": now},
                lease_token=token,
            )
            requeued.append(email_id)
        except (LeaseConflict, InvalidTransition):
            continue  # reported or re-claimed meanwhile
    return requeued
