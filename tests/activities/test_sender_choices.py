"""The senders a user may choose (``sender_choices``) and the key parser over them."""

from __future__ import annotations

import pytest

from activities.selectors import sender_choices, sender_from_key
from crm.models import EmailApproval
from tests.factories import QueueFactory, grant

pytestmark = pytest.mark.django_db


def test_the_user_and_their_queues_are_offered_with_approval_and_the_services_refusal(org, owner):
    approved = QueueFactory(name="Approved", email="approved@example.com", members=[owner])
    pending = QueueFactory(
        name="Pending",
        email="pending@example.com",
        members=[owner],
        email_router_access_approval=EmailApproval.PENDING,
    )
    rejected = QueueFactory(
        name="Rejected",
        email="rejected@example.com",
        members=[owner],
        email_router_access_approval=EmailApproval.REJECTED,
    )
    elsewhere = QueueFactory(name="Elsewhere", email="elsewhere@example.com")

    choices = sender_choices(owner)

    assert [(c.key, c.kind, c.approval, c.approved) for c in choices] == [
        (f"user:{owner.pk}", "user", "approved", True),
        (f"queue:{approved.pk}", "queue", "approved", True),
        (f"queue:{pending.pk}", "queue", "pending approval", False),
        (f"queue:{rejected.pk}", "queue", "rejected", False),
    ]
    assert [c.problem for c in choices[:2]] == ["", ""]
    assert choices[2].problem == (
        "sender address is not approved: the queue address pending@example.com is pending "
        "approval; an administrator must approve it before mail can be sent from it"
    )
    assert "rejected@example.com is rejected" in choices[3].problem
    assert sender_from_key(owner, f"queue:{pending.pk}") == pending
    assert sender_from_key(owner, f"queue:{elsewhere.pk}") is None
    assert sender_from_key(owner, "queue:nonsense") is None


def test_without_a_required_approval_every_sender_may_send_and_says_not_required(org, owner):
    pending = QueueFactory(
        name="Pending", members=[owner], email_router_access_approval=EmailApproval.PENDING
    )
    org.require_approval_for_queue_email = False
    org.save()

    queue = sender_choices(owner)[1]

    assert queue.record == pending
    assert (queue.approval, queue.approved, queue.problem) == ("not required", True, "")


def test_holders_of_send_as_any_sender_are_offered_every_queue_and_a_drafts_sender(
    org, teammate, owner
):
    queue = QueueFactory(name="Board")
    grant(owner, ["activities.send_as_any_sender"])
    owner = type(owner).objects.get(pk=owner.pk)  # a fresh permission cache

    keys = [c.key for c in sender_choices(owner, current=teammate)]

    assert keys == [f"user:{owner.pk}", f"queue:{queue.pk}", f"user:{teammate.pk}"]
    assert sender_from_key(owner, f"user:{teammate.pk}") is None
    assert sender_from_key(owner, f"user:{teammate.pk}", current=teammate) == teammate
