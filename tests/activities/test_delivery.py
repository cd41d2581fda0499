"""Delivery in process: the services against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import os
import smtplib
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.utils import timezone

from activities.errors import LeaseConflict
from activities.models import Email, EmailStatus
from activities.services.attachments import attachment_store
from activities.services.delivery import (
    PermanentFailure,
    TransientFailure,
    classify_send_error,
    delivery_sweep,
    email_claim_for_delivery,
    email_deliver,
    email_record_sent,
)
from activities.services.emails import email_cancel, email_create, email_send
from crm.models import OutgoingDelivery
from tests.factories import QueueFactory
from tests.smtp import free_port

pytestmark = pytest.mark.django_db

OWNER = "test-worker"
BINARY = os.urandom(150_000)  # spans several of the encoder's read chunks
NON_ASCII_NAME = "Tilbud på støvler – ÆØÅ €.txt"
NON_ASCII_BODY = "Pris: 100 € — «velkommen»\n".encode()


def send_draft(sender, *, to=("Ann Lee <ann@example.com>",), **kwargs) -> Email:
    email = email_create(
        actor=sender,
        to=list(to),
        subject="Quarterly figures",
        body_text="Hello Ann",
        body_html="<p>Hello <b>Ann</b></p>",
        **kwargs,
    )
    return email_send(email=email, actor=sender)


def make_due(email: Email) -> None:
    Email.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def status_changes(email: Email) -> list[tuple[str, str]]:
    return list(email.events.filter(kind="status").values_list("from_status", "to_status"))


def test_deliver_sends_headers_bodies_and_attachments_and_no_bcc_header(org, owner, smtp_settings):
    draft = email_create(
        actor=owner,
        to=["Ann Lee <ann@example.com>", "bo@example.com"],
        cc=["Carl Berg <carl@example.org>"],
        bcc=["hidden@example.net"],
        subject="Quarterly figures",
        body_text="Hello Ann, the figures are attached.",
        body_html="<p>Hello Ann, the <b>figures</b> are attached.</p>",
    )
    attachment_store(
        owner=draft, source=BINARY, filename="figures.bin", mime_type="application/octet-stream"
    )
    attachment_store(
        owner=draft, source=NON_ASCII_BODY, filename=NON_ASCII_NAME, mime_type="text/plain"
    )
    email = email_send(email=draft, actor=owner)

    result = email_deliver(email_id=email.pk, owner=OWNER)

    assert (result.outcome, result.attempts) == ("sent", 1)
    [received] = smtp_settings.messages
    assert received.mail_from == "alice@staff.example.com"
    assert sorted(received.rcpt_tos) == [
        "ann@example.com",
        "bo@example.com",
        "carl@example.org",
        "hidden@example.net",
    ]
    msg = received.message
    [sender] = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Alice Archer", "alice@staff.example.com")
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [
        ("Ann Lee", "ann@example.com"),
        ("", "bo@example.com"),
    ]
    assert [(a.display_name, a.addr_spec) for a in msg["Cc"].addresses] == [
        ("Carl Berg", "carl@example.org")
    ]
    assert msg["Bcc"] is None
    assert b"hidden@example.net" not in received.data
    email.refresh_from_db()
    assert msg["Subject"] == email.subject == f"Quarterly figures CRM:{email.pk:07d}"
    assert msg["Message-ID"] == email.message_id
    assert msg.get_content_type() == "multipart/mixed"
    assert msg.get_payload()[0].get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().strip() == "Hello Ann, the figures are attached."
    assert "the <b>figures</b> are attached" in msg.get_body(("html",)).get_content()
    attachments = {part.get_filename(): part for part in msg.iter_attachments()}
    assert set(attachments) == {"figures.bin", NON_ASCII_NAME}
    assert attachments["figures.bin"].get_payload(decode=True) == BINARY
    assert attachments["figures.bin"].get_content_type() == "application/octet-stream"
    assert attachments[NON_ASCII_NAME].get_payload(decode=True) == NON_ASCII_BODY
    assert email.status == EmailStatus.SENT and email.sent_at is not None
    assert (email.attempts, email.last_error, email.possible_duplicate) == (1, "", False)
    assert (email.lease_expires_at, email.lease_owner) == (None, "")
    assert status_changes(email) == [
        ("", "draft"),
        ("draft", "pending_send"),
        ("pending_send", "sending"),
        ("sending", "sent"),
    ]
    assert email.events.count() == 4


def test_tracking_token_is_in_the_received_subject_once_even_after_a_resend(
    org, owner, smtp_settings
):
    smtp_settings.handler.reject_recipients = {"ann@example.com"}
    email = send_draft(owner)
    assert email_deliver(email_id=email.pk, owner=OWNER).outcome == "failed"
    smtp_settings.handler.reject_recipients = set()
    email_send(email=email, actor=owner)  # failed -> pending_send, the token already there

    assert email_deliver(email_id=email.pk, owner=OWNER).outcome == "sent"

    token = f"CRM:{email.pk:07d}"
    [received] = smtp_settings.messages
    assert received.message["Subject"] == f"Quarterly figures {token}"
    assert received.message["Subject"].count(token) == 1


def test_transient_451_retries_later_with_the_same_message_id(org, owner, smtp_settings):
    smtp_settings.handler.fail_data_times = 1
    email = send_draft(owner)
    message_id = email.message_id

    first = email_deliver(email_id=email.pk, owner=OWNER)

    assert first.outcome == "retry" and first.retry_in > 0
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND and email.attempts == 1
    assert "451" in email.last_error
    assert email.next_attempt_at > timezone.now()
    assert smtp_settings.messages == []
    # Not due yet: a task that wakes early is told to come back, and sends nothing.
    early = email_deliver(email_id=email.pk, owner=OWNER)
    assert early.outcome == "retry" and early.retry_in > 0
    email.refresh_from_db()
    assert email.attempts == 1

    make_due(email)
    second = email_deliver(email_id=email.pk, owner=OWNER)

    assert (second.outcome, second.attempts) == ("sent", 2)
    [received] = smtp_settings.messages
    assert received.message["Message-ID"] == message_id
    email.refresh_from_db()
    assert (email.status, email.message_id, email.last_error) == (EmailStatus.SENT, message_id, "")
    assert status_changes(email)[1:] == [
        ("draft", "pending_send"),
        ("pending_send", "sending"),
        ("sending", "pending_send"),
        ("pending_send", "sending"),
        ("sending", "sent"),
    ]


def test_permanent_550_fails_at_once_with_the_reason(org, owner, smtp_settings):
    smtp_settings.handler.reject_recipients = {"nobody@example.com"}
    email = send_draft(owner, to=["nobody@example.com"])

    result = email_deliver(email_id=email.pk, owner=OWNER)

    assert result.outcome == "failed"
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED and email.failed_at is not None
    assert email.attempts == 1 and email.next_attempt_at is None
    assert "550" in email.last_error and "nobody@example.com" in email.last_error
    assert smtp_settings.messages == []
    failed = email.events.get(to_status=EmailStatus.FAILED)
    assert failed.reason.startswith("permanent failure") and "550" in failed.reason


def test_server_down_retries_then_gives_up_after_max_attempts(org, owner, smtp_settings, settings):
    settings.CRM_SEND_MAX_ATTEMPTS = 3
    settings.EMAIL_PORT = free_port()  # nothing listens there
    email = send_draft(owner)

    outcomes = []
    for _ in range(3):
        result = email_deliver(email_id=email.pk, owner=OWNER)
        outcomes.append(result.outcome)
        email.refresh_from_db()
        if result.outcome == "retry":
            assert email.status == EmailStatus.PENDING_SEND
            assert email.next_attempt_at > timezone.now()
            assert "ConnectionRefusedError" in email.last_error
            make_due(email)

    assert outcomes == ["retry", "retry", "failed"]
    assert email.status == EmailStatus.FAILED and email.attempts == 3
    assert "gave up after 3 attempts" in email.events.get(to_status=EmailStatus.FAILED).reason
    assert email.events.filter(to_status=EmailStatus.SENDING).count() == 3
    assert smtp_settings.messages == []


def test_expired_lease_is_requeued_and_the_late_worker_changes_nothing(org, owner, smtp_settings):
    email = send_draft(owner)
    message_id = email.message_id
    claimed = email_claim_for_delivery(email_id=email.pk, owner="worker-a")
    old_token = claimed.lease_token
    Email.objects.filter(pk=email.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    swept = delivery_sweep()

    assert swept.requeued_expired == [email.pk] and swept.due_pending == [email.pk]
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND and email.possible_duplicate
    assert email.message_id == message_id and email.lease_owner == ""
    requeue = email.events.get(from_status=EmailStatus.SENDING, to_status=EmailStatus.PENDING_SEND)
    assert requeue.actor_label == "sweep" and "lease expired" in requeue.reason
    events_before = email.events.count()

    with pytest.raises(LeaseConflict):
        email_record_sent(email=claimed, lease_token=old_token, owner="worker-a")

    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND and email.sent_at is None
    assert email.events.count() == events_before
    # The next worker delivers it once, with the Message-ID fixed at send time; the
    # first worker's token stays refused after that claim too.
    assert email_deliver(email_id=email.pk, owner="worker-b").outcome == "sent"
    with pytest.raises(LeaseConflict):
        email_record_sent(email=claimed, lease_token=old_token, owner="worker-a")
    [received] = smtp_settings.messages
    assert received.message["Message-ID"] == message_id


class LeaseExpiresDuringSend(SMTPBackend):
    """A send so slow that the lease runs out and the sweep re-queues the email meanwhile."""

    def send_messages(self, email_messages):
        Email.objects.filter(status=EmailStatus.SENDING).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        delivery_sweep()
        return super().send_messages(email_messages)


def test_send_finishing_after_the_lease_expired_is_flagged_not_recorded(org, owner, smtp_settings):
    email = send_draft(owner)

    result = email_deliver(email_id=email.pk, owner=OWNER, connection=LeaseExpiresDuringSend())

    assert result.outcome == "sent" and "lease lost" in result.error
    email.refresh_from_db()
    # The message went out, but the email belongs to the sweep now: it stays queued,
    # and the copy that will follow is announced, not silent.
    assert email.status == EmailStatus.PENDING_SEND and email.sent_at is None
    assert email.possible_duplicate
    note = email.events.get(kind="note")
    assert "after the lease expired" in note.reason
    assert email.events.filter(to_status=EmailStatus.SENT).count() == 0
    assert email_deliver(email_id=email.pk, owner="worker-b").outcome == "sent"
    assert [m.message["Message-ID"] for m in smtp_settings.messages] == [email.message_id] * 2


def test_deliver_twice_sends_once(org, owner, smtp_settings):
    email = send_draft(owner)

    first = email_deliver(email_id=email.pk, owner=OWNER)
    second = email_deliver(email_id=email.pk, owner=OWNER)

    assert (first.outcome, second.outcome) == ("sent", "skipped")
    assert len(smtp_settings.messages) == 1
    email.refresh_from_db()
    assert email.attempts == 1
    assert email.events.filter(to_status=EmailStatus.SENT).count() == 1


def test_canceled_email_is_never_delivered(org, owner, smtp_settings):
    email = send_draft(owner)
    email_cancel(email=email, actor=owner)

    assert email_deliver(email_id=email.pk, owner=OWNER).outcome == "skipped"

    email.refresh_from_db()
    assert email.status == EmailStatus.CANCELED and email.attempts == 0
    assert not email.events.filter(to_status=EmailStatus.SENDING).exists()
    assert smtp_settings.messages == []
    assert delivery_sweep().due_pending == []


def test_outbox_backend_writes_one_eml_file(org, owner, settings):
    settings.EMAIL_BACKEND = "activities.mail.OutboxBackend"
    email = send_draft(owner, bcc=["hidden@example.net"])

    assert email_deliver(email_id=email.pk, owner=OWNER).outcome == "sent"

    files = list(settings.OUTBOX_DIR.iterdir())
    assert [f.suffix for f in files] == [".eml"]  # no temporary file left behind
    msg = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    email.refresh_from_db()
    assert msg["Subject"] == email.subject
    assert msg["Message-ID"] == email.message_id
    assert msg["Bcc"] is None
    assert "hidden@example.net" in msg["X-Outbox-Envelope-To"]
    assert email.status == EmailStatus.SENT


def test_external_sender_is_neither_enqueued_nor_claimed_by_a_worker(
    org, owner, smtp_settings, django_capture_on_commit_callbacks
):
    queue = QueueFactory(members=[owner], outgoing_delivery=OutgoingDelivery.EXTERNAL)
    draft = email_create(actor=owner, sender=queue, to=["ann@example.com"], subject="Hi")

    with django_capture_on_commit_callbacks() as callbacks:
        email = email_send(email=draft, actor=owner)

    assert callbacks == []
    assert email_claim_for_delivery(email_id=email.pk, owner=OWNER) is None
    assert email_deliver(email_id=email.pk, owner=OWNER).outcome == "skipped"
    make_due(email)
    assert delivery_sweep().due_pending == []
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND and email.attempts == 0
    assert email.lease_token == 0
    assert smtp_settings.messages == []


def _anymail_api_error(status: int) -> AnymailAPIError:
    return AnymailAPIError(f"ESP answered {status}", status_code=status)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            smtplib.SMTPRecipientsRefused(
                {"a@example.com": (550, b"no such user"), "b@example.com": (553, b"bad")}
            ),
            PermanentFailure,
        ),
        (
            smtplib.SMTPRecipientsRefused(
                {"a@example.com": (550, b"no such user"), "b@example.com": (450, b"busy")}
            ),
            TransientFailure,
        ),
        (smtplib.SMTPRecipientsRefused({}), TransientFailure),
        (smtplib.SMTPDataError(451, b"try again later"), TransientFailure),
        (smtplib.SMTPDataError(554, b"message refused"), PermanentFailure),
        (smtplib.SMTPSenderRefused(553, b"sender refused", "a@example.com"), PermanentFailure),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), TransientFailure),
        (ConnectionRefusedError(111, "Connection refused"), TransientFailure),
        (TimeoutError("timed out"), TransientFailure),
        (AnymailRecipientsRefused(), PermanentFailure),
        (_anymail_api_error(400), PermanentFailure),
        (_anymail_api_error(429), TransientFailure),
        (_anymail_api_error(503), TransientFailure),
        (AnymailAPIError("no response"), TransientFailure),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_classify_send_error(exc, expected):
    assert classify_send_error(exc) is expected


def test_partly_refused_recipients_are_recorded_not_dropped(org, owner, smtp_settings):
    smtp_settings.handler.reject_recipients = {"nobody@example.com"}
    email = send_draft(owner, to=["ann@example.com", "nobody@example.com"])

    assert email_deliver(email_id=email.pk, owner=OWNER).outcome == "sent"

    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert "nobody@example.com: 550" in email.last_error
    sent = email.events.get(to_status=EmailStatus.SENT)
    assert "refused some recipients" in sent.reason
    assert set(sent.data["refused"]) == {"nobody@example.com"}
    [received] = smtp_settings.messages
    assert received.rcpt_tos == ["ann@example.com"]


def test_sweep_gives_up_when_every_attempt_ended_without_an_outcome(org, owner, settings):
    settings.CRM_SEND_MAX_ATTEMPTS = 2
    email = send_draft(owner)
    for attempt in (1, 2):
        claimed = email_claim_for_delivery(email_id=email.pk, owner=f"dies-{attempt}")
        assert claimed.attempts == attempt
        Email.objects.filter(pk=email.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        delivery_sweep()
        make_due(email)

    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED and email.possible_duplicate
    assert "no outcome reported for 2 attempts" in email.last_error
    assert email.events.filter(to_status=EmailStatus.PENDING_SEND, actor_label="sweep").count() == 1
    assert delivery_sweep().due_pending == []
    assert email_claim_for_delivery(email_id=email.pk, owner="late") is None
