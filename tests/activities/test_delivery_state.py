"""The delivery state of each recipient, from send to the next send: the provider's
message id kept per recipient at send (anymail's status; our Message-ID over SMTP), a
hard bounce posted by the provider shown in the API and on the email page, and the next
send to the address refused in words (API, compose); manual entries keep only bulk
mail away."""

from __future__ import annotations

import json

import pytest
from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.message import AnymailRecipientStatus
from django.core import mail
from django.test import Client
from django.urls import reverse

from activities.models import DeliveryEvent, Email, EmailStatus, SuppressedAddress
from activities.services.delivery import email_deliver
from activities.services.delivery_events import delivery_event_record
from activities.services.emails import email_create, email_send
from tests.activities.admin.test_admin import email_form, messages_of
from tests.activities.test_delivery_events import SECRET, post, postmark
from tests.api import client_for, count_queries
from tests.factories import QueueFactory, sent_email

ANN = "ann@customers.example.org"
BO = "bo@customers.example.org"
EMAILS = "/api/v1/emails/"


class PerRecipientProvider(AnymailTestBackend):
    """anymail's test backend answering a message id per recipient, as Postmark does;
    a recipient whose address starts with ``rejected`` is refused."""

    def post_to_esp(self, payload, message):
        message.anymail_test_response = {
            "recipient_status": {
                address: AnymailRecipientStatus(
                    message_id=f"pm-{address}",
                    status="rejected" if address.startswith("rejected") else "queued",
                )
                for address in payload.recipient_emails
            }
        }
        return super().post_to_esp(payload, message)


@pytest.fixture
def provider(settings):
    settings.EMAIL_BACKEND = f"{__name__}.PerRecipientProvider"
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    mail.outbox = []
    return mail.outbox


def delivered(owner, to):
    email = email_send(
        email=email_create(actor=owner, to=to, subject="Renewal", body_text="hi"), actor=owner
    )
    assert email_deliver(email_id=email.pk, owner="w").outcome == "sent"
    return email


@pytest.mark.django_db
def test_each_recipient_keeps_the_providers_message_id_and_status_at_send(org, owner, provider):
    email = delivered(owner, [ANN, "rejected@customers.example.org"])
    states = {
        p.address: (p.provider_message_id, p.delivery_state, p.delivery_updated_at is not None)
        for p in email.parties.exclude(role="from")
    }
    assert states == {
        ANN: (f"pm-{ANN}", "queued", True),
        "rejected@customers.example.org": ("pm-rejected@customers.example.org", "rejected", True),
    }
    assert email.parties.get(role="from").provider_message_id == ""


@pytest.mark.django_db
def test_over_smtp_every_recipient_keeps_our_message_id(org, owner, smtp_settings):
    email = email_send(
        email=email_create(actor=owner, to=[ANN], cc=[BO], subject="Hi", body_text="hi"),
        actor=owner,
    )
    assert email_deliver(email_id=email.pk, owner="w").outcome == "sent"
    email.refresh_from_db()
    rows = set(
        email.parties.exclude(role="from").values_list("provider_message_id", "delivery_state")
    )
    assert rows == {(email.message_id, "sent")}


@pytest.mark.django_db(transaction=True)
def test_a_hard_bounce_shows_everywhere_and_the_next_send_to_the_address_is_refused(
    org, owner, provider, live_server
):
    email = delivered(owner, [ANN, BO])
    body = postmark("hard", f"pm-{ANN}", ANN)
    assert post(f"{live_server.url}/anymail/postmark/tracking/", body)[0] == 200
    client = client_for(owner)

    detail = client.get(f"{EMAILS}{email.pk}/").json()
    states = {p["address"]: p["delivery_state"] for p in detail["to"]}
    assert states == {ANN: "bounced", BO: "queued"}
    assert detail["to"][0]["delivery_updated_at"] == "2026-12-03T10:00:00Z"

    events = client.get(f"{EMAILS}{email.pk}/events/").json()["results"]
    delivery = [e for e in events if e["kind"] == "delivery"]
    assert len(delivery) == 1 and delivery[0]["data"]["event_type"] == "bounced"
    assert delivery[0]["data"]["recipient"] == ANN and "unknown user" in delivery[0]["reason"]

    listed = client.get(EMAILS, {"delivery": "bounced"}).json()["results"]
    assert [e["id"] for e in listed] == [email.pk]
    assert client.get(EMAILS, {"delivery": "complained"}).json()["count"] == 0

    page = Client()
    page.force_login(owner)
    html = page.get(f"/mail/{email.pk}/").content.decode()
    assert 'badge-delivery-bounced">Bounced<' in html and "unknown user" in html

    draft = client.post(EMAILS, {"to": [f"Ann <{ANN.upper()}>"], "subject": "Again"}).json()
    answer = client.post(f"{EMAILS}{draft['id']}/send/", {})
    assert answer.status_code == 400
    refusal = answer.json()
    assert refusal["code"] == "recipient_suppressed"
    assert ANN.upper() in refusal["detail"] and "hard bounce" in refusal["detail"]
    assert Email.objects.get(pk=draft["id"]).status == EmailStatus.DRAFT
    assert len(provider) == 1  # nothing else went out


