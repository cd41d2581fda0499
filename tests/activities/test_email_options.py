"""Reply-To, custom headers and receipt requests: kept on the email, checked against
header injection and the headers the application owns, and on the wire."""

from __future__ import annotations

import pytest

from activities.addresses import MAX_CUSTOM_HEADERS, check_custom_headers
from activities.errors import InvalidAddress, InvalidHeader, InvalidTransition
from activities.models import Email, PartyRole
from activities.services.delivery import email_deliver
from activities.services.emails import (
    email_create,
    email_create_from_template,
    email_send,
    email_update,
)
from tests.factories import ContactFactory, TemplateFactory

pytestmark = pytest.mark.django_db

OWNER = "test-worker"


# --- the rule --------------------------------------------------------------------------


def test_custom_headers_are_kept_in_the_stored_form():
    assert check_custom_headers([{"name": " X-Campaign ", "value": "spring"}, ("X-Ref", "")]) == [
        {"name": "X-Campaign", "value": "spring"},
        {"name": "X-Ref", "value": ""},
    ]
    assert check_custom_headers(None) == []


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ([{"name": "From", "value": "boss@example.com"}], "the header From is written by"),
        ([{"name": "content-type", "value": "text/html"}], "content-type is written by"),
        ([{"name": "Message-ID", "value": "<x@y>"}], "Message-ID is written by"),
        ([{"name": "Resent-To", "value": "a@b.c"}], "Resent-To is written by"),
        ([{"name": "X-A", "value": "one\r\nBcc: victim@example.com"}], "line breaks"),
        ([{"name": "X-A", "value": "nul\x00"}], "line breaks"),
        ([{"name": "X A", "value": "v"}], "is not a header name"),
        ([{"name": "X:A", "value": "v"}], "is not a header name"),
        ([{"name": "", "value": "v"}], "is not a header name"),
        ([{"name": "X-Ä", "value": "v"}], "is not a header name"),
        ([{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}], "given twice"),
        ([{"name": "X-A", "value": "v" * 996}], "longer than"),
        ([{"name": "X-A"}], "must be text"),
        (["X-A: v"], "must have a name and a value"),
        ("X-A: v", "must be a list"),
    ],
)
def test_a_refused_custom_header_is_named(headers, words):
    with pytest.raises(InvalidHeader) as refused:
        check_custom_headers(headers)
    assert words in refused.value.message
    assert refused.value.field == "headers"


def test_more_custom_headers_than_the_limit_are_refused():
    many = [{"name": f"X-H{i}", "value": "v"} for i in range(MAX_CUSTOM_HEADERS + 1)]
    with pytest.raises(InvalidHeader, match=f"at most {MAX_CUSTOM_HEADERS}"):
        check_custom_headers(many)


def test_a_name_prefix_narrows_the_custom_headers():
    assert check_custom_headers([("x-ok", "1")], allowed_prefix="X-") == [
        {"name": "x-ok", "value": "1"}
    ]
    with pytest.raises(InvalidHeader, match="only names starting with X-"):
        check_custom_headers([("Keywords", "a")], allowed_prefix="X-")


# --- the service -----------------------------------------------------------------------


def test_create_keeps_reply_to_headers_and_receipts(owner):
    email = email_create(
        actor=owner,
        to=["ann@example.com"],
        reply_to=["Sales <sales@example.com>", "desk@example.com"],
        headers=[{"name": "X-Campaign", "value": "spring"}],
        request_delivery_receipt=True,
        request_read_receipt=True,
    )
    email.refresh_from_db()
    reply_to = email.parties.filter(role=PartyRole.REPLY_TO)
    assert [(p.name, p.address) for p in reply_to] == [
        ("Sales", "sales@example.com"),
        ("", "desk@example.com"),
    ]
    assert email.headers == [{"name": "X-Campaign", "value": "spring"}]
    assert (email.request_delivery_receipt, email.request_read_receipt) == (True, True)


def test_a_refused_header_or_reply_to_writes_nothing(owner):
    with pytest.raises(InvalidHeader, match="Subject is written by"):
        email_create(actor=owner, to=["ann@example.com"], headers=[("Subject", "x")])
    with pytest.raises(InvalidAddress, match="reply_to address"):
        email_create(actor=owner, to=["ann@example.com"], reply_to=["a@b.c\r\nBcc: x@y.z"])
    assert not Email.objects.exists()


