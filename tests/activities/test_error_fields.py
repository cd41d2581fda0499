"""Every refusal of the email services names the input it is about (``field``), so a page
shows it next to that field without reading the English message."""

from __future__ import annotations

import pytest

from activities.errors import InvalidAddress, InvalidHeader, SenderNotApproved
from activities.models import EmailParty, PartyRole
from activities.services.emails import email_create, email_send, email_update
from common.errors import ApplicationError
from crm.models import EmailApproval
from tests.factories import EmailFactory, QueueFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", ["to", "cc", "bcc"])
@pytest.mark.parametrize(
    "bad", ["not-an-address", "ann@example.com\r\nBcc: x@example.com", "Ann <ann@"]
)
def test_a_bad_recipient_names_its_role(org, owner, role, bad):
    with pytest.raises(InvalidAddress) as exc:
        email_create(actor=owner, subject="Hi", **{role: [bad]})
    assert exc.value.field == role


def test_a_bad_subject_names_the_subject(org):
    with pytest.raises(InvalidHeader) as exc:
        email_create(actor=UserFactory(), subject="Hi\r\nBcc: x@example.com")
    assert exc.value.field == "subject"


def test_a_bad_tracking_token_names_it(org, owner):
    email = email_create(actor=owner, to=["a@example.com"])
    with pytest.raises(InvalidHeader) as exc:
        email_update(email=email, actor=owner, tracking_token="CRM:1\r\nX: y")
    assert exc.value.field == "tracking_token"


def test_send_names_the_recipient_stored_bad_and_the_missing_recipients(org, owner):
    email = EmailFactory(sender_user=owner)
    with pytest.raises(ApplicationError) as exc:
        email_send(email=email, actor=owner)
    assert (exc.value.code, exc.value.field) == ("no_recipients", "to")
    EmailParty.objects.create(email=email, role=PartyRole.CC, address="bad-address")
    with pytest.raises(InvalidAddress) as exc:
        email_send(email=email, actor=owner)
    assert exc.value.field == "cc"


def test_sender_refusals_name_the_sender(org, outsider):
    addressless = UserFactory(email="")
    email = EmailFactory(sender_user=addressless, with_to="a@example.com")
    with pytest.raises(InvalidAddress) as exc:
        email_send(email=email, actor=addressless)
    assert exc.value.field == "sender"
    pending = QueueFactory(
        email_router_access_approval=EmailApproval.PENDING, members=[addressless]
    )
    email = EmailFactory(sender_user=None, sender_queue=pending, with_to="a@example.com")
    with pytest.raises(SenderNotApproved) as exc:
        email_send(email=email, actor=addressless)
    assert exc.value.field == "sender"
    with pytest.raises(ApplicationError) as exc:
        email_send(email=email, actor=outsider)
    assert (exc.value.code, exc.value.field) == ("sender_not_allowed", "sender")
