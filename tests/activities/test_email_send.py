from __future__ import annotations

import itertools

import pytest
from django.db import transaction

from activities.errors import (
    InvalidAddress,
    InvalidHeader,
    InvalidTransition,
    NoRecipients,
    NotOutgoing,
    SenderNotAllowed,
    SenderNotApproved,
)
from activities.models import Direction, Email, EmailEvent, EmailParty, EmailStatus, PartyRole
from activities.services.emails import (
    email_cancel,
    email_create,
    email_mark_as_sent,
    email_send,
    email_update,
)
from crm.models import EmailApproval
from tests.factories import ContactFactory, EmailFactory, QueueFactory, UserFactory

pytestmark = pytest.mark.django_db

ALL_STATUSES = list(EmailStatus)


def draft_for(user, **kwargs):
    return email_create(actor=user, to=["Ann Lee <ann@example.com>"], subject="Hi", **kwargs)


def test_create_writes_parties_and_a_created_event(owner):
    contact = ContactFactory(email="carl@example.org", first_name="Carl", last_name="Berg")
    email = email_create(
        actor=owner,
        to=[contact, "Ann Lee <ann@example.com>"],
        cc=["cc@example.com"],
        bcc=[{"address": "hidden@example.com"}],
        subject="Hello",
        regarding=contact,
    )
    parties = {(p.role, p.address, p.name, p.party_type) for p in email.parties.all()}
    assert parties == {
        ("from", owner.email, owner.full_name, "user"),
        ("to", "carl@example.org", "Carl Berg", "contact"),
        ("to", "ann@example.com", "Ann Lee", "address"),
        ("cc", "cc@example.com", "", "address"),
        ("bcc", "hidden@example.com", "", "address"),
    }
    assert email.regarding == contact
    assert email.status == EmailStatus.DRAFT and email.state == "open"
    assert list(email.events.values_list("to_status", flat=True)) == ["draft"]


@pytest.mark.parametrize(
    "bad",
    [
        "ann@example.com\r\nBcc: victim@example.com",
        "ann@exa\nmple.com",
        "ann\x00@example.com",
        "Ann\r\nBcc: x@y.z <ann@example.com>",
        "not-an-address",
        "a" * 250 + "@example.com",
        "<unterminated@example.com",
    ],
)
def test_create_refuses_bad_addresses_and_writes_nothing(owner, bad):
    with pytest.raises(InvalidAddress):
        email_create(actor=owner, to=[bad], subject="x")
    assert Email.objects.count() == 0
    assert EmailParty.objects.count() == 0


@pytest.mark.parametrize(
    "subject", ["Hi\r\nBcc: victim@example.com", "Hi\nthere", "nul\x00", "x" * 401]
)
def test_create_refuses_bad_subject_with_invalid_header(subject):
    with pytest.raises(InvalidHeader):
        email_create(actor=UserFactory(), to=["ann@example.com"], subject=subject)
    assert Email.objects.count() == 0


def test_send_moves_draft_to_pending_send_with_message_id_and_event(
    org, owner, django_capture_on_commit_callbacks
):
    email = draft_for(owner)
    with django_capture_on_commit_callbacks() as callbacks:
        sent = email_send(email=email, actor=owner)
    assert len(callbacks) == 1  # the delivery task is enqueued after commit
    sent.refresh_from_db()
    assert sent.status == EmailStatus.PENDING_SEND and sent.state == "completed"
    assert sent.message_id.startswith("<") and sent.message_id.endswith(">")
    assert sent.from_address == owner.email
    assert sent.queued_at is not None
    event = sent.events.get(to_status=EmailStatus.PENDING_SEND)
    assert (event.from_status, event.actor) == (EmailStatus.DRAFT, owner)


def test_send_rolled_back_enqueues_nothing(org, owner, django_capture_on_commit_callbacks):
    email = draft_for(owner)
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            email_send(email=email, actor=owner)
            raise RuntimeError("the request failed after send")
    assert callbacks == []
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT
    assert not email.events.filter(to_status=EmailStatus.PENDING_SEND).exists()


def test_send_from_failed_is_allowed_and_keeps_message_id(org, owner):
    email = EmailFactory(
        sender_user=owner,
        status=EmailStatus.FAILED,
        message_id="<fixed@x>",
        with_to="ann@example.com",
    )
    sent = email_send(email=email, actor=owner)
    assert sent.status == EmailStatus.PENDING_SEND
    assert sent.message_id == "<fixed@x>"


