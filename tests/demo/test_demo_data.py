from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from activities.models import (
    ActivityMimeAttachment,
    AttachmentBlob,
    Direction,
    Email,
    EmailEvent,
    EmailStatus,
    Template,
)
from crm.models import Account, Contact, EmailApproval, Queue, User

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def counts():
    return (
        User.objects.count(),
        Queue.objects.count(),
        Account.objects.count(),
        Contact.objects.count(),
        Template.objects.count(),
        ActivityMimeAttachment.objects.count(),
        AttachmentBlob.objects.count(),
        Email.objects.count(),
        EmailEvent.objects.count(),
    )


def test_demo_data_is_as_designed_and_loading_twice_changes_nothing(settings, client):
    settings.DEBUG = True
    call_command("load_demo_data")
    first = counts()
    call_command("load_demo_data")
    # 3 attachments: the template's, its copy on a sent email (same blob), and a CSV.
    assert counts()[:7] == first[:7] == (3, 3, 2, 20, 3, 3, 2)
    assert counts() == first and first[7] == 7

    admin, alice, bob = (User.objects.get(username=n) for n in ("admin", "alice", "bob"))
    assert admin.is_superuser and admin.has_perm("crm.approve_email_address")
    assert alice.email_router_access_approval == EmailApproval.APPROVED
    assert bob.email_router_access_approval == EmailApproval.PENDING
    support, sales, relay = (
        Queue.objects.get(email=f"{n}@example.com") for n in ("support", "sales", "relay")
    )
    assert support.email_router_access_approval == EmailApproval.APPROVED
    assert list(support.members.all()) == [alice]
    assert sales.email_router_access_approval == EmailApproval.PENDING
    assert set(sales.members.all()) == {alice, bob}
    assert relay.outgoing_delivery == "external" and relay.is_address_approved
    assert Template.objects.filter(attachments__isnull=False).count() == 1
    # Signed in through the page (sign-in limits need the request; Client.login has none).
    assert client.post("/sign-in/", {"username": "alice", "password": "demo"}).status_code == 302


def test_demo_data_refuses_when_debug_is_off(settings):
    from django.core.management.base import CommandError

    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("load_demo_data")
    assert User.objects.count() == 0


def test_a_bad_email_url_stops_start_up_with_a_clear_error(tmp_path):
    env = {
        **os.environ,
        "EMAIL_URL": "carrier-pigeon://coop",
        "CRM_DATA_DIR": str(tmp_path),
        "CRM_QUIET": "1",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "EMAIL_URL" in result.stderr and "ImproperlyConfigured" in result.stderr


def test_demo_mail_fills_every_tab_of_the_mail_list(settings, client):
    settings.DEBUG = True
    call_command("load_demo_data")
    by_status = {}
    for email in Email.objects.all():
        by_status.setdefault(email.status, []).append(email)
    assert sorted((s, len(e)) for s, e in by_status.items()) == [
        ("draft", 1),
        ("failed", 1),
        ("pending_send", 1),
        ("received", 1),
        ("sent", 3),
    ]
    (scheduled,) = by_status[EmailStatus.PENDING_SEND]
    assert scheduled.scheduled_at > scheduled.created_at and scheduled.next_attempt_at > (
        scheduled.created_at
    )  # the worker leaves it until then
    (failed,) = by_status[EmailStatus.FAILED]
    assert failed.last_error.startswith("550 5.1.1")
    assert list(failed.events.values_list("from_status", "to_status")) == [
        ("", "draft"),
        ("draft", "pending_send"),
        ("pending_send", "sending"),
        ("sending", "failed"),
    ]
    sent_files = sorted(
        a.filename for e in by_status[EmailStatus.SENT] for a in e.attachments.all()
    )
    assert sent_files == ["review-q3.csv", "terms.pdf"]
    assert all(e.events.filter(to_status="sent").exists() for e in by_status[EmailStatus.SENT])
    (received,) = by_status[EmailStatus.RECEIVED]
    assert received.direction == Direction.INCOMING
    assert "https://images.example.org/" in received.body_html
    assert received.parties.get(role="to").queue.name == "Support"
    assert received.regarding.email == "ann.lee@customers.example.org"

    # Signed in through the page (sign-in limits need the request; Client.login has none).
    assert client.post("/sign-in/", {"username": "alice", "password": "demo"}).status_code == 302
    for tab, subject in (
        ("drafts", "Meeting notes for Nordlys"),
        ("outbox", "Your renewal is due next week"),
        ("outbox", "Invoice 2024-118"),
        ("sent", "Quarterly review for Fjord Freight"),
        ("received", "Two more seats before the renewal"),
    ):
        assert subject in client.get(f"/mail/{tab}/").content.decode(), tab


def test_with_the_outbox_backend_demo_mail_is_delivered_to_the_folder(settings):
    settings.DEBUG = True
    settings.EMAIL_BACKEND = "activities.mail.OutboxBackend"
    call_command("load_demo_data")
    call_command("load_demo_data")
    sent = Email.objects.filter(status=EmailStatus.SENT)
    assert sent.count() == 3 and all(e.message_id for e in sent)
    files = sorted(settings.OUTBOX_DIR.glob("*.eml"))
    assert len(files) == 3  # the second run delivered nothing again
    assert all(e.events.filter(from_status="sending", to_status="sent").exists() for e in sent)
