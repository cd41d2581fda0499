"""Create and send in one step, and a batch of such emails in one transaction
(activities/services/batch.py)."""

from __future__ import annotations

import pytest
from django.db import transaction

from activities.errors import InvalidAddress, NoRecipients, SenderNotAllowed
from activities.models import ActivityMimeAttachment, Email, EmailEvent, EmailStatus
from activities.services.batch import (
    AttachmentInput,
    email_create_and_send,
    emails_send_batch,
)

pytestmark = pytest.mark.django_db


def test_create_and_send_attaches_the_bytes_and_queues_the_email(org, owner):
    email = email_create_and_send(
        actor=owner,
        to=["ann@example.com"],
        subject="Terms",
        attachments=[AttachmentInput(filename="terms.txt", content=b"the terms")],
    )

    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND
    [attachment] = email.attachments.all()
    assert (attachment.filename, attachment.mime_type, attachment.blob.size) == (
        "terms.txt",
        "text/plain",
        9,
    )
    statuses = list(email.events.values_list("from_status", "to_status"))
    assert statuses == [("", EmailStatus.DRAFT), (EmailStatus.DRAFT, EmailStatus.PENDING_SEND)]


def test_create_and_send_refused_at_send_leaves_nothing_written(org, owner):
    with pytest.raises(NoRecipients):
        email_create_and_send(
            actor=owner, subject="Nobody", attachments=[AttachmentInput("a.txt", b"a")]
        )

    assert Email.objects.count() == 0
    assert ActivityMimeAttachment.objects.count() == 0
    assert EmailEvent.objects.count() == 0


def test_a_batch_writes_and_queues_the_good_emails_and_answers_each_refusal(
    org, owner, team_queue, outsider, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        outcomes = emails_send_batch(
            actor=owner,
            emails=[
                {"to": ["ann@example.com"], "subject": "One"},
                {"to": ["not an address"], "subject": "Two"},
                {"to": ["bo@example.com"], "subject": "Three", "sender": outsider},
                {"to": ["cy@example.com"], "subject": "Four", "sender": team_queue},
            ],
        )

    assert [type(o.error) for o in outcomes] == [
        type(None),
        InvalidAddress,
        SenderNotAllowed,
        type(None),
    ]
    assert outcomes[1].email is None and outcomes[2].email is None
    written = Email.objects.order_by("pk")
    assert [e.pk for e in written] == [outcomes[0].email.pk, outcomes[3].email.pk]
    assert {e.status for e in written} == {EmailStatus.PENDING_SEND}
    assert EmailEvent.objects.filter(email__in=written).count() == 4
    assert EmailEvent.objects.count() == 4
    assert len(callbacks) == 2  # a delivery for each written email, none for the refused


def test_a_batch_that_fails_as_a_whole_queues_no_delivery(
    org, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):
        with transaction.atomic():
            emails_send_batch(actor=owner, emails=[{"to": ["ann@example.com"]}])
            raise RuntimeError("the caller's transaction fails after the batch")

    assert Email.objects.count() == 0
    assert callbacks == []
