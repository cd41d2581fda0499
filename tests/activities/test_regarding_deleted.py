"""Deleting a record that emails are regarding keeps the emails: their regarding is
cleared, with an event that names the deleted record (DESIGN.md; the link dangled,
issue 11). Whatever deletes it: the service, the API, the admin."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType

from activities.models import Email, EventKind
from crm.services import account_delete, contact_delete
from tests.api import client_for
from tests.factories import AccountFactory, ContactFactory, EmailFactory

pytestmark = pytest.mark.django_db


def regarding(obj) -> dict:
    return {"regarding_type": ContentType.objects.get_for_model(obj), "regarding_id": obj.pk}


def test_a_deleted_contact_leaves_its_emails_with_an_event_naming_it(owner):
    contact = ContactFactory(first_name="Ann", last_name="Lee")
    other = ContactFactory()
    about = [EmailFactory(sender_user=owner, **regarding(contact)) for _ in range(2)]
    untouched = EmailFactory(sender_user=owner, **regarding(other))
    contact_pk = contact.pk

    contact_delete(contact=contact)

    for email in about:
        email.refresh_from_db()
        assert (email.regarding_type, email.regarding_id) == (None, None)
        [event] = email.events.filter(kind=EventKind.NOTE)
        assert event.reason == (
            f"the contact it was regarding was deleted: Ann Lee (id {contact_pk})"
        )
        assert event.data == {
            "regarding_type": "contact",
            "regarding_id": contact_pk,
            "regarding": "Ann Lee",
        }
    untouched.refresh_from_db()
    assert untouched.regarding_id == other.pk
    assert not untouched.events.filter(kind=EventKind.NOTE).exists()
    assert Email.objects.count() == 3


def test_an_account_deleted_over_the_api_does_the_same(staff, owner):
    account = AccountFactory(name="Nordlys AS")
    email = EmailFactory(sender_user=owner, **regarding(account))
    assert client_for(staff).delete(f"/api/v1/accounts/{account.pk}/").status_code == 204
    email.refresh_from_db()
    assert email.regarding_id is None
    assert email.events.get(kind=EventKind.NOTE).reason.startswith(
        "the account it was regarding was deleted: Nordlys AS"
    )
    # The email's API answer shows no dangling link.
    assert client_for(owner).get(f"/api/v1/emails/{email.pk}/").json()["regarding"] is None


def test_a_record_no_email_is_regarding_is_deleted_quietly(owner):
    account = AccountFactory()
    account_delete(account=account)
    assert not Email.objects.exists()
