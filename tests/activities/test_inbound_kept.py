"""Every received message kept raw before it is read (issue 12): what cannot be read is
listed with the reason, never lost; mail for a mailbox whose address is not approved is
blocked, not routed, and released when the address is approved (by the approval, an
approver's Release or the sweep); hostile parts are kept for what they are."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from activities.errors import Conflict, MessageHeld, ValidationFailed
from activities.models import (
    ActivityMimeAttachment,
    AttachmentBlob,
    Email,
    EventKind,
    InboundMessage,
)
from activities.selectors import emails_visible_to, inbound_messages_held
from activities.services.blobs import blob_collect_garbage, blob_store
from activities.services.inbound import inbound_message_receive, inbound_message_store
from activities.services.inbound_release import inbound_release, inbound_sweep
from common.errors import PermissionDeniedError
from crm.models import EmailApproval, Queue
from crm.services import email_address_approve
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4 offer " * 100
# The first bytes of a Windows executable (the "MZ" header and a PE offset).
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 512


def message(
    *,
    to: str = "Support <support@example.com>",
    message_id: str = "<kept-1@customers.example.org>",
    subject: str = "Two more seats",
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ann Lee <ann@customers.example.org>"
    msg["To"] = to
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content("Hello in plain text")
    return msg


def nested(depth: int) -> bytes:
    """A multipart nested ``depth`` deep: the standard library's walk recurses per level."""
    head = b"From: ann@customers.example.org\r\nTo: support@example.com\r\nMIME-Version: 1.0\r\n"
    body = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    tail = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + body + b"Content-Type: text/plain\r\n\r\nhi\r\n" + tail


@pytest.fixture
def sales(teammate) -> Queue:
    """Sales <sales@example.com>: its address pending approval; the teammate a member."""
    return QueueFactory(
        name="Sales",
        email="sales@example.com",
        email_router_access_approval=EmailApproval.PENDING,
        members=[teammate],
    )


def kept_bytes(kept: InboundMessage) -> bytes:
    with default_storage.open(kept.blob.file.name) as fh:
        return fh.read()


def test_the_raw_is_kept_before_it_is_read_and_the_row_says_what_it_became(org, team_queue):
    raw = message().as_bytes()
    kept = inbound_message_receive(raw=raw, route="smtp", recipients=["support@example.com"])
    kept.refresh_from_db()
    assert (kept.status, kept.route, kept.size) == ("stored", "smtp", len(raw))
    assert kept.envelope_recipients == ["support@example.com"]
    assert kept.message_id == "<kept-1@customers.example.org>"
    assert (kept.owner_queue, kept.from_address, kept.subject) == (
        team_queue,
        "Ann Lee <ann@customers.example.org>",
        "Two more seats",
    )
    assert kept_bytes(kept) == raw
    assert kept.email == Email.objects.get() and kept.reading_since is None


def test_the_same_message_id_by_a_second_route_keeps_nothing_more(org, team_queue):
    first = inbound_message_receive(raw=message().as_bytes(), route="smtp")
    again = inbound_message_receive(raw=message().as_bytes(), route="webhook:mailgun")
    assert again.pk == first.pk
    assert InboundMessage.objects.count() == 1 and Email.objects.count() == 1


def test_a_blind_copy_reaches_the_mailbox_the_envelope_names(org, team_queue):
    msg = message(to="someone@customers.example.org")
    kept = inbound_message_receive(
        raw=msg.as_bytes(), route="smtp", recipients=["support@example.com"]
    )
    party = kept.email.parties.get(role="bcc")
    assert (party.address, party.queue) == ("support@example.com", team_queue)


def test_a_message_the_parser_cannot_walk_is_kept_raw_and_listed_as_unreadable(
    org, team_queue, eager_celery, django_capture_on_commit_callbacks
):
    raw = nested(3000)
    with django_capture_on_commit_callbacks(execute=True):  # read by a worker: 3,000 parts
        kept = inbound_message_receive(raw=raw, route="smtp")
    kept.refresh_from_db()
    assert (kept.status, kept.code, kept.email) == ("unparsable", "unparsable", None)
    assert "RecursionError" in kept.reason
    assert kept_bytes(kept) == raw
    assert list(inbound_messages_held("unreadable")) == [kept]
    assert not Email.objects.exists()


