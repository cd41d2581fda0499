"""Faults of the mail server under a real worker: a 421 in the middle of a chunk.

Runs on any broker (the suite's own, made private to the test by ``private_broker``).
"""

from __future__ import annotations

import pytest

from activities.models import BulkSend, Email, EmailStatus
from activities.services.bulk import bulk_send_start
from crm.models import Contact
from tests.blocking_smtp import ClosingSMTPServer
from tests.celery_worker import private_broker, running_worker, wait_for, worker_env
from tests.factories import AccountFactory, TemplateFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker(tmp_path):
    with private_broker(tmp_path / "data") as env:
        yield env


def bulk_job(owner, queue, n: int) -> BulkSend:
    """A job of ``n`` contacts: one chunk of ``n`` emails from one sender, delivered
    over one connection (CRM_BULK_CHUNK_SIZE is far above ``n``)."""
    account = AccountFactory()
    Contact.objects.bulk_create(
        Contact(first_name=f"C{i}", email=f"c{i}@customers.example.org", account=account)
        for i in range(n)
    )
    template = TemplateFactory(subject="Hello {{ contact.first_name }}")
    return bulk_send_start(
        template=template, sender=queue, query={"account": account.pk}, actor=owner
    )


# Where the server says 421, and the error smtplib raises for it.
STAGES = {"MAIL": "SMTPSenderRefused: 421", "DATA": "SMTPDataError: 421"}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_421_in_the_middle_of_a_chunk_loses_nothing_and_sends_each_message_once(
    org, owner, team_queue, broker, tmp_path, stage
):
    """The server takes the first ``k`` messages of a connection, then answers the next
    one with 421 (at its MAIL FROM, or after its DATA instead of the 250) and drops the
    connection; it does so twice, then takes everything.

    The ``k`` messages taken are recorded sent at once (before the refused one's retry),
    the refused email is retried after its backoff with its Message-ID unchanged, the
    untried rest of the chunk goes on later without spending an attempt: in the end every
    email is sent, the server has each Message-ID exactly once, and nothing is flagged as
    a possible duplicate (the 421 came before any message was handed over)."""
    n, k, cuts = 8, 3, 2
    job = bulk_job(owner, team_queue, n)
    server = ClosingSMTPServer(accept_per_connection=k, cuts=cuts, at=stage).start()
    env = worker_env(broker=broker, smtp_port=server.port)
    try:
        with running_worker("smtp-421", tmp_path, env) as worker:
            wait_for(server.handler.cut.is_set, what="the first 421", workers=(worker,))
            message_ids = dict(Email.objects.filter(bulk_send=job).values_list("pk", "message_id"))
            wait_for(
                lambda: Email.objects.filter(bulk_send=job, status=EmailStatus.SENT).count() == n,
                what="every email of the chunk sent",
                workers=(worker,),
            )
    finally:
        server.stop()

    emails = list(Email.objects.filter(bulk_send=job).order_by("pk"))
    assert len(emails) == len(message_ids) == n
    assert {e.pk: e.message_id for e in emails} == message_ids  # unchanged by the retries
    assert [e.status for e in emails] == [EmailStatus.SENT] * n
    assert not any(e.possible_duplicate for e in emails)

    # The server: each Message-ID once, nothing else; the cuts happened as set up.
    received = [m.message["Message-ID"] for m in server.messages]
    assert sorted(received) == sorted(message_ids.values())
    assert len(server.handler.refused) == cuts

    # The first connection carried the chunk's first k emails, in order.
    first_peer = server.messages[0].peer
    assert [m.peer for m in server.messages[:k]] == [first_peer] * k
    assert received[:k] == [e.message_id for e in emails[:k]]
    assert server.handler.accepted_on[first_peer] == k

    # Each refused email: one attempt lost to the 421 (recorded with the server's
    # answer), then sent; the others took one attempt each (released ones got theirs back).
    def failed_attempts(email: Email):
        """The email's attempts that met the 421 (not the releases of the untried rest,
        which quote the same answer as the cause of the sender's pause)."""
        return email.events.filter(
            from_status=EmailStatus.SENDING,
            to_status=EmailStatus.PENDING_SEND,
            reason__startswith="attempt 1 failed",
            reason__contains=STAGES[stage],
        )

    retried = [e for e in emails if failed_attempts(e).exists()]
    assert len(retried) == cuts
    assert retried[0] == emails[k]  # the chunk's (k+1)th, refused on the first connection
    assert {e.pk: e.attempts for e in emails} == {e.pk: (2 if e in retried else 1) for e in emails}
    # The k emails taken before the first 421 were recorded sent before its retry.
    first_retry = failed_attempts(emails[k]).get()
    for email in emails[:k]:
        sent = email.events.get(to_status=EmailStatus.SENT)
        assert (sent.created_at, sent.pk) < (first_retry.created_at, first_retry.pk)
    for email in emails:
        assert email.events.filter(to_status=EmailStatus.SENT).count() == 1
