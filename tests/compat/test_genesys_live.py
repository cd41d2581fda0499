"""Genesys' Send over real HTTP: a live server, the client's Bearer token, mail at a real
SMTP server, and the StatusChange notifications at a real receiver on loopback."""

from __future__ import annotations

import pytest
import requests
from rest_framework.authtoken.models import Token

from activities.models import Email, EmailStatus, WebhookEvent, WebhookFormat
from activities.services.emails import email_create
from tests.factories import WebhookEndpointFactory
from tests.webhook_receiver import Receiver


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def send(live_server, user, email: Email, body: dict) -> requests.Response:
    token, _ = Token.objects.get_or_create(user=user)
    return requests.post(
        f"{live_server.url}/api/v2/me/emails/{email.pk:016x}",
        json=body,
        headers={"Authorization": f"Bearer {token.key}"},
        timeout=10,
    )


def test_a_send_over_http_ends_as_mail_and_genesys_notifications(
    live_server, org, owner, team_queue, smtp_settings, eager_celery, receiver
):
    endpoint = WebhookEndpointFactory(url=receiver.url("/genesys"), format=WebhookFormat.GENESYS)
    email = email_create(actor=owner)
    body = {
        "operationName": "Send",
        "queueName": "Support",
        "email": {
            "body": "<p>Feels like good.</p>",
            "to": ["ann@example.com", "bruce.one@witcher.example"],
            "cc": ["alan.key@bestbuy.example"],
            "bcc": ["brad.johnson@bestbuy.example"],
            "from": "support@example.com",
            "subject": "HelloEmail",
        },
    }

    response = send(live_server, owner, email, body)

    assert response.status_code == 200, response.text
    assert response.json() == {"statusCode": 0}
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    (mail,) = smtp_settings.messages
    assert sorted(mail.rcpt_tos) == [
        "alan.key@bestbuy.example",
        "ann@example.com",
        "brad.johnson@bestbuy.example",
        "bruce.one@witcher.example",
    ]
    message = mail.message
    assert message["From"].addresses[0].addr_spec == "support@example.com"
    assert message["Subject"] == email.subject
    assert message["Bcc"] is None
    assert "Feels like good." in message.get_body(("html",)).get_content()

    notifications = [r.verified(endpoint.secret) for r in receiver.received("/genesys")]
    assert [(n["email"]["previousCrmStatus"], n["email"]["crmStatus"]) for n in notifications] == [
        ("draft", "pending_send"),
        ("pending_send", "sending"),
        ("sending", "sent"),
    ]
    for notification in notifications:
        assert notification["notificationType"] == "StatusChange"
        assert notification["messageType"] == "EmailStateChangeMessage"
        assert notification["email"]["id"] == f"{email.pk:016x}"
        assert notification["email"]["uri"] == f"/api/v2/me/emails/{email.pk:016x}"
        assert notification["email"]["state"] == "Completed"
        assert notification["email"]["from"] == "support@example.com"
        assert notification["email"]["to"] == ["ann@example.com", "bruce.one@witcher.example"]
        assert notification["email"]["cc"] == ["alan.key@bestbuy.example"]
        assert notification["email"]["subject"] == email.subject
    assert notifications[-1]["email"]["capabilities"] == ["Reply", "ReplyAll"]
    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {"delivered"}


def test_a_refused_send_over_http_answers_in_genesys_words_and_sends_nothing(
    live_server, org, owner, team_queue, smtp_settings, eager_celery, receiver
):
    WebhookEndpointFactory(url=receiver.url("/refused"), format=WebhookFormat.GENESYS)
    email = email_create(actor=owner)
    body = {
        "operationName": "Send",
        "queueName": "Support",
        "email": {"subject": "Hi", "to": [{"email": "ann@example.com"}, {"name": "Bob"}]},
    }

    response = send(live_server, owner, email, body)

    assert response.status_code == 400
    error = response.json()
    assert error["statusCode"] == 10
    assert error["code"] == "invalid_address"
    assert "email.to[1] has no address" in error["message"]
    assert error["statusMessage"] == error["message"]
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT
    assert smtp_settings.messages == []
    assert receiver.received("/refused") == []
