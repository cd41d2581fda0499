"""replyTo, internetMessageHeaders and the receipt requests: stored, answered, and on
the wire as Reply-To, the custom headers, Return-Receipt-To (with DSN NOTIFY=SUCCESS
where the server offers DSN) and Disposition-Notification-To."""

from __future__ import annotations

import pytest

from activities.models import Email, EmailStatus
from compat.graph import ids
from tests.factories import EmailFactory

from .graph_support import (
    BASE,
    DOCS_PLACEHOLDER_RECIPIENT,
    DOCS_SEND_MAIL,
    graph_client,
    graph_error,
    sample,
)

pytestmark = pytest.mark.django_db

# "Example 2: Create a message with custom Internet message headers and send the message".
DOCS_SEND_MAIL_WITH_HEADERS = {
    "message": {
        "subject": "9/9/2018: concert",
        "body": {"contentType": "HTML", "content": "The group represents Nevada."},
        "toRecipients": [{"emailAddress": {"address": "AlexW@contoso.com"}}],
        "internetMessageHeaders": [
            {"name": "x-custom-header-group-name", "value": "Nevada"},
            {"name": "x-custom-header-group-id", "value": "NV001"},
        ],
    }
}


def test_reply_to_headers_and_receipts_arrive_as_sent(
    owner, smtp_settings, eager_celery, django_capture_on_commit_callbacks
):
    smtp_settings.handler.offer_dsn = True
    body = sample(DOCS_SEND_MAIL_WITH_HEADERS)
    body["message"].update(
        replyTo=[{"emailAddress": {"address": "sales@example.com", "name": "Sales"}}],
        isDeliveryReceiptRequested=True,
        isReadReceiptRequested=True,
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = graph_client(owner).post(f"{BASE}/me/sendMail", body, format="json")

    assert response.status_code == 202
    [received] = smtp_settings.messages
    message = received.message
    assert message["Reply-To"] == "Sales <sales@example.com>"
    assert message["x-custom-header-group-name"] == "Nevada"
    assert message["x-custom-header-group-id"] == "NV001"
    assert message["Return-Receipt-To"] == message["Disposition-Notification-To"] == owner.email
    assert smtp_settings.handler.dsn_notify == {"alexw@contoso.com": "SUCCESS,FAILURE,DELAY"}
    assert received.rcpt_tos == ["AlexW@contoso.com"]  # Reply-To is no recipient
    email = Email.objects.get()
    assert email.status == EmailStatus.SENT


def test_the_options_are_stored_and_answered(owner):
    body = sample(DOCS_SEND_MAIL_WITH_HEADERS)["message"]
    body.update(
        replyTo=[{"emailAddress": {"address": "sales@example.com"}}], isReadReceiptRequested=True
    )
    client = graph_client(owner)

    created = client.post(f"{BASE}/me/messages", body, format="json").json()

    email = Email.objects.get()
    assert email.headers == [
        {"name": "x-custom-header-group-name", "value": "Nevada"},
        {"name": "x-custom-header-group-id", "value": "NV001"},
    ]
    assert (email.request_read_receipt, email.request_delivery_receipt) == (True, False)
    assert [p.address for p in email.parties.filter(role="reply_to")] == ["sales@example.com"]
    assert created["replyTo"] == [
        {"emailAddress": {"name": "sales@example.com", "address": "sales@example.com"}}
    ]
    assert (created["isReadReceiptRequested"], created["isDeliveryReceiptRequested"]) == (
        True,
        False,
    )
    assert "internetMessageHeaders" not in created  # as Graph: only when selected
    selected = client.get(
        f"{BASE}/me/messages/{created['id']}", {"$select": "internetMessageHeaders"}
    ).json()
    assert selected["internetMessageHeaders"] == email.headers


def test_patch_changes_the_options(owner):
    email = EmailFactory(sender_user=owner, headers=[{"name": "X-Old", "value": "1"}])

    response = graph_client(owner).patch(
        f"{BASE}/me/messages/{ids.message_id(email.pk)}",
        {
            "replyTo": [{"emailAddress": {"address": "r@example.com"}}],
            "internetMessageHeaders": [{"name": "X-New", "value": "2"}],
            "isDeliveryReceiptRequested": True,
        },
        format="json",
    )

    assert response.status_code == 200
    email.refresh_from_db()
    assert email.headers == [{"name": "X-New", "value": "2"}]
    assert email.request_delivery_receipt is True
    assert [p.address for p in email.parties.filter(role="reply_to")] == ["r@example.com"]


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ({"name": "X-Two Words", "value": "v"}, "is not a header name"),
        ({"name": "X-Injected", "value": "a\r\nBcc: victim@example.com"}, "line breaks"),
    ],
)
def test_a_header_the_services_refuse_is_invalid_internet_message_header(owner, header, said):
    body = sample(DOCS_SEND_MAIL)
    body["message"]["internetMessageHeaders"] = [header]

    response = graph_client(owner).post(f"{BASE}/me/sendMail", body, format="json")

    status, code, message = graph_error(response)
    assert (status, code) == (400, "InvalidInternetMessageHeader")
    assert said in message  # the services' words (addresses.check_custom_headers)
    assert not Email.objects.exists()


def test_a_header_given_twice_is_refused(owner):
    body = sample(DOCS_SEND_MAIL)
    body["message"]["internetMessageHeaders"] = [
        {"name": "X-A", "value": "1"},
        {"name": "x-a", "value": "2"},
    ]

    status, code, message = graph_error(
        graph_client(owner).post(f"{BASE}/me/sendMail", body, format="json")
    )

    assert (status, code) == (400, "InvalidInternetMessageHeader") and "twice" in message


def test_a_reply_to_without_an_address_is_refused_naming_it(owner):
    body = sample(DOCS_SEND_MAIL)
    body["message"]["replyTo"] = [DOCS_PLACEHOLDER_RECIPIENT]

    status, code, message = graph_error(
        graph_client(owner).post(f"{BASE}/me/sendMail", body, format="json")
    )

    assert (status, code) == (400, "ErrorInvalidRecipients") and "replyTo[0]" in message
    assert not Email.objects.exists()


def test_a_receipt_flag_must_be_a_boolean(owner):
    body = sample(DOCS_SEND_MAIL)
    body["message"]["isReadReceiptRequested"] = "please"

    assert graph_error(graph_client(owner).post(f"{BASE}/me/sendMail", body, format="json"))[
        :2
    ] == (
        400,
        "BadRequest",
    )
