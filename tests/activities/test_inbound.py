"""Recording received mail: routing, threading, one email per Message-ID, refusals."""

from __future__ import annotations

import pytest

from activities.errors import Conflict, InvalidAddress, InvalidHeader
from activities.models import Direction, Email, EmailEvent, EmailStatus, PartyRole
from activities.replies import reply_fields
from activities.selectors import emails_visible_to
from activities.services.emails import email_create, email_send
from activities.services.inbound import email_record_received, inbound_message_receive
from crm.models import EmailApproval
from tests.factories import ContactFactory, QueueFactory

pytestmark = pytest.mark.django_db


def test_a_received_email_is_routed_to_the_queue_and_regards_the_contact(org, teammate, team_queue):
    ann = ContactFactory(first_name="Ann", last_name="Lee", email="ann@customers.example.org")
    email = email_record_received(
        from_address="Ann Lee <ANN@customers.example.org>",
        to=["Support <Support@Example.com>"],
        cc=["someone@else.example"],
        subject="Two more seats",
        body_html="<p>Hello</p>",
        message_id="<m1@customers.example.org>",
    )
    email.refresh_from_db()
    assert (email.direction, email.status, email.state) == ("incoming", "received", "completed")
    assert email.received_at is not None and email.sender is None
    assert (email.from_address, email.from_name) == ("ANN@customers.example.org", "Ann Lee")
    assert email.regarding == ann
    parties = {(p.role, p.address): p for p in email.parties.all()}
    assert parties[("from", "ANN@customers.example.org")].contact == ann
    assert parties[("to", "Support@Example.com")].queue == team_queue
    assert parties[("cc", "someone@else.example")].queue is None
    assert list(email.events.values_list("kind", "to_status", "actor_label")) == [
        ("status", "received", "inbound")
    ]
    assert email in emails_visible_to(teammate)  # a member of the queue sees it


def test_the_same_message_id_twice_is_one_email(org, team_queue):
    first = email_record_received(
        from_address="ann@example.org", to=["support@example.com"], message_id="<m2@x>"
    )
    again = email_record_received(
        from_address="ann@example.org", to=["support@example.com"], message_id="<m2@x>"
    )
    assert again.pk == first.pk
    assert Email.objects.count() == 1 and EmailEvent.objects.count() == 1


def test_a_reply_is_threaded_by_tracking_token_or_in_reply_to(org, owner):
    ann = ContactFactory(email="ann@customers.example.org")
    draft = email_create(actor=owner, to=[ann], regarding=ann, subject="Offer")
    sent = email_send(email=draft, actor=owner)
    by_token = email_record_received(
        from_address="someone@else.example",
        to=["alice@staff.example.com"],
        subject=f"Re: Offer {sent.tracking_token}",
    )
    by_header = email_record_received(
        from_address="someone@else.example",
        to=["alice@staff.example.com"],
        subject="Re: Offer",
        in_reply_to=sent.message_id,
    )
    for reply in (by_token, by_header):
        assert reply.parent_id == sent.pk
        assert reply.regarding == ann  # the thread's record, not the unknown sender's
        assert reply.parties.get(role="to").user == owner


def test_mail_to_an_unapproved_queue_is_kept_but_not_routed(org, teammate):
    sales = QueueFactory(
        email="sales@example.com",
        email_router_access_approval=EmailApproval.PENDING,
        members=[teammate],
    )
    email = email_record_received(from_address="ann@example.org", to=["sales@example.com"])
    assert email.parties.get(role="to").queue is None
    assert email not in emails_visible_to(teammate)
    note = email.events.get(kind="note")
    assert "not routed to sales@example.com" in note.reason and "not approved" in note.reason
    sales.refresh_from_db()
    assert sales.email_router_access_approval == EmailApproval.PENDING


def test_bad_input_is_refused_and_nothing_is_written(org, owner):
    with pytest.raises(InvalidAddress):
        email_record_received(from_address="not an address", to=["support@example.com"])
    with pytest.raises(InvalidHeader):
        email_record_received(
            from_address="ann@example.org", to=["a@example.org"], subject="Hi\r\nBcc: x@evil"
        )
    outgoing = email_send(
        email=email_create(actor=owner, to=["ann@example.org"], subject="Loop"), actor=owner
    )
    with pytest.raises(Conflict):
        email_record_received(
            from_address="ann@example.org", to=["a@example.org"], message_id=outgoing.message_id
        )
    assert Email.objects.filter(direction=Direction.INCOMING).count() == 0
    assert Email.objects.get().status == EmailStatus.PENDING_SEND


def test_a_received_reply_to_is_kept_routes_nothing_and_takes_the_reply(org, owner, team_queue):
    raw = (
        b"From: Ann Lee <ann@customers.example.org>\r\n"
        b"To: Support <support@example.com>\r\n"
        b"Reply-To: Ann's desk <desk@customers.example.org>, " + team_queue.email.encode() + b"\r\n"
        b"Subject: Seats\r\nMessage-ID: <rt1@customers.example.org>\r\n\r\nTwo more.\r\n"
    )
    inbound = inbound_message_receive(raw=raw, route="smtp")
    email = inbound.email
    assert email is not None
    reply_to = list(email.parties.filter(role=PartyRole.REPLY_TO).order_by("position"))
    assert [(p.name, p.address, p.queue_id) for p in reply_to] == [
        ("Ann's desk", "desk@customers.example.org", None),
        ("", team_queue.email, None),  # a queue's address in Reply-To routes nothing
    ]
    # A reply goes to the Reply-To addresses, not to From (the user's queue left out).
    fields = reply_fields(email, owner, reply_all=False)
    assert fields["to"] == "Ann's desk <desk@customers.example.org>"
