"""DeliverIncomingEmail: a received message built from the parameters, onto the inbound
route every other way in uses."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy

import pytest

from activities.models import (
    DeliveryEvent,
    Direction,
    Email,
    EmailParty,
    EmailStatus,
    InboundMessage,
    InboundStatus,
    PartyRole,
)
from compat.dynamics.ids import guid_of
from tests.api import client_for
from tests.factories import ContactFactory, EmailFactory, QueueFactory, qmail_bounce, sent_email

pytestmark = pytest.mark.django_db

URL = "/api/data/v9.2/emails/Microsoft.Dynamics.CRM.DeliverIncomingEmail"
PDF = b"%PDF-1.4 terms\n"


def params(**more) -> dict:
    return {
        "MessageId": "<reply-1@customers.example.org>",
        "Subject": "Question about my order",
        "From": "Ann Lee <ann@customers.example.org>",
        "To": "Support <support@example.com>",
        "Cc": "",
        "Bcc": "",
        "ReceivedOn": "2026-11-30T09:15:00Z",
        "SubmittedBy": "router@example.com",
        "Importance": "normal",
        "Body": "<p>Hello, where is <b>my order</b>?</p>",
        "Attachments": [],
        **more,
    }


def test_staff_deliver_an_incoming_email_to_a_queue_with_its_attachment(staff, team_queue):
    ann = ContactFactory(first_name="Ann", last_name="Lee", email="ann@customers.example.org")
    body = params(
        Cc='bob@staff.example.com; "Øye, Carl" <carl@partners.example>',
        Bcc="alice@staff.example.com",
        Attachments=[
            {
                "@odata.type": "Microsoft.Dynamics.CRM.attachment",
                "filename": "terms.pdf",
                "mimetype": "application/pdf",
                "body": base64.b64encode(PDF).decode(),
            }
        ],
    )
    response = client_for(staff).post(URL, body, format="json")
    assert response.status_code == 200, response.content
    email = Email.objects.get()
    answer = response.json()
    assert answer["activityid"] == answer["EmailId"] == guid_of(email.pk)
    assert answer["@odata.context"].endswith("/$metadata#emails/$entity")
    assert (answer["statecode"], answer["statuscode"], answer["directioncode"]) == (1, 4, False)

    assert (email.direction, email.status) == (Direction.INCOMING, EmailStatus.RECEIVED)
    assert email.subject == "Question about my order"
    assert email.message_id == "<reply-1@customers.example.org>"
    # ReceivedOn is the message's Date; the email is received when it was kept here.
    assert email.received_at == InboundMessage.objects.get().received_at
    assert "where is" in email.body_text and "<b>my order</b>" in email.body_html
    assert (email.regarding_type.model, email.regarding_id) == ("contact", ann.pk)
    parties = {(p.role, p.address): p for p in EmailParty.objects.filter(email=email)}
    assert set(parties) == {
        (PartyRole.FROM, "ann@customers.example.org"),
        (PartyRole.TO, "support@example.com"),
        (PartyRole.CC, "bob@staff.example.com"),
        (PartyRole.CC, "carl@partners.example"),
        (PartyRole.BCC, "alice@staff.example.com"),
    }
    assert parties[(PartyRole.TO, "support@example.com")].queue == team_queue
    assert parties[(PartyRole.CC, "carl@partners.example")].name == "Øye, Carl"
    [attachment] = email.attachments.all()
    assert (attachment.filename, attachment.mime_type) == ("terms.pdf", "application/pdf")
    assert attachment.blob.size == len(PDF)
    kept = InboundMessage.objects.get()
    assert (kept.route, kept.status, kept.email) == (
        "dynamics:DeliverIncomingEmail", InboundStatus.STORED, email,
    )  # fmt: skip


def test_the_same_message_id_delivered_twice_is_one_email(staff, team_queue):
    client = client_for(staff)
    first = client.post(URL, params(), format="json")
    again = client.post(
        "/api/data/v9.2/DeliverIncomingEmail", params(Subject="Other"), format="json"
    )
    assert first.status_code == again.status_code == 200
    assert first.json()["EmailId"] == again.json()["EmailId"]
    assert Email.objects.count() == 1 and InboundMessage.objects.count() == 1
    assert Email.objects.get().subject == "Question about my order"


def test_a_reply_is_threaded_to_the_email_whose_tracking_token_it_carries(staff, team_queue, org):
    original = EmailFactory(
        sender_user=None, sender_queue=team_queue, status=EmailStatus.SENT, state="completed",
        tracking_token="CRM:0001042", message_id="<orig-1@crm.test>",
    )  # fmt: skip
    response = client_for(staff).post(
        URL,
        params(Subject="RE: Your renewal CRM:0001042", MessageId="r-2@x.example"),
        format="json",
    )
    assert response.status_code == 200, response.content
    reply = Email.objects.get(direction=Direction.INCOMING)
    assert reply.parent == original
    assert reply.message_id == "<r-2@x.example>"


def test_mail_for_a_queue_whose_address_is_not_approved_is_kept_not_routed(staff, org):
    QueueFactory(
        name="Sales", email="sales@example.com", email_router_access_approval="pending_approval"
    )
    response = client_for(staff).post(URL, params(To="sales@example.com"), format="json")
    assert response.status_code == 202
    assert "not approved" in response.json()["error"]["message"]
    assert not Email.objects.exists()
    assert InboundMessage.objects.get().status == InboundStatus.BLOCKED


@pytest.mark.parametrize("who", ["owner", "outsider", "approver"])
def test_only_staff_may_deliver_incoming_email(request, who, team_queue):
    response = client_for(request.getfixturevalue(who)).post(URL, params(), format="json")
    assert response.status_code == 403
    assert "staff" in response.json()["error"]["message"]
    assert not InboundMessage.objects.exists() and not Email.objects.exists()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"To": "support@example.com; Ann Lee"}, "To recipient 2 ('Ann Lee') has no email address"),
        ({"Cc": "Placeholder"}, "Cc recipient 1"),
        ({"From": ""}, "From: at least one address"),
        ({"From": "a@x.example, b@x.example"}, "From: one address"),
        ({"To": ["support@example.com"]}, "To: expected a string"),
        ({"MessageId": None}, "MessageId"),
        ({"Subject": "Hi\r\nBcc: victim@example.com"}, "Subject: a line break"),
        ({"ReceivedOn": "yesterday"}, "ReceivedOn"),
        ({"Importance": "urgent"}, "Importance"),
        (
            {"Attachments": [{"filename": "a.txt", "mimetype": "text/plain", "body": "***"}]},
            "not base64",
        ),
        ({"Attachments": [{"filename": "a.txt", "mimetype": "text/plain"}]}, "body (base64)"),
        ({"Attachments": "x"}, "Attachments"),
        ({"Regarding": {}}, "'Regarding' is not a parameter of DeliverIncomingEmail"),
    ],
)
def test_a_parameter_that_cannot_make_a_message_is_a_400_naming_it(
    staff, team_queue, change, named
):
    response = client_for(staff).post(URL, params(**change), format="json")
    assert response.status_code == 400, response.content
    assert named in response.json()["error"]["message"]
    assert not InboundMessage.objects.exists() and not Email.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(staff):
    for body in ([], "x", 3):
        response = client_for(staff).post(URL, body, format="json")
        assert response.status_code == 400
        assert set(response.json()) == {"error"}


def test_a_message_over_the_inbound_size_limit_is_refused_and_nothing_kept(staff, settings):
    settings.CRM_INBOUND_MAX_BYTES = 2_000
    response = client_for(staff).post(URL, params(Body="x" * 5_000), format="json")
    assert response.status_code == 400
    assert "CRM_INBOUND_MAX_BYTES" in response.json()["error"]["message"]
    assert not InboundMessage.objects.exists()


def test_deeply_nested_json_is_a_400_not_a_500(staff):
    nested: list = []
    for _ in range(500):
        nested = [nested]
    response = client_for(staff).post(URL, params(ExtraProperties=nested), format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


def test_a_bounce_delivered_as_incoming_mail_is_a_delivery_event_not_an_email(staff, org):
    original = sent_email(to=["ann@customers.example.org"], message_id="<renewal-7@crm.test>")
    bounce = message_from_bytes(
        qmail_bounce(message_id="<renewal-7@crm.test>", recipient="ann@customers.example.org"),
        policy=policy.default,
    )
    response = client_for(staff).post(
        URL,
        params(
            MessageId=bounce["Message-ID"],
            From=bounce["From"],
            To=bounce["To"],
            Subject=bounce["Subject"],
            Body=bounce.get_content(),
        ),
        format="json",
    )
    assert response.status_code == 202, response.content
    assert "a bounce" in response.json()["error"]["message"]
    event = DeliveryEvent.objects.get()
    assert (event.email, event.recipient, event.event_type) == (
        original, "ann@customers.example.org", "bounced",
    )  # fmt: skip
    assert not Email.objects.filter(direction=Direction.INCOMING).exists()
    assert InboundMessage.objects.get().status == InboundStatus.BOUNCE


def test_a_message_of_many_parts_is_kept_for_a_worker_to_read(staff, team_queue, settings):
    settings.CRM_INBOUND_INLINE_READ_PARTS = 1
    attachment = {"filename": "a.txt", "mimetype": "text/plain", "body": "aGk="}
    response = client_for(staff).post(URL, params(Attachments=[attachment]), format="json")
    assert response.status_code == 202
    kept = InboundMessage.objects.get()
    assert f"inbound message #{kept.pk}" in response.json()["error"]["message"]
    assert kept.status == InboundStatus.KEPT and not Email.objects.exists()


@pytest.mark.parametrize("field", ["Body", "Subject", "MessageId"])
def test_nul_in_any_text_parameter_is_a_400(staff, team_queue, field):
    response = client_for(staff).post(URL, params(**{field: "Hello\x00there"}), format="json")
    assert response.status_code == 400
    assert not InboundMessage.objects.exists() and not Email.objects.exists()


@pytest.mark.parametrize(
    "received_on",
    ["0001-01-01T00:00:00", "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00Z", 20260101],
)
def test_an_extreme_or_impossible_received_on_is_never_a_500(staff, team_queue, received_on):
    response = client_for(staff).post(URL, params(ReceivedOn=received_on), format="json")
    assert response.status_code in (200, 400), response.content
