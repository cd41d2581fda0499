"""Many external senders claiming at once, on PostgreSQL (``SELECT ... FOR UPDATE SKIP
LOCKED``): no email goes to two claimers, all are taken, a report with a stale lease
token is refused, and a claimer never waits for rows another holds.

Each claimer is a thread with a database connection of its own, calling the claim
services directly (the HTTP layer over them is covered by test_api_claim.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.utils import timezone

from activities.errors import LeaseConflict
from activities.models import Email, EmailEvent, EmailStatus
from activities.services.claim import email_claim_batch, email_report_delivery
from activities.services.delivery import delivery_sweep
from crm.models import OutgoingDelivery, Queue, User
from tests.factories import QueueFactory, UserFactory, pending_queue_emails
from tests.services import need_postgresql

pytestmark = pytest.mark.django_db(transaction=True)

TOTAL, CLAIMERS, BATCH = 5000, 8, 50


def in_threads(targets: list[Callable[[], None]], *, timeout: float = 60) -> list[str]:
    """Run each target in a thread of its own (own connection, closed at the end);
    returns the errors they raised."""
    errors: list[str] = []

    def run(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # reported to the test, not lost in the thread
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a claimer did not finish"
    return errors


@pytest.fixture
def claimers(db) -> list[User]:
    return [UserFactory(username=f"claimer{i}") for i in range(CLAIMERS)]


@pytest.fixture
def slow(db) -> User:
    """A claimer that takes a batch and never reports in time."""
    return UserFactory(username="slow")


@pytest.fixture
def relay(claimers, slow) -> Queue:
    return QueueFactory(
        name="Relay", members=[*claimers, slow], outgoing_delivery=OutgoingDelivery.EXTERNAL
    )


def test_eight_claimers_take_every_email_once_and_a_stale_report_is_refused(
    org, claimers, slow, relay
):
    need_postgresql()
    all_ids = pending_queue_emails(relay, TOTAL, tag="load")
    # A first holder whose lease runs out: the sweep re-queues its emails (their token
    # moves on) while the others claim, and one of them takes them again.
    stale = email_claim_batch(actor=slow, max_count=BATCH, lease_seconds=1)
    assert len(stale) == BATCH
    claimed: dict[str, list[int]] = {user.username: [] for user in claimers}
    done = threading.Event()

    def claimer(user: User) -> Callable[[], None]:
        def work() -> None:
            while True:
                batch = email_claim_batch(actor=user, max_count=BATCH, lease_seconds=60)
                for email in batch:
                    claimed[user.username].append(email.pk)
                    email_report_delivery(
                        email=email, actor=user, lease_token=email.lease_token, outcome="sent"
                    )
                if not batch and done.is_set():
                    return

        return work

    def sweeper() -> None:
        expiry = max(email.lease_expires_at for email in stale)
        while timezone.now() <= expiry:
            threading.Event().wait(0.05)
        assert len(delivery_sweep().requeued_expired) == BATCH
        done.set()  # nothing is left for the sweep: the claimers stop once all is taken

    errors = in_threads([claimer(user) for user in claimers] + [sweeper])

    assert errors == []
    taken = [pk for pks in claimed.values() for pk in pks]
    assert len(taken) == len(set(taken)) == TOTAL  # each email to exactly one claimer
    assert sorted(taken) == all_ids
    assert sum(1 for pks in claimed.values() if pks) > 1  # they did work side by side
    assert Email.objects.filter(status=EmailStatus.SENT).count() == TOTAL
    assert EmailEvent.objects.filter(to_status=EmailStatus.SENT).count() == TOTAL
    stale_ids = {email.pk for email in stale}
    assert set(Email.objects.filter(possible_duplicate=True).values_list("pk", flat=True)) == (
        stale_ids
    )
    # claim, revoke on expiry, claim again
    assert set(Email.objects.filter(pk__in=stale_ids).values_list("lease_token", flat=True)) == {3}
    assert set(Email.objects.exclude(pk__in=stale_ids).values_list("lease_token", flat=True)) == {1}

    def snapshot() -> list[tuple]:
        return list(
            Email.objects.filter(pk__in=stale_ids)
            .order_by("pk")
            .values_list("status", "lease_token", "lease_owner", "sent_at", "modified_at")
        )

    before, events = snapshot(), EmailEvent.objects.count()
    for email in stale:  # the first holder wakes up and reports with its old tokens
        for outcome in ("sent", "failed"):
            with pytest.raises(LeaseConflict):
                email_report_delivery(
                    email=email, actor=slow, lease_token=email.lease_token, outcome=outcome
                )
    assert snapshot() == before
    assert EmailEvent.objects.count() == events


def test_a_claimer_takes_other_rows_at_once_while_another_holds_rows_locked(org, claimers, relay):
    """Rows locked by another transaction are skipped, not waited for. The claim runs
    with a lock timeout so that a claim that did wait fails instead of hanging."""
    need_postgresql()
    all_ids = pending_queue_emails(relay, 2 * BATCH, tag="load")
    first, rest = all_ids[:BATCH], all_ids[BATCH:]
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with transaction.atomic():
                rows = Email.objects.select_for_update().filter(pk__in=first)
                assert len(list(rows.values_list("pk", flat=True))) == BATCH
                locked.set()
                assert release.wait(30), "the test did not release the lock"
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")
        try:
            # The locked rows come first in the claim order; they are passed over.
            taken = email_claim_batch(actor=claimers[0], max_count=2 * BATCH)
            again = email_claim_batch(actor=claimers[1], max_count=2 * BATCH)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        assert thread.is_alive()  # the holder still holds its rows
    finally:
        release.set()
        thread.join(10)

    assert sorted(email.pk for email in taken) == rest
    assert again == []
    assert set(Email.objects.filter(pk__in=first).values_list("status", flat=True)) == {
        EmailStatus.PENDING_SEND
    }
    later = email_claim_batch(actor=claimers[1], max_count=2 * BATCH)
    assert sorted(email.pk for email in later) == first