def test_edit_replaces_reply_to_and_headers_of_a_draft_only(owner):
    email = email_create(actor=owner, to=["ann@example.com"], reply_to=["old@example.com"])
    email_update(
        email=email,
        actor=owner,
        reply_to=["new@example.com"],
        headers=[("X-Ref", "42")],
        request_read_receipt=True,
    )
    email.refresh_from_db()
    assert list(email.parties.filter(role="reply_to").values_list("address", flat=True)) == [
        "new@example.com"
    ]
    assert email.headers == [{"name": "X-Ref", "value": "42"}]
    assert email.request_read_receipt is True
    with pytest.raises(InvalidHeader):
        email_update(email=email, actor=owner, headers=[("Date", "now")])
    email.refresh_from_db()
    assert email.headers == [{"name": "X-Ref", "value": "42"}]

    email_send(email=email, actor=owner)
    with pytest.raises(InvalidTransition):
        email_update(email=email, actor=owner, headers=[])


def test_a_templated_email_takes_the_options_too(owner):
    contact = ContactFactory()
    template = TemplateFactory(subject="Hi", body_html="<p>Hi</p>", created_by=owner)
    email = email_create_from_template(
        template=template,
        actor=owner,
        regarding=contact,
        reply_to=["desk@example.com"],
        headers=[("X-Tpl", "1")],
    )
    assert email.headers == [{"name": "X-Tpl", "value": "1"}]
    assert email.parties.filter(role="reply_to").count() == 1
    with pytest.raises(ValueError, match="not an option"):
        email_create_from_template(template=template, actor=owner, regarding=contact, x=1)


# --- on the wire ------------------------------------------------------------------------


def test_delivery_writes_reply_to_custom_headers_and_receipt_requests(owner, smtp_settings):
    smtp_settings.handler.offer_dsn = True
    email = email_create(
        actor=owner,
        to=["ann@example.com"],
        bcc=["hidden@example.net"],
        subject="Figures",
        body_text="Hello",
        reply_to=["Sales <sales@example.com>"],
        headers=[("X-Campaign", "spring"), ("X-Unicode", "Grüße")],
        request_delivery_receipt=True,
        request_read_receipt=True,
    )
    email_send(email=email, actor=owner)

    assert email_deliver(email_id=email.pk, owner=OWNER).outcome == "sent"

    (received,) = smtp_settings.messages
    message = received.message
    assert message["Reply-To"] == "Sales <sales@example.com>"
    assert message["X-Campaign"] == "spring"
    assert message["X-Unicode"] == "Grüße"
    assert message["Disposition-Notification-To"] == owner.email
    assert message["Return-Receipt-To"] == owner.email
    assert message["From"].endswith(f"<{owner.email}>")
    # RFC 3461: a delivery receipt on success, asked for each recipient.
    assert smtp_settings.handler.dsn_notify == {
        "ann@example.com": "SUCCESS,FAILURE,DELAY",
        "hidden@example.net": "SUCCESS,FAILURE,DELAY",
    }


def test_no_receipt_is_asked_for_unless_requested_or_offered(owner, smtp_settings):
    smtp_settings.handler.offer_dsn = True
    plain = email_send(email=email_create(actor=owner, to=["ann@example.com"]), actor=owner)
    assert email_deliver(email_id=plain.pk, owner=OWNER).outcome == "sent"
    message = smtp_settings.messages[-1].message
    assert message["Disposition-Notification-To"] is None
    assert message["Return-Receipt-To"] is None
    assert message["Reply-To"] is None
    assert smtp_settings.handler.dsn_notify == {}

    # A server without DSN gets the header only, and no RCPT parameter it would refuse.
    smtp_settings.handler.offer_dsn = False
    asked = email_create(actor=owner, to=["bo@example.com"], request_delivery_receipt=True)
    email_send(email=asked, actor=owner)
    assert email_deliver(email_id=asked.pk, owner=OWNER).outcome == "sent"
    assert smtp_settings.messages[-1].message["Return-Receipt-To"] == owner.email
    assert smtp_settings.handler.dsn_notify == {}
