"""SuperOffice's ``CustomHeaderList``: custom headers, and the headers SuperOffice's
entity has no property for (Reply-To, receipt requests) onto the email's own fields."""

from __future__ import annotations

import pytest

from activities.models import Email, PartyRole
from tests.api import client_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/Agents/EMail/SendEMails"


def header(name, *values):
    return {"Name": name, "Values": list(values)}


def entity(*headers):
    return {
        "To": [{"Address": "ann@example.com"}],
        "Subject": "Hello",
        "CustomHeaderList": list(headers),
    }


def post(user, *emails):
    return client_for(user).post(URL, {"Emails": list(emails)}, format="json")


def test_custom_headers_reply_to_and_receipts_reach_the_mail_server(
    org, owner, smtp_settings, eager_celery, django_capture_on_commit_callbacks
):
    smtp_settings.handler.offer_dsn = True
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            owner,
            entity(
                header("X-Campaign", "spring-2027"),
                header("reply-to", "Sales <sales@example.com>, help@example.com"),
                header("Disposition-Notification-To", "ignored@example.com"),
                header("Return-Receipt-To", ""),
            ),
        )

    assert response.status_code == 200, response.json()
    email = Email.objects.get()
    assert email.headers == [{"name": "X-Campaign", "value": "spring-2027"}]
    assert email.request_read_receipt and email.request_delivery_receipt
    assert [(p.address, p.name) for p in email.parties.filter(role=PartyRole.REPLY_TO)] == [
        ("sales@example.com", "Sales"),
        ("help@example.com", ""),
    ]
    [received] = smtp_settings.messages
    message = received.message
    assert message["X-Campaign"] == "spring-2027"
    assert message["Reply-To"] == "Sales <sales@example.com>, help@example.com"
    assert message["Disposition-Notification-To"] == "alice@staff.example.com"
    assert message["Return-Receipt-To"] == "alice@staff.example.com"
    assert "SUCCESS" in smtp_settings.handler.dsn_notify["ann@example.com"]
    answered = {h["Name"]: h["Values"] for h in response.json()[0]["CustomHeaderList"]}
    assert answered == {
        "X-Campaign": ["spring-2027"],
        "Reply-To": ["Sales <sales@example.com>, help@example.com"],
        "Return-Receipt-To": ["alice@staff.example.com"],
        "Disposition-Notification-To": ["alice@staff.example.com"],
    }


@pytest.mark.parametrize(
    ("headers", "code", "names"),
    [
        ([header("Subject", "Other")], "invalid_header", "the header Subject is written by"),
        ([header("Content-Type", "text/x")], "invalid_header", "Content-Type"),
        ([header("X-A", "1"), header("x-a", "2")], "invalid_header", "given twice"),
        ([header("X-Bad", "a\r\nBcc: x@example.com")], "invalid_header", "line breaks"),
        ([header("X Space", "1")], "invalid_header", "is not a header name"),
        ([header("X-Two", "1", "2")], "invalid", "CustomHeaderList[0]: the header X-Two has 2"),
        ([header("", "1")], "invalid", "CustomHeaderList[0].Name"),
        ([header("Reply-To", "not an address")], "invalid", "Reply-To 'not an address' is"),
        ([header("Reply-To", "")], "invalid", "Reply-To '' is not"),
        (
            [header("Reply-To", "a@b.example\r\nBcc: x@example.com")],
            "invalid",
            "is not a list of addresses",
        ),
        ([{"Name": "X-A", "Value": "1"}], "invalid", "CustomHeaderList[0].Value"),
    ],
)
def test_a_refused_header_refuses_its_email_naming_it(owner, headers, code, names):
    response = post(owner, entity(*headers))

    assert 400 <= response.status_code < 500
    body = response.json()
    if code is not None:
        assert body["ErrorType"] == code
    assert names in body["Message"]
    assert Email.objects.count() == 0


def test_a_refused_header_refuses_only_its_own_email(owner):
    response = post(owner, entity(header("From", "x@example.com")), entity(header("X-Ok", "1")))

    assert response.status_code == 200
    refused, sent = response.json()
    assert refused["SendError"]["ErrorType"] == "invalid_header"
    assert sent["IsSent"] is True
    assert Email.objects.get().headers == [{"name": "X-Ok", "value": "1"}]