@pytest.mark.django_db
def test_the_compose_page_refuses_a_complained_address_next_to_its_field(org, owner, team_queue):
    SuppressedAddress.objects.create(address=ANN, reason="complaint", note="spam report")
    page = Client()
    page.force_login(owner)
    fields = {
        "sender": f"queue:{team_queue.pk}",
        "to": ANN,
        "cc": "",
        "bcc": "",
        "subject": "Hi",
        "body_text": "x",
    }
    fields |= {"body_html": "", "priority": "normal", "regarding_type": "", "regarding_id": ""}
    response = page.post("/mail/new/", {**fields, "template": "", "action": "send"})
    assert response.status_code == 400
    to = next(f for f in response.context["recipient_fields"] if f["field"].name == "to")
    assert f"{ANN} is on the suppression list (spam complaint: spam report)" in to["error"]
    assert "Not sent:" in response.content.decode()
    assert Email.objects.get().status == EmailStatus.DRAFT


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["manual", "unsubscribed"])
def test_a_manual_or_unsubscribed_entry_keeps_only_bulk_mail_away(org, owner, reason):
    SuppressedAddress.objects.create(address=ANN, reason=reason)
    email = email_create(actor=owner, to=[ANN], subject="Your question", body_text="answer")
    assert email_send(email=email, actor=owner).status == EmailStatus.PENDING_SEND


@pytest.mark.django_db
def test_a_soft_bounce_suppresses_nothing_and_the_next_send_goes(org, owner):
    email = sent_email(to=[ANN])
    delivery_event_record(
        provider="Mailgun",
        event_type="deferred",
        message_id=email.message_id,
        recipient=ANN,
        event_id="soft-1",
    )
    delivery_event_record(
        provider="dsn",
        event_type="bounced",
        message_id=email.message_id,
        recipient=ANN,
        event_id="soft-2",
        permanent=False,
    )
    assert email.parties.get().delivery_state == "deferred"
    assert not SuppressedAddress.objects.exists()
    assert DeliveryEvent.objects.get(event_id="soft-2").permanent is False
    again = email_create(actor=owner, to=[ANN], subject="Retry", body_text="x")
    assert email_send(email=again, actor=owner).status == EmailStatus.PENDING_SEND


@pytest.mark.django_db
def test_the_delivery_filter_costs_the_same_queries_and_refuses_unknown_states(org, owner):
    for _ in range(3):
        email = sent_email(to=[ANN, BO], sender_user=owner)
        delivery_event_record(
            provider="x", event_type="opened", message_id=email.message_id, recipient=BO
        )
    client = client_for(owner)
    _, plain = count_queries(lambda: client.get(EMAILS))
    answer, filtered = count_queries(lambda: client.get(EMAILS, {"delivery": "opened"}))
    assert answer.json()["count"] == 3 and filtered == plain
    bad = client.get(EMAILS, {"delivery": "lost"})
    assert bad.status_code == 400 and "delivery" in json.dumps(bad.json())


@pytest.mark.django_db
def test_the_admin_refuses_the_send_in_words_and_lists_the_delivery_events(
    org, superuser_client, django_capture_on_commit_callbacks
):
    email = sent_email(to=[ANN])
    delivery_event_record(
        provider="Postmark",
        event_type="bounced",
        message_id=email.message_id,
        recipient=ANN,
        reject_reason="bounced",
        event_id="hard-1",
        description="unknown user",
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = superuser_client.post(
            reverse("admin:activities_email_add"),
            email_form(sender_queue=QueueFactory(), address=ANN),
            follow=True,
        )
    assert callbacks == []
    assert Email.objects.get(subject="Hi").status == EmailStatus.DRAFT
    assert any(f"{ANN} is on the suppression list (hard bounce" in m for m in messages_of(response))
    page = superuser_client.get(reverse("admin:activities_deliveryevent_changelist"))
    assert page.status_code == 200 and ANN in page.content.decode()
