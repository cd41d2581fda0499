from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from common.errors import Conflict, PermissionDeniedError, ValidationFailed
from crm.models import Contact, EmailApproval, Organization, Queue, Tag
from crm.services import (
    contact_save,
    email_address_approve,
    email_address_reject,
    mailbox_save,
    organization_update,
    queue_create,
    queue_delete,
    queue_update,
)
from tests.factories import EmailFactory, QueueFactory, TagFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_new_queue_with_address_starts_pending():
    queue = queue_create(name="Support", email="support@example.com")
    assert queue.email_router_access_approval == EmailApproval.PENDING


def test_changing_a_queue_address_resets_approval_to_pending():
    queue = QueueFactory(email_router_access_approval=EmailApproval.APPROVED)
    mailbox_save(obj=queue, data={"email": "other@example.com"})
    queue.refresh_from_db()
    assert queue.email == "other@example.com"
    assert queue.email_router_access_approval == EmailApproval.PENDING


def test_changing_a_user_address_resets_approval_to_pending():
    user = UserFactory(email_router_access_approval=EmailApproval.APPROVED)
    user.email = "new@example.com"  # as a form sets it before saving
    mailbox_save(obj=user)
    user.refresh_from_db()
    assert user.email_router_access_approval == EmailApproval.PENDING


def test_same_address_in_other_case_keeps_approval():
    queue = QueueFactory(
        email="desk@example.com", email_router_access_approval=EmailApproval.APPROVED
    )
    mailbox_save(obj=queue, data={"email": " Desk@Example.com ", "name": "Renamed"})
    queue.refresh_from_db()
    assert queue.name == "Renamed"
    assert queue.email_router_access_approval == EmailApproval.APPROVED


def test_emptying_the_address_clears_approval():
    user = UserFactory(email_router_access_approval=EmailApproval.APPROVED)
    mailbox_save(obj=user, data={"email": ""})
    user.refresh_from_db()
    assert user.email_router_access_approval == EmailApproval.EMPTY


def test_approval_cannot_be_set_through_save():
    queue = QueueFactory(email_router_access_approval=EmailApproval.PENDING)
    mailbox_save(obj=queue, data={"email_router_access_approval": EmailApproval.APPROVED})
    queue.refresh_from_db()
    assert queue.email_router_access_approval == EmailApproval.PENDING
    queue.email_router_access_approval = EmailApproval.APPROVED  # set on the instance
    mailbox_save(obj=queue)
    queue.refresh_from_db()
    assert queue.email_router_access_approval == EmailApproval.PENDING


def test_invalid_address_is_refused_and_nothing_saved():
    queue = QueueFactory(email="ok@example.com")
    with pytest.raises(ValidationFailed, match="email"):
        mailbox_save(obj=queue, data={"email": "not an address"})
    queue.refresh_from_db()
    assert queue.email == "ok@example.com"


@pytest.mark.parametrize("decide", [email_address_approve, email_address_reject])
def test_only_holders_of_the_permission_approve_or_reject(owner, staff, approver, decide):
    queue = QueueFactory(email_router_access_approval=EmailApproval.PENDING)
    queue.members.add(owner)
    for actor in (owner, staff):  # a member, a staff outsider
        with pytest.raises(PermissionDeniedError, match="crm.approve_email_address"):
            decide(target=queue, actor=actor)
        queue.refresh_from_db()
        assert queue.email_router_access_approval == EmailApproval.PENDING
    decide(target=queue, actor=approver)
    queue.refresh_from_db()
    expected = EmailApproval.APPROVED if decide is email_address_approve else EmailApproval.REJECTED
    assert queue.email_router_access_approval == expected


def test_approving_a_user_without_address_is_refused(approver):
    user = UserFactory(email="", email_router_access_approval=EmailApproval.EMPTY)
    with pytest.raises(ValidationFailed, match="no email address"):
        email_address_approve(target=user, actor=approver)


def test_organization_is_a_single_row():
    assert Organization.get().pk == Organization.get().pk == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Organization.objects.create(pk=2)
    assert Organization.objects.count() == 1


