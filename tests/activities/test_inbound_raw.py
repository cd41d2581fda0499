"""Raw received messages (RFC 5322 bytes) parsed by the standard library into one email:
every address on its own, both bodies, parts stored once, threading by References, and
what cannot be read named in a note, never dropped in silence (issue 12)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from activities.errors import ValidationFailed
from activities.models import (
    ActivityMimeAttachment,
    AttachmentBlob,
    Email,
    EventKind,
    InboundMessage,
)
from activities.services.emails import email_create, email_send
from activities.services.inbound import inbound_message_receive, inbound_message_store
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4 offer " * 100
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def message(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "Ann Lee <ann@customers.example.org>")
    msg["To"] = headers.pop("To", "Support <support@example.com>")
    msg["Subject"] = headers.pop("Subject", "Two more seats")
    msg["Message-ID"] = headers.pop("Message_ID", "<raw-1@customers.example.org>")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Hello in plain text")
    return msg


def notes(email: Email) -> list[str]:
    return list(email.events.filter(kind=EventKind.NOTE).values_list("reason", flat=True))


def test_a_reply_with_bodies_an_attachment_and_an_inline_image_is_one_threaded_email(
    org, owner, team_queue
):
    ann = ContactFactory(email="ann@customers.example.org")
    sent = email_send(
        email=email_create(actor=owner, to=[ann], regarding=ann, subject="Offer"), actor=owner
    )
    msg = message(
        To="Support <support@example.com>, bob@example.com",
        Cc="Carl <carl@customers.example.org>; dora@customers.example.org",
        Subject="Re: Offer",
        References=f"<unknown@elsewhere> {sent.message_id}",
    )
    msg.add_alternative('<p>Hello <img src="cid:logo"></p>', subtype="html")
    msg.get_payload()[1].add_related(PNG, "image", "png", cid="<logo>")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="offer.pdf")

    email = inbound_message_store(raw=msg.as_bytes())

    assert email.parent_id == sent.pk and email.regarding == ann  # threaded by References
    assert (email.from_address, email.from_name) == ("ann@customers.example.org", "Ann Lee")
    assert email.body_text.strip() == "Hello in plain text"
    assert email.body_html.strip() == '<p>Hello <img src="cid:logo"></p>'
    parties = sorted(email.parties.values_list("role", "address"))
    assert parties == [
        ("cc", "carl@customers.example.org"),
        ("cc", "dora@customers.example.org"),
        ("from", "ann@customers.example.org"),
        ("to", "bob@example.com"),
        ("to", "support@example.com"),
    ]
    assert email.parties.get(address="support@example.com").queue == team_queue
    files = list(email.attachments.values_list("filename", "mime_type", "blob__size"))
    assert files == [
        ("part-1.png", "image/png", len(PNG)),
        ("offer.pdf", "application/pdf", len(PDF)),
    ]
    assert notes(email) == []


def test_the_same_message_twice_is_one_email_and_its_parts_are_stored_once(org, team_queue):
    msg = message()
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="offer.pdf")
    first = inbound_message_store(raw=msg.as_bytes())
    again = inbound_message_store(raw=msg.as_bytes())
    assert again.pk == first.pk
    assert Email.objects.count() == 1 and ActivityMimeAttachment.objects.count() == 1

    other = message(Message_ID="<raw-2@customers.example.org>")
    other.add_attachment(PDF, maintype="application", subtype="pdf", filename="same.pdf")
    inbound_message_store(raw=other.as_bytes())
    assert ActivityMimeAttachment.objects.count() == 2
    # the same bytes, kept once (beside the two raw messages, each kept once)
    assert AttachmentBlob.objects.filter(attachments__isnull=False).distinct().count() == 1
    assert InboundMessage.objects.count() == 2


def test_unreadable_addresses_and_parts_are_named_in_notes_not_dropped_in_silence(
    org, team_queue, settings
):
    settings.CRM_INBOUND_MAX_PARTS = 2
    org.max_attachment_bytes = 1000
    org.save()
    msg = message(Cc="not an address, dora@customers.example.org")
    msg.add_attachment(b"x" * 2000, maintype="application", subtype="zip", filename="big.zip")
    for i in range(3):
        msg.add_attachment(
            f"file {i}".encode(), maintype="text", subtype="csv", filename=f"{i}.csv"
        )

    email = inbound_message_store(raw=msg.as_bytes())

    assert list(email.parties.filter(role="cc").values_list("address", flat=True)) == [
        "dora@customers.example.org"
    ]
    assert list(email.attachments.values_list("filename", flat=True)) == ["0.csv", "1.csv"]
    assert notes(email) == [
        'an unreadable Cc address was left out: "not an address"',
        "the Cc header was not read in full (1 addresses taken): not an address, "
        "dora@customers.example.org",
        "the part 'big.zip' (2,000 bytes) is over the attachment limit of 1,000 bytes and "
        "was not stored",
        "1 more parts were not stored: a message keeps at most 2 (CRM_INBOUND_MAX_PARTS)",
    ]


def test_broken_mime_and_8bit_headers_are_read_as_far_as_they_go(org, team_queue):
    raw = (
        b"From: J\xf6rg <jorg@customers.example.org>\r\n"
        b"To: support@example.com\r\n"
        b"Subject: Gr\xfc\xdfe \r\n"
        b"Message-ID: <broken@customers.example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
        b"--never-closed\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n"
        b"Hallo \xe9\r\n"
    )
    email = inbound_message_store(raw=raw)
    assert email.from_address == "jorg@customers.example.org"
    assert email.subject.startswith("Gr")
    assert "Hallo" in email.body_text
    assert email.parties.get(role="to").queue is not None


def test_a_message_without_a_sender_is_refused_with_the_reason_and_its_raw_kept(org):
    msg = message()
    del msg["From"]
    with pytest.raises(ValidationFailed, match="no readable From address") as refused:
        inbound_message_store(raw=msg.as_bytes())
    assert refused.value.code == "no_sender"
    assert not Email.objects.exists() and not ActivityMimeAttachment.objects.exists()
    kept = InboundMessage.objects.get()
    assert (kept.status, kept.code, kept.email) == ("refused", "no_sender", None)
    assert "no readable From address" in kept.reason
    assert kept.blob.size == kept.size == len(msg.as_bytes())


def test_a_message_over_the_size_limit_is_refused_naming_it(org, settings):
    settings.CRM_INBOUND_MAX_BYTES = 500
    msg = message()
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="offer.pdf")
    with pytest.raises(ValidationFailed, match="over the limit of 500 bytes") as refused:
        inbound_message_store(raw=msg.as_bytes())
    assert refused.value.code == "message_too_large"
    assert not Email.objects.exists()


def test_an_address_the_parser_cannot_place_is_named_in_a_note(org, team_queue):
    email = inbound_message_store(raw=message(Cc="Ann <ann@x.org> <bea@x.org>").as_bytes())
    assert [n for n in notes(email) if n.startswith("the Cc header was not read in full")] == [
        "the Cc header was not read in full (1 addresses taken): Ann <ann@x.org> <bea@x.org>"
    ]


def test_a_message_of_ten_thousand_parts_keeps_the_first_ones_and_says_so(
    org, team_queue, eager_celery, django_capture_on_commit_callbacks
):
    boundary = "b0undary"
    parts = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: text/csv\r\n"
        b'Content-Disposition: attachment; filename="%d.csv"\r\n\r\nrow %d\r\n' % (i, i)
        for i in range(10_000)
    )
    raw = (
        b"From: ann@customers.example.org\r\nTo: support@example.com\r\n"
        b"Message-ID: <many@customers.example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="'
        + boundary.encode()
        + b'"\r\n\r\n'
        + parts
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    # Kept and answered at once; a worker reads it (CRM_INBOUND_INLINE_READ_PARTS).
    with django_capture_on_commit_callbacks(execute=True):
        kept = inbound_message_receive(raw=raw, route="smtp")
        assert kept.status == "kept" and not Email.objects.exists()
    kept.refresh_from_db()
    assert kept.status == "stored"
    email = kept.email
    assert email.attachments.count() == 200
    assert notes(email)[-1] == (
        "9,800 more parts were not stored: a message keeps at most 200 (CRM_INBOUND_MAX_PARTS)"
    )
