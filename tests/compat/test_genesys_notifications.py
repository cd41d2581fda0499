"""The genesys notification format against Genesys' EmailStateChangeMessage samples:
states they document, ids as the adapter takes them, addresses as strings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from activities.models import WebhookEventType, WebhookFormat
from activities.services.webhooks import webhook_payload

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
EMAIL = {
    "id": 26,
    "subject": "Renewal",
    "direction": "outgoing",
    "from_address": "support@example.com",
    "recipients": ["ann@example.com"],
    "cc": ["carl@example.com"],
    "message_id": "<m1@crm.localhost>",
}


def genesys(event_type: str, **data) -> dict:
    return webhook_payload(
        format=WebhookFormat.GENESYS, event_type=event_type, data={**EMAIL, **data}, at=AT
    )


@pytest.mark.parametrize(
    ("from_status", "to_status", "state", "capabilities"),
    [
        (None, "draft", "Composing", ["Send", "Cancel"]),
        ("draft", "pending_send", "Completed", ["Cancel"]),
        ("pending_send", "sending", "Completed", []),
        ("sending", "sent", "Completed", ["Reply", "ReplyAll"]),
        ("sending", "failed", "Composing", ["Send"]),
        ("draft", "canceled", "Completed", []),
    ],
)
def test_a_status_change_is_named_by_a_documented_state_with_our_status_beside_it(
    from_status, to_status, state, capabilities
):
    body = genesys(WebhookEventType.EMAIL_STATUS_CHANGED, **{"from": from_status, "to": to_status})
    assert (body["notificationType"], body["messageType"]) == (
        "StatusChange",
        "EmailStateChangeMessage",
    )
    email = body["email"]
    assert (email["state"], email["crmStatus"], email["capabilities"]) == (
        state,
        to_status,
        capabilities,
    )
    assert email.get("previousCrmStatus") == from_status
    assert email["id"] == "000000000000001a"
    assert email["uri"] == "/api/v2/me/emails/000000000000001a"
    assert (email["from"], email["to"], email["cc"]) == (
        "support@example.com",
        ["ann@example.com"],
        ["carl@example.com"],
    )


def test_inbound_mail_is_an_invited_email():
    body = genesys(WebhookEventType.EMAIL_RECEIVED, status="received", direction="incoming")
    assert (body["email"]["state"], body["email"]["direction"]) == ("Invited", "inbound")
    assert body["email"]["capabilities"] == ["Reply", "ReplyAll"]


def test_a_delivery_event_keeps_the_emails_state_and_names_the_event():
    body = genesys(
        WebhookEventType.EMAIL_DELIVERY_EVENT,
        status="sent",
        event="bounced",
        recipient="ann@example.com",
    )
    email = body["email"]
    assert (email["state"], email["crmStatus"]) == ("Completed", "sent")
    assert (email["deliveryEvent"], email["recipient"]) == ("bounced", "ann@example.com")


def test_other_events_keep_the_standard_shape():
    body = webhook_payload(
        format=WebhookFormat.GENESYS,
        event_type=WebhookEventType.BULK_SEND_PROGRESS,
        data={"id": 1},
        at=AT,
    )
    assert body == {"type": "bulk_send.progress", "timestamp": AT.isoformat(), "data": {"id": 1}}
