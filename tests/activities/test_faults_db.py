"""PostgreSQL connections cut while a real worker delivers a bulk job's emails.

The worker's connections carry an ``application_name`` of their own (in its
``DATABASE_URL``), so the test ends exactly those with ``pg_terminate_backend``, as a
database restart or a network cut would, and never its own. First at a chosen moment:
the SMTP server has taken a message and holds its 250 while the connection is cut, so
the worker learns of the dead connection only when it records the outcome. Then a few
more times while it delivers the rest, wherever the worker happens to be.

The outcome writes are also shown on their own, in this process: the test's own
connection cut between the claim and the record.

PostgreSQL only: a SQLite file has no connection to cut.
"""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, transaction

from activities.models import BulkSend, BulkSendStatus, Email, EmailEvent, EmailStatus
from activities.services.bulk import bulk_send_start
from activities.services.leases import claim_emails, email_record_failure, email_record_sent
from crm.models import Contact
from tests.blocking_smtp import DataHookSMTPServer
from tests.celery_worker import (
    private_broker,
    running_worker,
    wait_for,
    worker_database_url,
    worker_env,
)
from tests.factories import AccountFactory, EmailFactory, TemplateFactory
from tests.services import need_postgresql

pytestmark = pytest.mark.django_db(transaction=True)

EMAILS, HELD_AT = 40, 5
CUT_AT_SENT = (12, 20, 28, 34)  # further cuts, once this many are sent
APP_NAME = "crm-faults-worker"


@pytest.fixture
def broker(tmp_path):
    with private_broker(tmp_path / "data") as env:
        yield env


def cut_worker_connections() -> int:
    """End every backend of the worker on the test database; how many there were."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s "
            "AND pid <> pg_backend_pid()",
            [APP_NAME],
        )
        return cursor.fetchone()[0]


def sent_count(job: BulkSend) -> int:
    return Email.objects.filter(bulk_send=job, status=EmailStatus.SENT).count()


def cut_own_connection() -> None:
    """End this thread's connection from another one, as the server would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    ours = connections[DEFAULT_DB_ALIAS]
    other = type(ours)(dict(ours.settings_dict), alias="cutter")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone()[0]
    finally:
        other.close()


def claimed_email(owner) -> Email:
    email = EmailFactory(sender_user=owner, status=EmailStatus.PENDING_SEND)
    [claimed] = claim_emails(
        Email.objects.filter(pk=email.pk), owner="test", lease_seconds=60, limit=1
    )
    return claimed


def test_an_outcome_is_written_on_a_new_connection_when_the_old_one_was_cut(org, owner):
    need_postgresql()
    sent, failed = claimed_email(owner), claimed_email(owner)

    cut_own_connection()
    recorded = email_record_sent(email=sent, lease_token=sent.lease_token, owner="test")
    cut_own_connection()
    retried = email_record_failure(
        email=failed, lease_token=failed.lease_token, owner="test", error="451", permanent=False
    )

    assert (recorded.status, recorded.lease_token, recorded.possible_duplicate) == (
        EmailStatus.SENT,
        sent.lease_token,
        False,
    )
    assert (retried.status, retried.last_error, retried.attempts) == (
        EmailStatus.PENDING_SEND,
        "451",
        1,
    )
    for email, status in ((sent, EmailStatus.SENT), (failed, EmailStatus.PENDING_SEND)):
        assert EmailEvent.objects.filter(email=email, from_status=EmailStatus.SENDING).count() == 1
        assert EmailEvent.objects.get(email=email, from_status=EmailStatus.SENDING).to_status == (
            status
        )


def test_inside_a_callers_transaction_a_cut_connection_is_an_error_and_nothing_is_written(
    org, owner
):
    need_postgresql()
    email = claimed_email(owner)

    with pytest.raises(OperationalError), transaction.atomic():
        cut_own_connection()
        email_record_sent(email=email, lease_token=email.lease_token, owner="test")

    email.refresh_from_db()
    assert (email.status, email.lease_token) == (EmailStatus.SENDING, 1)
    assert not EmailEvent.objects.filter(email=email, to_status=EmailStatus.SENT).exists()


@pytest.mark.slow
def test_cut_database_connections_lose_no_outcome_and_send_each_email_once(
    org, owner, team_queue, broker, tmp_path
):
    need_postgresql()
    account = AccountFactory()
    Contact.objects.bulk_create(
        Contact(first_name=f"C{i}", email=f"c{i}@customers.example.org", account=account)
        for i in range(EMAILS)
    )
    job = bulk_send_start(
        template=TemplateFactory(subject="Hello {{ contact.first_name }}"),
        sender=team_queue,
        query={"account": account.pk},
        actor=owner,
    )
    # Every DATA answered a little late, so that a cut lands mid-delivery more often.
    server = DataHookSMTPServer(hook_at=HELD_AT, hold=True, delay=0.05).start()
    env = worker_env(
        broker=broker,
        smtp_port=server.port,
        DATABASE_URL=f"{worker_database_url()}?application_name={APP_NAME}",
        CRM_LEASE_SECONDS=3,
    )
    cuts = []
    try:
        with running_worker("cut", tmp_path, env) as worker:
            wait_for(
                server.handler.entered.is_set,
                what="the server to hold a 250",
                workers=(worker,),
            )
            held_id = server.messages[-1].message["Message-ID"]
            held = Email.objects.get(message_id=held_id)
            assert held.status == EmailStatus.SENDING
            cuts.append(cut_worker_connections())
            server.handler.release.set()
            wait_for(
                lambda: Email.objects.filter(pk=held.pk).exclude(status=EmailStatus.SENDING),
                what="the held email's outcome recorded",
                workers=(worker,),
            )
            for at in CUT_AT_SENT:
                wait_for(lambda at=at: sent_count(job) >= at, what=f"{at} sent", workers=(worker,))
                cuts.append(cut_worker_connections())
            wait_for(
                lambda: (
                    sent_count(job) == EMAILS
                    and BulkSend.objects.get(pk=job.pk).status == BulkSendStatus.COMPLETED
                ),
                what="every email sent",
                timeout=60,
                workers=(worker,),
            )
            assert worker.alive()
    finally:
        server.stop()

    assert cuts[0] == 1  # the pool process's connection, idle while the server held it
    emails = Email.objects.filter(bulk_send=job)
    assert emails.count() == EMAILS
    assert set(emails.values_list("status", flat=True)) == {EmailStatus.SENT}
    # The message the server took while the connection was cut: recorded, not sent again.
    held.refresh_from_db()
    assert (held.status, held.attempts, held.possible_duplicate) == (EmailStatus.SENT, 1, False)
    received = [m.message["Message-ID"] for m in server.messages]
    assert len(received) == len(set(received)) == EMAILS  # once each
    assert set(received) == set(emails.values_list("message_id", flat=True))
    assert EmailEvent.objects.filter(email__bulk_send=job, to_status=EmailStatus.SENT).count() == (
        EMAILS
    )
    # A flag only where the sweep took a lease back (a claim whose holder lost its way),
    # and never a second copy.
    requeued = set(
        EmailEvent.objects.filter(
            email__bulk_send=job, actor_label="sweep", to_status=EmailStatus.PENDING_SEND
        ).values_list("email_id", flat=True)
    )
    assert set(emails.filter(possible_duplicate=True).values_list("pk", flat=True)) == requeued
    assert held.pk not in requeued