@pytest.mark.parametrize(
    "status", [s for s in ALL_STATUSES if s not in (EmailStatus.DRAFT, EmailStatus.FAILED)]
)
def test_send_refuses_every_status_but_draft_and_failed(org, owner, status):
    email = EmailFactory(sender_user=owner, status=status, with_to="ann@example.com")
    for issue_send in (True, False):
        with pytest.raises(InvalidTransition) as exc:
            email_send(email=email, actor=owner, issue_send=issue_send)
        assert exc.value.code == "invalid_status" and exc.value.status == status
    email.refresh_from_db()
    assert email.status == status
    assert not email.events.exists()


def test_mark_as_sent_moves_draft_and_failed_to_sent_without_delivery(
    org, owner, django_capture_on_commit_callbacks
):
    for status in (EmailStatus.DRAFT, EmailStatus.FAILED):
        email = EmailFactory(sender_user=owner, status=status, with_to="ann@example.com")
        with django_capture_on_commit_callbacks() as callbacks:
            result = email_send(email=email, actor=owner, issue_send=False)
        assert callbacks == []
        assert result.status == EmailStatus.SENT and result.sent_at is not None
        assert result.message_id == ""
        assert result.events.get().reason.startswith("marked as sent")


def test_mark_as_sent_refuses_incoming(org, owner):
    email = EmailFactory(sender_user=owner, direction=Direction.INCOMING)
    with pytest.raises(NotOutgoing):
        email_mark_as_sent(email=email, actor=owner)


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_cancel_only_from_draft_or_pending_send(org, owner, status):
    email = EmailFactory(sender_user=owner, status=status)
    if status in (EmailStatus.DRAFT, EmailStatus.PENDING_SEND):
        result = email_cancel(email=email, actor=owner)
        assert result.status == EmailStatus.CANCELED and result.state == "canceled"
        assert result.canceled_at is not None
        assert result.events.get().from_status == status
    else:
        with pytest.raises(InvalidTransition) as exc:
            email_cancel(email=email, actor=owner)
        assert exc.value.status == status
        email.refresh_from_db()
        assert email.status == status


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_edit_only_draft_or_failed(org, owner, status):
    email = EmailFactory(sender_user=owner, status=status, subject="old")
    if status in (EmailStatus.DRAFT, EmailStatus.FAILED):
        email_update(email=email, actor=owner, subject="new", to=["bo@example.com"])
        email.refresh_from_db()
        assert email.subject == "new"
        assert list(email.parties.filter(role="to").values_list("address", flat=True)) == [
            "bo@example.com"
        ]
    else:
        with pytest.raises(InvalidTransition):
            email_update(email=email, actor=owner, subject="new")
        email.refresh_from_db()
        assert email.subject == "old"


def test_cancel_by_outsider_is_refused(org, owner, outsider):
    email = EmailFactory(sender_user=owner)
    with pytest.raises(SenderNotAllowed):
        email_cancel(email=email, actor=outsider)
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT


# --- refusal codes, in the order of DESIGN.md -----------------------------------


def test_refusal_not_outgoing(org, owner):
    email = EmailFactory(
        sender_user=owner,
        direction=Direction.INCOMING,
        status=EmailStatus.DRAFT,
        with_to="ann@example.com",
    )
    with pytest.raises(NotOutgoing) as exc:
        email_send(email=email, actor=owner)
    assert exc.value.code == "not_outgoing"


def test_refusal_no_recipients(org, owner):
    email = email_create(actor=owner, subject="nobody")
    with pytest.raises(NoRecipients) as exc:
        email_send(email=email, actor=owner)
    assert exc.value.code == "no_recipients"


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("bad-address", ""),
        ("ann@example.com\r\nBcc: x@example.com", ""),
        ("a" * 300 + "@example.com", ""),
        ("ann@example.com", "Ann\r\nBcc: x@example.com"),
    ],
)
def test_refusal_invalid_address_for_stored_bad_party(org, owner, address, name):
    """An address that got in some other way (import, a contact edit) is caught at send."""
    email = EmailFactory(sender_user=owner)
    EmailParty.objects.create(email=email, role=PartyRole.TO, address=address, name=name)
    with pytest.raises(InvalidAddress) as exc:
        email_send(email=email, actor=owner)
    assert exc.value.code == "invalid_address"
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT and email.message_id == ""


def test_refusal_invalid_header_for_stored_bad_subject(org, owner):
    email = EmailFactory(
        sender_user=owner, subject="Hi\r\nBcc: x@example.com", with_to="a@example.com"
    )
    with pytest.raises(InvalidHeader):
        email_send(email=email, actor=owner)


def test_refusal_sender_without_address(org):
    addressless = UserFactory(email="")
    email = EmailFactory(sender_user=addressless, with_to="a@example.com")
    with pytest.raises(InvalidAddress, match="sender"):
        email_send(email=email, actor=addressless)


def test_refusal_sender_not_allowed_for_other_user(org, owner, teammate, team_queue):
    email = EmailFactory(sender_user=owner, with_to="a@example.com")
    with pytest.raises(SenderNotAllowed) as exc:
        email_send(email=email, actor=teammate)
    assert exc.value.code == "sender_not_allowed"