def test_a_message_over_the_limit_or_empty_is_refused_before_anything_is_kept(org, settings):
    settings.CRM_INBOUND_MAX_BYTES = 500
    with pytest.raises(ValidationFailed, match="CRM_INBOUND_MAX_BYTES") as big:
        inbound_message_receive(raw=message().as_bytes() + b"x" * 600)
    with pytest.raises(ValidationFailed, match="empty") as empty:
        inbound_message_receive(raw=b"")
    assert (big.value.code, empty.value.code) == ("message_too_large", "empty_message")
    assert not InboundMessage.objects.exists() and not AttachmentBlob.objects.exists()


def test_a_refused_message_is_kept_and_listed_with_its_reason(org, team_queue):
    msg = message()
    msg.replace_header("Subject", "x")
    del msg["From"]
    kept = inbound_message_receive(raw=msg.as_bytes(), route="imap")
    assert (kept.status, kept.code) == ("refused", "no_sender")
    assert list(inbound_messages_held("unreadable")) == [kept]


def test_the_collector_leaves_a_kept_raw_alone(org, team_queue):
    kept = inbound_message_receive(raw=nested(3000))  # kept, for a worker to read
    AttachmentBlob.objects.update(touched_at=timezone.now() - timedelta(days=30))
    blob_collect_garbage(grace_seconds=0)
    assert AttachmentBlob.objects.filter(pk=kept.blob_id).exists()
    assert kept_bytes(kept) == nested(3000)


def test_an_executable_named_invoice_pdf_is_kept_as_what_it_is(org, team_queue):
    msg = message()
    msg.add_attachment(EXE, maintype="application", subtype="pdf", filename="invoice.pdf")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="offer.pdf")
    email = inbound_message_store(raw=msg.as_bytes())
    assert list(email.attachments.values_list("filename", "mime_type")) == [
        ("invoice.pdf", "application/octet-stream"),
        ("offer.pdf", "application/pdf"),
    ]
    note = email.events.get(kind=EventKind.NOTE).reason
    assert "'invoice.pdf' says it is application/pdf" in note
    assert "application/x-msdownload" in note


# --- blocked mail -------------------------------------------------------------------------


def blocked_message(subject: str = "For sales", message_id: str = "<blocked-1@x.org>") -> bytes:
    msg = message(to="Sales <sales@example.com>", subject=subject, message_id=message_id)
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="offer.pdf")
    return msg.as_bytes()


def test_mail_for_an_unapproved_queue_is_blocked_not_routed(org, sales, teammate):
    kept = inbound_message_receive(raw=blocked_message(), route="smtp")
    assert (kept.status, kept.code, kept.owner_queue, kept.email) == (
        "blocked",
        "mailbox_not_approved",
        sales,
        None,
    )
    assert "sales@example.com (the queue Sales, pending approval)" in kept.reason
    assert "requires approval of queue addresses" in kept.reason
    assert not Email.objects.exists() and not emails_visible_to(teammate).exists()
    assert list(inbound_messages_held("blocked")) == [kept]
    assert not ActivityMimeAttachment.objects.exists()  # its parts are read on release
    with pytest.raises(MessageHeld, match="blocked") as held:  # a caller wanting an email
        inbound_message_store(raw=blocked_message(message_id="<blocked-9@x.org>"))
    assert held.value.code == "mailbox_not_approved"
    assert InboundMessage.objects.filter(status="blocked").count() == 2


def test_approving_the_address_releases_what_it_blocked_once(
    org, sales, teammate, approver, eager_celery, django_capture_on_commit_callbacks
):
    original = inbound_message_receive(raw=blocked_message())
    reply = inbound_message_receive(
        raw=blocked_message(subject="Re: For sales", message_id="<blocked-2@x.org>")
    )
    with django_capture_on_commit_callbacks(execute=True):
        email_address_approve(target=sales, actor=approver)

    original.refresh_from_db()
    reply.refresh_from_db()
    assert (original.status, reply.status) == ("stored", "stored")
    email = original.email
    assert list(emails_visible_to(teammate).order_by("pk")) == [email, reply.email]
    assert email.parties.get(role="to").queue == sales
    assert list(email.attachments.values_list("filename", flat=True)) == ["offer.pdf"]
    assert AttachmentBlob.objects.filter(attachments__isnull=False).distinct().count() == 1
    # Nothing is released twice: the sweep, and the same message again, add nothing.
    inbound_sweep()
    inbound_message_receive(raw=blocked_message())
    assert Email.objects.count() == 2 and ActivityMimeAttachment.objects.count() == 2


