"""Bounce messages on the SMTP path: RFC 3464 DSNs and the common non-standard formats
(Exim, qmail) recognised by flufl.bounce, tied to their email by VERP (the envelope
sender the message went out with over a real SMTP server) or by the original
Message-ID; a permanent failure suppresses like a hard bounce, a delay is deferred,
a DSN delivered twice adds nothing, and mail that is no bounce is left alone."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from activities.links import bounce_address, email_id_of_bounce_address
from activities.models import DeliveryEvent, SuppressedAddress
from activities.services.bounces import bounce_message_process
from activities.services.delivery import email_deliver
from activities.services.emails import email_create, email_send
from tests.factories import dsn_bounce, exim_bounce, qmail_bounce, sent_email

pytestmark = pytest.mark.django_db

ANN = "ann@customers.example.org"
BO = "bo@customers.example.org"


@pytest.fixture
def verp(settings):
    settings.CRM_BOUNCE_DOMAIN = "bounces.example.com"
    settings.CRM_BOUNCE_LOCALPART = "bounces"
    return settings


@pytest.mark.parametrize(
    "bounce",
    [
        lambda mid: dsn_bounce(message_id=mid, recipient=ANN),
        lambda mid: dsn_bounce(message_id=mid, recipient=ANN, headers_only=True),
        lambda mid: exim_bounce(message_id=mid, recipient=ANN),
        lambda mid: qmail_bounce(message_id=mid, recipient=ANN),
    ],
    ids=["dsn", "dsn-headers-only", "exim", "qmail"],
)
def test_a_bounce_finds_its_email_by_the_original_message_id_and_suppresses(org, bounce):
    email = sent_email(to=[ANN, BO])
    events = bounce_message_process(raw=bounce(email.message_id))
    assert events is not None and len(events) == 1
    event = events[0]
    assert (event.email, event.recipient, event.event_type) == (email, ANN, "bounced")
    assert event.permanent is True and event.provider == "dsn"
    states = dict(email.parties.values_list("address", "delivery_state"))
    assert states == {ANN: "bounced", BO: "sent"}
    entry = SuppressedAddress.objects.get()
    assert (entry.address, entry.reason) == (ANN, "bounce")
    assert f"email #{email.pk}" in entry.note
    assert email.events.filter(kind="delivery").count() == 1


def test_a_dsn_says_what_the_receiving_server_answered(org):
    email = sent_email(to=[ANN])
    (event,) = bounce_message_process(raw=dsn_bounce(message_id=email.message_id, recipient=ANN))
    assert event.mta_response == "5.1.1" and "User unknown" in event.description
    assert event.raw["dsn_message_id"] == "<20261203100501.9F2B3C@mx.customers.example.org>"
    assert event.occurred_at.isoformat() == "2026-12-03T10:05:01+00:00"


def test_a_dsn_delivered_twice_adds_nothing(org):
    email = sent_email(to=[ANN])
    raw = dsn_bounce(message_id=email.message_id, recipient=ANN)
    assert len(bounce_message_process(raw=raw) or []) == 1
    assert bounce_message_process(raw=raw) == []
    assert DeliveryEvent.objects.count() == 1 and email.events.filter(kind="delivery").count() == 1


def test_a_delayed_dsn_is_deferred_and_suppresses_nothing(org):
    email = sent_email(to=[ANN])
    raw = dsn_bounce(
        message_id=email.message_id,
        recipient=ANN,
        action="delayed",
        status="4.4.1",
        diagnostic="smtp; 451 4.4.1 Connection timed out",
    )
    (event,) = bounce_message_process(raw=raw)
    assert event.event_type == "deferred"
    assert email.parties.get().delivery_state == "deferred"
    assert not SuppressedAddress.objects.exists()


def test_a_bounce_of_a_message_not_ours_is_handled_and_writes_nothing(org):
    sent_email(to=[ANN])
    raw = dsn_bounce(message_id="<elsewhere@other.example>", recipient=ANN)
    assert bounce_message_process(raw=raw) == []
    assert not DeliveryEvent.objects.exists() and not SuppressedAddress.objects.exists()


def test_mail_that_is_no_bounce_is_left_to_the_inbound_store(org):
    email = sent_email(to=[ANN])
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = ANN, "alice@example.com", "Re: Renewal"
    reply["In-Reply-To"] = email.message_id
    reply.set_content("Thanks, I will renew.")
    assert bounce_message_process(raw=reply.as_bytes()) is None
    assert not DeliveryEvent.objects.exists()


def test_the_bounce_address_is_signed_and_names_its_email(verp):
    address = bounce_address(42)
    assert address.startswith("bounces+42-") and address.endswith("@bounces.example.com")
    assert email_id_of_bounce_address(address.upper()) == 42
    forged = address.replace("+42-", "+43-")
    for other in (forged, "bounces+42@bounces.example.com", address.replace(".com", ".org")):
        assert email_id_of_bounce_address(other) is None


def test_without_a_bounce_domain_there_is_no_verp(settings):
    settings.CRM_BOUNCE_DOMAIN = ""
    assert bounce_address(42) == "" and email_id_of_bounce_address("bounces+42-x@y") is None


def test_mail_goes_out_from_its_bounce_address_and_a_bounce_to_it_finds_the_email(
    org, owner, verp, smtp_settings
):
    email = email_send(
        email=email_create(actor=owner, to=[ANN], subject="Renewal", body_text="hi"),
        actor=owner,
    )
    assert email_deliver(email_id=email.pk, owner="w").outcome == "sent"
    (received,) = smtp_settings.messages
    assert received.mail_from == bounce_address(email.pk)
    assert f"<{owner.email}>" in received.message["From"]  # the header stays the sender's
    # A non-standard bounce that quotes no Message-ID: VERP alone names the email.
    raw = exim_bounce(message_id="(none)", recipient=ANN, to=received.mail_from)
    (event,) = bounce_message_process(raw=raw)
    assert event.email == email and event.event_type == "bounced"
    # Delivered to the bounce address with no header naming it: the envelope does.
    raw = qmail_bounce(message_id="(none)", recipient=ANN, to="postmaster@example.com")
    (again,) = bounce_message_process(raw=raw, envelope_recipients=[received.mail_from])
    assert again.email == email


def test_a_message_of_too_many_parts_is_not_read_as_a_bounce(org, settings):
    settings.CRM_INBOUND_MAX_PARTS = 3
    email = sent_email(to=[ANN])
    assert (
        bounce_message_process(raw=dsn_bounce(message_id=email.message_id, recipient=ANN)) is None
    )
    assert not DeliveryEvent.objects.exists()
