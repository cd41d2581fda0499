"""Names that become mail header text (a contact's, an account's, a queue's, a user's)
are refused with a line break or NUL when they are written, naming the field; they
were stored and refused only when a send needed them (issue 11)."""

from __future__ import annotations

import pytest

from common.errors import ValidationFailed
from crm.models import Account, Contact, Queue, User
from crm.services import contact_save, mailbox_save
from tests.api import client_for
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db

BROKEN = ["Ann\r\nBcc: victim@example.com", "Ann\nLee", "Ann\x00"]
MESSAGE = "must not contain line breaks (CR, LF) or NUL characters"


@pytest.mark.parametrize("name", BROKEN)
def test_the_api_refuses_a_contact_name_with_a_line_break(owner, name):
    answer = client_for(owner).post(
        "/api/v1/contacts/", {"first_name": name, "last_name": "Lee", "email": "a@x.org"}
    )
    assert answer.status_code == 400, answer.content
    assert MESSAGE in str(answer.json()["first_name"])
    assert not Contact.objects.exists()


def test_the_api_refuses_queue_and_account_names_with_a_line_break(staff, owner):
    queue = client_for(staff).post(
        "/api/v1/queues/", {"name": "Sup\r\nport", "email": "support@example.com"}
    )
    assert queue.status_code == 400, queue.content
    assert MESSAGE in str(queue.json())
    assert not Queue.objects.exists()
    account = client_for(owner).post("/api/v1/accounts/", {"name": "Nord\nlys"})
    assert account.status_code == 400, account.content
    assert MESSAGE in str(account.json()["name"])
    assert not Account.objects.exists()


def test_the_services_refuse_them_too(owner):
    with pytest.raises(ValidationFailed) as caught:
        contact_save(contact=Contact(), data={"first_name": "A", "last_name": "L\r\nee"})
    assert str(caught.value) == f"last_name: {MESSAGE}"
    queue = QueueFactory(name="Support")
    with pytest.raises(ValidationFailed):
        mailbox_save(obj=queue, data={"name": "Support\r\nX"})
    assert Queue.objects.get(pk=queue.pk).name == "Support"
    with pytest.raises(ValidationFailed):
        mailbox_save(obj=owner, data={"first_name": "Alice\nX"})
    assert User.objects.get(pk=owner.pk).first_name == "Alice"


def test_a_name_on_one_line_is_taken(owner):
    answer = client_for(owner).post(
        "/api/v1/contacts/", {"first_name": "Ann-Marie", "last_name": "Lee Ø", "email": "a@x.org"}
    )
    assert answer.status_code == 201, answer.content
