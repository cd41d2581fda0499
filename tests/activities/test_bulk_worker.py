"""A bulk job through a real Celery worker into a real SMTP server."""

from __future__ import annotations

import pytest

from activities.models import BulkSend, BulkSendStatus, Email, EmailStatus
from activities.selectors import bulk_send_progress
from activities.services.bulk import bulk_send_start
from crm.models import Contact
from tests.celery_worker import private_broker, running_worker, wait_for, worker_env
from tests.factories import AccountFactory, QueueFactory, TemplateFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ELIGIBLE, NO_ADDRESS, OPTED_OUT, DUPLICATES = 1850, 60, 60, 30


@pytest.fixture
def broker(tmp_path):
    with private_broker(tmp_path / "data") as env:
        yield env


def make_contacts(account) -> None:
    rows = [
        Contact(
            first_name=f"C{i}",
            last_name="Bulk",
            email=f"c{i}@customers.example.org",
            account=account,
        )
        for i in range(ELIGIBLE)
    ]
    rows += [Contact(last_name="NoMail", email="", account=account) for _ in range(NO_ADDRESS)]
    rows += [
        Contact(
            last_name="OptOut", email=f"out{i}@example.org", do_not_bulk_email=True, account=account
        )
        for i in range(OPTED_OUT)
    ]
    rows += [
        Contact(last_name="Again", email=f"C{i}@customers.example.org", account=account)
        for i in range(DUPLICATES)
    ]
    Contact.objects.bulk_create(rows)


def test_a_job_of_2000_contacts_gives_each_eligible_contact_one_message(
    org, broker, smtp_server, tmp_path
):
    alice = UserFactory(username="alice")
    queue = QueueFactory(name="Support", email="support@example.com", members=[alice])
    account = AccountFactory()
    make_contacts(account)
    template = TemplateFactory(subject="Hello {{ contact.first_name }}")
    job = bulk_send_start(
        template=template, sender=queue, query={"account": account.pk}, actor=alice
    )

    env = worker_env(broker=broker, smtp_port=smtp_server.port)
    with running_worker("bulk", tmp_path, env) as worker:
        wait_for(
            lambda: (
                Email.objects.filter(bulk_send=job, status=EmailStatus.SENT).count() == ELIGIBLE
            ),
            what="every eligible contact's email sent",
            timeout=180,
            workers=(worker,),
        )

    job = BulkSend.objects.get(pk=job.pk)
    progress = bulk_send_progress(job)
    assert job.status == BulkSendStatus.COMPLETED
    assert progress["total"] == ELIGIBLE + NO_ADDRESS + OPTED_OUT + DUPLICATES
    assert (progress["created"], progress["sent"], progress["failed"]) == (ELIGIBLE, ELIGIBLE, 0)
    assert job.skipped_by_reason == {
        "no_address": NO_ADDRESS,
        "do_not_bulk_email": OPTED_OUT,
        "duplicate_address": DUPLICATES,
    }
    received = smtp_server.messages
    assert len(received) == ELIGIBLE
    recipients = sorted(r for m in received for r in m.rcpt_tos)
    assert recipients == sorted(f"c{i}@customers.example.org" for i in range(ELIGIBLE))
    assert len({m.message["Message-ID"] for m in received}) == ELIGIBLE