def test_refusal_sender_not_allowed_for_queue_non_member(org, owner, outsider):
    queue = QueueFactory(members=[owner])
    email = EmailFactory(sender_user=None, sender_queue=queue, with_to="a@example.com")
    with pytest.raises(SenderNotAllowed, match="not a member"):
        email_send(email=email, actor=outsider)
    assert email_send(email=email, actor=owner).status == EmailStatus.PENDING_SEND


def test_send_as_any_sender_permission_allows_non_member(org):
    queue = QueueFactory()
    admin = UserFactory(permissions=["activities.send_as_any_sender"])
    email = EmailFactory(sender_user=None, sender_queue=queue, with_to="a@example.com")
    assert email_send(email=email, actor=admin).status == EmailStatus.PENDING_SEND


def test_refusals_come_in_design_order(org, outsider):
    """An email wrong in every way names the first cause, then the next once fixed."""
    pending_user = UserFactory(email_router_access_approval=EmailApproval.PENDING)
    email = EmailFactory(sender_user=pending_user, status=EmailStatus.DRAFT)
    with pytest.raises(NoRecipients):
        email_send(email=email, actor=outsider)
    EmailParty.objects.create(email=email, role=PartyRole.TO, address="bad")
    with pytest.raises(InvalidAddress):
        email_send(email=email, actor=outsider)
    EmailParty.objects.filter(email=email).update(address="good@example.com")
    with pytest.raises(SenderNotAllowed):
        email_send(email=email, actor=outsider)
    with pytest.raises(SenderNotApproved):
        email_send(email=email, actor=pending_user)


# --- the approval matrix --------------------------------------------------------

APPROVALS = [a.value for a in EmailApproval]


@pytest.mark.parametrize(
    ("sender_kind", "require_user", "require_queue", "approval"),
    list(itertools.product(["user", "queue"], [True, False], [True, False], APPROVALS)),
)
def test_approval_matrix(org, sender_kind, require_user, require_queue, approval):
    org.require_approval_for_user_email = require_user
    org.require_approval_for_queue_email = require_queue
    org.save()
    user = UserFactory(
        email_router_access_approval=approval if sender_kind == "user" else EmailApproval.APPROVED
    )
    if sender_kind == "queue":
        queue = QueueFactory(members=[user], email_router_access_approval=approval)
        email = EmailFactory(sender_user=None, sender_queue=queue, with_to="a@example.com")
        required = require_queue
    else:
        email = EmailFactory(sender_user=user, with_to="a@example.com")
        required = require_user
    if required and approval != EmailApproval.APPROVED:
        with pytest.raises(SenderNotApproved) as exc:
            email_send(email=email, actor=user)
        assert exc.value.code == "sender_not_approved"
        assert "not approved" in exc.value.message
        email.refresh_from_db()
        assert email.status == EmailStatus.DRAFT
        assert not EmailEvent.objects.filter(email=email).exists()
    else:
        assert email_send(email=email, actor=user).status == EmailStatus.PENDING_SEND


# --- tracking token ---------------------------------------------------------------


def test_tracking_token_appended_once_across_resends(org, owner):
    email = draft_for(owner)
    sent = email_send(email=email, actor=owner)
    token = f"CRM:{email.pk:07d}"
    assert sent.subject == f"Hi {token}" and sent.tracking_token == token
    Email.objects.filter(pk=email.pk).update(status=EmailStatus.FAILED)
    again = email_send(email=email, actor=owner)
    assert again.subject == f"Hi {token}"
    assert again.subject.count(token) == 1


def test_a_reply_goes_out_with_its_own_token_instead_of_the_one_it_quotes(org, owner):
    email = draft_for(owner)
    Email.objects.filter(pk=email.pk).update(subject="Re: Quote CRM:0000002 for CRM:00000021x")
    sent = email_send(email=email, actor=owner)
    token = f"CRM:{email.pk:07d}"
    assert sent.subject == f"Re: Quote for CRM:00000021x {token}"


def test_tracking_token_given_by_caller_is_used(org, owner):
    sent = email_send(email=draft_for(owner), actor=owner, tracking_token="CASE:42")
    assert sent.subject == "Hi CASE:42"


def test_tracking_token_not_added_when_organisation_does_not_use_them(org, owner):
    org.use_tracking_token = False
    org.save()
    assert email_send(email=draft_for(owner), actor=owner).subject == "Hi"


def test_tracking_token_with_crlf_is_refused(org, owner):
    email = draft_for(owner)
    with pytest.raises(InvalidHeader):
        email_send(email=email, actor=owner, tracking_token="X:1\r\nBcc: v@example.com")
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT and email.subject == "Hi"
