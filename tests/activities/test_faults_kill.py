"""A worker killed after the mail server's 250 and before it recorded the outcome.

The window is made exact: the SMTP server, at the third message's DATA, records the
message, stops the process on the other end of the connection (``SIGSTOP``: the
worker's pool child, found by its socket) and then answers 250. The answer lands in
the socket of a process that never reads it; the test kills the worker (``SIGKILL``,
the whole group). For the server the message is delivered; for the database the email
is still ``sending`` under the dead worker's lease. (``test_worker.py`` kills a worker
while the server still holds back its answer, a window in which a server may drop the
message; here it has said yes.)

Runs on SQLite with the file-system broker and on PostgreSQL + Redis.
"""

from __future__ import annotations

import os
import signal

import pytest

from activities.models import Email, EmailStatus
from activities.services.emails import email_create, email_send
from tests.blocking_smtp import DataHookSMTPServer
from tests.celery_worker import (
    Worker,
    pid_of_client,
    private_broker,
    running_worker,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EMAILS, KILLED_AT = 5, 3


@pytest.fixture
def broker(tmp_path):
    with private_broker(tmp_path / "data") as env:
        yield env


def test_a_worker_killed_after_the_servers_250_sends_again_with_the_same_message_id_flagged(
    org, owner, broker, tmp_path
):
    stopped: list[int] = []

    def stop_the_client(session) -> None:
        pid = pid_of_client(session.peer)
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)

    server = DataHookSMTPServer(hook_at=KILLED_AT, hook=stop_the_client).start()
    # A short lease for both workers: the one killed must have claimed under it.
    env = worker_env(broker=broker, smtp_port=server.port, CRM_LEASE_SECONDS=3)
    try:
        emails = [
            email_send(
                email=email_create(
                    actor=owner, to=[f"r{i}@example.com"], subject=f"Hello {i}", body_text="Hi"
                ),
                actor=owner,
            )
            for i in range(EMAILS)
        ]
        first = Worker("killed", tmp_path, env).start()
        try:
            wait_for(
                server.handler.entered.is_set,
                what="the server to stop the worker at its 250",
                workers=(first,),
            )
            [pid] = stopped
            assert os.getpgid(pid) == first.proc.pid  # the worker's own process
            first.kill()
        finally:
            first.stop()
            print(f"----- log of worker killed -----\n{first.log()}")

        # The server took three messages; the third is the one the worker never recorded.
        assert len(server.messages) == KILLED_AT
        caught_id = server.messages[-1].message["Message-ID"]
        caught = Email.objects.get(message_id=caught_id)
        assert (caught.status, caught.attempts, caught.possible_duplicate) == (
            EmailStatus.SENDING,
            1,
            False,
        )
        by_status = dict.fromkeys(EmailStatus.values, 0)
        for status in Email.objects.values_list("status", flat=True):
            by_status[status] += 1
        assert by_status[EmailStatus.SENT] == KILLED_AT - 1
        assert by_status[EmailStatus.SENDING] == 1
        assert by_status[EmailStatus.PENDING_SEND] == EMAILS - KILLED_AT

        with running_worker("second", tmp_path, env) as second:
            wait_for(
                lambda: Email.objects.filter(status=EmailStatus.SENT).count() == EMAILS,
                what="the sweep to re-queue the caught email and every email sent",
                workers=(second,),
            )
    finally:
        server.stop()

    received = [m.message["Message-ID"] for m in server.messages]
    assert len(received) == EMAILS + 1
    assert received.count(caught_id) == 2  # the same Message-ID both times
    assert sorted(set(received)) == sorted(e.message_id for e in Email.objects.all())
    assert all(received.count(e.message_id) == 1 for e in emails if e.pk != caught.pk)

    caught.refresh_from_db()
    assert (caught.status, caught.attempts, caught.possible_duplicate) == (
        EmailStatus.SENT,
        2,
        True,
    )
    requeue = caught.events.get(from_status=EmailStatus.SENDING, to_status=EmailStatus.PENDING_SEND)
    assert requeue.actor_label == "sweep" and "lease expired" in requeue.reason
    assert caught.events.filter(to_status=EmailStatus.SENDING).count() == 2
    assert caught.events.filter(to_status=EmailStatus.SENT).count() == 1
    others = Email.objects.exclude(pk=caught.pk)
    assert set(others.values_list("status", "attempts", "possible_duplicate")) == {
        (EmailStatus.SENT, 1, False)
    }
    assert not others.filter(
        events__to_status=EmailStatus.PENDING_SEND, events__actor_label="sweep"
    ).exists()
