"""A recipient string holds one address. Several in one string were stored as the first
only, the others dropped without a word (``parseaddr`` is lax; issue 11): now the whole
string is refused, naming it, in the API, the compose page and the services alike."""

from __future__ import annotations

import pytest

from activities.addresses import Address, parse_address
from activities.errors import InvalidAddress
from activities.models import Email, EmailParty
from tests.api import client_for
from tests.pages import signed_in

SEVERAL = [
    ("a@x.org, b@x.org", "holds 2 addresses: give each recipient on its own"),
    ("Ann <a@x.org>, Bo <b@x.org>, c@x.org", "holds 3 addresses"),
    ("a@x.org; b@x.org", "is not one valid email address"),
    ("Ann <a@x.org> <b@x.org>", "is not one valid email address"),
    ("a@x.org b@x.org", "is not"),  # refused before too, by parseaddr
    ("Ann <a@x.org>junk", "is not one valid email address"),
]


@pytest.mark.parametrize(("value", "reason"), SEVERAL)
def test_a_string_with_several_addresses_is_refused_whole(value, reason):
    with pytest.raises(InvalidAddress) as caught:
        parse_address(value, label="to address", field="to")
    assert str(caught.value).startswith(f"to address {value!r} ")
    assert reason in str(caught.value)
    assert caught.value.field == "to"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ann@example.com", Address("ann@example.com")),
        ("Ann Lee <ann@example.com>", Address("ann@example.com", "Ann Lee")),
        ('"Lee, Ann" <ann@example.com>', Address("ann@example.com", "Lee, Ann")),
        ("  ann@example.com  ", Address("ann@example.com")),
    ],
)
def test_one_address_with_or_without_a_name_is_taken(value, expected):
    assert parse_address(value) == expected


@pytest.mark.django_db
@pytest.mark.parametrize(("value", "reason"), SEVERAL[:4])
def test_the_api_refuses_it_and_stores_nothing(owner, value, reason):
    response = client_for(owner).post(
        "/api/v1/emails/", {"subject": "Hi", "to": ["ok@example.com", value]}
    )
    assert response.status_code == 400, response.content
    assert reason in response.content.decode()
    assert not Email.objects.exists()
    assert not EmailParty.objects.exists()


@pytest.mark.django_db
def test_the_api_takes_several_recipients_as_a_list(owner):
    response = client_for(owner).post(
        "/api/v1/emails/", {"subject": "Hi", "to": ["a@x.org", "Bo <b@x.org>"]}
    )
    assert response.status_code == 201, response.content
    assert sorted(EmailParty.objects.filter(role="to").values_list("address", flat=True)) == [
        "a@x.org",
        "b@x.org",
    ]


@pytest.mark.django_db
def test_the_compose_page_refuses_it_next_to_its_field(owner):
    response = signed_in(owner).post(
        "/mail/new/",
        {
            "sender": f"user:{owner.pk}",
            "to": "ok@example.com",
            "cc": "Ann <a@x.org> <b@x.org>",
            "subject": "Hi",
            "body_text": "hi",
            "action": "save",
        },
    )
    assert response.status_code == 400
    errors = {row["field"].name: row["error"] for row in response.context["recipient_fields"]}
    assert "is not one valid email address" in errors["cc"]
    assert not Email.objects.exists()
