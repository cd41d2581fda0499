"""``?page=`` and ``?page_size=`` as the schema states them (issue 11, schemathesis):
DRF took a ``page_size`` it could not read for the default size, and an empty or
``last`` page for a page, so a typo looked like a request that worked."""

from __future__ import annotations

import pytest

from tests.api import client_for
from tests.factories import ContactFactory, EmailFactory

pytestmark = pytest.mark.django_db

CONTACTS = "/api/v1/contacts/"


@pytest.mark.parametrize("size", ["abc", "0", "-1", "", "1.5", "null", "٣"])
def test_a_page_size_that_is_not_a_whole_number_from_1_is_a_400_naming_it(owner, size):
    ContactFactory.create_batch(2)
    answer = client_for(owner).get(CONTACTS, {"page_size": size})
    assert answer.status_code == 400, answer.content
    assert list(answer.json()) == ["page_size"]


def test_a_page_size_is_taken_and_capped_at_200(owner):
    ContactFactory.create_batch(3)
    client = client_for(owner)
    assert len(client.get(CONTACTS, {"page_size": "2"}).json()["results"]) == 2
    assert len(client.get(CONTACTS, {"page_size": "999999999999"}).json()["results"]) == 3


@pytest.mark.parametrize("page", ["", "last"])
def test_an_empty_or_last_page_is_a_404_not_a_page(owner, page):
    ContactFactory.create_batch(2)
    answer = client_for(owner).get(CONTACTS, {"page": page, "page_size": "1"})
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_the_events_of_an_email_refuse_a_bad_page_size_too(owner):
    email = EmailFactory(sender_user=owner)
    answer = client_for(owner).get(f"/api/v1/emails/{email.pk}/events/", {"page_size": "0"})
    assert answer.status_code == 400
    assert list(answer.json()) == ["page_size"]
