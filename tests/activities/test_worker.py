"""Delivery by real Celery workers (subprocesses) to a real SMTP server.

Runs on the default configuration (SQLite file, file-system broker in a folder of the
test's own) and on PostgreSQL + Redis; the worker is pointed at this test's database,
broker, blob folder and SMTP server through its environment.
"""

from __future__ import annotations

import pytest

from activities.models import Email, EmailStatus
from activities.services.attachments import attachment_store
from activities.services.emails import email_create, email_send
from tests.blocking_smtp import BlockingSMTPServer
from tests.celery_worker import Worker, private_broker, running_worker, wait_for, worker_env
from tests.smtp import SMTPServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ATTACHMENT = bytes(range(256)) * 64


@pytest.fixture
def broker(tmp_path):
    with private_broker(tmp_path / "data") as env:
        yield env


def send(sender) -> Email:
    """A sent email; the delivery task is on the broker once this returns (on commit)."""
    draft = email_create(
        actor=sender, to=["Ann Lee <ann@example.com>"], subject="Hello", body_text="Hi Ann"
    )
    attachment_store(owner=draft, source=ATTACHMENT, filename="data.bin")
    return email_send(email=draft, actor=sender)


def status_of(email: Email) -> str:
    return Email.objects.values_list("status", flat=True).get(pk=email.pk)


def copies_of(server: SMTPServer, message_id: str) -> list:
    return [m for m in server.messages if m.message["Message-ID"] == message_id]


def test_worker_delivers_a_sent_email(org, owner, broker, smtp_server, tmp_path):
    email = send(owner)

    with running_worker(
        "only", tmp_path, worker_env(broker=broker, smtp_port=smtp_server.port)
    ) as worker:
        wait_for(
            lambda: status_of(email) in (EmailStatus.SENT, EmailStatus.FAILED),
            what="delivery",
            workers=(worker,),
        )

    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == (EmailStatus.SENT, 1, "")
    [received] = smtp_server.messages
    assert received.message["Message-ID"] == email.message_id
    assert received.message["Subject"] == email.subject
    [part] = received.message.iter_attachments()  # read from this test's blob folder
    assert part.get_payload(decode=True) == ATTACHMENT
    assert email.events.get(to_status=EmailStatus.SENDING).actor_label.startswith("worker:")


def test_worker_retries_until_the_smtp_server_is_up(org, owner, broker, tmp_path):
    server = SMTPServer()  # its port is chosen, nothing listens yet
    try:
        email = send(owner)
        with running_worker(
            "retrying", tmp_path, worker_env(broker=broker, smtp_port=server.port)
        ) as worker:
            wait_for(
                lambda: (
                    Email.objects.filter(pk=email.pk, attempts__gte=1)
                    .exclude(last_error="")
                    .exists()
                ),
                what="a failed first attempt",
                workers=(worker,),
            )
            server.start()
            wait_for(
                lambda: status_of(email) in (EmailStatus.SENT, EmailStatus.FAILED),
                what="delivery once the server is up",
                workers=(worker,),
            )
    finally:
        server.stop()

    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.attempts >= 2
    assert len(server.messages) == 1
    assert len(copies_of(server, email.message_id)) == 1
    retry = email.events.filter(from_status=EmailStatus.SENDING, to_status=EmailStatus.PENDING_SEND)
    assert retry.exists() and "ConnectionRefusedError" in retry.first().reason
    assert not email.possible_duplicate


def test_worker_killed_mid_send_is_requeued_by_the_sweep_and_delivered(
    org, owner, broker, tmp_path
):
    server = BlockingSMTPServer(block_data_times=1).start()
    # A short lease for both workers: the one killed must have claimed under it.
    env = worker_env(broker=broker, smtp_port=server.port, CRM_LEASE_SECONDS=3)
    try:
        email = send(owner)
        first = Worker("killed", tmp_path, env).start()
        try:
            wait_for(
                server.handler.entered.is_set,
                what="the first worker to be in the middle of DATA",
                workers=(first,),
            )
            first.kill()
        finally:
            first.stop()
            print(f"----- log of worker killed -----\n{first.log()}")
        email.refresh_from_db()
        assert email.status == EmailStatus.SENDING and email.attempts == 1
        server.handler.release.set()

        with running_worker("second", tmp_path, env) as second:
            wait_for(
                lambda: status_of(email) in (EmailStatus.SENT, EmailStatus.FAILED),
                what="the sweep to re-queue and the second worker to deliver",
                workers=(second,),
            )
    finally:
        server.stop()

    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.attempts == 2
    # The killed worker's message reached the server, which took it but had not yet
    # replied. Whether such a message counts depends on the server: aiosmtpd itself
    # drops a session whose client is gone (one copy would arrive); this handler records
    # before it replies, like a server that commits first, so two arrive. That is the
    # case that matters: both copies carry the Message-ID fixed at send time, and the
    # second is never silent, the email says "possible duplicate".
    copies = copies_of(server, email.message_id)
    assert len(copies) == len(server.messages) == 2
    assert email.possible_duplicate
    requeue = email.events.get(from_status=EmailStatus.SENDING, to_status=EmailStatus.PENDING_SEND)
    assert requeue.actor_label == "sweep" and "lease expired" in requeue.reason
    claims = email.events.filter(to_status=EmailStatus.SENDING)
    assert claims.count() == 2
    assert email.events.filter(to_status=EmailStatus.SENT).count() == 1
