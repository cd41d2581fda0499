"""Issue 12's "Done when" on the SMTP path: a bounce of mail sent from here, arriving by a
real route (the SMTP listener at the VERP address, a bounce mailbox polled over IMAP),
is kept, recorded as a ``bounced`` delivery event on the email it answers, suppresses
the address, and the next send to it is refused; it is no received email."""

from __future__ import annotations

import smtplib

import pytest

from activities.errors import RecipientSuppressed
from activities.inbound_smtp import inbound_controller
from activities.links import bounce_address
from activities.models import (
    DeliveryEvent,
    Direction,
    Email,
    EmailEvent,
    InboundMessage,
    SuppressedAddress,
)
from activities.services.delivery import email_deliver
from activities.services.emails import email_create, email_send
from activities.services.mailboxes import mailbox_poll
from tests.factories import PolledMailboxFactory, dsn_bounce
from tests.smtp import free_port

pytestmark = pytest.mark.django_db(transaction=True)

ANN = "ann@customers.example.org"


@pytest.fixture
def verp(settings):
    settings.CRM_BOUNCE_DOMAIN = "bounces.example.com"
    settings.CRM_BOUNCE_LOCALPART = "bounces"


def sent_to_ann(owner, smtp_settings) -> Email:
    email = email_send(
        email=email_create(actor=owner, to=[ANN], subject="Renewal", body_text="hi"),
        actor=owner,
    )
    assert email_deliver(email_id=email.pk, owner="w").outcome == "sent"
    email.refresh_from_db()
    return email


def assert_bounced_and_suppressed(email: Email, owner) -> None:
    (kept,) = InboundMessage.objects.all()
    assert (kept.status, kept.email) == ("bounce", None)
    assert f"email #{email.pk}" in kept.reason
    (event,) = DeliveryEvent.objects.all()
    assert (event.email, event.event_type, event.recipient) == (email, "bounced", ANN)
    party = email.parties.get(role="to")
    assert party.delivery_state == "bounced"
    assert EmailEvent.objects.filter(email=email, kind="delivery").exists()
    assert SuppressedAddress.objects.get(address=ANN).reason == "bounce"
    # No received email: only the one sent.
    assert not Email.objects.filter(direction=Direction.INCOMING).exists()
    with pytest.raises(RecipientSuppressed, match=ANN):
        email_send(
            email=email_create(actor=owner, to=[ANN], subject="Again", body_text="hi"),
            actor=owner,
        )


def test_a_dsn_to_the_verp_address_over_the_smtp_listener_bounces_the_email(
    org, owner, team_queue, verp, smtp_settings
):
    email = sent_to_ann(owner, smtp_settings)
    (outgoing,) = smtp_settings.messages
    assert outgoing.mail_from == bounce_address(email.pk)
    port = free_port()
    controller = inbound_controller(hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            # The receiving server's bounce: null sender, to the envelope sender.
            refused = client.sendmail(
                "",
                [outgoing.mail_from],
                dsn_bounce(message_id=email.message_id, recipient=ANN, to=outgoing.mail_from),
            )
            assert refused == {}
            # An address at the bounce domain that names no email is no mailbox here.
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail(
                    "", ["bounces+1-forged@bounces.example.com"], b"Subject: x\r\n\r\nx"
                )
    finally:
        controller.stop()
    assert_bounced_and_suppressed(email, owner)


def test_a_dsn_in_a_polled_bounce_mailbox_bounces_the_email(
    org, owner, team_queue, smtp_settings, dovecot
):
    """No VERP: the DSN names the email by the original's Message-ID."""
    email = sent_to_ann(owner, smtp_settings)
    dovecot.append("support", dsn_bounce(message_id=email.message_id, recipient=ANN))
    mailbox = PolledMailboxFactory(queue=team_queue, port=dovecot.ports["imap"])

    result = mailbox_poll(mailbox=mailbox)

    assert (result.stored, result.refused, result.error) == (1, 0, "")
    assert InboundMessage.objects.get().route == "imap"
    assert_bounced_and_suppressed(email, owner)
    # Polled again, and the same DSN delivered a second time: nothing more.
    dovecot.append("support", dsn_bounce(message_id=email.message_id, recipient=ANN))
    assert mailbox_poll(mailbox=mailbox).stored == 0
    assert DeliveryEvent.objects.count() == 1