def test_queue_addresses_are_unique():
    QueueFactory(email="same@example.com")
    with pytest.raises(ValidationFailed):
        queue_create(name="Other", email="same@example.com")
    assert Queue.objects.filter(email="same@example.com").count() == 1


def test_organization_update_needs_a_staff_actor_and_changes_nothing_otherwise(owner, staff):
    org = Organization.get()
    with pytest.raises(PermissionDeniedError, match="is_staff"):
        organization_update(data={"use_tracking_token": False}, actor=owner)
    with pytest.raises(ValidationFailed, match="modified_at"):
        organization_update(data={"modified_at": None}, actor=staff)
    org.refresh_from_db()
    assert org.use_tracking_token is True


def test_a_queue_update_that_fails_changes_neither_fields_nor_members(owner, teammate):
    queue = QueueFactory(name="Desk", email="desk@example.com", members=[owner])
    with pytest.raises(ValidationFailed, match="email"):
        queue_update(queue=queue, data={"name": "New", "email": "bad"}, members=[teammate])
    queue.refresh_from_db()
    assert queue.name == "Desk"
    assert list(queue.members.all()) == [owner]


def test_deleting_a_queue_that_sent_email_is_a_conflict_naming_the_emails():
    queue = QueueFactory(name="Desk")
    EmailFactory(sender_user=None, sender_queue=queue)
    with pytest.raises(Conflict, match="still used by 1 email$") as caught:
        queue_delete(queue=queue)
    assert caught.value.code == "protected"
    assert Queue.objects.filter(pk=queue.pk).exists()


def test_contact_tags_are_created_once_and_matched_in_any_case():
    TagFactory(name="VIP")
    contact = contact_save(
        contact=Contact(), data={"last_name": "Lee"}, tags=["vip", "New", "new", " new "]
    )
    assert sorted(t.name for t in contact.tags.all()) == ["New", "VIP"]
    assert Tag.objects.count() == 2


@pytest.mark.parametrize("operation", ["create", "update", "delete"])
def test_only_staff_manage_queues(outsider, staff, operation):
    queue = QueueFactory(name="Desk")
    calls = {
        "create": lambda actor: queue_create(name="New", email="new@example.com", actor=actor),
        "update": lambda actor: queue_update(queue=queue, data={"name": "Renamed"}, actor=actor),
        "delete": lambda actor: queue_delete(queue=queue, actor=actor),
    }
    with pytest.raises(PermissionDeniedError, match="staff"):
        calls[operation](outsider)
    assert list(Queue.objects.values_list("name", flat=True)) == ["Desk"]
    calls[operation](staff)
    expected = {"create": {"Desk", "New"}, "update": {"Renamed"}, "delete": set()}[operation]
    assert set(Queue.objects.values_list("name", flat=True)) == expected


def test_a_decision_keeps_who_and_when_and_a_new_address_clears_them(approver):
    queue = QueueFactory(email_router_access_approval=EmailApproval.PENDING)
    email_address_approve(target=queue, actor=approver)
    queue.refresh_from_db()
    assert queue.email_approval_decided_by == approver and queue.email_approval_decided_at

    mailbox_save(obj=queue, data={"name": "Renamed"})  # same address: the decision stays
    queue.refresh_from_db()
    assert queue.email_approval_decided_by == approver

    mailbox_save(obj=queue, data={"email": "other@example.com"})
    queue.refresh_from_db()
    assert queue.email_router_access_approval == EmailApproval.PENDING
    assert queue.email_approval_decided_by is None and queue.email_approval_decided_at is None


@pytest.mark.parametrize("decide", [email_address_approve, email_address_reject])
def test_a_decision_about_an_address_that_changed_since_writes_nothing(approver, decide):
    queue = QueueFactory(email="old@example.com", email_router_access_approval="pending_approval")
    mailbox_save(obj=queue, data={"email": "new@example.com"})
    with pytest.raises(Conflict, match="now new@example.com, not old@example.com") as exc:
        decide(target=queue, actor=approver, address="old@example.com")
    assert exc.value.code == "address_changed"
    queue.refresh_from_db()
    assert queue.email_router_access_approval == EmailApproval.PENDING
    assert queue.email_approval_decided_by is None
