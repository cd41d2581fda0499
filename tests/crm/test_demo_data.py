from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from activities.models import ActivityMimeAttachment, AttachmentBlob, Template
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
    )


def test_demo_data_is_as_designed_and_loading_twice_changes_nothing(settings, client):
    settings.DEBUG = True
    call_command("load_demo_data")
    first = counts()
    call_command("load_demo_data")
    assert counts() == first == (3, 3, 2, 20, 3, 1, 1)

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
    assert client.login(username="alice", password="demo")


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
