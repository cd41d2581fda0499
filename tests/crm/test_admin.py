"""The admin of the CRM records (crm/admin.py), driven through its real views."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crm.models import EmailApproval
from tests.factories import ApproverFactory, QueueFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_approve_actions_shown_only_to_approvers(client):
    queue = QueueFactory(email_router_access_approval=EmailApproval.PENDING)
    editor = UserFactory(
        is_staff=True, permissions=["crm.view_queue", "crm.change_queue"]
    )  # no approval
    client.force_login(editor)
    url = reverse("admin:crm_queue_changelist")
    page = client.get(url)
    assert page.status_code == 200  # the changelist itself, not the admin's sign-in page
    assert b"approve_email_address" not in page.content
    # Posting the action anyway does nothing.
    client.post(url, {"action": "approve_email_address", "_selected_action": [queue.pk]})
    queue.refresh_from_db()
    assert queue.email_router_access_approval == EmailApproval.PENDING

    approver = ApproverFactory(is_staff=True, permissions=["crm.view_queue", "crm.change_queue"])
    client.force_login(approver)
    page = client.get(url)
    assert b"approve_email_address" in page.content
    client.post(url, {"action": "approve_email_address", "_selected_action": [queue.pk]})
    queue.refresh_from_db()
    assert queue.email_router_access_approval == EmailApproval.APPROVED


def test_changing_queue_address_in_admin_resets_approval(superuser_client):
    queue = QueueFactory(email_router_access_approval=EmailApproval.APPROVED)
    response = superuser_client.post(
        reverse("admin:crm_queue_change", args=[queue.pk]),
        {
            "name": queue.name,
            "email": "new-address@example.com",
            "outgoing_delivery": "worker",
            "send_rate_per_minute": 0,
        },
    )
    assert response.status_code == 302
    queue.refresh_from_db()
    assert queue.email == "new-address@example.com"
    assert queue.email_router_access_approval == EmailApproval.PENDING