def test_a_message_for_an_approved_and_an_unapproved_mailbox_reaches_both_in_time(
    org, team_queue, sales, owner, teammate, approver, eager_celery,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    msg = message(to="support@example.com, sales@example.com", message_id="<both@x.org>")
    kept = inbound_message_receive(raw=msg.as_bytes())
    assert kept.status == "stored"
    assert kept.email.parties.get(address="sales@example.com").queue is None
    with django_capture_on_commit_callbacks(execute=True):
        email_address_approve(target=sales, actor=approver)
    assert kept.email.parties.get(address="sales@example.com").queue == sales
    assert "routed to sales@example.com (Sales)" in kept.email.events.last().reason


def test_release_is_refused_in_words_while_the_address_is_not_approved(
    org, sales, approver, teammate
):
    kept = inbound_message_receive(raw=blocked_message())
    with pytest.raises(Conflict, match="still held for approval") as refused:
        inbound_release(message=kept, actor=approver)
    assert refused.value.code == "mailbox_not_approved"
    assert "Approve the address" in refused.value.message
    with pytest.raises(PermissionDeniedError):
        inbound_release(message=kept, actor=teammate)
    kept.refresh_from_db()
    assert kept.status == "blocked" and not Email.objects.exists()

    org.require_approval_for_queue_email = False  # the rule switched off: Release may
    org.save()
    released = inbound_release(message=kept, actor=approver)
    assert (released.status, released.released_by) == ("stored", approver)
    with pytest.raises(Conflict, match="not blocked") as again:
        inbound_release(message=released, actor=approver)
    assert again.value.code == "not_blocked"
    assert Email.objects.count() == 1


def test_the_sweep_releases_what_an_approval_missed_and_reads_what_a_crash_left(
    org, sales, team_queue
):
    blocked = inbound_message_receive(raw=blocked_message())
    # Approved without the signal's publish (a broker away when it committed).
    Queue.objects.filter(pk=sales.pk).update(email_router_access_approval=EmailApproval.APPROVED)
    # A process that kept a raw and died before reading it.
    raw = message(message_id="<crashed@x.org>").as_bytes()
    blob, _ = blob_store(source=raw, max_bytes=len(raw))
    crashed = InboundMessage.objects.create(
        blob=blob,
        size=len(raw),
        route="smtp",
        received_at=timezone.now() - timedelta(hours=1),
        reading_since=timezone.now() - timedelta(hours=1),
    )
    fresh = InboundMessage.objects.create(  # being read right now: left alone
        blob=blob, size=len(raw), route="smtp", received_at=timezone.now()
    )

    done = inbound_sweep()

    assert done.statuses == {"stored": 2}
    for row in (blocked, crashed, fresh):
        row.refresh_from_db()
    assert (blocked.status, crashed.status, fresh.status) == ("stored", "stored", "kept")
    assert crashed.email.message_id == "<crashed@x.org>"


def test_a_message_whose_read_never_finishes_is_given_up_after_three_tries(org, team_queue):
    raw = message(message_id="<poison@x.org>").as_bytes()
    blob, _ = blob_store(source=raw, max_bytes=len(raw))
    an_hour_ago = timezone.now() - timedelta(hours=1)
    poison = InboundMessage.objects.create(  # three reads begun, each process killed
        blob=blob, size=len(raw), route="smtp", received_at=an_hour_ago,
        reading_since=an_hour_ago, read_attempts=3,
    )  # fmt: skip
    assert inbound_sweep().statuses == {"unparsable": 1}
    poison.refresh_from_db()
    assert (poison.status, poison.code, poison.email) == ("unparsable", "read_abandoned", None)
    assert "begun 3 times and never finished" in poison.reason
    assert list(inbound_messages_held("unreadable")) == [poison]
