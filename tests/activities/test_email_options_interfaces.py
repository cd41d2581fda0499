"""Reply-To, custom headers and receipt requests in /api/v1/, on the compose page and in
the admin: the same rule (``addresses.check_custom_headers``) and the same words."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from activities.models import Email, PartyRole
from tests.api import client_for

from .admin.test_admin import email_form
from .views.test_compose import form

pytestmark = pytest.mark.django_db

EMAILS = "/api/v1/emails/"


# --- /api/v1/ ----------------------------------------------------------------------------


def test_api_create_and_edit_carry_reply_to_headers_and_receipts(owner):
    api = client_for(owner)
    response = api.post(
        EMAILS,
        {
            "to": ["ann@example.com"],
            "reply_to": [{"address": "sales@example.com", "name": "Sales"}],
            "headers": [{"name": "X-Campaign", "value": "spring"}],
            "request_delivery_receipt": True,
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert [(p["address"], p["name"]) for p in body["reply_to"]] == [("sales@example.com", "Sales")]
    assert body["headers"] == [{"name": "X-Campaign", "value": "spring"}]
    assert (body["request_delivery_receipt"], body["request_read_receipt"]) == (True, False)
    assert body["to"][0]["address"] == "ann@example.com"  # Reply-To is not a recipient

    changed = api.patch(
        f"{EMAILS}{body['id']}/",
        {
            "reply_to": [],
            "headers": [{"name": "X-Ref", "value": "7"}],
            "request_read_receipt": True,
        },
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["reply_to"] == []
    assert changed.json()["headers"] == [{"name": "X-Ref", "value": "7"}]
    assert changed.json()["request_read_receipt"] is True
    assert changed.json()["request_delivery_receipt"] is True  # left as it was


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ([{"name": "Subject", "value": "x"}], "the header Subject is written by the application"),
        ([{"name": "X-A", "value": "a\r\nBcc: v@example.com"}], "line breaks"),
        ([{"name": "Bad Name", "value": "x"}], "is not a header name"),
    ],
)
def test_api_refuses_a_custom_header_naming_it_and_writes_nothing(owner, headers, words):
    response = client_for(owner).post(EMAILS, {"to": ["ann@example.com"], "headers": headers})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_header"
    assert words in response.json()["detail"]
    assert not Email.objects.exists()


def test_api_refuses_a_reply_to_that_is_not_an_address(owner):
    response = client_for(owner).post(
        EMAILS, {"to": ["ann@example.com"], "reply_to": ["not an address"]}
    )
    assert response.status_code == 400
    assert "reply_to" in str(response.json())
    assert not Email.objects.exists()


# --- the compose page ---------------------------------------------------------------------


@pytest.fixture
def owner_client(owner) -> Client:
    signed_in = Client()
    signed_in.force_login(owner)
    return signed_in


def test_compose_saves_reply_to_headers_and_receipts_and_shows_them_again(owner_client, owner):
    response = owner_client.post(
        "/mail/new/",
        form(
            sender=f"user:{owner.pk}",
            to="ann@example.com",
            reply_to="Sales <sales@example.com>",
            headers="X-Campaign: spring\n\nX-Ref: 7\n",
            request_read_receipt="on",
        ),
    )
    email = Email.objects.get()
    assert response.status_code == 302
    assert list(email.parties.filter(role=PartyRole.REPLY_TO).values_list("name", "address")) == [
        ("Sales", "sales@example.com")
    ]
    assert email.headers == [
        {"name": "X-Campaign", "value": "spring"},
        {"name": "X-Ref", "value": "7"},
    ]
    assert (email.request_delivery_receipt, email.request_read_receipt) == (False, True)

    page = owner_client.get(f"/mail/{email.pk}/edit/")
    assert page.context["form"]["reply_to"].value() == "Sales <sales@example.com>"
    assert page.context["form"]["headers"].value() == "X-Campaign: spring\nX-Ref: 7"
    assert page.context["form"]["request_read_receipt"].value() is True
    assert 'name="request_read_receipt" value="on" checked' in page.content.decode()

    shown = owner_client.get(f"/mail/{email.pk}/").content.decode()
    assert "X-Campaign: spring" in shown and "Receipts requested" in shown
    assert "Reply-To" in shown and "sales@example.com" in shown


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ("From: boss@example.com", "the header From is written by the application"),
        ("just text", "write a header as"),
    ],
)
def test_compose_refuses_a_custom_header_in_words_and_keeps_the_typing(
    owner_client, owner, headers, words
):
    response = owner_client.post(
        "/mail/new/", form(sender=f"user:{owner.pk}", to="ann@example.com", headers=headers)
    )
    assert response.status_code == 400
    assert words in response.context["errors"]["headers"]
    assert response.context["form"]["headers"].value() == headers
    assert not Email.objects.exists()


# --- the admin -----------------------------------------------------------------------------


def test_admin_saves_custom_headers_receipts_and_a_reply_to_party(superuser_client, superuser):
    data = email_form(sender_user=superuser, address="ann@example.com", action="")
    data.update(
        {
            "headers_text": "X-Campaign: spring",
            "request_delivery_receipt": "on",
            "parties-TOTAL_FORMS": "2",
            "parties-1-role": "reply_to",
            "parties-1-contact": "",
            "parties-1-address": "desk@example.com",
            "parties-1-name": "Desk",
        }
    )
    response = superuser_client.post(reverse("admin:activities_email_add"), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    email = Email.objects.get()
    assert email.headers == [{"name": "X-Campaign", "value": "spring"}]
    assert email.request_delivery_receipt is True
    assert list(email.parties.filter(role="reply_to").values_list("address", flat=True)) == [
        "desk@example.com"
    ]
    change = superuser_client.get(reverse("admin:activities_email_change", args=[email.pk]))
    assert "X-Campaign: spring" in change.content.decode()


def test_admin_refuses_an_owned_header_in_words(superuser_client, superuser):
    data = email_form(sender_user=superuser, address="ann@example.com", action="")
    data["headers_text"] = "Content-Type: text/html"
    response = superuser_client.post(reverse("admin:activities_email_add"), data)
    assert response.status_code == 200
    assert "Content-Type is written by the application" in response.content.decode()
    assert not Email.objects.exists()
