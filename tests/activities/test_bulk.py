"""Bulk jobs: the service, run in process against the test database."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from activities.errors import (
    InvalidTransition,
    SenderNotAllowed,
    SenderNotApproved,
    ValidationFailed,
)
from activities.mail import build_message
from activities.models import (
    ActivityMimeAttachment,
    AttachmentBlob,
    BulkSend,
    BulkSendStatus,
    Email,
    EmailEvent,
    EmailStatus,
)
from activities.selectors import bulk_send_progress
from activities.services.attachments import attachment_store
from activities.services.bulk import (
    bulk_send_cancel,
    bulk_send_run,
    bulk_send_start,
    bulk_sends_to_resume,
)
from activities.services.bulk.run import _Run
from activities.tasks import deliver_email_chunk
from crm.models import EmailApproval
from tests.factories import (
    AccountFactory,
    ContactFactory,
    EmailFactory,
    TagFactory,
    TemplateFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sender(owner, team_queue):
    """Who starts the jobs here, and the queue they send as."""
    return owner, team_queue


@pytest.fixture
def template(db):
    t = TemplateFactory(subject="Hello {{ contact.first_name }}")
    attachment_store(owner=t, source=b"%PDF terms", filename="terms.pdf")
    return t


def start(template, sender, query=None, **kwargs):
    owner, queue = sender
    return bulk_send_start(
        template=template, sender=queue, query=query or {}, actor=owner, **kwargs
    )


def test_a_job_writes_one_email_per_eligible_contact_and_counts_the_rest(org, sender, template):
    account = AccountFactory()
    eligible = ContactFactory.create_batch(12, account=account)
    ContactFactory(account=account, email="")
    ContactFactory(account=account, do_not_bulk_email=True)
    ContactFactory(account=account, do_not_email=True)
    ContactFactory(account=account, email=eligible[0].email.upper())  # same address again
    ContactFactory(account=AccountFactory())  # not selected
    job = start(template, sender, {"account": account.pk})
    assert job.status == BulkSendStatus.QUEUED and job.total == 16

    job = bulk_send_run(job_id=job.pk, chunk_size=5)

    assert job.status == BulkSendStatus.COMPLETED and job.finished_at is not None
    assert (job.created, job.skipped) == (12, 4)
    assert job.skipped_by_reason == {
        "no_address": 1,
        "do_not_bulk_email": 2,
        "duplicate_address": 1,
    }
    emails = Email.objects.filter(bulk_send=job).order_by("bulk_contact_id")
    assert [e.bulk_contact_id for e in emails] == [c.pk for c in eligible]
    first = emails[0]
    assert first.status == EmailStatus.PENDING_SEND and first.sender_queue == sender[1]
    assert first.subject == f"Hello {eligible[0].first_name} CRM:{first.pk:07d}"
    assert first.message_id and len({e.message_id for e in emails}) == 12
    assert [(p.role, p.address) for p in first.parties.order_by("role")] == [
        ("from", "support@example.com"),
        ("to", eligible[0].email),
    ]
    assert AttachmentBlob.objects.count() == 1
    assert ActivityMimeAttachment.objects.filter(email__bulk_send=job).count() == 12
    assert EmailEvent.objects.filter(email__bulk_send=job, to_status="pending_send").count() == 12
    progress = bulk_send_progress(job)
    assert progress["created"] + progress["skipped"] == progress["total"]


def test_a_job_that_died_resumes_without_writing_anything_twice(org, sender, template):
    contacts = ContactFactory.create_batch(9)
    job = start(template, sender)
    BulkSend.objects.filter(pk=job.pk).update(status=BulkSendStatus.RUNNING)
    _Run(BulkSend.objects.get(pk=job.pk)).chunk(4)  # the worker dies after one chunk

    job = bulk_send_run(job_id=job.pk, chunk_size=4)
    again = bulk_send_run(job_id=job.pk, chunk_size=4)  # a redelivered task

    assert job.status == again.status == BulkSendStatus.COMPLETED
    assert job.created == 9
    assert sorted(
        Email.objects.filter(bulk_send=job).values_list("bulk_contact_id", flat=True)
    ) == [c.pk for c in contacts]


def test_cancel_partway_stops_creation_and_withdraws_unclaimed_emails(org, sender, template):
    ContactFactory.create_batch(10)
    job = start(template, sender)
    BulkSend.objects.filter(pk=job.pk).update(status=BulkSendStatus.RUNNING)
    _Run(BulkSend.objects.get(pk=job.pk)).chunk(4)
    claimed = Email.objects.filter(bulk_send=job).order_by("pk").first()
    Email.objects.filter(pk=claimed.pk).update(status=EmailStatus.SENDING)

    canceled = bulk_send_cancel(job=job, actor=sender[0])

    assert canceled.status == BulkSendStatus.CANCELED and canceled.canceled_at is not None
    statuses = sorted(Email.objects.filter(bulk_send=job).values_list("status", flat=True))
    assert statuses == ["canceled"] * 3 + ["sending"]
    assert bulk_send_run(job_id=job.pk, chunk_size=4).status == BulkSendStatus.CANCELED
    assert Email.objects.filter(bulk_send=job).count() == 4
    assert bulk_send_progress(BulkSend.objects.get(pk=job.pk))["created"] == 4
    with pytest.raises(InvalidTransition) as exc:
        bulk_send_cancel(job=job, actor=sender[0])
    assert exc.value.status == "canceled"


def test_a_written_job_still_delivering_can_be_canceled_and_a_delivered_one_cannot(
    org, sender, template
):
    ContactFactory.create_batch(3)
    job = bulk_send_run(job_id=start(template, sender).pk)
    assert job.status == BulkSendStatus.COMPLETED
    first = Email.objects.filter(bulk_send=job).order_by("pk").first()
    Email.objects.filter(pk=first.pk).update(status=EmailStatus.SENT)

    canceled = bulk_send_cancel(job=job, actor=sender[0])

    assert canceled.status == BulkSendStatus.CANCELED
    assert sorted(Email.objects.filter(bulk_send=job).values_list("status", flat=True)) == [
        "canceled",
        "canceled",
        "sent",
    ]
    ContactFactory.create_batch(2)
    done = bulk_send_run(job_id=start(template, sender).pk)
    Email.objects.filter(bulk_send=done).update(status=EmailStatus.SENT)
    with pytest.raises(InvalidTransition) as exc:
        bulk_send_cancel(job=done, actor=sender[0])
    assert exc.value.status == "completed"
    assert BulkSend.objects.get(pk=done.pk).status == BulkSendStatus.COMPLETED


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"city": "bergen"}, {"b1", "b2"}),
        ({"tag": "VIP"}, {"o1", "b1"}),
        ({"city": "Bergen", "tag": "vip"}, {"b1"}),
        ({"created_after": "2026-06-01"}, {"b1", "b2"}),
        ({"created_before": "2026-06-01T00:00:00Z"}, {"o1", "o2"}),
    ],
)
def test_the_query_selects_by_city_tag_and_creation_time(org, sender, template, query, expected):
    vip = TagFactory(name="vip")
    made = {}
    for name, city, tagged, day in (
        ("o1", "Oslo", True, 1),
        ("o2", "Oslo", False, 2),
        ("b1", "Bergen", True, 200),
        ("b2", "Bergen", False, 201),
    ):
        contact = ContactFactory(first_name=name, city=city)
        if tagged:
            contact.tags.add(vip)
        made[contact.pk] = name
        from datetime import datetime

        type(contact).objects.filter(pk=contact.pk).update(
            created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)
        )
    job = bulk_send_run(job_id=start(template, sender, query).pk)
    assert {made[e.bulk_contact_id] for e in Email.objects.filter(bulk_send=job)} == expected


@pytest.mark.parametrize(
    "query",
    [
        {"colour": "red"},
        {"account": "one"},
        {"account": 999999},
        {"created_after": "yesterday"},
        {"city": ["a"]},
    ],
)
def test_a_bad_query_is_refused_and_nothing_is_written(org, sender, template, query):
    with pytest.raises(ValidationFailed):
        start(template, sender, query)
    assert not BulkSend.objects.exists()


def test_start_applies_the_sender_rules_of_a_single_send(org, sender, template, outsider):
    owner, queue = sender
    with pytest.raises(SenderNotAllowed):
        bulk_send_start(template=template, sender=queue, query={}, actor=outsider)
    queue.email_router_access_approval = EmailApproval.PENDING
    queue.save()
    with pytest.raises(SenderNotApproved):
        bulk_send_start(template=template, sender=queue, query={}, actor=owner)
    account_template = TemplateFactory(record_type="account")
    with pytest.raises(ValidationFailed, match="contacts"):
        bulk_send_start(template=account_template, sender=owner, query={}, actor=owner)
    assert not BulkSend.objects.exists()


def chunk_queries(template, sender, size) -> list[str]:
    ContactFactory.create_batch(size)
    job = start(template, sender)
    BulkSend.objects.filter(pk=job.pk).update(status=BulkSendStatus.RUNNING)
    run = _Run(BulkSend.objects.get(pk=job.pk))
    with CaptureQueriesContext(connection) as ctx:
        assert run.chunk(size) == size
    return [query["sql"] for query in ctx.captured_queries]


def test_the_writes_of_a_chunk_are_bulk_statements(org, sender, template):
    """One statement per table per chunk, whatever the chunk size, and each of them is
    seen by the query log (PostgreSQL's COPY included)."""
    small = chunk_queries(template, sender, 5)
    Email.objects.all().delete()
    BulkSend.objects.all().delete()
    big = chunk_queries(template, sender, 300)
    assert len(small) == len(big) <= 14
    insert = "COPY" if connection.vendor == "postgresql" else "INSERT INTO"
    written = sorted(
        sql.split(insert)[1].split()[0].strip('"')
        for sql in big
        if insert in sql and "SAVEPOINT" not in sql
    )
    assert written == [
        "activities_activitymimeattachment",
        "activities_email",
        "activities_emailevent",
        "activities_emailparty",
    ]


def test_a_template_error_fails_the_job_with_the_reason(org, sender, template):
    ContactFactory(city="Oslo")
    broken = TemplateFactory(body_text="{{ contact.city|divisibleby:2 }}")
    job = bulk_send_run(job_id=start(broken, sender).pk)
    assert job.status == BulkSendStatus.FAILED
    assert "template error" in job.error
    assert not Email.objects.filter(bulk_send=job).exists()


def test_stalled_jobs_are_found_for_the_sweep(org, sender, template, settings):
    settings.CRM_LEASE_SECONDS = 60
    settings.CRM_SWEEP_PENDING_AFTER_SECONDS = 60
    fresh = start(template, sender)
    old_queued = start(template, sender)
    silent = start(template, sender)
    long_ago = timezone.now() - timedelta(minutes=5)
    BulkSend.objects.filter(pk=old_queued.pk).update(created_at=long_ago)
    BulkSend.objects.filter(pk=silent.pk).update(
        status=BulkSendStatus.RUNNING, heartbeat_at=long_ago
    )
    assert sorted(bulk_sends_to_resume()) == sorted([old_queued.pk, silent.pk])
    assert fresh.pk not in bulk_sends_to_resume()


def test_a_chunk_is_delivered_over_one_connection_each_message_once(
    org, sender, template, smtp_settings
):
    ContactFactory.create_batch(6)
    job = bulk_send_run(job_id=start(template, sender).pk)
    ids = list(Email.objects.filter(bulk_send=job).values_list("pk", flat=True))

    outcomes = deliver_email_chunk.apply(args=(ids,)).get()

    assert outcomes == {"sent": 6}
    assert len({m.peer for m in smtp_settings.messages}) == 1  # one SMTP connection
    assert Email.objects.filter(bulk_send=job, status=EmailStatus.SENT).count() == 6
    received = [m.message["Message-ID"] for m in smtp_settings.messages]
    stored = set(Email.objects.filter(bulk_send=job).values_list("message_id", flat=True))
    assert len(received) == 6 and set(received) == stored
    assert bulk_send_progress(BulkSend.objects.get(pk=job.pk))["sent"] == 6


def test_rows_written_in_bulk_are_whole_emails_like_any_other(org, sender, template):
    """The chunk writes rows without model instances: every column must still be right,
    and ids taken ahead must not collide with emails created the ordinary way."""
    owner, queue = sender
    account = AccountFactory(name="Acme")
    contact = ContactFactory(first_name="Ann", last_name="Lee", account=account)
    before = EmailFactory()
    job = bulk_send_run(job_id=start(template, sender).pk)

    email = Email.objects.get(bulk_send=job)
    assert email.pk > before.pk
    assert (email.status, email.state, email.direction) == ("pending_send", "completed", "outgoing")
    assert (email.from_address, email.from_name) == ("support@example.com", "Support")
    assert (email.template_id, email.created_by_id, email.bulk_contact_id) == (
        template.pk,
        owner.pk,
        contact.pk,
    )
    assert email.created_at and email.modified_at and email.queued_at and email.next_attempt_at
    assert email.tracking_token == f"CRM:{email.pk:07d}"
    assert (email.attempts, email.lease_token, email.possible_duplicate) == (0, 0, False)
    from_party, to_party = email.parties.order_by("role")
    assert (from_party.queue_id, from_party.name) == (queue.pk, "Support")
    assert (to_party.contact_id, to_party.name, to_party.address) == (
        contact.pk,
        "Ann Lee",
        contact.email,
    )
    link = email.attachments.get()
    assert (link.filename, link.mime_type) == ("terms.pdf", "application/pdf")
    event = email.events.get()
    assert (event.actor_id, event.data, event.created_at is not None) == (owner.pk, {}, True)
    message = build_message(email).message()
    assert message["Subject"] == f"Hello Ann CRM:{email.pk:07d}"
    assert message["Message-ID"] == email.message_id

    after = EmailFactory()
    assert after.pk > email.pk
