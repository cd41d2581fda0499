"""The admin of kept inbound messages: every message listed with its status, reason and
raw download; Release refused in words while the address waits, then routing it."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from activities.models import Email, InboundMessage
from activities.services.inbound import inbound_message_receive
from crm.models import EmailApproval
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/activities/inboundmessage/"


@pytest.fixture
def blocked(org) -> InboundMessage:
    QueueFactory(
        name="Sales", email="sales@example.com", email_router_access_approval=EmailApproval.PENDING
    )
    msg = EmailMessage()
    msg["From"], msg["To"] = "ann@customers.example.org", "sales@example.com"
    msg["Subject"], msg["Message-ID"] = "Price list", "<admin-held@x.org>"
    msg.set_content("Hello")
    return inbound_message_receive(raw=msg.as_bytes(), route="webhook:postmark")


def test_the_admin_lists_kept_messages_with_reason_and_raw_download(superuser_client, blocked):
    page = superuser_client.get(CHANGELIST, {"status": "blocked"})
    text = page.content.decode()
    assert page.status_code == 200
    assert "Price list" in text and "webhook:postmark" in text
    assert "sales@example.com (the queue Sales, pending approval)" in text
    assert f'href="/inbound/{blocked.pk}/raw/"' in text
    assert superuser_client.get(f"/inbound/{blocked.pk}/raw/").status_code == 200


def test_release_in_the_admin_names_the_refusal_then_routes_the_message(
    superuser_client, blocked, org
):
    action = {"action": "release", "_selected_action": [blocked.pk]}
    refused = superuser_client.post(CHANGELIST, action, follow=True)
    assert "still held for approval" in refused.content.decode()
    blocked.refresh_from_db()
    assert blocked.status == "blocked" and not Email.objects.exists()

    org.require_approval_for_queue_email = False
    org.save()
    done = superuser_client.post(CHANGELIST, action, follow=True)
    assert "1 message(s) released." in done.content.decode()
    blocked.refresh_from_db()
    assert blocked.status == "stored" and blocked.email.subject == "Price list"
