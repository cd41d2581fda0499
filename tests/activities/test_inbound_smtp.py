"""The SMTP listener (``manage.py receive_mail``): mail for known queues and users is
stored, other recipients get a 550, over-size mail a 552, a refused message a 554 with
the reason; a real aiosmtpd listener on loopback and smtplib as the sending server."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest
from django.conf import settings as django_settings

from activities.inbound_smtp import inbound_controller
from activities.models import Email, InboundMessage
from activities.services.inbound import inbound_message_read_by_id
from crm.models import EmailApproval
from tests.celery_worker import worker_database_url
from tests.factories import QueueFactory
from tests.smtp import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def message(message_id: str = "<listener-1@customers.example.org>", **headers: str) -> bytes:
    msg = EmailMessage()
    for name, value in {
        "From": "Ann Lee <ann@customers.example.org>",
        "To": "Support <support@example.com>",
        "Subject": "Two more seats",
        "Message-ID": message_id,
        **headers,
    }.items():
        if value:
            msg[name] = value
    msg.set_content("Hello")
    return msg.as_bytes()


@pytest.fixture
def listener(org, team_queue):
    port = free_port()
    controller = inbound_controller(hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


def send(port: int, raw: bytes, to: list[str]) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        return client.sendmail("ann@customers.example.org", to, raw)


def test_mail_for_a_queue_is_stored_and_the_same_message_again_is_not(listener, team_queue):
    with smtplib.SMTP("127.0.0.1", listener, timeout=20) as client:
        client.ehlo()
        client.mail("ann@customers.example.org")
        client.rcpt("support@example.com")
        code, answer = client.data(message())
    assert code == 250
    email = Email.objects.get()
    assert answer.decode() == f"OK: stored as email {email.pk}"
    assert email.parties.get(role="to").queue == team_queue
    assert email.from_address == "ann@customers.example.org"

    assert send(listener, message(), ["support@example.com"]) == {}
    assert Email.objects.count() == 1


def test_a_recipient_that_is_no_mailbox_here_is_refused_with_550(listener):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(listener, message(), ["nobody@example.com"])
    code, answer = refused.value.recipients["nobody@example.com"]
    assert code == 550 and b"no mailbox of this application has that address" in answer
    # One known and one unknown: the known one gets the mail, the other is refused.
    assert send(listener, message(), ["nobody@example.com", "support@example.com"]) == {
        "nobody@example.com": (550, refused.value.recipients["nobody@example.com"][1])
    }
    assert Email.objects.count() == 1


def test_a_message_refused_by_the_parser_is_a_554_with_the_reason_and_kept(listener):
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener, message(From=""), ["support@example.com"])
    assert refused.value.smtp_code == 554
    assert b"no readable From address" in refused.value.smtp_error
    assert not Email.objects.exists()
    kept = InboundMessage.objects.get()
    assert (kept.status, kept.route, kept.envelope_recipients) == (
        "refused",
        "smtp",
        ["support@example.com"],
    )


def test_mail_for_an_unapproved_mailbox_is_accepted_kept_and_blocked(listener, teammate):
    QueueFactory(
        name="Sales",
        email="sales@example.com",
        email_router_access_approval=EmailApproval.PENDING,
        members=[teammate],
    )
    with smtplib.SMTP("127.0.0.1", listener, timeout=20) as client:
        client.ehlo()
        client.mail("ann@customers.example.org")
        client.rcpt("sales@example.com")
        code, answer = client.data(message(To="sales@example.com"))
    kept = InboundMessage.objects.get()
    assert (code, answer.decode()) == (250, f"OK: kept as inbound message {kept.pk} (blocked)")
    assert not Email.objects.exists()


def test_a_message_of_many_parts_is_answered_once_kept_and_read_by_a_worker(listener, settings):
    settings.CRM_INBOUND_INLINE_READ_PARTS = 3
    msg = EmailMessage()
    msg["From"], msg["To"] = "ann@customers.example.org", "support@example.com"
    msg["Message-ID"] = "<many-parts@customers.example.org>"
    msg.set_content("See the files")
    for i in range(4):
        msg.add_attachment(f"row {i}".encode(), maintype="text", subtype="csv", filename=f"{i}.csv")
    with smtplib.SMTP("127.0.0.1", listener, timeout=20) as client:
        client.ehlo()
        client.mail("ann@customers.example.org")
        client.rcpt("support@example.com")
        code, answer = client.data(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
    kept = InboundMessage.objects.get()
    assert (code, answer.decode()) == (250, f"OK: kept as inbound message {kept.pk} (kept)")
    assert inbound_message_read_by_id(message_id=kept.pk) == "stored"  # what the task runs
    kept.refresh_from_db()
    assert kept.email.attachments.count() == 4


def test_a_message_over_the_size_limit_is_a_552(org, team_queue, settings):
    settings.CRM_INBOUND_MAX_BYTES = 2000
    port = free_port()
    controller = inbound_controller(hostname="127.0.0.1", port=port)
    controller.start()
    try:
        big = message(Subject="x" * 10) + b"y" * 5000
        with pytest.raises(smtplib.SMTPException) as refused:
            send(port, big, ["support@example.com"])
        assert "552" in str(refused.value)
    finally:
        controller.stop()
    assert not Email.objects.exists() and not InboundMessage.objects.exists()


@pytest.mark.slow
def test_a_50_mb_message_is_a_552_and_nothing_is_kept(listener):
    big = message() + b"y" * (50 * 1024 * 1024)
    with pytest.raises(smtplib.SMTPException) as refused:
        send(listener, big, ["support@example.com"])
    assert "552" in str(refused.value)
    assert not InboundMessage.objects.exists()


@pytest.mark.slow
def test_the_command_listens_stores_and_stops_on_sigterm(org, team_queue, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "receive_mail.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "receive_mail", "--port", str(port)],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while b"receiving mail on" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert send(port, message(), ["support@example.com"]) == {}
        assert Email.objects.get().parties.get(role="to").queue == team_queue
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    assert log.read_text().rstrip().endswith("stopped")


def test_a_message_that_cannot_be_stored_now_is_a_451_so_the_sender_tries_again(
    listener, settings, tmp_path
):
    not_a_folder = tmp_path / "media"
    not_a_folder.write_text("a file where the blob folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "activities.storage.BlobFileSystemStorage",
            "OPTIONS": {"location": str(not_a_folder)},
        },
    }
    msg = EmailMessage()
    msg["From"], msg["To"] = "ann@customers.example.org", "support@example.com"
    msg["Message-ID"] = "<listener-451@customers.example.org>"
    msg.set_content("See the file")
    msg.add_attachment(b"%PDF offer", maintype="application", subtype="pdf", filename="o.pdf")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener, msg.as_bytes(), ["support@example.com"])
    assert refused.value.smtp_code == 451
    assert not Email.objects.exists()
