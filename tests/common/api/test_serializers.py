"""What the strict serializers refuse (issue 11, schemathesis): each case here was a
request the schema calls invalid that the server took and acted on."""

from __future__ import annotations

import pytest

from activities.models import Email, Template
from crm.models import Account, Contact, Organization
from tests.api import client_for
from tests.factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db

ACCOUNTS = "/api/v1/accounts/"


def test_a_text_over_max_length_is_refused_before_its_whitespace_is_trimmed(owner):
    """101 characters with a leading line break passed a limit of 100 (``maxLength``):
    DRF trimmed the text first and then counted."""
    answer = client_for(owner).post(ACCOUNTS, {"name": "Nordlys", "city": "\n" + "p" * 100})
    assert answer.status_code == 400
    assert list(answer.json()) == ["city"]
    assert not Account.objects.exists()
    fits = client_for(owner).post(ACCOUNTS, {"name": "Nordlys", "city": " " + "p" * 99})
    assert fits.status_code == 201
    assert fits.json()["city"] == "p" * 99


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),  # a number for text: stored as "5"
        ({"name": "Nordlys", "city": 1.5}, "city"),
        ({"name": ["Nordlys"]}, "name"),
    ],
)
def test_a_json_value_of_another_type_than_the_schemas_is_a_400_naming_it(owner, body, field):
    answer = client_for(owner).post(ACCOUNTS, body)
    assert answer.status_code == 400
    assert list(answer.json()) == [field]
    assert "must be a string" in answer.json()[field][0]
    assert not Account.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"last_name": "Lee", "do_not_email": "yes"}, "do_not_email"),  # was true
        ({"last_name": "Lee", "do_not_bulk_email": 1}, "do_not_bulk_email"),  # was true
        ({"last_name": "Lee", "account": "ACCOUNT"}, "account"),  # an id as a string
        ({"last_name": "Lee", "tags": [5]}, "tags"),  # a number for a tag name
    ],
)
def test_contacts_refuse_coerced_types(owner, body, field):
    account = AccountFactory()
    if body.get(field) == "ACCOUNT":
        body = {**body, field: str(account.pk)}
    answer = client_for(owner).post("/api/v1/contacts/", body)
    assert answer.status_code == 400
    assert list(answer.json()) == [field]
    assert not Contact.objects.exists()


def test_integers_and_booleans_of_the_action_bodies_are_json_typed(org, owner):
    client = client_for(owner)
    claim = client.post("/api/v1/emails/claim/", {"max": "5"})
    assert claim.status_code == 400 and list(claim.json()) == ["max"]
    assert client.post("/api/v1/emails/claim/", {"max": 5.0}).status_code == 400
    assert client.post("/api/v1/emails/claim/", {"max": True}).status_code == 400
    assert client.post("/api/v1/emails/claim/", {"max": 5}).status_code == 200


def test_the_organization_refuses_a_number_as_its_prefix(staff, org):
    answer = client_for(staff).patch("/api/v1/organization/", {"tracking_token_prefix": 7})
    assert answer.status_code == 400
    assert list(answer.json()) == ["tracking_token_prefix"]
    assert Organization.get().tracking_token_prefix != "7"


def test_a_template_id_given_as_a_string_is_refused(org, owner):
    template = Template.objects.create(title="T", record_type="global", subject="S")
    answer = client_for(owner).post("/api/v1/emails/", {"template": str(template.pk)})
    assert answer.status_code == 400
    assert list(answer.json()) == ["template"]
    assert not Email.objects.exists()


def test_json_null_still_reaches_the_fields_own_rule(owner):
    ContactFactory()
    answer = client_for(owner).post("/api/v1/contacts/", {"last_name": "Lee", "account": None})
    assert answer.status_code == 201
    assert answer.json()["account"] is None
